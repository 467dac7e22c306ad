"""Which stored version the scheduled health checks re-run next (docs/LEARNING.md,
"Scheduled health checks").

Every version in the catalogue gets a priority; the scheduler checks the highest first,
as many an hour as its budget allows:

    priority = W_STALE * stale
             + W_USE * log2(1 + uses)
             + W_FALL * fall
             + W_AGE * min(age_days / AGE_FULL_DAYS, 1)

- `stale` is 1 when the version was never checked by the checks that run now: its last
  health check recorded another fingerprint (threat rules, bandit, pipeline revision,
  sandboxed tests on or off), or, never health-checked, its stored report was made by
  another pipeline (`checks.pipeline_id`), or it has no report at all; else 0.
- `uses` = installs since its last check (downloads are counted per skill, so they weigh
  on the skill's `latest`, what an install without a pin gets) + outcome reports on the
  version in the last REPORT_DAYS days.
- `fall` = how far its success EMA fell since its last check (EMA then - EMA now, at
  least 0; 0 when the last check saw no EMA).
- `age_days` = days since its last check (the health check, else the report's check).

A version checked under the current fingerprint less than COOLDOWN_S ago is not in the
queue: however busy, it waits a day, so the busiest versions cannot use the whole budget.
Ties go to the version checked longest ago. With the weights below a rules change (4)
outranks a year-old unused version (2), usage adds one per doubling, and a fall of the
EMA by 0.3 (a healthy 0.9 down to 0.6) adds 3.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..domain import HealthCandidate

W_STALE = 4.0
W_USE = 1.0
W_FALL = 10.0
W_AGE = 2.0
AGE_FULL_DAYS = 30.0
REPORT_DAYS = 7
COOLDOWN_S = 24 * 3600.0
DAY_S = 86_400.0


@dataclass(frozen=True)
class Priority:
    """A version's place in the queue, and why."""

    candidate: HealthCandidate
    score: float
    reasons: tuple[str, ...]
    last_checked: float | None  # seconds since the epoch; None: never checked

    @property
    def key(self) -> tuple[str, str, str]:
        c = self.candidate
        return c.namespace, c.name, c.version


def since_day(now: float) -> str:
    """The first UTC day (YYYY-MM-DD) whose outcome reports count as recent."""
    start = datetime.fromtimestamp(now, UTC) - timedelta(days=REPORT_DAYS - 1)
    return start.date().isoformat()


def priority(c: HealthCandidate, *, now: float, fingerprint: str,
             pipeline: str) -> Priority | None:
    """The version's priority, or None while it cools down after a current check."""
    last = last_checked(c)
    stale, why_stale = _stale(c, fingerprint, pipeline)
    if not stale and last is not None and now - last < COOLDOWN_S:
        return None
    reasons = [why_stale] if stale else []
    installs = max(0, c.downloads - (c.downloads_at_check or 0)) if c.is_latest else 0
    uses = installs + c.recent_reports
    if installs:
        reasons.append(f"{installs} installs since its last check")
    if c.recent_reports:
        reasons.append(f"{c.recent_reports} outcome reports in {REPORT_DAYS} days")
    fall = 0.0
    if c.ema_at_check is not None and c.ema is not None and c.ema < c.ema_at_check:
        fall = c.ema_at_check - c.ema
        reasons.append(f"success EMA fell from {c.ema_at_check:.2f} to {c.ema:.2f}")
    age_days = (now - last) / DAY_S if last is not None else AGE_FULL_DAYS
    if last is not None:
        reasons.append(f"last checked {max(0.0, age_days):.1f} days ago")
    score = (W_STALE * stale + W_USE * math.log2(1 + uses) + W_FALL * fall
             + W_AGE * min(max(0.0, age_days) / AGE_FULL_DAYS, 1.0))
    return Priority(c, round(score, 4), tuple(reasons), last)


def queue(candidates: Iterable[HealthCandidate], *, now: float, fingerprint: str,
          pipeline: str) -> list[Priority]:
    """The versions due a check, most important first (ties: checked longest ago)."""
    due = [p for c in candidates
           if (p := priority(c, now=now, fingerprint=fingerprint, pipeline=pipeline))]
    return sorted(due, key=lambda p: (-p.score, p.last_checked or 0.0, p.key))


def last_checked(c: HealthCandidate) -> float | None:
    """When the version was last checked: its health check, else its stored report."""
    if c.checked_at is not None:
        return c.checked_at
    if c.report_checked_at:
        return _epoch(c.report_checked_at)
    return None


def _stale(c: HealthCandidate, fingerprint: str, pipeline: str) -> tuple[int, str]:
    if c.fingerprint is not None:
        if c.fingerprint != fingerprint:
            return 1, f"the checks changed since its last check ({c.fingerprint})"
        return 0, ""
    if c.report_pipeline is None:
        return 1, "it has no checks report yet"
    if c.report_pipeline != pipeline:
        return 1, f"the checks changed since its publish check ({c.report_pipeline})"
    return 0, ""


def _epoch(text: str) -> float | None:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()
