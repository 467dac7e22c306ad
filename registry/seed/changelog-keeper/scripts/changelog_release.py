#!/usr/bin/env python3
"""Cut a release in a Keep a Changelog style CHANGELOG.md.

Moves everything under "## [Unreleased]" into a new "## [X.Y.Z] - YYYY-MM-DD"
section, leaves an empty Unreleased section behind, and updates the compare
links at the bottom of the file when they exist. Use --check to only lint.

Exit codes: 0 ok, 1 changelog problem (missing file/section, duplicate or
non-increasing version, empty release), 2 bad arguments.
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path

SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$")
HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?\s*$", re.MULTILINE)
LINK = re.compile(r"^\[(?P<name>[^\]]+)\]: (?P<url>\S+)\s*$", re.MULTILINE)
CATEGORIES = ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")


def version_key(version: str) -> tuple[int, int, int]:
    major, minor, patch = version.split("-", 1)[0].split(".")
    return int(major), int(minor), int(patch)


def lint(text: str) -> list[str]:
    problems = []
    headings = list(HEADING.finditer(text))
    if not headings or headings[0]["version"] != "Unreleased":
        problems.append("the first section should be '## [Unreleased]'")
    released = [h["version"] for h in headings if h["version"] != "Unreleased"]
    for version in released:
        if not SEMVER.match(version):
            problems.append(f"'{version}' is not a semantic version")
    if len(set(released)) != len(released):
        problems.append("a version appears more than once")
    valid = [v for v in released if SEMVER.match(v)]
    if valid != sorted(valid, key=version_key, reverse=True):
        problems.append("versions are not in descending order (newest first)")
    for h in headings:
        if h["version"] != "Unreleased" and not h["date"]:
            problems.append(f"release {h['version']} has no ' - YYYY-MM-DD' date")
    for match in re.finditer(r"^### (.+)$", text, re.MULTILINE):
        if match[1].strip() not in CATEGORIES:
            problems.append(f"unknown change category '### {match[1].strip()}'")
    return problems


def cut_release(text: str, version: str, when: str) -> str:
    headings = list(HEADING.finditer(text))
    unreleased = next((h for h in headings if h["version"] == "Unreleased"), None)
    if unreleased is None:
        raise ValueError("no '## [Unreleased]' section found")
    if any(h["version"] == version for h in headings):
        raise ValueError(f"version {version} already exists")
    released = [h["version"] for h in headings if SEMVER.match(h["version"])]
    if released and version_key(version) <= version_key(released[0]):
        raise ValueError(f"{version} is not newer than the latest release {released[0]}")

    following = [h for h in headings if h.start() > unreleased.start()]
    body_end = following[0].start() if following else None
    if body_end is None:
        link_match = LINK.search(text, unreleased.end())
        body_end = link_match.start() if link_match else len(text)
    body = text[unreleased.end():body_end].strip("\n")
    if not re.search(r"^\s*[-*] \S", body, re.MULTILINE):
        raise ValueError("the Unreleased section has no entries to release")

    new_section = f"## [Unreleased]\n\n## [{version}] - {when}\n\n{body}\n\n"
    text = text[: unreleased.start()] + new_section + text[body_end:].lstrip("\n")

    links = {m["name"]: m for m in LINK.finditer(text)}
    old = links.get("Unreleased")
    if old and "/compare/" in old["url"]:
        base, _, span = old["url"].partition("/compare/")
        previous = span.split("...", 1)[0]
        prefix = "v" if previous.startswith("v") else ""
        new_links = (f"[Unreleased]: {base}/compare/{prefix}{version}...HEAD\n"
                     f"[{version}]: {base}/compare/{previous}...{prefix}{version}")
        text = text[: old.start()] + new_links + text[old.end():]
    return text.rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Release the Unreleased section of a Keep a Changelog file.")
    parser.add_argument("changelog", type=Path, nargs="?", default=Path("CHANGELOG.md"))
    parser.add_argument("--version", help="new version, e.g. 1.4.0 (without a leading v)")
    parser.add_argument("--date", default=date.today().isoformat(), help="release date (default: today)")
    parser.add_argument("--check", action="store_true", help="only lint the changelog, change nothing")
    parser.add_argument("--dry-run", action="store_true", help="print the result instead of writing the file")
    args = parser.parse_args(argv)

    if not args.check and not args.version:
        parser.error("--version is required unless --check is given")
    if args.version and not SEMVER.match(args.version):
        parser.error(f"--version {args.version!r} is not X.Y.Z")
    if not re.match(r"^\d{4}-\d{2}-\d{2}$", args.date):
        parser.error("--date must be YYYY-MM-DD")
    try:
        text = args.changelog.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot read {args.changelog}: {exc}", file=sys.stderr)
        return 1

    if args.check:
        problems = lint(text)
        for problem in problems:
            print(f"{args.changelog}: {problem}")
        if not problems:
            print(f"{args.changelog}: ok")
        return 1 if problems else 0

    try:
        updated = cut_release(text, args.version, args.date)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        sys.stdout.write(updated)
        return 0
    try:
        args.changelog.write_text(updated, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {args.changelog}: {exc}", file=sys.stderr)
        return 1
    print(f"released {args.version} ({args.date}) in {args.changelog}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
