"""What evidence per kind of task costs (`learning.tasks`): search latency with and without
reported tasks, and outcome posts that name new tasks (each task embedded once).

In-process against `Registry` in a throwaway home (SQLite, semantic search on with the real
all-MiniLM-L6-v2, sandbox off). `--skills` (200) skills are published with descriptions
drawn from a few templates so that a query has many candidates (every one of them is a
candidate of a hybrid search: the worst case for the grouped query over their reports).

1. Hybrid search, p50 / p95 over `--queries` (100) new query texts (embedding cached after a
   first untimed pass, so the figure is the ranking, not the model): before any report, then
   after every skill got `--tasks` (20) distinct tasks reported `--repeat` (3) times each by
   distinct tokens' clients; then the same with the near step turned off (the cost of
   having outcomes at all, which is not this feature's). Also the time of the
   near-evidence step alone (`SearchEngine._near` over the candidates), mean per query.
2. Outcome posts of `--batch` (100) reports naming new tasks (every one embedded), against
   posts of the same size naming no task: ms per post, p50.

Nothing is asserted; the aim it is read against is the performance issue's: hybrid p50
under 25 ms at 10,000 skills (bench/search_bench.py), so the near step should add a few
milliseconds at most.

    .venv/bin/python bench/task_evidence_bench.py [--skills 200] [--tasks 20] [--queries 100]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from skills_hub.access.principal import ANONYMOUS, OPERATOR  # noqa: E402
from skills_hub.config import Settings  # noqa: E402
from skills_hub.services import Registry  # noqa: E402
from skills_hub.skill.bundle import from_files  # noqa: E402

VERBS = ["draw", "plot", "summarise", "convert", "clean", "merge", "chart", "map", "export"]
OBJECTS = ["sales figures", "customer lists", "invoices", "survey answers", "server logs",
           "inventory counts", "web analytics", "payroll sheets", "weather readings"]
FORMATS = ["csv files", "spreadsheets", "json exports", "pdf reports", "sql tables"]
SKILL_MD = """---
name: {name}
description: {description}
license: Apache-2.0
---

# {name}

1. Read the input.
2. {description}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def sentence(rng: random.Random) -> str:
    return (f"{rng.choice(VERBS).capitalize()} {rng.choice(OBJECTS)} from "
            f"{rng.choice(FORMATS)} and {rng.choice(VERBS)} the {rng.choice(OBJECTS)}.")


def timed_searches(registry: Registry, queries: list[str]) -> tuple[list[float], float]:
    """Wall ms per hybrid search (after an untimed pass that caches the query vectors),
    and the mean ms of the near-evidence step."""
    engine = registry.search_engine
    for q in queries:
        registry.search(q, principal=ANONYMOUS, mode="hybrid", limit=10)
    near_ms: list[float] = []
    original = engine._near

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            near_ms.append((time.perf_counter() - t0) * 1000)

    engine._near = timed  # type: ignore[method-assign]
    out = []
    try:
        for q in queries:
            t0 = time.perf_counter()
            page = registry.search(q, principal=ANONYMOUS, mode="hybrid", limit=10)
            out.append((time.perf_counter() - t0) * 1000)
            assert page.results.mode == "hybrid", page.results.mode
    finally:
        engine._near = original  # type: ignore[method-assign]
    return out, statistics.fmean(near_ms) if near_ms else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skills", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--posts", type=int, default=20)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    home = Path(tempfile.mkdtemp(prefix="task-bench-"))
    try:
        registry = Registry(Settings(home=home, seed=False, sandbox="off"))
        registry.start()
        assert registry.embedder.wait(300), registry.embedder.error
        t0 = time.perf_counter()
        names = [f"skill-{i:04d}" for i in range(args.skills)]
        for name in names:
            text = SKILL_MD.format(name=name, description=sentence(rng))
            registry.publish("bench", from_files([(f"{name}/SKILL.md", text.encode(), False)]),
                             principal=OPERATOR)
        assert registry.search_engine.wait_indexed(300)
        print(f"published {args.skills} skills in {time.perf_counter() - t0:.1f} s")
        queries = [sentence(rng).lower() for _ in range(args.queries)]
        before, near_before = timed_searches(registry, queries)

        tokens = [registry.authenticate(registry.create_token(f"agents{i}"))
                  for i in range(args.repeat)]
        t0 = time.perf_counter()
        for name in names:
            tasks = [sentence(rng) for _ in range(args.tasks)]
            for token in tokens:
                batch = [{"id": uuid.uuid4().hex, "version": "0.1.0",
                          "outcome": "success" if rng.random() < 0.7 else "failure",
                          "failure_kind": "wrong_result", "client": {"id": f"c{j}"},
                          "task": task} for j, task in enumerate(tasks)]
                for r in batch:
                    if r["outcome"] == "success":
                        del r["failure_kind"]
                registry.report_outcomes("bench", name, {"outcomes": batch}, token)
        reports = args.skills * args.tasks * args.repeat
        print(f"reported {reports:,} outcomes naming {args.skills * args.tasks:,} distinct "
              f"tasks in {time.perf_counter() - t0:.1f} s")
        after, near_after = timed_searches(registry, queries)
        engine = registry.search_engine
        engine._near = lambda *args, **kwargs: {}  # type: ignore[method-assign]
        without, _ = timed_searches(registry, queries)  # the same reports, no near step
        del engine._near
        with_task = after
        shown = registry.search(queries[0], principal=ANONYMOUS, mode="hybrid", limit=10)
        near = sum(1 for r in shown.results.results if r.parts.get("task"))

        post_plain: list[float] = []
        post_tasks: list[float] = []
        for i in range(args.posts):
            for kind, sink in (("plain", post_plain), ("tasks", post_tasks)):
                batch = [{"id": uuid.uuid4().hex, "version": "0.1.0", "outcome": "success",
                          "client": {"id": f"p{j}"},
                          **({"task": f"{sentence(rng)} #{i}-{j}"} if kind == "tasks" else {})}
                         for j in range(args.batch)]
                t0 = time.perf_counter()
                registry.report_outcomes("bench", names[i % len(names)], {"outcomes": batch},
                                         tokens[0])
                sink.append((time.perf_counter() - t0) * 1000)
        registry.close()

        print()
        print(f"hybrid search over {args.skills} skills, {args.queries} queries (ms)")
        print(f"  {'':34} {'p50':>7} {'p95':>7} {'near step':>10}")
        print(f"  {'no reported tasks':34} {pct(before, 0.5):7.2f} {pct(before, 0.95):7.2f} "
              f"{near_before:10.2f}")
        print(f"  {f'{args.tasks} tasks x {args.repeat} reports a skill':34} "
              f"{pct(with_task, 0.5):7.2f} {pct(with_task, 0.95):7.2f} {near_after:10.2f}")
        print(f"  {'the same, near step off':34} {pct(without, 0.5):7.2f} "
              f"{pct(without, 0.95):7.2f} {'-':>10}")
        print(f"  results of the first query with near evidence: {near} of "
              f"{len(shown.results.results)}")
        print()
        print(f"outcome post of {args.batch} reports, p50 ms over {args.posts} posts")
        print(f"  no task                       {pct(post_plain, 0.5):8.1f}")
        print(f"  {args.batch} new tasks (each embedded)   {pct(post_tasks, 0.5):8.1f}")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
