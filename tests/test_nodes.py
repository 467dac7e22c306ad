"""Several nodes: real `skills-hub serve` processes, each with a home of its own, sharing one
PostgreSQL database (a fresh one per test) and one repos folder (SKILLS_HUB_REPOS_DIR), on
ports of their own, as two or three machines behind a load balancer would.

- concurrent publishes to both nodes lose no acknowledged version and no commit, a race
  for one version gives one 201 and one clear 409, and an older version never lands on
  main after a newer one (the check under the namespace lock, `GitStore`);
- what one node writes (a version, a visibility, a revoked token) counts on the other
  within a second, measured;
- `kill -9` of one node in a publish storm against both loses no acknowledged version,
  leaves nothing its restart does not repair, releases the namespace lock it held (its
  PostgreSQL session dies with it), and the other node serves throughout;
- three nodes started at once on an empty database migrate it once and all get ready.

- what a dead node's publish left in git (a tag ahead of main) is finished by the other
  node when the same version is sent to it again (no 409 for a version nobody can read).

Each node's database URL names it (`application_name`), so pg_stat_activity and pg_locks
say which node holds what.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from dulwich.objects import ObjectID
from dulwich.repo import Repo as DulwichRepo
from psycopg import sql

from skills_hub.cli import main
from skills_hub.config import Settings
from skills_hub.errors import VersionExists
from skills_hub.services import Registry
from skills_hub.skill import semver
from skills_hub.skill.bundle import Bundle
from skills_hub.store.gitstore import MAIN, GitStore
from skills_hub.store.postgres.db import int64_key
from skills_hub.store.postgres.migrations import MIGRATIONS

from .conftest import CHOSEN_BACKENDS, skill_md
from .live import free_port
from .pgcluster import Databases, with_database

START_S = 60.0  # a node's start on a loaded 2-core machine: ~2 s alone, more three at once
VISIBLE_S = 1.0  # what one node writes counts on the others within this


# -- nodes --------------------------------------------------------------------------------


@dataclass
class Node:
    """One `skills-hub serve` process, its home, port and log."""

    name: str
    home: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"--- {self.name}'s log ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Shared:
    """What the nodes of a test share: the database and the repos folder."""

    database_url: str
    repos: Path
    root: Path
    nodes: list[Node] = field(default_factory=list)

    def node(self, name: str) -> Node:
        """A node (not started) with a home of its own."""
        found = Node(name, self.root / name, free_port(), self.root / f"{name}.log")
        self.nodes.append(found)
        return found

    def spawn(self, node: Node) -> None:
        """Start `node`'s process (see `wait_ready`)."""
        env = {**os.environ, "SKILLS_HUB_HOME": str(node.home),
               "SKILLS_HUB_DATABASE_URL": self.url_for(node.name),
               "SKILLS_HUB_REPOS_DIR": str(self.repos), "SKILLS_HUB_SEMANTIC": "off",
               "SKILLS_HUB_NO_SEED": "1", "SKILLS_HUB_LOG_FORMAT": "text"}
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(
                [sys.executable, "-m", "skills_hub.cli", "serve", "--port", str(node.port)],
                env=env, stdout=log, stderr=log)

    def start(self, node: Node) -> Node:
        self.spawn(node)
        wait_ready(node)
        return node

    def url_for(self, application: str) -> str:
        joiner = "&" if "?" in self.database_url else "?"
        return f"{self.database_url}{joiner}application_name={application}"

    @contextmanager
    def console(self) -> Iterator[Registry]:
        """An in-process registry on the shared database and repos (an operator's console:
        tokens, the catalogue's rows), with a home of its own."""
        registry = Registry(Settings(home=self.root / "console", seed=False, semantic="off",
                                     database_url=self.url_for("console"), repos=self.repos))
        try:
            yield registry
        finally:
            registry.close()

    def token(self, namespace: str) -> str:
        with self.console() as registry:
            return registry.create_token(namespace)

    def logs(self) -> str:
        return "\n".join(node.log_tail() for node in self.nodes)


def wait_ready(node: Node, timeout: float = START_S) -> float:
    """Wait for `/readyz` 200; the seconds it took from now."""
    assert node.process is not None
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if node.process.poll() is not None:
            raise AssertionError(f"{node.name} exited ({node.process.returncode}) while "
                                 f"starting\n{node.log_tail()}")
        try:
            if httpx.get(node.url + "/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{node.name} was not ready within {timeout:.0f} s\n{node.log_tail()}")


def _postgres_chosen() -> bool:
    return "postgresql" in [name.strip().lower() for name in CHOSEN_BACKENDS.split(",")]


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Databases:
    if not _postgres_chosen():
        pytest.skip("several nodes need PostgreSQL (SKILLS_HUB_TEST_BACKENDS leaves it out)")
    return request.getfixturevalue("pg_databases")  # type: ignore[no-any-return]


@pytest.fixture
def shared(pg: Databases, tmp_path: Path) -> Iterator[Shared]:
    """A fresh migrated database and an empty repos folder; every node killed at the end."""
    name, url = pg.create()
    nodes = Shared(url, tmp_path / "repos", tmp_path)
    try:
        yield nodes
    finally:
        for node in nodes.nodes:
            node.kill()
        pg.drop(name)


# -- requests -----------------------------------------------------------------------------


def publish(http: httpx.Client, node: Node, token: str, namespace: str, name: str,
            version: str | None = None, body: str = "Say hello.",
            description: str = "Greets the user by name when asked to say hello."
            ) -> httpx.Response:
    return http.post(f"{node.url}/api/v1/namespaces/{namespace}/skills",
                     headers={"Authorization": f"Bearer {token}"},
                     params={"version": version} if version else None,
                     files=[("files", ("SKILL.md", skill_md(name, description, body)))])


@dataclass(frozen=True)
class Ack:
    """An acknowledged publish (201): what must be there for good."""

    node: str
    namespace: str
    name: str
    version: str
    commit: str
    tag: str


def ack(node: Node, response: httpx.Response) -> Ack:
    body = response.json()
    return Ack(node.name, body["namespace"], body["name"], body["version"], body["commit"],
               body["tag"])


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=120,
                          check=False)


def git_tags(repo: Path) -> dict[str, tuple[str, str]]:
    """Tag name -> (tag object sha, commit sha) of a bare repo."""
    out = git("--git-dir", str(repo), "for-each-ref", "refs/tags",
              "--format=%(refname:strip=2) %(objectname) %(*objectname)").stdout
    return {tag: (obj, commit) for tag, obj, commit in
            (line.split() for line in out.splitlines())}


def lost_acks(shared: Shared, acks: list[Ack], nodes: list[Node]) -> list[str]:
    """Why each acknowledged version is not all there: its tag in git pointing at its
    commit and reached from main, the catalogue's row with that tag, each node serving it."""
    problems = []
    with shared.console() as console:
        rows = console.store.catalogue.catalogue_tags()
    by_namespace: dict[str, dict[str, tuple[str, str]]] = {}
    with httpx.Client(timeout=10) as http:
        for a in acks:
            repo = shared.repos / f"{a.namespace}.git"
            tags = by_namespace.setdefault(a.namespace, git_tags(repo))
            tag = f"{a.name}/v{a.version}"
            where = f"{a.namespace}/{a.name}@{a.version} (acknowledged by {a.node})"
            if tags.get(tag) != (a.tag, a.commit):
                problems.append(f"{where}: git has {tags.get(tag)}")
            elif git("--git-dir", str(repo), "merge-base", "--is-ancestor", a.commit,
                     "main").returncode != 0:
                problems.append(f"{where}: commit {a.commit[:12]} is not on main")
            row = rows.get((a.namespace, a.name, a.version))
            if row != a.tag:
                problems.append(f"{where}: the catalogue has {row}")
            for node in nodes:
                got = http.get(f"{node.url}/api/v1/skills/{a.namespace}/{a.name}/versions/"
                               f"{a.version}")
                if got.status_code != 200 or got.json()["commit"] != a.commit:
                    problems.append(f"{where}: {node.name} answers {got.status_code}")
    return problems


def precedence(version: str) -> tuple[Any, ...]:
    parsed = semver.parse(version)
    assert parsed is not None, version
    return parsed.sort_key()


def stale_main(shared: Shared, acks: list[Ack], cut_off: Collection[str] = ()) -> list[str]:
    """Where main's tree, or the catalogue's latest version, is not each skill's newest
    acknowledged version (a write from a stale view of main would drop or roll back another
    node's skill; an older version written after a newer one would roll it back). Skills
    in `cut_off` (publishes whose node died before answering) may be on main too."""
    newest: dict[tuple[str, str], Ack] = {}
    for a in sorted(acks, key=lambda a: precedence(a.version)):
        newest[(a.namespace, a.name)] = a
    problems = []
    with shared.console() as console:
        for (ns, name), a in newest.items():
            skill = console.store.catalogue.get_skill(ns, name)
            if skill is None or skill.latest_version != a.version:
                problems.append(f"{ns}/{name}: the catalogue's latest is "
                                f"{skill and skill.latest_version}, not {a.version}")
    for namespace in {a.namespace for a in acks}:
        repo = shared.repos / f"{namespace}.git"
        listed = git("--git-dir", str(repo), "ls-tree", "--name-only", "main:skills").stdout
        on_main = set(listed.split())
        wanted = {name for ns, name in newest if ns == namespace}
        if wanted - on_main or on_main - wanted - set(cut_off):
            problems.append(f"{namespace}: main lacks {sorted(wanted - on_main)}, has "
                            f"{sorted(on_main - wanted - set(cut_off))} too")
        for (ns, name), a in newest.items():
            if ns == namespace and name in on_main:
                trees = [git("--git-dir", str(repo), "rev-parse", f"{rev}:skills/{name}")
                         .stdout.strip() for rev in ("main", a.commit)]
                if trees[0] != trees[1]:
                    problems.append(f"{ns}/{name}: main is not {a.version}")
    return problems


def fsck(home: Path, shared: Shared) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["fsck", "--home", str(home)], env={
        "SKILLS_HUB_DATABASE_URL": shared.url_for("fsck"),
        "SKILLS_HUB_REPOS_DIR": str(shared.repos)})
    return result.exit_code, result.output


# -- 1. concurrent publishes ----------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_publishes_to_two_nodes_lose_nothing(shared: Shared) -> None:
    a, b = shared.node("node-a"), shared.node("node-b")
    for node in (a, b):
        shared.spawn(node)
    team, other = shared.token("team"), shared.token("other")
    tokens = {"team": team, "other": other}
    for node in (a, b):
        wait_ready(node)
    # Each round, at once: one version of `shared` from both nodes (different content: a
    # race for the tag), the same content and version of `twin-r` from both, two versions
    # of `multi-r` (one from each: the older must not land after the newer), the next
    # version of `auto` (chosen by each node), a new skill of `team` from each node, and
    # a new skill of `other` beside one of `team`.
    jobs: list[tuple[int, str, Node, str, str, str | None]] = []
    rounds = 6
    for r in range(rounds):
        jobs += [
            (r, "same", a, "team", "shared", f"1.{r}.0"),
            (r, "same", b, "team", "shared", f"1.{r}.0"),
            (r, "next", a, "team", f"multi-{r}", "2.0.0"),
            (r, "next", b, "team", f"multi-{r}", "2.0.1"),
            (r, "twin", a, "team", f"twin-{r}", "1.0.0"),
            (r, "twin", b, "team", f"twin-{r}", "1.0.0"),
            (r, "auto", a, "team", "auto", None),
            (r, "auto", b, "team", "auto", None),
            (r, "new", a, "team", f"alpha-{r}", None),
            (r, "new", b, "team", f"beta-{r}", None),
            (r, "new", a, "other", f"gamma-{r}", None),
            (r, "new", b, "team", f"delta-{r}", None),
        ]
    http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=24))

    def run(job: tuple[int, str, Node, str, str, str | None]) -> httpx.Response:
        r, kind, node, namespace, name, version = job
        body = f"Round {r}." if kind == "twin" else f"From {node.name}, round {r}."
        return publish(http, node, tokens[namespace], namespace, name, version, body=body)

    answers: list[tuple[tuple[int, str, Node, str, str, str | None], httpx.Response]] = []
    with http, ThreadPoolExecutor(12) as pool:
        for r in range(rounds):
            batch = [job for job in jobs if job[0] == r]
            answers += zip(batch, pool.map(run, batch), strict=True)
    failed = [f"{job[2].name} {job[3]}/{job[4]}@{job[5]}: {res.status_code} {res.text[:300]}"
              for job, res in answers if res.status_code not in (201, 409) and
              not (job[1] == "twin" and res.status_code == 200)]
    assert failed == [], "\n".join(failed) + "\n" + shared.logs()
    for r in range(rounds):  # a race for one version: one 201, one clear 409
        same = sorted((res.status_code, res.json().get("code")) for job, res in answers
                      if job[0] == r and job[1] == "same")
        assert same == [(201, None), (409, "version_exists")], (r, same)
        refused = next(res.json() for job, res in answers
                       if job[0] == r and job[1] == "same" and res.status_code == 409)
        assert f"shared 1.{r}.0 is already published" in refused["message"], refused
    for r in range(rounds):  # the same content twice: one 201, one unchanged (200)
        twins = sorted((res.status_code, res.json()["status"], res.json()["commit"])
                       for job, res in answers if job[0] == r and job[1] == "twin")
        assert [t[:2] for t in twins] == [(200, "unchanged"), (201, "published")], twins
        assert twins[0][2] == twins[1][2], twins
    for job, res in answers:  # versions only increase: 2.0.0 after 2.0.1 is refused
        if job[1] == "next" and res.status_code == 409:
            assert job[5] == "2.0.0" and "older than the latest version 2.0.1" in \
                res.json()["message"], res.text
    acks = [ack(job[2], res) for job, res in answers if res.status_code == 201]
    assert sum(1 for job, _ in answers if job[1] == "new") == sum(
        1 for job, res in answers if job[1] == "new" and res.status_code == 201)
    assert lost_acks(shared, acks, [a, b]) == []
    assert stale_main(shared, acks) == []
    # Nothing in git that was not acknowledged.
    in_git = {(ns, tag) for ns in ("team", "other")
              for tag in git_tags(shared.repos / f"{ns}.git")}
    assert in_git == {(x.namespace, f"{x.name}/v{x.version}") for x in acks}
    for node in (a, b):
        code, report = fsck(node.home, shared)
        assert code == 0, report


# -- 2. what one node writes, the other serves within a second --------------------------------


def poll(check: Callable[[], bool], timeout: float = 5.0, every: float = 0.01) -> float:
    """Seconds until `check()` holds (checked at once, then every `every`); fails after
    `timeout`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {check.__doc__ or check}")
        time.sleep(every)
    return time.monotonic() - started


@pytest.mark.slow
def test_a_write_on_one_node_counts_on_the_other_within_a_second(shared: Shared,
                                                                  tmp_path: Path) -> None:
    a, b = shared.node("node-a"), shared.node("node-b")
    for node in (a, b):
        shared.spawn(node)
    token = shared.token("team")
    for node in (a, b):
        wait_ready(node)
    http = httpx.Client(timeout=10)
    auth = {"Authorization": f"Bearer {token}"}
    first = publish(http, a, token, "team", "warm-up", "1.0.0")
    assert first.status_code == 201, first.text
    # B serves what it has, so that any cache it keeps is warm before A writes.
    for path in ("/api/v1/search?q=quokkaflux&mode=keyword",
                 "/api/v1/skills/team/warm-up/versions/latest/archive.tar.gz",
                 "/team/warm-up", "/api/v1/skills/team/zebra-crossing"):
        http.get(b.url + path)
    assert git("ls-remote", f"{b.url}/git/team.git").returncode == 0
    timings: dict[str, float] = {}

    # A new skill published on A.
    made = publish(http, a, token, "team", "zebra-crossing", "1.0.0",
                   description="Helps a quokkaflux cross the road safely.")
    assert made.status_code == 201, made.text
    version = made.json()

    def searchable() -> bool:
        """B's keyword search finds it"""
        hits = http.get(b.url + "/api/v1/search", params={"q": "quokkaflux",
                                                          "mode": "keyword"}).json()
        return [r["name"] for r in hits["results"]] == ["zebra-crossing"]

    def installable() -> bool:
        """B serves its archive"""
        got = http.get(b.url + "/api/v1/skills/team/zebra-crossing/versions/1.0.0/"
                       "archive.tar.gz")
        return got.status_code == 200

    def on_page() -> bool:
        """B's skill page shows it"""
        got = http.get(b.url + "/team/zebra-crossing")
        return got.status_code == 200 and "quokkaflux" in got.text

    def clonable() -> bool:
        """B's git server has its tag"""
        out = git("ls-remote", "--tags", f"{b.url}/git/team.git").stdout
        return version["tag"] in out and "zebra-crossing/v1.0.0" in out

    for what, check in (("search", searchable), ("archive", installable),
                        ("page", on_page), ("git", clonable)):
        timings[f"new skill: {what}"] = poll(check)
    from_b = http.get(b.url + "/api/v1/skills/team/zebra-crossing/versions/1.0.0").json()
    assert from_b["commit"] == version["commit"]
    archive = http.get(b.url + "/api/v1/skills/team/zebra-crossing/versions/1.0.0/"
                       "archive.tar.gz")
    assert archive.headers["x-checksum-sha256"] == from_b["archives"]["tar.gz"]["sha256"]
    clone = tmp_path / "clone"
    cloned = git("clone", "-q", f"{b.url}/git/team.git", str(clone))
    assert cloned.returncode == 0, cloned.stderr
    assert "quokkaflux" in (clone / "skills" / "zebra-crossing" / "SKILL.md").read_text()

    # A new version of a skill B served as `latest` a moment ago.
    newer = publish(http, a, token, "team", "warm-up", "1.1.0", body="Say hello twice.")
    assert newer.status_code == 201, newer.text

    def latest_moved() -> bool:
        """B's latest archive and skill are 1.1.0"""
        got = http.get(b.url + "/api/v1/skills/team/warm-up/versions/latest/archive.tar.gz")
        skill = http.get(b.url + "/api/v1/skills/team/warm-up").json()
        return got.headers.get("x-skill-version") == "1.1.0" and \
            skill["latest_version"] == "1.1.0"

    timings["new version: latest"] = poll(latest_moved)

    # The namespace made private on A: an anonymous reader on B is refused.
    for path in ("/api/v1/skills/team/zebra-crossing",
                 "/api/v1/skills/team/zebra-crossing/versions/1.0.0/archive.tar.gz"):
        assert http.get(b.url + path).status_code == 200  # served (and cached) while public
    private = http.put(a.url + "/api/v1/namespaces/team/visibility", headers=auth,
                       json={"visibility": "private"})
    assert private.status_code == 200, private.text

    def refused() -> bool:
        """B refuses an anonymous reader everywhere"""
        skill = http.get(b.url + "/api/v1/skills/team/zebra-crossing").status_code
        got = http.get(b.url + "/api/v1/skills/team/zebra-crossing/versions/1.0.0/"
                       "archive.tar.gz").status_code
        page = http.get(b.url + "/team/zebra-crossing").status_code
        hits = http.get(b.url + "/api/v1/search", params={"q": "quokkaflux",
                                                          "mode": "keyword"}).json()
        cloned = git("ls-remote", f"{b.url}/git/team.git").returncode
        return (skill, got, page, hits["results"], cloned != 0) == (404, 404, 404, [], True)

    timings["private: refused"] = poll(refused)
    assert http.get(b.url + "/api/v1/skills/team/zebra-crossing", headers=auth) \
        .status_code == 200  # the owner still reads it

    # A token revoked on A is refused on B.
    second = shared.token("team")
    assert http.get(b.url + "/api/v1/whoami",
                    headers={"Authorization": f"Bearer {second}"}).status_code == 200
    listed = http.get(a.url + "/api/v1/tokens",
                      headers={"Authorization": f"Bearer {second}"}).json()
    rows = listed if isinstance(listed, list) else listed["tokens"]
    mine = [row["id"] for row in rows if second.startswith(row["prefix"])]
    assert len(mine) == 1, rows
    revoked = http.delete(f"{a.url}/api/v1/tokens/{mine[0]}",
                          headers={"Authorization": f"Bearer {second}"})
    assert revoked.status_code == 200, revoked.text

    def token_refused() -> bool:
        """B refuses the revoked token"""
        got = http.get(b.url + "/api/v1/whoami", headers={"Authorization": f"Bearer {second}"})
        return got.status_code == 401 and "revoked" in got.json()["message"]

    timings["revoked token: refused"] = poll(token_refused)
    http.close()
    print("\n" + ", ".join(f"{what} {1000 * s:.0f} ms" for what, s in timings.items()))
    slow = {what: s for what, s in timings.items() if s >= VISIBLE_S}
    assert slow == {}, timings


# -- 3. kill -9 of one node in a storm --------------------------------------------------------


class Storm:
    """Publishes distinct small skills to one node, one after another, until stopped;
    remembers what was acknowledged and every answer that was not a 201."""

    def __init__(self, node: Node, token: str, prefix: str) -> None:
        self.node = node
        self.token = token
        self.prefix = prefix
        self.acks: list[Ack] = []
        self.odd: list[tuple[float, str, str]] = []  # (when, name, what) of answers not 201
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        with httpx.Client(timeout=30) as http:
            for i in range(1, 10_000):
                if self.stop.is_set():
                    return
                name = f"{self.prefix}-{i:04d}"
                try:
                    res = publish(http, self.node, self.token, "team", name,
                                  body=f"Storm {name}.")
                except httpx.TransportError as exc:
                    self.odd.append((time.monotonic(), name, repr(exc)))
                    time.sleep(0.05)
                    continue
                if res.status_code == 201:
                    self.acks.append(ack(self.node, res))
                else:
                    self.odd.append((time.monotonic(), name,
                                     f"{res.status_code} {res.text[:200]}"))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)


def lock_holder(conn: psycopg.Connection[Any], namespace: str) -> str | None:
    """The node (application) whose session holds the namespace's write lock, if any."""
    key = int64_key(namespace) & 0xFFFF_FFFF_FFFF_FFFF  # pg_locks shows it unsigned
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid",
        (key >> 32, key & 0xFFFF_FFFF)).fetchone()
    return None if row is None else str(row[0])


# The statements of a publish's catalogue transaction (`record_version`), after the version
# row went in and before the commit.
RECORDING = ("INSERT INTO versions %", "UPDATE skills SET latest_version %",
             "INSERT INTO skill_text %", "SELECT verdict FROM reports %", "INSERT INTO reports %",
             "INSERT INTO report_history %", "SELECT pg_notify%")


def recording(conn: psycopg.Connection[Any], node: str) -> str | None:
    """`node` if one of its sessions is inside a publish's catalogue transaction."""
    row = conn.execute(
        "SELECT application_name FROM pg_stat_activity WHERE application_name = %s "
        "AND backend_xid IS NOT NULL AND query LIKE ANY (%s)", (node, list(RECORDING))
    ).fetchone()
    return None if row is None else str(row[0])


def stop_while(node: Node, holds: Callable[[], str | None], timeout: float = 30.0) -> bool:
    """Freeze `node` (SIGSTOP) at a moment `holds()` names it, and make sure it still does
    once frozen (so it still does when killed); False if that never happened."""
    assert node.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if holds() != node.name:
            continue
        node.process.send_signal(signal.SIGSTOP)
        if holds() == node.name:
            return True
        node.process.send_signal(signal.SIGCONT)
    return False


@pytest.mark.slow
def test_kill_9_of_one_node_in_a_storm_loses_nothing(shared: Shared) -> None:
    """Node A is killed twice in a storm against both nodes: once holding the namespace's
    write lock (a git write in flight), once inside a publish's catalogue transaction
    (the version tagged in git, its row not committed). B serves throughout; A restarts."""
    a, b = shared.node("node-a"), shared.node("node-b")
    for node in (a, b):
        shared.spawn(node)
    token = shared.token("team")
    for node in (a, b):
        wait_ready(node)
    reads: list[str] = []  # B's answers to readers that were not 200
    reading = threading.Event()

    def read_b() -> None:
        with httpx.Client(timeout=30) as http:
            while not reading.is_set():
                for path in ("/api/v1/search?q=storm&mode=keyword", "/api/v1/skills",
                             "/readyz"):
                    try:
                        status = http.get(b.url + path).status_code
                    except httpx.TransportError as exc:
                        reads.append(f"{path}: {exc!r}")
                        continue
                    if status != 200:
                        reads.append(f"{path}: {status}")
                time.sleep(0.02)

    reader = threading.Thread(target=read_b, daemon=True)
    storm_b = Storm(b, token, "from-b")
    storms_a: list[Storm] = []
    figures: list[str] = []
    left: list[str] = []  # A's publish cut off in its catalogue transaction
    cut_off: list[str] = []  # A's publishes in flight when it was killed
    with psycopg.connect(shared.url_for("watcher"), autocommit=True) as watcher:
        reader.start()
        try:
            for kill, holds in (("lock", lambda: lock_holder(watcher, "team")),
                                ("catalogue", lambda: recording(watcher, a.name))):
                storm_a = Storm(a, token, f"from-a-{kill}")
                storms_a.append(storm_a)
                poll(lambda: len(storm_a.acks) >= 5, timeout=30)  # noqa: B023
                assert stop_while(a, holds), f"{a.name} was never seen holding the {kill}"
                killed = time.monotonic()
                a.kill()
                # A's sessions die with it, and its locks with them: B publishes on.
                b_acks = len(storm_b.acks)
                relock = poll(lambda: len(storm_b.acks) >= b_acks + 2,  # noqa: B023
                              timeout=15)
                gone = poll(lambda: watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (a.name,)).fetchone() == (0,), timeout=15)
                poll(lambda: bool(storm_a.odd), timeout=15)  # noqa: B023
                storm_a.finish()
                in_flight = storm_a.odd[0][1]
                cut_off.append(in_flight)
                if kill == "catalogue":  # in git, not in the catalogue: until A restarts
                    with shared.console() as console:
                        rows = console.store.catalogue.catalogue_tags()
                    assert f"{in_flight}/v0.1.0" in git_tags(shared.repos / "team.git")
                    assert ("team", in_flight, "0.1.0") not in rows
                    left.append(in_flight)
                assert all(when >= killed for when, _, _ in storm_a.odd), storm_a.odd
                shared.start(a)  # its start reconciles what the kill left; B's storm goes on
                figures.append(f"killed holding the {kill} after {len(storm_a.acks)} of its "
                               f"publishes: B published again {1000 * relock:.0f} ms later, "
                               f"A's sessions gone after {1000 * gone:.0f} ms, A ready again "
                               f"after {time.monotonic() - killed:.1f} s")
            time.sleep(0.3)
        finally:
            storm_b.finish()
            for storm in storms_a:
                storm.finish()
            reading.set()
            reader.join(30)
    acks = storm_b.acks + [x for storm in storms_a for x in storm.acks]
    recovered = [line.split(": ", 1)[-1] for line in a.log.read_text().splitlines()
                 if "recovered from an interrupted write" in line]
    print(f"\nstorm: {len(acks)} acknowledged, {len(storm_b.acks)} by B; "
          + "; ".join(figures) + f"; A's restarts: {recovered or 'nothing to repair in git'}")
    # B served throughout: every publish a 201 (or a clear 409/503), every read a 200.
    bad = [f"{name}: {what}" for _, name, what in storm_b.odd
           if not what.startswith(("409 ", "503 "))]
    assert bad == [], "\n".join(bad) + "\n" + shared.logs()
    assert reads == [], reads
    assert all(float(f.split("again ")[1].split(" ms")[0]) < 5000 for f in figures), figures
    assert lost_acks(shared, acks, [a, b]) == []
    assert stale_main(shared, acks, cut_off) == []
    # The version cut off before its row was committed is in the catalogue again.
    with shared.console() as console:
        rows = console.store.catalogue.catalogue_tags()
    assert [("team", name, "0.1.0") in rows for name in left] == [True]
    for node in (a, b):
        code, report = fsck(node.home, shared)
        assert code == 0, report
    # A publishes again, to the namespace it was writing when it died.
    with httpx.Client(timeout=30) as http:
        again = publish(http, a, token, "team", "after-restart")
        assert again.status_code == 201, again.text


def test_an_older_version_never_follows_a_newer_one_into_git(tmp_path: Path) -> None:
    """Two nodes' stores on one repos folder: each checked the catalogue before the write
    and found neither version, so the check that counts is the one under the lock."""
    repos = tmp_path / "repos"
    first, second = GitStore(repos), GitStore(repos)
    newer = first.publish("team", "multi", "2.0.1", Bundle({"SKILL.md": skill_md("multi")}),
                          message="x")
    with pytest.raises(VersionExists, match="multi 2.0.0 is older than the latest version "
                                            "2.0.1") as refused:
        second.publish("team", "multi", "2.0.0",
                       Bundle({"SKILL.md": skill_md("multi", body="older")}), message="x")
    assert refused.value.extra["latest"] == "2.0.1"
    with pytest.raises(VersionExists, match="equals the existing version 2.0.1"):
        second.publish("team", "multi", "2.0.1+build.2",
                       Bundle({"SKILL.md": skill_md("multi", body="older")}), message="x")
    assert second.head("team") == newer.commit_sha
    assert second.publish("team", "multi", "2.0.2-beta.1", Bundle(
        {"SKILL.md": skill_md("multi", body="beta")}), message="x").commit_sha != newer.commit_sha
    assert second.publish("team", "multi-two", "1.0.0", Bundle(
        {"SKILL.md": skill_md("multi-two")}), message="x")  # another skill: its own versions


@pytest.mark.slow
def test_a_version_cut_off_on_a_dead_node_can_be_published_on_another(shared: Shared) -> None:
    """Node A died between its tag and main (its client got no answer) and is not coming
    back; the client sends the same publish to node B."""
    b = shared.start(shared.node("node-b"))
    token = shared.token("team")
    with httpx.Client(timeout=30) as http:
        assert publish(http, b, token, "team", "first").status_code == 201
        with shared.console() as dead:  # what node A's publish left: a tag ahead of main
            base = dead.git.head("team")
            dead.git.publish("team", "cut-off", "1.0.0",
                             Bundle({"SKILL.md": skill_md("cut-off")}), message="x")
            repo = DulwichRepo(str(shared.repos / "team.git"))
            try:
                assert base is not None and repo.refs.set_if_equals(
                    MAIN, repo.refs[MAIN], ObjectID(base.encode()))
            finally:
                repo.close()
        retried = publish(http, b, token, "team", "cut-off", "1.0.0")
        assert retried.status_code in (200, 201), retried.text
        assert http.get(b.url + "/api/v1/skills/team/cut-off/versions/1.0.0").status_code == 200


# -- 4. start-up races ------------------------------------------------------------------------


@pytest.fixture
def empty_database(pg: Databases) -> Iterator[str]:
    """A new database with nothing in it (not the migrated template's copy)."""
    name = f"t_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(pg.admin_url, name)
    finally:
        with psycopg.connect(pg.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


@pytest.mark.slow
def test_three_nodes_started_at_once_migrate_an_empty_database_once(
        empty_database: str, tmp_path: Path) -> None:
    shared = Shared(empty_database, tmp_path / "repos", tmp_path)
    nodes = [shared.node(f"node-{i}") for i in range(3)]
    try:
        for node in nodes:
            shared.spawn(node)
        with ThreadPoolExecutor(3) as pool:
            took = list(pool.map(wait_ready, nodes))
        with psycopg.connect(empty_database, autocommit=True) as conn:
            applied = [str(row[0]) for row in conn.execute(
                "SELECT name FROM schema_migrations ORDER BY name")]
        assert applied == sorted(name for name, _ in MIGRATIONS)
        for node in nodes:
            assert "Traceback" not in node.log.read_text(), node.log_tail()
        # All three serve the one catalogue.
        token = shared.token("team")
        with httpx.Client(timeout=30) as http:
            for i, node in enumerate(nodes):
                res = publish(http, node, token, "team", f"skill-{i}")
                assert res.status_code == 201, res.text
            for node in nodes:
                listed = http.get(node.url + "/api/v1/skills").json()
                names = sorted(s["name"] for s in listed.get("skills", listed.get("results",
                                                                                   [])))
                assert names == ["skill-0", "skill-1", "skill-2"], listed
        print(f"\nthree nodes ready after {', '.join(f'{s:.1f}' for s in took)} s")
    finally:
        for node in nodes:
            node.kill()
