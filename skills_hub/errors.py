"""Domain exceptions. Each carries its HTTP status and a stable code; the edges translate them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One finding about user input: which field, what is wrong, how to fix it."""

    field: str
    message: str
    hint: str = ""
    severity: str = "error"  # "error" or "warning"

    def to_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "message": self.message,
            "hint": self.hint,
            "severity": self.severity,
        }


class HubError(Exception):
    """Base of every error the registry reports to a user."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, problems: list[Problem] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = list(problems or [])
        self.extra = dict(extra or {})

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.problems:
            body["problems"] = [p.to_dict() for p in self.problems]
        body.update(self.extra)
        return body


class BadRequest(HubError):
    status = 400
    code = "bad_request"


class Unauthorized(HubError):
    status = 401
    code = "unauthorized"


class Forbidden(HubError):
    status = 403
    code = "forbidden"


class NotFound(HubError):
    status = 404
    code = "not_found"


class MethodNotAllowed(HubError):
    """The path exists with other methods; `extra["allow"]` lists them (the Allow header)."""

    status = 405
    code = "method_not_allowed"


class VersionExists(HubError):
    status = 409
    code = "version_exists"


class AmbiguousName(HubError):
    """A flat name (a ClawHub slug, a well-known name) that several namespaces have."""

    status = 409
    code = "ambiguous_name"


class Conflict(HubError):
    """A write lost a race with another writer; retrying is safe."""

    status = 409
    code = "conflict"


class Duplicate(Conflict):
    """A row with the same unique key was written by another request between this one's
    check and its write (two sign-ups of one name, two holds of one version): the
    database's unique constraint refused the second. Raised by every backend's
    transactions in place of the driver's error, so no race ends in a 500."""

    def __init__(self, what: str) -> None:
        super().__init__(f"another request wrote the same {what} a moment ago",
                         extra={"hint": "look again: what you were making may exist now"})


class PayloadTooLarge(HubError):
    status = 413
    code = "payload_too_large"


class ArchiveRejected(HubError):
    """An upload was refused while unpacking; `code` names the exact reason."""

    status = 400

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class InvalidSkill(HubError):
    """The skill failed validation; `problems` lists every error at once."""

    status = 422
    code = "invalid_skill"


class DangerousSkill(HubError):
    """The checks found something that refuses the version; `extra["report"]` is the report."""

    status = 422
    code = "dangerous_skill"


class SemanticUnavailable(HubError):
    """The embedding model is not loaded (yet, or at all); keyword search still works."""

    status = 503
    code = "semantic_unavailable"


class Busy(HubError):
    """A namespace's write lock was not free within its deadline (another node holds it:
    a long repack, or a node frozen or cut off while holding it). Nothing was written;
    `extra["retry_after"]` says when to try again."""

    status = 503
    code = "busy"


class InvalidReport(HubError):
    """Outcome reports that do not validate; `problems` names every bad field."""

    status = 422
    code = "invalid_report"


class RateLimited(HubError):
    """Too many requests for one token; `extra["retry_after"]` says when to try again."""

    status = 429
    code = "rate_limited"


class EditFailed(HubError):
    """An edit cannot be applied to the skill's files; `extra` names the edit and why."""

    status = 422
    code = "edit_failed"


class MergeConflict(HubError):
    """A proposal's changes overlap changes made since its base; `extra["conflicts"]` lists them."""

    status = 409
    code = "merge_conflict"


class RemoteError(HubError):
    """A client-side error talking to a server (used by the client package)."""

    status = 502
    code = "remote_error"

