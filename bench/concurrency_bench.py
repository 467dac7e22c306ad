"""Search under concurrent clients against a real server, and the server's start-up.

1. The home. N synthetic skills from search_bench.py's generator (same vocabulary, names,
   descriptions, bodies and tags), published in-process with `Registry.publish` (checks'
   sandbox off, semantic off while publishing), then embedded in batches by a semantic
   registry (`SearchEngine.embed_pending`, what the server's worker runs) so the server
   starts with every vector stored. `--home DIR` keeps the home and reuses it next time
   (building 1,000 skills takes a few minutes on 2 cores).
2. Load. A real `skills-hub serve` (tests/live.py `start_server`, semantic on), once its
   model is loaded and every skill is embedded. For each mode (keyword, hybrid) and each
   client count (1, 4, 8): that many threads, each with its own keep-alive `httpx.Client`,
   connect, meet at a barrier, then share `--requests` GETs of
   `/api/v1/search?q=...&mode=MODE`. Every query text is asked once in the server's life
   (search_bench.make_queries with one `asked` set), so the query-embedding LRU cache never
   answers and every hybrid request encodes its query. Printed per cell: requests/s (all
   requests over the wall time from the barrier to the last answer), p50/p99 latency
   (nearest rank), the server's CPU seconds per request (utime+stime from /proc/PID/stat
   before and after) and the threads of the server that used most of that CPU
   (/proc/PID/task/*/stat, by thread name: a spinning native pool shows up here), and the
   load average. Every answer must be 200 and served by the mode asked for.
3. `--startup` (K runs, default 3): spawn the server on the same home and poll every 20 ms:
   time to the first 200 of /api/v1/health, to the first keyword answer, and to the first
   answer served in hybrid mode (the model loads in the background).

The clients run in this process on the same 2 cores as the server: requests/s is a lower
bound of what the server alone could do. Nothing is asserted; aims (issue 15) are marked
met/MISSED: hybrid with 8 clients >= 1.6x one client's requests/s and p50 < 100 ms; keyword
with 8 clients p50 < 20 ms; first keyword answer < 1.5 s, first hybrid answer < 4 s.

    .venv/bin/python bench/concurrency_bench.py [--skills 1000] [--requests 240]
        [--clients 1,4,8] [--modes keyword,hybrid] [--home DIR] [--startup [K]]
        [--no-load] [--env NAME=VALUE ...] [--json PATH]

`--env NAME=VALUE` (repeatable) is set in the server's environment: how the thread-pool
settings were compared (e.g. `--env OMP_NUM_THREADS=2`).
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
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_bench as sb  # noqa: E402  (inserts the checkout's root on sys.path too)

from skills_hub.access.principal import OPERATOR  # noqa: E402
from skills_hub.config import Settings  # noqa: E402
from skills_hub.services import Registry  # noqa: E402
from skills_hub.skill.bundle import from_files  # noqa: E402
from tests.live import Server, free_port  # noqa: E402

AIM_HYBRID_SCALE = 1.6
AIM_HYBRID_P50_MS = 100.0
AIM_KEYWORD_P50_MS = 20.0
AIM_FIRST_KEYWORD_S = 1.5
AIM_FIRST_HYBRID_S = 4.0
READY_TIMEOUT_S = 600
SEARCH = "/api/v1/search"


# -- the home --------------------------------------------------------------------------------

def skill_md(skill: sb.Skill) -> bytes:
    description = skill.description.replace('"', "'")
    return (f'---\nname: {skill.name}\ndescription: "{description}"\n'
            f'metadata:\n  tags: "{skill.tags}"\n---\n\n{skill.body}').encode()


def build_home(home: Path, skills: int) -> int:
    """Publish skills until `home` holds `skills`, then embed them all; returns the count."""
    settings = Settings(home=home, seed=False, sandbox="off", semantic="off")
    registry = Registry(settings)
    registry.start()
    try:
        have = registry.store.catalogue.count_skills(readable=frozenset(), namespace=None)
        if have < skills:
            vocab = sb.Vocabulary.build()
            taken: set[str] = set()
            now = datetime.now(UTC).replace(microsecond=0)
            t0 = time.perf_counter()
            for i in range(skills):
                skill = sb.make_skill(vocab, i, taken, now)
                if i < have:
                    continue
                bundle = from_files([("SKILL.md", skill_md(skill), False)])
                registry.publish(skill.namespace, bundle, principal=OPERATOR)
                if (i + 1) % 250 == 0:
                    sb.log(f"    published {i + 1}/{skills} "
                           f"({time.perf_counter() - t0:.0f} s)")
    finally:
        registry.close()
    registry = Registry(Settings(home=home, seed=False, sandbox="off"))
    registry.start()
    try:
        if not registry.embedder.wait(READY_TIMEOUT_S):
            raise RuntimeError(f"the embedding model did not load: {registry.embedder.error}")
        sb.log("    embedding what is not embedded yet ...")
        registry.search_engine.wait_indexed(None)
        registry.search_engine.embed_pending()
        return len(registry.search_engine.vectors)
    finally:
        registry.close()


# -- the server ------------------------------------------------------------------------------

def proc_cpu(pid: int, task: int | None = None) -> float:
    path = f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat"
    with open(path) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by thread ("name/tid"; Python threads are all named python, the main
    one has tid == pid; torch's and OpenBLAS's native workers are threads too)."""
    out: Counter[str] = Counter()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
            label = "main" if int(task) == pid else f"{name}/{task}"
            out[label] += proc_cpu(pid, int(task))
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return dict(out)


def search(client: httpx.Client, query: str, mode: str) -> dict[str, Any]:
    response = client.get(SEARCH, params={"q": query, "mode": mode})
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code} for {query!r}: {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body


def wait_hybrid(server: Server, queries: list[str]) -> None:
    """Until a search is served in hybrid mode and the skills are all embedded."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while time.monotonic() < deadline:
            if search(client, queries.pop(), "hybrid")["mode"] == "hybrid":
                return
            time.sleep(0.2)
    raise RuntimeError("the server never answered in hybrid mode")


def spawn(home: Path, env: dict[str, str], src: Path | None = None) -> Server:
    """`skills-hub serve` on `home` (as tests/live.py's start_server, with `env` added and
    the server's stderr in HOME/../serve-PORT.log), from `src` (a folder holding a
    `skills_hub` package: the reference server) or this checkout; once it answers."""
    port = free_port()
    full_env = {key: value for key, value in os.environ.items()
                if not key.startswith(("SKILLS_HUB_", "GIT_"))}
    full_env.update(env, SKILLS_HUB_HOME=str(home), SKILLS_HUB_NO_SEED="1",
                    SKILLS_HUB_SEMANTIC="auto")
    log_path = home.parent / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "skills_hub.cli", "serve", "--port", str(port)],
            env=full_env, cwd=src or sb.ROOT, stdout=subprocess.DEVNULL, stderr=log)
    server = Server(f"http://127.0.0.1:{port}", home, process)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(server.url + "/api/v1/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the server did not start; see {log_path}")


# -- load ------------------------------------------------------------------------------------

def run_cell(server: Server, mode: str, clients: int, queries: list[str]) -> dict[str, Any]:
    """`clients` threads share `queries` (each asked once); figures of the whole cell."""
    pid = server.process.pid
    barrier = threading.Barrier(clients + 1)
    lock = threading.Lock()
    todo = list(queries)
    times: list[float] = []
    errors: list[str] = []
    wrong_mode = 0

    def worker() -> None:
        nonlocal wrong_mode
        with httpx.Client(base_url=server.url, timeout=60) as client:
            client.get("/api/v1/health")  # connect before the barrier
            barrier.wait()
            while True:
                with lock:
                    if not todo:
                        return
                    query = todo.pop()
                t0 = time.perf_counter()
                try:
                    body = search(client, query, mode)
                except (RuntimeError, httpx.HTTPError) as exc:
                    with lock:
                        errors.append(str(exc))
                    continue
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    times.append(elapsed)
                    wrong_mode += body["mode"] != mode

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    cpu0, tasks0, load0 = proc_cpu(pid), thread_cpu(pid), sb.loadavg()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    cpu1, tasks1, load1 = proc_cpu(pid), thread_cpu(pid), sb.loadavg()
    by_thread = {name: tasks1[name] - tasks0.get(name, 0.0) for name in tasks1}
    top = sorted(by_thread.items(), key=lambda kv: -kv[1])[:3]
    n = len(times)
    return {"mode": mode, "clients": clients, "requests": n, "errors": len(errors),
            "error_sample": errors[:3], "wrong_mode": wrong_mode, "wall_s": wall,
            "rps": n / wall if wall else float("nan"), "p50": sb.pct(times, 50),
            "p99": sb.pct(times, 99), "cpu_ms_per_request": (cpu1 - cpu0) * 1000 / max(n, 1),
            "server_cores": (cpu1 - cpu0) / wall if wall else float("nan"),
            "top_threads": [(name, round(sec, 2)) for name, sec in top],
            "load_before": load0[0], "load_after": load1[0]}


def query_texts(rng: random.Random, vocab: sb.Vocabulary, count: int,
                asked: set[str]) -> list[str]:
    natural = count * 3 // 4
    found = sb.make_queries(vocab, rng, natural, count - natural, [], asked)
    return [q.text for q in found]


def run_load(servers: dict[str, Server], modes: list[str], clients: list[int], requests: int,
             warmup: int) -> list[dict[str, Any]]:
    """Every cell on every server, one server after the other (the same load for each)."""
    vocab = sb.Vocabulary.build()
    rng = random.Random(sb.SEED + 15)
    asked: set[str] = set()
    for server in servers.values():
        wait_hybrid(server, query_texts(rng, vocab, 200, asked))
    cells = []
    for mode in modes:
        for count in clients:
            for label, server in servers.items():
                run_cell(server, mode, count, query_texts(rng, vocab, warmup, asked))
                cell = run_cell(server, mode, count, query_texts(rng, vocab, requests, asked))
                cell["server"] = label
                cells.append(cell)
                print(render_cell(cell), file=sys.stderr, flush=True)
    return cells


# -- start-up --------------------------------------------------------------------------------

def startup_once(home: Path, env: dict[str, str], src: Path | None) -> dict[str, float]:
    """Seconds from spawn to the first health 200, keyword answer and hybrid answer, and
    the server's CPU seconds by then (on a busy machine the wall times stretch, the CPU
    seconds hardly)."""
    port = free_port()
    full_env = {**os.environ, **env, "SKILLS_HUB_HOME": str(home), "SKILLS_HUB_NO_SEED": "1",
                "SKILLS_HUB_SEMANTIC": "auto"}
    t0 = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "skills_hub.cli", "serve", "--port", str(port)],
        env=full_env, cwd=src or sb.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict[str, float] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = t0 + READY_TIMEOUT_S
            while time.monotonic() < deadline and "hybrid" not in out:
                try:
                    if "health" not in out:
                        if client.get("/api/v1/health").status_code == 200:
                            out["health"] = time.monotonic() - t0
                            continue
                    else:
                        mode = "keyword" if "keyword" not in out else "hybrid"
                        body = search(client, f"convert csv invoices {len(out)}", mode)
                        if body["mode"] == mode:
                            out[mode] = time.monotonic() - t0
                            out[f"{mode}_cpu"] = proc_cpu(process.pid)
                            continue
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
    finally:
        process.terminate()
        process.wait(30)
    return out


# -- output ----------------------------------------------------------------------------------

def render_cell(c: dict[str, Any]) -> str:
    threads = ", ".join(f"{name} {sec:.1f}s" for name, sec in c["top_threads"])
    bad = f"  {c['errors']} errors {c['error_sample']}" if c["errors"] else ""
    bad += f"  {c['wrong_mode']} in another mode" if c["wrong_mode"] else ""
    return (f"{c.get('server', ''):<4}{c['mode']:<8} {c['clients']:>2} clients  "
            f"{c['rps']:7.1f} req/s  "
            f"p50 {c['p50']:7.1f} ms  p99 {c['p99']:7.1f} ms  "
            f"server {c['cpu_ms_per_request']:6.1f} ms CPU/req on {c['server_cores']:.2f} cores"
            f"  load {c['load_before']:.2f}->{c['load_after']:.2f}  [{threads}]{bad}")


def verdicts(cells: list[dict[str, Any]], starts: list[dict[str, Any]]) -> list[str]:
    out = []
    by = {(c["mode"], c["clients"]): c for c in cells if c.get("server") == "new"}
    one, eight = by.get(("hybrid", 1)), by.get(("hybrid", 8))
    if one and eight:
        scale = eight["rps"] / one["rps"]
        out.append(f"hybrid 8 clients / 1 client requests/s: {scale:.2f}x "
                   f"(aim >= {AIM_HYBRID_SCALE}x: {mark(scale >= AIM_HYBRID_SCALE)})")
    if eight:
        out.append(f"hybrid 8 clients p50 {eight['p50']:.1f} ms (aim < {AIM_HYBRID_P50_MS:.0f}: "
                   f"{mark(eight['p50'] < AIM_HYBRID_P50_MS)})")
    if kw := by.get(("keyword", 8)):
        out.append(f"keyword 8 clients p50 {kw['p50']:.1f} ms (aim < {AIM_KEYWORD_P50_MS:.0f}: "
                   f"{mark(kw['p50'] < AIM_KEYWORD_P50_MS)})")
    for key, aim in (("keyword", AIM_FIRST_KEYWORD_S), ("hybrid", AIM_FIRST_HYBRID_S)):
        values = sorted(s[key] for s in starts if key in s and s.get("server") != "ref")
        if values:
            median = values[len(values) // 2]
            out.append(f"first {key} answer after {median:.2f} s median of {len(values)} "
                       f"(aim < {aim}: {mark(median < aim)})")
    return out


def render_start(start: dict[str, Any]) -> str:
    times = ", ".join(f"{key} {start[key]:.2f} s" for key in ("health", "keyword", "hybrid")
                      if key in start)
    times += "; server CPU by then: " + ", ".join(
        f"{key} {start[key + '_cpu']:.2f} s" for key in ("keyword", "hybrid")
        if key + "_cpu" in start)
    return f"{start['server']:<4}first {times}  (load {start['load']:.2f})"


def mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def parse_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skills", type=int, default=1000, help="skills in the home")
    parser.add_argument("--requests", type=int, default=240, help="requests per cell")
    parser.add_argument("--warmup", type=int, default=16, help="untimed requests per cell")
    parser.add_argument("--clients", type=parse_list, default=["1", "4", "8"])
    parser.add_argument("--modes", type=parse_list, default=["keyword", "hybrid"])
    parser.add_argument("--home", type=Path, default=None, help="build (once) and keep here")
    parser.add_argument("--startup", type=int, nargs="?", const=3, default=0,
                        help="also time the start-up K times (default 3)")
    parser.add_argument("--no-load", action="store_true", help="skip the load phase")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="set in the server's environment (repeatable)")
    parser.add_argument("--ref-src", type=Path, default=None,
                        help="also run a reference server from this folder (holding a "
                             "skills_hub package), every cell interleaved with ours")
    parser.add_argument("--ref-env", action="append", default=[], metavar="NAME=VALUE",
                        help="the reference server's environment (repeatable; implies one)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    ref_env = dict(item.split("=", 1) for item in args.ref_env)
    variants: dict[str, tuple[dict[str, str], Path | None]] = {"new": (env, None)}
    if args.ref_src or args.ref_env:
        variants = {"ref": (ref_env, args.ref_src), **variants}
    home = (args.home or Path(tempfile.mkdtemp(prefix="skills-hub-conc-bench-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    cells: list[dict[str, Any]] = []
    starts: list[dict[str, Any]] = []
    try:
        t0 = time.perf_counter()
        sb.log(f"home {home}: building {args.skills} skills (reused when there) ...")
        embedded = build_home(home, args.skills)
        sb.log(f"    {embedded} skills embedded; home ready in {time.perf_counter() - t0:.0f} s")
        if not args.no_load:
            servers: dict[str, Server] = {}
            try:
                for label, (variant_env, src) in variants.items():
                    servers[label] = spawn(home, variant_env, src)
                cells = run_load(servers, args.modes, [int(c) for c in args.clients],
                                 args.requests, args.warmup)
            finally:
                for server in servers.values():
                    server.stop()
        for k in range(args.startup):
            for label, (variant_env, src) in variants.items():
                start: dict[str, Any] = startup_once(home, variant_env, src)
                start.update(server=label, load=sb.loadavg()[0])
                starts.append(start)
                sb.log(f"    start-up {k + 1}: {render_start(start)}")
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    print(f"concurrency_bench {started}: {embedded} skills, env {env or 'default'}, "
          f"reference {args.ref_src or 'this checkout'} env {ref_env or 'default'}, "
          f"machine {sb.machine()['nproc']} cores, load at the end {sb.loadavg()}")
    for cell in cells:
        print(render_cell(cell))
    for start in starts:
        print(f"start-up: {render_start(start)}")
    for line in verdicts(cells, starts):
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cells": cells, "startup": starts, "env": env,
                                         "skills": embedded, "started": started}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
