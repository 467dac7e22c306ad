"""Compare two versions of a skill (issue 14): `/{namespace}/{name}/diff/{old}...{new}`.

The address is GitHub's compare form (`base...head`), so a comparison is a link to share;
`/{namespace}/{name}/diff?from=A&to=B` (what the compare form sends) redirects to it. Either
order works: the page shows what changed from the first version to the second and says
which is older. `?view=unified` (the default) or `?view=split` (side by side); both are
plain server-rendered HTML.

Both versions are read through the access policy (`registry.get_skill`, then
`registry.get_version` for a member's version still waiting for review), so a private
skill is a 404 to an outsider. Each file's diff is `learning.merge.unified_diff` of that file
alone, classified by `pages.diff_lines`; this module only adds line numbers, pairs lines for
the side-by-side view, detects renames (same bytes, new path) and mode changes (the
executable bit), and caps the work: a file over `MAX_FILE_BYTES` or `MAX_FILE_LINES` is not
compared, and once a page holds `MAX_PAGE_LINES` diff lines or has compared
`MAX_PAGE_COMPARED` lines (or a file's diff is over `MAX_FILE_DIFF_LINES`), the rest says
"too large to show" with links to the raw files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..domain import VersionRow
from ..errors import BadRequest, NotFound
from ..learning.merge import unified_diff
from ..learning.text import decode
from ..services import Registry, SkillDetail, version_of
from ..skill import semver
from ..skill.bundle import Bundle
from .auth import request_principal
from .pages import diff_lines

VIEWS = ("unified", "split")
SEPARATOR = "..."
MAX_FILE_BYTES = 512 * 1024     # a larger file (either side) is not compared
MAX_FILE_LINES = 20_000         # nor a longer one: difflib's time grows with lines
MAX_FILE_DIFF_LINES = 2_000     # a file's diff longer than this is not shown
MAX_PAGE_LINES = 6_000          # diff lines shown on one page, all files together
MAX_PAGE_COMPARED = 60_000      # lines compared for one page (both sides of every file)
MAX_VERSION_TEXT = 100          # of a version quoted back in an error
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


@dataclass(frozen=True)
class Line:
    """One line of a file's diff: kind is add, del, context or hunk; numbers are 1-based
    (None on the side that lacks the line); `no_newline` marks a last line without one."""

    kind: str
    old: int | None
    new: int | None
    text: str
    no_newline: bool = False


@dataclass(frozen=True)
class SplitRow:
    """A row of the side-by-side view: the old line left, the new line right (None: blank),
    or one hunk header across both."""

    left: Line | None
    right: Line | None
    hunk: str | None = None


@dataclass
class FileChange:
    """How one file differs between two versions."""

    path: str
    status: str                       # added, removed, changed, renamed, mode
    old_path: str | None = None       # a renamed file's path in the old version
    old_size: int | None = None
    new_size: int | None = None
    old_exec: bool | None = None
    new_exec: bool | None = None
    binary: bool = False
    too_large: str | None = None      # why the lines are not shown
    added: int | None = 0             # None: not counted (not compared)
    removed: int | None = 0
    lines: list[Line] = field(default_factory=list)

    @property
    def mode_changed(self) -> bool:
        return None not in (self.old_exec, self.new_exec) and self.old_exec != self.new_exec

    @property
    def split(self) -> list[SplitRow]:
        return split_rows(self.lines)


# -- comparing two bundles -------------------------------------------------------------------


def compare(old: Bundle, new: Bundle) -> list[FileChange]:
    """Every file that differs between two versions, by path, with its lines (capped)."""
    changes = _changed_files(old, new)
    budget = Budget()
    for change in changes:
        _fill_lines(change, old, new, budget)
    return changes


@dataclass
class Budget:
    """What one page may still spend: diff lines to show, and lines to compare (old and new
    sides added up: difflib's time)."""

    shown: int = MAX_PAGE_LINES
    compared: int = MAX_PAGE_COMPARED


def _changed_files(old: Bundle, new: Bundle) -> list[FileChange]:
    """The changed files without their lines; a removed file whose bytes reappear under a
    new path is a rename (git's 100 % similarity)."""
    removed = sorted(old.files.keys() - new.files.keys())
    added = sorted(new.files.keys() - old.files.keys())
    renamed: dict[str, str] = {}  # new path -> old path
    for path in added:
        twin = next((p for p in removed if p not in renamed.values()
                     and old.files[p] == new.files[path]), None)
        if twin is not None:
            renamed[path] = twin
    changes = [_change(path, "removed", old, new) for path in removed
               if path not in renamed.values()]
    for path in added:
        if path in renamed:
            changes.append(_change(path, "renamed", old, new, renamed[path]))
        else:
            changes.append(_change(path, "added", old, new))
    for path in sorted(old.files.keys() & new.files.keys()):
        if old.files[path] != new.files[path]:
            changes.append(_change(path, "changed", old, new))
        elif (path in old.executables) != (path in new.executables):
            changes.append(_change(path, "mode", old, new))
    return sorted(changes, key=lambda c: c.path)


def _change(path: str, status: str, old: Bundle, new: Bundle,
            old_path: str | None = None) -> FileChange:
    before = None if status == "added" else (old_path or path)
    after = None if status == "removed" else path
    return FileChange(
        path=path, status=status, old_path=old_path,
        old_size=len(old.files[before]) if before else None,
        new_size=len(new.files[after]) if after else None,
        old_exec=(before in old.executables) if before else None,
        new_exec=(after in new.executables) if after else None)


def _fill_lines(change: FileChange, old: Bundle, new: Bundle, budget: Budget) -> None:
    """Compute the change's lines (and counts) within the page's budget, or say why not."""
    if change.status in ("renamed", "mode"):
        change.added = change.removed = None  # same bytes: no lines to count
        return
    before = old.files.get(change.path) if change.status != "added" else None
    after = new.files.get(change.path) if change.status != "removed" else None
    sides = [data for data in (before, after) if data is not None]
    texts = [decode(data) for data in sides]
    if any(text is None for text in texts):
        change.binary, change.added, change.removed = True, None, None
        return
    counts = [(text or "").count("\n") + 1 for text in texts]
    size = sum(counts)
    change.too_large = _not_compared(sides, counts, budget)
    if change.too_large:
        change.added = change.removed = None
        return
    budget.compared -= size
    diff = unified_diff({change.path: before} if before is not None else {},
                        {change.path: after} if after is not None else {})
    lines = numbered(diff_lines(diff))
    change.added = sum(line.kind == "add" for line in lines)
    change.removed = sum(line.kind == "del" for line in lines)
    room = min(MAX_FILE_DIFF_LINES, budget.shown)
    if len(lines) > room:
        change.too_large = (f"its diff is {len(lines):,} lines, more than this page shows "
                            f"({room:,})")
        return
    change.lines = lines
    budget.shown -= len(lines)


def _not_compared(sides: list[bytes], counts: list[int], budget: Budget) -> str | None:
    """Why a text file (its sides' bytes and line counts) is not compared here, or None."""
    if any(len(data) > MAX_FILE_BYTES for data in sides) or max(counts) > MAX_FILE_LINES:
        return (f"a version of this file is over {MAX_FILE_BYTES // 1024} KiB or "
                f"{MAX_FILE_LINES:,} lines, too large to compare here")
    if budget.shown <= 0 or sum(counts) > budget.compared:
        return "this page has already compared as much as it shows at once"
    return None


def numbered(kinds: list[tuple[str, str]]) -> list[Line]:
    """`pages.diff_lines` output as lines with old and new numbers; file headers dropped
    (the page names the file) and git's "No newline" note folded into its line."""
    out: list[Line] = []
    old = new = 0
    for kind, text in kinds:
        if kind == "file":
            continue
        if kind == "hunk":
            found = _HUNK.match(text)
            old, new = (int(found[1]), int(found[2])) if found else (old, new)
            out.append(Line("hunk", None, None, text))
        elif kind == "note":
            if out:
                out[-1] = replace(out[-1], no_newline=True)
        elif kind == "add":
            out.append(Line("add", None, new, text[1:]))
            new += 1
        elif kind == "del":
            out.append(Line("del", old, None, text[1:]))
            old += 1
        else:
            out.append(Line("context", old, new, text[1:]))
            old, new = old + 1, new + 1
    return out


def split_rows(lines: list[Line]) -> list[SplitRow]:
    """Side-by-side rows: a run of removed lines beside the added lines that follow it."""
    rows: list[SplitRow] = []
    dels: list[Line] = []
    adds: list[Line] = []

    def flush() -> Iterator[SplitRow]:
        for i in range(max(len(dels), len(adds))):
            yield SplitRow(dels[i] if i < len(dels) else None,
                           adds[i] if i < len(adds) else None)
        dels.clear()
        adds.clear()

    for line in lines:
        if line.kind == "del":
            if adds:  # a removal after additions starts a new run
                rows.extend(flush())
            dels.append(line)
        elif line.kind == "add":
            adds.append(line)
        else:
            rows.extend(flush())
            rows.append(SplitRow(None, None, line.text) if line.kind == "hunk"
                        else SplitRow(line, line))
    rows.extend(flush())
    return rows


# -- the page ---------------------------------------------------------------------------------


def routes(registry: Registry, templates: Jinja2Templates) -> list[Route]:
    pages = DiffPages(registry, templates)
    base = "/{namespace:namespace}/{name}/diff"
    return [Route(base, pages.pick, methods=["GET"]),
            Route(base + "/{spec}", pages.diff, methods=["GET"])]


def diff_url(namespace: str, name: str, old: str, new: str, view: str = "unified") -> str:
    """The page comparing two versions (the default view adds no query)."""
    path = f"/{namespace}/{name}/diff/{quote(old, safe='')}{SEPARATOR}{quote(new, safe='')}"
    return path if view == "unified" else f"{path}?{urlencode({'view': view})}"


def _shown(version: str) -> str:
    return version if len(version) <= MAX_VERSION_TEXT else version[:MAX_VERSION_TEXT] + "…"


class DiffPages:
    def __init__(self, registry: Registry, templates: Jinja2Templates) -> None:
        self.registry = registry
        self.templates = templates

    def pick(self, request: Request) -> Response:
        """The compare form's GET: redirect to the comparison's own address."""
        p, query = request.path_params, request.query_params
        old, new, view = query.get("from", "").strip(), query.get("to", "").strip(), \
            _view(query.get("view"))
        # read first: a private skill is a 404 here too, not a redirect that names it
        self.registry.get_skill(p["namespace"], p["name"], request_principal(
            self.registry, request))
        if not old or not new:
            raise BadRequest("choose two versions to compare",
                             extra={"hint": "give both from and to, e.g. "
                                            "?from=1.0.0&to=1.1.0"})
        return RedirectResponse(diff_url(p["namespace"], p["name"], old, new, view),
                                status_code=303)

    def diff(self, request: Request) -> Response:
        p = request.path_params
        namespace, name, spec = p["namespace"], p["name"], p["spec"]
        view = _view(request.query_params.get("view"))
        old_text, sep, new_text = spec.partition(SEPARATOR)
        principal = request_principal(self.registry, request)
        detail = self.registry.get_skill(namespace, name, principal)
        if not sep or not old_text or not new_text:
            raise NotFound(f"{_shown(spec)!r} is not two versions of {namespace}/{name}",
                           extra={"hint": f"compare two versions as /{namespace}/{name}"
                                          f"/diff/OLD...NEW, e.g. "
                                          f"{_example(detail, namespace, name)}"})
        old_row = self._version(detail, old_text, request)
        new_row = self._version(detail, new_text, request)
        changes = compare(self.registry.bundle(namespace, old_row),
                          self.registry.bundle(namespace, new_row))
        return self.templates.TemplateResponse(request, "diff.html", {
            "skill": detail.skill, "old": old_row, "new": new_row, "view": view,
            "changes": changes, "order": _order(old_row.version, new_row.version),
            "added": sum(c.added or 0 for c in changes),
            "removed": sum(c.removed or 0 for c in changes),
            "versions": [v.version for v in detail.versions],
            "urls": self._urls(namespace, name, old_row.version, new_row.version)})

    def _version(self, detail: SkillDetail, version: str, request: Request) -> VersionRow:
        """A released version (or "latest"), or a member's version waiting for review; a
        404 that names the version and lists the skill's versions."""
        try:
            return version_of(detail, version)
        except NotFound:
            pass
        skill = detail.skill
        try:
            return self.registry.get_version(skill.namespace, skill.name, version,
                                             request_principal(self.registry, request))[1]
        except NotFound:
            listed = ", ".join(v.version for v in detail.versions[:20])
            raise NotFound(f"{skill.namespace}/{skill.name} has no version "
                           f"{_shown(version)!r}",
                           extra={"hint": f"its versions: {listed}"}) from None

    @staticmethod
    def _urls(namespace: str, name: str, old: str, new: str) -> dict[str, Any]:
        api = f"/api/v1/skills/{namespace}/{name}/versions"
        return {
            "skill": f"/{namespace}/{name}", "pick": f"/{namespace}/{name}/diff",
            "unified": diff_url(namespace, name, old, new),
            "split": diff_url(namespace, name, old, new, "split"),
            "swap": diff_url(namespace, name, new, old),
            "old_raw": f"{api}/{quote(old, safe='')}/files/",
            "new_raw": f"{api}/{quote(new, safe='')}/files/",
            "old_page": f"/{namespace}/{name}/v/{quote(old, safe='')}/files/",
            "new_page": f"/{namespace}/{name}/v/{quote(new, safe='')}/files/",
        }


def _view(value: str | None) -> str:
    if value in (None, ""):
        return "unified"
    if value not in VIEWS:
        raise BadRequest(f"view {_shown(value)!r} is not a diff view",
                         extra={"hint": "use view=unified or view=split"})
    return value


def _order(old: str, new: str) -> str:
    """"same", "forward" (old is the older) or "back" (the first version is the newer)."""
    if old == new:
        return "same"
    return "back" if _key(old) > _key(new) else "forward"


def _key(version: str) -> tuple[Any, ...]:
    parsed = semver.parse(version)
    return (1, parsed.sort_key()) if parsed else (0, version)


def _example(detail: SkillDetail, namespace: str, name: str) -> str:
    versions = [v.version for v in detail.versions]
    if len(versions) >= 2:
        return diff_url(namespace, name, versions[1], versions[0])
    return diff_url(namespace, name, "1.0.0", "1.1.0")
