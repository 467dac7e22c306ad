"""Markdown to sanitised HTML: markdown-it renders, nh3 keeps only safe tags and attributes.

An image is shown as a link to it (`<a class="image-link">` with the alt text), never as
`<img>`: a page view fetches nothing the skill's author chose, so a remote image cannot
track who reads the page, and a same-origin one (an archive URL, say) cannot count
downloads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markupsafe import Markup, escape

from ..domain import HIGHLIGHT_END, HIGHLIGHT_START

IMAGE_LINK = "image-link"


def _image_as_link(self: RendererHTML, tokens: Sequence[Token], idx: int,
                   options: Any, env: Any) -> str:
    """`![alt](url "title")` as `<a class="image-link" href=url title=title>alt</a>`."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    title = token.attrGet("title")
    title_attr = f' title="{escape(title)}"' if title else ""
    return f'<a class="{IMAGE_LINK}" href="{escape(src)}"{title_attr}>{escape(alt)}</a>'


_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_md.add_render_rule("image", _image_as_link)

_TAGS = {
    "a", "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "strong",
    "em", "code", "pre", "blockquote", "table", "thead", "tbody", "tr", "th", "td", "del",
}
_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "th": {"align"}, "td": {"align"}}
_ATTRIBUTE_VALUES = {"a": {"class": {IMAGE_LINK}}}


def render(text: str) -> str:
    """Safe HTML for untrusted markdown (raw HTML in the source is shown as text; images
    are links to them)."""
    clean = nh3.clean(_md.render(text), tags=_TAGS, attributes=_ATTRIBUTES,
                      tag_attribute_values=_ATTRIBUTE_VALUES,
                      url_schemes={"http", "https", "mailto"}, link_rel="nofollow noopener")
    # A code block scrolls sideways; keyboard users reach it (WCAG 2.1.1). After cleaning, a
    # literal `<pre>` is only ever a real element (text would have been escaped).
    return clean.replace("<pre>", '<pre tabindex="0">')


def plain_snippet(snippet: str) -> str:
    """A search snippet without its highlight markers."""
    return snippet.replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_END, "")


def highlighted(snippet: str) -> Markup:
    """A search snippet as safe HTML: the text escaped, matched words in <mark>."""
    text = str(escape(snippet))
    return Markup(text.replace(HIGHLIGHT_START, "<mark>").replace(HIGHLIGHT_END, "</mark>"))
