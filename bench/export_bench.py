"""Evidence export speed: reports per second out of `Registry.export_evidence` as JSON lines.

Fills a throwaway home (SQLite, or a fresh database of a throwaway PostgreSQL cluster,
tests/pgcluster.py, durable settings) with N outcome reports over S skills of one namespace,
with a mix of outcomes, signals and client names (written through the storage interface in
batches, as the tests do; reports are what makes an export large). Then times, per
backend, the export the route and the CLI stream (every line built, redacted and encoded,
one page of 1,000 rows in memory at a time), three runs each, and reports the median, with
the resident-size growth during the run:

- all: the whole namespace (every kind);
- gold: `tier=gold` (every row is still read and judged, a quarter is written);
- one skill: `skill=<one of S>` (the index range of one namespace, filtered by skill);
- a week: `since`/`until` one week of the 30 days (an index range).

    .venv/bin/python bench/export_bench.py [--reports 100000] [--skills 20]
                                           [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skills_hub.access.principal import OPERATOR  # noqa: E402
from skills_hub.config import Settings  # noqa: E402
from skills_hub.domain import NewOutcome  # noqa: E402
from skills_hub.ranking.quality import decay_factor  # noqa: E402
from skills_hub.ranking.trust import ema_update, signal_score  # noqa: E402
from skills_hub.services import Registry  # noqa: E402
from skills_hub.services.evidence import evidence_jsonl, parse_evidence_filters  # noqa: E402
from skills_hub.skill.bundle import Bundle  # noqa: E402
from tests.pgcluster import Cluster, with_database  # noqa: E402

NAMESPACE = "bench"
BATCH = 10_000
RUNS = 3
AGENTS = ["claude-code", "hermes", "codex", "openclaw", "cursor"]
MODELS = ["model-a", "model-b", "model-c"]


def skill_md(name: str) -> bytes:
    return (f"---\nname: {name}\ndescription: Formats the weekly report for {name}.\n"
            f"license: Apache-2.0\n---\n# {name}\n\n1. Read the CSV.\n2. Sum it.\n").encode()


def fill(registry: Registry, reports: int, skills: int, start: datetime) -> None:
    registry.create_token(NAMESPACE)
    names = [f"skill-{i:02d}" for i in range(skills)]
    for name in names:
        registry.publish(NAMESPACE, Bundle({"SKILL.md": skill_md(name)}), principal=OPERATOR,
                         version="1.0.0")
    rng = random.Random(17)
    span = 30 * 86400 / reports
    for first in range(0, reports, BATCH):
        by_skill: dict[str, list[NewOutcome]] = {}
        for i in range(first, min(first + BATCH, reports)):
            roll = rng.random()
            outcome = "success" if roll < 0.75 else "failure" if roll < 0.95 else "infra_error"
            signals: dict[str, Any] = {}
            if rng.random() < 0.6:
                signals["task_accepted"] = rng.random() < 0.8
            if rng.random() < 0.3:
                signals["retries"] = rng.randint(0, 3)
            score = None if outcome == "infra_error" else signal_score(
                outcome == "success", accepted=signals.get("task_accepted"),
                retries=signals.get("retries", 0))
            name = names[i % skills]
            by_skill.setdefault(name, []).append(NewOutcome(
                f"{i % 50:064d}", f"r{i:09d}", "1.0.0", outcome,
                "wrong_result" if outcome == "failure" else None, score,
                _json(signals), rng.choice(AGENTS), rng.choice(MODELS), f"c{i % 500}",
                start + timedelta(seconds=i * span)))
        for name, rows in by_skill.items():
            registry.store.outcomes.record_outcomes(NAMESPACE, name, rows, decay=decay_factor,
                                                    ema=ema_update)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()


def timed(registry: Registry, **filters: Any) -> dict[str, float]:
    """The median of RUNS exports: seconds, lines, bytes and resident growth."""
    runs = []
    for _ in range(RUNS):
        gc.collect()
        before, grew, lines, size = rss(), 0, 0, 0
        began = time.perf_counter()
        export = registry.export_evidence(OPERATOR, parse_evidence_filters(**filters))
        for chunk in evidence_jsonl(export):
            lines += chunk.count("\n")
            size += len(chunk)
            grew = max(grew, rss() - before)
        runs.append((time.perf_counter() - began, lines, size, grew))
    seconds = statistics.median(r[0] for r in runs)
    return {"seconds": seconds, "lines": runs[0][1], "mib": runs[0][2] / 2**20,
            "grew_mib": max(r[3] for r in runs) / 2**20}


def bench(backend: str, database_url: str | None, args: argparse.Namespace,
          root: Path) -> list[tuple[str, dict[str, float]]]:
    settings = Settings(home=root / backend, seed=False, semantic="off", sandbox="off",
                        database_url=database_url)
    registry = Registry(settings)
    registry.start()
    try:
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
        began = time.perf_counter()
        fill(registry, args.reports, args.skills, start)
        print(f"{backend}: {args.reports} reports recorded in "
              f"{time.perf_counter() - began:.1f} s", file=sys.stderr)
        week = {"since": (start + timedelta(days=10)).isoformat(),
                "until": (start + timedelta(days=17)).isoformat()}
        cases = [("all", {"namespace": NAMESPACE}),
                 ("gold", {"namespace": NAMESPACE, "tiers": ["gold"]}),
                 ("one skill", {"namespace": NAMESPACE, "skill": "skill-03"}),
                 ("a week", {"namespace": NAMESPACE, **week})]
        return [(label, timed(registry, **filters)) for label, filters in cases]
    finally:
        registry.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--skills", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    results: list[tuple[str, str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        root = Path(tmp)
        cluster = Cluster(durable=True) if "postgresql" in backends else None
        try:
            admin = cluster.start() if cluster is not None else None
            for backend in backends:
                url = None
                if backend == "postgresql":
                    assert admin is not None
                    url = create_database(admin, "export_bench")
                results += [(backend, label, r) for label, r in bench(backend, url, args, root)]
        finally:
            if cluster is not None:
                cluster.stop()
    print("| backend | export | lines | MiB | seconds | reports/s read | lines/s written "
          "| RSS growth MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for backend, label, r in results:
        read = args.reports if label in ("all", "gold") else r["lines"]
        print(f"| {backend} | {label} | {r['lines']:,} | {r['mib']:.1f} | {r['seconds']:.2f} "
              f"| {read / r['seconds']:,.0f} | {r['lines'] / r['seconds']:,.0f} "
              f"| {r['grew_mib']:.1f} |")
    print(f"load average at end: {os.getloadavg()}", file=sys.stderr)
    return 0


def create_database(admin_url: str, name: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


if __name__ == "__main__":
    sys.exit(main())
