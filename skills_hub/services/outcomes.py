"""Outcomes, the learning loop's evidence: agents' outcome reports, a skill's evidence
summary, and its trust level (judged from the evidence, or set by an owner)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .. import metrics
from ..access.policy import MODERATE, REPORT
from ..access.principal import Principal
from ..domain import CanaryRow, NewOutcome, SkillRow, TaskVector, TrustEvent, VersionStats
from ..errors import BadRequest, Conflict, InvalidReport, Problem, RateLimited
from ..learning import gate, tasks
from ..learning.outcomes import CLIENT_CAP, OutcomeReport, parse_reports
from ..ranking import trust as trust_rules
from ..ranking.quality import decay_factor, decayed_totals, wilson_lower_bound
from ..search.vectors import to_bytes
from ..store import guards
from .base import RegistryBase
from .catalogue import SkillDetail
from .common import MAX_EXCEPTION_REASON
from .releases import _active, _canary_decision

log = logging.getLogger(__name__)


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


# The evidence chart's window: twelve weeks up to today, so its query and drawing stay small
# whatever the number of reports. Data spanning at most DAILY_DAYS is shown per day (at least
# MIN_DAYS of them), anything longer per week (weeks end today).
CHART_DAYS = 84
DAILY_DAYS = 14
MIN_DAYS = 7


@dataclass(frozen=True)
class VersionTimeline:
    version: str
    counts: list[tuple[int, int]]  # (successes, failures) per bucket, oldest bucket first

    @property
    def successes(self) -> int:
        return sum(s for s, _ in self.counts)

    @property
    def failures(self) -> int:
        return sum(f for _, f in self.counts)


@dataclass(frozen=True)
class OutcomeTimeline:
    """A skill's counted outcome reports per day or week of the chart's window, per version."""

    start: date       # the first bucket's first day
    step_days: int    # 1 (a bucket per day) or 7 (per week)
    buckets: int
    series: list[VersionTimeline]  # versions with reports in the window, newest first

    def bucket_start(self, index: int) -> date:
        return self.start + timedelta(days=index * self.step_days)

    @property
    def end(self) -> date:
        """The last day of the last bucket."""
        return self.bucket_start(self.buckets) - timedelta(days=1)


class OutcomesMixin(RegistryBase):
    """Outcome reports and trust."""

    def report_outcomes(self, namespace: str, name: str, payload: object,
                        principal: Principal) -> OutcomeReceipt:
        """Validate and record agents' outcome reports on a skill's versions, then move its
        trust if the evidence says so. All or nothing: one bad report refuses the batch."""
        self.require(principal, REPORT, namespace)
        reporter = self._reporter(principal, "outcome reports")
        reports = parse_reports(payload)
        detail = self.get_skill(namespace, name, principal)
        known = {v.version for v in detail.versions}
        _check_versions(reports, known, payload)
        self.outcome_limiter.take(reporter, len(reports))
        authors = self.store.outcomes.authors(namespace, name)
        mine = author_keys(principal)
        rows = [_new_outcome(reporter, r, bool(mine & authors.get(r.version, frozenset())))
                for r in reports]
        fresh = self.store.outcomes.record_outcomes(namespace, name, rows, decay=decay_factor,
                                                    ema=trust_rules.ema_update,
                                                    client_cap=CLIENT_CAP)
        metrics.observe_outcomes(len(rows), len(fresh))
        self._embed_tasks(reports, reporter)
        self._judge_health(namespace, name, {r.version for r in fresh if r.counted})
        self._judge_canary(namespace, name)
        trust, change = self._judge_trust(self.get_skill(namespace, name, principal),
                                          actor=f"outcomes:{reporter[:12]}")
        stats = self.store.outcomes.version_stats(namespace, name)
        return OutcomeReceipt(len(fresh), len(rows) - len(fresh), trust, change,
                              {v: stats[v] for v in dict.fromkeys(r.version for r in rows)
                               if v in stats})

    def _embed_tasks(self, reports: list[OutcomeReport], reporter: str) -> None:
        """Embed the reports' tasks that have no vector yet (`learning.tasks`), after the
        reports are stored: a refused post stores nothing. While the model is not ready
        (loading, or semantic search off), or past the token's embedding budget
        (`tasks.EMBED_RATE`), the tasks keep their key only and count in the global
        numbers; a later report of the same task embeds it. Never fails the post."""
        texts = {r.task_key: r.task_text for r in reports
                 if r.task_key is not None and r.task_text is not None}
        if not texts or not self.embedder.ready:
            return
        model = self.embedder.model_id
        try:
            known = self.store.outcomes.task_vectors(model, texts)
            missing = [k for k in texts if k not in known]
            for start in range(0, len(missing), tasks.EMBED_CHUNK):
                chunk = missing[start:start + tasks.EMBED_CHUNK]
                try:
                    self.task_limiter.take(reporter, len(chunk))
                except RateLimited:
                    log.info("%d reported tasks not embedded: the token's budget is spent",
                             len(missing) - start)
                    return
                vectors = self.embedder.embed([str(texts[k]) for k in chunk])
                self.store.outcomes.save_task_vectors(model, [
                    TaskVector(k, to_bytes(v), tasks.label(str(texts[k])))
                    for k, v in zip(chunk, vectors, strict=True)])
        except Exception:  # the reports are in; their tasks' vectors can come later
            log.exception("embedding reported tasks failed")

    def task_neighbourhoods(self, namespace: str, name: str,
                            principal: Principal) -> list[tasks.Neighbourhood]:
        """The skill's reported tasks grouped by similarity with each group's counts (the
        skill page's "by kind of task"); empty while the model is not ready."""
        self.get_skill(namespace, name, principal)
        if not self.embedder.ready:
            return []
        stats = self.store.outcomes.task_stats([(namespace, name)]).get((namespace, name), [])
        found = self.store.outcomes.task_vectors(self.embedder.model_id,
                                                 (s.task_key for s in stats))
        stats = [s for s in stats if s.task_key in found]
        if not stats:
            return []
        matrix = tasks.to_matrix(found[s.task_key].vector for s in stats)
        return tasks.neighbourhoods(stats, matrix, {k: v.label for k, v in found.items()})

    def outcome_summary(self, namespace: str, name: str,
                        principal: Principal) -> OutcomeSummary:
        detail = self.get_skill(namespace, name, principal)
        stats = self.store.outcomes.version_stats(namespace, name)
        succ, fail = self._decayed(namespace, name)
        canaries = self.store.proposals.canaries(namespace, name)
        active = _active(canaries)
        live = None if active is None else _canary_decision(active, stats)
        versions = [(stats[v.version], wilson_lower_bound(
            stats[v.version].successes, stats[v.version].successes + stats[v.version].failures))
            for v in detail.versions if v.version in stats]
        return OutcomeSummary(detail.skill, versions, succ, fail,
                              wilson_lower_bound(succ, succ + fail),
                              self.store.outcomes.success_clients(namespace, name),
                              self.store.outcomes.trust_of(namespace, name),
                              self.store.outcomes.trust_events(namespace, name),
                              canaries, detail.deprecated, live)

    def outcome_timeline(self, namespace: str, name: str, principal: Principal, *,
                         today: date | None = None) -> OutcomeTimeline | None:
        """The skill's outcomes over the chart's window, bucketed per day or week and
        version; None when there are none. Read access as `outcome_summary`."""
        detail = self.get_skill(namespace, name, principal)
        today = today or datetime.now(UTC).date()
        since = today - timedelta(days=CHART_DAYS - 1)
        rows = self.store.outcomes.outcome_days(namespace, name, since.isoformat())
        return bucket_days(rows, [v.version for v in detail.versions], today)

    def set_trust(self, namespace: str, name: str, level: str, reason: str,
                  principal: Principal) -> tuple[str, TrustEvent | None]:
        """An owner or the operator blocks a skill, or lifts a block (back to community).

        Returns the trust level afterwards (lifting a block judges the evidence at once, so
        it may be above community) and the owner's event (None when nothing changed)."""
        self.require(principal, MODERATE, namespace)
        detail = self.get_skill(namespace, name, principal)
        if level not in (trust_rules.BLOCKED, trust_rules.COMMUNITY):
            raise BadRequest(f"an owner sets trust to 'blocked' or back to 'community', not "
                             f"{level!r}", extra={"hint": "verified, trusted and quarantined "
                                                           "follow from outcome reports"})
        reason = reason.strip()
        if not reason or len(reason) > MAX_EXCEPTION_REASON:
            raise BadRequest(f"give a reason of 1-{MAX_EXCEPTION_REASON} characters")
        actor = principal.actor
        for _ in range(3):  # compare-and-set against outcome reports arriving meanwhile
            current = self.store.outcomes.trust_of(namespace, name)
            if current == level:
                return current, None
            if self.store.outcomes.change_trust(namespace, name, current, level, reason, actor):
                break
        else:
            raise Conflict("the skill's trust kept changing; try again")
        event = self.store.outcomes.trust_events(namespace, name, 1)[0]
        self.audit(principal, "trust.set", f"{namespace}/{name}", namespace=namespace,
                   detail={"trust": level, "reason": reason})
        if level == trust_rules.BLOCKED:
            return level, event
        trust, _ = self._judge_trust(detail, actor="outcomes")  # the evidence may say more
        return trust, event

    def _judge_trust(self, detail: SkillDetail, actor: str) -> tuple[str, TrustEvent | None]:
        namespace, name = detail.skill.namespace, detail.skill.name
        for _ in range(3):  # compare-and-set; another writer may move it meanwhile
            current = self.store.outcomes.trust_of(namespace, name)
            new, reason = trust_rules.next_trust(current, self._evidence(detail))
            if new == current:
                return current, None
            if self.store.outcomes.change_trust(namespace, name, current, new, reason, actor):
                return new, self.store.outcomes.trust_events(namespace, name, 1)[0]
        return self.store.outcomes.trust_of(namespace, name), None

    def _decayed(self, namespace: str, name: str) -> tuple[float, float]:
        """The skill's success and failure counts over every version, decayed to now."""
        totals = self.store.outcomes.outcome_totals([(namespace, name)]).get((namespace, name), [])
        return decayed_totals(totals, datetime.now(UTC))

    def _evidence(self, detail: SkillDetail) -> trust_rules.Evidence:
        namespace, name = detail.skill.namespace, detail.skill.name
        stats = self.store.outcomes.version_stats(namespace, name)
        succ, fail = self._decayed(namespace, name)
        # The newest version: when its success collapses the skill is quarantined, even
        # though its deprecation already sends installs back to an older version.
        latest = self._newest_row(detail).version
        current = stats.get(latest)
        verdicts = self.store.reports.verdicts(namespace, name)
        return trust_rules.Evidence(
            successes=sum(s.successes for s in stats.values()),
            clients=self.store.outcomes.success_clients(namespace, name),
            decayed_successes=succ, decayed_failures=fail,
            latest_outcomes=current.successes + current.failures if current else 0,
            latest_ema=current.ema if current else None,
            latest_safe=verdicts.get(latest) == "safe")


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


def author_keys(principal: Principal) -> frozenset[str]:
    """Who a principal is, as a version's authors are remembered (`add_authors`): its
    token, and its account."""
    keys = {principal.token_id, principal.reporter,
            None if principal.user_id is None else f"user:{principal.user_id}"}
    return frozenset(k for k in keys if k is not None)


def _new_outcome(reporter: str, report: OutcomeReport, by_author: bool) -> NewOutcome:
    client = f"{reporter[:16]}:{report.client_id or '-'}"
    return NewOutcome(reporter, report.id, report.version, report.outcome, report.failure_kind,
                      report.score, json.dumps(report.signals, sort_keys=True), report.agent,
                      report.model, client, report.at, report.task_key,
                      guards.AUTHOR if by_author and report.outcome != "infra_error" else None)


def bucket_days(rows: list[tuple[str, str, int, int]], versions: list[str],
                today: date) -> OutcomeTimeline | None:
    """Per-day rows (version, YYYY-MM-DD, successes, failures) as a timeline ending today:
    per day when the data spans at most DAILY_DAYS, else per week. Versions are ordered as
    `versions` (newest first), any others after them."""
    days = {(version, date.fromisoformat(day)): (s, f) for version, day, s, f in rows
            if s or f}
    if not days:
        return None
    first = min(day for _, day in days)
    span = (today - first).days + 1
    step = 1 if span <= DAILY_DAYS else 7
    buckets = max(span, MIN_DAYS) if step == 1 else -(-span // 7)
    start = today - timedelta(days=buckets * step - 1)
    counts: dict[str, list[list[int]]] = {}
    for (version, day), (s, f) in days.items():
        index = (day - start).days // step
        if not 0 <= index < buckets:
            continue  # a report stamped after today's UTC date began (clock skew)
        cell = counts.setdefault(version, [[0, 0] for _ in range(buckets)])[index]
        cell[0] += s
        cell[1] += f
    known = [v for v in versions if v in counts]
    others = sorted((v for v in counts if v not in versions), reverse=True)
    series = [VersionTimeline(v, [(c[0], c[1]) for c in counts[v]]) for v in known + others]
    return OutcomeTimeline(start, step, buckets, series)
