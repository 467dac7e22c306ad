"""Errors the client raises. Each carries a status and a stable code like the server's, so the
CLI maps every failure to one exit code in one place."""

from __future__ import annotations

from typing import Any

from skills_hub.errors import HubError, Problem, RemoteError


class ServerError(RemoteError):
    """The registry answered with an error: its HTTP status, code, message and problems."""

    def __init__(self, status: int, code: str, message: str, *,
                 problems: list[Problem] | None = None, hint: str = "",
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message, problems=problems, extra=extra)
        self.status = status
        self.code = code
        self.hint = hint


class Unreachable(RemoteError):
    """No answer from the registry: refused connection, DNS failure, timeout, TLS error."""

    status = 503
    code = "unreachable"


class IntegrityError(HubError):
    """Downloaded bytes do not match the digests the registry published for them."""

    status = 502
    code = "integrity_error"


class Ambiguous(HubError):
    """A bare skill name matched in more than one tap."""

    status = 409
    code = "ambiguous"

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message, extra={"candidates": candidates})
        self.candidates = candidates


class GitFailed(HubError):
    """The `git` binary failed (clone, fetch) or is missing."""

    status = 502
    code = "git_failed"


class ConfigError(HubError):
    """The local config file or lockfile cannot be read."""

    status = 500
    code = "config_error"
