"""Markdown to sanitised HTML: markdown-it renders, nh3 keeps only safe tags and attributes."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from ..store.index import HIGHLIGHT_END, HIGHLIGHT_START

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")

_TAGS = {
    "a", "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong",
    "em", "code", "pre", "blockquote", "table", "thead", "tbody", "tr", "th", "td", "del",
    "img",
}
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "code": {"class"},
               "th": {"align"}, "td": {"align"}}


def render(text: str) -> str:
    """Safe HTML for untrusted markdown (raw HTML in the source is shown as text)."""
    return nh3.clean(_md.render(text), tags=_TAGS, attributes=_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener")


def plain_snippet(snippet: str) -> str:
    """A search snippet without its highlight markers."""
    return snippet.replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_END, "")


def highlighted(snippet: str) -> Markup:
    """A search snippet as safe HTML: the text escaped, matched words in <mark>."""
    text = str(escape(snippet))
    return Markup(text.replace(HIGHLIGHT_START, "<mark>").replace(HIGHLIGHT_END, "</mark>"))
