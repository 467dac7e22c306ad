#!/usr/bin/env python3
"""Check a commit message against the Conventional Commits 1.0 rules.

Usable directly as a git commit-msg hook (git passes the message file path),
or with a message on stdin, or with --message "feat: ...".

Exit codes: 0 message is valid, 1 message breaks a rule, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DEFAULT_TYPES = ("feat", "fix", "docs", "style", "refactor", "perf", "test",
                 "build", "ci", "chore", "revert")
HEADER = re.compile(r"^(?P<type>[a-z]+)(?:\((?P<scope>[a-z0-9._/-]+)\))?(?P<bang>!)?: (?P<subject>.+)$")
FOOTER = re.compile(r"^(BREAKING CHANGE|BREAKING-CHANGE|[A-Za-z-]+)(: | #)")
AUTO_GENERATED = ("Merge ", "Revert \"", "fixup! ", "squash! ", "amend! ")


def strip_comments(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if line.startswith("# ------------------------ >8 ------------------------"):
            break
        if not line.startswith("#"):
            lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return lines


def check(text: str, types: tuple[str, ...], max_header: int) -> list[str]:
    lines = strip_comments(text)
    if not lines:
        return ["message is empty"]
    header = lines[0]
    if header.startswith(AUTO_GENERATED):
        return []
    problems = []
    match = HEADER.match(header)
    if not match:
        problems.append("header must look like 'type(scope): subject' or 'type!: subject' "
                        "(lowercase type, a colon and one space)")
    else:
        if match["type"] not in types:
            problems.append(f"unknown type '{match['type']}'; allowed: {', '.join(types)}")
        subject = match["subject"]
        if subject.endswith("."):
            problems.append("subject should not end with a period")
        if subject[:1].isupper() and not subject[:2].isupper():
            problems.append("subject should start with a lowercase letter (imperative mood: 'add', not 'Added')")
        if re.match(r"^(added|fixed|changed|removed|updated)\b", subject, re.IGNORECASE):
            problems.append("use the imperative mood ('add' rather than 'added')")
    if len(header) > max_header:
        problems.append(f"header is {len(header)} characters; keep it to {max_header} or fewer")
    if len(lines) > 1 and lines[1]:
        problems.append("leave a blank line between the header and the body")
    for line in lines[2:]:
        if line.lower().startswith("breaking change") and not FOOTER.match(line):
            problems.append("write the breaking-change footer as 'BREAKING CHANGE: description'")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate a commit message against Conventional Commits.")
    parser.add_argument("file", nargs="?", help="commit message file (as passed to a commit-msg hook); default stdin")
    parser.add_argument("-m", "--message", help="check this message text instead of a file")
    parser.add_argument("--types", default=",".join(DEFAULT_TYPES), help="comma-separated allowed types")
    parser.add_argument("--max-header", type=int, default=72, help="maximum header length (default: 72)")
    args = parser.parse_args(argv)

    if args.message is not None and args.file:
        parser.error("give either a file or --message, not both")
    try:
        if args.message is not None:
            text = args.message
        elif args.file:
            text = Path(args.file).read_text(encoding="utf-8")
        else:
            text = sys.stdin.read()
    except OSError as exc:
        print(f"error: could not read message: {exc}", file=sys.stderr)
        return 2

    types = tuple(t.strip() for t in args.types.split(",") if t.strip())
    problems = check(text, types, args.max_header)
    if problems:
        print("commit message does not follow Conventional Commits:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
