"""The storage the registry's services use, as typed interfaces (Protocols).

One implementation per backend: `store.sqlite` (the embedded default: index.db in the home
folder) and `store.postgres` (SKILLS_HUB_DATABASE_URL), plus the git repos (`gitstore`),
shared by both. `store.backend.open_storage` picks them by one setting. Nothing above
`store/` speaks SQL, FTS syntax or dulwich: it calls these, with the domain model's rows
(`skills_hub.domain`). `tests/test_storage_contract.py` runs one contract suite against
every implementation.

The catalogue is split by concern; each concern is one object of `Storage`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from ..domain import (
    AuditRow,
    CanaryRow,
    DemandRow,
    EmbedJob,
    ExceptionRow,
    HealthCandidate,
    HealthCheckRow,
    HistoryRow,
    InvitationRow,
    KeywordQuery,
    MemberRow,
    NamespaceInfo,
    NamespaceRow,
    NewAudit,
    NewGapAsk,
    NewOutcome,
    NewReport,
    NewVersion,
    OutcomeRecord,
    ProposalRow,
    ReleaseRow,
    ReportRow,
    SearchFilters,
    SearchHit,
    SkillRow,
    TaskStats,
    TaskVector,
    TokenRow,
    TrustEvent,
    UserRow,
    VersionRow,
    VersionStats,
)


class Generation(Protocol):
    """A value every node's per-process caches compare with what they cached under: a write
    that changes access facts or versions bumps it and every process drops its copies."""

    def current(self) -> bytes: ...

    def bump(self) -> None: ...


class Namespaces(Protocol):
    """Namespaces: visibility, owner, release and review policies."""

    def ensure_namespace(self, name: str, visibility: str = "public") -> NamespaceRow: ...

    def set_visibility(self, name: str, visibility: str) -> None: ...

    def get_namespace(self, name: str) -> NamespaceRow | None: ...

    def list_namespaces(self) -> list[NamespaceRow]: ...

    def review_policy(self, namespace: str) -> str: ...

    def set_review_policy(self, namespace: str, policy: str) -> None: ...

    def namespace(self, name: str) -> NamespaceInfo | None: ...

    def namespaces(self) -> list[NamespaceInfo]: ...

    def hidden_namespaces(self) -> list[NamespaceInfo]:
        """The namespaces that are not public (what a principal's `readable` is made of)."""
        ...

    def set_namespace_owner(self, name: str, *, org: str | None = None,
                            user_id: int | None = None) -> None: ...

    def set_release_policy(self, name: str, policy: str, two_person: bool) -> None: ...



class Catalogue(Protocol):
    """Skills and versions: what `reindex` rebuilds from git."""

    def record_version(self, new: NewVersion, report: NewReport | None = None,
                       vector: tuple[str, bytes] | None = None) -> int:
        """Insert a version (and its skill on first publish); refresh the skill if latest.

        The version's checks report and the (model, float32 bytes) vector of its text, when
        given, are written in the same transaction. Returns the skill's id.
        """
        ...

    def record_versions(self, versions: Iterable[NewVersion]) -> None: ...

    def delete_version(self, namespace: str, name: str, version: str) -> None: ...

    def delete_skill(self, namespace: str, name: str) -> None: ...

    def clear_catalogue(self) -> None:
        """Forget skills and versions (not namespaces or tokens) before a full reindex."""
        ...

    def count_download(self, skill_id: int) -> None: ...

    def add_downloads(self, counts: dict[tuple[str, str], int]) -> None:
        """Add (namespace, name) -> n to the skills' download counts, in one transaction."""
        ...

    def catalogue_tags(self) -> dict[tuple[str, str, str], str]:
        """(namespace, name, version) -> tag sha, for reconciling with git."""
        ...

    def get_skill(self, namespace: str, name: str) -> SkillRow | None: ...

    def versions(self, skill_id: int) -> list[VersionRow]: ...

    def get_version(self, skill_id: int, version: str) -> VersionRow | None: ...

    def list_skills(self, *, readable: frozenset[str], namespace: str | None,
                    after: tuple[str, str] | None, limit: int) -> list[SkillRow]:
        """Skills ordered by (namespace, name), after the cursor, in readable namespaces."""
        ...

    def count_skills(self, *, readable: frozenset[str], namespace: str | None) -> int: ...

    def skills_by_id(self, ids: Iterable[int], *, filters: SearchFilters,
                     readable: frozenset[str]) -> dict[int, SkillRow]:
        """The skills among `ids` that pass the filters and the caller may read."""
        ...

    def filtered_skills(self, *, filters: SearchFilters,
                        readable: frozenset[str]) -> list[SkillRow]:
        """Every skill that passes the filters and the caller may read, in one query."""
        ...

    def filtered_ids(self, *, filters: SearchFilters, readable: frozenset[str]) -> list[int]: ...

    def browse(self, *, filters: SearchFilters, readable: frozenset[str], order: str,
               offset: int, limit: int) -> list[SkillRow]:
        """Skills passing the filters in one of BROWSE_ORDERS (no query).

        CROSS JOIN keeps `skills` the outer loop, read in the order's index (m009) and
        stopped at the page; left to itself the planner starts from the namespaces'
        visibility index and sorts every skill (0.02 against 45-80 ms at 10,000)."""
        ...

    def rated_skills(self, *, filters: SearchFilters,
                     readable: frozenset[str]) -> list[SkillRow]:
        """The skills passing the filters that have outcome totals (any order)."""
        ...

    def unrated_skills(self, *, filters: SearchFilters, readable: frozenset[str],
                       limit: int) -> list[SkillRow]:
        """The first `limit` skills passing the filters without outcome totals, in the
        order their quality ranks them: installs up to INSTALLS_CAP, then namespace and
        name (the `skills_unrated` index of m009)."""
        ...

    def find_by_name(self, name: str, *, filters: SearchFilters,
                     readable: frozenset[str]) -> list[SkillRow]:
        """Skills called exactly `name` (in any readable namespace passing the filters)."""
        ...

    def catalogue_mark(self) -> tuple[int, int, int]:
        """(catalogue epoch, skills, newest version row): changes whenever any process adds a
        version, removes a skill or rebuilds the catalogue, even within one second (which a
        newest `updated_at` would miss)."""
        ...



class Reports(Protocol):
    """Checks reports per version, their history, reviewed exceptions."""

    def save_report(self, report: NewReport) -> str | None:
        """Record a report; return the verdict it replaced (None for a first report)."""
        ...

    def get_report(self, namespace: str, name: str, version: str) -> ReportRow | None: ...

    def verdicts(self, namespace: str, name: str) -> dict[str, str]:
        """version -> verdict for every checked version of a skill."""
        ...

    def report_history(self, namespace: str, name: str) -> list[HistoryRow]: ...

    def unchecked_versions(self) -> list[tuple[str, str, str]]:
        """(namespace, name, version) of versions with no report for their content."""
        ...

    def set_exception(self, namespace: str, name: str, rule: str, reason: str) -> None: ...

    def delete_exception(self, namespace: str, name: str, rule: str) -> bool: ...

    def exceptions(self, namespace: str, name: str) -> list[ExceptionRow]: ...


class HealthChecks(Protocol):
    """Scheduled health checks (`services.health`): the lease that makes one process of a
    deployment the scheduler, each version's last check and claim, and the log of checks.
    Times are seconds since the epoch; the lease and claims compare them across processes
    and nodes, so every node's clock must be roughly right (NTP)."""

    def take_lease(self, holder: str, *, now: float, ttl: float) -> bool:
        """Take the scheduler's lease until `now + ttl`, or renew it: one conditional write
        that succeeds when nobody holds it, `holder` holds it, or it expired. True: held."""
        ...

    def release_lease(self, holder: str) -> None:
        """Give the lease up (a clean stop), if `holder` holds it."""
        ...

    def lease(self) -> tuple[str, float] | None:
        """(holder, expiry) of the lease, expired or not; None: never taken or released."""
        ...

    def candidates(self, *, since_day: str) -> list[HealthCandidate]:
        """Every version in the catalogue with what the priority needs; `recent_reports`
        counts outcome reports from the UTC day `since_day` (YYYY-MM-DD) on."""
        ...

    def claim(self, namespace: str, name: str, version: str, holder: str, *, now: float,
              until: float, checked_at: float | None) -> bool:
        """Claim a version to check until `until`: one conditional write that succeeds when
        no live claim of another holder is on it and its last check is still `checked_at`
        (so two processes never check one version twice over one look at the queue)."""
        ...

    def release_claim(self, namespace: str, name: str, version: str, holder: str) -> None:
        ...

    def record_check(self, check: HealthCheckRow) -> None:
        """Log a check and make it the version's last (its claim is released)."""
        ...

    def checks_since(self, at: float) -> int:
        """How many checks were logged at or after `at` (the hourly budget's count)."""
        ...

    def recent_checks(self, *, readable: frozenset[str] | None, changed: bool,
                      limit: int, namespace: str | None = None) -> list[HealthCheckRow]:
        """The newest logged checks (only those that changed a verdict or a deprecation
        when `changed`) in public and `readable` namespaces (None: all), newest first."""
        ...

    def prune_checks(self, before: float) -> int:
        """Forget logged checks older than `before` (each version's last check stays)."""
        ...



class KeywordIndex(Protocol):
    """Full-text search over each skill's latest name, description, tags and body, with
    field weights (name 10, description 5, tags 3, body 1, as bm25 weights or tsvector
    weights A-D). Takes a parsed `KeywordQuery`: words only, so no user input ever reaches
    the backend's query syntax."""

    def search(self, query: KeywordQuery, *, filters: SearchFilters, readable: frozenset[str],
               limit: int) -> list[SearchHit]:
        """At most `limit` readable skills passing `filters`, best first: those matching
        every word, then those matching any word (a backend may leave the catalogue's very
        common words out of this second tier while a rarer word remains), by relevance
        within each tier. `score` is higher for better matches; hits carry no snippet."""
        ...

    def snippets(self, query: KeywordQuery, ids: Iterable[int]) -> dict[int, str]:
        """skill id -> a short excerpt of its best-matching field, matched words between
        HIGHLIGHT_START and HIGHLIGHT_END, for the ids among `ids` that match any word."""
        ...

    def start(self) -> None:
        """Start background work (term statistics); searches work before it finishes."""
        ...

    def close(self) -> None: ...


class Vectors(Protocol):
    """Embeddings by the digest of the text embedded; what has none yet."""

    def get_vector(self, text_sha256: str) -> bytes | None: ...

    def save_vectors(self, vectors: Iterable[tuple[str, str, bytes]]) -> None:
        """Store (text digest, model, float32 bytes) triples; existing digests are kept."""
        ...

    def skill_vectors(self) -> Iterator[tuple[int, bytes]]:
        """(skill id, vector bytes) of every skill whose current text has been embedded."""
        ...

    def vectors_mark(self) -> tuple[int, str, int]:
        """(catalogue epoch, newest skill update, newest vector): changes when any process
        changes what the vector matrix should hold."""
        ...

    def vectors_since(self, updated_at: str, vector_rowid: int) -> list[tuple[int, bytes]]:
        """(skill id, vector) of skills updated at or after `updated_at`, or whose vector
        was stored after `vector_rowid`."""
        ...

    def embed_jobs(self, limit: int = 256) -> list[EmbedJob]:
        """Skills whose current text has no stored vector (new, or indexed before a model)."""
        ...

    def skill_text(self, skill_id: int) -> EmbedJob | None: ...

    def stale_vectors(self, model: str, limit: int = 256) -> list[EmbedJob]:
        """Skills whose current vector was made by another `model` (an older model or
        text recipe), by id."""
        ...

    def restamp_vectors(self, vectors: Iterable[tuple[int, str, str, bytes]]) -> None:
        """Store each (skill id, new text digest, model, vector) and point the skill at
        it, in one transaction (an existing digest's vector is kept)."""
        ...



class Outcomes(Protocol):
    """Outcome reports and what they fold into; trust and health."""

    def record_outcomes(self, namespace: str, name: str, reports: list[NewOutcome], *,
                        decay: Callable[[float], float],
                        ema: Callable[[float | None, bool], float],
                        client_cap: int | None = None) -> list[NewOutcome]:
        """Store the reports not seen before (by reporter and id) and fold them into the
        per-version stats, the decayed totals and the client counts, all in one
        transaction. Returns the reports that were new, each with its `discount` when it
        is stored but not counted: as given (`author`), or `store.guards.guard`'s
        (`repeat_task`: its reporter's task already counted on the version; `client_cap`:
        its client already has `client_cap` counted reports on the version)."""
        ...

    def add_authors(self, namespace: str, name: str, version: str,
                    authors: Iterable[str]) -> None:
        """Remember who published a version (reporter keys: token hashes, `user:<id>`)."""
        ...

    def authors(self, namespace: str, name: str) -> dict[str, frozenset[str]]:
        """version -> the reporter keys that published it (`add_authors`)."""
        ...

    def version_stats(self, namespace: str, name: str) -> dict[str, VersionStats]: ...

    def outcome_days(self, namespace: str, name: str,
                     since: str) -> list[tuple[str, str, int, int]]:
        """(version, day, successes, failures) of a skill's counted reports from the UTC day
        `since` (YYYY-MM-DD) on, one row per version and day (the evidence chart's data; a
        counter kept by `record_outcomes`)."""
        ...

    def success_clients(self, namespace: str, name: str) -> int:
        """Distinct clients with at least one success on any version of the skill (a
        counter kept by `record_outcomes`: counting rows cost ~10 ms a post at 74k)."""
        ...

    def trust_of(self, namespace: str, name: str) -> str: ...

    def change_trust(self, namespace: str, name: str, old: str, new: str, reason: str,
                     actor: str) -> bool:
        """Move trust from `old` to `new` (compare-and-set); False when it was not `old`."""
        ...

    def trust_events(self, namespace: str, name: str, limit: int = 50) -> list[TrustEvent]: ...

    def set_health(self, namespace: str, name: str, version: str, status: str,
                   reason: str) -> bool:
        """Record a version's health (`deprecated` or `healthy`); False if unchanged."""
        ...

    def health(self, namespace: str, name: str) -> dict[str, tuple[str, str]]:
        """version -> (status, reason) for versions with a recorded health."""
        ...

    def outcome_totals(self, keys: Iterable[tuple[str, str]]
                       ) -> dict[tuple[str, str], list[tuple[float, float, str]]]:
        """(namespace, name) -> [(successes, failures, as_of)] per version, undecayed."""
        ...

    def task_stats(self, keys: Iterable[tuple[str, str]]
                   ) -> dict[tuple[str, str], list[TaskStats]]:
        """(namespace, name) -> its counted reports that name a task, per task (every
        version): successes, failures, mean report time, distinct reporters
        (`learning.tasks`). Skills without such reports are left out."""
        ...

    def save_task_vectors(self, model: str, vectors: Iterable[TaskVector]) -> None:
        """Store reported tasks' embeddings by `model`; a task already stored for the model
        is kept as it is (a task's text, and so its vector, never changes)."""
        ...

    def task_vectors(self, model: str, keys: Iterable[str]) -> dict[str, TaskVector]:
        """task_key -> its embedding by `model`, for the keys that have one."""
        ...

    def outcome_page(self, namespace: str, *, name: str | None, since: str | None,
                     until: str | None, after: tuple[str, str, str] | None,
                     limit: int) -> list[OutcomeRecord]:
        """Up to `limit` of a namespace's stored reports (of skill `name` when given) with
        `since` <= at < `until`, in (at, reporter, report_id) order after the key `after`:
        a keyset page of the evidence export (`store.evidence`)."""
        ...



class Proposals(Protocol):
    """Refinement proposals and their support; canary releases."""

    def add_proposal(self, row: ProposalRow) -> None: ...

    def get_proposal(self, proposal_id: str) -> ProposalRow | None: ...

    def open_proposal_like(self, namespace: str, name: str,
                           content_sha256: str) -> ProposalRow | None:
        """The open proposal whose resulting content is exactly this (agreeing edits)."""
        ...

    def add_support(self, proposal_id: str, proposer: str, evidence: dict[str, Any]) -> bool:
        """Count another proposer for a proposal; False when this one already counted."""
        ...

    def proposals(self, namespace: str, name: str | None = None, status: str | None = None,
                  proposer: str | None = None, limit: int = 100) -> list[ProposalRow]: ...

    def decide_proposal(self, proposal_id: str, status: str, by: str, comment: str,
                        version: str | None) -> bool:
        """Close an open proposal (compare-and-set on `open`)."""
        ...

    def proposal_page(self, namespace: str, *, name: str | None, since: str | None,
                      until: str | None, after: tuple[str, str] | None,
                      limit: int) -> list[ProposalRow]:
        """Up to `limit` of a namespace's proposals (any status) created in [`since`,
        `until`), in (created_at, id) order after `after` (the evidence export's pages)."""
        ...

    def start_canary(self, namespace: str, name: str, version: str, stable_version: str,
                     share: float) -> None:
        """A new active canary; any active one of the skill is superseded."""
        ...

    def canaries(self, namespace: str, name: str) -> list[CanaryRow]:
        """Every canary of a skill, newest first."""
        ...

    def finish_canary(self, namespace: str, name: str, version: str, state: str,
                      decision: dict[str, Any]) -> bool:
        """Close an active canary (compare-and-set on `active`)."""
        ...



class Users(Protocol):
    """People and service accounts."""

    def add_user(self, username: str, *, display_name: str = "", email: str = "",
                 password_hash: str | None = None, operator: bool = False,
                 kind: str = "user", org: str | None = None,
                 oidc: tuple[str, str] | None = None,
                 personal_namespace: bool = True) -> UserRow:
        """A new account; a person's account also gets its personal namespace row."""
        ...

    def user(self, username: str) -> UserRow | None: ...

    def user_by_id(self, user_id: int) -> UserRow | None: ...

    def user_by_oidc(self, issuer: str, subject: str) -> UserRow | None: ...

    def users(self, kind: str | None = None) -> list[UserRow]: ...

    def set_password(self, user_id: int, password_hash: str) -> None: ...

    def set_operator(self, user_id: int, operator: bool) -> None: ...

    def name_taken(self, name: str) -> bool:
        """Users, orgs and namespaces share one space of names."""
        ...



class Orgs(Protocol):
    """Orgs and their members' roles."""

    def add_org(self, name: str, owner_id: int | None, display_name: str = "",
                namespace: bool = True) -> None:
        """The org, its first owner and (unless it exists) its namespace of the same name."""
        ...

    def org_exists(self, name: str) -> bool: ...

    def delete_org(self, name: str) -> None:
        """The org, its members, invitations and service accounts; its namespaces stay,
        owned by nobody (the operator's to hand on), with their skills and history."""
        ...

    def orgs_of(self, user_id: int) -> list[tuple[str, str]]: ...

    def members(self, org: str) -> list[MemberRow]: ...

    def member_role(self, org: str, user_id: int) -> str | None: ...

    def set_member(self, org: str, user_id: int, role: str, *,
                   keep_an_owner: bool = True) -> bool:
        """Add or change a member; False (nothing changed) when it would leave no owner."""
        ...

    def remove_member(self, org: str, user_id: int) -> bool:
        """False when the member is not there; raises when it would leave no owner."""
        ...

    def roles_of(self, user_id: int) -> dict[str, str]:
        """namespace -> role for every namespace the account has a role on."""
        ...



class Tokens(Protocol):
    """Personal access tokens (sha256 stored)."""

    def add_token(self, user_id: int, token_sha256: str, prefix: str, label: str,
                  scopes: Iterable[str], namespaces: Iterable[str] | None,
                  expires_at: str | None) -> int: ...

    def token(self, token_sha256: str) -> TokenRow | None: ...

    def token_by_id(self, token_id: int) -> TokenRow | None: ...

    def tokens(self, user_ids: Iterable[int]) -> list[TokenRow]: ...

    def revoke_token(self, token_id: int) -> bool: ...

    def touch_token(self, token_id: int, at: str) -> None: ...



class Sessions(Protocol):
    """Browser sessions, sign-in flows, invitations."""

    def add_session(self, id_sha256: str, user_id: int, csrf: str, expires_at: str,
                    address: str, user_agent: str) -> None: ...

    def session(self, id_sha256: str) -> tuple[int, str, str] | None:
        """(user id, csrf token, expiry) of a session."""
        ...

    def delete_session(self, id_sha256: str) -> None: ...

    def add_flow(self, state: str, kind: str, data: dict[str, Any], expires_at: str) -> None: ...

    def take_flow(self, state: str, kind: str) -> dict[str, Any] | None:
        """The flow's data, once (it is deleted), unless expired."""
        ...

    def add_invitation(self, id_sha256: str, org: str, role: str, email: str,
                       created_by: int | None, expires_at: str) -> None: ...

    def invitation(self, id_sha256: str) -> InvitationRow | None: ...

    def accept_invitation(self, id_sha256: str, user_id: int) -> bool:
        """Mark it used and add the member, once; False if it was used meanwhile."""
        ...



class Releases(Protocol):
    """Releases waiting for review and their decisions."""

    def add_release(self, row: ReleaseRow) -> None: ...

    def release(self, release_id: str) -> ReleaseRow | None: ...

    def pending_release(self, namespace: str, name: str, version: str) -> ReleaseRow | None: ...

    def releases(self, namespaces: Iterable[str], state: str | None = "pending",
                 name: str | None = None) -> list[ReleaseRow]: ...

    def decide_release(self, release_id: str, state: str, by: str, comment: str) -> bool:
        """Compare-and-set from pending; False when it was decided meanwhile."""
        ...

    def decided_page(self, namespace: str, *, name: str | None, since: str | None,
                     until: str | None, after: tuple[str, str] | None,
                     limit: int) -> list[ReleaseRow]:
        """Up to `limit` of a namespace's decided (not pending) releases, decided in
        [`since`, `until`), in (decided_at, id) order after `after` (the evidence export)."""
        ...



class Audit(Protocol):
    """The audit log."""

    def audit(self, event: NewAudit) -> None: ...

    def audit_events(self, *, orgs: Iterable[str] | None, actor: str | None = None,
                     action: str | None = None, since: str | None = None,
                     before_id: int | None = None, limit: int = 100) -> list[AuditRow]:
        """Newest first; `orgs` None: every event (the operator's view)."""
        ...


class WriteLock(Protocol):
    """Serialises writes to one namespace's repo across nodes (the git write of a publish,
    a proposal branch, maintenance). Threads and processes of one node are serialised by
    the repo store's own lock first; this one holds across machines."""

    def hold(self, namespace: str) -> AbstractContextManager[None]: ...


class RateBuckets(Protocol):
    """Token buckets every process and node of a registry shares (outcome reports per
    token, sign-in failures per account and address): `rate` units a second up to
    `burst` per key, times in seconds since the epoch. Rows are transient."""

    def take(self, key: str, units: float, *, rate: float, burst: float, now: float,
             force: bool = False) -> float | None:
        """Spend `units` from `key`'s bucket: None when it held them; else spend nothing
        and return the level it holds (`force` spends anyway: a failure that happened)."""
        ...

    def level(self, key: str, *, rate: float, burst: float, now: float) -> float:
        """What `key`'s bucket holds now (`burst` for a key never seen)."""
        ...

    def sweep(self, prefix: str, *, rate: float, burst: float, now: float) -> int:
        """Forget the buckets of keys starting with `prefix` that are full again."""
        ...


class Clustering(Protocol):
    """How gap queries fold into demands (`learning.demands.Clustering`); the store calls it
    inside the transaction that records an ask, so two writers never both open a demand for
    the same need. Vectors and centroids are float32 bytes."""

    def nearest(self, vector: bytes, centroids: list[tuple[int, bytes]]) -> int | None:
        """The id of the demand the vector joins, or None: it opens a new one."""
        ...

    def fold(self, centroid: bytes, vector: bytes) -> bytes:
        """The centroid (a sum of unit vectors) with the vector added."""
        ...

    def representative(self, centroid: bytes, members: list[tuple[str, bytes]]) -> str:
        """The member query nearest the centroid."""
        ...


class Demands(Protocol):
    """Gap answers (`demand_asks`) clustered into demands (`demands`), and their closing by
    a published skill. Every listing admits only demands of the whole registry (scope
    None), of public namespaces and of the `readable` ones."""

    def record_ask(self, ask: NewGapAsk, clustering: Clustering, *,
                   members: int = 200) -> int:
        """Store the ask and fold it into the nearest open demand of its scope and model
        (or a new one), in one transaction; the representative is chosen among the
        demand's `members` most recent distinct queries. Returns the demand's id."""
        ...

    def demands(self, *, readable: frozenset[str], status: str | None,
                scope: str | None, asker: str | None, offset: int,
                limit: int) -> list[DemandRow]:
        """Visible demands, most distinct askers first (then asks, newest ask, id);
        `status` None: any; `scope` a namespace: only its; `asker`: only those it asked."""
        ...

    def demand(self, demand_id: int, *, readable: frozenset[str]) -> DemandRow | None:
        """The demand, if visible."""
        ...

    def asked(self, demand_id: int, asker: str) -> bool: ...

    def phrasings(self, demand_id: int, limit: int) -> list[tuple[str, int]]:
        """(query, times asked) of a demand's distinct queries, most asked first."""
        ...

    def open_centroids(self, namespace: str, *, registry: bool
                       ) -> list[tuple[int, str, bytes]]:
        """(id, model, centroid) of the open demands of `namespace`, and of the whole
        registry's too when `registry` (a public namespace answers those)."""
        ...

    def close_demand(self, demand_id: int, namespace: str, name: str, version: str,
                     similarity: float, at: str) -> bool:
        """Record the skill version that answered an open demand; False when it was
        closed meanwhile (compare-and-set)."""
        ...


class Uploads(Protocol):
    """Files uploaded ahead of a publish (ClawHub's two-step upload), by content digest,
    per namespace, kept for a day (`store.uploads.FileUploads`, beside the repos)."""

    def put(self, namespace: str, sha256: str, data: bytes) -> None: ...

    def get(self, namespace: str, sha256: str) -> bytes | None: ...

    def drop(self, namespace: str, hashes: Iterable[str]) -> None: ...

    def sweep(self, namespace: str) -> None: ...


class Database(Protocol):
    """The backend's lifecycle: schema migrations, readiness, closing."""

    @property
    def generation(self) -> Generation: ...

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied (safe when several nodes start at once);
        return their names."""
        ...

    def readiness(self) -> dict[str, str]:
        """`ok` per check, or what is wrong (the database answers, migrations applied)."""
        ...

    def close(self) -> None: ...


@dataclass
class Storage:
    """Everything the registry stores, one object per concern."""

    db: Database
    namespaces: Namespaces
    catalogue: Catalogue
    reports: Reports
    health: HealthChecks
    keyword: KeywordIndex
    vectors: Vectors
    outcomes: Outcomes
    proposals: Proposals
    users: Users
    orgs: Orgs
    tokens: Tokens
    sessions: Sessions
    releases: Releases
    audit: Audit
    buckets: RateBuckets
    demands: Demands
    # Set by the backend when the git writes of several nodes need a lock of its own
    # (PostgreSQL's advisory locks); None when the repo store's flock is enough.
    write_lock: WriteLock | None = None

    @property
    def generation(self) -> Generation:
        return self.db.generation

    def close(self) -> None:
        self.db.close()
