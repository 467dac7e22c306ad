"""Demands in SQLite: gap asks and the demands they cluster into (m012)."""

from __future__ import annotations

import sqlite3
from typing import Any

from ...domain import DemandRow, NewGapAsk
from ..interfaces import Clustering
from .db import Table

_COLUMNS = ("d.id, d.scope, d.status, d.representative, d.model, d.asks, d.askers, "
            "d.first_asked, d.last_asked, d.closed_at, d.answer_namespace, d.answer_name, "
            "d.answer_version, d.answer_similarity")
_ORDER = "d.askers DESC, d.asks DESC, d.last_asked DESC, d.id DESC"


def _row(row: sqlite3.Row) -> DemandRow:
    return DemandRow(*tuple(row))


def _visible(readable: frozenset[str]) -> tuple[str, list[Any]]:
    """Demands of the whole registry, of public namespaces and of the `readable` ones."""
    names = sorted(readable)
    marks = ", ".join("?" for _ in names)
    inside = f" OR d.scope IN ({marks})" if names else ""
    return (f"(d.scope IS NULL OR n.visibility = 'public'{inside})", names)


class Demands(Table):
    """`interfaces.Demands`: one BEGIN IMMEDIATE transaction per ask, so the nearest-demand
    choice and the write are serialised across every process of the home."""

    def record_ask(self, ask: NewGapAsk, clustering: Clustering, *,
                   members: int = 200) -> int:
        with self._tx() as conn:
            scope_sql = "scope IS ?" if ask.scope is None else "scope = ?"
            centroids = [(int(r[0]), bytes(r[1])) for r in conn.execute(
                f"SELECT id, centroid FROM demands WHERE status = 'open' AND {scope_sql} "
                "AND model = ?", (ask.scope, ask.model))]
            demand_id = clustering.nearest(ask.vector, centroids)
            if demand_id is None:
                cur = conn.execute(
                    "INSERT INTO demands (scope, status, representative, model, centroid, asks, "
                    "askers, first_asked, last_asked) VALUES (?, 'open', ?, ?, ?, 0, 0, ?, ?)",
                    (ask.scope, ask.query, ask.model, ask.vector, ask.asked_at, ask.asked_at))
                demand_id = int(cur.lastrowid or 0)
                centroid = b""
            else:
                centroid = dict(centroids)[demand_id]
            new_asker = conn.execute("SELECT 1 FROM demand_asks WHERE demand_id = ? AND "
                                     "asker = ? LIMIT 1", (demand_id, ask.asker)).fetchone() is None
            conn.execute(
                "INSERT INTO demand_asks (demand_id, query, vector, model, asker, scope, "
                "asked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (demand_id, ask.query, ask.vector, ask.model, ask.asker, ask.scope,
                 ask.asked_at))
            if centroid:
                centroid = clustering.fold(centroid, ask.vector)
                recent = conn.execute(
                    "SELECT query, vector FROM demand_asks WHERE id IN (SELECT max(id) FROM "
                    "demand_asks WHERE demand_id = ? GROUP BY query) ORDER BY id DESC LIMIT ?",
                    (demand_id, members)).fetchall()
                conn.execute(
                    "UPDATE demands SET centroid = ?, representative = ? WHERE id = ?",
                    (centroid, clustering.representative(
                        centroid, [(str(q), bytes(v)) for q, v in recent]), demand_id))
            conn.execute("UPDATE demands SET asks = asks + 1, askers = askers + ?, "
                         "last_asked = max(last_asked, ?) WHERE id = ?",
                         (1 if new_asker else 0, ask.asked_at, demand_id))
        return demand_id

    def demands(self, *, readable: frozenset[str], status: str | None,
                scope: str | None, asker: str | None, offset: int,
                limit: int) -> list[DemandRow]:
        where, params = _visible(readable)
        clauses = [where]
        if status is not None:
            clauses.append("d.status = ?")
            params.append(status)
        if scope is not None:
            clauses.append("d.scope = ?")
            params.append(scope)
        if asker is not None:
            clauses.append("d.id IN (SELECT demand_id FROM demand_asks WHERE asker = ?)")
            params.append(asker)
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM demands d LEFT JOIN namespaces n ON n.name = d.scope "
            f"WHERE {' AND '.join(clauses)} ORDER BY {_ORDER} LIMIT ? OFFSET ?",
            (*params, limit, offset)).fetchall()
        return [_row(r) for r in rows]

    def demand(self, demand_id: int, *, readable: frozenset[str]) -> DemandRow | None:
        where, params = _visible(readable)
        row = self._conn().execute(
            f"SELECT {_COLUMNS} FROM demands d LEFT JOIN namespaces n ON n.name = d.scope "
            f"WHERE d.id = ? AND {where}", (demand_id, *params)).fetchone()
        return None if row is None else _row(row)

    def asked(self, demand_id: int, asker: str) -> bool:
        return self._conn().execute(
            "SELECT 1 FROM demand_asks WHERE demand_id = ? AND asker = ? LIMIT 1",
            (demand_id, asker)).fetchone() is not None

    def phrasings(self, demand_id: int, limit: int) -> list[tuple[str, int]]:
        rows = self._conn().execute(
            "SELECT query, count(*) FROM demand_asks WHERE demand_id = ? GROUP BY query "
            "ORDER BY count(*) DESC, max(id) DESC LIMIT ?", (demand_id, limit)).fetchall()
        return [(str(q), int(n)) for q, n in rows]

    def open_centroids(self, namespace: str, *, registry: bool
                       ) -> list[tuple[int, str, bytes]]:
        extra = " OR scope IS NULL" if registry else ""
        rows = self._conn().execute(
            f"SELECT id, model, centroid FROM demands WHERE status = 'open' "
            f"AND (scope = ?{extra})", (namespace,)).fetchall()
        return [(int(i), str(m), bytes(c)) for i, m, c in rows]

    def close_demand(self, demand_id: int, namespace: str, name: str, version: str,
                     similarity: float, at: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE demands SET status = 'closed', closed_at = ?, answer_namespace = ?, "
                "answer_name = ?, answer_version = ?, answer_similarity = ? "
                "WHERE id = ? AND status = 'open'",
                (at, namespace, name, version, similarity, demand_id))
        return cur.rowcount == 1
