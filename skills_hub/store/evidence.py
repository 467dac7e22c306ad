"""The evidence export's keyset pages as SQL both backends share (`store.sqlite`,
`store.postgres` pass their placeholder): one namespace's outcome reports, proposals or
decided releases, oldest first, after the last row of the page before.

Each page is a range scan of an index that starts with the namespace and goes on with the
page's order (migrations `m013_evidence_export` in SQLite, `m005_evidence_export` in
PostgreSQL), so a page costs the same at the first row and at the millionth, and nothing
holds more than a page in memory. The key compares as one row value, `(at, reporter,
report_id) > (?, ?, ?)`, which both backends turn into the index's range.
"""

from __future__ import annotations

from typing import Any

OUTCOME_COLUMNS = ("namespace, name, version, outcome, failure_kind, score, signals_json, "
                   "agent, model, reporter, report_id, at, discount")
OUTCOME_KEY = ("at", "reporter", "report_id")
PROPOSAL_KEY = ("created_at", "id")
RELEASE_KEY = ("decided_at", "id")


def page_query(mark: str, select: str, key: tuple[str, ...], namespace: str, *,
               name: str | None, since: str | None, until: str | None,
               after: tuple[str, ...] | None, limit: int,
               where: tuple[str, ...] = ()) -> tuple[str, list[Any]]:
    """`select` (a `SELECT ... FROM table`) limited to the namespace, the skill `name`,
    `since` <= the key's time column < `until`, rows after the key `after`, ordered by the
    key; `mark` is the backend's placeholder (`?` or `%s`)."""
    clauses, params = [f"namespace = {mark}", *where], [namespace]
    for clause, value in ((f"name = {mark}", name), (f"{key[0]} >= {mark}", since),
                          (f"{key[0]} < {mark}", until)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if after is not None:
        clauses.append(f"({', '.join(key)}) > ({', '.join(mark for _ in key)})")
        params.extend(after)
    sql = (f"{select} WHERE {' AND '.join(clauses)} ORDER BY {', '.join(key)} "
           f"LIMIT {mark}")
    return sql, [*params, limit]
