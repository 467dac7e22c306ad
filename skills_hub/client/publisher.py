"""Publishing local folders: find the skills in a folder or repo, publish each, report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skills_hub.errors import HubError, NotFound, Problem
from skills_hub.skill import semver
from skills_hub.skill.bundle import SKILL_MD, from_directory

from .errors import ServerError, Unreachable
from .hub import HubClient

_SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", "venv"})
MAX_DEPTH = 3


@dataclass
class PublishResult:
    """What happened to one skill folder."""

    folder: Path
    name: str
    status: str  # "published", "unchanged" or "refused"
    version: str | None = None
    message: str = ""
    code: str = ""
    problems: list[Problem] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = ""  # the checks verdict: safe, caution, dangerous (refused)
    findings: list[dict[str, Any]] = field(default_factory=list)  # those that set it
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # near-duplicate skills

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "name": self.name, "status": self.status,
                "version": self.version, "message": self.message, "code": self.code,
                "problems": [p.to_dict() for p in self.problems], "warnings": self.warnings,
                "verdict": self.verdict, "findings": self.findings,
                "duplicates": self.duplicates}


Progress = Callable[[int, int, PublishResult], None]


def skill_folders(root: Path) -> list[Path]:
    """`root` itself when it is a skill, else its sub-folders that are."""
    if (root / SKILL_MD).is_file():
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / SKILL_MD).is_file())
    if not found:
        raise NotFound(f"no {SKILL_MD} in {root} or its sub-folders",
                       extra={"hint": "pass a skill folder or a folder of skill folders"})
    return found


def repo_skill_folders(root: Path) -> list[Path]:
    """The skills of a repo: skills/*/SKILL.md, else any */SKILL.md up to 3 levels deep."""
    found = sorted(p.parent for p in (root / "skills").glob(f"*/{SKILL_MD}") if p.is_file())
    if not found:
        found = sorted(_walk_for_skills(root, 1))
    if not found:
        raise NotFound(f"no skills/*/{SKILL_MD} (nor any */{SKILL_MD} up to {MAX_DEPTH} "
                       f"levels deep) in {root}")
    return found


def _walk_for_skills(folder: Path, depth: int) -> list[Path]:
    out: list[Path] = []
    for child in sorted(folder.iterdir()):
        if not child.is_dir() or child.is_symlink() or child.name in _SKIP_DIRS:
            continue
        if (child / SKILL_MD).is_file():
            out.append(child)
        elif depth < MAX_DEPTH:
            out.extend(_walk_for_skills(child, depth + 1))
    return out


def publish_folders(hub: HubClient, namespace: str, folders: list[Path], *,
                    version: str | None = None, progress: Progress | None = None,
                    dry_run: bool = False) -> list[PublishResult]:
    """Publish each folder (with `dry_run`, only check it: nothing is stored); a refusal
    is recorded and the rest go on. Failures that would refuse every folder alike
    (unreachable server, bad token) stop the run."""
    results = []
    for index, folder in enumerate(folders, start=1):
        result = publish_one(hub, namespace, folder, version, dry_run)
        results.append(result)
        if progress:
            progress(index, len(folders), result)
    return results


def publish_one(hub: HubClient, namespace: str, folder: Path, version: str | None,
                dry_run: bool = False) -> PublishResult:
    """Publish (or only check) one folder; return its result, or raise a failure that is
    not its own. A check's status is "checked", or "checked-for-review" when publishing it
    would wait for a maintainer."""
    try:
        bundle = from_directory(folder)
        body = hub.publish(namespace, bundle, version, dry_run=dry_run)
    except Unreachable:
        raise
    except ServerError as exc:
        if exc.status in (401, 403):
            raise
        return _refused(folder, exc)
    except HubError as exc:  # refused locally while reading the folder
        return _refused(folder, exc)
    if body["status"] == "unchanged" and version is not None and not _same_version(
            version, body.get("version")):
        # The registry keeps one version per content: the version asked for was not made.
        return PublishResult(
            folder, body["name"], "refused", body.get("version"),
            message=f"{version} was not published: the content is the same as the published "
                    f"version {body.get('version')} (change a file to publish a new version)",
            code="version_not_published", verdict=str(body.get("verdict") or ""))
    status = str(body["status"])
    if status == "checked" and body.get("for_review"):
        status = "checked-for-review"
    return PublishResult(folder, body["name"], status, body.get("version"),
                         warnings=list(body.get("warnings") or []),
                         verdict=str(body.get("verdict") or ""),
                         findings=flagged_findings(body.get("report")),
                         duplicates=list(body.get("duplicates") or []))


def _same_version(asked: str, existing: object) -> bool:
    parsed = semver.parse(asked)
    return (str(parsed) if parsed else asked) == existing


def _refused(folder: Path, exc: HubError) -> PublishResult:
    report = exc.extra.get("report")
    return PublishResult(folder, folder.name, "refused", message=exc.message,
                         code=exc.code, problems=list(exc.problems),
                         verdict=str(report.get("verdict", "")) if isinstance(report, dict)
                         else "", findings=flagged_findings(report))


def flagged_findings(report: Any) -> list[dict[str, Any]]:
    """The findings of a checks report that set its verdict (high and critical, not excepted)."""
    if not isinstance(report, dict):
        return []
    return [f for f in report.get("findings") or []
            if isinstance(f, dict) and f.get("severity") in ("high", "critical")
            and not f.get("exception")]
