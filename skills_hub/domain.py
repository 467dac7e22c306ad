"""The registry's domain model: the rows the storage interfaces (`store.interfaces`) take
and return, the same for every backend. Nothing here knows SQL, FTS or git."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class NamespaceRow:
    name: str
    visibility: str
    created_at: str


@dataclass(frozen=True)
class SkillRow:
    id: int
    namespace: str
    name: str
    latest_version: str
    description: str
    tags: str
    created_at: str
    updated_at: str
    downloads: int
    trust: str = "community"    # community, verified, trusted, quarantined, blocked
    verdict: str = "unchecked"  # the latest version's checks verdict


@dataclass(frozen=True)
class VersionRow:
    skill_id: int
    version: str
    commit_sha: str
    tag_sha: str
    tree_sha: str
    content_sha256: str
    description: str
    frontmatter: dict[str, Any]
    files: list[dict[str, Any]]
    published_at: str


@dataclass(frozen=True)
class NewVersion:
    """What the service records for a version it has just written to git."""

    namespace: str
    name: str
    version: str
    commit_sha: str
    tag_sha: str
    tree_sha: str
    content_sha256: str
    description: str
    frontmatter: dict[str, Any]
    files: list[dict[str, Any]]
    published_at: str
    tags: str
    body: str
    is_latest: bool
    embed_sha256: str | None = None  # digest of the text the search embeds (latest only)


@dataclass(frozen=True)
class ReportRow:
    namespace: str
    name: str
    version: str
    content_sha256: str
    verdict: str
    report: dict[str, Any]
    pipeline: str
    checked_at: str


@dataclass(frozen=True)
class NewReport:
    """A checks report to record for a version; `reason` goes into the history."""

    namespace: str
    name: str
    version: str
    content_sha256: str
    verdict: str
    report: dict[str, Any]
    pipeline: str
    reason: str  # "publish", "health", "backfill", "exception"


@dataclass(frozen=True)
class HistoryRow:
    version: str
    old_verdict: str | None
    new_verdict: str
    pipeline: str
    reason: str
    changed_at: str


@dataclass(frozen=True)
class ExceptionRow:
    rule: str
    reason: str
    created_at: str


@dataclass(frozen=True)
class SearchHit:
    skill: SkillRow
    score: float    # bm25, higher is better
    snippet: str    # with HIGHLIGHT_START / HIGHLIGHT_END around matched words, or ""


# Snippet highlight markers: control characters no skill text can contain after escaping.
HIGHLIGHT_START, HIGHLIGHT_END = "\x02", "\x03"


TRUST_LEVELS = ("community", "verified", "trusted", "quarantined", "blocked")


# Installs past this count rank alike (ranking.quality.INSTALLS_SATURATE, which a test
# holds equal); the literal is in m009's `skills_unrated` index, which SQL must match.
INSTALLS_CAP = 10_000


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions every search mode applies in SQL (None: no restriction)."""

    namespace: str | None = None
    tag: str | None = None
    trust: str | None = None       # one of TRUST_LEVELS; `blocked` skills never show otherwise
    verdict: str | None = None     # safe, caution, dangerous, unchecked
    updated_since: str | None = None  # ISO 8601, compared with updated_at


@dataclass(frozen=True)
class KeywordQuery:
    """A keyword search as words (`search.query.parse`): lower-case, unique, in order,
    common English words left out unless nothing else remains. The backends turn them
    into their own query syntax (FTS5 strings, tsquery lexemes), quoting every word."""

    words: tuple[str, ...]
    prefix: bool = False  # the last word matches as a prefix (the user is still typing it)

    def __bool__(self) -> bool:
        return bool(self.words)


@dataclass(frozen=True)
class NewOutcome:
    """One outcome report as stored (see learning.outcomes)."""

    reporter: str   # sha256 of the reporting token
    report_id: str
    version: str
    outcome: str    # success, failure, infra_error
    failure_kind: str | None
    score: float | None
    signals_json: str
    agent: str | None
    model: str | None
    client: str     # the distinct-client key
    at: datetime

    @property
    def counted(self) -> bool:
        return self.outcome != "infra_error"


@dataclass(frozen=True)
class VersionStats:
    version: str
    successes: int
    failures: int
    infra_errors: int
    score_mean: float | None
    ema: float | None
    last_at: str | None


@dataclass(frozen=True)
class TrustEvent:
    old: str
    new: str
    reason: str
    actor: str
    at: str


@dataclass(frozen=True)
class ProposalRow:
    id: str
    namespace: str
    name: str
    base_version: str    # the version the edits were written against
    applies_to: str      # the version the proposal's content was rebased onto
    status: str          # open, accepted, rejected
    proposer: str        # sha256 of the proposing token
    proposer_namespace: str | None
    edits: list[Any]
    evidence: dict[str, Any]
    reasoning: str
    content_sha256: str
    commit_sha: str
    tree_sha: str
    verdict: str
    report: dict[str, Any]
    support: int
    created_at: str
    decided_at: str | None = None
    decided_by: str | None = None
    comment: str | None = None
    version: str | None = None   # the version an accepted proposal became


@dataclass(frozen=True)
class CanaryRow:
    namespace: str
    name: str
    version: str
    stable_version: str
    share: float
    state: str           # active, promoted, rolled_back, superseded
    started_at: str
    decided_at: str | None
    decision: dict[str, Any] | None


@dataclass(frozen=True)
class EmbedJob:
    """A skill whose current text has no stored vector yet."""

    skill_id: int
    name: str
    description: str
    tags: str
    body: str
    embed_sha256: str


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    display_name: str
    email: str
    kind: str                 # "user" or "service"
    org: str | None           # a service account's org
    password_hash: str | None
    is_operator: bool
    oidc_issuer: str | None
    oidc_subject: str | None
    created_at: str
    disabled_at: str | None


@dataclass(frozen=True)
class MemberRow:
    org: str
    user_id: int
    username: str
    display_name: str
    kind: str
    role: str
    added_at: str


@dataclass(frozen=True)
class TokenRow:
    id: int
    user_id: int
    username: str
    prefix: str
    label: str
    scopes: frozenset[str]
    namespaces: frozenset[str] | None
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


@dataclass(frozen=True)
class NamespaceInfo:
    name: str
    visibility: str
    created_at: str
    owner_user: int | None
    owner_org: str | None
    release_policy: str
    two_person: bool
    review_policy: str


@dataclass(frozen=True)
class InvitationRow:
    id_sha256: str
    org: str
    role: str
    email: str
    created_by: int | None
    created_at: str
    expires_at: str
    accepted_at: str | None


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: str
    actor: str
    action: str
    target: str
    org: str | None
    namespace: str | None
    address: str
    user_agent: str
    request_id: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at, "actor": self.actor, "action": self.action,
                "target": self.target, "org": self.org, "namespace": self.namespace,
                "address": self.address, "user_agent": self.user_agent,
                "request_id": self.request_id, "detail": self.detail}


@dataclass(frozen=True)
class NewAudit:
    actor: str
    actor_id: int | None
    action: str
    target: str
    org: str | None
    namespace: str | None
    address: str
    user_agent: str
    request_id: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class ReleaseRow:
    id: str
    namespace: str
    name: str
    version: str
    state: str                # pending, approved, rejected, withdrawn
    author_id: int | None
    author: str
    commit_sha: str
    tree_sha: str
    content_sha256: str
    verdict: str
    report: dict[str, Any]
    created_at: str
    decided_at: str | None
    decided_by: str | None
    comment: str | None


class KeepOwner(Exception):
    """Raised inside a transaction (rolling it back) when an org would have no owner."""
