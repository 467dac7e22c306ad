"""The learning loop under a simulated population of agents, through the real HTTP API.

Starts `skills-hub serve` (as `python -m skills_hub.cli serve --port P [--workers N]`) on a
free 127.0.0.1 port with a throwaway SKILLS_HUB_HOME, SKILLS_HUB_NO_SEED=1,
SKILLS_HUB_SEMANTIC=off (keyword search; `--semantic` changes it) and the per-token outcome
rate limit raised out of the way (SKILLS_HUB_OUTCOME_RATE and SKILLS_HUB_OUTCOME_BURST =
1e9: the bench sends over a million reports with three tokens; the default, 500/s and a
burst of 5,000 per token, would otherwise be what is measured). Every agent is simulated in
this process; everything the registry decides, it decides in the server from the reports.
The skills are published (and canary edits proposed) with their namespace's token; the
agents report and search with a token of another account (`agents`), since an author's
own reports (a proposer's included) do not count.

1. Ranking convergence. K skills (true success rates `--rates`, default 0.55, 0.65, 0.70,
   0.75, 0.85) with the same description and body, differing only in their equally long
   names, so that keyword relevance ties and only outcome quality orders them. Which name
   gets which rate is shuffled per run (at equal quality names break ties). Each run
   publishes its own K skills with a run tag and searches with `tag=` so runs do not
   compete. Rounds of `--round` outcomes: each simulated agent picks a skill, draws
   success with that skill's true rate and reports it (one POST per skill per round, each
   report with a client id from a pool of `--clients`); after the round the bench searches
   `q=tidy messy csv files` with sort=relevance (as one agent of the population, its
   `client_id` drawn per round: it seeds the registry's exploration) and sort=rating. Two
   policies: `uniform` (every pick uniform over the K) and `greedy` (the top result of the
   last relevance search with probability 1 - epsilon, else uniform; epsilon `--epsilon`
   0.1). "First" is the registry's plain order (`score_parts.explore.plain_rank` on a page
   that explores). Per run: the total outcomes after the first round in which the truly
   best skill is first, and the total from which it is first after every later round up to
   the horizon
   (`--horizon` outcomes; a run where it is not first at the end has not converged).
   Median, p90 and max over `--rank-seeds` runs per policy (nearest rank; a run that did
   not converge counts as infinitely late).
2. Canaries. Per trial a fresh skill: version 1.0.0 (true rate `--stable-rate` 0.70) gets
   `--stable-outcomes` (200) reports, then an edit is proposed (POST .../proposals, one
   `replace` edit) and accepted by the namespace's maintainer as a canary (POST
   .../review, canary `--share` 0.2), which publishes 1.0.1 with true rate 0.70 + delta.
   Then agents drawn uniformly from a population of `--clients` (2,000) client ids use the
   skill: a client resolves `latest` through GET .../resolve?client_id= the first time it
   is drawn in the trial (an install; later uses reuse that answer), uses the version it
   got and reports the outcome. Reports go out `--batch` (50) at a time, one POST per
   batch, and after each POST the bench reads GET .../outcomes; the first batch after
   which the canary is `promoted` or `rolled_back` is the decision point (measured with
   that granularity). A trial stops there, or after `--cap` canary-phase outcomes
   (undecided). The canary's own count is the server's (decision.canary.outcomes); "total"
   counts both versions' outcomes since the canary started (the stable version's
   pre-canary reports are not included). Each resolve's channel is checked against
   `gate.in_canary`, and after the decision `latest` against the outcome. Trials run
   `--threads` at a time, each over its own keep-alive connection; every trial has its
   own seeded RNG, so the figures do not depend on scheduling.
   A model run of the same trials in-process against `gate.canary_decision` (no server:
   many more trials, and per-report decisions as well as per-batch ones) follows, to show
   the sampling noise of the API figures and what the batch size changes.
3. Throughput: POST .../outcomes with `--tp-reports` reports per configuration, in
   batches of 1000 and 100, from 1, 4 and 8 threads (one keep-alive httpx.Client each,
   one skill each, request bodies encoded before the clock starts, released together at a
   barrier). reports/s = reports over the wall time from the barrier to the last
   response; latency is per request (nearest-rank p50/p95). Run against the server of
   parts 1-2 (one worker), then again against `skills-hub serve --workers N` on the same
   home (`--workers`, default 2; 1 skips it). Also per server: sequential GET
   /api/v1/health latency (the transport's share), and on the one-worker server batch 100
   from one thread to a skill that already has `--wide-clients` distinct clients (a
   popular skill; filled untimed). The clients share the machine's cores with the server,
   so the rate is a lower bound of the server alone.

4. One client floods (`--parts flood`): K skills as in part 1 get `--flood-honest` (3,000)
   outcomes from the population, then one client (a token of its own, one client id)
   sends `--flood` (5,000) successes to the truly worst skill, half of them naming one task
   again and again. The plain order before and after, the flooded skill's counted gain, and
   where it would rank had every report counted. `--flood-runs` (5) runs.
5. The best skill differs by kind of task (`--parts kinds`): evidence per kind of task
   (`learning.tasks`). Three skills with one text (names of equal length), true success
   rates per kind `chart` / `map` 0.85/0.45, 0.45/0.85 and 0.65/0.65 (KIND_PROFILES,
   shuffled over the names per run): 0.65 each over both kinds, so the global numbers tie
   and only evidence per kind separates them. In rounds of `--kinds-round` (50) outcomes
   the population reports on a kind and a skill drawn uniformly, every report naming its
   task: a paraphrase of its kind with a number (KIND_TASKS; a task of its own, as one
   token reports for all). After each round the bench searches each kind's held-out query
   (KIND_QUERIES, none of the report texts) with mode=hybrid, tag= and sort=relevance and
   reads the plain order; and, as a control, the same results ranked with the task
   evidence ignored (`global_order`: relevance times the quality of the global counts).
   Per kind: the outcomes until its best skill is first (first time / for good, as in part
   1), whether it is first at the horizon (`--kinds-horizon` 1,500), and the top results'
   `score_parts.task`. Semantic search must be on: the part runs on a server of its own
   (own home, SKILLS_HUB_SEMANTIC=auto, whatever `--semantic` says), waits for the model
   and each run for its skills' vectors. `--kinds-runs` (5; quick 2) runs, one at a time.

Aims (marked met/MISSED; nothing is asserted): greedy clients find the best skill for good
by p90 500 outcomes; a worse canary (delta < 0) is promoted in under 2 % of trials, an
equal one under 5 %, one 0.05 better in at least 90 %; a flood never moves the flooded
skill up; each kind of task's best skill is first at the end of every run; >= 2,000
reports/s in batches. Deterministic for a given `--seed` (server-side
timestamps and the hour that seeds exploration aside). Loopback only; every wait and loop
has a limit.

    .venv/bin/python bench/loop_sim.py [--quick] [--parts rank,canary,flood,kinds,throughput]
        [--seed 1] [--workers 2] [--threads 4] [--json PATH] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from skills_hub.learning import gate  # noqa: E402 - after the path set-up above
from skills_hub.ranking.quality import quality  # noqa: E402
from skills_hub.search.fusion import final_score  # noqa: E402

START_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 120
AIM_WORSE_PROMOTED = 0.02
AIM_EQUAL_PROMOTED = 0.05
AIM_BETTER_PROMOTED = 0.90  # a canary AIM_BETTER_DELTA better than the stable version
AIM_BETTER_DELTA = 0.05
AIM_GREEDY_P90 = 500        # outcomes until greedy clients' best skill is first for good
AIM_REPORTS_PER_S = 2000.0
RANK_NS, CANARY_NS, LOAD_NS = "rank", "canary", "load"
PARTS = ("rank", "canary", "flood", "kinds", "throughput")
DEFAULT_PARTS = PARTS
AGENTS_NS = "agents"  # the simulated agents' token is of this namespace, not the skills'
QUERY = "tidy messy csv files"
AGENTS = ("claude-code", "codex", "hermes", "opencode")
MODELS = ("model-a", "model-b", "model-c")
FAILURE_KINDS = ("wrong_result", "error", "timeout", "incomplete")
DEFAULTS: dict[str, Any] = {
    "rates": "0.55,0.65,0.70,0.75,0.85", "rank_seeds": 20, "horizon": 5000, "round": 50,
    "epsilon": 0.1, "deltas": "-0.10,-0.05,0,0.05,0.10,0.15", "trials": 50,
    "stable_rate": 0.70, "stable_outcomes": 200, "share": 0.2, "batch": 50, "clients": 2000,
    "cap": 25000, "model_trials": 600, "flood_runs": 5, "flood_honest": 3000,
    "flood": 5000, "tp_reports": 60000, "wide_clients": 100_000, "kinds_runs": 5,
    "kinds_horizon": 1500, "kinds_round": 50,
}
QUICK: dict[str, Any] = {"rank_seeds": 5, "horizon": 3000, "trials": 10, "model_trials": 300,
                         "tp_reports": 20000, "wide_clients": 50_000, "kinds_runs": 2}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- statistics and simulated agents (pure; tests/test_bench_loop.py) --------------------

def pct(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values; inf passes through."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) / 100)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float | int]:
    return {"n": len(values), "median": pct(values, 50), "p90": pct(values, 90),
            "max": pct(values, 100)}


def seed_for(*parts: object) -> int:
    """A stable seed from parts (str hashing is randomised per process; this is not)."""
    value = 0
    for char in ":".join(str(p) for p in parts):
        value = (value * 1_000_003 + ord(char)) % (2**61 - 1)
    return value


def convergence(history: Sequence[tuple[int, bool]]) -> tuple[int | None, int | None]:
    """From (outcomes so far, best skill first?) after each round, in order: the outcomes
    at the first round where it is first, and at the round from which it is first in
    every later round (None when it never is / is not first at the end)."""
    first = next((n for n, top in history if top), None)
    stays = None
    for n, top in reversed(history):
        if not top:
            break
        stays = n
    return first, stays


def pick_skill(rng: random.Random, k: int, policy: str, top: int | None,
               epsilon: float) -> int:
    """Which of k skills an agent uses: uniform, or greedy (the current top result with
    probability 1 - epsilon, else uniform over all k)."""
    if policy == "greedy" and top is not None and rng.random() >= epsilon:
        return top
    return rng.randrange(k)


def make_report(rng: random.Random, report_id: str, version: str, success: bool,
                client_id: str) -> dict[str, Any]:
    """One outcome report as an agent sends it, with plausible implicit signals."""
    report: dict[str, Any] = {
        "id": report_id, "version": version, "outcome": "success" if success else "failure",
        "client": {"id": client_id, "agent": AGENTS[rng.randrange(len(AGENTS))],
                   "model": MODELS[rng.randrange(len(MODELS))]},
        "signals": {"task_accepted": success, "retries": 0 if success else rng.randrange(3)},
    }
    if not success:
        report["failure_kind"] = FAILURE_KINDS[rng.randrange(len(FAILURE_KINDS))]
    return report


def client_ids(count: int) -> list[str]:
    return [f"agent-{i:05d}" for i in range(count)]


def delta_label(delta: float) -> str:
    """-0.05 -> 'm005', 0 -> 'z000', 0.1 -> 'p010' (usable in skill names)."""
    hundredths = round(delta * 100)
    sign = "m" if hundredths < 0 else ("p" if hundredths > 0 else "z")
    return f"{sign}{abs(hundredths):03d}"


def skill_md(name: str, tags: str = "") -> str:
    """The SKILL.md every simulated skill shares (only the name differs)."""
    tag_line = f"metadata:\n  tags: \"{tags}\"\n" if tags else ""
    return (f"---\nname: {name}\ndescription: \"Tidy messy CSV files before analysis: fix "
            "the header row, column types, stray whitespace and empty rows.\"\nlicense: MIT\n"
            f"{tag_line}---\n# Tidy CSV files\n\n## When to use\n\nA CSV file is about to be "
            "loaded for analysis and looks messy.\n\n## Steps\n\n1. Read the file and detect "
            "its delimiter and encoding.\n2. Drop rows that are empty.\n3. Strip stray "
            "whitespace from every cell.\n4. Write the tidy file next to the "
            "original.\n")


EDIT_TARGET = "2. Drop rows that are empty."
EDIT_CONTENT = "2. Drop rows that are empty or hold only separators."


@dataclass
class CanaryTrial:
    """One canary trial: how the server decided, and after how many outcomes."""

    delta: float
    index: int
    name: str = ""
    state: str = "undecided"  # promoted | rolled_back | undecided | error
    why: str = ""             # better | worse | max (rolled back without separation)
    canary_n: int = 0         # the canary's counted outcomes (the server's, at the decision)
    stable_n: int = 0         # the stable version's, pre-canary reports included
    total: int = 0            # outcomes on both versions since the canary started
    resolves: int = 0
    resolved_canary: int = 0
    mismatches: int = 0       # resolve's channel differed from gate.in_canary
    latest_ok: bool | None = None
    posts: int = 0
    wall_s: float = 0.0
    error: str = ""


def decision_kind(decision: dict[str, Any] | None) -> str:
    """better / worse (the intervals separated) or max (rolled back at the cap)."""
    if not decision:
        return ""
    if decision.get("rule"):  # the sequential gate records which rule decided
        return str(decision["rule"])
    canary, stable = decision.get("canary", {}), decision.get("stable", {})
    if decision.get("action") == gate.PROMOTE:
        return "better"
    if canary.get("wilson_upper", 1.0) < stable.get("wilson_lower", 0.0):
        return "worse"
    return "max"


def tally(trials: Sequence[CanaryTrial]) -> list[dict[str, Any]]:
    """Per delta: shares of each outcome and the outcomes each decision took."""
    rows = []
    for delta in sorted({t.delta for t in trials}):
        mine = [t for t in trials if t.delta == delta]
        n = len(mine)
        decided = [t for t in mine if t.state in ("promoted", "rolled_back")]
        promoted = [t for t in mine if t.state == "promoted"]
        rolled = [t for t in mine if t.state == "rolled_back"]

        def share(items: Sequence[CanaryTrial], n: int = n) -> float:
            return len(items) / n if n else float("nan")

        rows.append({
            "delta": delta, "trials": n,
            "promoted": share(promoted), "rolled_back": share(rolled),
            "rolled_back_worse": share([t for t in rolled if t.why == "worse"]),
            "rolled_back_max": share([t for t in rolled if t.why == "max"]),
            "undecided": share([t for t in mine if t.state == "undecided"]),
            "errors": sum(1 for t in mine if t.state == "error"),
            "canary_n": summary([t.canary_n for t in decided]),
            "total": summary([t.total for t in decided]),
            "promoted_canary_n": summary([t.canary_n for t in promoted]),
            "promoted_total": summary([t.total for t in promoted]),
            "resolves": summary([t.resolves for t in mine]),
            "realised_share": (sum(t.resolved_canary for t in mine)
                               / max(1, sum(t.resolves for t in mine))),
        })
    return rows


def model_trial(rng: random.Random, stable_rate: float, delta: float, *, pre: int,
                share: float, batch: int, cap: int) -> tuple[str, int, int]:
    """The canary trial of part 2 in-process against gate.canary_decision: each outcome
    is the canary's with probability `share`; the gate judges after every `batch`.
    Returns (promote | roll_back | wait, canary outcomes, total since the canary)."""
    canary_rate = min(1.0, max(0.0, stable_rate + delta))
    s_succ = sum(rng.random() < stable_rate for _ in range(pre))
    s_n, c_succ, c_n, total = pre, 0, 0, 0
    while total < cap:
        for _ in range(batch):
            if rng.random() < share:
                c_n += 1
                c_succ += rng.random() < canary_rate
            else:
                s_n += 1
                s_succ += rng.random() < stable_rate
        total += batch
        if c_n < gate.CANARY_MIN_OUTCOMES or s_n < gate.CANARY_MIN_OUTCOMES:
            continue
        action = gate.canary_decision(gate.Interval(c_succ, c_n),
                                      gate.Interval(s_succ, s_n)).action
        if action != gate.WAIT:
            return action, c_n, total
    return gate.WAIT, c_n, total


def model_run(deltas: Sequence[float], trials: int, *, seed: int, stable_rate: float,
              pre: int, share: float, batch: int, cap: int) -> list[dict[str, Any]]:
    rows = []
    for delta in deltas:
        rng = random.Random(seed_for("model", seed, delta, batch))
        runs = [model_trial(rng, stable_rate, delta, pre=pre, share=share, batch=batch,
                            cap=cap) for _ in range(trials)]
        promoted = [r for r in runs if r[0] == gate.PROMOTE]
        decided = [r for r in runs if r[0] != gate.WAIT]
        rows.append({
            "delta": delta, "batch": batch, "trials": trials,
            "promoted": len(promoted) / trials,
            "rolled_back": sum(1 for r in runs if r[0] == gate.ROLL_BACK) / trials,
            "undecided": (trials - len(decided)) / trials,
            "canary_n": summary([r[1] for r in decided]),
            "total": summary([r[2] for r in decided]),
            "promoted_total": summary([r[2] for r in promoted]),
        })
    return rows


# -- the server under test ---------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(home: Path, semantic: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SKILLS_HUB_", "GIT_"))}
    env.update(SKILLS_HUB_HOME=str(home), SKILLS_HUB_NO_SEED="1", SKILLS_HUB_SEMANTIC=semantic,
               SKILLS_HUB_OUTCOME_RATE="1e9", SKILLS_HUB_OUTCOME_BURST="1e9")
    return env


@dataclass
class Server:
    url: str
    workers: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(home: Path, log_path: Path, *, workers: int, semantic: str) -> Server:
    port = free_port()
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "skills_hub.cli", "serve", "--port", str(port),
             "--workers", str(workers)],
            env=server_env(home, semantic), stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}); see {log_path}")
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return Server(url, workers, process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the server did not start in {START_TIMEOUT_S}s; see {log_path}")


def make_token(home: Path, namespace: str, semantic: str) -> str:
    out = subprocess.run([sys.executable, "-m", "skills_hub.cli", "token", "create", namespace,
                          "--home", str(home)], capture_output=True, text=True, check=True,
                         env=server_env(home, semantic), timeout=120)
    return out.stdout.strip().splitlines()[-1]


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants (uvicorn workers)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu.get(current, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Api:
    """The few calls the simulated agents and maintainers make, on one keep-alive client."""

    def __init__(self, url: str, token: str, agent_token: str | None = None) -> None:
        self.http = httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_S,
                                 headers={"Authorization": f"Bearer {token}"})
        # The agents report and search with a token of their own: outcomes from the token
        # that published (or proposed) a version do not count (authors rating their work).
        self.agent = self.http if agent_token is None else httpx.Client(
            base_url=url, timeout=HTTP_TIMEOUT_S,
            headers={"Authorization": f"Bearer {agent_token}"})

    def close(self) -> None:
        self.http.close()
        if self.agent is not self.http:
            self.agent.close()

    def _ok(self, response: httpx.Response, *codes: int) -> Any:
        if response.status_code not in (codes or (200,)):
            raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                               f"{response.status_code} {response.text[:300]}")
        return response.json()

    def publish(self, namespace: str, name: str, text: str, version: str) -> str:
        response = self.http.post(
            f"/api/v1/namespaces/{namespace}/skills", data={"version": version},
            files=[("files", ("SKILL.md", text.encode(), "text/markdown"))])
        return str(self._ok(response, 201)["version"])

    def report(self, namespace: str, name: str, reports: list[dict[str, Any]]) -> None:
        body = self._ok(self.agent.post(f"/api/v1/skills/{namespace}/{name}/outcomes",
                                        json={"outcomes": reports}))
        if body["recorded"] != len(reports):
            raise RuntimeError(f"{name}: {body['recorded']} of {len(reports)} recorded")

    def summary(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self._ok(self.agent.get(f"/api/v1/skills/{namespace}/{name}/outcomes")))

    def resolve(self, namespace: str, name: str, client_id: str) -> dict[str, Any]:
        return dict(self._ok(self.agent.get(f"/api/v1/skills/{namespace}/{name}/resolve",
                                            params={"client_id": client_id})))

    def search(self, query: str, *, tag: str, sort: str, limit: int = 20,
               client_id: str | None = None, mode: str | None = None) -> list[dict[str, Any]]:
        return list(self.search_body(query, tag=tag, sort=sort, limit=limit,
                                     client_id=client_id, mode=mode)["results"])

    def search_body(self, query: str, *, tag: str | None = None, sort: str = "relevance",
                    limit: int = 20, client_id: str | None = None,
                    mode: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"q": query, "sort": sort, "limit": limit}
        for key, value in (("tag", tag), ("client_id", client_id), ("mode", mode)):
            if value is not None:
                params[key] = value
        return dict(self._ok(self.agent.get("/api/v1/search", params=params)))

    def propose(self, namespace: str, name: str, base: str, target: str, content: str,
                evidence: dict[str, Any]) -> str:
        # Proposed with the namespace's token: a proposer is an author of the version its
        # edit makes, and the agents' reports on the canary must count.
        body = self._ok(self.http.post(f"/api/v1/skills/{namespace}/{name}/proposals", json={
            "base_version": base, "edits": [{"op": "replace", "target": target,
                                             "content": content}],
            "evidence": evidence, "reasoning": "agents fail on files with separator-only rows"}),
            201)
        return str(body["id"])

    def accept(self, namespace: str, name: str, proposal: str, share: float) -> str:
        body = self._ok(self.http.post(
            f"/api/v1/skills/{namespace}/{name}/proposals/{proposal}/review",
            json={"decision": "accept", "comment": "try it on a share of clients first",
                  "canary": share}))
        return str(body["version"])


class ApiPool:
    """One Api (connection) per thread."""

    def __init__(self, url: str, token: str, agent_token: str | None = None) -> None:
        self.url, self.token, self.agent_token = url, token, agent_token
        self._local = threading.local()
        self._all: list[Api] = []
        self._lock = threading.Lock()

    def get(self) -> Api:
        api = getattr(self._local, "api", None)
        if api is None:
            api = self._local.api = Api(self.url, self.token, self.agent_token)
            with self._lock:
                self._all.append(api)
        return api

    def close(self) -> None:
        for api in self._all:
            api.close()


# -- part 1: ranking convergence ---------------------------------------------------------

@dataclass
class RankRun:
    policy: str
    run: int
    rates: dict[str, float] = field(default_factory=dict)
    best: str = ""
    history: list[tuple[int, bool, bool]] = field(default_factory=list)  # n, rel, rating
    picks: dict[str, int] = field(default_factory=dict)
    explored: int = 0         # rounds whose relevance page explored (score_parts.explore)
    served_other: int = 0     # ... whose first result was not the plain order's first
    late_rounds: int = 0      # rounds in the second half of the horizon
    late_served_other: int = 0
    relevance_spread: float = 0.0  # max - min relevance of the K results, worst round
    final_order: list[str] = field(default_factory=list)
    error: str = ""

    def points(self, sort: str) -> tuple[int | None, int | None]:
        return convergence([(n, rel if sort == "relevance" else rating)
                            for n, rel, rating in self.history])


def rank_run(pool: ApiPool, policy: str, run: int, *, seed: int, rates: Sequence[float],
             horizon: int, round_size: int, epsilon: float,
             clients: Sequence[str]) -> RankRun:
    api = pool.get()
    result = RankRun(policy, run)
    rng = random.Random(seed_for("rank", seed, policy, run))
    letters = "abcdefghijklmnopqrstuvwxyz"[:len(rates)]
    names = [f"tidy-csv-{policy[0]}{run:03d}-{letter}" for letter in letters]
    shuffled = list(rates)
    rng.shuffle(shuffled)
    result.rates = dict(zip(names, shuffled, strict=True))
    result.best = max(names, key=lambda n: result.rates[n])
    result.picks = dict.fromkeys(names, 0)
    tag = f"loop-{policy}-{run:03d}"
    try:
        for name in names:
            api.publish(RANK_NS, name, skill_md(name, tags=tag), "1.0.0")

        def ranked(sort: str, client: str | None = None) -> list[dict[str, Any]]:
            found = api.search(QUERY, tag=tag, sort=sort, client_id=client)
            if sorted(r["name"] for r in found) != sorted(names):
                raise RuntimeError(f"search {tag} found {[r['name'] for r in found]}")
            return found

        top = names.index(ranked("relevance", clients[rng.randrange(len(clients))])[0]["name"])
        total = 0
        while total < horizon:
            batches: dict[int, list[dict[str, Any]]] = {}
            for j in range(round_size):
                i = pick_skill(rng, len(names), policy, top, epsilon)
                success = rng.random() < result.rates[names[i]]
                batches.setdefault(i, []).append(make_report(
                    rng, f"{names[i]}-{total + j}", "1.0.0", success,
                    clients[rng.randrange(len(clients))]))
            for i, reports in sorted(batches.items()):
                api.report(RANK_NS, names[i], reports)
                result.picks[names[i]] += len(reports)
            total += round_size
            # The agents of the next round use the page one of them gets (its client id
            # seeds the exploration); the registry's own order is the plain one.
            by_relevance = ranked("relevance", clients[rng.randrange(len(clients))])
            by_rating = ranked("rating")
            relevances = [r["score_parts"]["relevance"] for r in by_relevance]
            result.relevance_spread = max(result.relevance_spread,
                                          max(relevances) - min(relevances))
            top = names.index(by_relevance[0]["name"])
            plain = plain_first(by_relevance)
            result.explored += "explore" in by_relevance[0]["score_parts"]
            result.served_other += by_relevance[0]["name"] != plain
            if total > horizon // 2:
                result.late_rounds += 1
                result.late_served_other += by_relevance[0]["name"] != plain
            result.history.append((total, plain == result.best,
                                   by_rating[0]["name"] == result.best))
            result.final_order = [r["name"] for r in by_relevance]
    except Exception as exc:  # reported, and the run left out of the figures
        result.error = f"{type(exc).__name__}: {exc}"[:400]
    return result


def plain_first(results: Sequence[dict[str, Any]]) -> str:
    """The name first in the registry's plain order: on a page that explores, the result
    whose `score_parts.explore.plain_rank` is 1; otherwise the first result."""
    for result in results:
        explore = result["score_parts"].get("explore")
        if explore is not None and explore["plain_rank"] == 1:
            return str(result["name"])
    return str(results[0]["name"])


def rank_figures(runs: Sequence[RankRun], horizon: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for policy in dict.fromkeys(r.policy for r in runs):
        mine = [r for r in runs if r.policy == policy and not r.error]
        entry: dict[str, Any] = {"runs": len(mine),
                                 "errors": sum(1 for r in runs if r.policy == policy and r.error)}
        for sort in ("relevance", "rating"):
            points = [r.points(sort) for r in mine]
            first = [math.inf if p[0] is None else float(p[0]) for p in points]
            stays = [math.inf if p[1] is None else float(p[1]) for p in points]
            entry[sort] = {"first": summary(first), "stays": summary(stays),
                           "not_converged": sum(1 for s in stays if s == math.inf),
                           "first_at_end": sum(1 for r in mine if r.history and
                                               r.history[-1][1 if sort == "relevance" else 2])}
        picks = sum(r.picks[r.best] for r in mine)
        entry["best_pick_share"] = picks / max(1, sum(sum(r.picks.values()) for r in mine))
        entry["max_relevance_spread"] = max((r.relevance_spread for r in mine), default=0.0)
        rounds = sum(len(r.history) for r in mine)
        entry["explored_share"] = sum(r.explored for r in mine) / max(1, rounds)
        entry["served_other_share"] = sum(r.served_other for r in mine) / max(1, rounds)
        entry["late_served_other_share"] = (sum(r.late_served_other for r in mine)
                                            / max(1, sum(r.late_rounds for r in mine)))
        entry["horizon"] = horizon
        out[policy] = entry
    return out


# -- part 2: canaries --------------------------------------------------------------------

def canary_trial(pool: ApiPool, trial: CanaryTrial, *, seed: int, stable_rate: float,
                 pre: int, share: float, batch: int, clients: Sequence[str],
                 cap: int) -> CanaryTrial:
    api = pool.get()
    started = time.perf_counter()
    rng = random.Random(seed_for("canary", seed, trial.delta, trial.index))
    name = trial.name = f"canary-{delta_label(trial.delta)}-{trial.index:04d}"
    sent = 0

    def reports(count: int, pick: Callable[[str], str],
                rates: dict[str, float]) -> list[dict[str, Any]]:
        nonlocal sent
        out = []
        for _ in range(count):
            client = clients[rng.randrange(len(clients))]
            version = pick(client)
            out.append(make_report(rng, f"{name}-{sent}", version,
                                   rng.random() < rates[version], client))
            sent += 1
        return out

    try:
        stable = api.publish(CANARY_NS, name, skill_md(name), "1.0.0")
        rates = {stable: stable_rate}
        for start in range(0, pre, batch):  # no canary yet: latest is 1.0.0 for everyone
            api.report(CANARY_NS, name, reports(min(batch, pre - start), lambda c: stable,
                                                rates))
        proposal = api.propose(CANARY_NS, name, stable, EDIT_TARGET, EDIT_CONTENT,
                               {"outcomes": pre, "note": "fails on separator-only rows"})
        version = api.accept(CANARY_NS, name, proposal, share)
        rates[version] = min(1.0, max(0.0, stable_rate + trial.delta))
        installed: dict[str, str] = {}

        def resolved(client: str) -> str:
            got = installed.get(client)
            if got is None:
                answer = api.resolve(CANARY_NS, name, client)
                got = installed[client] = str(answer["version"])
                in_canary = answer["channel"] == "canary"
                trial.resolves += 1
                trial.resolved_canary += in_canary
                expected = gate.in_canary(CANARY_NS, name, version, client, share)
                trial.mismatches += in_canary != expected or got != (
                    version if expected else stable)
            return got

        while trial.total < cap:
            api.report(CANARY_NS, name, reports(batch, resolved, rates))
            trial.posts += 1
            trial.total += batch
            body = api.summary(CANARY_NS, name)
            canary = next(c for c in body["canaries"] if c["version"] == version)
            if canary["state"] != "active":
                trial.state = str(canary["state"])
                decision = canary["decision"] or {}
                trial.why = decision_kind(decision)
                trial.canary_n = int(decision.get("canary", {}).get("outcomes", 0))
                trial.stable_n = int(decision.get("stable", {}).get("outcomes", 0))
                break
        else:
            counts = {v["version"]: v["successes"] + v["failures"]
                      for v in api.summary(CANARY_NS, name)["versions"]}
            trial.canary_n, trial.stable_n = counts.get(version, 0), counts.get(stable, 0)
        after = api.resolve(CANARY_NS, name, "a-client-after-the-decision")
        expected_latest = version if trial.state == "promoted" else stable
        trial.latest_ok = after["version"] == expected_latest if trial.state != "undecided" \
            else None
    except Exception as exc:  # reported, and the trial left out of the figures
        trial.state, trial.error = "error", f"{type(exc).__name__}: {exc}"[:400]
    trial.wall_s = time.perf_counter() - started
    return trial


# -- part 4: one client floods ---------------------------------------------------------

@dataclass
class FloodRun:
    """One flood: the K skills' plain order before and after one client floods the worst."""

    run: int
    rates: dict[str, float] = field(default_factory=dict)
    flooded: str = ""
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    counted_before: int = 0     # the flooded skill's counted successes
    counted_after: int = 0
    discounted: int = 0         # its reports stored but not counted
    unguarded_rank: int = 0     # where it would rank if every flooded report counted
    error: str = ""


def plain_order(results: Sequence[dict[str, Any]]) -> list[str]:
    """The names in the registry's plain order (a page that explores says each result's
    place without exploration in `score_parts.explore.plain_rank`)."""
    def rank(pair: tuple[int, dict[str, Any]]) -> int:
        explore = pair[1]["score_parts"].get("explore")
        return int(explore["plain_rank"]) if explore else pair[0]
    return [r["name"] for _, r in sorted(enumerate(results, start=1), key=rank)]


def flood_run(pool: ApiPool, flooder: Api, run: int, *, seed: int, rates: Sequence[float],
              honest: int, flood: int, clients: Sequence[str]) -> FloodRun:
    """K skills get `honest` outcomes from the population (uniform picks); then one client
    (its own token, one client id) sends `flood` successes to the truly worst skill, half
    of them naming one task again and again, half naming none."""
    api = pool.get()
    result = FloodRun(run)
    rng = random.Random(seed_for("flood", seed, run))
    letters = "abcdefghijklmnopqrstuvwxyz"[:len(rates)]
    names = [f"tidy-csv-f{run:03d}-{letter}" for letter in letters]
    shuffled = list(rates)
    rng.shuffle(shuffled)
    result.rates = dict(zip(names, shuffled, strict=True))
    result.flooded = min(names, key=lambda n: result.rates[n])
    tag = f"loop-flood-{run:03d}"
    try:
        for name in names:
            api.publish(RANK_NS, name, skill_md(name, tags=tag), "1.0.0")
        batches: dict[str, list[dict[str, Any]]] = {}
        for j in range(honest):
            name = names[rng.randrange(len(names))]
            batches.setdefault(name, []).append(make_report(
                rng, f"{name}-{j}", "1.0.0", rng.random() < result.rates[name],
                clients[rng.randrange(len(clients))]))
        for name, reports in batches.items():
            for start in range(0, len(reports), 1000):
                api.report(RANK_NS, name, reports[start:start + 1000])
        result.before = plain_order(api.search(QUERY, tag=tag, sort="relevance"))

        def counts() -> tuple[int, int, int]:
            version = api.summary(RANK_NS, result.flooded)["versions"][0]
            return version["successes"], version["failures"], version["discounted"]

        result.counted_before, failures, _ = counts()
        for start in range(0, flood, 1000):
            reports = []
            for j in range(start, min(flood, start + 1000)):
                report = make_report(rng, f"flood-{result.flooded}-{j}", "1.0.0", True,
                                     "flooder")
                if j % 2:
                    report["task"] = "tidy the same csv file"
                reports.append(report)
            flooder.report(RANK_NS, result.flooded, reports)
        result.after = plain_order(api.search(QUERY, tag=tag, sort="relevance"))
        result.counted_after, _, result.discounted = counts()
        # Unguarded: every flooded report counted, the others' quality as shown.
        shown = {r["name"]: r["score_parts"] for r in api.search(QUERY, tag=tag,
                                                                  sort="relevance")}
        unguarded = {n: p["quality"] for n, p in shown.items()}
        unguarded[result.flooded] = quality(result.counted_before + flood, failures, 0).quality
        order = sorted(names, key=lambda n: (-unguarded[n], result.before.index(n)))
        result.unguarded_rank = order.index(result.flooded) + 1
    except Exception as exc:  # reported, and the run left out of the figures
        result.error = f"{type(exc).__name__}: {exc}"[:400]
    return result


def flood_figures(runs: Sequence[FloodRun], flood: int) -> dict[str, Any]:
    ok = [r for r in runs if not r.error]
    return {
        "runs": len(ok), "errors": len(runs) - len(ok), "flood": flood,
        "order_unchanged": sum(1 for r in ok if r.before == r.after),
        "rank_before": [r.before.index(r.flooded) + 1 for r in ok],
        "rank_after": [r.after.index(r.flooded) + 1 for r in ok],
        "unguarded_rank": [r.unguarded_rank for r in ok],
        "counted_gain": [r.counted_after - r.counted_before for r in ok],
        "discounted": [r.discounted for r in ok],
    }


def render_flood(f: dict[str, Any], p: dict[str, Any], w: Callable[[str], None]) -> None:
    w(f"4. one client floods: {len(p['rates'])} skills as in part 1 get {p['flood_honest']:,} "
      f"outcomes from the population, then one client (its own token, one client id) sends "
      f"{f['flood']:,} successes to the worst ({f['runs']} runs)")
    w(f"   plain order unchanged in {f['order_unchanged']}/{f['runs']} runs; the flooded "
      f"skill's place before -> after: "
      + ", ".join(f"{a}->{b}" for a, b in zip(f["rank_before"], f["rank_after"], strict=True))
      + f"; had every report counted: {', '.join(map(str, f['unguarded_rank']))}")
    w(f"   its counted successes rose by {', '.join(map(str, f['counted_gain']))}; stored and "
      f"not counted: {', '.join(map(str, f['discounted']))}")


# -- part 5: the best skill differs by kind of task ----------------------------------------

# Two kinds of task that the server's model (all-MiniLM-L6-v2) keeps apart, each with
# paraphrases for the reports and a held-out query (not one of them) for the searches.
# Measured with skills_hub.search.embedder.Embedder, 2026-12-02 (MEASURED below).
KINDS = ("chart", "map")
KIND_TASKS: dict[str, tuple[str, ...]] = {
    "chart": ("monthly sales bar chart", "bar chart of sales per month",
              "bar graph of monthly revenue", "bars for each month's sales totals",
              "column chart of sales for every month of the year",
              "monthly turnover as a bar diagram"),
    "map": ("map of customers by country", "world map of where our customers live",
            "choropleth of customers by country", "shade each country by its number of customers",
            "geographic map of the customer base per nation",
            "pin every customer's country on a world map"),
}
KIND_QUERIES = {"chart": "bar chart showing the sales of each month",
                "map": "map where our customers are, by country"}
# Every report names a task of its own (one token reports for the whole population, and a
# task its token already reported on a version counts once): a paraphrase and a number.
KIND_SUFFIXES = (" (ticket {n})", ", job {n}", " - request {n}", " #{n}")
# MEASURED (Embedder.embed of 200 report texts per kind from task_text with Random(1), and
# embed_query of the queries; cosine): the paraphrases within a kind 0.51-0.95 (chart),
# 0.51-0.83 (map), across kinds at most 0.29 (mean 0.20); report texts across kinds at most
# 0.49 (mean 0.24: they share the number words); the chart query vs chart texts 0.54-0.93
# (median 0.79, mean kernel weight 0.43), vs map texts 0.04-0.29 (weight 0 for all); the
# map query vs map texts 0.48-0.87 (median 0.74, mean weight 0.29), vs chart texts
# 0.06-0.24 (weight 0); query vs query 0.18.
# (learning.tasks.NEAR is 0.4: no task of the other kind counts near a query.)
# Per skill, its true success rate per kind (in KINDS order): each is 0.65 over both kinds
# drawn uniformly, so only the evidence per kind tells them apart.
KIND_PROFILES: tuple[tuple[float, ...], ...] = ((0.85, 0.45), (0.45, 0.85), (0.65, 0.65))
KINDS_NS = "kinds"
# The server of part 5 needs its model: any SKILLS_HUB_SEMANTIC but off/0/false/no is
# `auto` (skills_hub/config.py), which loads it in the background at start.
KINDS_SEMANTIC = "auto"
SEMANTIC_TIMEOUT_S = 300
VIZ_DESCRIPTION = ("Turn tabular business data into charts and maps: bar charts of sales per "
                   "month, maps of customers by country, with labels and a legend.")


def viz_md(name: str, tags: str = "") -> str:
    """The SKILL.md every skill of part 5 shares (only the name differs). The name's words
    are part of the embedded text: measured over 12 runs' names, they move a skill's cosine
    to a query by up to 0.009 (up to 0.02 of the normalised semantic score; the relevance
    spread the bench prints is about half that)."""
    tag_line = f"metadata:\n  tags: \"{tags}\"\n" if tags else ""
    return (f"---\nname: {name}\ndescription: \"{VIZ_DESCRIPTION}\"\nlicense: MIT\n"
            f"{tag_line}---\n# Charts and maps\n\n## When to use\n\nA table of sales or "
            "customers is to be shown as a chart or a map.\n\n## Steps\n\n1. Load the table "
            "and check its columns.\n2. Aggregate the values to plot.\n3. Draw the chart or "
            "the map with labels and a legend.\n4. Save it as a PNG next to the data.\n")


def task_text(rng: random.Random, kind: str, number: int) -> str:
    """A task of `kind` as an agent names it: a paraphrase with a number of its own."""
    paraphrase = KIND_TASKS[kind][rng.randrange(len(KIND_TASKS[kind]))]
    return paraphrase + KIND_SUFFIXES[rng.randrange(len(KIND_SUFFIXES))].format(n=number)


def kind_best(rates: dict[str, dict[str, float]], kind: str) -> str:
    """The name with the highest true rate for `kind` (rates: name -> kind -> rate)."""
    return max(rates, key=lambda name: rates[name][kind])


def global_order(results: Sequence[dict[str, Any]]) -> list[str]:
    """The names as the registry would rank them with the task evidence ignored: relevance
    times the quality of the global (decayed) counts and downloads (`score_parts`), ties in
    the plain order."""
    plain = plain_order(results)

    def key(r: dict[str, Any]) -> tuple[bool, float, int]:
        sp = r["score_parts"]
        q = quality(float(sp["successes"]), float(sp["failures"]),
                    int(r.get("downloads") or 0)).quality
        return (not sp.get("exact_name", False), -final_score(float(sp["relevance"]), q),
                plain.index(r["name"]))
    return [r["name"] for r in sorted(results, key=key)]


@dataclass
class KindsRun:
    """One run of part 5: per kind, after each round, whether the kind's best skill is first
    in the registry's plain order, and whether it would be with the task evidence ignored."""

    run: int
    rates: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> kind -> rate
    best: dict[str, str] = field(default_factory=dict)                 # kind -> name
    # kind -> (outcomes so far, best first, best first by the global numbers alone)
    history: dict[str, list[tuple[int, bool, bool]]] = field(default_factory=dict)
    reported: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # [succ, fail]
    final: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # plain order
    relevance_spread: float = 0.0   # max - min relevance of the K, worst search
    control_mismatches: int = 0     # searches without task evidence where the orders differ
    vectors_wait_s: float = 0.0     # until the new skills' vectors were in
    error: str = ""

    def points(self, kind: str, control: bool = False) -> tuple[int | None, int | None]:
        return convergence([(n, by_global if control else first)
                            for n, first, by_global in self.history.get(kind, [])])


def final_entry(result: dict[str, Any], rate: float, sent: Sequence[int]) -> dict[str, Any]:
    """What part 5 keeps of a result at the end (its plain score: the page may explore)."""
    sp = result["score_parts"]
    return {"name": result["name"], "rate": rate, "relevance": sp["relevance"],
            "quality": sp["quality"], "score": final_score(sp["relevance"], sp["quality"]),
            "successes": sp["successes"], "failures": sp["failures"], "wilson": sp["wilson"],
            "task": sp.get("task"), "kind_reports": sum(sent)}


def kinds_run(api: Api, run: int, *, seed: int, horizon: int, round_size: int,
              clients: Sequence[str]) -> KindsRun:
    """K skills of one text with true rates per kind (KIND_PROFILES, shuffled over the
    names); rounds of reports, each of a kind and a skill drawn uniformly and naming its
    task; after each round a hybrid search of each kind's held-out query."""
    result = KindsRun(run)
    rng = random.Random(seed_for("kinds", seed, run))
    letters = "abcdefghijklmnopqrstuvwxyz"[:len(KIND_PROFILES)]
    names = [f"viz-kinds-{run:03d}-{letter}" for letter in letters]
    profiles = list(KIND_PROFILES)
    rng.shuffle(profiles)
    result.rates = {n: dict(zip(KINDS, p, strict=True))
                    for n, p in zip(names, profiles, strict=True)}
    result.best = {k: kind_best(result.rates, k) for k in KINDS}
    result.reported = {n: {k: [0, 0] for k in KINDS} for n in names}
    result.history = {k: [] for k in KINDS}
    tag = f"loop-kinds-{run:03d}"
    try:
        for name in names:
            api.publish(KINDS_NS, name, viz_md(name, tags=tag), "1.0.0")
        # The server embeds new versions in the background: wait until every skill is in
        # the semantic list of both queries (no client id, so no draw of the run's RNG).
        started = time.monotonic()
        while True:
            pages = [api.search(KIND_QUERIES[k], tag=tag, sort="relevance", mode="hybrid")
                     for k in KINDS]
            if all(len(p) == len(names) and all(r["score_parts"]["semantic"] for r in p)
                   for p in pages):
                break
            if time.monotonic() - started > SEMANTIC_TIMEOUT_S:
                raise RuntimeError(f"{tag}: the skills' vectors are not in after "
                                   f"{SEMANTIC_TIMEOUT_S} s")
            time.sleep(0.2)
        result.vectors_wait_s = time.monotonic() - started

        def ranked(kind: str) -> list[dict[str, Any]]:
            found = api.search(KIND_QUERIES[kind], tag=tag, sort="relevance", mode="hybrid",
                               client_id=clients[rng.randrange(len(clients))])
            if sorted(r["name"] for r in found) != sorted(names):
                raise RuntimeError(f"search {tag} found {[r['name'] for r in found]}")
            if any(not r["score_parts"]["semantic"] for r in found):
                raise RuntimeError(f"search {tag}: not a hybrid page")
            return found

        total = 0
        while total < horizon:
            batches: dict[str, list[dict[str, Any]]] = {}
            for j in range(round_size):
                kind = KINDS[rng.randrange(len(KINDS))]
                name = names[rng.randrange(len(names))]
                success = rng.random() < result.rates[name][kind]
                report = make_report(rng, f"{name}-{total + j}", "1.0.0", success,
                                     clients[rng.randrange(len(clients))])
                report["task"] = task_text(rng, kind, 1000 + total + j)
                batches.setdefault(name, []).append(report)
                result.reported[name][kind][0 if success else 1] += 1
            for name, reports in sorted(batches.items()):
                api.report(KINDS_NS, name, reports)
            total += round_size
            for kind in KINDS:
                found = ranked(kind)
                relevances = [float(r["score_parts"]["relevance"]) for r in found]
                result.relevance_spread = max(result.relevance_spread,
                                              max(relevances) - min(relevances))
                plain, control = plain_order(found), global_order(found)
                if all(r["score_parts"].get("task") is None for r in found):
                    result.control_mismatches += control != plain
                best = result.best[kind]
                result.history[kind].append((total, plain[0] == best, control[0] == best))
                if total >= horizon:
                    by_name = {r["name"]: r for r in found}
                    result.final[kind] = [final_entry(by_name[n], result.rates[n][kind],
                                                      result.reported[n][kind]) for n in plain]
    except Exception as exc:  # reported, and the run left out of the figures
        result.error = f"{type(exc).__name__}: {exc}"[:400]
    return result


def _median(values: Iterable[float]) -> float:
    return pct(values, 50)


def kinds_figures(runs: Sequence[KindsRun], horizon: int) -> dict[str, Any]:
    ok = [r for r in runs if not r.error and all(r.history.get(k) for k in KINDS)]
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        points = [r.points(kind) for r in ok]
        first = [math.inf if p[0] is None else float(p[0]) for p in points]
        stays = [math.inf if p[1] is None else float(p[1]) for p in points]
        rounds = [h for r in ok for h in r.history[kind]]
        finals = [r.final.get(kind, []) for r in ok]
        best = [next(e for e in f if e["name"] == r.best[kind]) for r, f in zip(ok, finals,
                                                                               strict=True)
                if f]
        others = [e for r, f in zip(ok, finals, strict=True) for e in f
                  if e["name"] != r.best[kind]]

        def near(entries: Sequence[dict[str, Any]], key: str) -> float:
            values = [float(e["task"][key]) if e["task"] else 0.0 for e in entries]
            return _median(values)

        def weighted_n(entries: Sequence[dict[str, Any]]) -> float:
            return _median([float(e["task"]["successes"]) + float(e["task"]["failures"])
                            if e["task"] else 0.0 for e in entries])

        # The best's plain score over the strongest other's (negative: not first).
        margins = [next(e["score"] for e in f if e["name"] == r.best[kind])
                   / max(e["score"] for e in f if e["name"] != r.best[kind]) - 1
                   for r, f in zip(ok, finals, strict=True) if len(f) > 1]
        kinds[kind] = {
            "query": KIND_QUERIES[kind], "first": summary(first), "stays": summary(stays),
            "not_converged": sum(1 for s in stays if s == math.inf),
            "best_first_at_end": sum(1 for r in ok if r.history[kind][-1][1]),
            "global_first_at_end": sum(1 for r in ok if r.history[kind][-1][2]),
            "global_first_share": (sum(1 for h in rounds if h[2]) / len(rounds)
                                   if rounds else float("nan")),
            "best_near_wilson": near(best, "wilson"), "best_near_weight": near(best, "weight"),
            "best_near_n": weighted_n(best), "best_tasks": near(best, "tasks"),
            "best_kind_reports": _median([float(e["kind_reports"]) for e in best]),
            "others_near_wilson": near(others, "wilson"),
            "others_near_weight": near(others, "weight"),
            "others_max_near_wilson": max((float(e["task"]["wilson"]) for e in others
                                           if e["task"]), default=float("nan")),
            "best_global_wilson": _median([float(e["wilson"]) for e in best]),
            "others_global_wilson": _median([float(e["wilson"]) for e in others]),
            "margin_median": _median(margins),
            "margin_min": min(margins, default=float("nan")),
            "no_task_evidence": sum(1 for f in finals for e in f if not e["task"]),
        }
    spreads = [max(float(e["wilson"]) for e in r.final[KINDS[0]])
               - min(float(e["wilson"]) for e in r.final[KINDS[0]])
               for r in ok if r.final.get(KINDS[0])]
    return {
        "runs": len(ok), "errors": len(runs) - len(ok), "horizon": horizon, "kinds": kinds,
        "every_kind_first": sum(1 for r in ok if all(r.history[k][-1][1] for k in KINDS)),
        "global_every_kind_first": sum(1 for r in ok
                                       if all(r.history[k][-1][2] for k in KINDS)),
        "relevance_spread": max((r.relevance_spread for r in ok), default=0.0),
        "global_wilson_spread": summary(spreads),
        "control_mismatches": sum(r.control_mismatches for r in ok),
        "vectors_wait_s": max((r.vectors_wait_s for r in ok), default=0.0),
        "example": ({"run": ok[0].run, "best": ok[0].best, "final": ok[0].final}
                    if ok and ok[0].final else None),
    }


def _f3(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _spc(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:+.2f}%"


def _task(part: dict[str, Any] | None) -> str:
    """A result's `score_parts.task` in a few characters."""
    if not part:
        return "none"
    return (f"{part['wilson']:.3f} from {part['successes']:.1f} s / {part['failures']:.1f} f, "
            f"lambda {part['weight']:.2f}, {part['tasks']} tasks")


def render_kinds(f: dict[str, Any], p: dict[str, Any], w: Callable[[str], None]) -> None:
    profiles = ", ".join("/".join(f"{r:.2f}" for r in prof) for prof in KIND_PROFILES)
    w(f"5. the best skill differs by kind of task (a server of its own, "
      f"SKILLS_HUB_SEMANTIC={KINDS_SEMANTIC}): {len(KIND_PROFILES)} skills with the same "
      f"text, true success rates {' / '.join(KINDS)} {profiles} (each "
      f"{sum(KIND_PROFILES[0]) / len(KINDS):.2f} over both kinds; shuffled over the names "
      "per run);")
    w(f"   every report names its task (a paraphrase of its kind and a number); kind and "
      f"skill uniform; rounds of {p['kinds_round']} outcomes, horizon {f['horizon']:,}; "
      f"{f['runs']} runs ({f['errors']} failed; model loaded after "
      f"{f.get('model_load_s', math.nan):.0f} s, new skills' vectors in after at most "
      f"{f['vectors_wait_s']:.1f} s). After each round a hybrid search of each kind's held-out "
      "query")
    w(f"   (relevance spread of the {len(KIND_PROFILES)}, worst search: "
      f"{f['relevance_spread']:.6f}); 'first' is the plain order, 'global only' the same "
      "results ranked with score_parts.task ignored (share of rounds in brackets)")
    row = "   {:<6} {:<44} {:>9} {:>18} {:>18} {:>20}"
    w(row.format("kind", "query", "first@end", "first time", "first for good",
                 "global only: @end"))
    for kind, e in f["kinds"].items():
        w(row.format(kind, repr(e["query"]), f"{e['best_first_at_end']}/{f['runs']}",
                     f"{_mp(e['first'])} ({_n(e['first']['max'])})",
                     f"{_mp(e['stays'])} ({_n(e['stays']['max'])})",
                     f"{e['global_first_at_end']}/{f['runs']} "
                     f"({_pc(e['global_first_share'])})"))
    w(f"   every kind's best first at the end: in {f['every_kind_first']}/{f['runs']} runs "
      f"(global only: {f['global_every_kind_first']}/{f['runs']}); the global Wilson bounds "
      f"of the {len(KIND_PROFILES)} at the end differ by {_f3(f['global_wilson_spread']['median'])}"
      f" at the median (max {_f3(f['global_wilson_spread']['max'])}); "
      f"{f['control_mismatches']} searches without task evidence ranked otherwise by the "
      "control")
    w("   at the end, medians over runs, the kind's best | the others: task evidence (Wilson, "
      "lambda), global Wilson; weighted reports near the query; the best's score over the "
      "strongest other's")
    for kind, e in f["kinds"].items():
        w(f"     {kind:<5}: task {_f3(e['best_near_wilson'])}, lambda "
          f"{e['best_near_weight']:.2f} | {_f3(e['others_near_wilson'])} (max "
          f"{_f3(e['others_max_near_wilson'])}), lambda {e['others_near_weight']:.2f}; global "
          f"{_f3(e['best_global_wilson'])} | {_f3(e['others_global_wilson'])}; the best's "
          f"{e['best_near_n']:.1f} weighted of {e['best_kind_reports']:.0f} reports of the kind "
          f"({e['best_tasks']:.0f} tasks with weight); margin {_spc(e['margin_median'])} "
          f"(min {_spc(e['margin_min'])})")
    example = f.get("example")
    if example:
        w(f"   run {example['run']} at the end, plain order (name, true rate of the kind: "
          "score, relevance, global Wilson, score_parts.task):")
        for kind, entries in example["final"].items():
            w(f"     {kind}:")
            for e in entries:
                best = ", the best" if e["name"] == example["best"][kind] else ""
                w(f"       {e['name']} ({e['rate']:.2f}{best}): {e['score']:.4f}, "
                  f"{e['relevance']:.4f}, {e['wilson']:.3f}, {_task(e['task'])} of "
                  f"{e['kind_reports']} reports of the kind")


# -- part 3: throughput ------------------------------------------------------------------

def load_bodies(seed: int, tag: str, thread: int, requests: int, batch: int,
                clients: Sequence[str]) -> list[bytes]:
    """The request bodies of one thread, encoded before the clock starts (unique ids)."""
    rng = random.Random(seed_for("load", seed, tag, thread))
    bodies = []
    for r in range(requests):
        reports = [make_report(rng, f"{tag}-t{thread}-{r}-{i}", "1.0.0", rng.random() < 0.7,
                               clients[rng.randrange(len(clients))]) for i in range(batch)]
        bodies.append(json.dumps({"outcomes": reports}).encode())
    return bodies


def throughput(server: Server, token: str, *, batch: int, threads: int, reports: int,
               seed: int, clients: Sequence[str], tag: str = "",
               prefill: int = 0) -> dict[str, Any]:
    """`threads` clients POST `reports` reports in batches of `batch`, each to a skill of
    its own published for this measurement (so earlier ones do not weigh on it). With
    `prefill`, each skill first gets that many reports from as many distinct client ids
    (untimed), as a popular skill would have."""
    per_thread = max(1, math.ceil(reports / batch / threads))
    tag = tag or f"w{server.workers}-b{batch}-c{threads}"
    names = [f"load-{tag}-{t}" for t in range(threads)]
    api = Api(server.url, token)
    try:
        for name in names:
            api.publish(LOAD_NS, name, skill_md(name), "1.0.0")
            rng = random.Random(seed_for("prefill", seed, name))
            for first in range(0, prefill, 1000):
                api.report(LOAD_NS, name, [
                    make_report(rng, f"{name}-fill-{i}", "1.0.0", rng.random() < 0.7,
                                f"{name}-client-{i}")
                    for i in range(first, min(prefill, first + 1000))])
    finally:
        api.close()
    bodies = [load_bodies(seed, tag, t, per_thread, batch, clients) for t in range(threads)]
    latencies: list[list[float]] = [[] for _ in range(threads)]
    ends = [0.0] * threads
    errors: list[str] = []
    barrier = threading.Barrier(threads + 1, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def worker(t: int) -> None:
        path = f"/api/v1/skills/{LOAD_NS}/{names[t]}/outcomes"
        try:
            with httpx.Client(base_url=server.url, headers=headers,
                              timeout=HTTP_TIMEOUT_S) as http:
                http.get("/api/v1/health")  # connect before the clock starts
                barrier.wait()
                for body in bodies[t]:
                    t0 = time.perf_counter()
                    response = http.post(path, content=body)
                    latencies[t].append(time.perf_counter() - t0)
                    if response.status_code != 200 or response.json()["recorded"] != batch:
                        errors.append(f"{response.status_code} {response.text[:200]}")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            barrier.abort()
        finally:
            ends[t] = time.perf_counter()

    pool = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for thread in pool:
        thread.start()
    server_cpu, client_cpu = tree_cpu(server.process.pid), self_cpu()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass  # a client failed before the start; its error is in `errors`
    start = time.perf_counter()
    for thread in pool:
        thread.join(600)
    wall = max(ends) - start
    sent = per_thread * threads * batch
    ms = [x * 1e3 for lat in latencies for x in lat] or [float("nan")]
    return {"workers": server.workers, "batch": batch, "threads": threads, "reports": sent,
            "prefill_clients": prefill, "clients": len(clients),
            "requests": per_thread * threads, "wall_s": wall,
            "reports_per_s": sent / wall if wall > 0 else float("nan"),
            "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "max_ms": max(ms),
            "errors": len(errors), "first_error": errors[0] if errors else "",
            "server_cpu_s": tree_cpu(server.process.pid) - server_cpu,
            "client_cpu_s": self_cpu() - client_cpu}


def idle_latency(server: Server, requests: int = 50) -> dict[str, float]:
    """p50/p95 ms of GET /api/v1/health, one after another on one keep-alive connection:
    what a request costs when nothing else runs (the transport's share of every figure)."""
    times = []
    with httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S) as http:
        http.get("/api/v1/health")
        for _ in range(requests):
            t0 = time.perf_counter()
            http.get("/api/v1/health").raise_for_status()
            times.append((time.perf_counter() - t0) * 1e3)
    return {"workers": server.workers, "p50_ms": pct(times, 50), "p95_ms": pct(times, 95)}


def throughput_part(server: Server, token: str, *, reports: int, seed: int,
                    clients: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for batch in (1000, 100):
        for threads in (1, 4, 8):
            row = throughput(server, token, batch=batch, threads=threads, reports=reports,
                             seed=seed, clients=clients)
            log(f"  workers {server.workers}, batch {batch}, {threads} thread(s): "
                f"{row['reports_per_s']:,.0f} reports/s, p50 {row['p50_ms']:.1f} ms, "
                f"p95 {row['p95_ms']:.1f} ms, {row['errors']} errors")
            rows.append(row)
    return rows


def wide_part(server: Server, token: str, *, reports: int, seed: int, prefill: int,
              clients: Sequence[str]) -> dict[str, Any]:
    """Batch 100 from one thread to a skill that already has `prefill` distinct clients."""
    row = throughput(server, token, batch=100, threads=1, reports=reports, seed=seed,
                     clients=clients, tag=f"w{server.workers}-wide", prefill=prefill)
    log(f"  workers {server.workers}, batch 100, 1 thread, skill with {prefill:,} clients: "
        f"{row['reports_per_s']:,.0f} reports/s, p50 {row['p50_ms']:.1f} ms")
    return row


# -- report ------------------------------------------------------------------------------

def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def _n(value: float) -> str:
    """An outcome count: '1,234', '>horizon' for inf, '-' for nan."""
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if value == math.inf:
        return "never"
    return f"{value:,.0f}"


def _pc(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.1f}%"


def _mp(entry: dict[str, Any]) -> str:
    return f"{_n(entry['median'])} / {_n(entry['p90'])}"


def render_rank(figures: dict[str, Any], p: dict[str, Any], w: Callable[[str], None]) -> None:
    f = figures["policies"]
    w(f"1. ranking convergence: {len(p['rates'])} skills, true success rates "
      f"{', '.join(f'{r:.2f}' for r in p['rates'])}; same text (relevance spread, worst "
      f"round: {max((e['max_relevance_spread'] for e in f.values()), default=0.0):.6f}); "
      f"rounds of {p['round']} outcomes, horizon {p['horizon']:,}; {p['rank_seeds']} runs "
      "per policy")
    w("   outcomes reported (all skills together) until the truly best skill is first in the "
      "registry's plain order (relevance: score_parts.explore.plain_rank on a page that "
      "explores): 'first time' after")
    w("   the first round where it is, 'first for good' after the round from which on it "
      "stays first up to the horizon;")
    w("   median / p90 (max) over runs ('never': not first at the horizon); 'best used': its "
      "share of all uses")
    row = "   {:<22} {:<10} {:>23} {:>23} {:>11} {:>10}"
    w(row.format("policy", "sort", "first time", "first for good", "not at end", "best used"))
    for policy, entry in f.items():
        label = policy if policy == "uniform" else f"greedy eps={p['epsilon']}"
        for sort in ("relevance", "rating"):
            e = entry[sort]
            w(row.format(label, sort, f"{_mp(e['first'])} ({_n(e['first']['max'])})",
                         f"{_mp(e['stays'])} ({_n(e['stays']['max'])})",
                         f"{e['not_converged']}/{entry['runs']}",
                         _pc(entry["best_pick_share"]) if sort == "relevance" else ""))
        w(f"   {label}: relevance pages that explored {_pc(entry['explored_share'])}; first "
          f"result not the plain order's first on {_pc(entry['served_other_share'])} of rounds "
          f"({_pc(entry['late_served_other_share'])} in the second half)")
        if entry["errors"]:
            w(f"   {policy}: {entry['errors']} run(s) failed (see the JSON)")


def render_canary(f: dict[str, Any], p: dict[str, Any], w: Callable[[str], None]) -> None:
    w(f"2. canaries: {p['trials']} trials per delta; stable 1.0.0 true rate "
      f"{p['stable_rate']:.2f} with {p['stable_outcomes']} outcomes first, then canary 1.0.1 "
      f"(share {p['share']}) at {p['stable_rate']:.2f} + delta;")
    w(f"   {p['clients']:,} client ids resolve on first use; POSTs of {p['batch']} reports, the "
      f"decision read after each; cap {p['cap']:,} outcomes. Gate: mSPRT tau "
      f"{gate.CANARY_TAU}, alpha {gate.CANARY_ALPHA_PROMOTE} (promote) / "
      f"{gate.CANARY_ALPHA_ROLL_BACK} (roll back), min {gate.CANARY_MIN_OUTCOMES} each, "
      f"max {gate.CANARY_MAX_OUTCOMES} canary")
    w("   n = the canary's outcomes at the decision; total = both versions' outcomes since "
      "the canary started; median / p90 over decided trials")
    row = "   {:>6} {:>6} {:>9} {:>19} {:>9} {:>15} {:>15} {:>15}"
    w(row.format("delta", "trials", "promoted", "rolled back (w/max)", "undecided",
                 "canary n", "total", "total if prom."))
    for r in f["rows"]:
        w(row.format(f"{r['delta']:+.2f}", r["trials"], _pc(r["promoted"]),
                     f"{_pc(r['rolled_back'])} ({_pc(r['rolled_back_worse'])}/"
                     f"{_pc(r['rolled_back_max'])})", _pc(r["undecided"]), _mp(r["canary_n"]),
                     _mp(r["total"]), _mp(r["promoted_total"])))
    h = f["headline"]
    w(f"   worse canaries promoted: {h['worse_promoted']} of {h['worse_trials']} "
      f"({_pc(h['worse_promoted_share'])}; aim < {AIM_WORSE_PROMOTED:.0%}: "
      f"{verdict(h['worse_promoted_share'] < AIM_WORSE_PROMOTED)}); equal promoted "
      f"{_pc(h['equal_promoted_share'])} (aim < {AIM_EQUAL_PROMOTED:.0%}: "
      f"{verdict(h['equal_promoted_share'] < AIM_EQUAL_PROMOTED)})")
    for b in h["better"]:
        w(f"   delta {b['delta']:+.2f}: promoted {_pc(b['promoted'])}, after "
          f"{_mp(b['total'])} outcomes in all ({_mp(b['canary_n'])} on the canary), "
          "median / p90")
    w(f"   resolves: {h['resolves']:,} ({_pc(h['realised_share'])} got the canary), "
      f"{h['mismatches']} differing from gate.in_canary; `latest` after the decision right "
      f"in {h['latest_ok']}/{h['latest_checked']}; errors {h['errors']}; "
      f"{h['reports']:,} reports in {h['wall_s']:.0f} s")
    m = f.get("model")
    if m:
        w(f"   model: the same trials in-process against gate.canary_decision, "
          f"{p['model_trials']} per delta judged per batch of {p['batch']} | "
          f"{m['single'][0]['trials']} judged per report; canary share exactly {p['share']} "
          "per report (promoted / total median):")
        for a, b in zip(m["batch"], m["single"], strict=True):
            w(f"     {a['delta']:+.2f}: {_pc(a['promoted'])} / {_n(a['total']['median'])}"
              f"   |   {_pc(b['promoted'])} / {_n(b['total']['median'])}")


def render_throughput(rows: list[dict[str, Any]], wide: dict[str, Any] | None,
                      idle: list[dict[str, Any]], w: Callable[[str], None]) -> None:
    w("3. throughput: POST .../outcomes, one fresh skill and keep-alive connection per "
      f"thread, client ids from a population of {rows[0]['clients']:,}, "
      f"{rows[0]['reports']:,} reports per line")
    row = "   {:>7} {:>6} {:>7} {:>12} {:>9} {:>9} {:>17} {:>9}"
    w(row.format("workers", "batch", "threads", "reports/s", "p50 ms", "p95 ms",
                 "CPU s server/bench", "aim 2k/s"))
    for r in rows:
        w(row.format(r["workers"], r["batch"], r["threads"], f"{r['reports_per_s']:,.0f}",
                     f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}",
                     f"{r['server_cpu_s']:.1f}/{r['client_cpu_s']:.1f}",
                     verdict(r["reports_per_s"] >= AIM_REPORTS_PER_S and not r["errors"])))
        if r["errors"]:
            w(f"     {r['errors']} errors, first: {r['first_error']}")
    for i in idle:
        w(f"   GET /api/v1/health one after another, {i['workers']} worker(s): p50 "
          f"{i['p50_ms']:.2f} ms, p95 {i['p95_ms']:.2f} ms")
    if wide:
        same = next((r for r in rows if r["workers"] == wide["workers"] and r["batch"] == 100
                     and r["threads"] == 1), None)
        w(f"   a popular skill: batch 100, 1 thread, to a skill that already has "
          f"{wide['prefill_clients']:,} distinct clients: {wide['reports_per_s']:,.0f} reports/s, "
          f"p50 {wide['p50_ms']:.1f} ms, p95 {wide['p95_ms']:.1f} ms"
          + (f" (fresh skill: {same['reports_per_s']:,.0f}/s, p50 {same['p50_ms']:.1f} ms)"
             if same else ""))


def render(res: dict[str, Any]) -> str:
    lines: list[str] = []
    w = lines.append
    m, p, f = res["machine"], res["params"], res["figures"]
    w("skills-hub learning-loop simulation (bench/loop_sim.py)")
    w("=" * 100)
    w(f"machine : nproc {m['nproc']}, {m['cpu']}, Python {m['python']}, {m['platform']}, "
      f"load average at start {m['loadavg']}")
    w(f"command : {p['command']}")
    w(f"server  : skills-hub serve, SKILLS_HUB_SEMANTIC={p['semantic']}, outcome rate limit "
      "raised to 1e9/s per token; parts 1-2 on one worker"
      + (f"; part 5 on a server of its own with SKILLS_HUB_SEMANTIC={KINDS_SEMANTIC}"
         if "kinds" in p.get("parts", ()) else ""))
    w(f"started : {p['started']}   total wall {f.get('wall_s', 0):.0f} s   "
      f"(parts: {', '.join(f'{k} {v:.0f} s' for k, v in f.get('part_s', {}).items())})")
    cpu = f.get("part_cpu_s", {})
    if cpu:
        w("cpu     : " + ", ".join(f"{k}: server {v['server']:.0f} s, bench {v['bench']:.0f} s"
                                   for k, v in cpu.items()) + " (the model run included)")
    w("")
    if "rank" in f:
        render_rank(f["rank"], p, w)
        w("")
    if "canary" in f:
        render_canary(f["canary"], p, w)
        w("")
    if "flood" in f:
        render_flood(f["flood"], p, w)
        w("")
    if "kinds" in f:
        if f["kinds"].get("error"):
            w(f"5. the best skill differs by kind of task: failed: {f['kinds']['error']}")
        else:
            render_kinds(f["kinds"], p, w)
        w("")
    if "throughput" in f:
        render_throughput(f["throughput"], f.get("wide"), f.get("idle", []), w)
        w("")
    w("-" * 100)
    met = [v for v in f.get("verdicts", []) if v["met"] is not None]
    w(f"aims met: {sum(1 for v in met if v['met'])}/{len(met)}"
      + ("" if all(v["met"] for v in met) else "   missed: "
         + ", ".join(f"{v['figure']} ({v['value']})" for v in met if not v["met"])))
    return "\n".join(lines)


def collect_verdicts(f: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    greedy = f.get("rank", {}).get("policies", {}).get("greedy")
    if greedy:
        p90 = greedy["relevance"]["stays"]["p90"]
        out.append({"figure": "greedy clients: outcomes until the best is first for good, p90",
                    "value": _n(p90), "aim": f"<= {AIM_GREEDY_P90}",
                    "met": p90 <= AIM_GREEDY_P90})
    if "canary" in f:
        h = f["canary"]["headline"]
        out.append({"figure": "worse canaries promoted", "value": _pc(h["worse_promoted_share"]),
                    "aim": f"< {AIM_WORSE_PROMOTED:.0%}",
                    "met": None if not h["worse_trials"]
                    else h["worse_promoted_share"] < AIM_WORSE_PROMOTED})
        equal = h["equal_promoted_share"]
        out.append({"figure": "equal canaries promoted", "value": _pc(equal),
                    "aim": f"< {AIM_EQUAL_PROMOTED:.0%}",
                    "met": None if math.isnan(equal) else equal < AIM_EQUAL_PROMOTED})
        better = next((b for b in h["better"] if abs(b["delta"] - AIM_BETTER_DELTA) < 1e-9),
                      None)
        if better is not None:
            out.append({"figure": f"canaries {AIM_BETTER_DELTA:+.2f} better promoted",
                        "value": f"{_pc(better['promoted'])} (median / p90 "
                                 f"{_mp(better['total'])} outcomes)",
                        "aim": f">= {AIM_BETTER_PROMOTED:.0%}",
                        "met": better["promoted"] >= AIM_BETTER_PROMOTED})
    flood = f.get("flood")
    if flood and flood["runs"]:
        rose = sum(1 for a, b in zip(flood["rank_before"], flood["rank_after"], strict=True)
                   if b < a)
        out.append({"figure": "one client's flood moved the flooded skill up",
                    "value": f"in {rose} of {flood['runs']} runs", "aim": "in none",
                    "met": rose == 0})
    kinds = f.get("kinds")
    if kinds:
        every, runs = kinds.get("every_kind_first", 0), kinds.get("runs", 0)
        value = (f"failed: {kinds['error']}" if kinds.get("error") else
                 f"in {every} of {runs} runs ({kinds['errors']} failed; global numbers "
                 f"only: {kinds['global_every_kind_first']})")
        out.append({"figure": "each kind of task's best skill first at the end",
                    "value": value, "aim": "in every run",
                    "met": bool(runs) and every == runs and not kinds.get("errors")
                    and not kinds.get("error")})
    for workers in sorted({r["workers"] for r in f.get("throughput", [])}):
        rows = [r for r in f["throughput"] if r["workers"] == workers]
        worst = min(rows, key=lambda r: r["reports_per_s"])
        out.append({"figure": f"reports/s, slowest batched configuration, {workers} worker(s)",
                    "value": f"{worst['reports_per_s']:,.0f} (batch {worst['batch']}, "
                             f"{worst['threads']} threads)",
                    "aim": f">= {AIM_REPORTS_PER_S:,.0f}",
                    "met": worst["reports_per_s"] >= AIM_REPORTS_PER_S
                    and not any(r["errors"] for r in rows)})
    return out


def plain(value: Any) -> Any:
    """JSON-safe: inf ("never" converged) and nan (no data) become null, tuples lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())}


# -- main --------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="fewer runs and trials (about 2 minutes)")
    add("--parts", default=",".join(DEFAULT_PARTS),
        help=f"which parts to run, of {','.join(PARTS)}")
    add("--seed", type=int, default=1)
    add("--threads", type=int, default=4, help="concurrent simulated trials/runs (parts 1-2)")
    add("--workers", type=int, default=2, help="also measure throughput with --workers N (1: no)")
    add("--semantic", default="off", help="SKILLS_HUB_SEMANTIC of the server (default off)")
    add("--clients", type=int, help="client ids in the population (default 2000)")
    add("--rates", help="part 1: true success rates of the K skills")
    add("--rank-seeds", type=int, help="part 1: runs per policy (default 20; quick 5)")
    add("--horizon", type=int, help="part 1: outcomes per run (default 5000; quick 3000)")
    add("--round", type=int, help="part 1: outcomes per round (default 50)")
    add("--epsilon", type=float, help="part 1: exploration of the greedy policy (0.1)")
    add("--deltas", help="part 2: canary rate minus stable rate, comma-separated")
    add("--trials", type=int, help="part 2: trials per delta (default 50; quick 10)")
    add("--stable-rate", type=float, help="part 2: the stable version's true rate (0.70)")
    add("--stable-outcomes", type=int, help="part 2: outcomes before the canary (200)")
    add("--share", type=float, help="part 2: canary share (0.2)")
    add("--batch", type=int, help="part 2: reports per POST (50)")
    add("--cap", type=int, help="part 2: canary-phase outcomes before giving up (25000)")
    add("--model-trials", type=int, help="part 2 model: trials per delta (600; quick 300)")
    add("--tp-reports", type=int, help="part 3: reports per configuration (60000; quick 20000)")
    add("--flood-runs", type=int, help="part 4: runs (default 5; --parts flood)")
    add("--flood-honest", type=int, help="part 4: honest outcomes first (3000)")
    add("--flood", type=int, help="part 4: the flooding client's reports (5000)")
    add("--kinds-runs", type=int, help="part 5: runs (default 5; quick 2)")
    add("--kinds-horizon", type=int, help="part 5: outcomes per run (1500)")
    add("--kinds-round", type=int, help="part 5: outcomes per round (50)")
    add("--wide-clients", type=int, help="part 3: distinct clients already on the skill of "
        "the popular-skill measurement (100000; quick 50000; 0 skips it)")
    add("--json", type=Path, default=None, help="also write every figure here")
    add("--keep", action="store_true", help="keep the throwaway home and print where")
    args = parser.parse_args(argv)
    for key, value in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, QUICK.get(key, value) if args.quick else value)
    args.rates = [float(x) for x in str(args.rates).split(",")]
    args.deltas = [float(x) for x in str(args.deltas).split(",")]
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")
    if not 0 < args.share < 1 or min(args.batch, args.round, args.clients,
                                     args.kinds_round, args.kinds_horizon) < 1:
        parser.error("--share must be in (0, 1); --batch, --round, --clients, --kinds-round "
                     "and --kinds-horizon positive")
    if len(args.rates) < 2 or len(set(args.rates)) != len(args.rates):
        parser.error("--rates needs at least two different rates")
    return args


def run_rank(args: argparse.Namespace, pool: ApiPool, clients: list[str]) -> dict[str, Any]:
    jobs = [(policy, run) for run in range(args.rank_seeds) for policy in ("uniform", "greedy")]
    with ThreadPoolExecutor(args.threads) as executor:
        runs = list(executor.map(lambda job: rank_run(
            pool, job[0], job[1], seed=args.seed, rates=args.rates, horizon=args.horizon,
            round_size=args.round, epsilon=args.epsilon, clients=clients), jobs))
    for run in runs:
        if run.error:
            log(f"  rank run {run.policy} {run.run} failed: {run.error}")
    figures = rank_figures(runs, args.horizon)
    figures_runs = [{**asdict(r), "points": {s: r.points(s) for s in ("relevance", "rating")}}
                    for r in runs]
    return {"policies": figures, "runs": figures_runs}


def run_canary(args: argparse.Namespace, pool: ApiPool, clients: list[str]) -> dict[str, Any]:
    trials = [CanaryTrial(delta, index) for index in range(args.trials) for delta in args.deltas]
    started, done = time.perf_counter(), 0
    lock = threading.Lock()

    def one(trial: CanaryTrial) -> CanaryTrial:
        nonlocal done
        canary_trial(pool, trial, seed=args.seed, stable_rate=args.stable_rate,
                     pre=args.stable_outcomes, share=args.share, batch=args.batch,
                     clients=clients, cap=args.cap)
        with lock:
            done += 1
            if trial.error:
                log(f"  trial {trial.name} failed: {trial.error}")
            if done % max(1, len(trials) // 10) == 0:
                log(f"  {done}/{len(trials)} trials, {time.perf_counter() - started:.0f} s")
        return trial

    with ThreadPoolExecutor(args.threads) as executor:
        finished = list(executor.map(one, trials))
    rows = tally(finished)
    worse = [t for t in finished if t.delta < 0 and t.state != "error"]
    checked = [t for t in finished if t.latest_ok is not None]
    headline = {
        "worse_trials": len(worse),
        "worse_promoted": sum(1 for t in worse if t.state == "promoted"),
        "worse_promoted_share": (sum(1 for t in worse if t.state == "promoted") / len(worse)
                                 if worse else float("nan")),
        "equal_promoted_share": next((r["promoted"] for r in rows if r["delta"] == 0),
                                     float("nan")),
        "better": [{"delta": r["delta"], "promoted": r["promoted"],
                    "total": r["promoted_total"], "canary_n": r["promoted_canary_n"]}
                   for r in rows if r["delta"] > 0],
        "resolves": sum(t.resolves for t in finished),
        "realised_share": (sum(t.resolved_canary for t in finished)
                           / max(1, sum(t.resolves for t in finished))),
        "mismatches": sum(t.mismatches for t in finished),
        "latest_ok": sum(1 for t in checked if t.latest_ok), "latest_checked": len(checked),
        "errors": sum(1 for t in finished if t.state == "error"),
        "reports": sum(t.total for t in finished) + args.stable_outcomes * len(finished),
        "wall_s": time.perf_counter() - started,
    }
    log("  model run (in-process, gate.canary_decision)")
    # Judged per report the model is slow in pure Python (an equal canary runs ~20,000
    # reports): a quarter of the trials.
    model = {key: model_run(args.deltas, trials, seed=args.seed,
                            stable_rate=args.stable_rate, pre=args.stable_outcomes,
                            share=args.share, batch=batch, cap=args.cap)
             for key, batch, trials in (("batch", args.batch, args.model_trials),
                                        ("single", 1, max(1, args.model_trials // 4)))}
    return {"rows": rows, "headline": headline, "model": model,
            "trials": [asdict(t) for t in finished]}


def wait_semantic(api: Api, timeout: float = SEMANTIC_TIMEOUT_S) -> float:
    """Seconds until the server's model is loaded (a search says `semantic: ready`)."""
    started = time.monotonic()
    while True:
        state = api.search_body("warm up", mode="hybrid")["semantic"]
        if state in ("ready", "indexing"):  # indexing: loaded, still embedding skills
            return time.monotonic() - started
        if state not in ("idle", "loading"):
            raise RuntimeError(f"semantic search is {state}: part 5 needs the model "
                               "(the `semantic` extra)")
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the model did not load in {timeout:.0f} s")
        time.sleep(0.5)


def run_kinds(args: argparse.Namespace, work: Path, clients: list[str]) -> dict[str, Any]:
    """Part 5 on a server of its own (own home, semantic search on), whatever --semantic
    says for the others; runs one after another (the server embeds every task)."""
    home, server_log = work / "kinds", work / "server-kinds.log"
    tokens = {ns: make_token(home, ns, KINDS_SEMANTIC) for ns in (KINDS_NS, AGENTS_NS)}
    server = start_server(home, server_log, workers=1, semantic=KINDS_SEMANTIC)
    try:
        log(f"  server pid {server.process.pid} at {server.url}, home {home}")
        api = Api(server.url, tokens[KINDS_NS], tokens[AGENTS_NS])
        try:
            loaded = wait_semantic(api)
            log(f"  model loaded after {loaded:.1f} s")
            runs = []
            for run in range(args.kinds_runs):
                started = time.perf_counter()
                runs.append(kinds_run(api, run, seed=args.seed, horizon=args.kinds_horizon,
                                      round_size=args.kinds_round, clients=clients))
                done = runs[-1]
                if done.error:
                    log(f"  kinds run {run} failed: {done.error}")
                else:
                    log(f"  kinds run {run}: " + ", ".join(
                        f"{k} {'best first' if done.history[k][-1][1] else 'BEST NOT FIRST'}"
                        for k in KINDS) + f" ({time.perf_counter() - started:.0f} s)")
        finally:
            api.close()
    finally:
        server.stop()
    return {**kinds_figures(runs, args.kinds_horizon), "model_load_s": loaded,
            "runs_detail": [asdict(r) for r in runs]}


def outcome_rows(home: Path) -> int:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(f"file:{home / 'index.db'}?mode=ro", uri=True,
                                 timeout=30)) as conn:
        return int(conn.execute("SELECT count(*) FROM outcome_reports").fetchone()[0])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(["bench/loop_sim.py", *(sys.argv[1:] if argv is None else argv)])
    params = {k: v for k, v in vars(args).items() if k not in ("json", "keep")}
    params.update(command=command, started=time.strftime("%Y-%m-%d %H:%M:%S %z"))
    res: dict[str, Any] = {"params": params, "machine": machine(), "figures": {}}
    figures, part_s = res["figures"], {}
    part_cpu: dict[str, tuple[float, float]] = {}
    work = Path(tempfile.mkdtemp(prefix="skills-hub-loop-"))
    home, server_log = work / "data", work / "server.log"
    clients = client_ids(args.clients)
    t_start = time.perf_counter()
    server: Server | None = None
    try:
        tokens: dict[str, str] = {}
        if set(args.parts) - {"kinds"}:  # part 5 runs on a server of its own
            tokens = {ns: make_token(home, ns, args.semantic)
                      for ns in (RANK_NS, CANARY_NS, LOAD_NS, AGENTS_NS)}
            server = start_server(home, server_log, workers=1, semantic=args.semantic)
            log(f"server pid {server.process.pid} at {server.url}, home {home}")
        if "rank" in args.parts:
            assert server is not None
            log(f"part 1: ranking convergence, {args.rank_seeds} runs per policy")
            t0, cpu0 = time.perf_counter(), (tree_cpu(server.process.pid), self_cpu())
            pool = ApiPool(server.url, tokens[RANK_NS], tokens[AGENTS_NS])
            try:
                figures["rank"] = run_rank(args, pool, clients)
            finally:
                pool.close()
            part_s["rank"] = time.perf_counter() - t0
            part_cpu["rank"] = (tree_cpu(server.process.pid) - cpu0[0], self_cpu() - cpu0[1])
        if "canary" in args.parts:
            assert server is not None
            log(f"part 2: canaries, {args.trials} trials x {len(args.deltas)} deltas")
            t0, cpu0 = time.perf_counter(), (tree_cpu(server.process.pid), self_cpu())
            pool = ApiPool(server.url, tokens[CANARY_NS], tokens[AGENTS_NS])
            try:
                figures["canary"] = run_canary(args, pool, clients)
            finally:
                pool.close()
            part_s["canary"] = time.perf_counter() - t0
            part_cpu["canary"] = (tree_cpu(server.process.pid) - cpu0[0], self_cpu() - cpu0[1])
        if "flood" in args.parts:
            assert server is not None
            log(f"part 4: one client floods, {args.flood_runs} runs")
            t0 = time.perf_counter()
            flood_token = make_token(home, "flooder", args.semantic)
            pool, flooder = (ApiPool(server.url, tokens[RANK_NS], tokens[AGENTS_NS]),
                             Api(server.url, flood_token))
            try:
                runs = [flood_run(pool, flooder, run, seed=args.seed, rates=args.rates,
                                  honest=args.flood_honest, flood=args.flood, clients=clients)
                        for run in range(args.flood_runs)]
            finally:
                pool.close()
                flooder.close()
            for run in runs:
                if run.error:
                    log(f"  flood run {run.run} failed: {run.error}")
            figures["flood"] = {**flood_figures(runs, args.flood),
                                "runs_detail": [asdict(r) for r in runs]}
            part_s["flood"] = time.perf_counter() - t0
        if "kinds" in args.parts:
            log(f"part 5: the best skill differs by kind of task, {args.kinds_runs} runs")
            t0 = time.perf_counter()
            try:
                figures["kinds"] = run_kinds(args, work, clients)
            except Exception as exc:  # e.g. no model: the other parts' figures still print
                log(f"  part 5 failed: {type(exc).__name__}: {exc}")
                figures["kinds"] = {"error": f"{type(exc).__name__}: {exc}"[:400]}
            part_s["kinds"] = time.perf_counter() - t0
        if "throughput" in args.parts:
            assert server is not None
            t0 = time.perf_counter()
            rows, idle = [], []
            for workers in dict.fromkeys((1, args.workers)):
                if workers != server.workers:
                    server.stop()
                    server = start_server(home, server_log, workers=workers,
                                          semantic=args.semantic)
                stored = outcome_rows(home)
                log(f"part 3: throughput, {workers} worker(s), {stored:,} reports stored")
                idle.append(idle_latency(server))
                for row in throughput_part(server, tokens[LOAD_NS], reports=args.tp_reports,
                                           seed=args.seed, clients=clients):
                    rows.append({**row, "stored_before": stored})
                if workers == 1 and args.wide_clients:
                    figures["wide"] = wide_part(
                        server, tokens[LOAD_NS], reports=min(args.tp_reports, 20000),
                        seed=args.seed, prefill=args.wide_clients, clients=clients)
            figures["throughput"], figures["idle"] = rows, idle
            part_s["throughput"] = time.perf_counter() - t0
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    figures["wall_s"] = time.perf_counter() - t_start
    figures["part_s"] = part_s
    figures["part_cpu_s"] = {k: {"server": v[0], "bench": v[1]} for k, v in part_cpu.items()}
    figures["verdicts"] = collect_verdicts(figures)
    print(render(res))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(plain(res), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
