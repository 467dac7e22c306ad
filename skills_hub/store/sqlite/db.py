"""index.db: one SQLite file in WAL mode, per-thread connections, write transactions.

The embedded default backend. Git is the source of truth for skills and versions; the
database holds what git does not (accounts, tokens, namespace settings, reports, outcomes,
counters) and a queryable copy of the catalogue with an FTS5 index, which `reindex` can
rebuild from git at any time. The modules of this package are the only ones that speak
SQLite's SQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ...errors import Duplicate
from ..cache import Generation
from . import migrations


class Database:
    """Per-thread connections to one index.db in WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        # Moved after each write to what per-process caches hold of the catalogue
        # (namespaces' access facts, versions): every process then drops its copies.
        self.generation = Generation(path.with_name(path.name + "-generation"))

    def migrate(self) -> list[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return migrations.apply(self.connection())

    def readiness(self) -> dict[str, str]:
        """`ok` per check, or what is wrong: the database answers, every migration is in."""
        try:
            waiting = migrations.pending(self.connection())
        except sqlite3.Error as exc:
            return {"database": f"unreachable: {exc}"}
        return {"database": "ok",
                "migrations": f"not applied: {', '.join(waiting)}" if waiting else "ok"}

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a process crash; git holds the fsynced truth.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            self.keep(conn)
        return conn

    def keep(self, conn: sqlite3.Connection) -> None:
        """Close `conn` with the database (a thread's scratch connection)."""
        with self._guard:
            self._all.append(conn)

    def local(self) -> threading.local:
        """Per-thread state of this database (a thread's scratch connection)."""
        return self._local

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): a second writer waits for this one."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            if str(exc).startswith("UNIQUE constraint failed"):
                raise Duplicate(_unique_key(str(exc))) from exc
            raise
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


class Table:
    """A store over the shared database: its connection, transactions and generation."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.generation = db.generation

    def _conn(self) -> sqlite3.Connection:
        return self.db.connection()

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self.db.transaction()


def _unique_key(message: str) -> str:
    """`users.username` from SQLite's `UNIQUE constraint failed: users.username`."""
    return message.split(": ", 1)[-1].split(",")[0]
