"""The PostgreSQL account stores against the SQLite ones: the same calls on each, the same
results, the same errors and the same rows left behind; and the one-use and last-owner
rules holding when two requests race on each backend.

PostgreSQL runs as a throwaway cluster started once per test session (binaries of
PostgreSQL 15); each test gets its own database, copied from a migrated template.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from skills_hub.domain import KeepOwner, NewAudit, ReleaseRow
from skills_hub.errors import Duplicate
from skills_hub.store.postgres import accounts as pg_accounts
from skills_hub.store.postgres.db import Database as PgDatabase
from skills_hub.store.sqlite import accounts as lite_accounts
from skills_hub.store.sqlite.db import Database as LiteDatabase

PG_BIN = Path("/usr/lib/postgresql/15/bin")
TEMPLATE = "accounts_template"
STORES = ("users", "orgs", "tokens", "sessions", "releases", "audit")
# Every table the account stores write, compared row for row after each test.
TABLES = ("users", "orgs", "org_members", "namespaces", "tokens", "sessions", "invitations",
          "auth_flows", "releases", "audit_log")
T0 = "2026-03-01T12:00:00+00:00"


# -- the PostgreSQL cluster ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*argv: str) -> None:
    """Run a server binary as `postgres` (initdb refuses root) unless we are not root."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throwaway cluster on a free loopback port; its URL without a database name.

    Its default collation ignores punctuation at first (ICU's en-US, "shifted"), as glibc's
    en_US.UTF-8 of most production clusters does, so text ordered other than by its bytes,
    as SQLite orders it, shows."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"no PostgreSQL binaries in {PG_BIN}: `make test` installs them "
                    "(apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="skills-hub-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                 "-E", "UTF8", "--locale=C.UTF-8", "--locale-provider=icu",
                 "--icu-locale=en-US-u-ka-shifted")
    _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                 "-t", "60", "-o", f"-c fsync=off -c synchronous_commit=off "
                 f"-c full_page_writes=off -c listen_addresses=127.0.0.1 -p {port} "
                 f"-k {root}", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _admin(server: str, sql: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> str:
    """A database with the schema, migrated once; each test's database is a copy."""
    _admin(pg_server, f"CREATE DATABASE {TEMPLATE}")
    db = PgDatabase(f"{pg_server}/{TEMPLATE}")
    db.migrate()
    db.close()
    # A copy needs the template to have no connections (a pool might keep one open).
    _admin(pg_server, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE datname = '{TEMPLATE}' AND pid != pg_backend_pid()")
    return TEMPLATE


# -- one test's two backends -----------------------------------------------------------------


@dataclass
class Backend:
    """One backend's account stores, plus what a test needs around them: reading tables
    through a connection of its own, and holding a lock from another connection."""

    name: str
    stores: dict[str, Any]
    rows: Callable[[str], list[dict[str, Any]]]
    holding: Callable[[str, Sequence[Any], int], AbstractContextManager[None]]

    def __getattr__(self, store: str) -> Any:
        if store in STORES:
            return self.stores[store]
        raise AttributeError(store)


def _stores(module: Any, db: Any) -> dict[str, Any]:
    return {name: getattr(module, name.title())(db) for name in STORES}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Both backends stamp rows with the same, settable time (so rows compare equal)."""
    now = [T0]

    def set_now(stamp: str) -> None:
        now[0] = stamp

    for module in (lite_accounts, pg_accounts):
        monkeypatch.setattr(module, "now_iso", lambda: now[0])
    return set_now


@pytest.fixture
def lite(tmp_path: Path, clock: Callable[[str], None]) -> Iterator[Backend]:
    path = tmp_path / "index.db"
    db = LiteDatabase(path)
    db.migrate()

    def rows(table: str) -> list[dict[str, Any]]:
        with sqlite3.connect(path) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]

    @contextmanager
    def holding(sql: str, params: Sequence[Any], waiters: int) -> Iterator[None]:
        # SQLite locks the whole file: hold its write lock; the racers wait on BEGIN.
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            time.sleep(0.3)
        finally:
            conn.execute("COMMIT")
            conn.close()

    yield Backend("sqlite", _stores(lite_accounts, db), rows, holding)
    db.close()


@pytest.fixture
def pg(pg_server: str, pg_template: str, clock: Callable[[str], None]) -> Iterator[Backend]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    _admin(pg_server, f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    url = f"{pg_server}/{name}"
    db = PgDatabase(url)

    def rows(table: str) -> list[dict[str, Any]]:
        with psycopg.connect(url, row_factory=dict_row) as conn:
            return conn.execute(f"SELECT * FROM {table}").fetchall()

    @contextmanager
    def holding(sql: str, params: Sequence[Any], waiters: int) -> Iterator[None]:
        with psycopg.connect(url) as conn:
            conn.execute(sql, params)
            yield
            _await_waiters(url, waiters)
            conn.commit()

    yield Backend("postgres", _stores(pg_accounts, db), rows, holding)
    db.close()
    _admin(pg_server, f"DROP DATABASE {name} WITH (FORCE)")


def _await_waiters(url: str, waiters: int) -> None:
    """Until `waiters` sessions of this database wait for a lock (the racers are then all
    inside their transactions, behind the one held)."""
    # From a connection in autocommit mode: a transaction reads pg_stat_activity once.
    with psycopg.connect(url, autocommit=True) as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'").fetchone()
            if row and row[0] >= waiters:
                return
            time.sleep(0.02)
    raise AssertionError(f"{waiters} sessions never waited for the lock held")


def _kind(exc: BaseException) -> Any:
    """What an error means, the same for both backends (constraint kind for the drivers')."""
    if isinstance(exc, Duplicate):  # a unique key, raised by both backends' transactions
        return "duplicate"
    if isinstance(exc, sqlite3.IntegrityError):
        return "integrity: " + str(exc).split(" constraint")[0].lower()
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return "integrity: unique"
    if isinstance(exc, psycopg.errors.ForeignKeyViolation):
        return "integrity: foreign key"
    if isinstance(exc, psycopg.errors.CheckViolation):
        return "integrity: check"
    if isinstance(exc, psycopg.errors.NotNullViolation):
        return "integrity: not null"
    return type(exc)


class Both:
    """Calls each store method on both backends and checks they agree: `both.users.user(x)`
    returns the result when equal; when both raise the same kind of error it re-raises
    SQLite's (so `pytest.raises(Duplicate)` reads as the service sees it)."""

    def __init__(self, lite: Backend, pg: Backend) -> None:
        self.lite, self.pg = lite, pg

    def __getattr__(self, store: str) -> Any:
        if store not in STORES:
            raise AttributeError(store)
        return _Mirror(self, store)

    def call(self, store: str, method: str, args: tuple[Any, ...],
             kwargs: dict[str, Any]) -> Any:
        outcomes: list[tuple[Any, BaseException | None]] = []
        for backend in (self.lite, self.pg):
            try:
                outcomes.append((getattr(backend.stores[store], method)(*args, **kwargs), None))
            except Exception as exc:  # compared below, then re-raised
                outcomes.append((None, exc))
        (got, error), (pg_got, pg_error) = outcomes
        label = f"{store}.{method}{args!r}"
        if error is not None or pg_error is not None:
            assert error is not None and pg_error is not None, \
                f"{label}: sqlite {error or got!r}, postgres {pg_error or pg_got!r}"
            assert _kind(error) == _kind(pg_error), f"{label}: {error!r} vs {pg_error!r}"
            raise error
        assert got == pg_got, f"{label}: sqlite {got!r} != postgres {pg_got!r}"
        return got

    def same_rows(self) -> None:
        """Every account table holds the same rows on both (booleans as 0/1)."""
        for table in TABLES:
            assert _canonical(self.lite.rows(table)) == _canonical(self.pg.rows(table)), table


class _Mirror:
    def __init__(self, both: Both, store: str) -> None:
        self._both, self._store = both, store

    def __getattr__(self, method: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self._both.call(self._store, method, args, kwargs)
        return call


def _canonical(rows: list[dict[str, Any]]) -> list[list[tuple[str, Any]]]:
    def value(v: Any) -> Any:
        return int(v) if isinstance(v, bool) else v
    return sorted((sorted((k, value(v)) for k, v in row.items()) for row in rows), key=repr)


@pytest.fixture
def both(lite: Backend, pg: Backend) -> Iterator[Both]:
    pair = Both(lite, pg)
    yield pair
    pair.same_rows()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend on its own (for races, where both cannot run in lockstep)."""
    return request.getfixturevalue("lite" if request.param == "sqlite" else "pg")


# -- users -----------------------------------------------------------------------------------


def test_users_oidc_lookup_and_the_shared_space_of_names(both: Both) -> None:
    alice = both.users.add_user("alice", display_name="Alice", email="a@example.com",
                                password_hash="h1")
    assert (alice.id, alice.is_operator, alice.kind, alice.created_at) == (1, False, "user", T0)
    both.users.add_user("root", operator=True)
    both.users.add_user("gabi", oidc=("https://id.example", "sub-1"), password_hash=None)
    both.users.add_user("bot", kind="service", personal_namespace=False)
    assert both.users.user("alice") == alice
    assert both.users.user_by_id(alice.id) == alice
    assert both.users.user("nobody") is None and both.users.user_by_id(99) is None
    assert both.users.user_by_oidc("https://id.example", "sub-1").username == "gabi"
    assert both.users.user_by_oidc("https://id.example", "sub-2") is None
    assert both.users.user_by_oidc("https://other.example", "sub-1") is None
    both.users.set_password(alice.id, "h2")
    both.users.set_operator(alice.id, True)
    assert both.users.user("alice").is_operator and both.users.user("alice").password_hash == "h2"
    both.users.set_operator(alice.id, False)
    assert [u.username for u in both.users.users()] == ["alice", "bot", "gabi", "root"]
    assert [u.username for u in both.users.users("service")] == ["bot"]
    assert [u.username for u in both.users.users(kind="user")] == ["alice", "gabi", "root"]
    assert both.users.name_taken("alice") and both.users.name_taken("bot")
    assert not both.users.name_taken("carol")


def test_a_taken_name_is_a_duplicate_and_writes_nothing(both: Both) -> None:
    both.orgs.add_org("acme", None)
    both.users.add_user("alice", oidc=("https://id.example", "sub-1"))
    assert both.users.name_taken("acme")
    with pytest.raises(Duplicate):
        both.users.add_user("alice")
    with pytest.raises(Duplicate):  # the personal namespace exists: no user
        both.users.add_user("acme")
    with pytest.raises(Duplicate):
        both.users.add_user("gabi", oidc=("https://id.example", "sub-1"))
    with pytest.raises(sqlite3.IntegrityError):  # a service account of no org
        both.users.add_user("ghost.ci", kind="service", org="ghost", personal_namespace=False)
    assert both.users.user("acme") is None and both.users.user("ghost.ci") is None
    assert [u.username for u in both.users.users()] == ["alice"]


def test_ordering_is_by_bytes_as_in_sqlite(both: Both) -> None:
    # Service accounts' dots and hyphens order differently under a language's collation.
    for name in ("acme-x", "acmeb", "acme.ci", "acme0", "b", "a-b"):
        both.users.add_user(name, personal_namespace=False)
    both.orgs.add_org("acme", None, namespace=False)
    for name in ("acme.ci", "acmeb", "acme-x", "acme0"):
        both.orgs.set_member("acme", both.users.user(name).id, "reader", keep_an_owner=False)
    assert [u.username for u in both.users.users()] == sorted(
        ["acme-x", "acmeb", "acme.ci", "acme0", "b", "a-b"])
    assert [m.username for m in both.orgs.members("acme")] == sorted(
        ["acme-x", "acmeb", "acme.ci", "acme0"])


# -- orgs, members and roles -----------------------------------------------------------------


def _people(both: Both, *names: str) -> list[int]:
    return [both.users.add_user(n).id for n in names]


def test_orgs_members_and_roles(both: Both) -> None:
    alice, bob, cara = _people(both, "alice", "bob", "cara")
    both.orgs.add_org("acme", alice, "Acme Inc.")
    both.orgs.add_org("tools", bob)
    both.orgs.add_org("solo", None, namespace=False)
    assert both.orgs.org_exists("acme") and not both.orgs.org_exists("nope")
    assert both.users.name_taken("tools")
    assert both.orgs.set_member("acme", bob, "publisher") is True
    assert both.orgs.set_member("acme", cara, "reader") is True
    assert both.orgs.set_member("acme", cara, "maintainer") is True  # a change of role
    assert both.orgs.member_role("acme", cara) == "maintainer"
    assert both.orgs.member_role("acme", 99) is None
    assert both.orgs.member_role("nope", alice) is None
    assert [(m.username, m.role) for m in both.orgs.members("acme")] == [
        ("alice", "owner"), ("bob", "publisher"), ("cara", "maintainer")]
    assert both.orgs.members("nope") == []
    assert both.orgs.orgs_of(bob) == [("acme", "publisher"), ("tools", "owner")]
    assert both.orgs.orgs_of(99) == []
    assert both.orgs.roles_of(bob) == {"acme": "publisher", "tools": "owner", "bob": "owner"}
    assert both.orgs.roles_of(cara) == {"acme": "maintainer", "cara": "owner"}


def test_an_org_takes_over_an_existing_namespace_of_its_name(both: Both) -> None:
    (alice,) = _people(both, "alice")
    both.orgs.add_org("alice-team", alice)
    both.orgs.add_org("alice", None)  # the service refuses a taken name; the store takes over
    assert both.orgs.roles_of(alice) == {"alice-team": "owner"}
    both.orgs.add_org("legacy", None, namespace=False)
    assert both.users.name_taken("legacy") and not both.users.name_taken("legacy2")


def test_an_org_keeps_an_owner(both: Both) -> None:
    alice, bob = _people(both, "alice", "bob")
    both.orgs.add_org("acme", alice)
    both.orgs.set_member("acme", bob, "maintainer")
    with pytest.raises(KeepOwner):  # rolled back: alice is still the owner
        both.orgs.set_member("acme", alice, "maintainer")
    assert both.orgs.member_role("acme", alice) == "owner"
    with pytest.raises(KeepOwner):
        both.orgs.remove_member("acme", alice)
    assert both.orgs.member_role("acme", alice) == "owner"
    assert both.orgs.remove_member("acme", 99) is False
    both.orgs.set_member("acme", bob, "owner")
    assert both.orgs.set_member("acme", alice, "reader") is True
    assert both.orgs.remove_member("acme", alice) is True
    assert both.orgs.remove_member("acme", alice) is False
    assert [(m.username, m.role) for m in both.orgs.members("acme")] == [("bob", "owner")]
    # keep_an_owner=False: a service account joins an org that has none yet.
    both.orgs.add_org("ownerless", None)
    both.orgs.set_member("ownerless", alice, "reader", keep_an_owner=False)
    with pytest.raises(KeepOwner):
        both.orgs.set_member("ownerless", bob, "reader")
    assert both.orgs.member_role("ownerless", bob) is None


def test_a_disabled_owner_does_not_count(both: Both) -> None:
    (alice,) = _people(both, "alice")
    both.orgs.add_org("acme", alice)
    both.orgs.add_org("ci-org", None)
    ci = both.users.add_user("acme.ci", kind="service", org="ci-org", personal_namespace=False)
    both.orgs.set_member("acme", ci.id, "owner")
    both.orgs.delete_org("ci-org")  # disables its service account acme.ci
    assert both.users.user("acme.ci").disabled_at == T0
    with pytest.raises(KeepOwner):
        both.orgs.set_member("acme", alice, "reader")


def test_deleting_an_org_leaves_its_namespace_private_and_unowned(both: Both,
                                                                  clock: Any) -> None:
    alice, bob = _people(both, "alice", "bob")
    both.orgs.add_org("acme", alice)
    both.orgs.set_member("acme", bob, "publisher")
    ci = both.users.add_user("acme.ci", kind="service", org="acme", personal_namespace=False)
    token = both.tokens.add_token(ci.id, "sha-ci", "shub_", "ci", ["read"], None, None)
    kept = both.tokens.add_token(alice, "sha-alice", "shub_", "", ["read"], None, None)
    both.sessions.add_invitation("inv-1", "acme", "reader", "", alice, "2026-04-01T00:00:00+00:00")
    clock("2026-03-02T00:00:00+00:00")
    both.orgs.delete_org("acme")
    assert not both.orgs.org_exists("acme") and both.orgs.members("acme") == []
    assert both.orgs.orgs_of(bob) == [] and both.orgs.roles_of(alice) == {"alice": "owner"}
    assert both.tokens.token_by_id(token).revoked_at == "2026-03-02T00:00:00+00:00"
    assert both.tokens.token_by_id(kept).revoked_at is None
    assert both.users.user("acme.ci").disabled_at == "2026-03-02T00:00:00+00:00"
    assert both.sessions.invitation("inv-1") is None
    assert both.users.name_taken("acme")  # the namespace stays
    both.orgs.delete_org("nope")


def test_a_member_of_no_org_or_an_unknown_account_is_refused(both: Both) -> None:
    (alice,) = _people(both, "alice")
    with pytest.raises(sqlite3.IntegrityError):
        both.orgs.set_member("nope", alice, "reader", keep_an_owner=False)
    both.orgs.add_org("acme", alice)
    with pytest.raises(sqlite3.IntegrityError):
        both.orgs.set_member("acme", 99, "reader")
    with pytest.raises(sqlite3.IntegrityError):
        both.orgs.set_member("acme", alice, "emperor")
    with pytest.raises(Duplicate):
        both.orgs.add_org("acme", None)
    assert [(m.username, m.role) for m in both.orgs.members("acme")] == [("alice", "owner")]


# -- tokens ----------------------------------------------------------------------------------


def test_tokens(both: Both) -> None:
    alice, bob = _people(both, "alice", "bob")
    first = both.tokens.add_token(alice, "sha-1", "shub_", "laptop", ["read", "publish"],
                                  None, "2026-06-01T00:00:00+00:00")
    second = both.tokens.add_token(bob, "sha-2", "shub_", "", {"admin", "read"},
                                   ["zeta", "bob"], None)
    third = both.tokens.add_token(alice, "sha-3", "shub_", "ci", ("read",), [], None)
    assert (first, second, third) == (1, 2, 3)
    row = both.tokens.token("sha-1")
    assert (row.username, row.scopes, row.namespaces) == ("alice", {"read", "publish"}, None)
    assert both.tokens.token("sha-2").namespaces == {"zeta", "bob"}
    assert both.tokens.token("sha-3").namespaces == frozenset()
    assert both.tokens.token("sha-9") is None and both.tokens.token_by_id(9) is None
    assert both.tokens.token_by_id(second) == both.tokens.token("sha-2")
    assert [t.id for t in both.tokens.tokens([alice])] == [first, third]
    assert [t.id for t in both.tokens.tokens((bob, alice, alice))] == [1, 2, 3]
    assert both.tokens.tokens([]) == [] and both.tokens.tokens([99]) == []
    both.tokens.touch_token(first, "2026-03-01T13:00:00+00:00")
    assert both.tokens.token_by_id(first).last_used_at == "2026-03-01T13:00:00+00:00"
    both.tokens.touch_token(99, "2026-03-01T13:00:00+00:00")
    assert both.tokens.revoke_token(first) is True
    assert both.tokens.revoke_token(first) is False
    assert both.tokens.revoke_token(99) is False
    assert both.tokens.token("sha-1").revoked_at == T0
    with pytest.raises(Duplicate):
        both.tokens.add_token(bob, "sha-1", "shub_", "", ["read"], None, None)
    with pytest.raises(sqlite3.IntegrityError):
        both.tokens.add_token(99, "sha-new", "shub_", "", ["read"], None, None)


# -- sessions, sign-in flows, invitations ------------------------------------------------------


def test_sessions(both: Both) -> None:
    (alice,) = _people(both, "alice")
    both.sessions.add_session("sid-1", alice, "csrf-1", "2026-03-15T00:00:00+00:00",
                              "10.0.0.1", "x" * 500)
    assert both.sessions.session("sid-1") == (alice, "csrf-1", "2026-03-15T00:00:00+00:00")
    assert both.sessions.session("sid-2") is None
    both.sessions.delete_session("sid-1")
    both.sessions.delete_session("sid-1")
    assert both.sessions.session("sid-1") is None
    both.sessions.add_session("sid-3", alice, "csrf-3", "2026-03-15T00:00:00+00:00", "", "ua")
    with pytest.raises(Duplicate):
        both.sessions.add_session("sid-3", alice, "c", "2026-03-15T00:00:00+00:00", "", "")


def test_flows_are_taken_once_and_expire(both: Both, clock: Any) -> None:
    data = {"nonce": "n-1", "verifier": "v", "next": "/settings", "nested": {"a": [1, None]}}
    both.sessions.add_flow("st-1", "oidc", data, "2026-03-01T12:10:00+00:00")
    both.sessions.add_flow("st-2", "oidc", {}, "2026-03-01T12:10:00+00:00")
    both.sessions.add_flow("st-3", "oidc", {"x": 1}, "2026-03-01T12:05:00+00:00")
    assert both.sessions.take_flow("st-1", "oidc") == data
    assert both.sessions.take_flow("st-1", "oidc") is None
    assert both.sessions.take_flow("st-2", "link") is None  # the wrong kind spends it too
    assert both.sessions.take_flow("st-2", "oidc") is None
    clock("2026-03-01T12:06:00+00:00")
    assert both.sessions.take_flow("st-3", "oidc") is None  # expired, and gone
    both.sessions.add_flow("st-4", "oidc", {"y": 2}, "2026-03-01T12:07:00+00:00")
    clock("2026-03-01T12:08:00+00:00")
    both.sessions.add_flow("st-5", "oidc", {"z": 3}, "2026-03-01T12:20:00+00:00")  # sweeps st-4
    for backend in (both.lite, both.pg):
        assert [r["state"] for r in backend.rows("auth_flows")] == ["st-5"]
    assert both.sessions.take_flow("st-5", "oidc") == {"z": 3}
    both.sessions.add_flow("st-6", "oidc", {}, "2026-03-01T12:20:00+00:00")
    with pytest.raises(Duplicate):
        both.sessions.add_flow("st-6", "oidc", {}, "2026-03-01T12:20:00+00:00")


def test_invitations_are_accepted_once(both: Both) -> None:
    alice, bob, cara = _people(both, "alice", "bob", "cara")
    both.orgs.add_org("acme", alice)
    both.sessions.add_invitation("inv-1", "acme", "publisher", "b@example.com", alice,
                                 "2026-03-08T00:00:00+00:00")
    both.sessions.add_invitation("inv-2", "acme", "reader", "", None,
                                 "2026-03-08T00:00:00+00:00")
    both.sessions.add_invitation("inv-3", "acme", "maintainer", "", alice,
                                 "2026-03-08T00:00:00+00:00")
    row = both.sessions.invitation("inv-1")
    assert (row.org, row.role, row.email, row.created_by, row.accepted_at) == (
        "acme", "publisher", "b@example.com", alice, None)
    assert both.sessions.invitation("inv-9") is None
    assert both.sessions.accept_invitation("inv-1", bob) is True
    assert both.sessions.accept_invitation("inv-1", cara) is False
    assert both.sessions.accept_invitation("inv-9", cara) is False
    assert both.sessions.invitation("inv-1").accepted_at == T0
    assert both.orgs.member_role("acme", bob) == "publisher"
    assert both.orgs.member_role("acme", cara) is None
    assert both.sessions.accept_invitation("inv-2", alice) is True  # an owner stays owner
    assert both.orgs.member_role("acme", alice) == "owner"
    assert both.sessions.accept_invitation("inv-3", bob) is True  # a member changes role
    assert both.orgs.member_role("acme", bob) == "maintainer"
    with pytest.raises(sqlite3.IntegrityError):
        both.sessions.add_invitation("inv-4", "nope", "reader", "", None,
                                     "2026-03-08T00:00:00+00:00")


# -- releases --------------------------------------------------------------------------------


def _release(release_id: str, namespace: str, name: str, version: str,
             created_at: str = T0, author_id: int | None = 1) -> ReleaseRow:
    return ReleaseRow(release_id, namespace, name, version, "pending", author_id, "alice",
                      "c" * 40, "t" * 40, "s" * 64, "pass",
                      {"verdict": "pass", "findings": [{"rule": "x", "line": 3}]},
                      created_at, None, None, None)


def test_releases(both: Both) -> None:
    _people(both, "alice")
    first = _release("r1", "acme", "hello", "1.0.0")
    both.releases.add_release(first)
    both.releases.add_release(_release("r2", "acme", "other", "1.0.0", author_id=None))
    both.releases.add_release(_release("r0", "acme", "hello", "1.1.0"))
    both.releases.add_release(_release("r3", "tools", "hello", "1.0.0",
                                       "2026-02-01T00:00:00+00:00"))
    assert both.releases.release("r1") == first
    assert both.releases.release("r9") is None
    assert both.releases.pending_release("acme", "hello", "1.0.0") == first
    assert both.releases.pending_release("acme", "hello", "2.0.0") is None
    assert [r.id for r in both.releases.releases(["acme"])] == ["r0", "r1", "r2"]
    assert [r.id for r in both.releases.releases({"acme", "tools"})] == ["r3", "r0", "r1",
                                                                         "r2"]
    assert [r.id for r in both.releases.releases(["acme"], name="hello")] == ["r0", "r1"]
    assert both.releases.releases([]) == [] and both.releases.releases(["nope"]) == []
    assert both.releases.decide_release("r1", "approved", "bob", "fine") is True
    assert both.releases.decide_release("r1", "rejected", "cara", "no") is False
    assert both.releases.decide_release("r9", "rejected", "cara", "no") is False
    decided = both.releases.release("r1")
    assert (decided.state, decided.decided_at, decided.decided_by, decided.comment) == (
        "approved", T0, "bob", "fine")
    assert both.releases.pending_release("acme", "hello", "1.0.0") is None
    assert [r.id for r in both.releases.releases(["acme"], state=None)] == ["r0", "r1", "r2"]
    assert [r.id for r in both.releases.releases(["acme"], state="approved")] == ["r1"]
    both.releases.add_release(_release("r4", "acme", "hello", "1.0.0"))  # pending again
    with pytest.raises(Duplicate):  # one pending release per version
        both.releases.add_release(_release("r5", "acme", "hello", "1.0.0"))
    with pytest.raises(Duplicate):
        both.releases.add_release(_release("r4", "acme", "hello", "3.0.0"))


# -- the audit log ---------------------------------------------------------------------------


def _event(actor: str, action: str, org: str | None, n: int) -> NewAudit:
    return NewAudit(actor, None if actor == "operator" else n, action, f"target-{n}", org,
                    org, f"10.0.0.{n}", "ua" * 200, f"req-{n}", {"n": n, "b": [True, None]})


def test_audit_events_filters_and_pages(both: Both, clock: Any) -> None:
    for n in range(1, 13):
        clock(f"2026-03-01T12:{n:02d}:00+00:00")
        both.audit.audit(_event(("alice", "bob", "operator")[n % 3],
                                ("member.add", "token.create")[n % 2],
                                ("acme", "tools", None, "acme")[n % 4], n))
    every = both.audit.audit_events(orgs=None)
    assert [e.id for e in every] == list(range(12, 0, -1))
    assert every[-1].detail == {"b": [True, None], "n": 1} and len(every[-1].user_agent) == 300
    assert both.audit.audit_events(orgs=[]) == []
    assert {e.org for e in both.audit.audit_events(orgs=["acme"])} == {"acme"}
    assert {e.org for e in both.audit.audit_events(orgs={"acme", "tools", "nope"})} == {
        "acme", "tools"}
    assert [e.id for e in both.audit.audit_events(orgs=None, actor="bob")] == [10, 7, 4, 1]
    assert [e.id for e in both.audit.audit_events(orgs=["acme"], action="token.create")] == [
        11, 7, 3]
    assert [e.id for e in both.audit.audit_events(orgs=None, actor="alice",
                                                  action="member.add")] == [12, 6]
    since = both.audit.audit_events(orgs=None, since="2026-03-01T12:10:00+00:00")
    assert [e.id for e in since] == [12, 11, 10]
    assert both.audit.audit_events(orgs=None, since="2026-03-01") == every
    page = both.audit.audit_events(orgs=None, limit=5)
    assert [e.id for e in page] == [12, 11, 10, 9, 8]
    page = both.audit.audit_events(orgs=None, before_id=page[-1].id, limit=5)
    assert [e.id for e in page] == [7, 6, 5, 4, 3]
    page = both.audit.audit_events(orgs=None, before_id=page[-1].id, limit=5)
    assert [e.id for e in page] == [2, 1]
    assert both.audit.audit_events(orgs=["tools"], before_id=1) == []


# -- races -----------------------------------------------------------------------------------


def _race(backend: Backend, lock: tuple[str, Sequence[Any]],
          *calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` in threads at once, all held behind one lock until each is waiting for
    it; each result, or the exception it raised."""
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            results[i] = call()
        except Exception as exc:  # the caller asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    with backend.holding(*lock, len(calls)):
        for thread in threads:
            thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_accepts_of_one_invitation_race_and_one_wins(backend: Backend) -> None:
    alice, bob, cara = (backend.users.add_user(n).id for n in ("alice", "bob", "cara"))
    backend.orgs.add_org("acme", alice)
    for round_ in range(3):
        invitation = f"inv-{round_}"
        backend.sessions.add_invitation(invitation, "acme", "publisher", "", alice,
                                        "2026-03-08T00:00:00+00:00")
        accept = backend.sessions.accept_invitation
        results = _race(backend, ("SELECT 1 FROM invitations WHERE id_sha256 = %s FOR UPDATE",
                                  [invitation]),
                        partial(accept, invitation, bob), partial(accept, invitation, cara))
        assert sorted(results) == [False, True], results
        joined = bob if results[0] else cara
        rows = backend.rows("invitations")
        assert [r["accepted_by"] for r in rows if r["id_sha256"] == invitation] == [joined]
        backend.orgs.remove_member("acme", joined)
    assert [m.username for m in backend.orgs.members("acme")] == ["alice"]


def test_a_flow_taken_twice_at_once_is_given_once(backend: Backend) -> None:
    backend.sessions.add_flow("st-1", "oidc", {"nonce": "n"}, "2099-01-01T00:00:00+00:00")
    results = _race(backend, ("SELECT 1 FROM auth_flows WHERE state = %s FOR UPDATE",
                              ["st-1"]),
                    lambda: backend.sessions.take_flow("st-1", "oidc"),
                    lambda: backend.sessions.take_flow("st-1", "oidc"))
    assert sorted(results, key=repr) == [None, {"nonce": "n"}], results


# Both racers wait behind this whether or not they lock the org first (their own member
# rows are held too), then run at once: without a lock of the org each would see the
# other still an owner most of the time, so a few rounds make a miss unlikely.
_ORG_AND_MEMBERS = ("SELECT 1 FROM orgs o JOIN org_members m ON m.org = o.name "
                    "WHERE o.name = %s FOR UPDATE", ["acme"])
ROUNDS = 4


def test_two_owners_demoting_each_other_at_once_leave_one_owner(backend: Backend) -> None:
    alice, bob = (backend.users.add_user(n).id for n in ("alice", "bob"))
    backend.orgs.add_org("acme", alice)
    for _ in range(ROUNDS):
        backend.orgs.set_member("acme", alice, "owner")
        backend.orgs.set_member("acme", bob, "owner")
        results = _race(backend, _ORG_AND_MEMBERS,
                        partial(backend.orgs.set_member, "acme", alice, "reader"),
                        partial(backend.orgs.set_member, "acme", bob, "reader"))
        assert sorted(map(repr, results)) == ["KeepOwner()", "True"], results
        assert sorted(m.role for m in backend.orgs.members("acme")) == ["owner", "reader"]


def test_an_owner_leaving_while_the_other_is_demoted_leaves_one_owner(
        backend: Backend) -> None:
    alice, bob = (backend.users.add_user(n).id for n in ("alice", "bob"))
    backend.orgs.add_org("acme", alice)
    for _ in range(ROUNDS):
        backend.orgs.set_member("acme", alice, "owner")
        backend.orgs.set_member("acme", bob, "owner")
        results = _race(backend, _ORG_AND_MEMBERS,
                        partial(backend.orgs.remove_member, "acme", alice),
                        partial(backend.orgs.set_member, "acme", bob, "reader"))
        assert sorted(map(repr, results)) == ["KeepOwner()", "True"], results
        assert [m.role for m in backend.orgs.members("acme")].count("owner") == 1
