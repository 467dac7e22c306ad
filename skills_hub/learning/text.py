"""The text of a skill file: UTF-8 decoding, binary detection, lines that keep their endings."""

from __future__ import annotations

CRLF = "\r\n"
LF = "\n"


def decode(data: bytes) -> str | None:
    """The UTF-8 text of a file, or None when it is binary (a NUL byte, or not UTF-8)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def split_lines(text: str) -> list[str]:
    """The lines of text, each keeping its '\\n'; a last line without one is kept as is."""
    parts = text.split(LF)
    lines = [part + LF for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def line_of(text: str, offset: int) -> int:
    """The 1-based number of the line holding text[offset] (LF, CRLF or lone CR breaks)."""
    crlf = text.count(CRLF, 0, offset)
    return text.count(LF, 0, offset) + text.count("\r", 0, offset) - crlf + 1


def line_ending(text: str) -> str:
    """The file's line ending: CRLF when most of its line breaks are CRLF, else LF."""
    return CRLF if 2 * text.count(CRLF) > text.count(LF) else LF


def with_line_ending(content: str, ending: str) -> str:
    """content with every CRLF or LF line break written as ending."""
    plain = content.replace(CRLF, LF)
    return plain if ending == LF else plain.replace(LF, ending)
