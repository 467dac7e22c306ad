"""Demands in PostgreSQL: gap asks and the demands they cluster into (m004)."""

from __future__ import annotations

from typing import Any

from ...domain import DemandRow, NewGapAsk
from ..interfaces import Clustering
from .db import Table, int32_key

# Advisory lock class of one scope's clustering: the nearest-demand choice and the write
# of an ask are serialised per scope across nodes (READ COMMITTED would let two writers
# both open a demand for one need).
LOCK_DEMANDS = 0x5348_00D1  # distinct from db.py's classes (0x5348_0001-3)

_COLUMNS = ("d.id, d.scope, d.status, d.representative, d.model, d.asks, d.askers, "
            "d.first_asked, d.last_asked, d.closed_at, d.answer_namespace, d.answer_name, "
            "d.answer_version, d.answer_similarity")
_ORDER = "d.askers DESC, d.asks DESC, d.last_asked DESC, d.id DESC"


def _row(row: tuple[Any, ...]) -> DemandRow:
    values = list(row)
    values[13] = None if values[13] is None else float(values[13])
    return DemandRow(*values)


def _visible(readable: frozenset[str]) -> tuple[str, list[Any]]:
    """Demands of the whole registry, of public namespaces and of the `readable` ones."""
    names = sorted(name for name in readable if "\0" not in name)
    inside = " OR d.scope = ANY(%s)" if names else ""
    return f"(d.scope IS NULL OR n.visibility = 'public'{inside})", [names] if names else []


class Demands(Table):
    """`interfaces.Demands` over `demands` and `demand_asks`."""

    def record_ask(self, ask: NewGapAsk, clustering: Clustering, *,
                   members: int = 200) -> int:
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                         (LOCK_DEMANDS, int32_key(ask.scope or "")))
            centroids = [(int(r[0]), bytes(r[1])) for r in conn.execute(
                "SELECT id, centroid FROM demands WHERE status = 'open' "
                "AND scope IS NOT DISTINCT FROM %s AND model = %s",
                (ask.scope, ask.model)).fetchall()]
            demand_id = clustering.nearest(ask.vector, centroids)
            centroid = b""
            if demand_id is None:
                row = conn.execute(
                    "INSERT INTO demands (scope, status, representative, model, centroid, asks, "
                    "askers, first_asked, last_asked) VALUES (%s, 'open', %s, %s, %s, 0, 0, "
                    "%s, %s) RETURNING id",
                    (ask.scope, ask.query, ask.model, ask.vector, ask.asked_at,
                     ask.asked_at)).fetchone()
                assert row is not None
                demand_id = int(row[0])
            else:
                centroid = dict(centroids)[demand_id]
            new_asker = conn.execute(
                "SELECT 1 FROM demand_asks WHERE demand_id = %s AND asker = %s LIMIT 1",
                (demand_id, ask.asker)).fetchone() is None
            conn.execute(
                "INSERT INTO demand_asks (demand_id, query, vector, model, asker, scope, "
                "asked_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (demand_id, ask.query, ask.vector, ask.model, ask.asker, ask.scope,
                 ask.asked_at))
            if centroid:
                centroid = clustering.fold(centroid, ask.vector)
                recent = conn.execute(
                    "SELECT query, vector FROM demand_asks WHERE id IN (SELECT max(id) FROM "
                    "demand_asks WHERE demand_id = %s GROUP BY query) ORDER BY id DESC "
                    "LIMIT %s", (demand_id, members)).fetchall()
                conn.execute(
                    "UPDATE demands SET centroid = %s, representative = %s WHERE id = %s",
                    (centroid, clustering.representative(
                        centroid, [(str(q), bytes(v)) for q, v in recent]), demand_id))
            conn.execute("UPDATE demands SET asks = asks + 1, askers = askers + %s, "
                         "last_asked = greatest(last_asked, %s) WHERE id = %s",
                         (1 if new_asker else 0, ask.asked_at, demand_id))
        return demand_id

    def demands(self, *, readable: frozenset[str], status: str | None,
                scope: str | None, asker: str | None, offset: int,
                limit: int) -> list[DemandRow]:
        where, params = _visible(readable)
        clauses = [where]
        if status is not None:
            clauses.append("d.status = %s")
            params.append(status)
        if scope is not None:
            if "\0" in scope:
                return []
            clauses.append("d.scope = %s")
            params.append(scope)
        if asker is not None:
            clauses.append("d.id IN (SELECT demand_id FROM demand_asks WHERE asker = %s)")
            params.append(asker)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM demands d LEFT JOIN namespaces n ON n.name = d.scope "
                f"WHERE {' AND '.join(clauses)} ORDER BY {_ORDER} LIMIT %s OFFSET %s",
                (*params, limit, offset)).fetchall()
        return [_row(r) for r in rows]

    def demand(self, demand_id: int, *, readable: frozenset[str]) -> DemandRow | None:
        where, params = _visible(readable)
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM demands d LEFT JOIN namespaces n ON n.name = d.scope "
                f"WHERE d.id = %s AND {where}", (demand_id, *params)).fetchone()
        return None if row is None else _row(row)

    def asked(self, demand_id: int, asker: str) -> bool:
        with self._read() as conn:
            return conn.execute(
                "SELECT 1 FROM demand_asks WHERE demand_id = %s AND asker = %s LIMIT 1",
                (demand_id, asker)).fetchone() is not None

    def phrasings(self, demand_id: int, limit: int) -> list[tuple[str, int]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT query, count(*) FROM demand_asks WHERE demand_id = %s GROUP BY query "
                "ORDER BY count(*) DESC, max(id) DESC LIMIT %s", (demand_id, limit)).fetchall()
        return [(str(q), int(n)) for q, n in rows]

    def open_centroids(self, namespace: str, *, registry: bool
                       ) -> list[tuple[int, str, bytes]]:
        extra = " OR scope IS NULL" if registry else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT id, model, centroid FROM demands WHERE status = 'open' "
                f"AND (scope = %s{extra})", (namespace,)).fetchall()
        return [(int(i), str(m), bytes(c)) for i, m, c in rows]

    def close_demand(self, demand_id: int, namespace: str, name: str, version: str,
                     similarity: float, at: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE demands SET status = 'closed', closed_at = %s, answer_namespace = %s, "
                "answer_name = %s, answer_version = %s, answer_similarity = %s "
                "WHERE id = %s AND status = 'open'",
                (at, namespace, name, version, similarity, demand_id))
        return cur.rowcount == 1
