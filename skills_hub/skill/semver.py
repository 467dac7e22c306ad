"""Semantic versions (semver.org 2.0.0): parse, compare, bump."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import Problem

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
MAX_LENGTH = 64


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text

    def sort_key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """Precedence per semver: a release sorts after its prereleases; build is ignored."""
        pre = tuple((0, int(p)) if p.isdigit() else (1, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: Version) -> bool:
        return self.sort_key() < other.sort_key()

    def __le__(self, other: Version) -> bool:
        return self.sort_key() <= other.sort_key()

    def next_patch(self) -> Version:
        if self.prerelease:
            return Version(self.major, self.minor, self.patch)
        return Version(self.major, self.minor, self.patch + 1)


def parse(text: str) -> Version | None:
    """The Version for `text`, or None when it is not a semantic version."""
    if len(text) > MAX_LENGTH:
        return None
    match = _SEMVER.match(text.strip())
    if not match:
        return None
    major, minor, patch, pre, build = match.groups()
    return Version(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else (),
                   build or "")


def problem(field: str, text: str) -> Problem:
    """The Problem to report for a string that is not a semantic version."""
    return Problem(field, f"{text!r} is not a semantic version",
                   "use MAJOR.MINOR.PATCH, for example 1.0.0 or 1.2.0-beta.1")


def same_precedence(version: Version, versions: list[str]) -> list[str]:
    """Those of `versions` equal to `version` in precedence (they differ at most in build
    metadata, which semver says to ignore when comparing)."""
    key = version.sort_key()
    return [v for v in versions if (p := parse(v)) is not None and p.sort_key() == key]


def latest(versions: list[str]) -> str | None:
    """The highest of `versions` by semver precedence (unparseable ones are ignored)."""
    parsed = [(v, p) for v in versions if (p := parse(v)) is not None]
    if not parsed:
        return None
    return max(parsed, key=lambda item: item[1].sort_key())[0]
