"""`skills-hub migrate-db`: an embedded home (several namespaces, a private one; versions,
checks reports, outcome reports, proposals, users, orgs, tokens, sessions, the audit log)
copied into PostgreSQL; the same home opened with SKILLS_HUB_DATABASE_URL sees all of it,
old tokens authenticate, keyword search finds the same skills, a new version publishes
(the id sequences were moved on) and `reindex` works there. A second run changes nothing;
a target holding other data, a changed row, a failure half-way, a killed run and a running
server are each refused or rolled back, leaving the target as it was.

These need PostgreSQL whatever SKILLS_HUB_TEST_BACKENDS says: they ask for the session's
`pg_databases` (tests/conftest.py) directly, not through the `storage_backend` matrix.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result
from psycopg import sql

from skills_hub.access.principal import OPERATOR
from skills_hub.cli import ExitCode, main
from skills_hub.config import Settings
from skills_hub.search.embedder import Embedder
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.store import migrate_db
from skills_hub.store.gitstore import GitStore
from skills_hub.store.migrate_db import (
    COPIED,
    TABLES,
    How,
    MigrateFailed,
    MigrateRefused,
    encode_row,
    migrate,
    postgres_schema,
    schema_problems,
    sqlite_schema,
)
from skills_hub.store.sqlite import open_sqlite

from .conftest import send_outcomes, skill_md, token_principal, version_rows
from .pgcluster import Databases, with_database
from .test_demands import plant_demands

PASSWORD = "correct horse battery staple"
PUBLISHED = {("team", "weekly-report"): ("1.0.0", "1.1.0", "2.0.0"),
             ("team", "triage"): ("0.1.0",),
             ("vault", "secret-recipe"): ("1.0.0", "1.0.1"),
             ("acme", "deploy-helper"): ("1.0.0",)}


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def new_pg(pg_databases: Databases) -> Iterator[Callable[[], str]]:
    """Makes empty databases (no tables: migrate-db migrates them), dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"migrate_{uuid.uuid4().hex[:12]}"
        _admin(pg_databases.admin_url, sql.SQL("CREATE DATABASE {} TEMPLATE template0")
               .format(sql.Identifier(name)))
        made.append(name)
        return with_database(pg_databases.admin_url, name)

    yield make
    for name in made:
        _admin(pg_databases.admin_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
               .format(sql.Identifier(name)))


@pytest.fixture
def target(new_pg: Callable[[], str]) -> str:
    return new_pg()


def _admin(url: str, statement: sql.Composed) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "embedded", seed=False, semantic="off")


@pytest.fixture
def populated(home: Settings) -> dict[str, Any]:
    """The embedded home filled through the service, then closed (as a stopped server
    leaves it). Returns its tokens, session and state."""
    registry = Registry(home, embedder=Embedder(enabled=False))
    registry.start()
    try:
        facts = populate(registry)
        facts["state"] = state(registry)
        facts["found"] = searches(registry, facts["tokens"]["alice"])
    finally:
        registry.close()
    return facts


def populate(registry: Registry) -> dict[str, Any]:
    tokens = {"team": registry.create_token("team"),
              "vault": registry.create_token("vault", private=True)}
    registry.add_user("alice", password=PASSWORD, display_name="Alice", email="a@example.org")
    origin = registry.account_principal(None)
    _, tokens["alice"] = registry.login("alice", PASSWORD, origin, label="laptop")
    alice = registry.authenticate(tokens["alice"])
    registry.create_org(alice, "acme", "Acme Inc.")
    alice = registry.authenticate(tokens["alice"])  # now an owner of acme
    registry.add_service_account(alice, "acme", "ci", "publisher")
    invitation = registry.invite(alice, "acme", "reader", "bob@example.org")
    user = registry.store.users.user("alice")
    assert user is not None
    session, _ = registry.start_session(user, origin)
    for (namespace, name), versions in PUBLISHED.items():
        for version in versions:
            who = alice if namespace == "acme" else token_principal(registry, namespace)
            publish(registry, namespace, name, version, who)
    send_outcomes(registry, "team", "weekly-report", ["success"] * 5 + ["failure"] * 2,
                  version="2.0.0", clients=3)
    send_outcomes(registry, "team", "triage", ["success", "failure"], clients=2)
    registry.propose("team", "weekly-report", {
        "base_version": "2.0.0", "reasoning": "owners were missing",
        "evidence": {"failures": 2},
        "edits": [{"old_string": "Body of weekly-report 2.0.0.",
                   "new_string": "Body of weekly-report 2.0.0, with an owner per item."}]},
        token_principal(registry, "team"))
    registry.set_exception("team", "triage", "remote-exec.pipe-to-shell", "our own installer",
                           token_principal(registry, "team"))
    registry.set_trust("vault", "secret-recipe", "blocked", "under review", OPERATOR)
    registry.store.vectors.save_vectors([("a" * 64, "test-model", b"\x00\x00\x80?" * 4),
                                         ("b" * 64, "test-model", b"\x00\x00\x00@" * 4)])
    registry.store.catalogue.add_downloads({("team", "triage"): 3})
    plant_demands(registry, "vault", ("team", "triage", "0.1.0"))
    return {"tokens": tokens, "session": session, "invitation": invitation}


def publish(registry: Registry, namespace: str, name: str, version: str,
            principal: Any) -> Any:
    md = skill_md(name, description=f"Does {name} things for the team, carefully.",
                  body=f"Body of {name} {version}.")
    return registry.publish(namespace, Bundle({"SKILL.md": md}), principal=principal,
                            version=version)


def state(registry: Registry) -> dict[str, Any]:
    """What a registry shows of its catalogue, through the storage interfaces."""
    store = registry.store
    versions = version_rows(registry)
    skills = sorted({(ns, name) for ns, name, _ in versions})
    users = store.users.users()
    return {
        "namespaces": [(n.name, n.visibility, n.owner_org) for n in
                       store.namespaces.namespaces()],
        "skills": [store.catalogue.get_skill(*key) for key in skills],
        "versions": versions,
        "reports": {key: store.reports.get_report(*key) for key in versions},
        "history": {key: store.reports.report_history(*key) for key in skills},
        "exceptions": {key: store.reports.exceptions(*key) for key in skills},
        "outcomes": {key: store.outcomes.version_stats(*key) for key in skills},
        "clients": {key: store.outcomes.success_clients(*key) for key in skills},
        "trust": {key: store.outcomes.trust_events(*key) for key in skills},
        "proposals": {ns: store.proposals.proposals(ns) for ns, _ in skills},
        "users": users,
        "members": store.orgs.members("acme"),
        "tokens": store.tokens.tokens([u.id for u in users]),
        "audit": store.audit.audit_events(orgs=None, limit=1000),
        "vectors": [store.vectors.get_vector(d) for d in ("a" * 64, "b" * 64)],
        "demands": [(d, store.demands.phrasings(d.id, 10)) for d in store.demands.demands(
            readable=frozenset({"vault"}), status=None, scope=None, asker=None, offset=0,
            limit=100)],
    }


QUERIES = ("weekly report", "triage", "carefully", "deploy", "secret recipe", "team things",
           "week")


def searches(registry: Registry, token: str) -> dict[str, set[tuple[str, str]]]:
    """What keyword search finds for each of QUERIES, as `token`'s holder."""
    principal = registry.authenticate(token)
    return {query: {(r.skill.namespace, r.skill.name) for r in registry.search(
        query, principal=principal, mode="keyword").results.results} for query in QUERIES}


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["migrate-db", *args])


def registry_on(home: Settings, url: str, **changes: Any) -> Registry:
    settings = Settings(home=home.home, seed=False, semantic="off", database_url=url,
                        **changes)
    registry = Registry(settings, embedder=Embedder(enabled=False))
    registry.start()
    return registry


def target_rows(url: str) -> dict[str, int]:
    """Rows of every table of the target's schema."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {table: _count(conn, table) for table in postgres_schema(conn)}


def _count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                       ).fetchone()
    assert row is not None
    return int(row[0])


def catalogue_rows(url: str) -> dict[str, int]:
    """Rows of the copied tables (not PostgreSQL's bookkeeping)."""
    return {k: v for k, v in target_rows(url).items()
            if k in {m.postgres for m in COPIED if m.how is not How.SINGLETON}}


# -- the mapping -------------------------------------------------------------------------


def test_the_mapping_names_every_table_and_column_of_both_schemas(
        tmp_path: Path, pg_databases: Databases) -> None:
    storage = open_sqlite(tmp_path / "index.db")
    storage.db.migrate()
    storage.close()
    _, url = pg_databases.create()
    with sqlite3.connect(tmp_path / "index.db") as lite, \
            psycopg.connect(url, autocommit=True) as pg:
        lite_tables, pg_tables = sqlite_schema(lite), postgres_schema(pg)
        assert schema_problems(lite_tables, pg_tables) == []
        # Every copied table's key is unique on both sides (the digests' order): its
        # primary key (or SQLite's rowid, behind PostgreSQL's unique `id`).
        for m in COPIED:
            lite_pk = [str(r[1]) for r in sorted(
                (r for r in lite.execute(f"PRAGMA table_info({m.sqlite})") if r[5]),
                key=lambda r: r[5])]
            assert [m.source_column(c) for c in m.key] in (lite_pk, ["rowid"]), m
            assert list(m.key) in _pg_unique_keys(pg, str(m.postgres)), m
        pg.execute("CREATE TABLE shadow_copies (id int)")
        pg.execute("ALTER TABLE users ADD COLUMN nickname text")
        lite.execute("CREATE TABLE stray (x)")
        lite.execute("ALTER TABLE tokens ADD COLUMN colour TEXT")
        problems = schema_problems(sqlite_schema(lite), postgres_schema(pg))
    assert problems == ["SQLite table stray is not in migrate_db.TABLES",
                        "PostgreSQL table shadow_copies is not in migrate_db.TABLES",
                        "PostgreSQL column users.nickname is not in migrate_db.TABLES",
                        "SQLite column tokens.colour is not in migrate_db.TABLES"]
    pg_databases.drop(url.rsplit("/", 1)[1])


def _pg_unique_keys(conn: psycopg.Connection[Any], table: str) -> list[list[str]]:
    """The columns of each unique index of `table` (the primary key's first)."""
    return [list(r[0]) for r in conn.execute(
        "SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum)) "
        "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisunique "
        "AND i.indpred IS NULL GROUP BY i.indexrelid, i.indisprimary "
        "ORDER BY i.indisprimary DESC", (table,))]


def test_the_mapping_says_what_happens_to_the_tables_of_one_backend_only() -> None:
    only = {m.sqlite or m.postgres: m.how for m in TABLES if not m.copied}
    assert {"skills_fts_data", "sqlite_sequence", "migrations", "skills_fts_terms"} <= set(only)
    assert only["generation"] is How.POSTGRES_ONLY
    assert only["schema_migrations"] is How.POSTGRES_ONLY
    assert all(m.why for m in TABLES if not m.copied or m.sqlite != m.postgres)
    text = next(m for m in TABLES if m.sqlite == "skills_fts")
    assert (text.postgres, text.how, text.source_column("skill_id")) == (
        "skill_text", How.TEXT, "rowid")


def test_the_row_encoding_keeps_types_apart() -> None:
    values: list[Any] = [None, 0, 0.0, "0", b"0", "", b"", 1, True, -0.0, 1e-300]
    encoded = [encode_row([v]) for v in values]
    assert encode_row([1]) == encode_row([True])  # 0/1 integers and booleans: one value
    assert len(set(encoded)) == len(values) - 1
    assert encode_row(["a", "bc"]) != encode_row(["ab", "c"])
    assert encode_row([0.1 + 0.2]) != encode_row([0.3])


# -- migrating a home --------------------------------------------------------------------


def test_a_home_migrated_to_postgresql_shows_everything_it_had(
        home: Settings, populated: dict[str, Any], target: str) -> None:
    before = populated["state"]
    assert len(before["versions"]) == 7 and before["proposals"]["team"]
    assert ("vault", "private", "vault") in before["namespaces"]
    assert before["outcomes"][("team", "weekly-report")]["2.0.0"].successes == 5

    done = run("--to", target, "--home", str(home.home), "--json")

    assert done.exit_code == 0, done.output
    body = json.loads(done.output)
    assert body["status"] == "copied" and body["versions"] == 7
    tables = {t["postgresql"]: t for t in body["tables"]}
    assert set(tables) == {m.postgres for m in COPIED}
    assert (tables["versions"]["rows"], tables["skill_text"]["rows"],
            tables["outcome_reports"]["rows"], tables["embeddings"]["rows"]) == (7, 4, 9, 2)
    assert body["rows"] == sum(t["rows"] for t in body["tables"])
    assert body["sequences"]["audit_log"] > tables["audit_log"]["rows"]

    registry = registry_on(home, target)
    try:
        assert state(registry) == before
        for name, token in populated["tokens"].items():  # tokens from before authenticate
            assert registry.authenticate(token).signed_in, name
        assert registry.authenticate(populated["tokens"]["alice"]).username == "alice"
        assert registry.authenticate_session(populated["session"]) is not None
        assert registry.invitation(populated["invitation"]).org == "acme"
        found = searches(registry, populated["tokens"]["alice"])
        assert found == populated["found"]
        assert found["carefully"] == {("team", "weekly-report"), ("team", "triage"),
                                      ("acme", "deploy-helper")}
        vault = registry.authenticate(populated["tokens"]["vault"])
        # The sequences were moved on: new rows get new ids.
        outcome = publish(registry, "team", "triage", "0.2.0",
                          token_principal(registry, "team"))
        assert outcome.version == "0.2.0"
        registry.add_user("carol", password=PASSWORD)
        assert registry.store.catalogue.get_skill("team", "newcomer") is None
        publish(registry, "team", "newcomer", "1.0.0", token_principal(registry, "team"))
        assert registry.search("newcomer", principal=vault, mode="keyword"
                               ).results.results[0].skill.name == "newcomer"
        assert registry.fsck().clean
    finally:
        registry.close()


def test_the_copy_matches_the_embedded_catalogue_row_for_row(
        home: Settings, populated: dict[str, Any], target: str) -> None:
    result = migrate(home, target)

    assert result.copied and result.verification.equal
    by_table = {c.table.postgres: c for c in result.verification.tables}
    assert all(c.source_sha256 == c.target_sha256 for c in by_table.values())
    with sqlite3.connect(home.index_path) as lite:
        for m in COPIED:
            if m.how is How.TEXT:
                continue
            want = lite.execute(f"SELECT count(*) FROM {m.sqlite}").fetchone()[0]
            assert by_table[m.postgres].target_rows == want, m.sqlite
        fts = lite.execute("SELECT count(*) FROM skills_fts").fetchone()[0]
    assert by_table["skill_text"].target_rows == fts == 4
    with psycopg.connect(target, autocommit=True) as pg:
        # The tsvector is PostgreSQL's own, made from the copied text.
        row = pg.execute("SELECT count(*) FROM skill_text WHERE document @@ "
                         "to_tsquery('skills_hub', 'carefully')").fetchone()
        assert row == (4,)


def test_reindex_rebuilds_the_catalogue_on_postgresql(
        home: Settings, populated: dict[str, Any], target: str) -> None:
    assert migrate(home, target).copied

    done = CliRunner().invoke(main, ["reindex", "--home", str(home.home)],
                              env={"SKILLS_HUB_DATABASE_URL": target})

    assert done.exit_code == 0, done.output
    assert "reindexed: 7 versions from git" in done.output
    registry = registry_on(home, target)
    try:
        after = state(registry)
        before = populated["state"]
        # Skills get new ids (and their download counts start again, as on SQLite).
        assert [(s.namespace, s.name, s.latest_version) for s in after.pop("skills")] == [
            (s.namespace, s.name, s.latest_version) for s in before["skills"]]
        assert after == {k: v for k, v in before.items() if k != "skills"}
        assert searches(registry, populated["tokens"]["alice"]) == populated["found"]
    finally:
        registry.close()


def test_repos_are_copied_under_their_locks_for_a_shared_folder(
        home: Settings, populated: dict[str, Any], target: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "repos"
    before = {ns: GitStore(home.repos_dir).head(ns) for ns in GitStore(home.repos_dir)
              .namespaces()}

    done = run("--to", target, "--home", str(home.home), "--copy-repos", str(shared))

    assert done.exit_code == 0, done.output
    assert f"4 namespaces copied, 0 already there, into {shared}" in done.output
    assert {ns: GitStore(shared).head(ns) for ns in before} == before
    registry = registry_on(home, target, repos=shared)
    try:
        assert state(registry)["versions"] == populated["state"]["versions"]
        publish(registry, "vault", "secret-recipe", "1.1.0", token_principal(registry, "vault"))
        assert GitStore(shared).head("vault") != before["vault"]
        assert GitStore(home.repos_dir).head("vault") == before["vault"]
    finally:
        registry.close()


# -- twice, other data, tampering --------------------------------------------------------


def test_a_second_run_verifies_and_copies_nothing(
        home: Settings, populated: dict[str, Any], target: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    first = run("--to", target, "--home", str(home.home), "--copy-repos", str(shared))
    assert first.exit_code == 0, first.output
    rows = target_rows(target)

    again = run("--to", target, "--home", str(home.home), "--copy-repos", str(shared))

    assert again.exit_code == 0, again.output
    assert "already migrated, nothing copied" in again.output
    assert "0 namespaces copied, 4 already there" in again.output
    assert f"verified: row counts and sha256 of {len(COPIED)} tables" in again.output
    assert "commit, tag, tree and content sha256 of 7 versions" in again.output
    assert target_rows(target) == rows


def test_a_target_holding_other_data_is_refused_and_left_alone(
        home: Settings, populated: dict[str, Any], tmp_path: Path,
        new_pg: Callable[[], str]) -> None:
    other = Settings(home=tmp_path / "other", seed=False, semantic="off")
    registry = Registry(other, embedder=Embedder(enabled=False))
    registry.start()
    publish(registry, "elsewhere", "their-skill", "1.0.0", token_principal(registry, "elsewhere"))
    registry.close()
    url = new_pg()
    assert migrate(other, url).copied
    rows = target_rows(url)

    done = run("--to", url, "--home", str(home.home))

    assert done.exit_code == ExitCode.REFUSED, done.output
    assert "that differs from this home's catalogue: nothing copied" in done.output
    assert "version elsewhere/their-skill@1.0.0: only in PostgreSQL" in done.output
    assert target_rows(url) == rows


def test_a_row_changed_in_the_target_is_reported(
        home: Settings, populated: dict[str, Any], target: str) -> None:
    assert migrate(home, target).copied
    with psycopg.connect(target, autocommit=True) as pg:
        pg.execute("UPDATE outcome_reports SET score = 0.25 WHERE outcome = 'failure' "
                   "AND name = 'triage'")
        pg.execute("UPDATE versions SET commit_sha = repeat('0', 40) WHERE version = '0.1.0'")
        pg.execute("INSERT INTO rule_exceptions VALUES ('team', 'zz', 'r', 'why', 'now')")
        pg.execute("DELETE FROM sessions")
        reporter = pg.execute("SELECT reporter, report_id FROM outcome_reports "
                              "WHERE name = 'triage' AND outcome = 'failure'").fetchone()
    assert reporter is not None

    with pytest.raises(MigrateRefused) as refused:
        migrate(home, target)

    found = [p.message for p in refused.value.problems]
    outcome = next(p for p in found if p.startswith("outcome_reports:"))
    assert "9 rows in SQLite, 9 in PostgreSQL" in outcome
    assert (f"outcome_reports row reporter={reporter[0]!r}, report_id={reporter[1]!r}: "
            "score differs") in outcome
    assert any(p.startswith("versions:") and "commit_sha differs" in p for p in found)
    assert any(p.startswith("version team/triage@0.1.0: commit ") and "000000000000 in "
               "PostgreSQL" in p for p in found)
    assert any("rule_exceptions row namespace='team', name='zz', rule='r': only in "
               "PostgreSQL" in p for p in found)
    assert any(p.startswith("sessions: 1 rows in SQLite, 0 in PostgreSQL") and
               "only in SQLite" in p for p in found)
    assert not any(p.startswith(("users:", "skills:", "audit_log:")) for p in found)


# -- all or nothing ----------------------------------------------------------------------


def test_a_failure_half_way_leaves_the_target_empty(
        home: Settings, populated: dict[str, Any], target: str) -> None:
    # A text PostgreSQL cannot hold (a NUL) in one of the last tables copied.
    with sqlite3.connect(home.index_path) as lite:
        lite.execute("INSERT INTO auth_flows (state, kind, data_json, created_at, expires_at) "
                     "VALUES ('s1', 'oidc', ?, '2026-01-01', '2026-01-02')", ('{"a": "\x00"}',))

    with pytest.raises(MigrateFailed, match="copying auth_flows failed: .*NUL"):
        migrate(home, target)

    assert set(catalogue_rows(target).values()) == {0}
    with sqlite3.connect(home.index_path) as lite:
        lite.execute("DELETE FROM auth_flows")
    assert migrate(home, target).copied


def test_a_run_killed_half_way_leaves_the_target_empty(
        home: Settings, populated: dict[str, Any], target: str) -> None:
    """The run is held just before its commit (a lock the test takes on the target's
    `generation` row), after every table is copied; then killed."""
    _migrate_target(target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLS_HUB_")}
    with psycopg.connect(target) as holder:
        holder.execute("SELECT value FROM generation FOR UPDATE")
        child = subprocess.Popen(
            [sys.executable, "-m", "skills_hub.cli", "migrate-db", "--to", target,
             "--home", str(home.home)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        try:
            # Its last statement before the commit: every table is copied and verified.
            assert _wait_until_blocked(target, child).startswith("UPDATE generation")
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=30)
        holder.rollback()
    _wait_until_gone(target)
    assert set(catalogue_rows(target).values()) == {0}


def _migrate_target(url: str) -> None:
    from skills_hub.store.postgres import open_postgres
    storage = open_postgres(url)
    try:
        storage.db.migrate()
    finally:
        storage.close()


def _wait_until_blocked(url: str, child: subprocess.Popen[bytes]) -> str:
    """Until the run waits for the test's lock; the statement it waits in."""
    deadline = time.monotonic() + 60
    with psycopg.connect(url, autocommit=True) as watcher:
        while True:
            assert child.poll() is None, child.communicate()
            row = watcher.execute(
                "SELECT query FROM pg_stat_activity WHERE application_name = %s "
                "AND wait_event_type = 'Lock'", (migrate_db.APPLICATION,)).fetchone()
            if row:
                return str(row[0])
            assert time.monotonic() < deadline, "the run never reached its commit"
            time.sleep(0.02)


def _wait_until_gone(url: str) -> None:
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as watcher:
        while watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                              "application_name = %s", (migrate_db.APPLICATION,)
                              ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the killed run's session stayed"
            time.sleep(0.02)


# -- refusals ----------------------------------------------------------------------------


def test_a_home_in_use_by_another_process_is_refused(
        home: Settings, populated: dict[str, Any], target: str) -> None:
    with subprocess.Popen(
            [sys.executable, "-c", "import sqlite3, time; "
             f"c = sqlite3.connect({str(home.index_path)!r}); c.execute('SELECT 1 FROM skills');"
             " print('open', flush=True); time.sleep(60)"], stdout=subprocess.PIPE) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
            done = run("--to", target, "--home", str(home.home))
        finally:
            holder.kill()

    assert done.exit_code == ExitCode.REFUSED, done.output
    assert f"is in use by pid {holder.pid}" in done.output
    assert "stop the server" in done.output
    assert target_rows(target) == {}  # not even migrated


def test_a_server_with_workers_is_refused_by_its_metrics_folder(
        home: Settings, populated: dict[str, Any], target: str) -> None:
    """`serve --workers N` keeps `run/metrics-<pid>` while it runs: a cue where /proc does
    not show the process (another user's server, or no /proc)."""
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as server:
        (home.home / "run" / f"metrics-{server.pid}").mkdir(parents=True)
        try:
            done = run("--to", target, "--home", str(home.home))
        finally:
            server.kill()
    assert done.exit_code == ExitCode.REFUSED, done.output
    assert f"pid {server.pid} (skills-hub serve --workers)" in done.output

    again = run("--to", target, "--home", str(home.home))  # a folder left by a dead server

    assert again.exit_code == 0, again.output


def test_bad_targets_and_homes_are_clear_errors(home: Settings, populated: dict[str, Any],
                                                tmp_path: Path, target: str) -> None:
    not_pg = run("--to", "mysql://x/y", "--home", str(home.home))
    assert not_pg.exit_code == ExitCode.USAGE and "postgresql://" in not_pg.output
    nowhere = run("--to", target, "--home", str(tmp_path / "no-home"))
    assert nowhere.exit_code == ExitCode.REFUSED and "has no embedded catalogue" in \
        nowhere.output
    missing = run("--to", target + "_missing", "--home", str(home.home))
    assert missing.exit_code == ExitCode.ERROR and "cannot reach the target" in missing.output
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.txt").write_text("mine")
    busy = run("--to", target, "--home", str(home.home), "--copy-repos", str(shared))
    assert busy.exit_code == ExitCode.REFUSED and "is not empty (notes.txt)" in busy.output
    assert set(catalogue_rows(target).values()) == {0}
    assert [p.name for p in shared.iterdir()] == ["notes.txt"]


def test_a_failed_copy_removes_the_repo_copies_it_made(
        home: Settings, populated: dict[str, Any], target: str, tmp_path: Path) -> None:
    with sqlite3.connect(home.index_path) as lite:
        lite.execute("INSERT INTO auth_flows (state, kind, data_json, created_at, expires_at) "
                     "VALUES ('s1', 'oidc', ?, '2026-01-01', '2026-01-02')", ("\x00",))
    shared = tmp_path / "shared"

    with pytest.raises(MigrateFailed, match="NUL"):
        migrate(home, target, copy_repos=shared)

    assert not any(p.name.endswith(".git") for p in shared.iterdir())
