"""`skills-hub backup` and `restore`, on each backend: a registry with several namespaces
(a private one), versions, checks reports, outcome reports, proposals, users and tokens is
backed up, restored into an empty home and compared row for row; a backup taken while a
thread publishes loses no acknowledged version; and the refusals change nothing."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from starlette.testclient import TestClient

from skills_hub.backup import (
    MANIFEST,
    BackupCorrupt,
    BackupRefused,
    backup,
    read_manifest,
    restore,
)
from skills_hub.cli import ExitCode, main
from skills_hub.config import Settings
from skills_hub.search.embedder import Embedder
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.store.dumps import DumpError, open_dumps
from skills_hub.store.gitstore import GitStore

from .conftest import send_outcomes, skill_md, token_principal, version_rows
from .pgcluster import with_database

PASSWORD = "correct horse battery staple"


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def target(tmp_path: Path, storage_backend: str,
           request: pytest.FixtureRequest) -> Iterator[Settings]:
    """The settings of a fresh home to restore into: on PostgreSQL with a new database
    without any table (pg_restore creates them)."""
    url = None
    if storage_backend == "postgresql":
        databases = request.getfixturevalue("pg_databases")
        name = f"restore_{uuid.uuid4().hex[:12]}"
        _admin(databases.admin_url, sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
            sql.Identifier(name)))
        url = with_database(databases.admin_url, name)
    yield Settings(home=tmp_path / "restored", seed=False, semantic="off", database_url=url)
    if url is not None:
        _admin(databases.admin_url, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def _admin(url: str, statement: sql.Composable) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def populated(registry: Registry, client: TestClient) -> dict[str, str]:
    """Namespaces `team` (public) and `vault` (private) with versions, outcome reports on
    team's, an open proposal, a person's account with a password and a token of theirs.
    Returns the tokens made."""
    tokens = {"team": registry.create_token("team"),
              "vault": registry.create_token("vault", private=True)}
    for namespace, name, versions in (("team", "weekly-report", ("1.0.0", "1.1.0", "2.0.0")),
                                      ("team", "triage", ("0.1.0",)),
                                      ("vault", "secret-recipe", ("1.0.0", "1.0.1"))):
        for version in versions:
            publish(registry, namespace, name, version)
    send_outcomes(registry, "team", "weekly-report", ["success"] * 5 + ["failure"] * 2,
                  version="2.0.0", clients=3)
    send_outcomes(registry, "team", "triage", ["success"], clients=1)
    registry.propose("team", "weekly-report", {
        "base_version": "2.0.0", "reasoning": "owners were missing",
        "evidence": {"failures": 2},
        "edits": [{"old_string": "Body of weekly-report 2.0.0.",
                   "new_string": "Body of weekly-report 2.0.0, with an owner per item."}]},
        token_principal(registry, "team"))
    registry.add_user("alice", password=PASSWORD, display_name="Alice")
    response = client.post("/api/v1/auth/login",
                           json={"username": "alice", "password": PASSWORD, "label": "laptop"})
    assert response.status_code == 200, response.text
    tokens["alice"] = response.json()["token"]
    return tokens


def publish(registry: Registry, namespace: str, name: str, version: str) -> Any:
    md = skill_md(name, description=f"Does {name} things for the team, carefully.",
                  body=f"Body of {name} {version}.")
    return registry.publish(namespace, Bundle({"SKILL.md": md}),
                            principal=token_principal(registry, namespace), version=version)


# -- what a restore must bring back ------------------------------------------------------


def state(registry: Registry) -> dict[str, Any]:
    """Everything the comparison covers, read through the storage interfaces."""
    store = registry.store
    versions = version_rows(registry)
    skills = sorted({(ns, name) for ns, name, _ in versions})
    users = store.users.users()
    return {
        "namespaces": [(n.name, n.visibility) for n in store.namespaces.list_namespaces()],
        "versions": versions,
        "verdicts": {key: store.reports.verdicts(*key) for key in skills},
        "reports": {key: store.reports.get_report(*key) for key in versions},
        "outcomes": {key: store.outcomes.version_stats(*key) for key in skills},
        "success_clients": {key: store.outcomes.success_clients(*key) for key in skills},
        "proposals": {ns: store.proposals.proposals(ns) for ns, _ in skills},
        "users": users,
        "tokens": store.tokens.tokens([u.id for u in users]),
    }


def restored_registry(target: Settings) -> Registry:
    registry = Registry(target, embedder=Embedder(enabled=False))
    registry.start()
    return registry


def files_of(home: Path) -> dict[str, bytes]:
    return {p.relative_to(home).as_posix(): p.read_bytes()
            for p in sorted(home.rglob("*")) if p.is_file()} if home.exists() else {}


# -- backup and restore ------------------------------------------------------------------


def test_a_restore_brings_back_every_version_report_outcome_user_and_token(
        registry: Registry, populated: dict[str, str], target: Settings,
        tmp_path: Path) -> None:
    before = state(registry)
    assert before["outcomes"][("team", "weekly-report")]["2.0.0"].successes == 5
    assert len(before["versions"]) == 6 and before["proposals"]["team"]
    assert ("vault", "private") in before["namespaces"]
    folder = tmp_path / "backup"

    done = backup(registry.settings, folder)

    manifest = read_manifest(folder)
    assert (done.versions, done.in_catalogue, done.skipped) == (6, 6, [])
    assert manifest["backend"] == ("postgresql" if registry.settings.database_url else "sqlite")
    assert {(v["namespace"], v["name"], v["version"]): (v["tag_sha"], v["commit_sha"])
            for v in manifest["versions"]} == {k: v[:2] for k, v in before["versions"].items()}
    assert all(v["in_catalogue"] for v in manifest["versions"])
    counts = manifest["catalogue"]["counts"]
    assert (counts["versions"], counts["skills"], counts["outcome_reports"]) == (6, 3, 8)
    assert counts["users"] == len(before["users"]) and counts["reports"] == 6
    team_refs = manifest["namespaces"]["team"]["refs"]
    assert team_refs["refs/heads/main"] == registry.git.head("team")
    assert team_refs["refs/tags/triage/v0.1.0"] == before["versions"][
        ("team", "triage", "0.1.0")][0]
    assert any(ref.startswith("refs/heads/proposals/") for ref in team_refs)
    assert set(manifest["files"]) == {p.relative_to(folder).as_posix()
                                      for p in folder.rglob("*")
                                      if p.is_file() and p.name != MANIFEST}

    result = restore(target, folder)

    assert (result.namespaces, result.versions, result.reconciled) == (
        len(manifest["namespaces"]), 6, 0)
    again = restored_registry(target)
    try:
        assert state(again) == before
        assert again.fsck().clean
        for name in ("team", "vault", "alice"):  # tokens from before still authenticate
            principal = again.authenticate(populated[name])
            assert principal.actor == registry.authenticate(populated[name]).actor
        archive = again.git.read_tree("vault", again.git.tags("vault")[0].tree_sha)
        assert archive.skill_md().startswith("---\nname: secret-recipe")
    finally:
        again.close()


def test_versions_published_after_the_catalogue_copy_come_back_from_git(
        registry: Registry, populated: dict[str, str], target: Settings,
        tmp_path: Path) -> None:
    """`team` is published to while the backup waits for the lock of a namespace it copies
    before team: the version is in the copied repo, not in the copied catalogue, and the
    restore's reconcile records it."""
    folder = tmp_path / "backup"
    blocker = GitStore(registry.settings.repos_dir)
    first = blocker.namespaces()[0]
    assert first < "team"
    finished: list[Any] = []
    with blocker._locked(first):
        taking = threading.Thread(target=lambda: finished.append(
            backup(registry.settings, folder)))
        taking.start()
        wait_for_catalogue_copy(folder)
        publish(registry, "team", "triage", "0.2.0")
    taking.join(60)
    assert finished, "the backup did not finish"

    manifest = read_manifest(folder)
    late = [v for v in manifest["versions"] if not v["in_catalogue"]]
    assert [(v["namespace"], v["name"], v["version"]) for v in late] == [
        ("team", "triage", "0.2.0")]
    assert manifest["catalogue"]["counts"]["versions"] == 6

    result = restore(target, folder)

    assert (result.versions, result.reconciled) == (7, 1)
    again = restored_registry(target)
    try:
        assert state(again)["versions"] == state(registry)["versions"]
        assert again.store.reports.verdicts("team", "triage")["0.2.0"] == "safe"
    finally:
        again.close()


def wait_for_catalogue_copy(folder: Path) -> None:
    """Until the catalogue's copy is in `folder` and some time has passed (the backup then
    waits for the first namespace's lock)."""
    deadline = time.monotonic() + 30
    while not any(p.stat().st_size for p in folder.glob("*") if p.is_file()):
        assert time.monotonic() < deadline, "the catalogue was not copied"
        time.sleep(0.01)
    time.sleep(0.5)


def test_a_backup_under_a_publish_load_loses_no_acknowledged_version(
        registry: Registry, populated: dict[str, str], target: Settings,
        tmp_path: Path) -> None:
    acknowledged: list[tuple[float, tuple[str, str, str]]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def publish_loop() -> None:
        try:
            n = 0
            while not stop.is_set():
                n += 1
                namespace = ("team", "vault")[n % 2]
                publish(registry, namespace, f"load-{n % 5}", f"1.0.{n}")
                acknowledged.append((time.monotonic(), (namespace, f"load-{n % 5}",
                                                        f"1.0.{n}")))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    loader = threading.Thread(target=publish_loop)
    loader.start()
    try:
        while len(acknowledged) < 10:
            assert loader.is_alive(), errors
            time.sleep(0.01)
        started = time.monotonic()
        done = backup(registry.settings, tmp_path / "backup")
    finally:
        stop.set()
        loader.join(60)
    assert not errors, errors
    before = {key for at, key in acknowledged if at < started}
    assert len(before) >= 10 and len(acknowledged) > len(before)

    result = restore(target, tmp_path / "backup")

    assert result.reconciled == done.versions - done.in_catalogue
    again = restored_registry(target)
    try:
        restored = state(again)["versions"]
        assert before <= restored.keys()
        original = state(registry)["versions"]
        assert all(restored[key] == original[key] for key in restored)
        report = again.fsck()
        assert report.clean, report.findings
    finally:
        again.close()


# -- the commands ------------------------------------------------------------------------


def test_the_commands_back_up_and_restore_a_home(
        registry: Registry, populated: dict[str, str], target: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative folders, as an operator types them
    runner = CliRunner()

    taken = runner.invoke(main, ["backup", "backup", "--home", str(registry.settings.home)])

    assert taken.exit_code == 0, taken.output
    assert "6 versions (0 published during the backup)" in taken.output
    assert (tmp_path / "backup" / MANIFEST).is_file()

    env = {"SKILLS_HUB_DATABASE_URL": target.database_url}
    put = runner.invoke(main, ["restore", "backup", "--home",
                               str(target.home.relative_to(tmp_path)), "--json"], env=env)

    assert put.exit_code == 0, put.output
    body = json.loads(put.output)
    assert (body["versions"], body["reconciled"], body["counts"]["versions"]) == (6, 0, 6)
    checked = runner.invoke(main, ["fsck", "--home", str(target.home)], env=env)
    assert checked.exit_code == 0, checked.output


# -- refusals ----------------------------------------------------------------------------


def test_a_backup_refuses_a_folder_that_is_not_empty(registry: Registry,
                                                     populated: dict[str, str],
                                                     tmp_path: Path) -> None:
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")

    with pytest.raises(BackupRefused, match="is not empty"):
        backup(registry.settings, folder)

    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    taken = CliRunner().invoke(main, ["backup", str(folder), "--home",
                                      str(registry.settings.home)])
    assert taken.exit_code == ExitCode.REFUSED and "is not empty" in taken.output


@pytest.fixture
def taken(registry: Registry, populated: dict[str, str], tmp_path: Path) -> Path:
    folder = tmp_path / "backup"
    backup(registry.settings, folder)
    return folder


def test_a_restore_refuses_a_home_with_repos(taken: Path, target: Settings) -> None:
    GitStore(target.repos_dir).ensure("other")
    home = files_of(target.home)

    with pytest.raises(BackupRefused, match="already holds other.git"):
        restore(target, taken)

    assert files_of(target.home) == home
    assert open_dumps(target).holds_data() is None


def test_a_restore_refuses_a_catalogue_that_holds_data(taken: Path, target: Settings) -> None:
    if target.database_url is None:  # an index.db with an account in it
        (target.home).mkdir()
        with sqlite3.connect(target.index_path) as conn:
            conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT)")
            conn.execute("INSERT INTO users (username) VALUES ('someone')")
        expected = "holds 1 users"
    else:  # any table at all
        _admin(target.database_url, sql.SQL("CREATE TABLE users (id int)"))
        expected = "has 1 tables"
    home = files_of(target.home)

    with pytest.raises(BackupRefused, match=expected):
        restore(target, taken)

    assert files_of(target.home) == home and not target.repos_dir.exists()
    assert open_dumps(target).counts() == {"users": 1 if target.database_url is None else 0}


@pytest.mark.parametrize("victim", ["catalogue", "object", "ref"])
def test_a_restore_refuses_a_tampered_backup(taken: Path, target: Settings,
                                             victim: str) -> None:
    files = sorted(json.loads((taken / MANIFEST).read_text())["files"])
    rel = {"catalogue": next(f for f in files if not f.startswith("repos/")),
           "object": next(f for f in files if "/objects/" in f),
           "ref": next(f for f in files if f.endswith("refs/heads/main") or
                       f.endswith("packed-refs"))}[victim]
    data = bytearray((taken / rel).read_bytes())
    data[len(data) // 2] ^= 0x01
    (taken / rel).write_bytes(bytes(data))

    with pytest.raises(BackupCorrupt) as refused:
        restore(target, taken)

    assert rel in refused.value.message
    assert [p.field for p in refused.value.problems] == [rel]
    assert not target.home.exists() and open_dumps(target).holds_data() is None
    put = CliRunner().invoke(main, ["restore", str(taken), "--home", str(target.home)],
                             env={"SKILLS_HUB_DATABASE_URL": target.database_url})
    assert put.exit_code == ExitCode.INTEGRITY and rel in put.output


def test_a_restore_refuses_a_backup_without_its_manifest(taken: Path,
                                                         target: Settings) -> None:
    (taken / MANIFEST).unlink()

    with pytest.raises(BackupCorrupt, match="did not finish"):
        restore(target, taken)

    assert not target.home.exists()


def test_a_restore_refuses_a_manifest_that_does_not_match_its_repos(
        taken: Path, target: Settings) -> None:
    manifest = json.loads((taken / MANIFEST).read_text())
    del manifest["namespaces"]["vault"]  # the repo's files stay listed
    (taken / MANIFEST).write_text(json.dumps(manifest))

    with pytest.raises(BackupCorrupt, match="repos/vault.git is not a namespace it names"):
        restore(target, taken)

    assert not target.home.exists()


def test_a_missing_pg_dump_is_a_clear_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from skills_hub.store.postgres import dump as pg

    if any(pg.DEBIAN_BINS.glob("*/bin/pg_dump")):
        assert pg.tool_version(pg.find_tool("pg_dump"))[0] >= 10
    monkeypatch.setattr(pg, "DEBIAN_BINS", tmp_path / "nowhere")
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(DumpError, match="pg_dump was not found") as missing:
        pg.find_tool("pg_dump")

    assert "postgresql-client" in missing.value.extra["hint"]
