"""Downloads near the limit (issue 15): an exact version's archive read from a per-process
cache that every process drops when namespace facts change, download counts batched in
memory and flushed about once a second (and at close), and archives as immutable files a
reverse proxy sends (X-Accel-Redirect, X-Sendfile)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, OPERATOR
from skills_hub.config import Settings
from skills_hub.errors import NotFound
from skills_hub.services import Registry
from skills_hub.skill.bundle import from_files
from skills_hub.store.sqlite import open_sqlite
from skills_hub.web.app import create_app

from .conftest import skill_md
from .live import start_server

ARCHIVE = "/api/v1/skills/team/hello-world/versions/0.1.0/archive.{fmt}"
SAME_HEADERS = ("etag", "x-checksum-sha256", "digest", "content-type", "content-disposition",
                "x-skill-version", "cache-control")


def publish(registry: Registry, namespace: str = "team", version: str = "0.1.0") -> None:
    bundle = from_files([("SKILL.md", skill_md(body=f"Say hello ({version})."), False),
                         ("notes.md", b"notes\n", False)])
    registry.publish(namespace, bundle, principal=OPERATOR, version=version)


def downloads(registry: Registry, namespace: str = "team") -> int:
    skill = registry.store.catalogue.get_skill(namespace, "hello-world")
    assert skill is not None
    return skill.downloads


@pytest.fixture
def team(registry: Registry) -> Registry:
    publish(registry)
    return registry


# -- one cached lookup -------------------------------------------------------------------

@pytest.mark.sqlite_only
def test_an_exact_versions_archive_asks_the_index_nothing_once_cached(team: Registry) -> None:
    first = team.archive("team", "hello-world", "0.1.0", "tar.gz", ANONYMOUS)[1]
    statements: list[str] = []
    team.store.db.connection().set_trace_callback(statements.append)
    try:
        for fmt in ("tar.gz", "zip"):
            row, archive = team.archive("team", "hello-world", "0.1.0", fmt, ANONYMOUS)
            assert row.version == "0.1.0"
        _, data = team.read_file("team", "hello-world", "0.1.0", "notes.md", ANONYMOUS)
        assert statements == []
        assert team.archive("team", "hello-world", "0.1.0", "tar.gz", ANONYMOUS)[1] == first
        assert data == b"notes\n"
        team.archive("team", "hello-world", "latest", "tar.gz", ANONYMOUS)
        assert statements, "latest resolves through the catalogue on every request"
    finally:
        team.store.db.connection().set_trace_callback(None)


def test_unknown_versions_and_namespaces_are_not_cached_and_stay_404(team: Registry) -> None:
    for namespace, version in (("team", "9.9.9"), ("nobody", "0.1.0")):
        for _ in range(2):
            with pytest.raises(NotFound):
                team.archive(namespace, "hello-world", version, "zip", ANONYMOUS)
    publish(team, version="0.2.0")  # a version that was missing appears at once
    assert team.archive("team", "hello-world", "0.2.0", "zip", ANONYMOUS)[0].version == "0.2.0"


def test_a_visibility_change_refuses_the_cached_archive_at_once(team: Registry) -> None:
    client = TestClient(create_app(team.settings, team))
    url = ARCHIVE.format(fmt="zip")
    assert client.get(url).status_code == 200  # cached now
    team.set_visibility("team", "private")
    refused = client.get(url)
    assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    with pytest.raises(NotFound):
        team.read_file("team", "hello-world", "0.1.0", "notes.md", ANONYMOUS)
    token = team.create_token("team")
    member = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert member.status_code == 200
    team.set_visibility("team", "public")
    assert client.get(url).status_code == 200


def test_another_process_sees_the_visibility_change_and_counts_add_up(
        tmp_path: Path, registry: Registry) -> None:
    """A real server (its own process and caches) on the same home as this registry."""
    publish(registry)
    server = start_server(registry.settings.home)
    url = server.url + ARCHIVE.format(fmt="tar.gz")
    try:
        for _ in range(7):
            assert httpx.get(url).status_code == 200
        registry.set_visibility("team", "private")
        assert httpx.get(url).status_code == 404
        registry.set_visibility("team", "public")
        assert httpx.get(url).status_code == 200
        for _ in range(5):  # this process's own downloads
            registry.archive("team", "hello-world", "0.1.0", "zip", ANONYMOUS)
    finally:
        server.stop()  # SIGTERM: the lifespan flushes the server's counts
    registry.downloads.flush()
    assert downloads(registry) == 8 + 5


# -- batched counts ----------------------------------------------------------------------

@pytest.fixture
def own_registry(settings: Settings) -> Iterator[Registry]:
    """A registry the test closes itself."""
    registry = Registry(settings)
    registry.start()
    publish(registry)
    yield registry


@pytest.mark.sqlite_only
def test_counts_are_flushed_across_the_interval_and_on_close(own_registry: Registry,
                                                             settings: Settings) -> None:
    reg = own_registry
    for _ in range(25):  # spread over more than two flush intervals
        reg.archive("team", "hello-world", "0.1.0", "tar.gz", ANONYMOUS)
        time.sleep(0.1)
    reg.archive("team", "hello-world", "0.1.0", "zip", ANONYMOUS, count=False)
    deadline = time.monotonic() + 5
    while downloads(reg) < 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert downloads(reg) == 25  # the background thread wrote them, nobody flushed
    for _ in range(4):
        reg.archive("team", "hello-world", "latest", "tar.gz", ANONYMOUS)
    reg.close()
    store = open_sqlite(settings.index_path)
    skill = store.catalogue.get_skill("team", "hello-world")
    store.close()
    assert skill is not None and skill.downloads == 29


def test_several_workers_counts_add_up(registry: Registry, settings: Settings) -> None:
    publish(registry)
    others = [Registry(settings) for _ in range(2)]
    for n, worker in enumerate([registry, *others], start=1):
        for _ in range(10 * n):
            worker.archive("team", "hello-world", "0.1.0", "tar.gz", ANONYMOUS)
    for worker in others:
        worker.close()
    registry.downloads.flush()
    assert downloads(registry) == 10 + 20 + 30


def test_only_a_clients_get_counts_as_an_install(team: Registry) -> None:
    client = TestClient(create_app(team.settings, team))
    url = ARCHIVE.format(fmt="tar.gz")
    client.get(url)
    client.get(url, headers={"Sec-Fetch-Dest": "document"})
    client.head(url)
    client.get(url, headers={"Sec-Fetch-Dest": "image"})
    client.get(url, headers={"If-None-Match": client.get(url).headers["etag"]})
    team.downloads.flush()
    assert downloads(team) == 4  # HEAD and the image are not installs; a 304 is


# -- archives a reverse proxy sends --------------------------------------------------------

def proxied(settings: Settings, **mode: object) -> Iterator[TestClient]:
    registry = Registry(replace(settings, **mode))  # type: ignore[arg-type]
    registry.start()
    with TestClient(create_app(registry.settings, registry)) as client:
        yield client
    registry.close()


@pytest.fixture
def accel(team: Registry, settings: Settings) -> Iterator[TestClient]:
    yield from proxied(settings, accel_redirect="/_archives/")


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_x_accel_redirect_names_a_file_with_the_archives_bytes(
        accel: TestClient, team: Registry, settings: Settings, fmt: str) -> None:
    direct = TestClient(create_app(team.settings, team)).get(ARCHIVE.format(fmt=fmt))
    answer = accel.get(ARCHIVE.format(fmt=fmt))
    assert answer.status_code == 200 and answer.content == b""
    sha = hashlib.sha256(direct.content).hexdigest()
    assert answer.headers["x-accel-redirect"] == f"/_archives/{sha}.{fmt}"
    assert (settings.home / "cache" / "archives" / f"{sha}.{fmt}").read_bytes() \
        == direct.content
    assert {h: answer.headers[h] for h in SAME_HEADERS} \
        == {h: direct.headers[h] for h in SAME_HEADERS}
    assert "x-accel-redirect" not in direct.headers  # the setting off: bytes, as before
    again = accel.get(ARCHIVE.format(fmt=fmt), headers={"If-None-Match": direct.headers["etag"]})
    assert again.status_code == 304 and "x-accel-redirect" not in again.headers


def test_a_private_namespace_refuses_before_any_redirect(accel: TestClient,
                                                         team: Registry) -> None:
    team.set_visibility("team", "private")
    refused = accel.get(ARCHIVE.format(fmt="zip"))
    assert refused.status_code == 404
    assert "x-accel-redirect" not in refused.headers and "x-sendfile" not in refused.headers


def test_x_sendfile_names_the_files_absolute_path(team: Registry, settings: Settings) -> None:
    for client in proxied(settings, x_sendfile=True):
        answer = client.get(ARCHIVE.format(fmt="zip"))
        path = Path(answer.headers["x-sendfile"])
        assert path.is_absolute() and path.parent == settings.home / "cache" / "archives"
        assert hashlib.sha256(path.read_bytes()).hexdigest() \
            == answer.headers["x-checksum-sha256"]


def test_the_proxy_settings_are_read_and_checked() -> None:
    env = {"SKILLS_HUB_HOME": "/tmp/x", "SKILLS_HUB_ACCEL_REDIRECT": "internal/archives"}
    assert Settings.from_env(env).accel_redirect == "/internal/archives/"
    assert Settings.from_env({"SKILLS_HUB_HOME": "/tmp/x"}).accel_redirect is None
    with pytest.raises(ValueError, match="not both"):
        Settings.from_env({**env, "SKILLS_HUB_X_SENDFILE": "1"})
