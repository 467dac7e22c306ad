"""Which new outcome reports count: the part of `record_outcomes` both backends share.

Inside the transaction that stores a batch, each backend reads what the rules need (the
tasks already counted, each client's counted reports per version) and calls `guard`, then
writes back the discounts and the new per-client counts. The rules (docs/LEARNING.md):

- a report sent by an author of its version arrives with `discount="author"` (the service
  knows the authors) and is stored, never counted;
- `repeat_task`: a report whose reporter (token) already has a counted report of the same
  task (`task_key`) on the version; one task reported again and again counts once;
- `client_cap`: a report whose client (token and client id) already has `cap` counted
  reports on the version.

Infra errors never count and take no part. Reports are judged in batch order, so of two
reports of one task in a batch the first counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..domain import NewOutcome

REPEAT_TASK, CLIENT_CAP, AUTHOR = "repeat_task", "client_cap", "author"

TaskKey = tuple[str, str, str]    # (version, reporter, task_key)
ClientKey = tuple[str, str]       # (version, client)


def task_keys(reports: list[NewOutcome]) -> set[TaskKey]:
    """The (version, reporter, task) keys whose earlier reports `guard` needs to know."""
    return {(r.version, r.reporter, r.task_key) for r in reports
            if r.task_key is not None and r.counted}


def client_keys(reports: list[NewOutcome]) -> set[ClientKey]:
    """The (version, client) keys whose counted reports `guard` needs to know."""
    return {(r.version, r.client) for r in reports if r.counted}


def guard(reports: list[NewOutcome], seen_tasks: set[TaskKey],
          counts: Mapping[ClientKey, int], cap: int | None
          ) -> tuple[list[NewOutcome], dict[ClientKey, int]]:
    """The reports with their discounts, and the counted reports per (version, client)
    after them (only the keys that changed)."""
    seen = set(seen_tasks)
    after: dict[ClientKey, int] = {}
    out = []
    for report in reports:
        if not report.counted:
            out.append(report)
            continue
        task = (report.version, report.reporter, report.task_key or "")
        if report.task_key is not None and task in seen:
            out.append(replace(report, discount=REPEAT_TASK))
            continue
        key = (report.version, report.client)
        counted = after.get(key, counts.get(key, 0))
        if cap is not None and counted >= cap:
            out.append(replace(report, discount=CLIENT_CAP))
            continue
        if report.task_key is not None:
            seen.add(task)
        after[key] = counted + 1
        out.append(report)
    return out, after
