"""Three-way merges of skill files, rebasing a proposal onto a skill's current files, diffs.

`merge3` is line based, with diff3 semantics. Each side is aligned with the base by difflib
(SequenceMatcher, autojunk off, so blank lines of long files stay matchable); a run of base
lines that both sides keep, aligned, is a sync region. Between two sync regions, a change
made on one side only is taken from that side, the same change made on both sides is taken
once, and different changes are a conflict. Changes to touching lines (no unchanged line
between them) fall into one region and so conflict, as in diff3 and git. Lines keep their
endings, so a last line without a line break differs from the same line with one.

A conflict is written in diff3 style: `<<<<<<< ours`, ours' lines, `||||||| base`, the
base's, `=======`, theirs', `>>>>>>> theirs` (each marker on its own line).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skills_hub.errors import MergeConflict
from skills_hub.learning.text import decode, split_lines

EXCERPT_CHARS = 2000  # of each side of a conflict in an error body


@dataclass(frozen=True)
class Lines:
    """A run of one side's lines: 1-based first and last line (end = start - 1: empty)."""

    start: int
    end: int
    text: str

    def to_dict(self, limit: int = EXCERPT_CHARS) -> dict[str, Any]:
        """JSON form, the text cut to limit characters (then `truncated` is true)."""
        body: dict[str, Any] = {"start": self.start, "end": self.end, "text": self.text[:limit]}
        if len(self.text) > limit:
            body["truncated"] = True
        return body


@dataclass(frozen=True)
class Conflict:
    """A region both sides changed differently: the base's lines and each side's."""

    base: Lines
    ours: Lines
    theirs: Lines

    def to_dict(self) -> dict[str, Any]:
        """JSON form, each side's text cut to EXCERPT_CHARS."""
        return {"base": self.base.to_dict(), "ours": self.ours.to_dict(),
                "theirs": self.theirs.to_dict()}


@dataclass(frozen=True)
class MergeResult:
    """The merged text (with conflict markers where they are) and the conflicts."""

    text: str
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when nothing conflicted."""
        return not self.conflicts


# --- merge3 ---------------------------------------------------------------------------------

_Region = tuple[int, int, int, int, int, int]  # base, ours, theirs: start and end of each


def merge3(base: str, ours: str, theirs: str, *,
           labels: tuple[str, str] = ("ours", "theirs")) -> MergeResult:
    """Merge two texts that both changed from base (see the module docstring); labels name
    ours and theirs on the conflict markers."""
    sides = (split_lines(base), split_lines(ours), split_lines(theirs))
    out: list[str] = []
    conflicts: list[Conflict] = []
    done = (0, 0, 0)  # where the previous sync region ended, in base, ours, theirs
    for region in _sync_regions(*sides):
        conflict = _merge_chunk(sides, done, (region[0], region[2], region[4]), out, labels)
        if conflict is not None:
            conflicts.append(conflict)
        out.extend(sides[0][region[0]:region[1]])
        done = (region[1], region[3], region[5])
    return MergeResult("".join(out), conflicts)


def _sync_regions(base: list[str], ours: list[str], theirs: list[str]) -> Iterator[_Region]:
    """The runs of base lines both sides keep, aligned, in order; then an empty end region."""
    mine = _matching_blocks(base, ours)
    other = _matching_blocks(base, theirs)
    i = j = 0
    while i < len(mine) and j < len(other):
        (b1, o1, n1), (b2, t2, n2) = mine[i], other[j]
        low, high = max(b1, b2), min(b1 + n1, b2 + n2)
        if low < high:
            yield (low, high, o1 + low - b1, o1 + high - b1, t2 + low - b2, t2 + high - b2)
        if b1 + n1 < b2 + n2:
            i += 1
        else:
            j += 1
    yield (len(base), len(base), len(ours), len(ours), len(theirs), len(theirs))


def _matching_blocks(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int]]:
    """difflib's matching blocks of two line lists (a's start, b's start, length)."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return [(m.a, m.b, m.size) for m in matcher.get_matching_blocks()]


def _merge_chunk(sides: tuple[list[str], list[str], list[str]], starts: tuple[int, int, int],
                 ends: tuple[int, int, int], out: list[str],
                 labels: tuple[str, str]) -> Conflict | None:
    """Merge the lines between two sync regions into out; the conflict there, if any."""
    base, ours, theirs = (side[start:end] for side, start, end in zip(sides, starts, ends,
                                                                        strict=True))
    if ours == theirs or theirs == base:
        out.extend(ours)
        return None
    if ours == base:
        out.extend(theirs)
        return None
    out.extend(_markers(base, ours, theirs, labels))
    return Conflict(*(Lines(start + 1, end, "".join(chunk)) for start, end, chunk
                      in zip(starts, ends, (base, ours, theirs), strict=True)))


def _markers(base: list[str], ours: list[str], theirs: list[str],
             labels: tuple[str, str]) -> list[str]:
    """A conflict written in diff3 style, every marker on a line of its own."""
    return [f"<<<<<<< {labels[0]}\n", *_closed(ours), "||||||| base\n", *_closed(base),
            "=======\n", *_closed(theirs), f">>>>>>> {labels[1]}\n"]


def _closed(lines: list[str]) -> list[str]:
    """lines whose last one ends with a line break, so a marker can follow."""
    if lines and not lines[-1].endswith("\n"):
        return [*lines[:-1], lines[-1] + "\n"]
    return lines


# --- rebase ---------------------------------------------------------------------------------

_SIDES = {"ours": "the current version of the skill", "theirs": "the proposal"}
_REBASE_HINT = ("Fetch the skill's current version, apply your edits to it again, and resend "
                "them with that version as the base.")


def rebase(base: Mapping[str, bytes], proposed: Mapping[str, bytes],
           current: Mapping[str, bytes]) -> dict[str, bytes]:
    """current with the changes the proposal made to base (added, removed, modified files).

    A file changed on one side only is taken from that side; a text file changed on both is
    merged with merge3 (ours: current, theirs: proposed).

    Raises:
        MergeConflict: listing every conflict of every file; nothing is returned then.
    """
    result = dict(current)
    conflicts: list[dict[str, Any]] = []
    for path in sorted(base.keys() | proposed.keys() | current.keys()):
        merged = _rebase_file(path, base.get(path), proposed.get(path), current.get(path),
                              conflicts)
        if merged is None:
            result.pop(path, None)
        else:
            result[path] = merged
    if conflicts:
        raise _conflict_error(conflicts)
    return result


def _rebase_file(path: str, base: bytes | None, proposed: bytes | None,
                 current: bytes | None, conflicts: list[dict[str, Any]]) -> bytes | None:
    """One file of the rebase (None: absent), adding its conflicts to conflicts."""
    if proposed == base:
        return current
    if current in (base, proposed):
        return proposed
    if proposed is None or current is None:
        conflicts.append(_file_conflict(path, "deleted", base, current, proposed))
        return current
    texts = [decode(data) if data is not None else "" for data in (base, current, proposed)]
    if texts[0] is None or texts[1] is None or texts[2] is None:
        conflicts.append(_file_conflict(path, "binary", base, current, proposed))
        return current
    merged = merge3(texts[0], texts[1], texts[2], labels=("current", "proposed"))
    conflicts += [{"path": path, "kind": "content", **c.to_dict()} for c in merged.conflicts]
    return merged.text.encode("utf-8")


def _file_conflict(path: str, kind: str, base: bytes | None, current: bytes | None,
                   proposed: bytes | None) -> dict[str, Any]:
    """A conflict over a whole file: one side deleted it, or it is binary."""
    return {"path": path, "kind": kind, "base": _file_state(base),
            "ours": _file_state(current), "theirs": _file_state(proposed)}


def _file_state(data: bytes | None) -> dict[str, Any] | None:
    """A file's size and sha256, or None when it is absent."""
    if data is None:
        return None
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _conflict_error(conflicts: list[dict[str, Any]]) -> MergeConflict:
    """The MergeConflict that lists every conflict."""
    paths = sorted({c["path"] for c in conflicts})
    count = len(conflicts)
    message = (f"the proposal conflicts with changes made since its base: {count} "
               f"conflict{'s' if count > 1 else ''} in {', '.join(paths)}")
    return MergeConflict(message, extra={"conflicts": conflicts, "sides": _SIDES,
                                         "hint": _REBASE_HINT})


# --- diffs ----------------------------------------------------------------------------------


def unified_diff(old: Mapping[str, bytes], new: Mapping[str, bytes], *,
                 context: int = 3) -> str:
    """A git-style unified diff of every file that differs (added and removed included)."""
    paths = sorted(path for path in old.keys() | new.keys() if old.get(path) != new.get(path))
    return "".join(_file_diff(path, old.get(path), new.get(path), context) for path in paths)


def _file_diff(path: str, old: bytes | None, new: bytes | None, context: int) -> str:
    """One file's part of a git-style diff."""
    head = [f"diff --git a/{path} b/{path}\n"]
    if old is None:
        head.append("new file mode 100644\n")
    elif new is None:
        head.append("deleted file mode 100644\n")
    names = (f"a/{path}" if old is not None else "/dev/null",
             f"b/{path}" if new is not None else "/dev/null")
    before = decode(old) if old is not None else ""
    after = decode(new) if new is not None else ""
    if before is None or after is None:
        return "".join(head) + f"Binary files {names[0]} and {names[1]} differ\n"
    lines = difflib.unified_diff(split_lines(before), split_lines(after), *names, n=context)
    return "".join(head) + "".join(map(_diff_line, lines))


def _diff_line(line: str) -> str:
    """A diff line; a last line without a break gets git's marker."""
    return line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
