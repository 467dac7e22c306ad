"""The JSON bodies of the native API as typed models: one class per component schema of the
OpenAPI document (web/openapi.py turns them into `components/schemas`; a view's docstring
names one with `schema: Name`).

Each class follows a `*_json` renderer of web/api.py or web/accounts.py (or a service's
`to_dict`), and tests/test_openapi.py checks real answers against it, so a renderer that
drifts from its model fails a test. Conventions:

- a field without a default is always present; `X | None` may be null;
- `X | Absent = None` may be left out but is never null (a request's optional field, or a
  response field only some answers carry);
- extra fields are allowed (`extra="allow"`): a field added later breaks no client;
- a closed set of values is a `Literal`.

Adding a component is adding a class here: every subclass of `Body` is one (by its class
name), including the small ones nested in others."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.json_schema import SkipJsonSchema

COMPONENTS: dict[str, type[BaseModel]] = {}

Absent = SkipJsonSchema[None]  # with `= None`: may be left out; never null in the schema
Time = Annotated[str, Field(description="ISO 8601 date-time, UTC")]
Sha256 = Annotated[str, Field(description="hex sha256")]
SkillVerdict = Literal["safe", "caution", "dangerous", "unchecked"]
Trust = Literal["community", "verified", "trusted", "quarantined", "blocked"]
Channel = Literal["stable", "canary"]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class Body(BaseModel):
    """Base of every component; a subclass registers itself in COMPONENTS by its name."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.__name__ in COMPONENTS:
            raise TypeError(f"two component models named {cls.__name__}")
        COMPONENTS[cls.__name__] = cls


# -- errors ------------------------------------------------------------------------------------


class Problem(Body):
    """One finding about the input: which field, what, how to fix."""

    field: str
    message: str
    hint: str | Absent = None
    severity: Literal["error", "warning"] | Absent = None


class Error(Body):
    """The body of every 4xx and 5xx answer of the JSON API. Fields past `problems` come
    with the errors that name them, and an error may carry more context than is listed."""

    code: str = Field(description="stable, machine-readable")
    message: str = Field(description="what is wrong and how to fix it")
    hint: str | Absent = None
    problems: list[Problem] | Absent = None
    code_detail: str | Absent = Field(None, description="a finer code, e.g. token_expired")
    report: Report | Absent = Field(None, description="dangerous_skill: the checks report")
    retry_after: int | None = Field(None, description="seconds to wait (also Retry-After)")
    semantic: str | Absent = Field(None, description="the embedding model's state")
    files: list[str] | Absent = Field(None, description="a missing file: the version's files")
    version: str | Absent = Field(None, description="version_exists: the version")
    versions: list[str] | Absent = Field(None, description="a missing version: the skill's")
    conflicts: list[dict[str, Any]] | Absent = Field(
        None, description="merge_conflict: each conflicting hunk or file")
    sides: dict[str, str] | Absent = Field(None, description="merge_conflict: ours, theirs")
    needed_scope: str | Absent = Field(None, description="the token scope this needs")
    needed_role: str | Absent = Field(None, description="the least role this needs")
    your_role: str | None = Field(None, description="the caller's role there, if any")
    limit_per_second: float | Absent = Field(None, description="rate_limited: the rate")
    burst: int | Absent = Field(None, description="rate_limited: the burst")


# -- catalogue ---------------------------------------------------------------------------------


class Namespace(Body):
    """A namespace the caller may read."""

    name: str
    visibility: str
    skills: int
    git: str = Field(description="the namespace's git path")


class NamespaceList(Body):
    """The namespaces the caller may read."""

    namespaces: list[Namespace]


class SkillSummary(Body):
    """A skill as listed (its latest version)."""

    namespace: str
    name: str
    description: str
    latest_version: str
    tags: list[str]
    downloads: int
    created_at: Time
    updated_at: Time
    url: str
    install: str = Field(description="the CLI command that installs it")
    verdict: SkillVerdict
    deprecated: bool = Field(description="the latest version is dangerous")
    trust: Trust


class SkillPage(Body):
    """A page of the catalogue."""

    skills: list[SkillSummary]
    total: int
    next_cursor: str | None


class Version(Body):
    """One version of a skill."""

    namespace: str
    name: str
    version: str
    description: str
    published_at: Time
    commit: str
    tag: str = Field(description="<name>/v<version>")
    tag_sha: str
    content_sha256: Sha256
    url: str
    verdict: SkillVerdict
    deprecated: bool
    deprecated_reason: str | None
    report: str = Field(description="the URL of the checks report")


class Skill(SkillSummary):
    """A skill with every version, newest first."""

    visibility: str
    git: str
    versions: list[Version]


class File(Body):
    """One file of a version."""

    path: str
    size: int
    sha256: Sha256
    executable: bool


class Archive(Body):
    """Where a version's archive is and its digest."""

    url: str
    sha256: Sha256
    size: int


class Archives(Body):
    """A version's archives by format."""

    tar_gz: Archive = Field(alias="tar.gz")
    zip: Archive


class VersionDetail(Version):
    """One version with its files, frontmatter and archives."""

    files: list[File]
    frontmatter: dict[str, Any] = Field(description="SKILL.md's YAML frontmatter")
    archives: Archives
    install: str
    channel: Channel | Absent = Field(
        None, description="for `latest` with a client_id: the channel it came from")


# -- search ------------------------------------------------------------------------------------


class KeywordPart(Body):
    """The keyword search's part of a score."""

    rank: int
    bm25: float


class SemanticPart(Body):
    """The semantic search's part of a score."""

    rank: int
    similarity: float


class ExplorePart(Body):
    """Exploration on this page (docs/SEARCH.md): the evidence drawn from the posterior."""

    sample: float
    quality: float = Field(description="the quality scored with the sample as evidence")
    plain_rank: int = Field(description="the result's place without exploration")


class TaskPart(Body):
    """The evidence of the skill's reported tasks near the query (docs/LEARNING.md)."""

    tasks: int = Field(description="reported tasks near enough to count")
    successes: float = Field(description="weighted by closeness to the query, decayed")
    failures: float
    wilson: float
    weight: float = Field(description="its share of the evidence term; the global numbers "
                                      "have the rest")


class ScoreParts(Body):
    """The terms of a result's score (docs/SEARCH.md)."""

    keyword: KeywordPart | None
    semantic: SemanticPart | None
    exact_name: bool
    relevance: float
    successes: float
    failures: float
    wilson: float
    new_skill_floor: bool
    installs: float
    quality: float
    score: float
    task: TaskPart | None = Field(None, description="evidence of reported tasks near the "
                                                    "query, when there is enough of it")
    explore: ExplorePart | None = Field(None, description="on a page that explores")


class SearchResult(SkillSummary):
    """One search result: the skill as listed, its score and a snippet."""

    version: str
    score: float
    score_parts: ScoreParts
    snippet: str
    snippet_html: str = Field(description="escaped, matches in <mark>")


class NameUrl(Body):
    """A skill by name, and its API URL."""

    namespace: str
    name: str
    url: str


class Gap(Body):
    """Whether the best semantic match is below the threshold."""

    gap: bool
    best_similarity: float
    threshold: float
    closest: NameUrl | None


class SearchResults(Body):
    """A page of search results."""

    query: str
    mode: str = Field(description="the mode that served")
    requested_mode: str
    semantic: str = Field(description="the embedding model's state")
    results: list[SearchResult]
    next_cursor: str | None
    gap: Gap | None


class GapAnswer(Gap):
    """A gap check of a query."""

    query: str


# -- demands -----------------------------------------------------------------------------------


class DemandAnswer(Body):
    """The skill version whose publish closed a demand."""

    namespace: str
    name: str
    version: str
    similarity: float = Field(description="cosine of its text with the demand's centroid")
    url: str
    install: str


class Demand(Body):
    """Similar gap queries clustered into one need (docs/LEARNING.md, Demands)."""

    id: int
    status: Literal["open", "closed"]
    namespace: str | None = Field(description="the namespace it was asked in; null: the "
                                              "whole registry")
    representative: str = Field(description="the asked phrasing nearest the centroid")
    asks: int
    askers: int = Field(description="distinct askers")
    first_asked: Time
    last_asked: Time
    closed_at: Time | None
    answer: DemandAnswer | None
    url: str


class Phrasing(Body):
    """One distinct query of a demand."""

    query: str
    asks: int


class DemandDetail(Demand):
    """A demand with its phrasings, and whether the caller asked it."""

    phrasings: list[Phrasing]
    asked_by_you: bool


class DemandList(Body):
    """A page of demands, most distinct askers first."""

    demands: list[Demand]
    next_offset: int | None


# -- checks ------------------------------------------------------------------------------------


class Finding(Body):
    """One finding of the checks."""

    rule: str
    family: str
    severity: Literal["info", "low", "medium", "high", "critical"]
    source: str
    file: str | None
    line: int | None
    message: str
    hint: str
    excerpt: str
    confidence: str | None
    exception: str | None = Field(description="a reviewed exception's reason")


class Report(Body):
    """The checks report of one version."""

    verdict: Literal["safe", "caution", "dangerous"]
    valid: bool
    counts: dict[str, int] = Field(description="findings weighing on the verdict, by severity")
    findings: list[Finding]
    problems: list[Problem]
    warnings: list[Problem]
    sandbox: dict[str, Any] | None
    timings_ms: dict[str, float]
    pipeline: str
    checked_at: float


class VerdictChange(Body):
    """A stored verdict that changed, and why."""

    version: str
    old_verdict: str | None
    new_verdict: str
    pipeline: str
    reason: str
    changed_at: Time


class VersionReport(Report):
    """The checks report of a version, with the verdict changes of that version."""

    namespace: str
    name: str
    version: str
    deprecated: bool
    history: list[VerdictChange]


class CheckException(Body):
    """A reviewed exception: a rule the owner judged a false alarm on this skill."""

    rule: str
    reason: str
    created_at: Time


class ExceptionList(Body):
    """A skill's reviewed exceptions."""

    exceptions: list[CheckException]


class VerdictMove(Body):
    """A stored version's verdict, re-judged."""

    version: str
    old_verdict: str | None
    new_verdict: str


class ExceptionChange(Body):
    """A reviewed exception recorded (PUT) or removed (DELETE)."""

    rule: str
    reason: str | Absent = Field(None, description="PUT: the recorded reason")
    removed: bool | Absent = Field(None, description="DELETE: true")
    changes: list[VerdictMove]


class HealthCheck(Body):
    """One health check of a stored version: the verdict it found and what it changed."""

    namespace: str
    name: str
    version: str
    at: Time
    kind: Literal["scheduled", "health"] = Field(
        description="scheduled: the server's scheduler; health: `skills-hub health`")
    priority: float
    reasons: list[str] = Field(description="why the scheduler chose it")
    old_verdict: Literal["safe", "caution", "dangerous"] | None
    new_verdict: Literal["safe", "caution", "dangerous"]
    health: Literal["deprecated", "restored", ""] = Field(
        description="deprecated or restored by this check; empty: no change")
    note: str = Field(description="why it was deprecated")
    ms: float


class HealthQueueItem(Body):
    """A stored version due a health check, and why (docs/LEARNING.md)."""

    namespace: str
    name: str
    version: str
    priority: float
    reasons: list[str]
    verdict: Literal["safe", "caution", "dangerous"] | None
    last_checked_at: Time | None


class HealthSchedule(Body):
    """The scheduled health checks as the caller may see them: the queue's head, the last
    check and the recent changes in readable namespaces; the hour's count and the lease
    only for the operator (null otherwise)."""

    enabled: bool
    budget_per_hour: int
    checks: str = Field(description="the fingerprint of the checks that run now")
    due: int = Field(description="versions due a check, of those the caller may see")
    queue: list[HealthQueueItem]
    last_check: HealthCheck | None
    changes: list[HealthCheck]
    checked_last_hour: int | None
    holder: str | None = Field(description="the process holding the scheduler's lease")
    lease_expires_at: Time | None


# -- outcomes ----------------------------------------------------------------------------------


class VersionStats(Body):
    """The outcome statistics of one version."""

    version: str
    successes: int
    failures: int
    infra_errors: int
    ema: float | None
    score_mean: float | None
    last_at: Time | None
    discounted: int = Field(description="reports stored but not counted: from an author of "
                                        "the version, a repeated task, or past the cap of "
                                        "one client (docs/LEARNING.md)")


class VersionEvidence(VersionStats):
    """One version's statistics with its Wilson lower bound."""

    wilson: float


class TrustEvent(Body):
    """A change of a skill's trust level."""

    old: str
    new: str
    reason: str
    actor: str
    at: Time


class Canary(Body):
    """A version going out to a share of clients before it becomes stable."""

    version: str
    stable_version: str
    share: float
    state: Literal["active", "promoted", "rolled_back", "superseded"]
    started_at: Time
    decided_at: Time | None
    decision: dict[str, Any] | None


class OutcomeReceipt(Body):
    """What outcome reports did."""

    recorded: int
    repeated: int
    trust: Trust
    trust_change: TrustEvent | None
    versions: dict[str, VersionStats] = Field(
        description="version -> its statistics after the reports")


class TaskGroup(Body):
    """A group of similar reported tasks and its counted outcomes (docs/LEARNING.md)."""

    label: str | None = Field(description="a task of the group as reported, shown only when "
                                          "two or more tokens reported it")
    tasks: int
    successes: int
    failures: int
    wilson: float


class Outcomes(Body):
    """A skill's evidence from outcome reports."""

    namespace: str
    name: str
    trust: Trust
    successes: float
    failures: float
    wilson: float
    clients: int
    versions: list[VersionEvidence]
    events: list[TrustEvent]
    canaries: list[Canary]
    deprecated: dict[str, str] = Field(description="version -> why it is deprecated")
    tasks: list[TaskGroup] = Field(
        description="the reported tasks grouped by similarity, most reported first "
                    "(empty while the model is not ready)")


class TrustAnswer(Body):
    """A skill's trust level after a block or its lifting."""

    trust: Trust
    event: TrustEvent | None


class Resolution(Body):
    """The version `latest` means for a client."""

    version: str
    channel: Channel
    content_sha256: Sha256
    canary: Canary | None


# -- proposals ---------------------------------------------------------------------------------


class Proposal(Body):
    """A proposed refinement of a skill."""

    id: str
    namespace: str
    name: str
    status: Literal["open", "accepted", "rejected"]
    author: str | None = Field(description="the proposer's namespace")
    base_version: str
    applies_to: str
    verdict: str
    support: int
    content_sha256: Sha256
    commit: str
    branch: str
    edits: list[Any]
    evidence: dict[str, Any]
    reasoning: str
    created_at: Time
    decided_at: Time | None
    decided_by: str | None
    comment: str | None
    version: str | None = Field(description="the version an accepted one became")
    url: str


# -- evidence export (JSON lines; learning/evidence.py writes them) ----------------------------

Tier = Literal["gold", "silver", "bronze", "rejected"]


class EvidenceClient(Body):
    """The reporting agent's name and model (redacted), never its id or token."""

    agent: str | None
    model: str | None


class VersionOutcomes(Body):
    """How a version did since: its counted outcomes and mean signal score."""

    successes: int
    failures: int
    success_rate: float | None
    mean_score: float | None


class EvidenceReview(Body):
    """A proposal's review: its decision (`open` while undecided) and the comment."""

    decision: Literal["open", "accepted", "rejected"]
    comment: str | None
    at: Time | None


class OutcomeLine(Body):
    """One outcome report of an evidence export."""

    kind: Literal["outcome"]
    tier: Tier
    id: str = Field(description="a digest of the reporter and the report's id: stable")
    namespace: str
    skill: str
    version: str
    outcome: Literal["success", "failure", "infra_error"]
    failure_kind: str | None
    signals: dict[str, Any]
    score: float | None = Field(description="the signal score in [-1, 1]; null: infra error")
    client: EvidenceClient
    discount: str | None = Field(description="why the registry stored the report without "
                                 "counting it (author, repeat_task, client_cap)")
    at: Time
    redactions: int = Field(description="secrets replaced by [REDACTED:<rule id>]")


class ProposalLine(Body):
    """One proposal of an evidence export, with its edits, diff, evidence and review."""

    kind: Literal["proposal"]
    tier: Tier
    id: str
    namespace: str
    skill: str
    base_version: str
    applies_to: str
    edits: list[Any]
    diff: str | None = Field(description="unified diff against `applies_to`")
    evidence: dict[str, Any]
    reasoning: str
    support: int
    verdict: str
    review: EvidenceReview
    version: str | None = Field(description="the version an accepted one became")
    version_outcomes: VersionOutcomes | None
    created_at: Time
    redactions: int


class ReviewLine(Body):
    """One decided release (required review) of an evidence export."""

    kind: Literal["review"]
    tier: Tier
    id: str
    namespace: str
    skill: str
    version: str
    decision: Literal["approved", "rejected", "withdrawn"]
    comment: str | None
    verdict: str
    commit: str
    content_sha256: Sha256
    version_outcomes: VersionOutcomes | None
    created_at: Time
    decided_at: Time | None
    redactions: int


class EvidenceLine(RootModel[OutcomeLine | ProposalLine | ReviewLine]):
    """One line of an evidence export (`kind` tells which)."""


COMPONENTS["EvidenceLine"] = EvidenceLine  # a union, so not a Body


class ProposalList(Body):
    """Proposals."""

    proposals: list[Proposal]


class ProposalOutcome(Proposal):
    """A proposal as sent: new, or an agreeing open one that gained support."""

    created: bool
    supported: bool = Field(description="the caller's support was counted")
    policy: str | None


class ProposalDetail(Proposal):
    """A proposal with its diff and checks report."""

    diff: str
    report: Report


class QueuedProposal(Proposal):
    """An open proposal in a review queue, with its diff."""

    diff: str


class ReviewPolicy(Body):
    """A namespace's review policy for proposals."""

    namespace: str
    policy: str


# -- publishing --------------------------------------------------------------------------------


class Duplicate(Body):
    """A published skill that covers nearly the same ground."""

    namespace: str
    name: str
    similarity: float
    url: str
    hint: str


class PendingRelease(Body):
    """The release a publish is held as, under review."""

    id: str
    state: str
    url: str


class Published(Body):
    """What a publish did."""

    status: Literal["published", "unchanged", "pending", "checked"] = Field(
        description="checked: a dry run's answer (nothing stored)")
    namespace: str
    name: str
    version: str
    commit: str
    tag: str = Field(description="the tag's sha (empty while pending)")
    content_sha256: Sha256
    warnings: list[Problem]
    url: str
    install: str
    verdict: str
    report: Report | None = Field(description="null when unchanged content skipped the checks")
    duplicates_checked: bool
    duplicates: list[Duplicate]
    release: PendingRelease | Absent = Field(
        None, description="pending only: the release under review")
    hint: str | Absent = None
    dry_run: bool | Absent = Field(None, description="a dry run: true")
    for_review: bool | Absent = Field(
        None, description="a dry run: whether a publish would wait for review")


# -- accounts ----------------------------------------------------------------------------------


class OrgRole(Body):
    """A role in an org."""

    org: str
    role: str


class Whoami(Body):
    """Who the caller is."""

    username: str
    kind: str
    display_name: str
    email: str
    operator: bool
    via: str
    scopes: list[str]
    namespaces: list[str] | None = Field(description="the namespaces the token is limited to")
    orgs: list[OrgRole]
    roles: dict[str, str] = Field(description="namespace -> role")
    namespace: str | None = Field(description="where it publishes by default")


class Session(Body):
    """A browser session: who, and the CSRF token its writes send."""

    username: str
    csrf: str


class SignedOut(Body):
    """The browser session ended."""

    signed_out: bool


class DeviceGrant(Body):
    """A device authorization grant begun at the OpenID provider."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    interval: int
    expires_in: int


class DevicePending(Body):
    """The device grant is not approved yet: poll again after `interval`."""

    status: str = Field(description="authorization_pending or slow_down")


class User(Body):
    """An account."""

    username: str
    display_name: str
    email: str
    kind: str
    org: str | None
    operator: bool
    created_at: Time
    disabled: bool


class UserList(Body):
    """Every account."""

    users: list[User]


class Username(Body):
    """An account, by name."""

    username: str


class Token(Body):
    """A token (never its secret)."""

    id: int
    account: str
    prefix: str
    label: str
    scopes: list[str]
    namespaces: list[str] | None
    created_at: Time
    expires_at: Time | None
    last_used_at: Time | None
    revoked_at: Time | None


class TokenList(Body):
    """Tokens."""

    tokens: list[Token]


class NewToken(Body):
    """A new token: the secret, shown once, and what it is."""

    token: str = Field(description="the secret, shown once")
    token_info: Token


class RevokedToken(Body):
    """A token, revoked."""

    token_info: Token


class NewOrg(Body):
    """An org and its namespace."""

    org: str
    namespace: str


class DeletedOrg(Body):
    """An org deleted."""

    deleted: str = Field(description="the org's name")


class Member(Body):
    """A member of an org."""

    username: str
    display_name: str
    kind: str
    role: str
    added_at: Time


class MemberList(Body):
    """An org's members."""

    members: list[Member]


class MemberAnswer(Body):
    """A member added or their role changed."""

    member: Member


class RemovedMember(Body):
    """A member removed."""

    removed: str = Field(description="the username")


class ServiceAccount(Body):
    """A service account added to an org."""

    username: str = Field(description="<org>.<name>")
    role: str


class Invitation(Body):
    """A one-use invitation to join an org."""

    secret: str
    url: str = Field(description="the page a browser opens")
    accept: str = Field(description="this API's accept URL")
    role: str


class NamespaceOwner(Body):
    """Who owns a namespace: an org, or a user."""

    org: str | Absent = None
    user: str | None = None


class NamespaceSettings(Body):
    """A namespace's owner, visibility and policies."""

    name: str
    visibility: str
    owner: NamespaceOwner | None = Field(description="{org} or {user}")
    release_policy: str
    two_person: bool
    review_policy: str


class Release(Body):
    """A release under review."""

    id: str
    namespace: str
    name: str
    version: str
    state: Literal["pending", "approved", "rejected", "withdrawn"]
    author: str
    verdict: str
    content_sha256: Sha256
    commit: str
    branch: str
    created_at: Time
    decided_at: Time | None
    decided_by: str | None
    comment: str | None
    url: str


class ReleaseList(Body):
    """Releases under review."""

    releases: list[Release]


class ReleaseDecision(Body):
    """A release, approved or rejected."""

    release: Release


class QueuedRelease(Release):
    """A pending release in a review queue, with its diff against the current version."""

    diff: str
    current_version: str | None


class ReleaseDetail(QueuedRelease):
    """A release with its diff and checks report."""

    report: Report


class ReviewQueue(Body):
    """What waits for a maintainer's review."""

    releases: list[QueuedRelease]
    proposals: list[QueuedProposal]


class AuditEvent(Body):
    """One event of the audit log."""

    id: int
    at: Time
    actor: str
    action: str
    target: str
    org: str | None
    namespace: str | None
    address: str
    user_agent: str
    request_id: str
    detail: dict[str, Any]


class AuditPage(Body):
    """A page of the audit log, newest first."""

    events: list[AuditEvent]
    next_cursor: str | None


# -- request bodies (the accounts routes), named by their view ---------------------------------


class LoginRequest(Body):
    """A password sign-in for a personal access token."""

    username: str
    password: str
    label: str | Absent = None
    days: int | Absent = None
    scopes: list[str] | Absent = None


class SessionRequest(Body):
    """A password sign-in for a browser session."""

    username: str
    password: str


class DeviceTokenRequest(Body):
    """A poll of the device grant."""

    device_code: str
    label: str | Absent = None


class AddUserRequest(Body):
    """A new account."""

    username: str
    password: str | Absent = None
    display_name: str | Absent = None
    email: str | Absent = None
    operator: bool | Absent = None


class CreateTokenRequest(Body):
    """A new token: of the caller, or of a service account (`account`)."""

    label: str | Absent = None
    days: int | Absent = None
    account: str | Absent = None
    scopes: list[str] | Absent = None
    namespaces: list[str] | Absent = None


class CreateOrgRequest(Body):
    """A new org."""

    name: str
    display_name: str | Absent = None


class SetMemberRequest(Body):
    """A member's role."""

    role: str


class AddServiceAccountRequest(Body):
    """A new service account."""

    name: str
    role: str | Absent = None


class InviteRequest(Body):
    """A new invitation."""

    role: str | Absent = None
    email: str | Absent = None
    days: int | Absent = None


class AcceptRequest(Body):
    """Accepting an invitation, signed in or as a new account."""

    username: str | Absent = None
    password: str | Absent = None
    display_name: str | Absent = None
    email: str | Absent = None


class SetVisibilityRequest(Body):
    """A namespace's visibility."""

    visibility: str


class SetReleasePolicyRequest(Body):
    """A namespace's release policy."""

    policy: str
    two_person: bool | Absent = None


class ApproveRequest(Body):
    """Approving a release."""

    comment: str | Absent = None


class RejectRequest(Body):
    """Rejecting a release."""

    comment: str



# -- request bodies (the native API's JSON writes) ---------------------------------------------


class OutcomeSignals(Body):
    """What the agent saw, all optional; an unknown signal is refused."""

    model_config = ConfigDict(extra="forbid")
    task_accepted: bool | None = None
    retries: Annotated[int, Field(ge=0, le=1000)] | Absent = None
    edit_ratio: Annotated[float, Field(ge=0, le=1)] | Absent = None
    session_continued: bool | None = None
    error_reported: bool | None = None


class OutcomeClient(Body):
    """The reporting agent, all optional (1-200 characters each)."""

    agent: ShortText | None = None
    model: ShortText | None = None
    id: ShortText | None = None


class OutcomeReport(Body):
    """How one skill version did for an agent."""

    id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$",
                    description="unique per report; a repeat is acknowledged, not counted")
    version: str = Field(min_length=1, max_length=64)
    outcome: Literal["success", "failure", "infra_error"]
    failure_kind: Literal["wrong_result", "error", "timeout", "incomplete", "unsafe",
                          "other"] | Absent = Field(None, description="with a failure: why")
    signals: OutcomeSignals | None = None
    client: OutcomeClient | None = None
    at: str | None = Field(None, description="ISO 8601, the last 90 days; default: now")
    task: str | None = Field(None, min_length=1, max_length=1000,
                             description="the task it served (text or a label); a task its "
                                         "token already reported on the version counts once")


class OutcomeBatch(Body):
    """Up to 1000 outcome reports, all recorded or none."""

    outcomes: list[OutcomeReport] = Field(min_length=1, max_length=1000)


class OutcomesRequest(RootModel[OutcomeReport | OutcomeBatch]):
    """One outcome report, or a batch."""


COMPONENTS["OutcomesRequest"] = OutcomesRequest  # a union, so not a Body


class TrustRequest(Body):
    """Blocking a skill, or lifting the block."""

    trust: Literal["blocked", "community"]
    reason: str


class ProposalRequest(Body):
    """A proposed refinement: edits against a base version, with evidence and reasoning."""

    base_version: str = Field(min_length=1)
    edits: list[dict[str, Any]] = Field(
        min_length=1, description="{op: replace|insert_after|append|delete, target, content, "
        "file} or Hermes's {old_string, new_string, replace_all, file_path}")
    evidence: dict[str, Any] | Absent = Field(
        None, description="outcome counts, a failure summary, trajectory excerpts")
    reasoning: str | Absent = Field(None, description="why the edits make the skill better")


class ReviewRequest(Body):
    """A maintainer's decision on a proposal (a rejection needs a comment)."""

    decision: Literal["accept", "reject"]
    comment: str | None = None
    version: str | None = Field(None, description="accept: the version (default next patch)")
    canary: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None, description="accept: first to this share of clients")


class PolicyRequest(Body):
    """A namespace's review policy for proposals."""

    policy: Literal["review", "auto"]


for _model in COMPONENTS.values():  # resolve the references to classes defined further down
    _model.model_rebuild()
