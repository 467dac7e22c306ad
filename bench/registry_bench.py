"""End-to-end benchmark of a real skills-hub server process on a loopback port.

Measures, against `python -m skills_hub.cli serve` in a throwaway home (seed off):

1. publish latency (p50/p95/p99, total) of N distinct skills, sequential, multipart HTTP,
   with the checks on and, once the embedding model has loaded (the bench waits for it),
   semantic search on: each publish embeds its text and looks for near-duplicates;
2. archive download (tar.gz) latency cold (first fetch of each version) and warm (cache
   filled), one sequential client; and requests/s with C concurrent keep-alive clients;
3. `git clone` wall time (median of 5) from our /git/<ns>.git beside C git serving a copy
   of the same bare repo through `git http-backend` (CGI under a small Python HTTP server
   written here) and through `git daemon` (git://);
4. the server's RSS after the run and the repo's size on disk.

Figures are compared with the project's aims and marked met/missed; nothing is asserted.
Loopback only; every wait and loop is bounded.

    .venv/bin/python bench/registry_bench.py [--skills N] [--concurrency C]
                                             [--requests R] [--json PATH]
                                             [--publish-only] [--no-semantic]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

NAMESPACE = "bench"
AIM_PUBLISH_P50_MS = 60.0  # issue 15
AIM_ARCHIVE_P50_MS = 5.0
AIM_CLONE_RATIO = 1.5
CLONE_RUNS = 5
START_TIMEOUT_S = 60
CLONE_TIMEOUT_S = 600
HTTP_TIMEOUT_S = 120

# -- synthetic skills ------------------------------------------------------------------

_WORDS = (
    "analyse parse validate report summary table column dataset schema migration deploy "
    "pipeline request response token cache index query filter sort merge branch commit "
    "review lint format test coverage fixture mock retry backoff timeout limit quota "
    "invoice customer ledger balance export import archive compress extract transform "
    "upload download sync mirror backup restore snapshot metric alert dashboard trace "
    "span latency throughput error warning config secret policy role permission audit "
    "document section heading paragraph citation reference glossary diagram chart figure"
).split()
_VERBS = ("Read", "Check", "Collect", "Compare", "Write", "Run", "Open", "List", "Confirm",
          "Summarise", "Group", "Convert")


def _sentence(rng: random.Random, low: int = 8, high: int = 18) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + "."


def skill_files(i: int) -> tuple[str, bytes, bytes]:
    """(name, SKILL.md, scripts/run.py) for synthetic skill `i`: a 1-3 KB realistic body."""
    rng = random.Random(i)
    name = f"bench-{rng.choice(_WORDS)}-{rng.choice(_WORDS)}-{i:05d}"
    description = (f"{_sentence(rng, 8, 14)[:-1]} when the user asks to "
                   f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} data.")
    tags = ", ".join(sorted({rng.choice(_WORDS) for _ in range(3)}))
    target = rng.randint(1024, 3072)
    parts = [f"# {name.replace('-', ' ').title()}\n", "## When to use\n",
             _sentence(rng) + " " + _sentence(rng) + "\n", "## Steps\n"]
    step = 1
    while sum(len(p) for p in parts) < target - 300:
        parts.append(f"{step}. {rng.choice(_VERBS)} the {rng.choice(_WORDS)}: "
                     f"{_sentence(rng, 6, 14)}")
        step += 1
        if step % 5 == 0:
            parts.append("\n```bash\npython scripts/run.py --input data.csv "
                         f"--mode {rng.choice(_WORDS)}\n```\n")
    parts.append("\n## Notes\n")
    while sum(len(p) for p in parts) < target:
        parts.append(_sentence(rng))
    body = "\n".join(parts) + "\n"
    skill_md = (f"---\nname: {name}\ndescription: {description}\nlicense: Apache-2.0\n"
                f"metadata:\n  tags: \"{tags}\"\n---\n{body}")
    script = (f'#!/usr/bin/env python3\n"""Helper for {name}."""\nimport sys\n\n\n'
              f"def main() -> int:\n    print({rng.choice(_WORDS)!r}, sys.argv[1:])\n"
              "    return 0\n\n\nif __name__ == \"__main__\":\n    raise SystemExit(main())\n")
    return name, skill_md.encode(), script.encode()


# -- helpers ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def clean_git_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "SKILLS_HUB_", "XDG_"))}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0",
               LC_ALL="C")
    return env


def wait_port(port: int, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (kB) and cpu seconds (utime+stime) of a process, plus its threads."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def dir_size(path: Path) -> tuple[int, int, int]:
    """(apparent bytes, bytes on disk, file count) under `path`."""
    apparent = blocks = count = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            apparent += st.st_size
            blocks += st.st_blocks * 512
            count += 1
    return apparent, blocks, count


# -- the server under test -------------------------------------------------------------

@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(home: Path, log_path: Path, semantic: bool = True) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKILLS_HUB_", "GIT_"))}
    env.update(SKILLS_HUB_HOME=str(home), SKILLS_HUB_NO_SEED="1",
               SKILLS_HUB_SEMANTIC="on" if semantic else "off")
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "skills_hub.cli", "serve", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}); see {log_path}")
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return Server(url, home, process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the server did not start in {START_TIMEOUT_S}s; see {log_path}")


def wait_semantic(url: str, deadline_s: float = 300) -> float:
    """Wait until the server's embedding model answers a semantic search; seconds waited."""
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S) as client:
        while time.perf_counter() - start < deadline_s:
            got = client.get("/api/v1/search", params={"q": "warm up", "mode": "semantic"})
            if got.status_code == 200 and got.json().get("semantic") == "ready":
                return time.perf_counter() - start
            time.sleep(0.25)
    raise RuntimeError(f"the embedding model did not load in {deadline_s:.0f} s")


def make_token(home: Path, namespace: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKILLS_HUB_")}
    out = subprocess.run([sys.executable, "-m", "skills_hub.cli", "token", "create", namespace,
                          "--home", str(home)], capture_output=True, text=True, check=True,
                         env=env, timeout=120)
    return out.stdout.strip().splitlines()[-1]


# -- C git over HTTP: git http-backend as CGI ------------------------------------------

class _CGIHandler(http.server.BaseHTTPRequestHandler):
    """Runs `git http-backend` per request as CGI, streaming the body both ways."""

    protocol_version = "HTTP/1.1"
    project_root = ""
    git_env: dict[str, str] = {}

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._cgi()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._cgi()

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        env = dict(self.git_env)
        env.update(GIT_PROJECT_ROOT=self.project_root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=self.command,
                   GATEWAY_INTERFACE="CGI/1.1", SERVER_PROTOCOL="HTTP/1.1",
                   REMOTE_ADDR=self.client_address[0], REMOTE_USER="",
                   CONTENT_TYPE=self.headers.get("Content-Type", ""))
        length = self.headers.get("Content-Length")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        if length is not None:
            env["CONTENT_LENGTH"] = length
        for key, value in self.headers.items():  # Git-Protocol, Content-Encoding, ...
            name = "HTTP_" + key.upper().replace("-", "_")
            if name not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                env[name] = value
        proc = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdin is not None and proc.stdout is not None
        feeder = threading.Thread(target=self._feed, args=(proc.stdin, length, chunked),
                                  daemon=True)
        feeder.start()
        try:
            self._relay(proc.stdout)
        finally:
            feeder.join(CLONE_TIMEOUT_S)
            proc.stdout.close()
            proc.wait(CLONE_TIMEOUT_S)

    def _feed(self, stdin: Any, length: str | None, chunked: bool) -> None:
        try:
            if chunked:
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    stdin.write(self.rfile.read(size))
                    self.rfile.readline()
            elif length:
                left = int(length)
                while left > 0:
                    piece = self.rfile.read(min(left, 65536))
                    if not piece:
                        break
                    stdin.write(piece)
                    left -= len(piece)
        except BrokenPipeError:
            pass
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                pass

    def _relay(self, stdout: Any) -> None:
        status, headers = "200 OK", []
        while True:
            line = stdout.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
            if key.lower() == "status":
                status = value.strip()
            else:
                headers.append((key, value.strip()))
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason or None)
        has_length = any(k.lower() == "content-length" for k, _ in headers)
        for key, value in headers:
            self.send_header(key, value)
        if not has_length:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            piece = stdout.read1(65536)
            if not piece:
                break
            if has_length:
                self.wfile.write(piece)
            else:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        if not has_length:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


@contextmanager
def cgi_git_server(project_root: Path, git_env: dict[str, str]) -> Iterator[str]:
    handler = type("Handler", (_CGIHandler,), {"project_root": str(project_root),
                                                "git_env": git_env})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def git_daemon(base_path: Path, git_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        ["git", "daemon", "--export-all", "--reuseaddr", f"--base-path={base_path}",
         "--listen=127.0.0.1", f"--port={port}", str(base_path)],
        env=git_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- the phases --------------------------------------------------------------------------

@dataclass
class Results:
    params: dict[str, Any]
    machine: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    verdicts: list[tuple[str, str, str, bool | None]] = field(default_factory=list)


def phase_publish(url: str, token: str, n: int) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    latencies: list[float] = []
    published: list[tuple[str, str]] = []
    failures: list[str] = []
    upload_bytes = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=HTTP_TIMEOUT_S) as client:
        t_all = time.perf_counter()
        for i in range(n):
            name, skill_md, script = skill_files(i)
            files = [("files", ("SKILL.md", skill_md, "text/markdown")),
                     ("files", ("scripts/run.py", script, "text/x-python"))]
            upload_bytes += len(skill_md) + len(script)
            t0 = time.perf_counter()
            response = client.post(f"/api/v1/namespaces/{NAMESPACE}/skills", files=files,
                                   data={"executable": "scripts/run.py"})
            latencies.append(time.perf_counter() - t0)
            if response.status_code == 201:
                published.append((name, response.json()["version"]))
            elif len(failures) < 5:
                failures.append(f"{name}: {response.status_code} {response.text[:200]}")
            if (i + 1) % 100 == 0:
                print(f"  published {i + 1}/{n} (last 100: p50 "
                      f"{pct(latencies[-100:], 50) * 1e3:.1f} ms)", file=sys.stderr)
        total = time.perf_counter() - t_all
    ms = [x * 1e3 for x in latencies]
    tenth = max(1, n // 10)
    return {
        "count": n, "ok": len(published), "failures": failures,
        "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "p99_ms": pct(ms, 99),
        "max_ms": max(ms), "mean_ms": statistics.fmean(ms), "total_s": total,
        "first_tenth_p50_ms": pct(ms[:tenth], 50), "last_tenth_p50_ms": pct(ms[-tenth:], 50),
        "avg_upload_bytes": upload_bytes / max(1, n),
    }, published


def _archive_url(name: str, version: str) -> str:
    return f"/api/v1/skills/{NAMESPACE}/{name}/versions/{version}/archive.tar.gz"


def phase_archive_sequential(url: str, published: list[tuple[str, str]]) -> dict[str, Any]:
    cold: list[float] = []
    warm: list[float] = []
    bad = 0
    sizes: list[int] = []
    with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S) as client:
        client.get("/api/v1/health")  # open the keep-alive connection outside the timings
        for label, store in (("cold", cold), ("warm", warm)):
            for name, version in published:
                t0 = time.perf_counter()
                response = client.get(_archive_url(name, version))
                store.append((time.perf_counter() - t0) * 1e3)
                if label == "cold":
                    sizes.append(len(response.content))
                    ok = (response.status_code == 200 and hashlib.sha256(
                        response.content).hexdigest() == response.headers.get(
                        "x-checksum-sha256"))
                else:
                    ok = response.status_code == 200
                bad += not ok
    return {"cold_p50_ms": pct(cold, 50), "cold_p95_ms": pct(cold, 95),
            "warm_p50_ms": pct(warm, 50), "warm_p95_ms": pct(warm, 95),
            "warm_p99_ms": pct(warm, 99), "requests": len(cold) + len(warm), "errors": bad,
            "avg_archive_bytes": statistics.fmean(sizes) if sizes else 0}


def phase_archive_concurrent(url: str, published: list[tuple[str, str]], clients: int,
                             total: int, server_pid: int) -> dict[str, Any]:
    rng = random.Random(7)
    targets = [published[rng.randrange(len(published))] for _ in range(total)]
    shares = [targets[t::clients] for t in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    barrier = threading.Barrier(clients + 1, timeout=60)

    def worker(t: int) -> None:
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S) as client:
            client.get("/api/v1/health")  # connect before the clock starts
            barrier.wait()
            for name, version in shares[t]:
                t0 = time.perf_counter()
                try:
                    response = client.get(_archive_url(name, version))
                    ok = response.status_code == 200 and len(response.content) > 0
                except httpx.HTTPError:
                    ok = False
                latencies[t].append((time.perf_counter() - t0) * 1e3)
                errors[t] += not ok

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    server_cpu0, client_cpu0 = proc_cpu(server_pid), self_cpu()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join(CLONE_TIMEOUT_S)
    wall = time.perf_counter() - t0
    server_cpu, client_cpu = proc_cpu(server_pid) - server_cpu0, self_cpu() - client_cpu0
    flat = [x for share in latencies for x in share]
    return {"clients": clients, "requests": len(flat), "errors": sum(errors), "wall_s": wall,
            "rps": len(flat) / wall if wall else float("nan"),
            "p50_ms": pct(flat, 50), "p95_ms": pct(flat, 95), "p99_ms": pct(flat, 99),
            "server_cpu_s": server_cpu, "client_cpu_s": client_cpu,
            "server_cpu_ms_per_request": server_cpu / max(1, len(flat)) * 1e3}


def time_clones(label: str, url: str, work: Path, env: dict[str, str],
                expect_tags: int) -> dict[str, Any]:
    """Plain `git clone` (with checkout) and `git clone --bare` (transfer only), each
    CLONE_RUNS times; dirty pages are flushed (untimed) before every run."""
    out = {"url": url}
    for mode in ("full", "bare"):
        out[mode] = _time_clone_mode(label, mode, url, work, env, expect_tags)
    out["error"] = out["full"]["error"] or out["bare"]["error"]
    out["median_s"] = out["full"]["median_s"]
    out["received_pack_bytes"] = out["bare"]["received_pack_bytes"]
    return out


def _time_clone_mode(label: str, mode: str, url: str, work: Path, env: dict[str, str],
                     expect_tags: int) -> dict[str, Any]:
    times: list[float] = []
    error = ""
    pack_bytes = 0
    extra = ["--bare"] if mode == "bare" else []
    for run in range(CLONE_RUNS):
        dest = work / f"clone-{label}-{mode}-{run}"
        os.sync()
        t0 = time.perf_counter()
        result = subprocess.run(["git", "clone", "--quiet", *extra, url, str(dest)], env=env,
                                capture_output=True, text=True, timeout=CLONE_TIMEOUT_S)
        elapsed = time.perf_counter() - t0
        if result.returncode != 0:
            error = result.stderr.strip()[-500:]
            shutil.rmtree(dest, ignore_errors=True)
            break
        times.append(elapsed)
        if run == 0:
            tags = subprocess.run(["git", "tag"], cwd=dest, env=env, capture_output=True,
                                  text=True, timeout=120).stdout.split()
            if len(tags) != expect_tags:
                error = f"clone has {len(tags)} tags, expected {expect_tags}"
            git_dir = dest if mode == "bare" else dest / ".git"
            pack_bytes = sum(p.stat().st_size for p in (git_dir / "objects/pack").glob("*.pack"))
        shutil.rmtree(dest, ignore_errors=True)
        print(f"  clone {label} {mode} #{run + 1}: {elapsed:.2f} s", file=sys.stderr)
    return {"url": url, "runs_s": times, "median_s": statistics.median(times) if times else None,
            "min_s": min(times) if times else None, "error": error,
            "received_pack_bytes": pack_bytes}


def phase_clone(server: Server, work: Path, env: dict[str, str], expect_tags: int
                ) -> dict[str, Any]:
    """Clones from our server, from C git http-backend and from git daemon (same repo)."""
    source = server.home / "repos" / f"{NAMESPACE}.git"
    cgit_root = work / "cgit"
    cgit_root.mkdir()
    shutil.copytree(source, cgit_root / f"{NAMESPACE}.git")
    out: dict[str, Any] = {}
    out["ours"] = time_clones("ours", f"{server.url}/git/{NAMESPACE}.git", work, env,
                              expect_tags)
    out["stock_status"] = proc_status(server.process.pid)
    out["stock_cpu_s"] = proc_cpu(server.process.pid)
    with cgi_git_server(cgit_root, env) as base:
        out["http_backend"] = time_clones("http-backend", f"{base}/{NAMESPACE}.git", work,
                                          env, expect_tags)
    with git_daemon(cgit_root, env) as base:
        out["git_daemon"] = time_clones("git-daemon", f"{base}/{NAMESPACE}.git", work, env,
                                        expect_tags)
    mine = out["ours"]
    for key in ("http_backend", "git_daemon"):
        for mode in ("full", "bare"):
            ours, theirs = mine[mode]["median_s"], out[key][mode]["median_s"]
            out[key][f"ratio_ours_{mode}"] = (ours / theirs) if ours and theirs else None
        out[key]["ratio_ours"] = out[key]["ratio_ours_full"]
    return out


# -- report ------------------------------------------------------------------------------

def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def render(res: Results) -> str:
    f = res.figures
    lines: list[str] = []
    w = lines.append
    m, p = res.machine, res.params
    w("skills-hub registry benchmark")
    w("=" * 82)
    w(f"machine : nproc {m['nproc']}, {m['cpu']}, Python {m['python']} ({m['implementation']}), "
      f"{m['git']}, {m['platform']}")
    w(f"params  : --skills {p['skills']} --concurrency {p['concurrency']} --requests "
      f"{p['requests']}  (clone runs {CLONE_RUNS}, namespace {NAMESPACE!r}, seed off)")
    w(f"started : {p['started']}   total wall {f.get('wall_s', 0):.1f} s")
    w("")
    row = "{:<50} {:>12}  {:<12} {}"
    w(row.format("figure", "value", "aim", "verdict"))
    w("-" * 82)
    pub = f["publish"]
    w(f"1. publish: {pub['ok']}/{pub['count']} skills sequential, multipart, avg "
      f"{pub['avg_upload_bytes'] / 1024:.1f} KiB upload")
    w(row.format("   publish p50", f"{pub['p50_ms']:.1f} ms", f"< {AIM_PUBLISH_P50_MS:.0f} ms",
                 verdict(pub["p50_ms"] < AIM_PUBLISH_P50_MS)))
    w(row.format("   publish p95", f"{pub['p95_ms']:.1f} ms", "", ""))
    w(row.format("   publish p99", f"{pub['p99_ms']:.1f} ms", "", ""))
    w(row.format("   publish max", f"{pub['max_ms']:.1f} ms", "", ""))
    w(row.format("   publish p50 first / last 10%",
                 f"{pub['first_tenth_p50_ms']:.0f}/{pub['last_tenth_p50_ms']:.0f} ms", "", ""))
    w(row.format("   publish total", f"{pub['total_s']:.1f} s", "", ""))
    if pub["failures"]:
        w(f"   failures: {pub['failures']}")
    seq = f["archive_seq"]
    w(f"2. install: GET .../archive.tar.gz (avg {seq['avg_archive_bytes'] / 1024:.1f} KiB), "
      f"{seq['requests']} sequential requests, {seq['errors']} errors")
    w(row.format("   archive warm p50 (1 client)", f"{seq['warm_p50_ms']:.2f} ms",
                 f"< {AIM_ARCHIVE_P50_MS:.0f} ms",
                 verdict(seq["warm_p50_ms"] < AIM_ARCHIVE_P50_MS)))
    w(row.format("   archive warm p95 / p99", f"{seq['warm_p95_ms']:.2f}/{seq['warm_p99_ms']:.2f}",
                 "", ""))
    w(row.format("   archive cold p50 (first fetch)", f"{seq['cold_p50_ms']:.2f} ms",
                 f"< {AIM_ARCHIVE_P50_MS:.0f} ms",
                 verdict(seq["cold_p50_ms"] < AIM_ARCHIVE_P50_MS)))
    w(row.format("   archive cold p95", f"{seq['cold_p95_ms']:.2f} ms", "", ""))
    con = f["archive_concurrent"]
    w(f"   concurrent: {con['clients']} threads x own keep-alive client, {con['requests']} "
      f"requests over {len(f['published_names'])} skills, {con['errors']} errors")
    w(row.format("   archive throughput", f"{con['rps']:.0f} req/s", "", ""))
    w(row.format("   archive latency p50 / p95 under load",
                 f"{con['p50_ms']:.1f}/{con['p95_ms']:.1f} ms", "", ""))
    w(row.format("   server CPU per request", f"{con['server_cpu_ms_per_request']:.2f} ms", "",
                 ""))
    w(row.format("   CPU s during load: server / bench clients",
                 f"{con['server_cpu_s']:.1f}/{con['client_cpu_s']:.1f}", "", ""))
    cl = f["clone"]
    w(f"3. git clone of /{NAMESPACE}.git ({len(f['published_names'])} skills, "
      f"{len(f['published_names'])} tags), median of {CLONE_RUNS}")
    ours = cl["ours"]
    w(row.format("   ours (SKILLS_HUB_GIT_BACKEND=auto: C git if installed)",
                 "ok" if ours["median_s"] is not None else "FAILS", "works",
                 verdict(ours["median_s"] is not None)))
    ours_key, suffix = "ours", ""
    w(row.format("   median s, plain clone / --bare", "", "", ""))
    for key, label in ((ours_key, "ours"),
                       ("http_backend", "C git http-backend (CGI)"),
                       ("git_daemon", "C git daemon (git://)")):
        d = cl[key]
        w(row.format(f"     {label}", f"{_secs(d['full'])} / {_secs(d['bare'])}", "",
                     d["error"][:30]))
    for key in ("http_backend", "git_daemon"):
        for mode, what in (("full", "clone"), ("bare", "clone --bare")):
            ratio = cl[key].get(f"ratio_ours_{mode}")
            w(row.format(f"   ratio ours{suffix} / {key.replace('_', '-')}, {what}",
                         f"{ratio:.2f}x" if ratio else "n/a", f"<= {AIM_CLONE_RATIO}x",
                         verdict(None if ratio is None else ratio <= AIM_CLONE_RATIO)))
    w(row.format(f"   pack MiB ours{suffix}/backend/daemon",
                 "/".join(f"{cl[k]['received_pack_bytes'] / 2**20:.1f}"
                          for k in (ours_key, "http_backend", "git_daemon")) , "", ""))
    for key in ("ours", "http_backend", "git_daemon"):
        if cl.get(key) and cl[key]["error"]:
            w(f"   {key} error: " + cl[key]["error"].replace("\n", " | "))
    mem = f["server"]
    w("4. resources")
    w(row.format("   server RSS after run (VmRSS)", f"{mem['rss_kb'] / 1024:.0f} MiB", "", ""))
    w(row.format("   server peak RSS (VmHWM)", f"{mem['hwm_kb'] / 1024:.0f} MiB", "", ""))
    w(row.format("   server CPU total", f"{mem['cpu_s']:.0f} s", "", ""))
    repo = f["repo"]
    w(row.format(f"   repos/{NAMESPACE}.git on disk",
                 f"{repo['disk_bytes'] / 2**20:.1f} MiB", "", ""))
    w(row.format("   ... apparent size / files", f"{repo['apparent_bytes'] / 2**20:.1f} MiB/"
                 f"{repo['files']}", "", ""))
    w(row.format("   index.db (+wal) on disk", f"{repo['index_bytes'] / 2**20:.1f} MiB", "",
                 ""))
    w("-" * 82)
    met = [v for v in res.verdicts if v[3] is not None]
    w(f"aims met: {sum(1 for v in met if v[3])}/{len(met)}"
      + ("" if all(v[3] for v in met) else "   missed: "
         + ", ".join(v[0] for v in met if not v[3])))
    return "\n".join(lines)


def _secs(d: dict[str, Any]) -> str:
    return f"{d['median_s']:.2f}" if d["median_s"] is not None else "failed"


def collect_verdicts(res: Results) -> None:
    f = res.figures
    v = res.verdicts
    v.append(("publish p50", f"{f['publish']['p50_ms']:.1f} ms", f"< {AIM_PUBLISH_P50_MS} ms",
              f["publish"]["p50_ms"] < AIM_PUBLISH_P50_MS))
    v.append(("archive warm p50", f"{f['archive_seq']['warm_p50_ms']:.2f} ms",
              f"< {AIM_ARCHIVE_P50_MS} ms", f["archive_seq"]["warm_p50_ms"] < AIM_ARCHIVE_P50_MS))
    v.append(("archive cold p50", f"{f['archive_seq']['cold_p50_ms']:.2f} ms",
              f"< {AIM_ARCHIVE_P50_MS} ms", f["archive_seq"]["cold_p50_ms"] < AIM_ARCHIVE_P50_MS))
    v.append(("stock clone works", "yes" if f["clone"]["ours"]["median_s"] else "no", "yes",
              f["clone"]["ours"]["median_s"] is not None))
    for key in ("http_backend", "git_daemon"):
        for mode in ("full", "bare"):
            ratio = f["clone"][key].get(f"ratio_ours_{mode}")
            v.append((f"clone {mode} vs {key}", f"{ratio:.2f}x" if ratio else "n/a",
                      f"<= {AIM_CLONE_RATIO}x",
                      None if ratio is None else ratio <= AIM_CLONE_RATIO))
    f["verdicts"] = [{"figure": a, "value": b, "aim": c, "met": d} for a, b, c, d in v]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    git = subprocess.run(["git", "--version"], capture_output=True, text=True,
                         timeout=10).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "git": git,
            "platform": platform.platform(terse=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skills", type=int, default=1000, help="N skills to publish")
    parser.add_argument("--concurrency", type=int, default=8, help="C concurrent clients")
    parser.add_argument("--requests", type=int, default=2000,
                        help="R archive requests in the concurrent phase")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway home")
    parser.add_argument("--publish-only", action="store_true",
                        help="run the publish phase only (skip archives and clones)")
    parser.add_argument("--no-semantic", action="store_true",
                        help="serve with SKILLS_HUB_SEMANTIC=off (publish embeds nothing)")
    args = parser.parse_args(argv)
    if args.skills < 1 or args.concurrency < 1 or args.requests < 1:
        parser.error("--skills, --concurrency and --requests must be positive")

    res = Results(params={"skills": args.skills, "concurrency": args.concurrency,
                          "requests": args.requests, "clone_runs": CLONE_RUNS,
                          "started": time.strftime("%Y-%m-%d %H:%M:%S %z")},
                  machine=machine())
    work = Path(tempfile.mkdtemp(prefix="skills-hub-bench-"))
    home = work / "data"
    git_home = work / "home"
    git_home.mkdir()
    env = clean_git_env(git_home)
    t_start = time.perf_counter()
    server: Server | None = None
    try:
        token = make_token(home, NAMESPACE)
        server = start_server(home, work / "server.log", semantic=not args.no_semantic)
        print(f"server pid {server.process.pid} at {server.url}, home {home}", file=sys.stderr)
        if not args.no_semantic:
            res.params["model_loaded_after_s"] = round(wait_semantic(server.url), 1)
        res.params["load_before_publish"] = os.getloadavg()
        print("phase 1: publish", file=sys.stderr)
        res.figures["publish"], published = phase_publish(server.url, token, args.skills)
        res.params["load_after_publish"] = os.getloadavg()
        res.figures["published_names"] = [n for n, _ in published]
        if not published:
            raise RuntimeError(f"nothing was published: {res.figures['publish']['failures']}")
        if args.publish_only:
            return _publish_report(res, args)
        print("phase 2: archives (cold, warm, concurrent)", file=sys.stderr)
        res.figures["archive_seq"] = phase_archive_sequential(server.url, published)
        res.figures["archive_concurrent"] = phase_archive_concurrent(
            server.url, published, args.concurrency, args.requests, server.process.pid)
        print("phase 3: git clone", file=sys.stderr)
        res.figures["clone"] = phase_clone(server, work, env, expect_tags=len(published))
        status = res.figures["clone"].pop("stock_status")
        res.figures["server"] = {"pid": server.process.pid, "rss_kb": status["VmRSS"],
                                 "hwm_kb": status["VmHWM"], "threads": status.get("Threads"),
                                 "cpu_s": res.figures["clone"].pop("stock_cpu_s")}
        apparent, disk, files = dir_size(home / "repos" / f"{NAMESPACE}.git")
        index_bytes = sum(p.stat().st_blocks * 512 for p in home.glob("index.db*"))
        res.figures["repo"] = {"apparent_bytes": apparent, "disk_bytes": disk, "files": files,
                               "index_bytes": index_bytes}
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    res.figures["wall_s"] = time.perf_counter() - t_start
    collect_verdicts(res)
    print(render(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        figures = {k: v for k, v in res.figures.items() if k != "published_names"}
        figures["published_count"] = len(res.figures["published_names"])
        args.json.write_text(json.dumps({"params": res.params, "machine": res.machine,
                                         "figures": figures}, indent=2) + "\n")
    return 0


def _publish_report(res: Results, args: argparse.Namespace) -> int:
    """The publish figures alone (`--publish-only`), with the load average around them."""
    pub = res.figures["publish"]
    print(f"publish {pub['ok']}/{pub['count']} skills, semantic "
          f"{'off' if args.no_semantic else 'on'}: p50 {pub['p50_ms']:.1f} ms, p95 "
          f"{pub['p95_ms']:.1f} ms, p99 {pub['p99_ms']:.1f} ms, first/last 10 % p50 "
          f"{pub['first_tenth_p50_ms']:.1f}/{pub['last_tenth_p50_ms']:.1f} ms; load "
          f"{res.params['load_before_publish'][0]:.2f} -> "
          f"{res.params['load_after_publish'][0]:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"params": res.params, "machine": res.machine,
                                         "figures": {"publish": pub}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
