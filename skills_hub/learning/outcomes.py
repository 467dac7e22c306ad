"""Outcome reports from agents: parse and validate a batch (every problem at once), and the
per-token rate limit on them.

A report (JSON object):

    id        client-supplied, 1-128 of [A-Za-z0-9._:-]; a repeat of an id the same token
              already sent is acknowledged and not counted again (safe retries)
    version   the skill version the agent used, e.g. "1.2.0"
    outcome   "success" | "failure" | "infra_error" (the agent's tooling failed, not the
              skill: stored, never counted against the skill)
    failure_kind  required with "failure": one of FAILURE_KINDS
    signals   optional: task_accepted (bool), retries (int >= 0), edit_ratio (0..1),
              session_continued (bool), error_reported (bool)
    client    optional: agent, model (strings), id (the client's stable id; canaries use it)
    at        optional ISO 8601 time of the outcome (default: when received; not in the
              future, not older than MAX_AGE_DAYS)
    task      optional: the task it served, its text or a stable label (1-MAX_TASK
              characters); kept as `task_key`, a hash of it with case and runs of white
              space folded, so that one task reported again and again counts once, and
              embedded, so that a search ranks by the evidence of tasks near its query
              (`learning.tasks`)

Not every stored report counts (`store.guards`, docs/LEARNING.md): a report from an author
of the version, a repeat of a task its token already reported on the version, or one past
CLIENT_CAP counted reports of its client on the version is stored and shown, not counted.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import InvalidReport, Problem, RateLimited
from ..ranking.trust import signal_score

if TYPE_CHECKING:
    from ..store.interfaces import RateBuckets

OUTCOMES = ("success", "failure", "infra_error")
FAILURE_KINDS = ("wrong_result", "error", "timeout", "incomplete", "unsafe", "other")
SIGNALS = ("task_accepted", "retries", "edit_ratio", "session_continued", "error_reported")
MAX_BATCH = 1000
SWEEP_EVERY = 1000  # takes between two sweeps of full buckets
MAX_AGE_DAYS = 365
MAX_TEXT = 200
MAX_TASK = 1000
CLIENT_CAP = 50  # counted reports per client (token and client id) and version
ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True)
class OutcomeReport:
    id: str
    version: str
    outcome: str
    failure_kind: str | None
    signals: dict[str, Any]
    score: float | None  # signal_score; None for infra_error
    agent: str | None
    model: str | None
    client_id: str | None
    at: datetime
    task_key: str | None = None
    # The task's text as sent, for its embedding (`learning.tasks`); never stored.
    task_text: str | None = field(default=None, repr=False, compare=False)

    @property
    def counted(self) -> bool:
        """Whether it counts for or against the skill (infra errors do not)."""
        return self.outcome != "infra_error"

    @property
    def success(self) -> bool:
        return self.outcome == "success"


def parse_reports(payload: object, now: datetime | None = None) -> list[OutcomeReport]:
    """One report or {"outcomes": [...]}; raise InvalidReport listing every problem."""
    now = now or datetime.now(UTC)
    items, prefix = _items(payload)
    problems: list[Problem] = []
    reports = []
    for index, item in enumerate(items):
        where = f"{prefix}[{index}]" if prefix else ""
        report = _parse_one(item, where, now, problems)
        if report is not None:
            reports.append(report)
    if problems:
        raise InvalidReport(f"{len(problems)} problem(s) in the outcome reports; nothing was "
                            "recorded", problems=problems)
    return reports


def _items(payload: object) -> tuple[list[object], str]:
    if isinstance(payload, dict) and "outcomes" in payload:
        items = payload["outcomes"]
        if not isinstance(items, list) or not items:
            raise InvalidReport("`outcomes` must be a non-empty list of reports", problems=[
                Problem("outcomes", "not a non-empty list", "send {\"outcomes\": [{...}, ...]}")])
        if len(items) > MAX_BATCH:
            raise InvalidReport(f"{len(items)} reports in one request; at most {MAX_BATCH}",
                                problems=[Problem("outcomes", "too many reports",
                                                  f"split into batches of {MAX_BATCH}")])
        return list(items), "outcomes"
    if isinstance(payload, dict):
        return [payload], ""
    raise InvalidReport("send one report object or {\"outcomes\": [...]}", problems=[
        Problem("body", "not a JSON object", "see the API reference for the report fields")])


def _parse_one(item: object, where: str, now: datetime,
               problems: list[Problem]) -> OutcomeReport | None:
    def bad(key: str, message: str, hint: str) -> None:
        problems.append(Problem(f"{where}.{key}" if where else key, message, hint))

    if not isinstance(item, dict):
        problems.append(Problem(where or "body", "not a JSON object", "send report objects"))
        return None
    before = len(problems)
    report_id = item.get("id")
    if not isinstance(report_id, str) or not ID_RE.match(report_id):
        bad("id", "missing or not a valid id",
            "send a unique id per report: 1-128 letters, digits, '.', '_', ':' or '-'")
    version = item.get("version")
    if not isinstance(version, str) or not version or len(version) > 64:
        bad("version", "missing", "name the skill version the agent used, e.g. \"1.2.0\"")
    outcome = item.get("outcome")
    if outcome not in OUTCOMES:
        bad("outcome", f"{outcome!r} is not an outcome", f"use one of {', '.join(OUTCOMES)}")
    kind = item.get("failure_kind", item.get("kind"))
    if outcome == "failure" and kind not in FAILURE_KINDS:
        bad("failure_kind", f"{kind!r} is not a failure kind",
            f"a failure needs one of {', '.join(FAILURE_KINDS)}")
    signals = _signals(item.get("signals"), bad)
    agent, model, client_id = _client(item.get("client"), bad)
    at = _time(item.get("at"), now, bad)
    task = item.get("task")
    if task is not None and (not isinstance(task, str) or not task.strip()
                             or len(task) > MAX_TASK):
        bad("task", "not a task", f"the task's text or a label, 1-{MAX_TASK} characters")
    if len(problems) > before:
        return None
    assert isinstance(report_id, str) and isinstance(version, str) and isinstance(outcome, str)
    score = None if outcome == "infra_error" else signal_score(
        outcome == "success", accepted=signals.get("task_accepted"),
        continued=signals.get("session_continued"), retries=signals.get("retries", 0),
        edit_ratio=signals.get("edit_ratio", 0.0),
        error_reported=bool(signals.get("error_reported", False)))
    return OutcomeReport(report_id, version, outcome, kind if outcome == "failure" else None,
                         signals, score, agent, model, client_id, at,
                         task_key(task) if isinstance(task, str) else None,
                         task if isinstance(task, str) else None)


def task_key(task: str) -> str:
    """A task's identity: sha256 of its text lower-cased with white space folded."""
    folded = " ".join(task.lower().split())
    return hashlib.sha256(folded.encode()).hexdigest()[:32]


def _signals(raw: object, bad: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        bad("signals", "not an object", f"send an object with any of {', '.join(SIGNALS)}")
        return {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SIGNALS:
            bad(f"signals.{key}", "unknown signal", f"use {', '.join(SIGNALS)}")
        elif key == "retries":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
                bad("signals.retries", "not a count", "an integer from 0 to 1000")
            else:
                out[key] = value
        elif key == "edit_ratio":
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value <= 1:
                bad("signals.edit_ratio", "not a ratio", "a number from 0 to 1")
            else:
                out[key] = float(value)
        elif isinstance(value, bool):
            out[key] = value
        elif value is not None:
            bad(f"signals.{key}", "not a boolean", "true or false")
    return out


def _client(raw: object, bad: Any) -> tuple[str | None, str | None, str | None]:
    if raw is None:
        return None, None, None
    if not isinstance(raw, dict):
        bad("client", "not an object", "send {\"agent\", \"model\", \"id\"}")
        return None, None, None
    values = []
    for key in ("agent", "model", "id"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT):
            bad(f"client.{key}", "not a short string", f"1-{MAX_TEXT} characters")
            value = None
        values.append(value)
    return values[0], values[1], values[2]


def _time(raw: object, now: datetime, bad: Any) -> datetime:
    if raw is None:
        return now
    try:
        at = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        bad("at", "not an ISO 8601 time", "e.g. 2026-11-21T10:00:00Z")
        return now
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    if at > now + timedelta(minutes=5):
        bad("at", "in the future", "send the time the outcome happened")
    elif at < now - timedelta(days=MAX_AGE_DAYS):
        bad("at", f"older than {MAX_AGE_DAYS} days", "old outcomes are not accepted")
    return min(at, now).astimezone(UTC)  # stored in UTC, so that times compare as text


class RateLimiter:
    """A token bucket per key: `rate` units per second, up to `burst` at once, kept in the
    storage's `RateBuckets`, so every process and node of a registry shares one limit."""

    def __init__(self, rate: float, burst: float, buckets: RateBuckets,
                 prefix: str = "outcomes:") -> None:
        self.rate, self.burst = rate, burst
        self._buckets, self._prefix = buckets, prefix
        self._takes = itertools.count()

    def take(self, key: str, units: float = 1.0) -> None:
        """Spend `units` for `key`, or raise RateLimited with how long to wait."""
        now = time.time()
        level = self._buckets.take(self._prefix + key, units, rate=self.rate,
                                   burst=self.burst, now=now)
        if next(self._takes) % SWEEP_EVERY == SWEEP_EVERY - 1:
            self._buckets.sweep(self._prefix, rate=self.rate, burst=self.burst, now=now)
        if level is not None:
            wait = max(1, int((units - level) / self.rate + 0.999))
            raise RateLimited(
                f"too many outcome reports for this token; try again in {wait} s",
                extra={"retry_after": wait, "limit_per_second": self.rate,
                       "burst": self.burst})


