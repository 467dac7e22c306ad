"""Edits to a skill's files: parse a request's edits (two formats), apply them in order.

Formats (one request may mix them; `index` is the 0-based position, as in `edits[2]`):

    native  {"op": "replace" | "insert_after" | "append" | "delete",
             "target": str, "content": str, "file"?: str, "replace_all"?: bool}
    Hermes  {"old_string": str, "new_string": str, "replace_all"?: bool, "file_path"?: str}
            (the arguments of Hermes Agent's `skill_manage(action="patch")`): a replace of
            old_string by new_string; an empty new_string is a delete.

`file`/`file_path` is relative to the skill folder; absent, null or "" means SKILL.md. With
`skill_name`, "<skill_name>/SKILL.md" is SKILL.md too (Hermes accepts both spellings).

Ops: `replace` puts content in place of the target; `insert_after` puts content right after
it; `delete` removes it; `replace_all` applies the op to every occurrence (without it, a
target found more than once is refused as ambiguous). `append` takes no target: it adds
content at the end of the file, after a line break when the file does not end with one, and
creates the file when the skill has none at that path (the only op that can). Edits apply
in order, each to the result of the ones before; text files only (UTF-8, no NUL bytes).

Matching: exact first (non-overlapping occurrences, left to right). Only when the target
does not occur exactly, both the file and the target are normalised and matched again:

1. line breaks: CRLF and lone CR become LF;
2. each line loses its leading spaces and tabs (indentation differences are ignored) and
   its trailing spaces and tabs;
3. every run of spaces and tabs inside a line becomes one space.

A normalised match maps back to the exact span of the original text it covers, and only
that span changes. When the target's first line starts with whitespace, the match must
start at the start of a line or after whitespace, and when it starts a line the span
includes that line's indentation. When the target's last line ends with whitespace (and
no line break follows), the match must end at a line end or before whitespace.

Content put at a normalised match is re-indented like the file. Each non-blank target line
that begins a file line pairs its indentation with that file line's. Each non-blank content
line that begins a line has its indentation I rewritten: among the pairs whose target
indentation is a prefix of I, the longest (the first of equals) has that prefix swapped for
its file indentation; when none is a prefix, the line is set at the first pair's file
indentation. (Hermes shifts every line by the first line's difference only; pairing every
line also keeps nesting when 2-space indents meet 4-space or tab ones.) At exact matches
the content goes in as written.

Inserted text always takes the file's line ending (CRLF when most of its line breaks are
CRLF, else LF). Failures raise EditFailed (422) with `extra`: `edit` (index), `op`,
`path`, `reason` (`missing`: with `nearest`, the window of the target's line count most
similar to it, see below; `ambiguous`: with `lines`, where every match starts; `no_file`; `binary`;
`too_large`: the file would pass `max_chars`), `hint`.

The nearest text: both sides' lines are squashed (rules 2 and 3), and difflib's ratio ranks
windows of the target's line count (each text cut to 1,000 characters, as the cost grows
with the square). The windows compared are those where the most target lines occur
unchanged, and those that align the file lines most like the target's first, last and
longest lines with them (five of each); only the first 20,000 lines are searched.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from skills_hub.errors import ArchiveRejected, BadRequest, EditFailed, Problem
from skills_hub.learning.text import decode, line_ending, line_of, with_line_ending
from skills_hub.skill.bundle import SKILL_MD, clean_path

OPS = ("replace", "insert_after", "append", "delete")
MAX_EDITS = 100
MAX_TEXT_CHARS = 256 * 1024  # one target or content
MAX_TOTAL_CHARS = 1024 * 1024  # every target and content of a request
MAX_FILE_CHARS = 5 * 1024 * 1024  # an edited file (as the upload cap's 5 MiB per file)
NATIVE_KEYS = frozenset({"op", "target", "content", "file", "replace_all"})
HERMES_KEYS = frozenset({"old_string", "new_string", "replace_all", "file_path"})
_EXAMPLE = ('[{"op": "replace", "target": "old text", "content": "new text"}] or '
            '[{"old_string": "old text", "new_string": "new text"}]')


@dataclass(frozen=True)
class Edit:
    """One edit to one file of a skill."""

    op: str  # one of OPS
    target: str | None  # None only for append
    content: str  # "" for delete
    path: str = SKILL_MD
    replace_all: bool = False
    index: int = 0  # 0-based position in the request

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; use one of {OPS}")
        if self.op != "append" and not self.target:
            raise ValueError(f"{self.op} needs a non-empty target")

    @property
    def label(self) -> str:
        """How messages name the edit: 'edit 2 (replace in SKILL.md)'."""
        return f"edit {self.index} ({self.op} in {self.path})"

    @property
    def size(self) -> int:
        """Characters of target and content."""
        return len(self.target or "") + len(self.content)


# --- parsing --------------------------------------------------------------------------------


def parse_edits(raw: object, *, skill_name: str | None = None) -> list[Edit]:
    """Validate a request's edits (either format, mixed) and return them in order.

    Raises:
        BadRequest: with one Problem per bad field of every bad edit, all at once.
    """
    if not isinstance(raw, list):
        raise _invalid([Problem("edits", "edits must be a list of edit objects",
                                f"Send a JSON list such as {_EXAMPLE}.")])
    if not raw:
        raise _invalid([Problem("edits", "the list of edits is empty",
                                f"Send at least one edit, such as {_EXAMPLE}.")])
    if len(raw) > MAX_EDITS:
        raise _invalid([Problem("edits", f"{len(raw)} edits is more than the {MAX_EDITS} allowed",
                                f"Send at most {MAX_EDITS} edits per request.")])
    problems: list[Problem] = []
    edits = [_parse_item(item, i, skill_name, problems) for i, item in enumerate(raw)]
    total = sum(edit.size for edit in edits if edit is not None)
    if total > MAX_TOTAL_CHARS:
        problems.append(Problem("edits", f"the edits hold {total} characters, more than the "
                                f"{MAX_TOTAL_CHARS} allowed", "Split them over several requests."))
    if problems:
        raise _invalid(problems)
    return [edit for edit in edits if edit is not None]


def _invalid(problems: list[Problem]) -> BadRequest:
    """The refusal of a request's edits."""
    count = len(problems)
    return BadRequest(f"the edits are invalid ({count} problem{'s' if count > 1 else ''})",
                      problems=problems)


def _parse_item(item: object, index: int, skill_name: str | None,
                problems: list[Problem]) -> Edit | None:
    """One edit, or None after adding its problems."""
    where = f"edits[{index}]"
    if not isinstance(item, dict):
        problems.append(Problem(where, "each edit must be a JSON object",
                                f"Write the edit as an object, such as {_EXAMPLE}."))
        return None
    native, hermes = "op" in item, bool(item.keys() & {"old_string", "new_string"})
    if native == hermes:
        message = ("mixes the two formats (op/target/content and old_string/new_string)"
                   if native else "has neither op nor old_string/new_string")
        problems.append(Problem(where, f"the edit {message}",
                                f"Use one format per edit, such as {_EXAMPLE}."))
        return None
    fields = _Fields(item, where, problems)
    if native:
        return _parse_native(fields, index, skill_name)
    return _parse_hermes(fields, index, skill_name)


def _parse_native(fields: _Fields, index: int, skill_name: str | None) -> Edit | None:
    """An edit in the native format: op, target, content, file, replace_all."""
    fields.unknown(NATIVE_KEYS)
    op = fields.item.get("op")
    if not isinstance(op, str) or op not in OPS:
        fields.bad("op", f"unknown op {op!r}", f"Use one of: {', '.join(OPS)}.")
        op = None
    target = _native_target(fields, op)
    content = _native_content(fields, op)
    replace_all = fields.flag("replace_all")
    path = fields.path("file", skill_name)
    if op == "append" and replace_all:
        fields.bad("replace_all", "append takes no replace_all",
                   "Remove replace_all; append adds the content once, at the end of the file.")
    if op == "replace" and target is not None and target == content:
        fields.bad("content", "content is identical to target: the edit changes nothing",
                   "Send only edits that change the file.")
    if fields.failed or op is None:
        return None
    return Edit(op, target, content or "", path, replace_all, index)


def _native_target(fields: _Fields, op: str | None) -> str | None:
    """The target: none for append, required text for the other ops."""
    if op == "append":
        if fields.item.get("target") not in (None, ""):
            fields.bad("target", "append takes no target",
                       "Remove target, or use insert_after to add text after a given text.")
        return None
    return fields.text("target", required=op is not None, empty_ok=op is None,
                       hint="Give the exact text to find, copied from the current file.")


def _native_content(fields: _Fields, op: str | None) -> str | None:
    """The content: none for delete, text (empty allowed for replace) for the other ops."""
    if op == "delete":
        if fields.item.get("content") not in (None, ""):
            fields.bad("content", "delete takes no content",
                       "Remove content, or use replace to put text in place of the target.")
        return ""
    if op == "replace":
        return fields.text("content", required=True, empty_ok=True,
                           hint="Give the new text; an empty string deletes the target.")
    return fields.text("content", required=op is not None, empty_ok=op is None,
                       hint="Give the text to add.")


def _parse_hermes(fields: _Fields, index: int, skill_name: str | None) -> Edit | None:
    """An edit in Hermes's patch format: old_string, new_string, replace_all, file_path."""
    fields.unknown(HERMES_KEYS)
    old = fields.text("old_string", required=True, empty_ok=False,
                      hint="Give the exact text to find, with enough context to be unique.")
    new = fields.text("new_string", required=True, empty_ok=True,
                      hint="Give the replacement text; an empty string deletes old_string.")
    replace_all = fields.flag("replace_all")
    path = fields.path("file_path", skill_name)
    if old is not None and old == new:
        fields.bad("new_string", "new_string is identical to old_string: the edit changes "
                   "nothing", "Send only edits that change the file.")
    if fields.failed:
        return None
    return Edit("delete" if new == "" else "replace", old, new or "", path, replace_all, index)


class _Fields:
    """Reads the fields of one edit object, adding a Problem for each bad one."""

    def __init__(self, item: dict[Any, Any], where: str, problems: list[Problem]) -> None:
        self.item, self.where, self.problems = item, where, problems
        self.failed = False

    def bad(self, key: str, message: str, hint: str) -> None:
        """Record a problem with one field."""
        self.problems.append(Problem(f"{self.where}.{key}", message, hint))
        self.failed = True

    def unknown(self, allowed: frozenset[str]) -> None:
        """Refuse fields the format does not have (a typo would otherwise pass silently)."""
        for key in sorted(map(str, self.item.keys() - allowed)):
            self.bad(key, f"unknown field {key!r}",
                     f"Remove it; this format's fields are {', '.join(sorted(allowed))}.")

    def text(self, key: str, *, required: bool, empty_ok: bool, hint: str) -> str | None:
        """A string field within MAX_TEXT_CHARS, or None after a problem (or when absent)."""
        value = self.item.get(key)
        if value is None:
            if required:
                self.bad(key, f"{key} is required", hint)
            return None
        if not isinstance(value, str):
            self.bad(key, f"{key} must be a string, not {_json_type(value)}", hint)
        elif not value and not empty_ok:
            self.bad(key, f"{key} is empty", hint)
        elif len(value) > MAX_TEXT_CHARS:
            self.bad(key, f"{key} has {len(value)} characters, more than the "
                     f"{MAX_TEXT_CHARS} allowed", "Split the edit into smaller ones.")
        else:
            return value
        return None

    def flag(self, key: str) -> bool:
        """An optional boolean field (absent or null: false)."""
        value = self.item.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.bad(key, f"{key} must be true or false, not {_json_type(value)}",
                     f"Write {key}: true or leave it out.")
            return False
        return value

    def path(self, key: str, skill_name: str | None) -> str:
        """A clean path inside the skill; absent, null or empty: SKILL.md."""
        value = self.item.get(key)
        if value is None or value == "":
            return SKILL_MD
        if not isinstance(value, str):
            self.bad(key, f"{key} must be a string, not {_json_type(value)}", _PATH_HINT)
            return SKILL_MD
        try:
            path = clean_path(value)
        except ArchiveRejected as exc:
            self.bad(key, exc.message, _PATH_HINT)
            return SKILL_MD
        return SKILL_MD if skill_name and path == f"{skill_name}/{SKILL_MD}" else path


_PATH_HINT = "Give a path relative to the skill folder, such as SKILL.md or references/guide.md."


def _json_type(value: object) -> str:
    """How a JSON value's type reads in a message."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


# --- applying -------------------------------------------------------------------------------


def apply_edits(files: Mapping[str, bytes], edits: Sequence[Edit], *,
                max_chars: int = MAX_FILE_CHARS) -> dict[str, bytes]:
    """The skill's files with the edits applied in order; `files` itself is never changed.

    Raises:
        EditFailed: for the first edit that cannot be applied, or that would make its file
            longer than max_chars characters; nothing is applied then.
    """
    texts: dict[str, str] = {}
    for edit in edits:
        texts[edit.path] = _apply(_text_for(files, texts, edit), edit, max_chars)
    result = dict(files)
    result.update({path: text.encode("utf-8") for path, text in texts.items()})
    return result


def _text_for(files: Mapping[str, bytes], texts: Mapping[str, str], edit: Edit) -> str:
    """The current text of the edit's file ("" for a new file made by append)."""
    if edit.path in texts:
        return texts[edit.path]
    data = files.get(edit.path)
    if data is None:
        if edit.op == "append":
            return ""
        raise _failed(edit, "no_file", "the skill has no such file",
                      "Edit one of the skill's files (see files), or append to create one.",
                      files=sorted(files)[:_LISTED_FILES])
    text = decode(data)
    if text is None:
        raise _failed(edit, "binary", "the file is not UTF-8 text; edits apply to text only",
                      "Edit a text file; a binary file can only be replaced by a new version.")
    return text


def _apply(text: str, edit: Edit, max_chars: int) -> str:
    """One edit applied to one file's text."""
    if edit.op == "append" or edit.target is None:
        result = _append(text, edit.content)
    else:
        result = _splice(text, _spans(text, edit, max_chars), edit)
    _check_size(edit, len(result), max_chars)
    return result


def _spans(text: str, edit: Edit, max_chars: int) -> list[_Span]:
    """Where the edit's target is: once, or every time with replace_all."""
    spans, how = _find(text, edit.target or "")
    if not spans:
        raise _missing(edit, text)
    if len(spans) > 1 and not edit.replace_all:
        raise _ambiguous(edit, text, spans, how)
    # The size before re-indenting, checked before the text is built (replace_all can blow up).
    kept = 0 if edit.op == "insert_after" else sum(span.end - span.start for span in spans)
    _check_size(edit, len(text) - kept + len(spans) * len(edit.content), max_chars)
    return spans


def _check_size(edit: Edit, length: int, cap: int) -> None:
    """Refuse an edit that would make its file longer than cap characters."""
    if length > cap:
        raise _failed(edit, "too_large", f"the file would hold {length} characters, more "
                      f"than the {cap} allowed", "Make the edit smaller; use replace_all only "
                      "when every occurrence must change.")


def _append(text: str, content: str) -> str:
    """content at the end of text, on a new line when text does not end with a break."""
    ending = line_ending(text)
    if text and not text.endswith(("\n", "\r")):
        text += ending
    return text + with_line_ending(content, ending)


def _splice(text: str, spans: Sequence[_Span], edit: Edit) -> str:
    """text with each span rewritten by the edit; everything else is kept byte for byte."""
    ending = line_ending(text)
    parts, pos = [], 0
    for span in spans:
        parts += [text[pos:span.start], _rewrite(text, span, edit, ending)]
        pos = span.end
    parts.append(text[pos:])
    return "".join(parts)


def _rewrite(text: str, span: _Span, edit: Edit, ending: str) -> str:
    """What replaces one matched span: nothing, the content, or the span then the content."""
    if edit.op == "delete":
        return ""
    at = span.start if edit.op == "replace" else span.end
    content = with_line_ending(_reindent(edit.content, span.indent, _line_start(text, at) == at),
                               ending)
    return content if edit.op == "replace" else text[span.start:span.end] + content


def _reindent(content: str, indent: _Indent | None, first_begins_line: bool) -> str:
    """content re-indented like the file, on the lines that begin a line of the file."""
    if indent is None:
        return content
    lines = content.split("\n")
    for i, line in enumerate(lines):
        if (i or first_begins_line) and line.strip(" \t\r"):
            lines[i] = indent.apply(line)
    return "\n".join(lines)


def _line_start(text: str, offset: int) -> int:
    """The offset where the line holding text[offset] starts (LF, CRLF or CR breaks)."""
    return max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1


# --- matching -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """Where a target matched: text[start:end], and how to re-indent content put there."""

    start: int
    end: int
    indent: _Indent | None = None


@dataclass(frozen=True)
class _Indent:
    """How a normalised match's lines were indented in the target and in the file."""

    pairs: tuple[tuple[str, str], ...]  # (target's, file's) for each matched non-blank line
    base: tuple[str, str]  # the first pair: for lines less indented than every target line

    def apply(self, line: str) -> str:
        """A content line with the file's indentation in place of the target's."""
        body = line.lstrip(" \t")
        mine = line[: len(line) - len(body)]
        fits = [(old, new) for old, new in self.pairs if mine.startswith(old)]
        if not fits:
            return self.base[1] + body
        old, new = max(fits, key=lambda pair: len(pair[0]))
        return new + mine[len(old):] + body


@dataclass(frozen=True)
class _Normal:
    """A normalised text, and for each of its characters the original span it stands for."""

    text: str
    starts: list[int]
    ends: list[int]


_BREAK = re.compile(r"\r\n|\r|\n")
_TOKEN = re.compile(r"[ \t]+|[^ \t]+")


def _find(text: str, target: str) -> tuple[list[_Span], str]:
    """Every non-overlapping match of target, and how: 'exact', else 'normalised'."""
    spans, pos = [], text.find(target)
    while pos >= 0:
        spans.append(_Span(pos, pos + len(target)))
        pos = text.find(target, pos + len(target))
    return (spans, "exact") if spans else (_normalised_spans(text, target), "normalised")


def _normalise(text: str) -> _Normal:
    """text under the module's rules: LF breaks, no indentation or trailing blanks, one space."""
    chunks: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for brk in _BREAK.finditer(text):
        _normalise_line(text, pos, brk.start(), (chunks, starts, ends))
        chunks.append("\n")
        starts.append(brk.start())
        ends.append(brk.end())
        pos = brk.end()
    _normalise_line(text, pos, len(text), (chunks, starts, ends))
    return _Normal("".join(chunks), starts, ends)


def _normalise_line(text: str, start: int, end: int,
                    into: tuple[list[str], list[int], list[int]]) -> None:
    """Add one line (without its break) to a normalised text being built."""
    chunks, starts, ends = into
    line = text[start:end]
    body = line.strip(" \t")
    offset = start + len(line) - len(line.lstrip(" \t"))
    for token in _TOKEN.finditer(body):
        first, last = offset + token.start(), offset + token.end()
        if token.group()[0] in " \t":
            chunks.append(" ")
            starts.append(first)
            ends.append(last)
        else:
            chunks.append(token.group())
            starts.extend(range(first, last))
            ends.extend(range(first + 1, last + 1))


def _normalised_spans(text: str, target: str) -> list[_Span]:
    """The matches of the normalised target in the normalised text, as original spans."""
    plain = _BREAK.sub("\n", target)
    want = _normalise(plain).text
    if not want.strip("\n"):
        return []  # a target of blank lines only would match between any two lines
    lines = plain.split("\n")
    lead = lines[0] != lines[0].lstrip(" \t") and bool(lines[0].strip(" \t"))
    trail = lines[-1] != lines[-1].rstrip(" \t") and bool(lines[-1].strip(" \t"))
    norm = _normalise(text)
    spans, found = [], norm.text.find(want)
    while found >= 0:
        end = found + len(want)
        if _fits(norm.text, found, end, lead, trail):
            spans.append(_to_span(text, norm, found, end, lead, lines))
            found = norm.text.find(want, end)
        else:
            found = norm.text.find(want, found + 1)
    return spans


def _fits(norm: str, start: int, end: int, lead: bool, trail: bool) -> bool:
    """Whether a match honours the target's leading and trailing whitespace as boundaries."""
    before = start == 0 or norm[start - 1] in " \n"
    after = end == len(norm) or norm[end] in " \n"
    return (before or not lead) and (after or not trail)


def _to_span(text: str, norm: _Normal, start: int, end: int, lead: bool,
             lines: list[str]) -> _Span:
    """The original span of a normalised match, with how its lines are indented."""
    begins_line = start == 0 or norm.text[start - 1] == "\n"
    first = norm.starts[start]
    span_start = _line_start(text, first) if lead and begins_line else first
    return _Span(span_start, norm.ends[end - 1], _indent(text, norm, start, begins_line, lines))


def _indent(text: str, norm: _Normal, start: int, begins_line: bool,
            lines: list[str]) -> _Indent | None:
    """The (target, file) indentation of each matched non-blank line that begins a file
    line; None when there is none or they all agree."""
    pairs: list[tuple[str, str]] = []
    pos = start
    for i, line in enumerate(lines):
        if i:
            pos = norm.text.index("\n", pos) + 1
        if line.strip(" \t") and (i or begins_line):
            first = norm.starts[pos]
            body = line.lstrip(" \t")
            pairs.append((line[: len(line) - len(body)], text[_line_start(text, first):first]))
    if all(old == new for old, new in pairs):
        return None
    return _Indent(tuple(pairs), pairs[0])


# --- failures -------------------------------------------------------------------------------

_EXCERPT_CHARS = 2000
_LISTED_FILES = 100  # of the skill's paths named when an edit's file does not exist
_NEAREST_LINES = 20_000  # lines of a file searched for the nearest text
_COMPARE_CHARS = 1000  # of each text difflib compares (its cost grows with the square)
_CANDIDATES = 5  # windows kept per way of finding them


def _failed(edit: Edit, reason: str, message: str, hint: str, **extra: Any) -> EditFailed:
    """The EditFailed for one edit; `extra` carries the edit's index, file and the reason."""
    body = {"edit": edit.index, "op": edit.op, "path": edit.path, "reason": reason}
    return EditFailed(f"{edit.label}: {message}", extra={**body, **extra, "hint": hint})


def _missing(edit: Edit, text: str) -> EditFailed:
    """The target occurs nowhere, even normalised: point at the most similar text."""
    nearest = _nearest(text, edit.target or "")
    where = (f"; the nearest text starts at line {nearest['line']} "
             f"({nearest['ratio']:.0%} similar)" if nearest else "")
    return _failed(edit, "missing", f"the target text is not in the file{where}",
                   "Copy the target exactly from the current version of the file (the nearest "
                   "text shows what is there now) and resend.", nearest=nearest)


def _ambiguous(edit: Edit, text: str, spans: Sequence[_Span], how: str) -> EditFailed:
    """The target occurs several times without replace_all: list where."""
    lines = [line_of(text, span.start) for span in spans]
    shown = ", ".join(map(str, lines[:20])) + (", ..." if len(lines) > 20 else "")
    return _failed(edit, "ambiguous", f"the target text occurs {len(spans)} times "
                   f"(lines {shown})", "Include more of the surrounding text so the target "
                   "occurs once, or set replace_all to change every occurrence.",
                   lines=lines, match=how)


def _nearest(text: str, target: str) -> dict[str, Any] | None:
    """The window of the target's line count most similar to it (difflib, blanks squashed)."""
    lines = _BREAK.split(text)[:_NEAREST_LINES]
    have = [_squash(line) for line in lines]
    want = [_squash(line) for line in _BREAK.split(target.strip("\r\n"))]
    matcher = SequenceMatcher(None, autojunk=False)
    matcher.set_seq2("\n".join(want)[:_COMPARE_CHARS])
    best, at = 0.0, 0
    for start in _candidates(have, want):
        matcher.set_seq1("\n".join(have[start:start + len(want)])[:_COMPARE_CHARS])
        ratio = matcher.ratio()
        best, at = (ratio, start) if ratio > best else (best, at)
    if not best:
        return None
    excerpt = "\n".join(lines[at:at + len(want)])
    return {"line": at + 1, "text": excerpt[:_EXCERPT_CHARS], "ratio": round(best, 3)}


def _candidates(have: list[str], want: list[str]) -> list[int]:
    """The window starts worth comparing: where most target lines occur unchanged, and where
    windows align the file lines most like the target's first, last and longest lines."""
    where: dict[str, list[int]] = defaultdict(list)
    for j, line in enumerate(have):
        if line:
            where[line].append(j)
    hits: Counter[int] = Counter()
    for k, line in enumerate(want):
        hits.update(j - k for j in where.get(line, [])[:_NEAREST_LINES // 10])
    picks = [start for start, _ in hits.most_common(_CANDIDATES)]
    filled = [k for k, line in enumerate(want) if line]
    anchors = {filled[0], filled[-1], max(filled, key=lambda k: len(want[k]))} if filled else set()
    picks += [j - k for k in anchors for j in _most_like(have, want[k])]
    last = max(0, len(have) - len(want))
    return sorted({min(max(0, start), last) for start in picks})


def _most_like(lines: list[str], anchor: str) -> list[int]:
    """The indexes of the _CANDIDATES lines most similar to anchor (difflib's ratio)."""
    matcher = SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(anchor[:_COMPARE_CHARS])
    top: list[tuple[float, int]] = []  # a min-heap of (ratio, -index): earlier wins ties
    for j, line in enumerate(lines):
        floor = top[0][0] if len(top) == _CANDIDATES else 0.0
        matcher.set_seq1(line[:_COMPARE_CHARS])
        if matcher.real_quick_ratio() > floor and matcher.quick_ratio() > floor:
            heapq.heappush(top, (matcher.ratio(), -j))
            if len(top) > _CANDIDATES:
                heapq.heappop(top)
    return [-j for _, j in top]


def _squash(line: str) -> str:
    """A line without indentation or trailing blanks, runs of blanks as one space."""
    return re.sub(r"[ \t]+", " ", line.strip(" \t"))
