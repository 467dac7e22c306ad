"""The `git` binary, run as a subprocess: the client's only doorway to git (no dulwich)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import GitFailed

# Never prompt for credentials: a tap or import from a private URL fails instead of hanging.
_NO_PROMPT = ["-c", "core.askPass=true", "-c", "credential.interactive=never"]


def run(*args: str, cwd: Path | None = None) -> str:
    """Run `git ARGS` and return its stdout; raise GitFailed with git's own message."""
    try:
        done = subprocess.run(["git", *_NO_PROMPT, *args], cwd=cwd, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=300, check=False)
    except FileNotFoundError as exc:
        raise GitFailed("the `git` program is not installed or not on PATH",
                        extra={"hint": "install git, e.g. `apt-get install git`"}) from exc
    except subprocess.TimeoutExpired as exc:
        raise GitFailed(f"`git {args[0]}` took longer than 300 s") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise GitFailed(f"`git {args[0]}` failed: " + (detail[-1] if detail else
                                                        f"exit status {done.returncode}"))
    return done.stdout


def clone(url: str, dest: Path, *, shallow: bool = False) -> None:
    """Clone `url` (a URL or a local path) into `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    depth = ["--depth", "1"] if shallow else []
    run("clone", "--quiet", *depth, "--", url, str(dest))


def refresh(checkout: Path) -> None:
    """Move a clone to the remote's current HEAD, discarding local changes."""
    run("fetch", "--quiet", "origin", "HEAD", cwd=checkout)
    run("reset", "--quiet", "--hard", "FETCH_HEAD", cwd=checkout)


def head(checkout: Path) -> str:
    """The commit sha a clone is at."""
    return run("rev-parse", "HEAD", cwd=checkout).strip()
