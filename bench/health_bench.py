"""Scheduled health checks: throughput in versions per minute, without and with the skills'
sandboxed tests, and what choosing the next versions costs.

1. Publishes N skills (each with a `tests/tests.yaml` holding one script test, and a small
   Python script for bandit and the threat rules) into a throwaway home, with the sandbox
   off so publishing is quick.
2. *Without tests*: a registry with the sandbox off runs scheduler ticks (`health_tick`,
   the clock moved two days on, past the cool-down) until every version was checked once.
3. *With tests*: the same home reopened with the sandbox on (`auto`: bubblewrap, else
   rlimits): the checks' fingerprint changed, so every version is due; the ticks run
   again. Each check now runs the skill's test in the sandbox.
4. The queue: median time to read the candidates and order them (what every tick and the
   status route do first), at N and, with `--queue-scale M`, with M more catalogue rows
   (written straight into the catalogue, as `reindex` does, without git: the queue reads
   only the database).

    .venv/bin/python bench/health_bench.py [--skills 60] [--queue-scale 10000]
                                           [--json bench/out/health.json]

Versions per minute is N over the wall time of the ticks (one process, one thread: the
scheduler's own pace). Per-check figures are the `ms` each logged check recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skills_hub.access.principal import OPERATOR  # noqa: E402
from skills_hub.checks.pipeline import pipeline_id  # noqa: E402
from skills_hub.checks.sandbox import sandbox_available  # noqa: E402
from skills_hub.config import Settings  # noqa: E402
from skills_hub.domain import HealthCheckRow, NewVersion, now_iso  # noqa: E402
from skills_hub.learning import schedule  # noqa: E402
from skills_hub.services import Registry  # noqa: E402
from skills_hub.services.health import fingerprint  # noqa: E402
from skills_hub.skill.bundle import Bundle  # noqa: E402

DAY = 86_400.0
TESTS = b"tests:\n  - name: prints its total\n    run: python3 scripts/total.py 1 2 3\n"
SCRIPT = b"""import sys


def main(args: list[str]) -> None:
    print(sum(int(a) for a in args))


if __name__ == "__main__":
    main(sys.argv[1:])
"""


def skill(i: int) -> Bundle:
    md = (f"---\nname: tool-{i:04d}\ndescription: Adds up the numbers of task {i} and prints "
          f"the total.\nlicense: Apache-2.0\n---\n# tool {i}\n\nRun `python3 scripts/total.py "
          f"1 2 3` and report the total.\n").encode()
    return Bundle({"SKILL.md": md, "scripts/total.py": SCRIPT, "tests/tests.yaml": TESTS})


def run_ticks(registry: Registry, total: int, now: float) -> dict[str, Any]:
    """Ticks until `total` versions were checked; the wall time and the checks' ms."""
    checks: list[HealthCheckRow] = []
    started = time.perf_counter()
    while len(checks) < total:
        tick = registry.health_tick(now=now, batch=20)
        if not tick.checks:
            break
        checks.extend(tick.checks)
    wall = time.perf_counter() - started
    ms = sorted(c.ms for c in checks)
    return {"checked": len(checks), "seconds": round(wall, 2),
            "versions_per_minute": round(len(checks) / wall * 60, 1) if wall else None,
            "check_ms_p50": round(statistics.median(ms), 1) if ms else None,
            "check_ms_p95": round(ms[int(0.95 * (len(ms) - 1))], 1) if ms else None,
            "verdicts": sorted({c.new_verdict for c in checks})}


def queue_ms(registry: Registry, now: float, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        schedule.queue(registry.store.health.candidates(since_day=schedule.since_day(now)),
                       now=now, fingerprint=fingerprint(registry.check_options),
                       pipeline=pipeline_id())
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def add_rows(registry: Registry, count: int) -> None:
    """`count` versions in the catalogue alone (10 per skill), no git, no report."""
    rows = [NewVersion("scale", f"skill-{i // 10:05d}", f"1.0.{i % 10}", "0" * 40, "0" * 40,
                       "0" * 40, f"{i:064x}", "a skill", {}, [], now_iso(), "", "body",
                       is_latest=i % 10 == 9) for i in range(count)]
    for start in range(0, count, 1000):
        registry.store.catalogue.record_versions(rows[start:start + 1000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skills", type=int, default=60)
    parser.add_argument("--queue-scale", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="skills-hub-health-bench-"))
    settings = Settings(home=home, seed=False, semantic="off", sandbox="off",
                        health_budget=1_000_000)
    out: dict[str, Any] = {"skills": args.skills, "load_before": os.getloadavg()}
    try:
        registry = Registry(settings)
        registry.start()
        started = time.perf_counter()
        for i in range(args.skills):
            registry.publish("bench", skill(i), principal=OPERATOR, version="1.0.0")
        out["publish_seconds"] = round(time.perf_counter() - started, 1)
        now = time.time() + 2 * DAY
        out["queue_ms"] = queue_ms(registry, now)
        out["without_tests"] = run_ticks(registry, args.skills, now)
        registry.close()
        with_tests = Registry(replace(settings, sandbox="auto"))
        with_tests.start()
        out["sandbox"] = sandbox_available()
        out["with_tests"] = run_ticks(with_tests, args.skills, now + 2 * DAY)
        if args.queue_scale:
            add_rows(with_tests, args.queue_scale)
            out["queue_ms_at_scale"] = queue_ms(with_tests, now + 4 * DAY)
        with_tests.close()
        out["load_after"] = os.getloadavg()
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"health checks over {args.skills} versions (published in {out['publish_seconds']} s);"
          f" load {out['load_before'][0]:.2f} before, {out['load_after'][0]:.2f} after")
    print(f"  choosing the queue (candidates + priorities): {out['queue_ms']} ms")
    if args.queue_scale:
        print(f"  ... with {args.queue_scale} more versions: {out['queue_ms_at_scale']} ms")
    for label, key in (("without tests", "without_tests"),
                       (f"with tests ({out['sandbox']})", "with_tests")):
        r = out[key]
        print(f"  {label:24} {r['versions_per_minute']:>8} versions/min  "
              f"({r['checked']} in {r['seconds']} s; a check p50 {r['check_ms_p50']} ms, "
              f"p95 {r['check_ms_p95']} ms; verdicts {', '.join(r['verdicts'])})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
