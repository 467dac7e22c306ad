"""The real server on a loopback port, driven by real git and by kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import skill_md
from .live import Server, make_token, start_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


@pytest.fixture(params=["git", "dulwich"])
def any_backend_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    """The server with upload-pack served by C git, and by dulwich."""
    srv = start_server(tmp_path / "data", git_backend=request.param)
    yield srv
    srv.stop()


def publish(url: str, token: str, name: str, body: str, version: str | None = None) -> dict:
    response = httpx.post(
        f"{url}/api/v1/namespaces/team/skills", params={"version": version} if version else {},
        headers={"Authorization": f"Bearer {token}"},
        files=[("files", ("SKILL.md", skill_md(name, body=body))),
               ("files", ("scripts/run.sh", b"#!/bin/sh\necho ok\n"))],
        data={"executable": "scripts/run.sh"}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_git_clone_and_fetch_against_the_running_server(any_backend_server: Server,
                                                        tmp_path: Path) -> None:
    server = any_backend_server
    token = make_token(server.home, "team")
    publish(server.url, token, "hello-world", "one", "1.0.0")
    publish(server.url, token, "other-skill", "two", "0.1.0")
    clone = tmp_path / "clone"
    result = git("clone", f"{server.url}/git/team.git", str(clone))
    assert result.returncode == 0, result.stderr
    assert (clone / "skills" / "hello-world" / "SKILL.md").read_bytes() == \
        skill_md("hello-world", body="one")
    assert os.access(clone / "skills" / "hello-world" / "scripts" / "run.sh", os.X_OK)
    assert set(git("tag", cwd=clone).stdout.split()) == {"hello-world/v1.0.0",
                                                          "other-skill/v0.1.0"}
    assert git("cat-file", "-t", "hello-world/v1.0.0", cwd=clone).stdout.strip() == "tag"
    assert git("fsck", cwd=clone).returncode == 0
    v0 = git("-c", "protocol.version=0", "clone", f"{server.url}/git/team.git",
             str(tmp_path / "v0"))
    assert v0.returncode == 0, v0.stderr  # clients that still speak protocol v0

    publish(server.url, token, "hello-world", "three", "1.1.0")
    assert git("pull", "--tags", cwd=clone).returncode == 0
    assert "hello-world/v1.1.0" in git("tag", cwd=clone).stdout.split()
    assert (clone / "skills" / "hello-world" / "SKILL.md").read_bytes() == \
        skill_md("hello-world", body="three")


@pytest.mark.parametrize("with_token", [False, True], ids=["anonymous", "authenticated"])
def test_git_push_is_refused_with_a_pointer_to_the_api(server: Server, tmp_path: Path,
                                                       with_token: bool) -> None:
    token = make_token(server.home, "team")
    publish(server.url, token, "hello-world", "one")
    clone = tmp_path / "clone"
    assert git("clone", f"{server.url}/git/team.git", str(clone)).returncode == 0
    (clone / "skills" / "hello-world" / "SKILL.md").write_text("tampered\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "tamper", cwd=clone)
    remote = f"{server.url}/git/team.git"
    if with_token:
        remote = remote.replace("http://", f"http://user:{token}@")
    before = httpx.get(f"{server.url}/api/v1/skills/team/hello-world").json()
    result = git("push", remote, "HEAD:main", cwd=clone)
    assert result.returncode != 0
    assert "403" in result.stderr
    assert "publish" in result.stderr.lower()
    after = httpx.get(f"{server.url}/api/v1/skills/team/hello-world").json()
    assert after == before
    fresh = tmp_path / "fresh"
    git("clone", f"{server.url}/git/team.git", str(fresh))
    assert (fresh / "skills" / "hello-world" / "SKILL.md").read_bytes() == \
        skill_md("hello-world", body="one")


def test_a_private_namespace_clones_only_with_its_token(tmp_path: Path) -> None:
    home = tmp_path / "data"
    srv = start_server(home)
    try:
        out = subprocess.run([sys.executable, "-m", "skills_hub.cli", "token", "create",
                              "team", "--private", "--home", str(home)],
                             capture_output=True, text=True, check=True)
        token = out.stdout.strip().splitlines()[-1]
        publish(srv.url, token, "hello-world", "secret")
        denied = git("clone", f"{srv.url}/git/team.git", str(tmp_path / "a"))
        assert denied.returncode != 0
        allowed = git("clone", f"{srv.url.replace('http://', f'http://x:{token}@')}/git/team.git",
                      str(tmp_path / "b"))
        assert allowed.returncode == 0, allowed.stderr
    finally:
        srv.stop()


def test_an_acknowledged_publish_survives_kill_9(tmp_path: Path) -> None:
    home = tmp_path / "data"
    srv = start_server(home)
    token = make_token(home, "team")
    acknowledged = [publish(srv.url, token, f"skill-{i}", f"body {i}") for i in range(5)]
    srv.stop(signal.SIGKILL)  # the instant after the last response
    again = start_server(home)
    try:
        for ack in acknowledged:
            got = httpx.get(f"{again.url}{ack['url']}").json()
            assert (got["version"], got["commit"]) == (ack["version"], ack["commit"])
        fsck = git("--git-dir", str(home / "repos" / "team.git"), "fsck", "--strict")
        assert fsck.returncode == 0, fsck.stderr
    finally:
        again.stop()


def test_serve_seeds_an_empty_home_with_the_example_skills(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", seed=True)
    try:
        body = httpx.get(f"{srv.url}/api/v1/skills", params={"namespace": "examples"}).json()
        assert body["total"] >= 12
        page = httpx.get(srv.url + "/")
        assert page.status_code == 200 and "csv-analysis" in page.text
    finally:
        srv.stop()


def test_clone_of_a_namespace_with_many_tags_before_and_after_maintenance(
        any_backend_server: Server, tmp_path: Path) -> None:
    # git gzips upload-pack request bodies over 1 KiB: any namespace with ~20+ tags.
    from skills_hub.store.gitstore import GitStore

    server = any_backend_server
    token = make_token(server.home, "team")
    for i in range(70):
        publish(server.url, token, f"skill-{i:02d}", f"body {i}")
    first = git("clone", "--bare", f"{server.url}/git/team.git", str(tmp_path / "a.git"))
    assert first.returncode == 0, first.stderr
    assert len(git("--git-dir", str(tmp_path / "a.git"), "tag").stdout.split()) == 70

    store = GitStore(server.home / "repos")
    assert store.maintain("team").startswith("git repack")
    assert not list((server.home / "repos" / "team.git" / "objects").glob("??/*"))
    publish(server.url, token, "skill-00", "after repack", "1.0.0")  # writes on packed refs
    second = git("clone", f"{server.url}/git/team.git", str(tmp_path / "b"))
    assert second.returncode == 0, second.stderr
    assert len(git("tag", cwd=tmp_path / "b").stdout.split()) == 71
    assert (tmp_path / "b" / "skills" / "skill-00" / "SKILL.md").read_bytes() == \
        skill_md("skill-00", body="after repack")
    assert git("fsck", "--strict", cwd=tmp_path / "b").returncode == 0


def test_a_fresh_server_answers_by_keyword_then_switches_to_hybrid(tmp_path: Path) -> None:
    """The model loads in the background: the first answers are keyword search, and say so;
    the seeded skills are embedded once it is ready, and search turns hybrid by itself."""
    srv = start_server(tmp_path / "data", seed=True, semantic="auto")
    try:
        first = httpx.get(srv.url + "/api/v1/search", params={"q": "csv chart"}, timeout=10)
        body = first.json()
        assert first.status_code == 200 and body["results"]
        assert (body["mode"], body["semantic"]) == ("keyword", "loading")
        gaps = httpx.get(srv.url + "/api/v1/gaps", params={"q": "csv chart"}, timeout=10)
        assert gaps.status_code == 503 and gaps.headers["retry-after"] == "10"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            body = httpx.get(srv.url + "/api/v1/search", params={"q": "csv chart"},
                             timeout=10).json()
            if body["mode"] == "hybrid":
                break
            time.sleep(0.5)
        assert (body["mode"], body["semantic"]) == ("hybrid", "ready")
        assert body["results"][0]["score_parts"]["semantic"] is not None
        assert body["gap"]["gap"] is False
    finally:
        srv.stop()
