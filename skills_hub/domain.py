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
class HealthCandidate:
    """A stored version as the health-check scheduler weighs it (`learning.schedule`): what
    its last check saw, and how it has been used since. Times in seconds since the epoch,
    except the catalogue's own ISO 8601 columns."""

    namespace: str
    name: str
    version: str
    visibility: str
    published_at: str            # ISO 8601
    is_latest: bool
    downloads: int               # the skill's installs so far (counted per skill)
    verdict: str | None          # of its stored report; None: never checked
    report_pipeline: str | None  # what produced that report (`checks.pipeline_id`)
    report_checked_at: str | None  # ISO 8601
    fingerprint: str | None      # of its last recorded health check; None: never re-checked
    checked_at: float | None
    downloads_at_check: int | None
    ema_at_check: float | None
    ema: float | None            # the success EMA now
    recent_reports: int          # counted outcome reports on it since `since_day`
    claimed_by: str | None = None
    claimed_until: float | None = None


@dataclass(frozen=True)
class HealthCheckRow:
    """One health check of a stored version, as logged (`services.health`)."""

    namespace: str
    name: str
    version: str
    at: float                    # seconds since the epoch
    kind: str                    # "scheduled", or "health" (the one-off command)
    holder: str                  # the process that ran it
    fingerprint: str             # the checks it ran (`services.health.fingerprint`)
    priority: float
    reasons: str                 # why it was chosen, "; "-separated
    old_verdict: str | None
    new_verdict: str
    health: str                  # "deprecated", "restored" or "" (no change)
    note: str                    # the deprecation's reason, or ""
    ms: float
    downloads: int               # the skill's installs when checked
    ema: float | None            # the success EMA when checked

    @property
    def changed(self) -> bool:
        return self.old_verdict != self.new_verdict or bool(self.health)


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
    task_key: str | None = None  # the task it served, hashed (`learning.outcomes.task_key`)
    # Why it is stored but not counted (`ranking.guards`): author, repeat_task, client_cap
    discount: str | None = None

    @property
    def counted(self) -> bool:
        return self.outcome != "infra_error" and self.discount is None


@dataclass(frozen=True)
class OutcomeRecord:
    """A stored outcome report, read back (the evidence export's rows)."""

    namespace: str
    name: str
    version: str
    outcome: str
    failure_kind: str | None
    score: float | None
    signals_json: str
    agent: str | None
    model: str | None
    reporter: str
    report_id: str
    at: str         # ISO 8601, as stored
    discount: str | None = None  # why it is stored but not counted (`ranking.guards`)

    @property
    def key(self) -> tuple[str, str, str]:
        """Its place in the export's keyset order within a namespace: (at, reporter, id)."""
        return self.at, self.reporter, self.report_id


@dataclass(frozen=True)
class VersionStats:
    version: str
    successes: int
    failures: int
    infra_errors: int
    score_mean: float | None
    ema: float | None
    last_at: str | None
    discounted: int = 0  # reports stored but not counted (`ranking.guards`)


@dataclass(frozen=True)
class TaskStats:
    """One task's counted reports on a skill (every version), as the store aggregates them."""

    task_key: str
    successes: int
    failures: int
    mean_at: float   # mean report time, epoch seconds (the decay's age)
    reporters: int   # distinct tokens that reported it


@dataclass(frozen=True)
class TaskVector:
    """A reported task's embedding (`learning.tasks`) and what may be shown of its text."""

    task_key: str
    vector: bytes   # float32, unit norm
    label: str | None


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


@dataclass(frozen=True)
class NewGapAsk:
    """One gap answer to record (`services.demands`): a query no readable skill is close
    to, its embedding, who asked (an opaque key, never a raw address) and where."""

    query: str
    vector: bytes        # float32, unit norm: the query's embedding at search time
    model: str           # the embedding model's id (centroids of two models never mix)
    asker: str           # `services.demands.asker_key`
    scope: str | None    # the namespace searched in; None: the whole registry
    asked_at: str


@dataclass(frozen=True)
class DemandRow:
    """Similar gap queries clustered into one demand (`learning.demands`)."""

    id: int
    scope: str | None    # the namespace it was asked in; None: the whole registry
    status: str          # open, closed
    representative: str  # the member phrasing nearest the centroid
    model: str
    asks: int
    askers: int          # distinct askers
    first_asked: str
    last_asked: str
    closed_at: str | None = None
    answer_namespace: str | None = None  # the skill version that answered it
    answer_name: str | None = None
    answer_version: str | None = None
    answer_similarity: float | None = None

class KeepOwner(Exception):
    """Raised inside a transaction (rolling it back) when an org would have no owner."""
