"""The catalogue in PostgreSQL (SKILLS_HUB_DATABASE_URL): a connection pool, migrations,
change notifications and the cross-node write lock.

The same content as the embedded `index.db` (see `store.sqlite`), for several nodes
sharing one database. The modules of this package are the only ones that speak
PostgreSQL's SQL.

Pool size: at most `pool_max` connections per process (10 by default), set by the URL's
`?pool_max=N` (taken out of the URL before it reaches libpq) or the `pool_max` argument of
`Database`. Each process also holds one connection for LISTEN and, while a namespace's
repo is being written, one per held `WriteLock` (a pool of its own, up to `pool_max`, so
waiting for a lock never starves the queries). Size the server's `max_connections` for
nodes x processes x (pool_max + 1 + namespaces written at once).

Changes between nodes travel by `NOTIFY skills_hub_changes, '<kind>'` (delivered at
commit): `generation` (access facts and versions: per-process caches drop their copies),
`catalogue` (skills and versions added or removed) and `vectors` (what the in-memory vector
matrix should hold). One listener thread per `Database` keeps the local values current, so
`Generation.current()`, `Catalogue.catalogue_mark()` and `Vectors.vectors_mark()` cost no
query while nothing changed. A node's own commits count at once; another node's arrive
with the notification, a few milliseconds after its commit (5 ms at most measured on one
machine): until then this node may serve what it had. While the listener is disconnected
the marks are read from the database on every call and the generation moves on every read
(caches keep nothing); when it reconnects everything counts as changed, since
notifications sent meanwhile are lost. A connection that died without a word is noticed
by TCP keepalives or the listener's ping every PING_S.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import selectors
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from ...errors import Busy, Duplicate
from . import migrations

log = logging.getLogger(__name__)

Conn = psycopg.Connection[TupleRow]
T = TypeVar("T")

CHANNEL = "skills_hub_changes"
KINDS = ("generation", "catalogue", "vectors")
POOL_MAX = 10
PING_S = 10.0           # the listener checks its connection when this long quiet
RECONNECT_S = (0.2, 5.0)  # the listener's first and longest wait before reconnecting
LOCK_WAIT_S = 30.0      # the longest a write waits for a namespace's lock held elsewhere

# Advisory lock classes: the first key of the two-int4 form, transaction-scoped. The
# namespaces' write locks (`WriteLock`) use the one-bigint form, a separate key space.
LOCK_MIGRATE = migrations.LOCK_MIGRATE  # applying migrations
LOCK_SKILL = 0x5348_0002     # read-modify-write of one skill's rows (stats, trust, reports)
LOCK_VECTORS = 0x5348_0003   # embeddings get their ids in commit order (`vectors_since`)


def split_url(url: str) -> tuple[str, int | None]:
    """(libpq URL, pool_max) from a database URL carrying `?pool_max=N`."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    pool = [v for k, v in query if k == "pool_max"]
    rest = [(k, v) for k, v in query if k != "pool_max"]
    if pool and not (pool[-1].isdigit() and int(pool[-1]) >= 1):
        raise ValueError(f"pool_max in the database URL must be a whole number >= 1, "
                         f"not {pool[-1]!r}")
    return (urlunsplit(parts._replace(query=urlencode(rest))),
            int(pool[-1]) if pool else None)


def int32_key(*parts: str) -> int:
    """A signed 32-bit advisory lock key for `parts` (collisions only serialise more)."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def int64_key(text: str) -> int:
    """A signed 64-bit advisory lock key: the first 8 bytes of sha256(text)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class Generation:
    """The `interfaces.Generation` of a PostgreSQL catalogue: a local value that the
    listener replaces on every `generation` notification (from any node) and `bump`
    replaces at once; bump also counts in the `generation` row and notifies the others."""

    SIZE = 16

    def __init__(self, db: Database) -> None:
        self._db = db
        self._value = os.urandom(self.SIZE)

    def current(self) -> bytes:
        if not self._db.listening:  # changes may go unseen: every read is a new value
            return os.urandom(self.SIZE)
        return self._value

    def bump(self) -> None:
        """Tell every node's caches that the facts changed (call it after the commit)."""
        self.moved()
        with self._db.connection() as conn:
            conn.execute("WITH g AS (UPDATE generation SET value = value + 1 RETURNING value) "
                         "SELECT pg_notify(%s, 'generation') FROM g", (CHANNEL,))

    def moved(self) -> None:
        self._value = os.urandom(self.SIZE)


class Database:
    """A connection pool over one PostgreSQL database, its migrations and the listener."""

    def __init__(self, url: str, *, pool_max: int | None = None) -> None:
        self.url, from_url = split_url(url)
        size = pool_max or from_url or POOL_MAX
        self.pool: ConnectionPool[Conn] = ConnectionPool(
            self.url, min_size=1, max_size=size, kwargs={"autocommit": True},
            open=True, name="skills-hub")
        # Advisory namespace locks hold a connection while the git write runs; their own
        # pool, so that waiting for a lock never takes the connections queries need.
        self.lock_pool: ConnectionPool[Conn] = ConnectionPool(
            self.url, min_size=0, max_size=size, kwargs={"autocommit": True},
            open=True, name="skills-hub-locks")
        self.generation = Generation(self)
        self.listening = False
        self._counts = dict.fromkeys(KINDS, 0)
        self._counting = threading.Lock()
        self._marks: dict[str, tuple[int, Any]] = {}
        self._pending: dict[int, set[str]] = {}
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._listener = threading.Thread(target=self._listen, daemon=True,
                                          name="skills-hub-listen")
        self._listener.start()

    # -- lifecycle ------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied (each once, however many nodes start)."""
        with self.connection() as conn:
            return migrations.apply(conn)

    def readiness(self) -> dict[str, str]:
        """`ok` per check, or what is wrong: the database answers, every migration is in."""
        try:
            with self.pool.connection(timeout=5) as conn:
                waiting = migrations.pending(conn)
        except psycopg.Error as exc:  # the pool's PoolTimeout too
            return {"database": f"unreachable: {exc}"}
        return {"database": "ok",
                "migrations": f"not applied: {', '.join(waiting)}" if waiting else "ok"}

    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            os.write(self._wake_w, b"x")
            self._listener.join(timeout=10)
            os.close(self._wake_r)
            os.close(self._wake_w)
        self.pool.close()
        self.lock_pool.close()

    # -- connections ----------------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection in autocommit mode: each statement is its own transaction."""
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """A pooled connection inside a transaction (READ COMMITTED), committed at the end
        of the block, rolled back if it raises. Read-modify-write of rows that may not
        exist yet takes an advisory lock first (`lock`)."""
        with self.pool.connection() as conn:
            self._pending[id(conn)] = set()
            try:
                with conn.transaction():
                    yield conn
                changed = self._pending.pop(id(conn), set())
            except psycopg.errors.UniqueViolation as exc:
                diag = exc.diag
                raise Duplicate(f"{diag.table_name or 'row'} "
                                f"({diag.constraint_name or 'a unique key'})") from exc
            finally:
                self._pending.pop(id(conn), None)
        for kind in changed:  # our own commits count at once, before any notification
            self._changed(kind)

    def notify(self, conn: Conn, *kinds: str) -> None:
        """Tell every node, at the commit of `conn`'s transaction, that `kinds` changed."""
        conn.execute("SELECT pg_notify(%s, kind) FROM unnest(%s::text[]) AS kind",
                     (CHANNEL, list(kinds)))
        self._pending.setdefault(id(conn), set()).update(kinds)

    @staticmethod
    def lock(conn: Conn, lock_class: int, *key: str) -> None:
        """Hold an advisory lock on (`lock_class`, `key`) until the transaction ends."""
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                     (lock_class, int32_key(*key) if key else 0))

    def mark(self, kind: str, read: Callable[[], T]) -> T:
        """`read()`, re-read only after a `kind` notification (or our own commit of one)
        while the listener runs; read every time while it does not."""
        if not self.listening:
            return read()
        seen = self._counts[kind]
        kept = self._marks.get(kind)
        if kept is not None and kept[0] == seen:
            return kept[1]  # type: ignore[no-any-return]
        value = read()
        self._marks[kind] = (seen, value)  # a notification meanwhile moved the count on
        return value

    # -- the listener ---------------------------------------------------------------------

    def _changed(self, kind: str) -> None:
        if kind == "generation":
            self.generation.moved()
        elif kind in self._counts:
            with self._counting:
                self._counts[kind] += 1

    def _everything_changed(self) -> None:
        for kind in KINDS:
            self._changed(kind)

    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, keepalives=1,
                                     keepalives_idle=10, keepalives_interval=5,
                                     keepalives_count=3) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Listening now: whatever changed before (or while disconnected) is
                    # read afresh; whatever changes from now on is notified.
                    self._everything_changed()
                    self.listening = True
                    failures = 0
                    self._receive(conn)
            except (psycopg.Error, OSError) as exc:
                if self._stop.is_set():
                    break
                failures += 1
                # Once per outage: the retries of a server that is away say nothing new.
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "the change listener lost PostgreSQL (%s); reconnecting", exc)
            finally:
                self.listening = False
                self._everything_changed()
            if self._stop.wait(min(RECONNECT_S[0] * 2 ** failures, RECONNECT_S[1])):
                break

    def _receive(self, conn: Conn) -> None:
        """Apply notifications until `close` (the wake pipe) or a connection error."""
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not selector.select(timeout=PING_S):
                    conn.execute("SELECT 1")  # fails when the connection died quietly
                if self._stop.is_set():
                    return
                for note in conn.notifies(timeout=0):
                    self._changed(note.payload)


class WriteLock:
    """`interfaces.WriteLock` across machines: a session advisory lock per namespace (the
    one-bigint key space), held on a connection of the lock pool while the git write runs.

    Waiting is bounded (`wait_s`, PostgreSQL's lock_timeout applies to advisory locks): a
    node frozen or cut off while holding the lock would otherwise stop every writer to
    that namespace until the server noticed its connection was gone (TCP keepalives: set
    the server's tcp_keepalives_* low, docs/ARCHITECTURE.md "Deployment"). Past the
    deadline the write is refused with 503 and Retry-After, nothing written."""

    def __init__(self, db: Database, wait_s: float = LOCK_WAIT_S) -> None:
        self.db = db
        self.wait_s = wait_s

    @contextmanager
    def hold(self, namespace: str) -> Iterator[None]:
        key = int64_key(namespace)
        with self.db.lock_pool.connection() as conn:
            conn.execute(f"SET lock_timeout = {int(self.wait_s * 1000)}")
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            except psycopg.errors.LockNotAvailable as exc:
                raise Busy(f"namespace {namespace!r} is being written by another node and "
                           f"its lock was not free within {self.wait_s:g} s",
                           extra={"retry_after": 5,
                                  "hint": "try again; if it lasts, a node may hold the "
                                          "lock while frozen (`pg_locks` shows which)"}
                           ) from exc
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


P = ParamSpec("P")
R = TypeVar("R")


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, tuple | list):
        return any(_has_nul(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_has_nul(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False


def nul_misses(empty: Callable[[], Any]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A lookup whose text arguments (strings, in tuples, lists or dataclasses such as
    the search filters) hold a NUL finds nothing (`empty()`), as in SQLite: PostgreSQL's
    text cannot hold one, and psycopg would raise instead of asking. Names, versions and
    filters come from URLs; writes are left to raise. Sets (the namespaces a caller may
    read) are not looked at: a name with a NUL in one is left out of the query
    (`sql._visible`), since no namespace has one."""
    def decorate(lookup: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(lookup)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            if _has_nul(args[1:]) or _has_nul(tuple(kwargs.values())):
                return empty()  # type: ignore[no-any-return]
            return lookup(*args, **kwargs)
        return guarded
    return decorate


class Table:
    """A store over the shared database: its connections, transactions and generation.

    API for the stores of this package (stable; `accounts.py` subclasses it):
    - `with self._read() as conn:` a pooled connection in autocommit mode, for reads;
    - `with self._tx() as conn:` a pooled connection inside a transaction, committed when
      the block ends, rolled back if it raises;
    - `self.db.lock(conn, LOCK_SKILL, namespace, name)`: a transaction-scoped advisory lock
      (PostgreSQL's READ COMMITTED does not serialise writers as SQLite's BEGIN IMMEDIATE
      does: take one before a read-modify-write of rows that may not exist yet, always
      before touching other rows, so two transactions cannot wait on each other);
    - `self.generation.bump()` after a commit that changes what per-process caches hold;
    - `self.db.notify(conn, "catalogue", "vectors")` inside a transaction that changes
      what the catalogue or vector marks read.
    - `@nul_misses(lambda: None)` on a lookup by text from a URL: a NUL finds nothing.
    Rows are plain tuples (psycopg's default row factory), in the SELECT's column order:
    build domain rows positionally (`SkillRow(*row)`). Parameters are `%s` placeholders
    (a literal `%` in a statement with parameters is written `%%`); booleans are stored as
    0/1 integers and timestamps and JSON as text, as in SQLite, so rows compare equal.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.generation = db.generation

    def _read(self) -> AbstractContextManager[Conn]:
        return self.db.connection()

    def _tx(self) -> AbstractContextManager[Conn]:
        return self.db.transaction()
