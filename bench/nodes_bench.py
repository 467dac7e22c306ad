"""Several nodes on PostgreSQL against one on SQLite: publishes, outcome reports, keyword
search at 10,000 skills and archive downloads, through the HTTP API of real servers.

For each setup of `--setups` (default `sqlite:1,postgresql:1,postgresql:2,postgresql:4`):

1. The nodes. `sqlite:1` is one `skills-hub serve` on a fresh home (index.db, local repos).
   `postgresql:N` is N `skills-hub serve` processes, each with a home of its own, sharing a
   fresh database of the bench's own PostgreSQL (tests/pgcluster.py's `Cluster` with
   `durable=True`: fsync, synchronous_commit and full_page_writes on, as in production) and
   one repos folder (SKILLS_HUB_REPOS_DIR), on ports of their own. Every node runs with
   semantic search off, the publish checks' sandbox off, no seed, and the outcome rate
   limit lifted. Tokens are made in-process beforehand (`Registry.create_token`).
2. Publishes: `--clients` threads (each its own keep-alive `httpx.Client`, client i talking
   to node i mod N, all starting at a barrier) share `--publishes` POSTs of distinct small
   skills, client i into namespace `bench-i` (a namespace is written under one lock, so
   namespaces of their own let the nodes publish side by side). publishes/s = 201s over the
   wall time from the barrier to the last answer; p50/p95 of the request's wall time.
3. Outcome reports: the same clients share `--batches` POSTs of 100 reports each (80 %
   success, 20 % failure) spread over the published skills, one reporter token.
   reports/s = 100 x recorded batches over the wall time.
4. Keyword search at `--skills` skills: the catalogue is loaded through the storage
   interfaces (`record_versions`, batches of 1,000, search_bench.py's synthetic skills:
   catalogue rows without git), after the nodes started (a start reconciles the catalogue
   with git and would drop them). Then `--queries` never-asked texts (search_bench's
   natural-language, short and name queries), `mode=keyword` (on PostgreSQL after an
   `ANALYZE`, as autovacuum would have run by then), first one client alone
   (latency), then the clients together spread over the nodes (requests/s and latency).
5. Archive downloads: the clients share `--downloads` GETs of `archive.tar.gz` of the
   published versions (seeded random choice), spread over the nodes; each node builds an
   archive from git on its first request and serves it from its caches after.

Printed: one row per setup and the ratios against `sqlite:1`. The clients run in this
process on the same cores as the servers and PostgreSQL: on a 2-core machine N nodes share
two cores, so the figures say what more processes cost there, not what N machines would
do. Nothing is asserted. Loopback only; every wait has a time limit.

    .venv/bin/python bench/nodes_bench.py [--quick] [--setups sqlite:1,postgresql:2]
        [--clients 8] [--publishes 240] [--batches 200] [--skills 10000] [--queries 300]
        [--downloads 2000] [--json PATH] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_bench as sb  # noqa: E402  (inserts the checkout's root on sys.path too)

from skills_hub.config import Settings  # noqa: E402
from skills_hub.services import Registry  # noqa: E402
from tests.live import free_port  # noqa: E402
from tests.pgcluster import Cluster, with_database  # noqa: E402

BATCH = 100  # outcome reports per request
START_S = 120.0
REQUEST_S = 60.0
SETUPS = "sqlite:1,postgresql:1,postgresql:2,postgresql:4"


# -- the nodes --------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    home: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Setup:
    """One configuration under test: its backend, nodes and what they share."""

    backend: str  # sqlite or postgresql
    count: int
    root: Path
    database_url: str | None = None
    nodes: list[Node] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.count}"

    @property
    def repos(self) -> Path | None:
        return self.root / "repos" if self.database_url else None

    def settings(self, home: Path) -> Settings:
        return Settings(home=home, seed=False, semantic="off", sandbox="off",
                        database_url=self.database_url, repos=self.repos)

    def console_home(self) -> Path:
        """In-process work (tokens, loading the catalogue): on SQLite the node's own home,
        whose index.db is the catalogue; on PostgreSQL a home of its own."""
        return self.root / ("node-0" if self.database_url is None else "console")

    @contextmanager
    def console(self) -> Iterator[Registry]:
        registry = Registry(self.settings(self.console_home()))
        try:
            yield registry
        finally:
            registry.close()

    def env(self, node: Node) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SKILLS_HUB_", "GIT_"))}
        env.update({"SKILLS_HUB_HOME": str(node.home), "SKILLS_HUB_SEMANTIC": "off",
                    "SKILLS_HUB_NO_SEED": "1", "SKILLS_HUB_SANDBOX": "off",
                    "SKILLS_HUB_OUTCOME_RATE": "1e9", "SKILLS_HUB_OUTCOME_BURST": "1e9",
                    "SKILLS_HUB_LOG_FORMAT": "text", "GIT_CONFIG_NOSYSTEM": "1",
                    "HOME": str(self.root)})
        if self.database_url is not None:
            env["SKILLS_HUB_DATABASE_URL"] = f"{self.database_url}?application_name={node.name}"
            env["SKILLS_HUB_REPOS_DIR"] = str(self.repos)
        return env

    def start(self) -> float:
        """Start the nodes at once; seconds until every one answers /readyz."""
        t0 = time.perf_counter()
        for i in range(self.count):
            node = Node(f"node-{i}", self.root / f"node-{i}", free_port(),
                        self.root / f"node-{i}.log")
            with node.log.open("ab") as log:
                node.process = subprocess.Popen(
                    [sys.executable, "-m", "skills_hub.cli", "serve", "--port", str(node.port)],
                    env=self.env(node), stdout=log, stderr=subprocess.STDOUT)
            self.nodes.append(node)
        for node in self.nodes:
            wait_ready(node)
        return time.perf_counter() - t0

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(30)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(10)

    def server_cpu(self) -> float:
        """CPU seconds the nodes used so far."""
        return sum(proc_cpu(n.process.pid) for n in self.nodes
                   if n.process is not None and n.process.poll() is None)


def wait_ready(node: Node) -> None:
    assert node.process is not None
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise RuntimeError(f"{node.name} exited while starting:\n{tail(node.log)}")
        try:
            if httpx.get(node.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{node.name} was not ready within {START_S:.0f} s:\n{tail(node.log)}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


POSTMASTER: list[int] = []  # the pid of the bench's PostgreSQL server, once started


def postgres_cpu() -> float:
    """CPU seconds of the bench's PostgreSQL: its postmaster and the processes it forked
    (backends, writers; a backend that ended meanwhile takes its seconds with it)."""
    if not POSTMASTER:
        return 0.0
    total = proc_cpu(POSTMASTER[0])
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == POSTMASTER[0]:
            total += proc_cpu(int(pid))
    return total


# -- load -------------------------------------------------------------------------------------


@dataclass
class Phase:
    """What the clients of one phase saw."""

    ok: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0

    def figures(self, unit: int = 1) -> dict[str, Any]:
        return {"ok": self.ok, "errors": len(self.errors), "error_sample": self.errors[:3],
                "per_s": unit * self.ok / self.wall_s if self.wall_s else float("nan"),
                "p50_ms": sb.pct(self.latencies_ms, 50), "p95_ms": sb.pct(self.latencies_ms, 95),
                "wall_s": self.wall_s, "server_cpu_s": self.server_cpu_s,
                "postgres_cpu_s": self.postgres_cpu_s}


def run_clients(setup: Setup, clients: int, jobs: Sequence[Callable[[httpx.Client, Node], bool]],
                *, spread: bool = True) -> Phase:
    """Client i takes jobs i, i+clients, ... against node i mod N (node 0 without `spread`),
    every client connected first and started at a barrier; each job returns success."""
    phase = Phase()
    guard = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        node = setup.nodes[i % len(setup.nodes) if spread else 0]
        with httpx.Client(timeout=REQUEST_S) as http:
            http.get(node.url + "/livez")  # connected before the barrier
            barrier.wait()
            for job in jobs[i::clients]:
                t0 = time.perf_counter()
                try:
                    ok, why = job(http, node), ""
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    ok, why = False, repr(exc)
                with guard:
                    phase.latencies_ms.append(1000 * (time.perf_counter() - t0))
                    if ok:
                        phase.ok += 1
                    else:
                        phase.errors.append(why or getattr(job, "why", "failed"))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    cpu0, pg0, t0 = setup.server_cpu(), postgres_cpu(), time.perf_counter()
    for thread in threads:
        thread.join(REQUEST_S * max(1, len(jobs)))
    phase.wall_s = time.perf_counter() - t0
    phase.server_cpu_s, phase.postgres_cpu_s = setup.server_cpu() - cpu0, postgres_cpu() - pg0
    return phase


def skill_md(name: str, i: int) -> bytes:
    steps = "\n".join(f"{k}. Step {k} of {name}: check the input, then write the result."
                      for k in range(1, 12))
    return (f"---\nname: {name}\ndescription: Bench skill number {i}, which formats reports "
            f"and checks their totals.\nlicense: Apache-2.0\n---\n# {name}\n\n{steps}\n"
            ).encode()


@dataclass
class Published:
    namespace: str
    name: str
    version: str


def publish_jobs(count: int, tokens: Sequence[str], published: list[Published]
                 ) -> list[Callable[[httpx.Client, Node], bool]]:
    """Job i publishes skill-i into namespace bench-(i mod clients) with its token: as
    `run_clients` deals the jobs, each client writes a namespace of its own."""
    guard = threading.Lock()

    def job(i: int) -> Callable[[httpx.Client, Node], bool]:
        namespace, name = f"bench-{i % len(tokens)}", f"skill-{i:05d}"
        token = tokens[i % len(tokens)]

        def run(http: httpx.Client, node: Node) -> bool:
            res = http.post(f"{node.url}/api/v1/namespaces/{namespace}/skills",
                            headers={"Authorization": f"Bearer {token}"},
                            files=[("files", ("SKILL.md", skill_md(name, i)))])
            if res.status_code != 201:
                raise ValueError(f"{res.status_code} {res.text[:200]}")
            with guard:
                published.append(Published(namespace, name, res.json()["version"]))
            return True
        return run
    return [job(i) for i in range(count)]


def outcome_jobs(count: int, token: str, published: Sequence[Published]
                 ) -> list[Callable[[httpx.Client, Node], bool]]:
    rng = random.Random(7)
    at = datetime.now(UTC).isoformat()

    def job(target: Published) -> Callable[[httpx.Client, Node], bool]:
        reports = [{"id": uuid.uuid4().hex, "version": target.version,
                    "outcome": "success" if rng.random() < 0.8 else "failure",
                    "client": {"id": f"agent-{rng.randrange(50)}"}, "at": at}
                   for _ in range(BATCH)]
        for report in reports:
            if report["outcome"] == "failure":
                report["failure_kind"] = "wrong_result"

        def run(http: httpx.Client, node: Node) -> bool:
            res = http.post(f"{node.url}/api/v1/skills/{target.namespace}/{target.name}/"
                            "outcomes", headers={"Authorization": f"Bearer {token}"},
                            json={"outcomes": reports})
            if res.status_code != 200 or res.json()["recorded"] != BATCH:
                raise ValueError(f"{res.status_code} {res.text[:200]}")
            return True
        return run
    return [job(published[i % len(published)]) for i in range(count)]


def search_jobs(queries: Sequence[sb.Query]) -> list[Callable[[httpx.Client, Node], bool]]:
    def job(text: str) -> Callable[[httpx.Client, Node], bool]:
        def run(http: httpx.Client, node: Node) -> bool:
            res = http.get(node.url + "/api/v1/search", params={"q": text, "mode": "keyword",
                                                                "limit": 10})
            if res.status_code != 200 or res.json()["mode"] != "keyword":
                raise ValueError(f"{res.status_code} {res.text[:200]}")
            return True
        return run
    return [job(q.text) for q in queries]


def download_jobs(count: int, published: Sequence[Published]
                  ) -> list[Callable[[httpx.Client, Node], bool]]:
    rng = random.Random(11)

    def job(target: Published) -> Callable[[httpx.Client, Node], bool]:
        def run(http: httpx.Client, node: Node) -> bool:
            res = http.get(f"{node.url}/api/v1/skills/{target.namespace}/{target.name}/"
                           f"versions/{target.version}/archive.tar.gz")
            if res.status_code != 200 or not res.content:
                raise ValueError(f"{res.status_code} {res.text[:200]}")
            return True
        return run
    return [job(rng.choice(published)) for _ in range(count)]


def load_catalogue(setup: Setup, skills: int) -> tuple[float, list[str]]:
    """`skills` synthetic catalogue rows through `record_versions`; (seconds, names)."""
    vocab = sb.Vocabulary.build()
    taken: set[str] = set()
    now = datetime.now(UTC).replace(microsecond=0)
    names: list[str] = []
    spent = 0.0
    with setup.console() as registry:
        for start in range(0, skills, sb.BATCH):
            rows = []
            for i in range(start, min(skills, start + sb.BATCH)):
                skill = sb.make_skill(vocab, i, taken, now)
                names.append(skill.name)
                rows.append(sb.new_version(vocab, registry, skill, i))
            t0 = time.perf_counter()
            registry.store.catalogue.record_versions(rows)
            spent += time.perf_counter() - t0
    if setup.database_url is not None:
        # The planner's statistics, as autovacuum would have them by the time a catalogue
        # had grown this large (without them it joins namespaces first: ~2x slower).
        import psycopg

        with psycopg.connect(setup.database_url, autocommit=True) as conn:
            conn.execute("ANALYZE")
    return spent, names


# -- one setup --------------------------------------------------------------------------------


def run_setup(setup: Setup, args: argparse.Namespace, queries: Sequence[sb.Query]
              ) -> dict[str, Any]:
    out: dict[str, Any] = {"setup": setup.label}
    with setup.console() as console:
        console.store.db.migrate()
        tokens = [console.create_token(f"bench-{i}") for i in range(args.clients)]
        reporter = console.create_token("reporters")
    out["start_s"] = setup.start()
    sb.log(f"  {setup.label}: {setup.count} node(s) ready in {out['start_s']:.1f} s")
    published: list[Published] = []
    jobs = publish_jobs(args.publishes, tokens, published)
    out["publish"] = run_clients(setup, args.clients, jobs).figures()
    sb.log(f"  {setup.label}: {out['publish']['per_s']:.1f} publishes/s")
    if not published:
        raise RuntimeError(f"no publish succeeded: {out['publish']['error_sample']}")
    out["outcomes"] = run_clients(setup, args.clients,
                                  outcome_jobs(args.batches, reporter, published)
                                  ).figures(unit=BATCH)
    sb.log(f"  {setup.label}: {out['outcomes']['per_s']:.0f} outcome reports/s")
    out["load_s"], names = load_catalogue(setup, args.skills)
    sb.log(f"  {setup.label}: {args.skills} catalogue rows in {out['load_s']:.1f} s")
    time.sleep(0.5)  # the nodes hear of the rows (NOTIFY) before the first query
    warm = search_jobs([sb.Query("short", "report")] * (5 * setup.count))
    run_clients(setup, setup.count, warm)
    half = len(queries) // 2
    out["search_1"] = run_clients(setup, 1, search_jobs(queries[:half])).figures()
    out["search_n"] = run_clients(setup, args.clients, search_jobs(queries[half:])).figures()
    sb.log(f"  {setup.label}: search p50 {out['search_1']['p50_ms']:.1f} ms alone, "
           f"{out['search_n']['per_s']:.0f}/s with {args.clients} clients")
    out["downloads"] = run_clients(setup, args.clients,
                                   download_jobs(args.downloads, published)).figures()
    sb.log(f"  {setup.label}: {out['downloads']['per_s']:.0f} archive downloads/s")
    out["skills"] = len(names) + len(published)
    return out


# -- the report -------------------------------------------------------------------------------


COLUMNS = (
    ("publishes/s", lambda r: r["publish"]["per_s"], "{:8.1f}"),
    ("publish p50", lambda r: r["publish"]["p50_ms"], "{:8.0f}"),
    ("reports/s", lambda r: r["outcomes"]["per_s"], "{:8.0f}"),
    ("batch p50", lambda r: r["outcomes"]["p50_ms"], "{:8.0f}"),
    ("search p50", lambda r: r["search_1"]["p50_ms"], "{:8.1f}"),
    ("search p95", lambda r: r["search_1"]["p95_ms"], "{:8.1f}"),
    ("search/s", lambda r: r["search_n"]["per_s"], "{:8.0f}"),
    ("C: p50", lambda r: r["search_n"]["p50_ms"], "{:8.1f}"),
    ("C: p95", lambda r: r["search_n"]["p95_ms"], "{:8.1f}"),
    ("archives/s", lambda r: r["downloads"]["per_s"], "{:8.0f}"),
)


def render(results: list[dict[str, Any]], params: dict[str, Any]) -> str:
    lines = [f"nodes_bench: {params['clients']} clients; {params['publishes']} publishes, "
             f"{params['batches']} batches of {BATCH} reports, keyword search at "
             f"{params['skills']:,} skills ({params['queries']} queries: half one client "
             f"alone, half the {params['clients']} clients), {params['downloads']} archive "
             f"downloads; {params['machine']}; load {params['load_start']} -> "
             f"{params['load_end']}",
             "latencies in ms; 'C:' = with the clients together"]
    head = f"{'setup':<14}" + "".join(f"{name:>12}" for name, _, _ in COLUMNS)
    lines += [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r['setup']:<14}" + "".join(
            f"{fmt.format(get(r)):>12}" for _, get, fmt in COLUMNS))
    base = next((r for r in results if r["setup"] == "sqlite:1"), None)
    if base is not None:
        lines += ["", "ratios against sqlite:1 (above 1: more per second, or slower for "
                      "latencies)", head, "-" * len(head)]
        for r in results:
            lines.append(f"{r['setup']:<14}" + "".join(
                f"{get(r) / get(base) if get(base) else float('nan'):>11.2f}x"
                for _, get, _ in COLUMNS))
    lines += ["", "CPU seconds during each phase (the nodes / PostgreSQL):"]
    for r in results:
        lines.append(f"  {r['setup']:<14}" + "  ".join(
            f"{key} {r[key]['server_cpu_s']:.1f}/{r[key]['postgres_cpu_s']:.1f}"
            for key in ("publish", "outcomes", "search_n", "downloads"))
            + f"  (start {r['start_s']:.1f} s, {r['skills']:,} rows loaded in "
              f"{r['load_s']:.1f} s)")
    errors = [(r["setup"], key, r[key]) for r in results
              for key in ("publish", "outcomes", "search_1", "search_n", "downloads")
              if r[key]["errors"]]
    for setup, key, fig in errors:
        lines.append(f"  ERRORS {setup} {key}: {fig['errors']} {fig['error_sample']}")
    return "\n".join(lines)


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu})"


def parse_setups(text: str) -> list[tuple[str, int]]:
    out = []
    for part in text.split(","):
        backend, _, count = part.strip().partition(":")
        if backend not in ("sqlite", "postgresql") or not count.isdigit() or int(count) < 1 \
                or (backend == "sqlite" and int(count) != 1):
            raise argparse.ArgumentTypeError(f"{part!r}: sqlite:1 or postgresql:N")
        out.append((backend, int(count)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setups", type=parse_setups, default=parse_setups(SETUPS),
                        help=f"backend:nodes, comma-separated (default {SETUPS})")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--publishes", type=int, default=240, help="publishes (240)")
    parser.add_argument("--batches", type=int, default=200,
                        help=f"outcome batches of {BATCH} (200)")
    parser.add_argument("--skills", type=int, default=10_000,
                        help="catalogue rows for the search (10000)")
    parser.add_argument("--queries", type=int, default=400, help="search queries (400)")
    parser.add_argument("--downloads", type=int, default=2_000, help="archive GETs (2000)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 48 publishes, 40 batches, 2,000 skills, 120 queries, "
                             "400 downloads")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.publishes, args.batches, args.skills = 48, 40, 2_000
        args.queries, args.downloads = 120, 400
    root = Path(tempfile.mkdtemp(prefix="skills-hub-nodes-bench-"))
    params = {key: getattr(args, key) for key in ("clients", "publishes", "batches", "skills",
                                                  "queries", "downloads", "quick")}
    params.update(machine=machine(), load_start=tuple(round(x, 2) for x in os.getloadavg()),
                  setups=[f"{b}:{n}" for b, n in args.setups])
    vocab = sb.Vocabulary.build()
    rng = random.Random(sb.SEED)
    asked: set[str] = set()
    cluster = Cluster(durable=True) if any(b == "postgresql" for b, _ in args.setups) else None
    results: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        admin = cluster.start() if cluster is not None else None
        if cluster is not None:
            sb.log(f"PostgreSQL (durable: fsync on) on port {cluster.port}")
            pid_file = cluster.data / "postmaster.pid"
            POSTMASTER.append(int(pid_file.read_text().split()[0]))
        for k, (backend, count) in enumerate(args.setups):
            setup = Setup(backend, count, root / f"{k}-{backend}-{count}")
            setup.root.mkdir(parents=True)
            if backend == "postgresql":
                assert admin is not None
                setup.database_url = create_database(admin, f"bench_{k}")
            natural = args.queries * 3 // 4
            queries = sb.make_queries(vocab, rng, natural, args.queries - natural - 10,
                                      [], asked)
            queries += [sb.Query("name", f"skill-{i:05d}") for i in range(10)]
            try:
                results.append(run_setup(setup, args, queries))
            finally:
                setup.stop()
    finally:
        if cluster is not None:
            cluster.stop()
        if args.keep:
            sb.log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    params.update(load_end=tuple(round(x, 2) for x in os.getloadavg()),
                  wall_s=round(time.perf_counter() - t0, 1))
    print(render(results, params))
    print(f"wall time {params['wall_s']} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"params": params, "results": results}, indent=2,
                                        default=str))
    return 0


def create_database(admin_url: str, name: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


if __name__ == "__main__":
    sys.exit(main())
