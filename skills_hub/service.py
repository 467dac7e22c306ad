"""The domain API: publish, read, archive, search, tokens, reindex. No HTTP, no CLI.

Every write goes to git first (the source of truth) and then to the index; a rejected
request raises before anything is written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .checks.findings import DANGEROUS, FAMILIES
from .checks.pipeline import Options, Report, check_bundle
from .config import Settings
from .errors import (
    AmbiguousName,
    BadRequest,
    Conflict,
    DangerousSkill,
    Forbidden,
    InvalidReport,
    InvalidSkill,
    NotFound,
    Problem,
    Unauthorized,
    VersionExists,
)
from .learning import gate
from .learning.edits import apply_edits, parse_edits
from .learning.merge import rebase, unified_diff
from .learning.outcomes import OutcomeReport, RateLimiter, parse_reports
from .ranking import trust as trust_rules
from .ranking.quality import decay_factor, decayed_totals, wilson_lower_bound
from .search.embedder import Embedder, skill_text
from .search.engine import (
    MAX_RESULTS,
    MODES,
    SORTS,
    Duplicate,
    Gap,
    SearchEngine,
    SearchRequest,
    SearchResults,
)
from .search.vectors import to_bytes
from .skill import semver
from .skill.bundle import Bundle, from_directory, to_targz, to_zip
from .skill.manifest import Manifest, parse_manifest
from .store.cache import ContentCache
from .store.gitstore import GitStore, StoreConflict, TagInfo, Unchanged
from .store.index import (
    TRUST_LEVELS,
    CanaryRow,
    ExceptionRow,
    HistoryRow,
    Index,
    NewOutcome,
    NewReport,
    NewVersion,
    ProposalRow,
    ReportRow,
    SearchFilters,
    SkillRow,
    TrustEvent,
    VersionRow,
    VersionStats,
)

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$|^[a-z0-9]$")
RESERVED_NAMESPACES = frozenset({
    "api", "git", "static", "openapi.json", "docs", "search", "login", "logout", "admin",
    "settings", "health", "new", "well-known", "favicon.ico", "robots.txt", "s", "u",
    "clawhub",  # the ClawHub-compatible API lives under /clawhub
    # marketplace names Claude Code refuses (a namespace's name is its marketplace's name)
    "inline", "builtin", "skills-dir", "synced", "agent-skills", "claude-plugins-official",
    "claude-official", "official-claude", "anthropic-official", "claude-marketplace",
})
SEED_NAMESPACE = "examples"
MAINTAIN_EVERY = 64  # publishes to a namespace between two repacks
TOKEN_PREFIX = "shub_"
MAX_QUERY_CHARS = 1000
VERDICTS = ("safe", "caution", "dangerous", "unchecked")
ARCHIVE_FORMATS = ("tar.gz", "zip")
MAX_EXCEPTION_REASON = 500
MAX_EVIDENCE_BYTES = 64 * 1024
MAX_REASONING = 10_000
PROPOSAL_STATES = ("open", "accepted", "rejected")
REVIEW_POLICIES = ("review", "auto")
RULE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token scoped to one namespace, or the operator (seed, import)."""

    namespace: str | None
    operator: bool = False
    token_id: str | None = None  # sha256 of the bearer token (rate limits, reporter identity)

    @property
    def readable(self) -> frozenset[str]:
        return frozenset({self.namespace}) if self.namespace else frozenset()

    def can_write(self, namespace: str) -> bool:
        return self.operator or self.namespace == namespace


ANONYMOUS = Principal(None)
OPERATOR = Principal(None, operator=True)


@dataclass(frozen=True)
class PublishOutcome:
    status: str  # "published" or "unchanged"
    namespace: str
    name: str
    version: str
    commit_sha: str
    tag_sha: str
    content_sha256: str
    warnings: tuple[Problem, ...] = ()
    report: Report | None = None  # None when unchanged content skipped the checks
    verdict: str = "safe"
    # Readable skills whose text is at least 0.9 similar; None when the embedding model was
    # not loaded yet (the check did not run), () when it ran and found none.
    duplicates: tuple[Duplicate, ...] | None = None


@dataclass(frozen=True)
class HealthChange:
    """A stored version whose verdict changed when its checks were run again."""

    namespace: str
    name: str
    version: str
    old_verdict: str | None
    new_verdict: str

    @property
    def deprecated(self) -> bool:
        return self.new_verdict == DANGEROUS


@dataclass(frozen=True)
class Archive:
    data: bytes
    sha256: str
    filename: str
    media_type: str


@dataclass(frozen=True)
class OutcomeReceipt:
    """What a post of outcome reports did."""

    recorded: int   # new reports stored
    repeated: int   # ids this token had already sent (acknowledged, not counted again)
    trust: str      # the skill's trust level after the reports
    trust_change: TrustEvent | None
    versions: dict[str, VersionStats]  # the reported versions' statistics after the reports


@dataclass(frozen=True)
class OutcomeSummary:
    """A skill's evidence: per-version statistics, Wilson bound and trust history."""

    skill: SkillRow
    versions: list[tuple[VersionStats, float]]  # (stats, Wilson bound of its counts)
    successes: float  # decayed, every version
    failures: float
    wilson: float
    clients: int
    trust: str
    events: list[TrustEvent]
    canaries: list[CanaryRow]
    deprecated: dict[str, str]  # version -> why
    live: gate.CanaryDecision | None  # the active canary judged on today's numbers


@dataclass(frozen=True)
class ProposalOutcome:
    proposal: ProposalRow
    created: bool      # False: the edits agreed with an open proposal, which gained support
    supported: bool    # the caller's support was counted (False: it already was)
    policy_note: str | None  # the `auto` policy's reason to accept or to leave for review


@dataclass(frozen=True)
class ProposalView:
    proposal: ProposalRow
    diff: str  # unified diff against the version it applies to


@dataclass(frozen=True)
class Resolution:
    """The version a client gets for `latest`, and through which channel."""

    row: VersionRow
    channel: str  # "stable" or "canary"
    canary: CanaryRow | None  # the active canary, if any


@dataclass(frozen=True)
class ProposalFields:
    base_version: str
    edits: list[Any]
    evidence: dict[str, Any]
    reasoning: str


@dataclass(frozen=True)
class FlatCatalogue:
    """The skills reachable by a bare name in one scope (a namespace, or every namespace
    the caller may read). A name held by several namespaces is not reachable by its bare
    name in the server-wide scope: it is listed in `ambiguous` instead."""

    skills: list[SkillRow]  # by name
    ambiguous: dict[str, list[str]]  # name -> ["ns/name", ...]


@dataclass(frozen=True)
class SearchPage:
    results: SearchResults
    next_cursor: str | None


@dataclass(frozen=True)
class SkillPage:
    skills: list[SkillRow]
    total: int
    next_cursor: str | None


@dataclass(frozen=True)
class SkillDetail:
    skill: SkillRow
    versions: list[VersionRow]  # newest first
    visibility: str
    verdicts: dict[str, str] = field(default_factory=dict)  # version -> checks verdict
    deprecated: dict[str, str] = field(default_factory=dict)  # version -> why

    def verdict(self, version: str) -> str:
        return self.verdicts.get(version, "unchecked")


@dataclass
class ReconcileReport:
    added: int = 0
    removed: int = 0
    repaired: list[str] = field(default_factory=list)


class Registry:
    """One registry home: its namespaces' git repos and its index."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        """`embedder` may be shared between registries (tests load the model once)."""
        self.settings = settings
        self.git = GitStore(settings.repos_dir)
        self.index = Index(settings.index_path)
        self.embedder = embedder or Embedder(enabled=settings.semantic != "off")
        self.search_engine = SearchEngine(self.index, self.embedder)
        self._bundles: ContentCache[Bundle] = ContentCache(64 << 20, lambda b: b.total_bytes)
        self._archives: ContentCache[Archive] = ContentCache(64 << 20, lambda a: len(a.data))
        self._since_maintenance: dict[str, int] = {}
        self._maintenance_guard = threading.Lock()
        self.check_options = Options(strict=settings.strict, sandbox=settings.sandbox)
        self._backfill: threading.Thread | None = None
        self.outcome_limiter = RateLimiter(settings.outcome_rate, settings.outcome_burst)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, seed_dir: Path | None = None) -> ReconcileReport:
        """Migrate the index, reconcile it with git, and seed an empty registry."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.index.migrate()
        report = self.reconcile()
        if seed_dir is not None and not self.git.namespaces():
            for outcome in self.publish_tree(SEED_NAMESPACE, seed_dir, principal=OPERATOR):
                log.info("seeded %s/%s %s", outcome.namespace, outcome.name, outcome.version)
        pending = self.index.unchecked_versions()
        if pending:
            self._backfill = threading.Thread(target=self.backfill_reports, args=(pending,),
                                              daemon=True, name="backfill-reports")
            self._backfill.start()
        self.search_engine.start()
        return report

    def close(self) -> None:
        if self._backfill is not None:
            self._backfill.join()
        self.search_engine.close()
        self.index.close()

    # -- tokens and namespaces ----------------------------------------------------------

    def create_token(self, namespace: str, label: str = "", private: bool | None = None) -> str:
        """A new token that publishes to (and reads) `namespace`, creating it if needed."""
        check_namespace(namespace)
        self.git.ensure(namespace)
        self.index.ensure_namespace(namespace, "private" if private else "public")
        if private is not None:
            self.index.set_visibility(namespace, "private" if private else "public")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.index.add_token(namespace, _sha256(token.encode()), label)
        return token

    def authenticate(self, token: str | None) -> Principal:
        """The principal for a bearer token; anonymous without one; 401 for a bad one."""
        if not token:
            return ANONYMOUS
        token_id = _sha256(token.encode())
        namespace = self.index.token_namespace(token_id)
        if namespace is None:
            raise Unauthorized("the token is not valid for this registry",
                               extra={"hint": "create one with `skills-hub token create NS`"})
        return Principal(namespace, token_id=token_id)

    def set_visibility(self, namespace: str, visibility: str) -> None:
        if visibility not in ("public", "private"):
            raise BadRequest("visibility is 'public' or 'private'")
        check_namespace(namespace)
        self.git.ensure(namespace)
        self.index.ensure_namespace(namespace, visibility)
        self.index.set_visibility(namespace, visibility)

    def check_readable(self, namespace: str, principal: Principal) -> None:
        """404 (not 403, to keep private names private) unless the caller may read it."""
        row = self.index.get_namespace(namespace)
        if row is None or (row.visibility == "private" and not principal.operator
                           and namespace not in principal.readable):
            raise NotFound(f"namespace {namespace!r} does not exist")

    # -- publish ------------------------------------------------------------------------

    def publish(self, namespace: str, bundle: Bundle, *, principal: Principal,
                version: str | None = None, canary_share: float | None = None
                ) -> PublishOutcome:
        """Validate `bundle` and store it as a new version of its skill in `namespace`.

        With `canary_share` the version goes out as a canary to that share of clients (by
        client id) and the stable version stays `latest` until the canary is decided; a
        plain publish supersedes any active canary of the skill."""
        check_namespace(namespace)
        if not principal.can_write(namespace):
            raise Forbidden(f"this token cannot publish to {namespace!r}",
                            extra={"hint": f"use a token made by `skills-hub token create "
                                           f"{namespace}`"})
        manifest = parse_manifest(bundle.skill_md(), dirname=bundle.root_name,
                                  strict=self.settings.strict)
        chosen = self._choose_version(namespace, manifest, version)
        latest = self._latest_row(namespace, manifest.name)
        if latest is not None and latest.content_sha256 == bundle.content_hash():
            return self._unchanged(namespace, manifest, latest)
        report = check_bundle(bundle, self.check_options,
                              exceptions=self._exception_map(namespace, manifest.name))
        if report.verdict == DANGEROUS:
            flagged = report.flagged()
            rules = ", ".join(sorted({f.rule for f in flagged}))
            raise DangerousSkill(
                f"{manifest.name} was refused by the publish checks ({rules})",
                extra={"report": report.to_dict(),
                       "hint": "fix the findings listed in the report; a namespace owner can "
                               "record a reviewed exception for a rule that is a false alarm"})
        engine = self.search_engine
        text = _skill_text(manifest)
        vector = engine.embed_now(text)
        duplicates = None if vector is None else tuple(engine.duplicates(
            vector, readable=principal.readable | {namespace},
            exclude=(namespace, manifest.name)))
        try:
            published = self.git.publish(
                namespace, manifest.name, chosen, bundle,
                message=_commit_message(manifest, chosen, bundle))
        except Unchanged:
            return self._unchanged(namespace, manifest)
        stable = self.index.get_skill(namespace, manifest.name)
        canary = canary_share is not None and stable is not None
        new = _new_version(namespace, manifest, chosen, bundle, published.commit_sha,
                           published.tag_sha, published.tree_sha, published.tagged_at,
                           is_latest=not canary, embed_sha256=self.embedder.text_digest(text))
        # One transaction: the version row, its report, its text's vector and (first time)
        # the namespace.
        skill_id = self.index.record_version(
            new, _new_report(new.namespace, new.name, new.version, new.content_sha256, report,
                             "publish"),
            vector=None if vector is None else (self.embedder.model_id, to_bytes(vector)))
        if canary and stable is not None and canary_share is not None:
            self.index.start_canary(namespace, new.name, chosen, stable.latest_version,
                                    canary_share)
        else:
            engine.indexed(skill_id, new.embed_sha256, vector)
            active = _active(self.index.canaries(namespace, new.name))
            if active is not None:
                self.index.finish_canary(namespace, new.name, active.version, "superseded",
                                         {"reason": f"{chosen} was published"})
        self._count_publish(namespace)
        return PublishOutcome("published", namespace, manifest.name, chosen,
                              published.commit_sha, published.tag_sha, new.content_sha256,
                              manifest.warnings, report, report.verdict, duplicates)

    def _count_publish(self, namespace: str) -> None:
        """Repack a namespace in the background every MAINTAIN_EVERY publishes."""
        with self._maintenance_guard:
            count = self._since_maintenance.get(namespace, 0) + 1
            self._since_maintenance[namespace] = 0 if count >= MAINTAIN_EVERY else count
        if count >= MAINTAIN_EVERY:
            threading.Thread(target=self._maintain, args=(namespace,), daemon=True,
                             name=f"maintain-{namespace}").start()

    def _maintain(self, namespace: str) -> None:
        try:
            log.info("maintained %s: %s", namespace, self.git.maintain(namespace))
        except (OSError, subprocess.SubprocessError):
            log.exception("maintenance of %s failed; the repo is intact, only unpacked",
                          namespace)

    def publish_tree(self, namespace: str, folder: Path, *,
                     principal: Principal) -> Iterator[PublishOutcome]:
        """Publish every skill folder directly below `folder` (operator use: seed)."""
        for skill_dir in sorted(p for p in folder.iterdir() if (p / "SKILL.md").is_file()):
            bundle = from_directory(skill_dir, self.settings.limits)
            yield self.publish(namespace, bundle, principal=principal)

    def _choose_version(self, namespace: str, manifest: Manifest, asked: str | None) -> str:
        skill = self.index.get_skill(namespace, manifest.name)
        # The newest version, which is not `latest` while a canary or deprecation holds
        # `latest` back: versions only ever increase.
        newest = semver.latest([v.version for v in self.index.versions(skill.id)]) if skill \
            else None
        latest = semver.parse(newest) if newest else None
        field_name, text = ("version", asked) if asked else ("metadata.version", manifest.version)
        if text is None:
            return str(latest.next_patch()) if latest else "0.1.0"
        parsed = semver.parse(text)
        if parsed is None:
            raise InvalidSkill("the version is not valid", problems=[semver.problem(field_name,
                                                                                    text)])
        if latest is not None and parsed.sort_key() < latest.sort_key():
            raise VersionExists(
                f"{manifest.name} {text} is older than the latest version {latest}",
                extra={"hint": f"publish a version above {latest}", "latest": str(latest)})
        return str(parsed)

    def _unchanged(self, namespace: str, manifest: Manifest,
                   row: VersionRow | None = None) -> PublishOutcome:
        row = row or self._latest_row(namespace, manifest.name)
        if row is None:  # git has it but the index lags (a crash between the writes)
            self.reconcile()
            row = self._latest_row(namespace, manifest.name)
        if row is None:
            raise StoreConflict(f"{namespace}/{manifest.name} is on main but has no version tag")
        verdict = self.index.verdicts(namespace, manifest.name).get(row.version, "unchecked")
        return PublishOutcome("unchanged", namespace, manifest.name, row.version,
                              row.commit_sha, row.tag_sha, row.content_sha256, manifest.warnings,
                              verdict=verdict)

    def _latest_row(self, namespace: str, name: str) -> VersionRow | None:
        skill = self.index.get_skill(namespace, name)
        return self.index.get_version(skill.id, skill.latest_version) if skill else None

    # -- reads --------------------------------------------------------------------------

    def list_skills(self, *, principal: Principal, namespace: str | None = None,
                    cursor: str | None = None, limit: int = 50) -> SkillPage:
        if namespace is not None:
            self.check_readable(namespace, principal)
        limit = max(1, min(limit, 200))
        after = _decode_cursor(cursor)
        rows = self.index.list_skills(readable=principal.readable, namespace=namespace,
                                      after=after, limit=limit + 1)
        total = self.index.count_skills(readable=principal.readable, namespace=namespace)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = f"{rows[-1].namespace}/{rows[-1].name}" if more and rows else None
        return SkillPage(rows, total, next_cursor)

    def namespaces(self, principal: Principal) -> list[tuple[str, str, int]]:
        """(name, visibility, skill count) of every namespace the caller may read."""
        out = []
        for row in self.index.list_namespaces():
            if row.visibility == "private" and row.name not in principal.readable:
                continue
            count = self.index.count_skills(readable=principal.readable, namespace=row.name)
            out.append((row.name, row.visibility, count))
        return out

    def get_skill(self, namespace: str, name: str, principal: Principal) -> SkillDetail:
        self.check_readable(namespace, principal)
        skill = self.index.get_skill(namespace, name)
        if skill is None:
            raise NotFound(f"skill {namespace}/{name} does not exist")
        versions = sorted(self.index.versions(skill.id), reverse=True,
                          key=lambda v: _version_key(v.version))
        ns = self.index.get_namespace(namespace)
        verdicts = self.index.verdicts(namespace, name)
        return SkillDetail(skill, versions, ns.visibility if ns else "public", verdicts,
                           self.deprecated_versions(namespace, name, verdicts))

    def get_version(self, namespace: str, name: str, version: str,
                    principal: Principal) -> tuple[SkillRow, VersionRow]:
        """`version` may be "latest"."""
        detail = self.get_skill(namespace, name, principal)
        return detail.skill, version_of(detail, version)

    def bundle(self, namespace: str, row: VersionRow) -> Bundle:
        return self._bundles.get_or_make((namespace, row.tree_sha),
                                         lambda: self.git.read_tree(namespace, row.tree_sha))

    def read_file(self, namespace: str, name: str, version: str, path: str,
                  principal: Principal) -> tuple[VersionRow, bytes]:
        _, row = self.get_version(namespace, name, version, principal)
        files = self.bundle(namespace, row).files
        if path not in files:
            raise NotFound(f"{namespace}/{name} {row.version} has no file {path!r}",
                           extra={"files": sorted(files)})
        return row, files[path]

    def archive(self, namespace: str, name: str, version: str, fmt: str,
                principal: Principal, count: bool = True,
                at_root: bool = False) -> tuple[VersionRow, Archive]:
        """The version as a deterministic archive (same bytes every time) and its sha256.

        The files sit under a `<name>/` folder, or at the archive's root with `at_root`
        (the layout ClawHub downloads and well-known archives use)."""
        if fmt not in ARCHIVE_FORMATS:
            raise NotFound(f"no archive format {fmt!r}; use one of {', '.join(ARCHIVE_FORMATS)}")
        skill, row = self.get_version(namespace, name, version, principal)
        prefix = None if at_root else name

        def make() -> Archive:
            bundle = self.bundle(namespace, row)
            if fmt == "zip":
                data, media = to_zip(bundle, prefix), "application/zip"
            else:
                data, media = to_targz(bundle, prefix), "application/gzip"
            return Archive(data, _sha256(data), f"{name}-{row.version}.{fmt}", media)

        archive = self._archives.get_or_make((namespace, row.tree_sha, fmt, prefix), make)
        if count:
            self.index.count_download(skill.id)
        return row, archive

    # -- outcomes (the learning loop's evidence) -----------------------------------------

    def report_outcomes(self, namespace: str, name: str, payload: object,
                        principal: Principal) -> OutcomeReceipt:
        """Validate and record agents' outcome reports on a skill's versions, then move its
        trust if the evidence says so. All or nothing: one bad report refuses the batch."""
        reporter = self._reporter(principal, "outcome reports")
        reports = parse_reports(payload)
        detail = self.get_skill(namespace, name, principal)
        known = {v.version for v in detail.versions}
        _check_versions(reports, known, payload)
        self.outcome_limiter.take(reporter, len(reports))
        rows = [_new_outcome(reporter, r) for r in reports]
        fresh = self.index.record_outcomes(namespace, name, rows, decay=decay_factor,
                                           ema=trust_rules.ema_update)
        self._judge_health(namespace, name, {r.version for r in fresh if r.counted})
        self._judge_canary(namespace, name)
        trust, change = self._judge_trust(self.get_skill(namespace, name, principal),
                                          actor=f"outcomes:{reporter[:12]}")
        stats = self.index.version_stats(namespace, name)
        return OutcomeReceipt(len(fresh), len(rows) - len(fresh), trust, change,
                              {v: stats[v] for v in dict.fromkeys(r.version for r in rows)
                               if v in stats})

    def outcome_summary(self, namespace: str, name: str,
                        principal: Principal) -> OutcomeSummary:
        detail = self.get_skill(namespace, name, principal)
        stats = self.index.version_stats(namespace, name)
        succ, fail = self._decayed(namespace, name)
        canaries = self.index.canaries(namespace, name)
        active = _active(canaries)
        live = None if active is None else _canary_decision(active, stats)
        versions = [(stats[v.version], wilson_lower_bound(
            stats[v.version].successes, stats[v.version].successes + stats[v.version].failures))
            for v in detail.versions if v.version in stats]
        return OutcomeSummary(detail.skill, versions, succ, fail,
                              wilson_lower_bound(succ, succ + fail),
                              self.index.success_clients(namespace, name),
                              self.index.trust_of(namespace, name),
                              self.index.trust_events(namespace, name),
                              canaries, detail.deprecated, live)

    def set_trust(self, namespace: str, name: str, level: str, reason: str,
                  principal: Principal) -> tuple[str, TrustEvent | None]:
        """An owner or the operator blocks a skill, or lifts a block (back to community).

        Returns the trust level afterwards (lifting a block judges the evidence at once, so
        it may be above community) and the owner's event (None when nothing changed)."""
        self._check_owner(namespace, principal)
        detail = self.get_skill(namespace, name, principal)
        if level not in (trust_rules.BLOCKED, trust_rules.COMMUNITY):
            raise BadRequest(f"an owner sets trust to 'blocked' or back to 'community', not "
                             f"{level!r}", extra={"hint": "verified, trusted and quarantined "
                                                           "follow from outcome reports"})
        reason = reason.strip()
        if not reason or len(reason) > MAX_EXCEPTION_REASON:
            raise BadRequest(f"give a reason of 1-{MAX_EXCEPTION_REASON} characters")
        actor = "operator" if principal.operator else f"owner:{principal.namespace}"
        for _ in range(3):  # compare-and-set against outcome reports arriving meanwhile
            current = self.index.trust_of(namespace, name)
            if current == level:
                return current, None
            if self.index.change_trust(namespace, name, current, level, reason, actor):
                break
        else:
            raise Conflict("the skill's trust kept changing; try again")
        event = self.index.trust_events(namespace, name, 1)[0]
        if level == trust_rules.BLOCKED:
            return level, event
        trust, _ = self._judge_trust(detail, actor="outcomes")  # the evidence may say more
        return trust, event

    def _judge_trust(self, detail: SkillDetail, actor: str) -> tuple[str, TrustEvent | None]:
        namespace, name = detail.skill.namespace, detail.skill.name
        for _ in range(3):  # compare-and-set; another writer may move it meanwhile
            current = self.index.trust_of(namespace, name)
            new, reason = trust_rules.next_trust(current, self._evidence(detail))
            if new == current:
                return current, None
            if self.index.change_trust(namespace, name, current, new, reason, actor):
                return new, self.index.trust_events(namespace, name, 1)[0]
        return self.index.trust_of(namespace, name), None

    def _decayed(self, namespace: str, name: str) -> tuple[float, float]:
        """The skill's success and failure counts over every version, decayed to now."""
        totals = self.index.outcome_totals([(namespace, name)]).get((namespace, name), [])
        return decayed_totals(totals, datetime.now(UTC))

    def _evidence(self, detail: SkillDetail) -> trust_rules.Evidence:
        namespace, name = detail.skill.namespace, detail.skill.name
        stats = self.index.version_stats(namespace, name)
        succ, fail = self._decayed(namespace, name)
        # The newest version: when its success collapses the skill is quarantined, even
        # though its deprecation already sends installs back to an older version.
        latest = self._newest_row(detail).version
        current = stats.get(latest)
        verdicts = self.index.verdicts(namespace, name)
        return trust_rules.Evidence(
            successes=sum(s.successes for s in stats.values()),
            clients=self.index.success_clients(namespace, name),
            decayed_successes=succ, decayed_failures=fail,
            latest_outcomes=current.successes + current.failures if current else 0,
            latest_ema=current.ema if current else None,
            latest_safe=verdicts.get(latest) == "safe")

    # -- proposals, review, canaries, health (the learning loop's gate) -----------------

    def propose(self, namespace: str, name: str, payload: object,
                principal: Principal) -> ProposalOutcome:
        """An agent's refinement: apply its edits to `base_version`, rebase them onto the
        latest version when the base is stale, run the whole publish pipeline, and store
        the result on `refs/heads/proposals/<name>/<id>`. Edits whose result matches an
        open proposal add their support to it instead. Nothing is stored on any error."""
        reporter = self._reporter(principal, "proposals")
        fields = _proposal_fields(payload)
        detail = self.get_skill(namespace, name, principal)
        base = version_of(detail, fields.base_version)
        edits = parse_edits(fields.edits, skill_name=name)
        base_bundle = self.bundle(namespace, base)
        proposed = apply_edits(base_bundle.files, edits)
        target = self._newest_row(detail)
        if target.version != base.version:
            proposed = rebase(base_bundle.files, proposed, self.bundle(namespace, target).files)
        bundle = Bundle(proposed, executables=frozenset(
            p for p in self.bundle(namespace, target).executables | base_bundle.executables
            if p in proposed))
        if bundle.content_hash() == target.content_sha256:
            raise InvalidSkill(f"the edits leave {namespace}/{name} {target.version} unchanged",
                               extra={"hint": "propose edits that change the skill"})
        report = self._judge(namespace, name, bundle)
        existing = self.index.open_proposal_like(namespace, name, bundle.content_hash())
        if existing is not None:
            counted = self.index.add_support(existing.id, reporter, fields.evidence)
            return self._after_proposal(self._proposal(existing.id), created=False,
                                        supported=counted)
        proposal_id = secrets.token_hex(6)
        stored = self.git.propose(namespace, name, f"proposals/{name}/{proposal_id}",
                                  target.commit_sha, bundle,
                                  message=f"proposal {proposal_id} for {name} "
                                          f"{target.version}\n\n{fields.reasoning}\n")
        row = ProposalRow(
            proposal_id, namespace, name, base.version, target.version, "open", reporter,
            principal.namespace, fields.edits, fields.evidence, fields.reasoning,
            bundle.content_hash(), stored.commit_sha, stored.tree_sha, report.verdict,
            report.to_dict(), 1, datetime.now(UTC).isoformat())
        self.index.add_proposal(row)
        return self._after_proposal(row, created=True, supported=True)

    def _after_proposal(self, row: ProposalRow, *, created: bool,
                        supported: bool) -> ProposalOutcome:
        """Apply the namespace's policy: `auto` may accept (always as a canary)."""
        note = None
        if row.status == "open" and self.index.review_policy(row.namespace) == "auto":
            stats = self.index.version_stats(row.namespace, row.name).get(row.base_version)
            counted = stats.successes + stats.failures if stats else 0
            accept, note = gate.auto_accept(row.verdict, row.support, counted,
                                            stats.ema if stats else None)
            if accept:
                row = self._accept(row, by="policy:auto", comment=note, version=None,
                                   canary_share=gate.AUTO_CANARY_SHARE)
        return ProposalOutcome(row, created, supported, note)

    def proposal(self, namespace: str, name: str, proposal_id: str,
                 principal: Principal) -> ProposalView:
        """One proposal with its diff against the version it applies to."""
        self.check_readable(namespace, principal)
        row = self._proposal(proposal_id)
        if (row.namespace, row.name) != (namespace, name):
            raise NotFound(f"{namespace}/{name} has no proposal {proposal_id!r}")
        detail = self.get_skill(namespace, name, principal)
        before = self.bundle(namespace, version_of(detail, row.applies_to)).files
        after = self.git.read_tree(namespace, row.tree_sha).files
        return ProposalView(row, unified_diff(before, after))

    def proposals(self, namespace: str, name: str | None, principal: Principal, *,
                  status: str | None = None, mine: bool = False) -> list[ProposalRow]:
        """A skill's (or a namespace's) proposals; `mine`: those the caller's token sent,
        so a proposing agent learns what became of them and why."""
        self.check_readable(namespace, principal)
        if status is not None:
            _check_choice("status", status, PROPOSAL_STATES)
        proposer = self._reporter(principal, "your proposals") if mine else None
        return self.index.proposals(namespace, name, status, proposer)

    def review(self, namespace: str, name: str, proposal_id: str, decision: str,
               comment: str, principal: Principal, *, version: str | None = None,
               canary_share: float | None = None) -> ProposalRow:
        """A maintainer accepts (a new version, optionally as a canary) or rejects."""
        self._check_owner(namespace, principal)
        _check_choice("decision", decision, ("accept", "reject"))
        if version is not None and not isinstance(version, str):
            raise BadRequest("version is a string such as 1.2.0")
        if canary_share is not None and not 0 < canary_share < 1:
            raise BadRequest("canary is a share of clients between 0 and 1, e.g. 0.1")
        row = self._proposal(proposal_id)
        if (row.namespace, row.name) != (namespace, name):
            raise NotFound(f"{namespace}/{name} has no proposal {proposal_id!r}")
        if row.status != "open":
            raise Conflict(f"proposal {proposal_id} is already {row.status}")
        by = "operator" if principal.operator else f"maintainer:{principal.namespace}"
        comment = comment.strip()[:MAX_EXCEPTION_REASON]
        if decision == "reject":
            if not comment:
                raise BadRequest("say why the proposal is rejected (comment); the proposing "
                                 "agent reads it")
            if not self.index.decide_proposal(proposal_id, "rejected", by, comment, None):
                raise Conflict(f"proposal {proposal_id} was decided meanwhile")
            return self._proposal(proposal_id)
        return self._accept(row, by=by, comment=comment, version=version,
                            canary_share=canary_share)

    def _accept(self, row: ProposalRow, *, by: str, comment: str, version: str | None,
                canary_share: float | None) -> ProposalRow:
        """Publish the proposal's content as the next version (rebased again if the skill
        moved since), through the whole pipeline; then close the proposal."""
        detail = self.get_skill(row.namespace, row.name, OPERATOR)
        proposed = self.git.read_tree(row.namespace, row.tree_sha)
        newest = self._newest_row(detail)
        files = dict(proposed.files)
        if newest.version != row.applies_to:
            applied = self.bundle(row.namespace, version_of(detail, row.applies_to)).files
            files = rebase(applied, files, self.bundle(row.namespace, newest).files)
        chosen = version or str(semver.parse(newest.version).next_patch())  # type: ignore[union-attr]
        outcome = self.publish(row.namespace, Bundle(files, proposed.executables),
                               principal=OPERATOR, version=chosen, canary_share=canary_share)
        if not self.index.decide_proposal(row.id, "accepted", by, comment, outcome.version):
            raise Conflict(f"proposal {row.id} was decided meanwhile")
        return self._proposal(row.id)

    def set_review_policy(self, namespace: str, policy: str, principal: Principal) -> None:
        self._check_owner(namespace, principal)
        _check_choice("policy", policy, REVIEW_POLICIES)
        self.check_readable(namespace, principal)
        self.index.set_review_policy(namespace, policy)

    def _proposal(self, proposal_id: str) -> ProposalRow:
        row = self.index.get_proposal(proposal_id)
        if row is None:
            raise NotFound(f"no proposal {proposal_id!r}")
        return row

    def _reporter(self, principal: Principal, what: str) -> str:
        if principal.operator:
            return "operator"
        if principal.token_id is None:
            raise Unauthorized(f"{what} need a bearer token (any token of this registry)",
                               extra={"hint": "create one with `skills-hub token create NS`"})
        return principal.token_id

    def _judge(self, namespace: str, name: str, bundle: Bundle) -> Report:
        """The publish pipeline on content that is not stored yet; refuse `dangerous`."""
        manifest = parse_manifest(bundle.skill_md(), dirname=name, strict=self.settings.strict)
        if manifest.name != name:
            raise InvalidSkill(f"a proposal cannot rename {name} to {manifest.name}")
        report = check_bundle(bundle, self.check_options,
                              exceptions=self._exception_map(namespace, name))
        if report.verdict == DANGEROUS:
            rules = ", ".join(sorted({f.rule for f in report.flagged()}))
            raise DangerousSkill(f"the proposed {name} was refused by the checks ({rules})",
                                 extra={"report": report.to_dict()})
        return report

    def _newest_row(self, detail: SkillDetail) -> VersionRow:
        """The highest version (main's content), whatever `latest` currently is."""
        newest = semver.latest([v.version for v in detail.versions])
        return version_of(detail, newest or "latest")

    # canaries

    def resolve(self, namespace: str, name: str, principal: Principal,
                client_id: str | None = None) -> Resolution:
        """The version a client gets for `latest`: the canary for clients in its share
        (by client id), else the stable version."""
        detail = self.get_skill(namespace, name, principal)
        canary = _active(self.index.canaries(namespace, name))
        if canary is not None and client_id and gate.in_canary(
                namespace, name, canary.version, client_id, canary.share):
            return Resolution(version_of(detail, canary.version), "canary", canary)
        return Resolution(version_of(detail, "latest"), "stable", canary)

    def _judge_canary(self, namespace: str, name: str) -> None:
        """Promote or roll back the active canary when the outcomes decide it."""
        canary = _active(self.index.canaries(namespace, name))
        if canary is None:
            return
        decision = _canary_decision(canary, self.index.version_stats(namespace, name))
        if decision.action == gate.WAIT:
            return
        state = "promoted" if decision.action == gate.PROMOTE else "rolled_back"
        if self.index.finish_canary(namespace, name, canary.version, state,
                                    decision.to_dict()):
            self._refresh_latest(namespace, name)

    # health

    def _judge_health(self, namespace: str, name: str, versions: Iterable[str]) -> None:
        """The outcome EMA deprecates a version whose success collapsed, and restores it
        when it recovers (thresholds of ranking.trust); `latest` follows."""
        stats = self.index.version_stats(namespace, name)
        moved = False
        for version in versions:
            current = stats.get(version)
            if current is None or current.ema is None \
                    or current.successes + current.failures < trust_rules.COLLAPSE_MIN_OUTCOMES:
                continue
            if current.ema < trust_rules.COLLAPSE_EMA:
                moved |= self.index.set_health(
                    namespace, name, version, "deprecated",
                    f"success EMA {current.ema:.2f} < {trust_rules.COLLAPSE_EMA} over "
                    f"{current.successes + current.failures} outcomes")
            elif current.ema >= trust_rules.RECOVER_EMA:
                moved |= self.index.set_health(namespace, name, version, "healthy",
                                               f"success EMA recovered to {current.ema:.2f}")
        if moved:
            self._refresh_latest(namespace, name)

    def deprecated_versions(self, namespace: str, name: str,
                            verdicts: dict[str, str] | None = None) -> dict[str, str]:
        """version -> why it is deprecated: a failed re-check, or a collapsed EMA."""
        if verdicts is None:
            verdicts = self.index.verdicts(namespace, name)
        out = {v: "a re-check of the publish checks failed it"
               for v, verdict in verdicts.items() if verdict == DANGEROUS}
        for version, (status, reason) in self.index.health(namespace, name).items():
            if status == "deprecated":
                out.setdefault(version, reason)
        return out

    def _latest_choice(self, namespace: str, name: str, versions: list[str]) -> str | None:
        """`latest`: the newest version that is neither held back (an active or rolled
        back canary) nor deprecated; failing that the newest not held back."""
        held = {c.version for c in self.index.canaries(namespace, name)
                if c.state in ("active", "rolled_back")}
        deprecated = self.deprecated_versions(namespace, name)
        ordered = sorted(versions, key=_version_key, reverse=True)
        for pool in ([v for v in ordered if v not in held and v not in deprecated],
                     [v for v in ordered if v not in held], ordered):
            if pool:
                return pool[0]
        return None

    def _refresh_latest(self, namespace: str, name: str) -> None:
        """Point the catalogue's `latest` at `_latest_choice` (re-read from git)."""
        skill = self.index.get_skill(namespace, name)
        if skill is None:
            return
        chosen = self._latest_choice(namespace, name,
                                     [v.version for v in self.index.versions(skill.id)])
        if chosen is None or chosen == skill.latest_version:
            return
        info = next(i for i in self.git.tags(namespace)
                    if i.name == name and i.version == chosen)
        new = self._from_git(namespace, info, is_latest=True)
        self.index.record_versions([new])
        self.search_engine.indexed(skill.id, new.embed_sha256, None)

    # -- flat names (ClawHub slugs, well-known names) ------------------------------------

    def flat_skill(self, name: str, principal: Principal,
                   namespace: str | None = None) -> SkillRow:
        """The skill a bare `name` means: in `namespace` when the client's root names one,
        else the one readable skill of that name on the server; 409 `ambiguous_name` when
        several namespaces have it (never a silent pick)."""
        if namespace is not None:
            return self.get_skill(namespace, name, principal).skill
        _check_skill_name(name)
        rows = self.index.find_by_name(name, filters=SearchFilters(),
                                       readable=principal.readable)
        if not rows:
            raise NotFound(f"no skill is called {name!r}")
        if len(rows) > 1:
            candidates = sorted(f"{row.namespace}/{row.name}" for row in rows)
            raise AmbiguousName(
                f"{len(rows)} namespaces have a skill called {name!r}: "
                f"{', '.join(candidates)}",
                extra={"candidates": candidates,
                       "hint": "use a namespace's own root: /<namespace>/.well-known/skills/ "
                               "for well-known clients, /clawhub/<namespace> as the ClawHub "
                               "registry, or the native API's <namespace>/<name>"})
        return rows[0]

    def flat_catalogue(self, principal: Principal,
                       namespace: str | None = None) -> FlatCatalogue:
        """Every skill a bare name reaches in the scope (see `FlatCatalogue`)."""
        if namespace is not None:
            self.check_readable(namespace, principal)
        rows: list[SkillRow] = []
        after: tuple[str, str] | None = None
        while True:
            page = self.index.list_skills(readable=principal.readable, namespace=namespace,
                                          after=after, limit=500)
            rows.extend(page)
            if len(page) < 500:
                break
            after = (page[-1].namespace, page[-1].name)
        by_name: dict[str, list[SkillRow]] = {}
        for row in rows:
            by_name.setdefault(row.name, []).append(row)
        unique = [group[0] for name, group in sorted(by_name.items()) if len(group) == 1]
        ambiguous = {name: sorted(f"{r.namespace}/{r.name}" for r in group)
                     for name, group in sorted(by_name.items()) if len(group) > 1}
        return FlatCatalogue(unique, ambiguous)

    def search(self, query: str, *, principal: Principal, mode: str = "auto",
               namespace: str | None = None, tag: str | None = None,
               trust: str | None = None, verdict: str | None = None,
               updated_since: str | None = None, sort: str = "relevance", limit: int = 20,
               cursor: str | None = None) -> SearchPage:
        """Keyword, semantic or hybrid search with filters, a sort and cursor paging.

        An empty query lists the filtered catalogue (newest first unless `sort` says).
        """
        _check_query(query)
        _check_choice("mode", mode, MODES)
        _check_choice("sort", sort, SORTS)
        if trust is not None:
            _check_choice("trust", trust, TRUST_LEVELS)
        if verdict is not None:
            _check_choice("verdict", verdict, VERDICTS)
        if tag is not None and (not tag.strip() or len(tag) > 64 or "," in tag):
            raise BadRequest("the tag filter is one tag of at most 64 characters")
        filters = SearchFilters(namespace=namespace, tag=tag.strip() if tag else None,
                                trust=trust, verdict=verdict,
                                updated_since=_since(updated_since))
        limit = max(1, min(limit, 100))
        key = _search_key(query, mode, filters, sort)
        offset = _decode_search_cursor(cursor, key)
        results = self.search_engine.search(SearchRequest(
            query, principal.readable, mode, filters, sort, limit, offset))
        more = results.more and offset + limit < MAX_RESULTS
        return SearchPage(results, _encode_search_cursor(offset + limit, key) if more else None)

    def gap(self, query: str, *, principal: Principal,
            namespace: str | None = None) -> Gap | None:
        """Whether no readable skill is close to `query` (None until the model is loaded)."""
        _check_query(query)
        return self.search_engine.gap(query, readable=principal.readable,
                                      filters=SearchFilters(namespace=namespace))

    def near_duplicates(self, skill: SkillRow, principal: Principal) -> list[Duplicate]:
        """Readable skills at least 0.9 similar to `skill` (already readable by the caller)."""
        return self.search_engine.similar_to(skill.id, readable=principal.readable)

    # -- checks reports, health and reviewed exceptions ----------------------------------

    def report(self, namespace: str, name: str, version: str,
               principal: Principal) -> tuple[VersionRow, ReportRow | None]:
        """The stored checks report of a version (None while it waits for its first check)."""
        _, row = self.get_version(namespace, name, version, principal)
        return row, self.stored_report(namespace, name, row)

    def stored_report(self, namespace: str, name: str, row: VersionRow) -> ReportRow | None:
        """The report of a version row the caller has already been allowed to read."""
        stored = self.index.get_report(namespace, name, row.version)
        if stored is not None and stored.content_sha256 != row.content_sha256:
            return None
        return stored

    def report_history(self, namespace: str, name: str,
                       principal: Principal) -> list[HistoryRow]:
        self.check_readable(namespace, principal)
        return self.index.report_history(namespace, name)

    def recheck(self, namespace: str, name: str, row: VersionRow, reason: str) -> HealthChange:
        """Run the pipeline again on a stored version and record the report."""
        bundle = self.bundle(namespace, row)
        report = check_bundle(bundle, self.check_options,
                              exceptions=self._exception_map(namespace, name))
        old = self.index.save_report(_new_report(namespace, name, row.version,
                                                 row.content_sha256, report, reason))
        return HealthChange(namespace, name, row.version, old, report.verdict)

    def health(self, namespace: str | None = None) -> tuple[int, list[HealthChange]]:
        """Re-run the checks on every stored version (new rules, new bandit).

        Returns how many versions were checked and those whose verdict changed. A version
        that now fails (`dangerous`) is reported as deprecated by search, pages and installs.
        """
        checked, changed = 0, []
        for ns in ([namespace] if namespace else self.git.namespaces()):
            check_namespace(ns)
            for skill in self.index.list_skills(readable=frozenset({ns}), namespace=ns,
                                                after=None, limit=1_000_000):
                moved = False
                for row in self.index.versions(skill.id):
                    change = self.recheck(ns, skill.name, row, "health")
                    checked += 1
                    if change.old_verdict != change.new_verdict:
                        changed.append(change)
                        moved = True
                if moved:  # `latest` moves to the newest healthy version
                    self._refresh_latest(ns, skill.name)
        return checked, changed

    def backfill_reports(self, pending: list[tuple[str, str, str]] | None = None) -> int:
        """Check the versions that have no report (after `reindex` or a crash); count them."""
        done = 0
        for namespace, name, version in pending or self.index.unchecked_versions():
            skill = self.index.get_skill(namespace, name)
            row = self.index.get_version(skill.id, version) if skill else None
            if row is None:
                continue
            try:
                self.recheck(namespace, name, row, "backfill")
            except Exception:  # one bad version must not stop the others
                log.exception("checking %s/%s %s failed", namespace, name, version)
                continue
            done += 1
        return done

    def exceptions(self, namespace: str, name: str, principal: Principal) -> list[ExceptionRow]:
        self.check_readable(namespace, principal)
        return self.index.exceptions(namespace, name)

    def set_exception(self, namespace: str, name: str, rule: str, reason: str,
                      principal: Principal) -> list[HealthChange]:
        """Record a reviewed exception for `rule` on one skill; re-judge its stored versions.

        The skill need not exist yet: an owner can clear a false alarm before publishing.
        """
        self._check_owner(namespace, principal)
        _check_skill_name(name)
        if not RULE_RE.match(rule) or rule.split(".", 1)[0] not in FAMILIES:
            raise BadRequest(f"{rule!r} is not a rule id", problems=[Problem(
                "rule", "not a rule id",
                "use the id shown in the report, such as remote-exec.pipe-to-shell or "
                "bandit.B602")])
        reason = reason.strip()
        if not reason or len(reason) > MAX_EXCEPTION_REASON:
            raise BadRequest("a reviewed exception needs a reason", problems=[Problem(
                "reason", f"give a reason of 1-{MAX_EXCEPTION_REASON} characters",
                "say why the finding is a false alarm on this skill")])
        self.index.set_exception(namespace, name, rule, reason)
        return self._rejudge(namespace, name)

    def remove_exception(self, namespace: str, name: str, rule: str,
                         principal: Principal) -> list[HealthChange]:
        self._check_owner(namespace, principal)
        if not self.index.delete_exception(namespace, name, rule):
            raise NotFound(f"{namespace}/{name} has no exception for {rule!r}")
        return self._rejudge(namespace, name)

    def _check_owner(self, namespace: str, principal: Principal) -> None:
        check_namespace(namespace)
        if not principal.can_write(namespace):
            raise Forbidden(f"only a token of {namespace!r} can do this to its skills",
                            extra={"hint": f"use a token made by `skills-hub token create "
                                           f"{namespace}`"})

    def _exception_map(self, namespace: str, name: str) -> dict[str, str]:
        return {e.rule: e.reason for e in self.index.exceptions(namespace, name)}

    def _rejudge(self, namespace: str, name: str) -> list[HealthChange]:
        """Apply the skill's current exceptions to its stored reports (no re-run needed)."""
        exceptions = self._exception_map(namespace, name)
        skill = self.index.get_skill(namespace, name)
        changes = []
        for row in self.index.versions(skill.id) if skill else []:
            stored = self.index.get_report(namespace, name, row.version)
            if stored is None:
                continue
            report = Report.from_dict(stored.report).with_exceptions(exceptions)
            old = self.index.save_report(_new_report(namespace, name, row.version,
                                                     row.content_sha256, report, "exception"))
            changes.append(HealthChange(namespace, name, row.version, old, report.verdict))
        self._refresh_latest(namespace, name)
        return changes

    # -- reconcile ----------------------------------------------------------------------

    def reconcile(self, full: bool = False) -> ReconcileReport:
        """Bring the index in line with git (git wins); `full` rebuilds the catalogue."""
        report = ReconcileReport()
        if full:
            self.index.clear_catalogue()
        known = self.index.catalogue_tags()
        seen: set[tuple[str, str, str]] = set()
        for namespace in self.git.namespaces():
            report.repaired += [f"{namespace}/{t}" for t in self.git.repair(namespace)]
            self.index.ensure_namespace(namespace)
            by_skill: dict[str, list[TagInfo]] = {}
            for info in self.git.tags(namespace):
                by_skill.setdefault(info.name, []).append(info)
            for name, infos in by_skill.items():
                missing = [i for i in infos
                           if known.get((namespace, name, i.version)) != i.tag_sha]
                seen.update((namespace, name, i.version) for i in infos)
                if not missing:
                    continue
                latest = self._latest_choice(namespace, name, [i.version for i in infos])
                # Re-record the latest too, so the skill row and FTS follow it.
                todo = {i.version: i for i in missing}
                todo.update({i.version: i for i in infos if i.version == latest})
                self.index.record_versions(
                    self._from_git(namespace, i, i.version == latest) for i in todo.values())
                report.added += len(missing)
        for key in set(known) - seen:
            self.index.delete_version(*key)
            report.removed += 1
        self._drop_empty_skills(known.keys() - seen)
        if full or report.added or report.removed:
            self.search_engine.reload()
        return report

    def _drop_empty_skills(self, removed: set[tuple[str, str, str]]) -> None:
        for namespace, name in {(ns, n) for ns, n, _ in removed}:
            skill = self.index.get_skill(namespace, name)
            if skill and not self.index.versions(skill.id):
                self.index.delete_skill(namespace, name)

    def _from_git(self, namespace: str, info: TagInfo, is_latest: bool) -> NewVersion:
        bundle = self.git.read_tree(namespace, info.tree_sha)
        try:
            manifest = parse_manifest(bundle.skill_md(), dirname=info.name, strict=False)
        except InvalidSkill:
            # Stored before a rule changed: keep the version, with what can be read.
            manifest = Manifest(name=info.name, description="", body="", frontmatter={},
                                license=None, compatibility=None, metadata={},
                                allowed_tools=None, tags=[], version=info.version, warnings=())
        return _new_version(namespace, manifest, info.version, bundle, info.commit_sha,
                            info.tag_sha, info.tree_sha, info.tagged_at, is_latest=is_latest,
                            embed_sha256=self.embedder.text_digest(_skill_text(manifest)))


def version_of(detail: SkillDetail, version: str) -> VersionRow:
    """The row of `version` (or "latest") among the skill's versions; 404 if absent."""
    wanted = detail.skill.latest_version if version == "latest" else version
    for row in detail.versions:
        if row.version == wanted:
            return row
    raise NotFound(f"{detail.skill.namespace}/{detail.skill.name} has no version {version!r}",
                   extra={"versions": [v.version for v in detail.versions]})


def check_namespace(namespace: str) -> None:
    if len(namespace) > 64 or not NAME_RE.match(namespace) or namespace in RESERVED_NAMESPACES:
        raise BadRequest(
            f"{namespace!r} is not a valid namespace name",
            problems=[Problem("namespace", "not a valid namespace name",
                              "use 1-64 lowercase letters, digits and single hyphens, not "
                              "starting or ending with a hyphen, and not a reserved word")])


def _proposal_fields(payload: object) -> ProposalFields:
    """The proposal body's fields, every problem reported at once."""
    if not isinstance(payload, dict):
        raise BadRequest('send {"base_version", "edits", "evidence", "reasoning"}')
    problems = []
    base = payload.get("base_version")
    if not isinstance(base, str) or not base:
        problems.append(Problem("base_version", "missing",
                                "the version the edits were written against, e.g. 1.2.0"))
    edits = payload.get("edits")
    if not isinstance(edits, list) or not edits:
        problems.append(Problem("edits", "missing or empty",
                                "a list of {op, target, content} or {old_string, new_string}"))
    evidence = payload.get("evidence", {})
    if not isinstance(evidence, dict) or len(json.dumps(evidence)) > MAX_EVIDENCE_BYTES:
        problems.append(Problem("evidence", f"not an object under {MAX_EVIDENCE_BYTES} bytes",
                                "outcome counts, a failure summary, trajectory excerpts"))
    reasoning = payload.get("reasoning", "")
    if not isinstance(reasoning, str) or len(reasoning) > MAX_REASONING:
        problems.append(Problem("reasoning", f"not a text under {MAX_REASONING} characters",
                                "why the edits make the skill better"))
    if problems:
        raise BadRequest("the proposal is incomplete", problems=problems)
    assert isinstance(base, str) and isinstance(edits, list) and isinstance(evidence, dict)
    return ProposalFields(base, edits, evidence, str(reasoning))


def _active(canaries: list[CanaryRow]) -> CanaryRow | None:
    """The active canary (starting one supersedes the previous, so there is at most one)."""
    return next((c for c in canaries if c.state == "active"), None)


def _canary_decision(canary: CanaryRow, stats: dict[str, VersionStats]) -> gate.CanaryDecision:
    """The gate's decision on a canary against its stable version, on today's counts."""
    return gate.canary_decision(_interval(stats.get(canary.version)),
                                _interval(stats.get(canary.stable_version)))


def _interval(stats: VersionStats | None) -> gate.Interval:
    if stats is None:
        return gate.Interval(0, 0)
    return gate.Interval(stats.successes, stats.successes + stats.failures)


def _check_versions(reports: list[OutcomeReport], known: set[str], payload: object) -> None:
    """Every report must name a published version of the skill."""
    batched = isinstance(payload, dict) and "outcomes" in payload
    problems = [Problem(f"outcomes[{i}].version" if batched else "version",
                        f"{r.version!r} is not a published version",
                        f"use one of {', '.join(sorted(known))}")
                for i, r in enumerate(reports) if r.version not in known]
    if problems:
        raise InvalidReport(f"{len(problems)} report(s) name versions that do not exist; "
                            "nothing was recorded", problems=problems)


def _new_outcome(reporter: str, report: OutcomeReport) -> NewOutcome:
    client = f"{reporter[:16]}:{report.client_id or '-'}"
    return NewOutcome(reporter, report.id, report.version, report.outcome, report.failure_kind,
                      report.score, json.dumps(report.signals, sort_keys=True), report.agent,
                      report.model, client, report.at)


def _check_skill_name(name: str) -> None:
    if len(name) > 64 or not NAME_RE.match(name):
        raise BadRequest(f"{name!r} is not a valid skill name")


def _new_report(namespace: str, name: str, version: str, content_sha256: str, report: Report,
                reason: str) -> NewReport:
    return NewReport(namespace=namespace, name=name, version=version,
                     content_sha256=content_sha256, verdict=report.verdict,
                     report=report.to_dict(), pipeline=report.pipeline, reason=reason)


def installable(skill: SkillRow) -> bool:
    """Whether clients that cannot show a warning may be offered the skill: its `latest`
    is not deprecated by a failed re-check, and it is not blocked."""
    return skill.verdict != DANGEROUS and skill.trust != "blocked"


def install_command(namespace: str, name: str, version: str | None = None) -> str:
    return f"skills-hub install {namespace}/{name}" + (f"@{version}" if version else "")


def _new_version(namespace: str, manifest: Manifest, version: str, bundle: Bundle,
                 commit_sha: str, tag_sha: str, tree_sha: str, tagged_at: int, *,
                 is_latest: bool, embed_sha256: str | None = None) -> NewVersion:
    hashes = bundle.file_hashes()
    files = [{"path": p, "size": len(bundle.files[p]), "sha256": hashes[p],
              "executable": p in bundle.executables} for p in sorted(bundle.files)]
    return NewVersion(
        namespace=namespace, name=manifest.name, version=version, commit_sha=commit_sha,
        tag_sha=tag_sha, tree_sha=tree_sha, content_sha256=bundle.content_hash(),
        description=manifest.description, frontmatter=manifest.frontmatter, files=files,
        published_at=datetime.fromtimestamp(tagged_at, UTC).isoformat(timespec="seconds"),
        tags=", ".join(manifest.tags), body=manifest.body, is_latest=is_latest,
        embed_sha256=embed_sha256)


def _skill_text(manifest: Manifest) -> str:
    """What search embeds for a version (see search.embedder.skill_text)."""
    return skill_text(manifest.name, manifest.description, ", ".join(manifest.tags),
                      manifest.body)


def _commit_message(manifest: Manifest, version: str, bundle: Bundle) -> str:
    return (f"Publish {manifest.name} {version}\n\n"
            f"Skill-Name: {manifest.name}\nSkill-Version: {version}\n"
            f"Content-Sha256: {bundle.content_hash()}\n")


def _version_key(text: str) -> tuple[Any, ...]:
    parsed = semver.parse(text)
    return parsed.sort_key() if parsed else (-1, text)


def _decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    namespace, sep, name = cursor.partition("/")
    if not sep:
        raise BadRequest("the cursor is not valid", extra={"hint": "pass next_cursor as given"})
    return namespace, name


def _check_query(query: str) -> None:
    if len(query) > MAX_QUERY_CHARS:
        raise BadRequest(f"the query is longer than {MAX_QUERY_CHARS} characters",
                         extra={"hint": "shorten the query"})


def _check_choice(field_name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadRequest(f"{field_name} must be one of {', '.join(choices)}",
                         problems=[Problem(field_name, f"{value[:40]!r} is not one of "
                                                       f"{', '.join(choices)}")])


def _since(text: str | None) -> str | None:
    """An ISO 8601 date or time, as the UTC timestamp text `updated_at` is compared with."""
    if text is None or not text.strip():
        return None
    try:
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("updated_since is not an ISO 8601 date or time",
                         extra={"hint": "e.g. 2026-11-01 or 2026-11-01T12:00:00Z"}) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).isoformat(timespec="seconds")


def _search_key(query: str, mode: str, filters: SearchFilters, sort: str) -> str:
    """A digest of what a cursor belongs to, so it cannot be replayed on another search."""
    text = json.dumps([query.strip(), mode, sort, filters.namespace, filters.tag,
                       filters.trust, filters.verdict, filters.updated_since])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_search_cursor(offset: int, key: str) -> str:
    raw = json.dumps({"o": offset, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_search_cursor(cursor: str | None, key: str) -> int:
    if not cursor:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, owner = int(data["o"]), str(data["k"])
    except (ValueError, KeyError, TypeError):
        raise BadRequest("the cursor is not valid",
                         extra={"hint": "pass next_cursor as given"}) from None
    if owner != key or not 0 <= offset < MAX_RESULTS:
        raise BadRequest("the cursor belongs to another search",
                         extra={"hint": "repeat the same query, filters and sort with it"})
    return offset


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
