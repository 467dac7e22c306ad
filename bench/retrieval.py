"""Retrieval quality on the Berkeley Function Calling Leaderboard (BFCL) data.

Each BFCL function becomes a skill (SKILL.md with its description and parameters), each
question a query whose relevant skills are the functions its answer calls (see bfcl.py).
The skills are published into a throwaway registry through the real publish path (checks,
git, index, embeddings); then every query is run through `Registry.search` in each mode
and scored: NDCG@10, Recall@1/5/10, MRR.

    .venv/bin/python bench/retrieval.py [--limit-queries N] [--sweep] [--split-variants]
                                        [--json PATH]

By default one skill is made per BFCL function name (BFCL repeats functions across items
with reworded descriptions); `--split-variants` makes one per (name, description), where
a query's relevant skill is the rewording its own item carried, which no retriever can
tell from the question (see bfcl.load).

The data comes from the `bfcl-eval` wheel on PyPI (Apache-2.0), downloaded once into
bench/.cache. Nothing is asserted; the hybrid aim (NDCG@10 >= 0.75) is marked met/MISSED.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bfcl  # noqa: E402

from skills_hub.access.principal import ANONYMOUS, OPERATOR  # noqa: E402
from skills_hub.config import Settings  # noqa: E402
from skills_hub.services import MAX_QUERY_CHARS, Registry  # noqa: E402
from skills_hub.skill.bundle import from_files  # noqa: E402

NAMESPACE = "bfcl"
MODES = ("keyword", "semantic", "hybrid")
AIM_HYBRID_NDCG = 0.75
# Fusion settings tried by --sweep: (method, keyword weight, semantic weight, rrf k).
SWEEP = [("calibrated", 1.0, 0.5, 60.0), ("calibrated", 1.0, 2.0, 60.0),
         ("rrf", 1.0, 2.0, 60.0), ("rrf", 2.0, 1.0, 60.0), ("rrf", 1.0, 1.0, 10.0)]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def publish_all(registry: Registry, dataset: bfcl.Dataset) -> dict[str, float]:
    started = time.perf_counter()
    refused, duplicates, timings = 0, 0, []
    for i, skill in enumerate(dataset.skills, start=1):
        bundle = from_files([(f"{skill.name}/SKILL.md", bfcl.skill_md(skill).encode(), False)])
        t0 = time.perf_counter()
        try:
            outcome = registry.publish(NAMESPACE, bundle, principal=OPERATOR)
        except Exception as exc:  # a refused skill is reported, not fatal
            refused += 1
            log(f"  refused {skill.name}: {exc}")
            continue
        timings.append(time.perf_counter() - t0)
        duplicates += bool(outcome.duplicates)
        if i % 250 == 0:
            log(f"  published {i}/{len(dataset.skills)}")
    return {"skills": len(dataset.skills), "refused": refused,
            "with_near_duplicates": duplicates,
            "publish_p50_ms": statistics.median(timings) * 1000,
            "total_s": time.perf_counter() - started}


def run(registry: Registry, queries: list[bfcl.Query], mode: str) -> tuple[dict, list[float]]:
    runs, latencies = {}, []
    for query in queries:
        t0 = time.perf_counter()
        page = registry.search(query.text[:MAX_QUERY_CHARS], principal=ANONYMOUS, mode=mode,
                               limit=10)
        latencies.append(time.perf_counter() - t0)
        served = page.results.mode
        if served != mode:
            raise RuntimeError(f"asked for {mode}, served by {served}")
        runs[query.id] = [r.skill.name for r in page.results.results]
    return runs, latencies


def table(rows: dict[str, dict[str, float]]) -> str:
    cols = ("ndcg@10", "recall@1", "recall@5", "recall@10", "mrr")
    lines = [f"{'mode':<28}" + "".join(f"{c:>10}" for c in cols) + f"{'p50 ms':>10}"]
    for name, row in rows.items():
        lines.append(f"{name:<28}" + "".join(f"{row[c]:>10.3f}" for c in cols)
                     + f"{row.get('p50_ms', float('nan')):>10.1f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-queries", type=int, default=0, help="use the first N queries")
    parser.add_argument("--sweep", action="store_true",
                        help="also score other fusion weights (sensitivity, not tuning)")
    parser.add_argument("--split-variants", action="store_true",
                        help="one skill per (function, description) instead of per function")
    parser.add_argument("--json", type=Path, help="write every figure here too")
    parser.add_argument("--cache", type=Path, default=ROOT / "bench" / ".cache")
    parser.add_argument("--database-url", help="an empty PostgreSQL database to run on "
                        "(postgresql://...); default: the embedded SQLite")
    args = parser.parse_args()

    wheel = bfcl.fetch_wheel(args.cache)
    dataset = bfcl.load(wheel, split_variants=args.split_variants)
    queries = dataset.queries[:args.limit_queries] if args.limit_queries else dataset.queries
    log(f"BFCL {wheel.name}: {len(dataset.skills)} skills, {len(queries)} queries")

    home = Path(tempfile.mkdtemp(prefix="skills-hub-retrieval-"))
    registry = Registry(Settings(home=home, seed=False, sandbox="off",
                                 database_url=args.database_url))
    log(f"backend: {'PostgreSQL' if args.database_url else 'SQLite'}")
    try:
        registry.start()
        t0 = time.perf_counter()
        if not registry.embedder.wait(600):
            raise SystemExit(f"the embedding model did not load: {registry.embedder.error}")
        log(f"model ready in {time.perf_counter() - t0:.1f} s; publishing")
        published = publish_all(registry, dataset)
        if not registry.search_engine.wait_indexed(600):
            raise SystemExit("embedding the published skills did not finish")
        log(f"published {published['skills']} in {published['total_s']:.0f} s")

        rows: dict[str, dict[str, float]] = {}
        per_category: dict[str, dict[str, list[str]]] = {}
        for mode in MODES:
            runs, latencies = run(registry, queries, mode)
            rows[mode] = {**bfcl.evaluate(runs, queries),
                          "p50_ms": statistics.median(latencies) * 1000}
            per_category[mode] = runs
            log(f"  {mode}: ndcg@10 {rows[mode]['ndcg@10']:.3f}")
        engine = registry.search_engine
        defaults = (engine.fusion, engine.keyword_weight, engine.semantic_weight, engine.rrf_k)
        settings = [("rrf", 1.0, 1.0, 60.0)] + (SWEEP if args.sweep else [])
        sweep_rows: dict[str, dict[str, float]] = {}
        for method, kw, sem, k in settings:
            engine.fusion, engine.keyword_weight, engine.semantic_weight, engine.rrf_k = (
                method, kw, sem, k)
            runs, latencies = run(registry, queries, "hybrid")
            label = f"hybrid {method} kw={kw:g} sem={sem:g}" + (f" k={k:g}" if method == "rrf"
                                                                 else "")
            sweep_rows[label] = {**bfcl.evaluate(runs, queries),
                                 "p50_ms": statistics.median(latencies) * 1000}
            log(f"  {label}: ndcg@10 {sweep_rows[label]['ndcg@10']:.3f}")
        engine.fusion, engine.keyword_weight, engine.semantic_weight, engine.rrf_k = defaults

        by_cat: dict[str, dict[str, float]] = defaultdict(dict)
        for mode in MODES:
            for category in bfcl.CATEGORIES:
                subset = [q for q in queries if _category(q.id) == category]
                if subset:
                    by_cat[category][mode] = bfcl.evaluate(per_category[mode], subset)["ndcg@10"]
    finally:
        registry.close()
        shutil.rmtree(home, ignore_errors=True)

    print(f"backend: {'PostgreSQL' if args.database_url else 'SQLite'}")
    print(f"BFCL ({wheel.name}): {len(dataset.skills)} skills, {len(queries)} queries, "
          f"{sum(len(q.relevant) > 1 for q in queries)} with several relevant skills")
    print(f"published through Registry.publish in {published['total_s']:.0f} s "
          f"(p50 {published['publish_p50_ms']:.0f} ms, refused {published['refused']}, "
          f"{published['with_near_duplicates']} named near-duplicates at >= 0.9)")
    print(f"skills: one per {'(function, description)' if args.split_variants else 'function'}"
          f"; served fusion: {defaults[0]}, keyword weight {defaults[1]:g}, "
          f"semantic weight {defaults[2]:g}")
    print()
    print(table(rows))
    print("\nother fusions on the same rankings (RRF for comparison; the rest with --sweep,"
          " a sensitivity check, not tuning):")
    print(table(sweep_rows))
    print("\nNDCG@10 by BFCL category:")
    print(f"{'category':<22}" + "".join(f"{m:>10}" for m in MODES))
    for category, values in by_cat.items():
        print(f"{category:<22}" + "".join(f"{values[m]:>10.3f}" for m in MODES))
    met = rows["hybrid"]["ndcg@10"] >= AIM_HYBRID_NDCG
    best_single = max(rows["keyword"]["ndcg@10"], rows["semantic"]["ndcg@10"])
    print(f"\naim: hybrid NDCG@10 >= {AIM_HYBRID_NDCG}: {rows['hybrid']['ndcg@10']:.3f} "
          f"{'met' if met else 'MISSED'}; hybrid beats its best component "
          f"({best_single:.3f}): {'met' if rows['hybrid']['ndcg@10'] > best_single else 'MISSED'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"published": published, "modes": rows,
                                         "sweep": sweep_rows, "by_category": by_cat,
                                         "stats": dataset.stats}, indent=2))
    return 0


def _category(query_id: str) -> str:
    """BFCL ids are `<category>_<n>` (live ones `<category>_<n>-<a>-<b>`)."""
    for category in sorted(bfcl.CATEGORIES, key=len, reverse=True):
        if query_id.startswith(category + "_"):
            return category
    return "other"


if __name__ == "__main__":
    raise SystemExit(main())
