"""Suggest and lint conventional commit messages."""
import subprocess
import sys

import hooks  # noqa: F401  (registers the message templates)

TYPES = ("feat", "fix", "docs", "refactor", "test", "chore")


def staged_files():
    out = subprocess.run(["git", "diff", "--cached", "--name-only"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def suggest():
    files = staged_files()
    kind = "docs" if all(f.endswith(".md") for f in files) else "feat"
    print(f"{kind}: update {', '.join(files[:3])}")


if __name__ == "__main__":
    suggest() if sys.argv[1:2] == ["suggest"] else print("ok")
