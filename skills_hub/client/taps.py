"""Taps: namespaces on a server or git repos whose skills install by bare name."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from skills_hub.errors import BadRequest, HubError, InvalidSkill, NotFound
from skills_hub.skill.bundle import from_directory
from skills_hub.skill.manifest import parse_manifest

from . import git
from .config import ClientConfig, Tap
from .errors import Ambiguous, GitFailed, ServerError
from .hub import HubClient, normalize_server
from .installer import Installed, install_bundle, skill_path
from .lockfile import LockEntry, now

_TAP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HubFor = Callable[[str], HubClient]  # a HubClient for a server URL, with its token


def looks_like_git(source: str) -> bool:
    """A URL, scp-style address, *.git or a path with a '/'; a namespace is one word, so a
    local folder in the current directory is written ./NAME."""
    return ("://" in source or "/" in source or source.startswith(("git@", "~"))
            or source.endswith(".git"))


def tap_dir(cache_dir: Path, name: str) -> Path:
    """Where a git tap's clone lives."""
    return cache_dir / "taps" / name


def git_tap_skills(checkout: Path) -> list[str]:
    """The skill names of a git tap: folders of skills/ that hold a SKILL.md."""
    root = checkout / "skills"
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob("*/SKILL.md") if p.is_file())


def add_hub_tap(config: ClientConfig, hub: HubClient, namespace: str,
                name: str | None = None) -> tuple[Tap, int]:
    """Add a namespace tap after checking the namespace exists; return it and its size."""
    tap = Tap(_check_new_name(config, name or namespace), "hub", server=hub.server,
              namespace=namespace)
    total = int(hub.list_skills(namespace, limit=1)["total"])
    config.taps.append(tap)
    config.save()
    return tap, total


def add_git_tap(config: ClientConfig, source: str, cache_dir: Path,
                name: str | None = None) -> tuple[Tap, list[str]]:
    """Clone a repo as a tap; refuse one without skills/*/SKILL.md."""
    url = str(Path(source).expanduser().resolve()) if _is_local(source) else source
    tap = Tap(_check_new_name(config, name or _name_from_url(url)), "git", url=url)
    checkout = tap_dir(cache_dir, tap.name)
    if checkout.exists():
        shutil.rmtree(checkout)  # a leftover from a removed tap of the same name
    git.clone(url, checkout)
    skills = git_tap_skills(checkout)
    if not skills:
        shutil.rmtree(checkout)
        raise NotFound(f"{url} has no skills/*/SKILL.md, so it cannot be a tap",
                       extra={"hint": "publish its skills with `skills-hub import` instead"})
    config.taps.append(tap)
    config.save()
    return tap, skills


def remove_tap(config: ClientConfig, name: str, cache_dir: Path) -> Tap:
    """Forget a tap and delete a git tap's clone."""
    tap = config.tap(name)
    if tap is None:
        raise NotFound(f"no tap named {name!r}",
                       extra={"hint": "`skills-hub tap list` shows the taps"})
    config.taps.remove(tap)
    config.save()
    checkout = tap_dir(cache_dir, tap.name)
    if tap.kind == "git" and checkout.exists():
        shutil.rmtree(checkout)
    return tap


@dataclass
class Lookup:
    """Where a bare name was found, and taps that could not be asked."""

    found: list[Tap] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def find(name: str, taps: list[Tap], hub_for: HubFor, cache_dir: Path) -> Lookup:
    """Look `name` up in every tap; a git tap is fetched first, a hub tap is asked."""
    lookup = Lookup()
    for tap in taps:
        try:
            present = _in_tap(tap, name, hub_for, cache_dir)
        except HubError as exc:
            lookup.failed.append(f"{tap.name}: {exc.message}")
            continue
        if present:
            lookup.found.append(tap)
    return lookup


def resolve(name: str, taps: list[Tap], hub_for: HubFor, cache_dir: Path) -> Tap:
    """The one tap that has `name`; raise Ambiguous or NotFound otherwise."""
    lookup = find(name, taps, hub_for, cache_dir)
    if len(lookup.found) == 1:
        return lookup.found[0]
    if lookup.found:
        candidates = [f"{t.name}/{name}" for t in lookup.found]
        raise Ambiguous(f"{name!r} is in {len(candidates)} taps: {', '.join(candidates)}; "
                        "install one of them by its full name", candidates)
    hint = ("add a tap with `skills-hub tap add NAMESPACE` or install NAMESPACE/NAME"
            if not taps else "`skills-hub search` finds skills on the server")
    failed = f" (not asked: {'; '.join(lookup.failed)})" if lookup.failed else ""
    raise NotFound(f"no skill named {name!r} in any tap{failed}", extra={"hint": hint})


def _in_tap(tap: Tap, name: str, hub_for: HubFor, cache_dir: Path) -> bool:
    if tap.kind == "hub":
        try:
            hub_for(str(tap.server)).skill(str(tap.namespace), name)
        except ServerError as exc:
            if exc.status == 404:
                return False
            raise
        return True
    checkout = tap_dir(cache_dir, tap.name)
    try:
        refresh_git_tap(tap, cache_dir)
    except GitFailed:
        if not checkout.is_dir():
            raise  # offline with a clone at hand: answer from the clone
    return (checkout / "skills" / name / "SKILL.md").is_file()


def install_from_git_tap(tap: Tap, name: str, version: str | None, cache_dir: Path,
                         skills_dir: Path) -> Installed:
    """Copy skills/<name>/ at the tap's HEAD; the version is metadata.version or
    0.0.0+g<sha7>. A requested version must be the one at HEAD (git taps keep no history)."""
    target = skill_path(skills_dir, name)
    checkout = tap_dir(cache_dir, tap.name)
    folder = checkout / "skills" / name
    if not (folder / "SKILL.md").is_file():
        raise NotFound(f"the tap {tap.name} ({tap.url}) has no skill {name!r}",
                       extra={"hint": f"it has: {', '.join(git_tap_skills(checkout)) or 'none'}"})
    commit = git.head(checkout)
    bundle = from_directory(folder)
    found = _manifest_version(folder.name, bundle.skill_md()) or f"0.0.0+g{commit[:7]}"
    if version is not None and version != found:
        raise NotFound(f"the tap {tap.name} has {name} {found} at its HEAD, not {version}",
                       extra={"hint": "a git tap installs what its HEAD holds"})
    entry = LockEntry(kind="git", source=str(tap.url), namespace=tap.name, name=name,
                      version=found, commit=commit, content_sha256=bundle.content_hash(),
                      archive_sha256=None, pinned=version is not None, installed_at=now())
    return install_bundle(bundle, entry, target)


def refresh_git_tap(tap: Tap, cache_dir: Path) -> None:
    """Bring a git tap's clone to the remote HEAD (cloning it again if it is gone)."""
    checkout = tap_dir(cache_dir, tap.name)
    if checkout.is_dir():
        git.refresh(checkout)
    else:
        git.clone(str(tap.url), checkout)


def _manifest_version(dirname: str, text: str) -> str | None:
    try:
        return parse_manifest(text, dirname=dirname).version
    except InvalidSkill:
        return None  # a git tap is the user's choice; an odd SKILL.md still installs


def _check_new_name(config: ClientConfig, name: str) -> str:
    if not _TAP_NAME.match(name):
        raise BadRequest(f"{name!r} is not a usable tap name",
                         extra={"hint": "pass --name with letters, digits, '.', '_' or '-'"})
    if config.tap(name) is not None:
        raise BadRequest(f"a tap named {name!r} already exists",
                         extra={"hint": "remove it first or pass --name"})
    return name


def _name_from_url(url: str) -> str:
    last = re.split(r"[/:]", url.rstrip("/"))[-1]
    return last.removesuffix(".git") or "tap"


def _is_local(source: str) -> bool:
    return "://" not in source and not source.startswith("git@") and (
        Path(source).expanduser().exists() or source.startswith(("/", ".", "~")))


def same_server(a: str, b: str) -> bool:
    """Whether two server URLs name the same registry."""
    return normalize_server(a) == normalize_server(b)
