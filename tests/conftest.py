"""Shared fixtures. Every test is hermetic: its own HOME, SKILLS_HUB_HOME, no GIT_* leaks."""

from __future__ import annotations

import os
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import Principal
from skills_hub.config import Settings
from skills_hub.search.embedder import Embedder
from skills_hub.services import Registry
from skills_hub.web.app import create_app

from .pgcluster import Cluster, Databases

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_DIR = REPO_ROOT / "registry" / "seed"

SKILL_MD = """---
name: {name}
description: {description}
license: Apache-2.0
metadata:
  tags: "testing, example"
---
# {name}

{body}
"""


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("GIT_", "SKILLS_HUB_", "XDG_")) or key in ("SKILLS_DIR",):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SKILLS_HUB_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    # Servers started by tests search by keyword unless a test turns the model on.
    monkeypatch.setenv("SKILLS_HUB_SEMANTIC", "off")


# The storage backends the `settings` fixture (so `registry`, `app`, `client`, ...) and the
# storage contract suite run on: SKILLS_HUB_TEST_BACKENDS, comma-separated, else this.
DEFAULT_BACKENDS = "sqlite,postgresql"
BACKENDS = ("sqlite", "postgresql")


# Read once, before `hermetic` clears SKILLS_HUB_* for each test.
CHOSEN_BACKENDS = os.environ.get("SKILLS_HUB_TEST_BACKENDS") or DEFAULT_BACKENDS
# An admin URL of a PostgreSQL of the developer's own (a role that may create databases);
# unset: the session starts a throwaway cluster (tests/pgcluster.py) when a test needs one.
EXTERNAL_DATABASE_URL = os.environ.get("SKILLS_HUB_TEST_DATABASE_URL") or None
_BACKENDS = pytest.StashKey[tuple[str, ...]]()
_DATABASES = pytest.StashKey[Databases]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: tests SQLite itself (index.db, its SQL, its upgrades); the "
        "`settings` fixture gives it the SQLite backend only")
    chosen = tuple(dict.fromkeys(name.strip().lower() for name in CHOSEN_BACKENDS.split(",")
                                 if name.strip()))
    unknown = [name for name in chosen if name not in BACKENDS]
    if unknown or not chosen:
        raise pytest.UsageError(f"SKILLS_HUB_TEST_BACKENDS={CHOSEN_BACKENDS!r}: name some of "
                                f"{', '.join(BACKENDS)}, comma-separated")
    config.stash[_BACKENDS] = chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a `storage_backend` (through `settings`, `registry`, `client`,
    `storage`, ...) runs once per backend of SKILLS_HUB_TEST_BACKENDS: `test_x[sqlite]`,
    `test_x[postgresql]`. A `sqlite_only` test runs on SQLite alone, whatever is chosen."""
    if "storage_backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("storage_backend",
                             ("sqlite",) if only else metafunc.config.stash[_BACKENDS],
                             indirect=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    databases = config.stash.get(_DATABASES, None)
    if databases is not None and databases.summary():
        terminalreporter.write_line(databases.summary())


@pytest.fixture
def storage_backend(request: pytest.FixtureRequest) -> str:
    """`sqlite` or `postgresql` (parametrised by `pytest_generate_tests`)."""
    return str(request.param)


@pytest.fixture(scope="session")
def pg_databases(pytestconfig: pytest.Config) -> Iterator[Databases]:
    """PostgreSQL for the session: a throwaway cluster (or the developer's server) with a
    migrated template database that each test's database is copied from."""
    cluster = None if EXTERNAL_DATABASE_URL else Cluster()
    try:
        started = time.perf_counter()
        admin_url = EXTERNAL_DATABASE_URL or cluster.start()  # type: ignore[union-attr]
        databases = Databases(admin_url, _migrate_postgres)
        databases.server_seconds = time.perf_counter() - started
        pytestconfig.stash[_DATABASES] = databases
        try:
            yield databases
        finally:
            databases.close()
    finally:
        if cluster is not None:
            cluster.stop()


def _migrate_postgres(url: str) -> None:
    from skills_hub.store.postgres import open_postgres
    storage = open_postgres(url)
    try:
        storage.db.migrate()
    finally:
        storage.close()


@pytest.fixture
def new_database(storage_backend: str,
                 request: pytest.FixtureRequest) -> Iterator[Callable[[], str | None]]:
    """Makes the test's databases: None on SQLite (the home's index.db), else the URL of a
    new migrated PostgreSQL database, dropped after the test."""
    databases: Databases | None = None
    made: list[str] = []

    def make() -> str | None:
        nonlocal databases
        if storage_backend == "sqlite":
            return None
        if databases is None:
            databases = request.getfixturevalue("pg_databases")
        name, url = databases.create()
        made.append(name)
        return url

    yield make
    for name in made:
        assert databases is not None
        databases.drop(name)


@pytest.fixture
def database_url(new_database: Callable[[], str | None]) -> str | None:
    """The test's PostgreSQL database (None on SQLite)."""
    return new_database()


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    if database_url is not None:
        # Servers and CLI commands the test starts on this home find the same database.
        monkeypatch.setenv("SKILLS_HUB_DATABASE_URL", database_url)
    return Settings(home=tmp_path / "data", seed=False, semantic="off",
                    database_url=database_url)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once per test session and shared."""
    model = Embedder()
    assert model.wait(300), f"the embedding model did not load: {model.error}"
    return model


@pytest.fixture
def semantic_registry(tmp_path: Path, embedder: Embedder,
                      new_database: Callable[[], str | None]) -> Iterator[Registry]:
    """A registry with semantic search on (the shared model, already loaded); a database of
    its own on PostgreSQL (a test may use `registry` too)."""
    reg = Registry(Settings(home=tmp_path / "semantic", seed=False,
                            database_url=new_database()), embedder=embedder)
    reg.start()
    yield reg
    reg.close()


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = Registry(settings)
    reg.start()
    yield reg
    reg.close()


@pytest.fixture
def app(settings: Settings, registry: Registry):  # type: ignore[no-untyped-def]
    return create_app(settings, registry)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def token(registry: Registry) -> str:
    return registry.create_token("team")


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send_outcomes(registry: Registry, namespace: str, name: str, outcomes: list[str], *,
                  version: str = "0.1.0", at: datetime | None = None,
                  clients: int = 1, token_namespace: str = "reporters") -> dict[str, Any]:
    """Report outcomes through the service, as agents do (`clients` distinct client ids)."""
    principal = token_principal(registry, token_namespace)
    stamp = (at or datetime.now(UTC)).isoformat()
    batch = [{"id": uuid.uuid4().hex, "version": version, "outcome": outcome,
              **({"failure_kind": "wrong_result"} if outcome == "failure" else {}),
              "client": {"id": f"client-{i % clients}"}, "at": stamp}
             for i, outcome in enumerate(outcomes)]
    receipt = registry.report_outcomes(namespace, name, {"outcomes": batch}, principal)
    return {"recorded": receipt.recorded, "trust": receipt.trust}


_TOKENS: weakref.WeakKeyDictionary[Registry, dict[str, str]] = weakref.WeakKeyDictionary()


def token_principal(registry: Registry, namespace: str) -> Principal:
    """The principal of a namespace token (an owner's token of `namespace`), as a client
    holding one is: one token per registry and namespace, so reports from it are one
    reporter's."""
    tokens = _TOKENS.setdefault(registry, {})
    if namespace not in tokens:
        tokens[namespace] = registry.create_token(namespace)
    return registry.authenticate(tokens[namespace])


def skill_md(name: str = "hello-world",
             description: str = "Greets the user by name when asked to say hello.",
             body: str = "Say hello.") -> bytes:
    return SKILL_MD.format(name=name, description=description, body=body).encode()


def write_skill(parent: Path, name: str = "hello-world", **kwargs: str) -> Path:
    folder = parent / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_bytes(skill_md(name, **kwargs))
    return folder


def version_rows(registry: Registry) -> dict[tuple[str, str, str], tuple[str, ...]]:
    """(namespace, name, version) -> (tag, commit, tree, content sha256, published at) of
    every version in the catalogue, read through the storage interfaces (what a backup, a
    restore or a migration must bring back)."""
    store = registry.store
    out: dict[tuple[str, str, str], tuple[str, ...]] = {}
    for namespace, name in sorted({(ns, n) for ns, n, _ in store.catalogue.catalogue_tags()}):
        skill = store.catalogue.get_skill(namespace, name)
        assert skill is not None
        for row in store.catalogue.versions(skill.id):
            out[(namespace, name, row.version)] = (row.tag_sha, row.commit_sha, row.tree_sha,
                                                   row.content_sha256, row.published_at)
    return out
