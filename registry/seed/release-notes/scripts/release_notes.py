#!/usr/bin/env python3
"""Group Conventional Commit subjects into Markdown release notes.

Reads one commit per line from a file or standard input, as produced by

    git log --no-merges --format='%h %s' v1.2.0..HEAD

(the leading short hash is optional). The script never runs git itself, so it
works the same on a CI log, a pasted list or a saved file.

Exit codes: 0 ok, 1 input could not be read or contained no commits,
2 bad arguments.
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from pathlib import Path

SECTIONS = [
    ("breaking", "Breaking changes"),
    ("feat", "Features"),
    ("fix", "Bug fixes"),
    ("perf", "Performance"),
    ("refactor", "Refactoring"),
    ("docs", "Documentation"),
    ("build", "Build and dependencies"),
    ("ci", "Continuous integration"),
    ("test", "Tests"),
    ("style", "Style"),
    ("chore", "Chores"),
    ("revert", "Reverts"),
    ("other", "Other changes"),
]
HIDDEN_BY_DEFAULT = {"chore", "style", "test", "ci"}
HEADER = re.compile(
    r"^(?:(?P<hash>[0-9a-f]{7,40})\s+)?"
    r"(?P<type>[a-zA-Z]+)(?:\((?P<scope>[^)]+)\))?(?P<bang>!)?:\s+(?P<subject>.+)$"
)
HASH_ONLY = re.compile(r"^(?P<hash>[0-9a-f]{7,40})\s+(?P<subject>.+)$")
ISSUE_REF = re.compile(r"\(#(\d+)\)\s*$")


def parse_line(line: str) -> dict | None:
    line = line.strip()
    if not line or line.startswith("Merge ") or re.match(r"^[0-9a-f]{7,40}\s+Merge ", line):
        return None
    match = HEADER.match(line)
    if match:
        kind = match["type"].lower()
        return {
            "hash": match["hash"] or "",
            "type": kind if any(kind == key for key, _ in SECTIONS) else "other",
            "scope": match["scope"] or "",
            "breaking": bool(match["bang"]),
            "subject": match["subject"].strip(),
        }
    plain = HASH_ONLY.match(line)
    return {
        "hash": plain["hash"] if plain else "",
        "type": "other",
        "scope": "",
        "breaking": False,
        "subject": plain["subject"] if plain else line,
    }


def render_entry(commit: dict, repo_url: str | None) -> str:
    text = commit["subject"]
    if repo_url:
        text = ISSUE_REF.sub(lambda m: f"([#{m[1]}]({repo_url}/issues/{m[1]}))", text)
    if commit["scope"]:
        text = f"**{commit['scope']}:** {text}"
    if commit["hash"]:
        short = commit["hash"][:7]
        ref = f"[{short}]({repo_url}/commit/{commit['hash']})" if repo_url else short
        text = f"{text} ({ref})"
    return f"- {text}"


def build_notes(commits: list[dict], version: str, when: str, include_all: bool, repo_url: str | None) -> str:
    buckets: dict[str, list[dict]] = {key: [] for key, _ in SECTIONS}
    for commit in commits:
        buckets["breaking" if commit["breaking"] else commit["type"]].append(commit)
    lines = [f"## {version} ({when})", ""]
    for key, title in SECTIONS:
        entries = buckets[key]
        if not entries or (key in HIDDEN_BY_DEFAULT and not include_all):
            continue
        lines.append(f"### {title}")
        lines.append("")
        seen = set()
        for commit in sorted(entries, key=lambda c: (c["scope"], c["subject"].lower())):
            if commit["subject"] in seen:
                continue
            seen.add(commit["subject"])
            lines.append(render_entry(commit, repo_url))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Turn conventional-commit subjects into grouped release notes.")
    parser.add_argument("input", nargs="?", default="-",
                        help="file with one commit subject per line, or - for stdin (default)")
    parser.add_argument("--version", default="Unreleased", help="version heading, e.g. v1.3.0")
    parser.add_argument("--date", default=date.today().isoformat(), help="release date (default: today)")
    parser.add_argument("--all", action="store_true", help="also include chore/style/test/ci sections")
    parser.add_argument("--repo-url", help="e.g. https://github.com/org/repo to link hashes and #issues")
    parser.add_argument("--out", type=Path, help="write to this file instead of stdout")
    args = parser.parse_args(argv)

    try:
        if args.input == "-":
            raw = sys.stdin.read()
        else:
            raw = Path(args.input).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"error: could not read input: {exc}", file=sys.stderr)
        return 1

    commits = [c for c in (parse_line(line) for line in raw.splitlines()) if c]
    if not commits:
        print("error: no commits found in input", file=sys.stderr)
        return 1

    repo_url = args.repo_url.rstrip("/") if args.repo_url else None
    notes = build_notes(commits, args.version, args.date, args.all, repo_url)
    if args.out:
        try:
            args.out.write_text(notes, encoding="utf-8")
        except OSError as exc:
            print(f"error: could not write {args.out}: {exc}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(notes)
    unconventional = sum(1 for c in commits if c["type"] == "other")
    if unconventional:
        print(f"note: {unconventional} commit(s) did not follow Conventional Commits", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
