"""Server time of the skill page with its evidence chart, at 10,000 outcome reports.

Publishes one skill with a few versions into a throwaway home, records N outcome reports
through the service (spread over the last 120 days, so the chart's 12-week window cuts some
off), then times in-process (the ASGI app through Starlette's test client, no sockets): the
skill page, the same page of a skill without reports, and the chart's own query
(`Registry.outcome_timeline`). Prints p50/p95 against the aim (pages p50 < 20 ms); nothing is
asserted.

    .venv/bin/python bench/evidence_bench.py [--reports 10000] [--versions 5] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skills_hub.access.principal import ANONYMOUS, OPERATOR  # noqa: E402
from skills_hub.config import Settings  # noqa: E402
from skills_hub.services import Registry  # noqa: E402
from skills_hub.skill.bundle import Bundle  # noqa: E402
from skills_hub.web.app import create_app  # noqa: E402

NAMESPACE = "bench"
AIM_PAGE_P50_MS = 20.0
BATCH = 1000  # learning.outcomes.MAX_BATCH


def skill_md(name: str, version: str) -> bytes:
    return (f"---\nname: {name}\ndescription: Formats the weekly sales report as a table, "
            f"release {version}.\nlicense: Apache-2.0\n---\n# {name}\n\n## Steps\n\n"
            f"1. Read the sales CSV.\n2. Sum by region ({version}).\n").encode()


def record(registry: Registry, name: str, versions: list[str], reports: int,
           rng: random.Random) -> None:
    """`reports` outcome reports as agents send them, newer versions later and better."""
    principal = registry.authenticate(registry.create_token("reporters"))
    now = datetime.now(UTC)
    for start in range(0, reports, BATCH):
        batch = []
        for _ in range(min(BATCH, reports - start)):
            i = rng.randrange(len(versions))
            age = rng.uniform(0, 120 / (i + 1))  # the newest version has the freshest reports
            rate = 0.6 + 0.35 * i / max(1, len(versions) - 1)
            outcome = "success" if rng.random() < rate else rng.choice(
                ["failure", "failure", "infra_error"])
            batch.append({"id": uuid.uuid4().hex, "version": versions[i], "outcome": outcome,
                          **({"failure_kind": "wrong_result"} if outcome == "failure" else {}),
                          "client": {"id": f"client-{rng.randrange(50)}"},
                          "at": (now - timedelta(days=age)).isoformat()})
        registry.report_outcomes(NAMESPACE, name, {"outcomes": batch}, principal)


def timed(call: Callable[[], object], n: int) -> dict[str, float]:
    for _ in range(min(20, n)):  # warm-up
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50_ms": statistics.median(samples),
            "p95_ms": samples[int(0.95 * (len(samples) - 1))], "n": n}


def page(client: TestClient, url: str, needle: str | None) -> Callable[[], object]:
    def get() -> object:
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        if needle is not None and needle not in response.text:
            raise SystemExit(f"{url} has no {needle!r}")
        return response
    return get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = random.Random(7)
    home = Path(tempfile.mkdtemp(prefix="skills-hub-evidence-")) / "data"
    settings = Settings(home=home, seed=False, semantic="off", sandbox="off",
                        outcome_rate=1e9, outcome_burst=1e9)
    registry = Registry(settings)
    registry.start()
    versions = [f"1.{i}.0" for i in range(args.versions)]
    for name in ("sales-report", "quiet-skill"):
        for version in versions:
            registry.publish(NAMESPACE, Bundle({"SKILL.md": skill_md(name, version)}),
                             principal=OPERATOR, version=version)
    start = time.perf_counter()
    record(registry, "sales-report", versions, args.reports, rng)
    print(f"recorded {args.reports} outcome reports on {args.versions} versions in "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    results: dict[str, dict[str, float]] = {}
    with TestClient(create_app(settings, registry)) as client:
        results["skill page, with chart"] = timed(
            page(client, f"/{NAMESPACE}/sales-report", 'class="evidence-chart"'), args.requests)
        results["skill page, no reports"] = timed(
            page(client, f"/{NAMESPACE}/quiet-skill", None), args.requests)
    results["outcome_timeline alone"] = timed(
        lambda: registry.outcome_timeline(NAMESPACE, "sales-report", ANONYMOUS),
        args.requests)
    registry.close()
    print(f"{'':28} {'p50 ms':>8} {'p95 ms':>8}")
    for label, figures in results.items():
        print(f"{label:28} {figures['p50_ms']:8.2f} {figures['p95_ms']:8.2f}")
    chart = results["skill page, with chart"]["p50_ms"]
    print(f"aim: skill page p50 < {AIM_PAGE_P50_MS:g} ms: "
          f"{'met' if chart < AIM_PAGE_P50_MS else 'MISSED'} ({chart:.1f} ms at "
          f"{args.reports:,} reports)")
    if args.json:
        args.json.write_text(json.dumps({"reports": args.reports, "versions": args.versions,
                                         "results": results}, indent=2))


if __name__ == "__main__":
    main()
