"""Scheduled health checks: the publish pipeline re-run on stored versions, most important
first (`learning.schedule`), a budget an hour, by one process of the deployment.

One scheduler per deployment, however many worker processes and nodes share the database:
each process's `HealthScheduler` thread wakes every TICK_S and tries to take (or renew) the
lease row; the one that holds it checks, the others wait. The lease expires LEASE_S after
its last renewal, so when its holder dies another process takes over within that long. A
holder renews it after every check and stops when it lost it. Each version is also
claimed before it is checked (a conditional write on its last check), so two processes
never check one version twice even while a slow holder's lease ran out under it.

The budget is SKILLS_HUB_HEALTH_BUDGET versions an hour, counted from the logged checks
of the last hour (a restart or another process does not reset it), spread over the hour:
each tick checks at most budget x TICK_S / 3600 (rounded up). Two processes that both held
the lease (the expired-lease case above) may together overshoot the hour's count by one
tick's worth. `skills-hub health` checks everything at once and logs its checks too, so
the scheduler then rests for the hour.

A check runs the whole pipeline (`ModerationMixin._recheck`, sandboxed tests included when
the sandbox is on), records the report (a changed verdict goes into the report history as
always) and then:
- a `dangerous` verdict deprecates the version (as every re-check does);
- tests of the skill's own that fail now, where the previous report had no failing test,
  deprecate it with the failure as the reason (`version_health`); a version published
  with failing tests stays the flagged `caution` it was published as. When a later check
  passes, the deprecation is lifted; the outcome EMA does not lift it;
- `latest` moves to the newest healthy version when anything changed.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..access.principal import Principal
from ..checks.findings import DANGEROUS, Finding
from ..checks.pipeline import Options, Report, pipeline_id
from ..domain import HealthCandidate, HealthCheckRow, VersionRow
from ..learning import schedule
from ..learning.schedule import Priority
from .base import RegistryBase
from .moderation import HealthChange
from .releases import RECHECK_FAILED

log = logging.getLogger(__name__)

HOUR_S = 3600.0
TICK_S = 60.0          # how often each process's scheduler thread wakes
LEASE_S = 300.0        # a lease outlives its last renewal by this long
CLAIM_S = 600.0        # a claim on a version outlives its taking by this long
KEEP_LOG_S = 30 * 86_400.0  # logged checks are kept this long (each version's last stays)
# Sandbox findings that mean the skill's own tests did not pass.
TEST_RULES = frozenset({"sandbox.test-failed", "sandbox.timeout", "sandbox.resource-limit",
                        "sandbox.template-error"})


def fingerprint(options: Options) -> str:
    """What a check ran: the pipeline (revision, bandit, threat rules) and whether the
    skills' own tests run. A version last checked under another is due again."""
    return f"{pipeline_id()}+tests-{'off' if options.sandbox == 'off' else 'on'}"


def failing_tests(report: Report) -> list[Finding]:
    """The findings of the report that say the skill's own tests failed."""
    return [f for f in report.findings if f.counts and f.rule in TEST_RULES]


def per_tick(budget: int) -> int:
    """How many versions one tick may check: the hourly budget spread over the hour."""
    return max(1, math.ceil(budget * TICK_S / HOUR_S))


@dataclass(frozen=True)
class HealthTick:
    """What one tick of one process did."""

    holder: str
    leader: bool        # it held the lease (else it checked nothing)
    budget: int
    used: int           # checks logged in the hour before the tick
    checks: list[HealthCheckRow]


@dataclass(frozen=True)
class HealthStatus:
    """The queue, the last check and what changed, as one caller may see them."""

    enabled: bool
    budget: int
    fingerprint: str
    due: int                            # versions due a check (of those shown)
    queue: list[Priority]
    last_check: HealthCheckRow | None
    changes: list[HealthCheckRow]
    checked_last_hour: int | None       # the operator's view only
    holder: str | None                  # the operator's view only
    lease_expires: float | None         # the operator's view only


class HealthMixin(RegistryBase):
    """Health checks: one version's check, a scheduler tick, the status."""

    _health_scheduler: HealthScheduler | None = None
    _health_holder: str | None = None

    @property
    def health_holder(self) -> str:
        """This registry's name as a lease holder: host, process and a random part."""
        if self._health_holder is None:
            self._health_holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        return self._health_holder

    def check_health(self, namespace: str, name: str, row: VersionRow, *, kind: str,
                     holder: str | None = None, priority: float = 0.0,
                     reasons: Sequence[str] = (),
                     candidate: HealthCandidate | None = None, at: float | None = None
                     ) -> tuple[HealthChange, HealthCheckRow]:
        """Re-run the pipeline on one version, deprecate or restore it, log the check
        (at `at`, seconds since the epoch: now unless the scheduler's clock says).

        The caller moves `latest` when the returned change says anything changed."""
        started, at = time.perf_counter(), time.time() if at is None else at
        before = self.store.reports.get_report(namespace, name, row.version)
        was_failing = before is not None and before.content_sha256 == row.content_sha256 \
            and bool(failing_tests(Report.from_dict(before.report)))
        change, report = self._recheck(namespace, name, row, kind)
        status, why = self.store.outcomes.health(namespace, name).get(row.version, ("", ""))
        by_check = status == "deprecated" and why.startswith(RECHECK_FAILED)
        failing = failing_tests(report)
        health, note = "", ""
        if failing and not was_failing and not by_check:
            note = RECHECK_FAILED + _describe(failing[0])
            if self.store.outcomes.set_health(namespace, name, row.version, "deprecated", note):
                health = "deprecated"
        elif not failing and by_check and report.sandbox is not None:  # tests ran, passed
            if self.store.outcomes.set_health(namespace, name, row.version, "healthy",
                                              "a re-check passed"):
                health = "restored"
        if report.verdict == DANGEROUS and change.old_verdict != DANGEROUS:
            health, note = "deprecated", f"dangerous: {_describe(report.flagged()[0])}" \
                if report.flagged() else "dangerous"
        elif change.old_verdict == DANGEROUS and report.verdict != DANGEROUS and not health:
            health = "restored"
        downloads, ema = self._usage(namespace, name, row.version, candidate)
        check = HealthCheckRow(
            namespace, name, row.version, at, kind, holder or self.health_holder,
            fingerprint(self.check_options), priority, "; ".join(reasons), change.old_verdict,
            change.new_verdict, health, note, round((time.perf_counter() - started) * 1000, 2),
            downloads, ema)
        self.store.health.record_check(check)
        return HealthChange(namespace, name, row.version, change.old_verdict,
                            change.new_verdict, health, note), check

    def health_tick(self, holder: str | None = None, *, now: float | None = None,
                    batch: int | None = None,
                    stop: threading.Event | None = None) -> HealthTick:
        """One tick of the scheduler, synchronously: take or renew the lease, then check
        what the hour's budget and the tick's share allow (`batch` overrides the share;
        `now` moves the clock, for tests and benchmarks)."""
        holder = holder or self.health_holder
        budget = self.settings.health_budget
        start, t0 = (time.time() if now is None else now), time.monotonic()

        def clock() -> float:
            return start + (time.monotonic() - t0)

        if budget <= 0 or not self.store.health.take_lease(holder, now=start, ttl=LEASE_S):
            return HealthTick(holder, False, budget, 0, [])
        used = self.store.health.checks_since(start - HOUR_S)
        want = min(budget - used, per_tick(budget) if batch is None else batch)

        def keep_going() -> bool:
            return not (stop is not None and stop.is_set()) and \
                self.store.health.take_lease(holder, now=clock(), ttl=LEASE_S)

        checks = self.health_batch(holder, want, clock, keep_going) if want > 0 else []
        self.store.health.prune_checks(start - KEEP_LOG_S)
        return HealthTick(holder, True, budget, used, checks)

    def health_batch(self, holder: str, limit: int, clock: Callable[[], float],
                     keep_going: Callable[[], bool] = lambda: True) -> list[HealthCheckRow]:
        """Check up to `limit` versions from the head of the queue, each claimed first;
        `keep_going` is asked after each check (the tick renews its lease there)."""
        now = clock()
        due = schedule.queue(self.store.health.candidates(since_day=schedule.since_day(now)),
                             now=now, fingerprint=fingerprint(self.check_options),
                             pipeline=pipeline_id())
        done: list[HealthCheckRow] = []
        for item in due:
            if len(done) >= limit:
                break
            c = item.candidate
            if c.claimed_by not in (None, holder) and (c.claimed_until or 0.0) >= clock():
                continue
            if not self.store.health.claim(c.namespace, c.name, c.version, holder, now=clock(),
                                           until=clock() + CLAIM_S, checked_at=c.checked_at):
                continue
            check = self._scheduled_check(item, holder, clock())
            if check is not None:
                done.append(check)
            if not keep_going():
                break
        return done

    def _scheduled_check(self, item: Priority, holder: str,
                         at: float) -> HealthCheckRow | None:
        """Check one claimed version; None when it is gone or the check failed (logged)."""
        c = item.candidate
        skill = self.store.catalogue.get_skill(c.namespace, c.name)
        row = self.store.catalogue.get_version(skill.id, c.version) if skill else None
        if row is None:
            self.store.health.release_claim(c.namespace, c.name, c.version, holder)
            return None
        try:
            change, check = self.check_health(c.namespace, c.name, row, kind="scheduled",
                                              holder=holder, priority=item.score,
                                              reasons=item.reasons, candidate=c, at=at)
        except Exception:  # one broken version must not stop the schedule
            log.exception("health check of %s/%s %s failed", c.namespace, c.name, c.version)
            self.store.health.release_claim(c.namespace, c.name, c.version, holder)
            return None
        if change.changed:
            log.info("health check: %s/%s %s %s -> %s %s", c.namespace, c.name, c.version,
                     change.old_verdict, change.new_verdict, change.health or "")
            self._refresh_latest(c.namespace, c.name)
        return check

    def _usage(self, namespace: str, name: str, version: str,
               candidate: HealthCandidate | None) -> tuple[int, float | None]:
        """(the skill's installs, the version's success EMA) as the check saw them."""
        if candidate is not None:
            return candidate.downloads, candidate.ema
        skill = self.store.catalogue.get_skill(namespace, name)
        stats = self.store.outcomes.version_stats(namespace, name).get(version)
        return (skill.downloads if skill else 0), (stats.ema if stats else None)

    def health_status(self, principal: Principal, *, namespace: str | None = None,
                      limit: int = 20, now: float | None = None) -> HealthStatus:
        """The queue's head with priorities and reasons, the last check and the recent
        changes, in the namespaces `principal` may read; the lease and the hour's count
        for the operator only."""
        if namespace is not None:
            self.check_readable(namespace, principal)
        now = time.time() if now is None else now
        everything = principal.operator and principal.limit is None
        readable = None if everything else principal.readable
        due = [p for p in schedule.queue(
                   self.store.health.candidates(since_day=schedule.since_day(now)), now=now,
                   fingerprint=fingerprint(self.check_options), pipeline=pipeline_id())
               if (namespace is None or p.candidate.namespace == namespace)
               and (readable is None or p.candidate.visibility == "public"
                    or p.candidate.namespace in readable)]
        last = self.store.health.recent_checks(readable=readable, changed=False, limit=1,
                                               namespace=namespace)
        lease = self.store.health.lease() if everything else None
        return HealthStatus(
            enabled=self.settings.health_budget > 0, budget=self.settings.health_budget,
            fingerprint=fingerprint(self.check_options), due=len(due), queue=due[:limit],
            last_check=last[0] if last else None,
            changes=self.store.health.recent_checks(readable=readable, changed=True,
                                                    limit=limit, namespace=namespace),
            checked_last_hour=self.store.health.checks_since(now - HOUR_S)
            if everything else None,
            holder=lease[0] if lease else None, lease_expires=lease[1] if lease else None)

    def start_health_checks(self) -> None:
        """Start this process's scheduler thread (the server does, at start-up), unless
        the budget is 0."""
        if self.settings.health_budget > 0 and self._health_scheduler is None:
            self._health_scheduler = HealthScheduler(self)
            self._health_scheduler.start()

    def stop_health_checks(self) -> None:
        """Stop the thread (after the check in progress) and give the lease up, so another
        process takes over at its next tick instead of after LEASE_S."""
        if self._health_scheduler is not None:
            self._health_scheduler.close()
            self._health_scheduler = None
        if self._health_holder is not None:
            holder, self._health_holder = self._health_holder, None  # once
            try:
                self.store.health.release_lease(holder)
            except Exception:  # the database may be gone already; the lease then expires
                log.exception("could not give the health-check lease up")


class HealthScheduler:
    """One process's scheduler thread: a tick every `interval` seconds, the first one
    interval after the start (the server warms up first)."""

    def __init__(self, registry: HealthMixin, interval: float = TICK_S) -> None:
        self.registry = registry
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="health-checks")

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                tick = self.registry.health_tick(stop=self._stop)
            except Exception:  # a lost connection, say: try again next tick
                log.exception("a health-check tick failed")
                continue
            if tick.checks:
                log.info("health checks: %d versions checked (%d of %d this hour)",
                         len(tick.checks), tick.used + len(tick.checks), tick.budget)


def _describe(finding: Finding) -> str:
    where = f" ({finding.file})" if finding.file else ""
    return f"{finding.rule}{where}: {finding.message}"[:300]
