"""Crash safety: what a killed writer leaves in git (stale lock files, orphan tags, a
half-made repo) never breaks a publish or a start, and `skills-hub fsck` finds and repairs
it. The storm test kills the real server at random points of a publish storm."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from dulwich.objects import Blob, ObjectID
from dulwich.refs import DiskRefsContainer, Ref
from dulwich.repo import Repo
from starlette.testclient import TestClient

from skills_hub.access.principal import OPERATOR
from skills_hub.cli import main
from skills_hub.config import Settings
from skills_hub.errors import NotFound
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.store.gitstore import MAIN

from .conftest import skill_md
from .live import make_token, start_server


def bundle(name: str, body: str = "Say hello.") -> Bundle:
    return Bundle(files={"SKILL.md": skill_md(name, body=body)}, executables=frozenset())


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=120)


def git_fsck(repo: Path) -> subprocess.CompletedProcess[str]:
    return git("--git-dir", str(repo), "fsck", "--strict")


def stale(path: Path, age: float = 120.0) -> Path:
    """A lock file as a killed writer leaves it: written a while ago, never renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"0" * 40 + b"\n")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


@pytest.fixture
def reg(settings: Settings) -> Iterator[Registry]:
    registry = Registry(settings)
    registry.start()
    yield registry
    registry.close()


def restart(registry: Registry) -> Registry:
    registry.close()
    again = Registry(registry.settings)
    again.start()
    return again


def versions(registry: Registry, name: str) -> list[str]:
    try:
        return [v.version for v in registry.get_skill("team", name, OPERATOR).versions]
    except NotFound:
        return []


def rewind_main(registry: Registry, to: str) -> None:
    """Move main back, as a publish killed between its tag and main leaves it."""
    repo = Repo(str(registry.git.path("team")))
    try:
        assert repo.refs.set_if_equals(MAIN, repo.refs[MAIN], ObjectID(to.encode()))
    finally:
        repo.close()


# What a publish of skill `beta` 2.0.0 (bundle("beta", "b")) trips over, per kind of lock.
LOCKS: dict[str, Callable[[Path], Path]] = {
    "main": lambda repo: repo / "refs" / "heads" / "main.lock",
    "tag": lambda repo: repo / "refs" / "tags" / "beta" / "v2.0.0.lock",
    "object": lambda repo: (lambda sha: repo / "objects" / sha[:2] / f"{sha[2:]}.lock")(
        Blob.from_string(skill_md("beta", body="b")).id.decode()),
    "packed-refs": lambda repo: repo / "packed-refs.lock",
}


@pytest.mark.parametrize("kind", sorted(LOCKS))
def test_a_stale_lock_breaks_neither_publish_nor_restart(
        reg: Registry, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    reg.publish("team", bundle("alpha"), principal=OPERATOR, version="1.0.0")
    repo = reg.git.path("team")
    lock = stale(LOCKS[kind](repo))
    with caplog.at_level(logging.WARNING, logger="skills_hub.store.gitstore"):
        out = reg.publish("team", bundle("beta", "b"), principal=OPERATOR, version="2.0.0")
    assert out.status == "published"
    assert not lock.exists()
    rel = lock.relative_to(repo).as_posix()
    assert f"removed stale lock file {rel} of namespace team (age 12" in caplog.text
    assert reg.git.maintain("team").startswith("git repack")  # pack-refs needs packed-refs
    # The same kind of lock left by a crash while the server was down: the start clears it.
    stale(LOCKS[kind](repo))
    reg = restart(reg)
    try:
        assert not LOCKS[kind](repo).exists()
        assert versions(reg, "beta") == ["2.0.0"] and versions(reg, "alpha") == ["1.0.0"]
        assert reg.publish("team", bundle("beta", "c"), principal=OPERATOR).status == \
            "published"
        fsck = git_fsck(repo)
        assert fsck.returncode == 0, fsck.stderr
    finally:
        reg.close()


def test_a_publish_over_a_stale_main_lock_is_a_201_not_a_500(
        client: TestClient, auth: dict[str, str], registry: Registry) -> None:
    first = client.post("/api/v1/namespaces/team/skills", headers=auth,
                        files=[("files", ("SKILL.md", skill_md("alpha")))])
    assert first.status_code == 201, first.text
    stale(registry.git.path("team") / "refs" / "heads" / "main.lock")
    second = client.post("/api/v1/namespaces/team/skills", headers=auth,
                         files=[("files", ("SKILL.md", skill_md("beta")))])
    assert second.status_code == 201, second.text
    tags = git("--git-dir", str(registry.git.path("team")), "tag").stdout.split()
    assert sorted(tags) == ["alpha/v0.1.0", "beta/v0.1.0"]
    assert git("--git-dir", str(registry.git.path("team")), "merge-base", "--is-ancestor",
               second.json()["commit"], "main").returncode == 0


def test_start_clears_every_kind_of_stale_lock(reg: Registry,
                                               caplog: pytest.LogCaptureFixture) -> None:
    reg.publish("team", bundle("alpha"), principal=OPERATOR)
    repo = reg.git.path("team")
    sha = reg.store.catalogue.catalogue_tags()[("team", "alpha", "0.1.0")]
    locks = [stale(repo / name, age=60 + i) for i, name in enumerate([
        "HEAD.lock", "config.lock", "packed-refs.lock", "refs/heads/main.lock",
        "refs/tags/alpha/v0.1.0.lock", "refs/heads/proposals/alpha/p1.lock",
        f"objects/{sha[:2]}/{sha[2:]}.lock", "objects/info/packs.lock"])]
    with caplog.at_level(logging.WARNING):
        reg = restart(reg)
    try:
        assert [p for p in locks if p.exists()] == []
        for i, lock in enumerate(locks):
            assert f"removed stale lock file {lock.relative_to(repo).as_posix()} of " \
                   f"namespace team (age {60 + i}" in caplog.text
        assert versions(reg, "alpha") == ["0.1.0"]
    finally:
        reg.close()


def test_a_tag_left_ahead_with_a_stale_main_lock_is_fast_forwarded_at_start(
        reg: Registry) -> None:
    """The issue's restart: a publish killed after its tag, with main.lock written."""
    reg.publish("team", bundle("alpha"), principal=OPERATOR, version="1.0.0")
    before = reg.git.head("team")
    assert before is not None
    # In git, not in the index; main still on the previous commit; main.lock left.
    ahead = reg.git.publish("team", "alpha", "1.1.0", bundle("alpha", "new"), message="x")
    rewind_main(reg, before)
    stale(reg.git.path("team") / "refs" / "heads" / "main.lock")
    reg.close()
    again = Registry(reg.settings)
    report = again.start()
    try:
        assert report.repaired == ["team/alpha/v1.1.0"]
        assert report.locks == ["team.git/refs/heads/main.lock"]
        assert again.git.head("team") == ahead.commit_sha
        assert versions(again, "alpha") == ["1.1.0", "1.0.0"]
    finally:
        again.close()


def _orphan(registry: Registry, name: str, version: str) -> str:
    """A publish that wrote its tag, then lost main to another publish: the tag's commit
    is a sibling of main's, and the index never heard of the version."""
    base = registry.git.head("team")
    assert base is not None
    lost = registry.git.publish("team", name, version, bundle(name, "lost"), message="x")
    rewind_main(registry, base)
    return lost.commit_sha


def test_an_orphan_tag_is_removed_at_start_and_its_version_can_be_published(
        reg: Registry, caplog: pytest.LogCaptureFixture) -> None:
    reg.publish("team", bundle("alpha"), principal=OPERATOR, version="1.0.0")
    lost = _orphan(reg, "alpha", "1.1.0")
    reg.publish("team", bundle("beta"), principal=OPERATOR)  # main moves past the orphan
    with caplog.at_level(logging.WARNING):
        reg.close()
        again = Registry(reg.settings)
        report = again.start()
    try:
        assert report.orphans == ["team/alpha/v1.1.0"]
        assert f"removed orphan tag alpha/v1.1.0 of team (commit {lost[:12]}" in caplog.text
        assert versions(again, "alpha") == ["1.0.0"]  # never acknowledged: not served
        assert "alpha/v1.1.0" not in git("--git-dir", str(again.git.path("team")),
                                         "tag").stdout.split()
        out = again.publish("team", bundle("alpha", "retry"), principal=OPERATOR,
                            version="1.1.0")
        assert out.status == "published"
        assert versions(again, "alpha") == ["1.1.0", "1.0.0"]
        fsck = git_fsck(again.git.path("team"))
        assert fsck.returncode == 0, fsck.stderr
    finally:
        again.close()


def test_a_tag_the_index_knows_is_never_removed(reg: Registry) -> None:
    """Main moved behind the store's back: the tag stays, fsck reports it, unfixed."""
    reg.publish("team", bundle("alpha"), principal=OPERATOR, version="1.0.0")
    base = reg.git.head("team")
    assert base is not None
    reg.publish("team", bundle("alpha", "two"), principal=OPERATOR, version="1.1.0")
    rewind_main(reg, base)
    reg.git.publish("team", "beta", "1.0.0", bundle("beta"), message="x")
    reg = restart(reg)
    try:
        assert versions(reg, "alpha") == ["1.1.0", "1.0.0"]
        report = reg.fsck(repair=True)
        left = [f for f in report.findings if f.kind == "tag-not-on-main"]
        assert [(f.where, f.fixed) for f in left] == [
            ("team.git/refs/tags/alpha/v1.1.0", False)]
        assert "the index has this version" in left[0].detail
        assert "alpha/v1.1.0" in git("--git-dir", str(reg.git.path("team")),
                                     "tag").stdout.split()
    finally:
        reg.close()


def test_a_publish_that_fails_after_its_tag_takes_the_tag_back(
        reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    reg.publish("team", bundle("alpha"), principal=OPERATOR, version="1.0.0")
    real = DiskRefsContainer.set_if_equals

    def failing(self: DiskRefsContainer, name: Ref, *args: object, **kwargs: object) -> bool:
        if name == MAIN:
            raise OSError(28, "No space left on device")
        return real(self, name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(DiskRefsContainer, "set_if_equals", failing)
    with pytest.raises(OSError, match="No space left"):
        reg.publish("team", bundle("alpha", "two"), principal=OPERATOR, version="1.1.0")
    monkeypatch.setattr(DiskRefsContainer, "set_if_equals", real)
    assert [t.version for t in reg.git.tags("team")] == ["1.0.0"]
    out = reg.publish("team", bundle("alpha", "two"), principal=OPERATOR, version="1.1.0")
    assert out.status == "published"


def test_a_namespace_repo_half_created_by_a_crash_is_made_again(settings: Settings) -> None:
    half = settings.repos_dir / "team.git"
    for sub in ("refs/heads", "refs/tags", "objects/info", "objects/pack", "info"):
        (half / sub).mkdir(parents=True)
    (half / "description").write_text("Unnamed repository\n")
    registry = Registry(settings)
    registry.start()
    try:
        out = registry.publish("team", bundle("alpha"), principal=OPERATOR)
        assert out.status == "published"
        fsck = git_fsck(half)
        assert fsck.returncode == 0, fsck.stderr
    finally:
        registry.close()


def _fsck(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["fsck", "--home", str(home), *args])
    return result.exit_code, result.output


def test_fsck_finds_every_problem_then_repairs_them(reg: Registry) -> None:
    home = reg.settings.home
    reg.publish("team", bundle("alpha"), principal=OPERATOR, version="1.0.0")
    reg.publish("team", bundle("beta"), principal=OPERATOR, version="1.0.0")
    lost = _orphan(reg, "alpha", "1.1.0")  # orphan-tag, once gamma moves main past it
    reg.git.publish("team", "gamma", "1.0.0", bundle("gamma"), message="x")  # not-indexed
    base = reg.git.head("team")
    assert base is not None
    reg.git.publish("team", "delta", "1.0.0", bundle("delta"), message="x")
    rewind_main(reg, base)  # tag-ahead (and not indexed)
    repo = Repo(str(reg.git.path("team")))
    assert repo.refs.remove_if_equals(Ref(b"refs/tags/beta/v1.0.0"), None)  # index-only
    repo.close()
    stale(reg.git.path("team") / "refs" / "heads" / "main.lock")
    stale(reg.git.path("team") / "objects" / "info" / "packs.lock")
    reg.close()

    code, out = _fsck(home)
    assert code == 1, out
    lines = out.splitlines()
    expected = [
        ("stale-lock", "team.git/refs/heads/main.lock"),
        ("stale-lock", "team.git/objects/info/packs.lock"),
        ("tag-ahead", "team.git/refs/tags/delta/v1.0.0"),
        ("orphan-tag", "team.git/refs/tags/alpha/v1.1.0"),
        ("not-indexed", "team/delta@1.0.0"),
        ("not-indexed", "team/gamma@1.0.0"),
        ("index-only", "team/beta@1.0.0"),
    ]
    for kind, where in expected:
        assert any(line.startswith("NOT FIXED") and f" {kind} " in line and where in line
                   for line in lines), (kind, where, out)
    assert len(lines) == len(expected) + 1
    assert lost[:12] in out
    assert "git fsck: clean; 7 problems, 0 fixed" in lines[-1]
    assert (reg.git.path("team") / "refs" / "heads" / "main.lock").exists()  # looked only

    code, out = _fsck(home, "--repair", "--json")
    assert code == 1, out
    body = json.loads(out)
    assert sorted((p["kind"], p["where"]) for p in body["problems"]) == sorted(expected)
    assert all(p["fixed"] for p in body["problems"]), body
    assert body["git_fsck"] == "clean" and body["clean"] is False

    code, out = _fsck(home)
    assert code == 0, out
    assert out.strip().endswith("clean")
    again = Registry(reg.settings)
    again.store.db.migrate()
    try:
        assert versions(again, "alpha") == ["1.0.0"]
        assert versions(again, "beta") == []
        assert versions(again, "gamma") == ["1.0.0"] and versions(again, "delta") == ["1.0.0"]
        tags = git("--git-dir", str(again.git.path("team")), "tag").stdout.split()
        assert sorted(tags) == ["alpha/v1.0.0", "delta/v1.0.0", "gamma/v1.0.0"]
        for tag in tags:
            assert git("--git-dir", str(again.git.path("team")), "merge-base",
                       "--is-ancestor", tag, "main").returncode == 0
    finally:
        again.close()


# --- the storm ---------------------------------------------------------------------------

KILLS = 20
STORM_SECONDS = 150  # a cap for a loaded machine: 20 kills take ~55 s here (a start is ~2 s)


class Storm:
    """Publishes distinct small skills, one after another, to whichever server is up."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.acknowledged: dict[str, tuple[str, str, str]] = {}  # name -> version, commit, url
        self.errors: list[str] = []  # 5xx answers
        self.attempts = 0
        self.stop = threading.Event()
        self.guard = threading.Lock()

    def publish(self, url: str, name: str, http: httpx.Client) -> int | None:
        try:
            response = http.post(
                f"{url}/api/v1/namespaces/team/skills",
                headers={"Authorization": f"Bearer {self.token}"},
                files=[("files", ("SKILL.md", skill_md(name, body=f"Storm {name}.")))])
        except httpx.TransportError:
            return None  # the server died under it, or is not up yet: unknown outcome
        if response.status_code == 201:
            body = response.json()
            with self.guard:
                self.acknowledged[name] = (body["version"], body["commit"], body["url"])
        elif response.status_code >= 500:
            with self.guard:
                self.errors.append(f"{name}: {response.status_code} {response.text[:300]}")
        return response.status_code

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            i = 0
            while not self.stop.is_set():
                i += 1
                self.attempts += 1
                if self.publish(self.url, f"storm-{i:04d}", http) is None:
                    time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_storm_loses_no_acknowledged_publish(tmp_path: Path) -> None:
    home = tmp_path / "data"
    repo = home / "repos" / "team.git"
    servers = [start_server(home)]
    token = make_token(home, "team")
    storm = Storm(servers[-1].url, token)
    thread = threading.Thread(target=storm.run, daemon=True)
    rng = random.Random(13)
    kills = failed_restarts = probes = locks_left = 0
    deadline = time.monotonic() + STORM_SECONDS
    try:
        thread.start()
        while kills < KILLS and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.05, 0.4))
            servers[-1].stop(signal.SIGKILL)
            kills += 1
            locks_left += sum(1 for _ in repo.rglob("*.lock"))
            try:
                servers.append(start_server(home))
            except RuntimeError:
                failed_restarts += 1
                servers.append(start_server(home))  # a second failure fails the test
            url = storm.url = servers[-1].url
            # A few requests on each fresh server: reads, and a publish of our own.
            with httpx.Client(timeout=10) as http:
                for path in ("/api/v1/health", "/api/v1/skills?namespace=team"):
                    status = http.get(url + path).status_code
                    if status >= 500:
                        storm.errors.append(f"GET {path} after restart {kills}: {status}")
                probes += 1
                published = storm.publish(url, f"probe-{kills:02d}", http)
                if published != 201:
                    storm.errors.append(f"probe publish after restart {kills}: {published}")
        storm.stop.set()
        thread.join(30)
        servers[-1].stop(signal.SIGKILL)
        servers.append(start_server(home))
        lost = set()
        with httpx.Client(timeout=10) as http:
            for name, (version, commit, path) in sorted(storm.acknowledged.items()):
                got = http.get(servers[-1].url + path)
                if got.status_code != 200 or \
                        (got.json()["version"], got.json()["commit"]) != (version, commit):
                    lost.add(name)
        servers[-1].stop()
    finally:
        storm.stop.set()
        for server in servers:
            server.stop(signal.SIGKILL)
    leftover = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*.lock"))
    tags = set(git("--git-dir", str(repo), "tag").stdout.split())
    lost |= {n for n, (v, _, _) in storm.acknowledged.items() if f"{n}/v{v}" not in tags}
    fsck = git_fsck(repo)
    code, report = _fsck(home)
    took = time.monotonic() - deadline + STORM_SECONDS
    print(f"\nstorm: {took:.0f} s", end="")
    print(f"\nstorm: {kills} kills, {storm.attempts} storm publishes attempted, "
          f"{len(storm.acknowledged)} acknowledged (incl. {probes} probes), {len(lost)} lost, "
          f"{failed_restarts} failed restarts, {len(storm.errors)} 5xx, {locks_left} lock "
          f"files left by the kills, {len(tags)} tags in git; skills-hub fsck exit {code}")
    assert kills >= KILLS
    assert failed_restarts == 0
    assert storm.errors == []
    assert lost == set()
    assert leftover == []  # the final start cleared what the last kills left
    assert len(storm.acknowledged) > kills
    assert fsck.returncode == 0, fsck.stderr
    assert code == 0, report
