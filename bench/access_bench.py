"""What the access policy costs a read: sequential skill reads against a real server, and the
authentication and policy calls in-process.

In a throwaway home (seed off, `SKILLS_HUB_SEMANTIC=off`) it makes a public namespace and a
private one, a token that reads the private one and, when the imported code has accounts, a
user with a password who is a reader of the private namespace's org and a browser session
(`POST /api/v1/auth/session` -> cookie). One small skill is published into each namespace.
Then, against `python -m skills_hub.cli serve` on a free 127.0.0.1 port, one keep-alive
`httpx.Client` sends `GET /api/v1/skills/{ns}/{name}` one after another (warm-up first):

    public    the public skill, no credentials
    token     the private skill, `Authorization: Bearer <token>`
    session   the private skill, the session cookie (only where sessions exist)

and prints p50/p90/p99 (nearest-rank, client wall time) and requests/s. After the server has
stopped it times in-process (timeit, best of 5 repeats, microseconds per call):
`registry.authenticate(token)`, `registry.authenticate_session(sid)`,
`access.policy.allowed(principal, "read", ref)`, `registry.check_readable(ns, principal)`
and `registry.get_skill(ns, name, principal)`.

The script runs against whatever `import skills_hub` finds, so it also measures an older
checkout: `PYTHONPATH=/tmp/before .venv/bin/python bench/access_bench.py` (the server
subprocess inherits PYTHONPATH). It detects `skills_hub.services` (new) or
`skills_hub.service` (before the split) and skips what the code lacks.

    .venv/bin/python bench/access_bench.py [--n 2000] [--warmup 200] [--number 2000]
        [--extra-namespaces K] [--label L] [--json PATH] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import httpx

import skills_hub

PUBLIC_NS = "benchpub"
PRIVATE_NS = "benchpriv"
SKILL = "access-probe"
USER = "benchreader"
PASSWORD = "correct-horse-battery-staple-41"
START_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 30
AIM_ADDED_MS = 1.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def code_label(given: str | None) -> str:
    source = Path(skills_hub.__file__).resolve().parent
    try:
        described = subprocess.run(["git", "-C", str(source), "describe", "--always", "--dirty"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        described = "?"
    return f"{given + ' ' if given else ''}{described} ({source})"


def load_registry_class() -> tuple[type, str]:
    try:
        from skills_hub.services import Registry  # after dc7d586
        return Registry, "skills_hub.services"
    except ImportError:
        from skills_hub.service import Registry  # type: ignore[no-redef]  # before
        return Registry, "skills_hub.service"


def open_registry(home: Path) -> Any:
    from skills_hub.config import Settings

    registry_class, _ = load_registry_class()
    registry = registry_class(Settings.from_env().with_home(home))
    registry.settings.home.mkdir(parents=True, exist_ok=True)
    registry.store.db.migrate()
    registry.reconcile()
    return registry


def has_accounts(registry: Any) -> bool:
    return all(hasattr(registry, m) for m in ("add_user", "set_member", "authenticate_session"))


def skill_md(name: str, description: str) -> bytes:
    return (f"---\nname: {name}\ndescription: {description}\nlicense: MIT\n---\n\n"
            f"# {name}\n\n1. Read the input.\n2. Check every column.\n3. Report the result.\n"
            ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    return {**os.environ, "SKILLS_HUB_HOME": str(home), "SKILLS_HUB_NO_SEED": "1",
            "SKILLS_HUB_SEMANTIC": "off"}


def server_code(home: Path) -> str:
    """Where the server subprocess imports skills_hub from. It runs with cwd=home: `python -m`
    puts the working directory before PYTHONPATH, so from the repo it would serve the
    checkout's code, not the code under test."""
    out = subprocess.run([sys.executable, "-c", "import skills_hub; print(skills_hub.__file__)"],
                         env=server_env(home), cwd=home, capture_output=True, text=True,
                         timeout=60, check=True)
    return str(Path(out.stdout.strip()).resolve().parent)


def start_server(home: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "skills_hub.cli", "serve", "--port", str(port)],
        env=server_env(home), cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return url, process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.wait(10)
    raise RuntimeError("the server did not start")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def measure(client: httpx.Client, path: str, headers: dict[str, str], n: int,
            warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    times: list[float] = []
    t_all = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:200]}")
    wall = time.perf_counter() - t_all
    times.sort()
    return {"p50_ms": pct(times, 50) * 1e3, "p90_ms": pct(times, 90) * 1e3,
            "p99_ms": pct(times, 99) * 1e3, "mean_ms": sum(times) / n * 1e3,
            "rps": n / wall, "n": n}


def per_call_us(fn: Any, number: int) -> float:
    """Best of 5 repeats, microseconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def in_process(home: Path, token: str, session_id: str | None, number: int) -> dict[str, float]:
    registry = open_registry(home)
    out: dict[str, float] = {}
    try:
        out["namespaces"] = registry.store.db.connection().execute(
            "SELECT count(*) FROM namespaces").fetchone()[0]
        principal = registry.authenticate(token)
        out["authenticate(token)"] = per_call_us(lambda: registry.authenticate(token), number)
        if session_id is not None:
            out["authenticate_session(sid)"] = per_call_us(
                lambda: registry.authenticate_session(session_id), number)
        allowed: Any = None
        try:
            from skills_hub.access.policy import allowed
        except ImportError:  # before accounts
            pass
        if allowed is not None and hasattr(registry, "namespace_ref"):
            ref = registry.namespace_ref(PRIVATE_NS)
            assert allowed(principal, "read", ref)
            out["policy.allowed(p, read, ref)"] = per_call_us(
                lambda: allowed(principal, "read", ref), number * 10)
        registry.check_readable(PRIVATE_NS, principal)
        out["check_readable(ns, p)"] = per_call_us(
            lambda: registry.check_readable(PRIVATE_NS, principal), number)
        out["get_skill(ns, name, p)"] = per_call_us(
            lambda: registry.get_skill(PRIVATE_NS, SKILL, principal), max(1, number // 10))
    finally:
        registry.close()
    return out


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    registry = open_registry(home)
    accounts = has_accounts(registry)
    try:
        pub_token = registry.create_token(PUBLIC_NS, "bench", private=False)
        priv_token = registry.create_token(PRIVATE_NS, "bench", private=True)
        for i in range(args.extra_namespaces):  # empty public namespaces (rows only, no git)
            registry.store.namespaces.ensure_namespace(f"extra{i:05d}", "public")
        if accounts:
            from skills_hub.access.principal import OPERATOR
            registry.add_user(USER, password=PASSWORD)
            registry.set_member(OPERATOR, PRIVATE_NS, USER, "reader")
    finally:
        registry.close()

    served = server_code(home)
    mine = str(Path(skills_hub.__file__).resolve().parent)
    if served != mine:
        raise RuntimeError(f"the server would import {served}, this process {mine}")
    url, process = start_server(home)
    results: dict[str, dict[str, float]] = {}
    session_id: str | None = None
    try:
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S) as client:
            for ns, token in ((PUBLIC_NS, pub_token), (PRIVATE_NS, priv_token)):
                files = [("files", ("SKILL.md", skill_md(SKILL, "Probe skill for the access "
                                                         "bench, reads a table."),
                                    "text/markdown"))]
                response = client.post(f"/api/v1/namespaces/{ns}/skills", files=files,
                                       headers={"Authorization": f"Bearer {token}"})
                if response.status_code != 201:
                    raise RuntimeError(f"publish to {ns}: {response.status_code} "
                                       f"{response.text[:300]}")
            path_pub = f"/api/v1/skills/{PUBLIC_NS}/{SKILL}"
            path_priv = f"/api/v1/skills/{PRIVATE_NS}/{SKILL}"
            # the private skill must be hidden from anonymous callers, or the cases mean nothing
            hidden = client.get(path_priv).status_code
            if hidden != 404:
                raise RuntimeError(f"anonymous read of the private skill gave {hidden}")
            cases: list[tuple[str, str, dict[str, str]]] = [
                ("public, anonymous", path_pub, {}),
                ("private, bearer token", path_priv, {"Authorization": f"Bearer {priv_token}"}),
            ]
            if accounts:
                response = client.post("/api/v1/auth/session",
                                       json={"username": USER, "password": PASSWORD})
                if response.status_code != 200:
                    raise RuntimeError(f"sign-in: {response.status_code} {response.text[:300]}")
                from skills_hub.web.auth import SESSION_COOKIE
                session_id = response.cookies.get(SESSION_COOKIE)
                client.cookies.clear()  # the cookie goes only with the session case
                assert session_id
                cases.append(("private, session cookie", path_priv,
                              {"Cookie": f"{SESSION_COOKIE}={session_id}"}))
            for name, path, headers in cases:
                log(f"measuring {name}: {args.warmup} warm-up + {args.n} requests")
                results[name] = measure(client, path, headers, args.n, args.warmup)
    finally:
        stop_server(process)

    log("timing in-process calls")
    calls = in_process(home, priv_token, session_id, args.number)
    return {"cases": results, "in_process_us": calls, "accounts": accounts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="timed requests per case")
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per case")
    parser.add_argument("--number", type=int, default=2000,
                        help="calls per timeit repeat in-process (policy.allowed: 10x)")
    parser.add_argument("--extra-namespaces", type=int, default=0,
                        help="add this many empty public namespaces (index rows) first")
    parser.add_argument("--label", default=None, help="name of the code measured, printed")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway home")
    args = parser.parse_args(argv)

    label = code_label(args.label)
    _, module = load_registry_class()
    home = Path(tempfile.mkdtemp(prefix="access-bench-"))
    try:
        res = run(args, home)
    finally:
        if args.keep:
            log(f"home kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    print(f"code: {label}; Registry from {module}; accounts: {'yes' if res['accounts'] else 'no'}")
    print(f"machine: nproc {os.cpu_count()}, Python {platform.python_version()}; "
          f"n={args.n}, warm-up {args.warmup}, extra namespaces {args.extra_namespaces}, "
          "one keep-alive client, sequential")
    print()
    print(f"{'GET /api/v1/skills/{ns}/{name}':<28} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
          f"{'req/s':>8}")
    for name, fig in res["cases"].items():
        print(f"{name:<28} {fig['p50_ms']:8.3f} {fig['p90_ms']:8.3f} {fig['p99_ms']:8.3f} "
              f"{fig['rps']:8.0f}")
    if not res["accounts"]:
        print(f"{'private, session cookie':<28} {'skipped: no sessions in this code':>35}")
    print()
    calls = dict(res["in_process_us"])
    print(f"{'in-process call':<32} {'us/call':>8}   ({calls.pop('namespaces')} namespaces)")
    for name, value in calls.items():
        print(f"{name:<32} {value:8.2f}")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"label": label, "module": module,
                                         "params": vars(args) | {"json": str(args.json)},
                                         **res}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
