"""Names more than one feature uses: namespace and skill name rules, the choice check, the
stored report row, version ordering and the token digest."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..access.policy import NamespaceRef
from ..checks.pipeline import Report
from ..domain import NamespaceInfo, NewReport
from ..errors import BadRequest, Problem
from ..skill import semver

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$|^[a-z0-9]$")
RESERVED_NAMESPACES = frozenset({
    "api", "git", "static", "openapi.json", "docs", "search", "login", "logout", "admin",
    "settings", "health", "new", "well-known", "favicon.ico", "robots.txt", "s", "u",
    "review", "auth",  # the review queue page, the sign-in routes
    "demands",  # the demand list page
    "publish", "invite",  # publishing from the browser, the invitation page
    "clawhub",  # the ClawHub-compatible API lives under /clawhub
    "metrics", "livez", "readyz",  # the operator's scrape and probes
    # marketplace names Claude Code refuses (a namespace's name is its marketplace's name)
    "inline", "builtin", "skills-dir", "synced", "agent-skills", "claude-plugins-official",
    "claude-official", "official-claude", "anthropic-official", "claude-marketplace",
})
MAX_EXCEPTION_REASON = 500


def check_namespace(namespace: str) -> None:
    if len(namespace) > 64 or not NAME_RE.match(namespace) or namespace in RESERVED_NAMESPACES:
        raise BadRequest(
            f"{namespace!r} is not a valid namespace name",
            problems=[Problem("namespace", "not a valid namespace name",
                              "use 1-64 lowercase letters, digits and single hyphens, not "
                              "starting or ending with a hyphen, and not a reserved word")])


def _check_skill_name(name: str) -> None:
    if len(name) > 64 or not NAME_RE.match(name):
        raise BadRequest(f"{name!r} is not a valid skill name")


def _new_report(namespace: str, name: str, version: str, content_sha256: str, report: Report,
                reason: str) -> NewReport:
    return NewReport(namespace=namespace, name=name, version=version,
                     content_sha256=content_sha256, verdict=report.verdict,
                     report=report.to_dict(), pipeline=report.pipeline, reason=reason)


def _version_key(text: str) -> tuple[Any, ...]:
    parsed = semver.parse(text)
    return parsed.sort_key() if parsed else (-1, text)


def _check_choice(field_name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadRequest(f"{field_name} must be one of {', '.join(choices)}",
                         problems=[Problem(field_name, f"{value[:40]!r} is not one of "
                                                       f"{', '.join(choices)}")])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ref_of(info: NamespaceInfo) -> NamespaceRef:
    """What the access rule needs of a stored namespace."""
    return NamespaceRef(info.name, info.visibility, info.owner_org, info.owner_user)
