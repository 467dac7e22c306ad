"""bench/loop_sim.py: the pure parts (statistics, simulated agents, the gate model, the
report), so the benchmark cannot rot. No server is started here."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from skills_hub.learning import gate
from skills_hub.learning.edits import apply_edits, parse_edits
from skills_hub.learning.outcomes import parse_reports, task_key
from skills_hub.skill.manifest import parse_manifest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _import_loop_sim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_loop_sim",
                                                  REPO_ROOT / "bench" / "loop_sim.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


sim = _import_loop_sim()


def test_pct_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert sim.pct(values, 50) == 5.0
    assert sim.pct(values, 90) == 9.0
    assert sim.pct(values, 100) == 10.0
    assert sim.pct([3.0], 90) == 3.0
    assert math.isnan(sim.pct([], 50))
    assert sim.pct([1.0, math.inf, math.inf], 50) == math.inf  # not converged sorts last
    assert sim.summary([4.0, 1.0, 2.0, 3.0]) == {"n": 4, "median": 2.0, "p90": 4.0, "max": 4.0}


def test_convergence_first_time_and_for_good() -> None:
    history = [(50, False), (100, True), (150, False), (200, True), (250, True)]
    assert sim.convergence(history) == (100, 200)
    assert sim.convergence([(50, True), (100, True)]) == (50, 50)
    assert sim.convergence([(50, True), (100, False)]) == (50, None)  # lost it at the end
    assert sim.convergence([(50, False)]) == (None, None)
    assert sim.convergence([]) == (None, None)


def test_pick_skill_uniform_and_greedy() -> None:
    rng = random.Random(3)
    uniform = [sim.pick_skill(rng, 5, "uniform", 2, 0.1) for _ in range(5000)]
    assert set(uniform) == set(range(5))
    assert all(800 < uniform.count(i) < 1200 for i in range(5))
    greedy = [sim.pick_skill(rng, 5, "greedy", 2, 0.1) for _ in range(5000)]
    # the top with probability 0.9, plus its share of the uniform 0.1
    assert 0.89 < greedy.count(2) / 5000 < 0.95
    assert set(greedy) == set(range(5))
    assert sim.pick_skill(rng, 5, "greedy", None, 0.0) in range(5)  # no ranking yet


def test_seeds_and_labels_are_stable() -> None:
    assert sim.seed_for("canary", 1, -0.05, 3) == sim.seed_for("canary", 1, -0.05, 3)
    assert sim.seed_for("canary", 1, -0.05, 3) != sim.seed_for("canary", 1, 0.05, 3)
    assert [sim.delta_label(d) for d in (-0.1, -0.05, 0.0, 0.05, 0.15)] == [
        "m010", "m005", "z000", "p005", "p015"]
    assert sim.client_ids(3) == ["agent-00000", "agent-00001", "agent-00002"]


def test_reports_pass_the_servers_parser() -> None:
    rng = random.Random(1)
    reports = [sim.make_report(rng, f"r-{i}", "1.0.0", i % 3 != 0, f"agent-{i:05d}")
               for i in range(30)]
    parsed = parse_reports({"outcomes": reports})
    assert len(parsed) == 30
    assert sum(r.success for r in parsed) == 20
    assert all(r.failure_kind in (None, *sim.FAILURE_KINDS) for r in parsed)
    assert {r.client_id for r in parsed} == {f"agent-{i:05d}" for i in range(30)}


def test_skill_md_is_valid_and_the_proposed_edit_applies() -> None:
    text = sim.skill_md("tidy-csv-u000-a", tags="loop-uniform-000")
    manifest = parse_manifest(text, dirname="tidy-csv-u000-a", strict=True)
    assert manifest.name == "tidy-csv-u000-a"
    assert "loop-uniform-000" in manifest.tags
    # names of one run have equal length, so keyword relevance ties
    assert len(sim.skill_md("tidy-csv-g017-e")) == len(sim.skill_md("tidy-csv-u000-a"))
    assert text.count(sim.EDIT_TARGET) == 1
    edits = parse_edits([{"op": "replace", "target": sim.EDIT_TARGET,
                          "content": sim.EDIT_CONTENT}])
    edited = apply_edits({"SKILL.md": text.encode()}, edits)["SKILL.md"].decode()
    assert sim.EDIT_CONTENT in edited and edited != text


def test_canary_share_of_a_population() -> None:
    clients = sim.client_ids(2000)
    share = sum(gate.in_canary(sim.CANARY_NS, "canary-p005-0000", "1.0.1", c, 0.2)
                for c in clients) / len(clients)
    assert 0.17 < share < 0.23


def _decision(canary: tuple[int, int], stable: tuple[int, int]) -> dict[str, Any]:
    decision = gate.canary_decision(gate.Interval(*canary), gate.Interval(*stable))
    return decision.to_dict()


def test_decision_kind() -> None:
    assert sim.decision_kind(_decision((95, 100), (600, 1000))) == "better"
    assert sim.decision_kind(_decision((30, 100), (700, 1000))) == "worse"
    at_max = _decision((2800, gate.CANARY_MAX_OUTCOMES), (11200, 16000))
    assert at_max["action"] == gate.ROLL_BACK
    assert sim.decision_kind(at_max) == "max"
    assert sim.decision_kind(None) == ""
    # Decisions recorded before the sequential gate carry no rule: read from the intervals.
    old = {"action": gate.ROLL_BACK, "canary": {"wilson_upper": 0.5},
           "stable": {"wilson_lower": 0.6}}
    assert sim.decision_kind(old) == "worse"
    assert sim.decision_kind({**old, "canary": {"wilson_upper": 0.7}}) == "max"


def test_tally_per_delta() -> None:
    trials = [
        sim.CanaryTrial(-0.1, 0, state="rolled_back", why="worse", canary_n=80, total=400),
        sim.CanaryTrial(-0.1, 1, state="promoted", why="better", canary_n=60, total=300),
        sim.CanaryTrial(-0.1, 2, state="undecided", canary_n=5000, total=20000),
        sim.CanaryTrial(-0.1, 3, state="error", error="boom"),
        sim.CanaryTrial(0.1, 0, state="promoted", why="better", canary_n=50, total=250,
                        resolves=100, resolved_canary=20),
    ]
    rows = {r["delta"]: r for r in sim.tally(trials)}
    worse = rows[-0.1]
    assert worse["trials"] == 4 and worse["errors"] == 1
    assert worse["promoted"] == worse["rolled_back"] == worse["undecided"] == 0.25
    assert worse["rolled_back_worse"] == 0.25 and worse["rolled_back_max"] == 0.0
    assert worse["canary_n"] == {"n": 2, "median": 60, "p90": 80, "max": 80}  # decided only
    assert worse["promoted_total"]["median"] == 300
    assert rows[0.1]["realised_share"] == 0.2


def test_model_separates_clear_cases_and_is_deterministic() -> None:
    kwargs: dict[str, Any] = {"seed": 1, "stable_rate": 0.7, "pre": 200, "share": 0.2,
                              "batch": 50, "cap": 20000}
    rows = sim.model_run([-0.3, 0.25], 20, **kwargs)
    assert rows[0]["rolled_back"] == 1.0 and rows[0]["promoted"] == 0.0
    assert rows[1]["promoted"] == 1.0
    assert rows[1]["canary_n"]["median"] >= gate.CANARY_MIN_OUTCOMES
    assert sim.plain(sim.model_run([-0.3, 0.25], 20, **kwargs)) == sim.plain(rows)  # nan
    action, canary_n, total = sim.model_trial(random.Random(2), 0.7, 0.0, pre=200, share=0.2,
                                              batch=1, cap=25000)
    assert action in (gate.PROMOTE, gate.ROLL_BACK)
    assert canary_n <= gate.CANARY_MAX_OUTCOMES and total >= canary_n


def _rank_run(policy: str, run: int, firsts: list[bool]) -> Any:
    result = sim.RankRun(policy, run, best="b", picks={"a": 10, "b": 30})
    result.history = [(50 * (i + 1), top, top) for i, top in enumerate(firsts)]
    return result


def test_rank_figures_and_the_report_render() -> None:
    runs = [_rank_run("uniform", 0, [False, True, True]),
            _rank_run("uniform", 1, [True, False, True]),
            _rank_run("greedy", 0, [False, False, False])]
    figures = sim.rank_figures(runs, horizon=150)
    uniform = figures["uniform"]["relevance"]
    assert uniform["first"] == {"n": 2, "median": 50.0, "p90": 100.0, "max": 100.0}
    assert uniform["stays"] == {"n": 2, "median": 100.0, "p90": 150.0, "max": 150.0}
    assert figures["greedy"]["relevance"]["not_converged"] == 1
    assert figures["uniform"]["best_pick_share"] == 0.75

    args = sim.parse_args(["--quick"])
    params = {**vars(args), "command": "bench/loop_sim.py --quick", "started": "now"}
    trials = [sim.CanaryTrial(d, 0, state="rolled_back" if d < 0 else "promoted",
                              why="worse" if d < 0 else "better", canary_n=100, total=500)
              for d in args.deltas]
    canary = {"rows": sim.tally(trials), "model": {
        "batch": sim.model_run(args.deltas, 3, seed=1, stable_rate=0.7, pre=200, share=0.2,
                               batch=50, cap=20000),
        "single": sim.model_run(args.deltas, 3, seed=1, stable_rate=0.7, pre=200, share=0.2,
                                batch=1, cap=20000)}}
    canary["headline"] = {
        "worse_trials": 2, "worse_promoted": 0, "worse_promoted_share": 0.0,
        "equal_promoted_share": 0.0, "better": [{"delta": 0.05, "promoted": 0.92,
                                                  "total": sim.summary([3000]),
                                                  "canary_n": sim.summary([600])}],
        "resolves": 10, "realised_share": 0.2, "mismatches": 0, "latest_ok": 6,
        "latest_checked": 6, "errors": 0, "reports": 3000, "wall_s": 1.0}
    row = {"workers": 1, "batch": 100, "threads": 1, "reports": 1000, "prefill_clients": 0,
           "clients": 2000, "requests": 10, "wall_s": 0.1, "reports_per_s": 10_000.0,
           "p50_ms": 4.0, "p95_ms": 9.0, "max_ms": 10.0, "errors": 0, "first_error": "",
           "server_cpu_s": 0.1, "client_cpu_s": 0.05}
    res = {"params": params, "machine": sim.machine(), "figures": {
        "rank": {"policies": figures}, "canary": canary, "throughput": [row],
        "idle": [{"workers": 1, "p50_ms": 0.6, "p95_ms": 0.8}],
        "wide": {**row, "prefill_clients": 50_000, "reports_per_s": 5000.0}}}
    res["figures"]["verdicts"] = sim.collect_verdicts(res["figures"])
    text = sim.render(res)
    assert "1. ranking convergence" in text and "never" in text
    assert "worse canaries promoted: 0 of 2" in text
    # Met: worse, equal and better canaries, throughput; missed: greedy never converged.
    assert "aims met: 4/5" in text and "missed: greedy clients" in text
    assert "equal promoted 0.0% (aim < 5%: met)" in text
    assert sim.plain({"x": math.inf, "y": (1, math.nan)}) == {"x": None, "y": [1, None]}


def test_arguments() -> None:
    args = sim.parse_args([])
    assert args.trials == sim.DEFAULTS["trials"] and args.rates == [0.55, 0.65, 0.7, 0.75, 0.85]
    assert args.parts == ["rank", "canary", "flood", "kinds", "throughput"]
    assert (args.kinds_runs, args.kinds_horizon, args.kinds_round) == (5, 1500, 50)
    quick = sim.parse_args(["--quick", "--trials", "3", "--parts", "canary"])
    assert quick.trials == 3 and quick.rank_seeds == sim.QUICK["rank_seeds"]
    assert quick.parts == ["canary"]
    with pytest.raises(SystemExit):
        sim.parse_args(["--parts", "nothing"])
    kinds = sim.parse_args(["--quick", "--parts", "kinds", "--kinds-horizon", "600"])
    assert kinds.parts == ["kinds"] and kinds.kinds_runs == sim.QUICK["kinds_runs"]
    assert kinds.kinds_horizon == 600 and kinds.kinds_round == 50
    with pytest.raises(SystemExit):
        sim.parse_args(["--parts", "kinds", "--kinds-round", "0"])


def test_plain_first_reads_the_plain_order_of_an_explored_page() -> None:
    explored = [{"name": "b", "score_parts": {"explore": {"plain_rank": 2}}},
                {"name": "a", "score_parts": {"explore": {"plain_rank": 1}}}]
    assert sim.plain_first(explored) == "a"
    assert sim.plain_first([{"name": "c", "score_parts": {}},
                            {"name": "a", "score_parts": {}}]) == "c"


# -- part 5: the best skill differs by kind of task ---------------------------------------

def test_kind_profiles_tie_globally_and_differ_per_kind() -> None:
    for profile in sim.KIND_PROFILES:
        assert len(profile) == len(sim.KINDS)
        # the same success rate over both kinds drawn uniformly: global numbers tie
        assert math.isclose(sum(profile) / len(profile),
                            sum(sim.KIND_PROFILES[0]) / len(sim.KIND_PROFILES[0]))
    rates = {str(i): dict(zip(sim.KINDS, p, strict=True))
             for i, p in enumerate(sim.KIND_PROFILES)}
    for kind in sim.KINDS:
        ordered = sorted((r[kind] for r in rates.values()), reverse=True)
        assert ordered[0] > ordered[1]  # one best per kind
    bests = [sim.kind_best(rates, kind) for kind in sim.KINDS]
    assert len(set(bests)) == len(bests)  # and a different one for each kind
    assert set(sim.KIND_TASKS) == set(sim.KIND_QUERIES) == set(sim.KINDS)
    for kind, query in sim.KIND_QUERIES.items():
        assert query not in sim.KIND_TASKS[kind]  # held out


def test_viz_skill_and_task_texts() -> None:
    text = sim.viz_md("viz-kinds-000-a", tags="loop-kinds-000")
    manifest = parse_manifest(text, dirname="viz-kinds-000-a", strict=True)
    assert manifest.name == "viz-kinds-000-a" and "loop-kinds-000" in manifest.tags
    assert len(sim.viz_md("viz-kinds-004-c")) == len(sim.viz_md("viz-kinds-000-a"))
    kinds = [sim.KINDS[i % len(sim.KINDS)] for i in range(200)]
    rng = random.Random(5)
    texts = [sim.task_text(rng, kind, 1000 + i) for i, kind in enumerate(kinds)]
    for i, (kind, text) in enumerate(zip(kinds, texts, strict=True)):
        assert any(text.startswith(t) for t in sim.KIND_TASKS[kind]) and str(1000 + i) in text
    # every report names a task of its own (one token reports for the whole population)
    assert len({task_key(t) for t in texts}) == len(texts)
    again = random.Random(5)
    assert texts == [sim.task_text(again, kind, 1000 + i) for i, kind in enumerate(kinds)]
    report = sim.make_report(random.Random(1), "r-1", "1.0.0", True, "agent-00001")
    report["task"] = texts[0]
    assert parse_reports({"outcomes": [report]})[0].task_key == task_key(texts[0])


def _result(name: str, relevance: float, successes: float, failures: float,
            task: dict[str, Any] | None = None, plain_rank: int | None = None) -> dict[str, Any]:
    parts: dict[str, Any] = {"relevance": relevance, "successes": successes,
                             "failures": failures, "exact_name": False, "task": task}
    if plain_rank is not None:
        parts["explore"] = {"plain_rank": plain_rank, "sample": 0.5, "quality": 0.5}
    return {"name": name, "downloads": 0, "score_parts": parts}


def test_global_order_ignores_the_task_evidence() -> None:
    # No task evidence: the plain order (relevance first, then quality, then the page).
    plain = [_result("a", 1.0, 60, 40), _result("b", 0.999, 90, 10), _result("c", 0.5, 99, 1)]
    assert sim.global_order(plain) == ["b", "a", "c"]  # quality reorders near-equal relevance
    # The page explored: read in its plain order, ties keep it.
    explored = [_result("y", 1.0, 50, 50, plain_rank=2), _result("x", 1.0, 50, 50, plain_rank=1)]
    assert sim.global_order(explored) == ["x", "y"] == sim.plain_order(explored)
    # Task evidence put "a" first; with it ignored, the global numbers rank "b" first.
    near = {"tasks": 40, "successes": 36.0, "failures": 4.0, "wilson": 0.8, "weight": 0.8}
    served = [_result("a", 1.0, 60, 40, task=near), _result("b", 1.0, 65, 35)]
    assert sim.plain_order(served) == ["a", "b"]
    assert sim.global_order(served) == ["b", "a"]


def _kinds_run(run: int, firsts: dict[str, list[tuple[bool, bool]]],
               scores: dict[str, dict[str, float]]) -> Any:
    result = sim.KindsRun(run)
    names = [f"viz-kinds-{run:03d}-{x}" for x in "abc"]
    result.rates = {n: dict(zip(sim.KINDS, p, strict=True))
                    for n, p in zip(names, sim.KIND_PROFILES, strict=True)}
    result.best = {k: sim.kind_best(result.rates, k) for k in sim.KINDS}
    result.history = {k: [(50 * (i + 1), a, b) for i, (a, b) in enumerate(firsts[k])]
                      for k in sim.KINDS}
    for kind in sim.KINDS:
        entries = []
        for n in names:
            rate = result.rates[n][kind]
            task = {"tasks": 100, "successes": 80 * rate, "failures": 80 * (1 - rate),
                    "wilson": rate - 0.08, "weight": 0.9}
            entries.append({"name": n, "rate": rate, "relevance": 1.0, "quality": 0.6,
                            "score": scores[kind][n[-1]], "successes": 100.0,
                            "failures": 50.0, "wilson": 0.6 + 0.01 * names.index(n),
                            "task": task, "kind_reports": 100})
        result.final[kind] = sorted(entries, key=lambda e: -e["score"])
    result.relevance_spread = 0.004 * (run + 1)
    return result


def test_kinds_figures_verdict_and_render() -> None:
    # KIND_PROFILES in order: a 0.85/0.45 (best for charts), b 0.45/0.85 (maps), c 0.65/0.65
    scores = {"chart": {"a": 0.96, "b": 0.94, "c": 0.95}, "map": {"a": 0.93, "b": 0.97, "c": 0.95}}
    runs = [
        _kinds_run(0, {"chart": [(False, True), (True, True), (True, False)],
                       "map": [(True, False), (True, False), (True, False)]}, scores),
        _kinds_run(1, {"chart": [(True, False), (False, False), (True, True)],
                       "map": [(False, False), (True, False), (True, False)]}, scores),
    ]
    failed = sim.KindsRun(2, error="RuntimeError: boom")
    f = sim.kinds_figures([*runs, failed], horizon=150)
    assert f["runs"] == 2 and f["errors"] == 1 and f["every_kind_first"] == 2
    chart, map_ = f["kinds"]["chart"], f["kinds"]["map"]
    assert chart["first"] == {"n": 2, "median": 50.0, "p90": 100.0, "max": 100.0}
    assert chart["stays"] == {"n": 2, "median": 100.0, "p90": 150.0, "max": 150.0}
    assert map_["stays"]["median"] == 50.0 and map_["not_converged"] == 0
    assert chart["global_first_at_end"] == 1 and map_["global_first_at_end"] == 0
    assert chart["global_first_share"] == 3 / 6
    assert f["global_every_kind_first"] == 0
    assert math.isclose(chart["margin_median"], 0.96 / 0.95 - 1)
    assert math.isclose(chart["best_near_wilson"], 0.85 - 0.08)
    assert chart["best_kind_reports"] == 100 and chart["best_near_n"] == 80
    assert f["relevance_spread"] == 0.008
    assert f["example"]["run"] == 0

    args = sim.parse_args(["--parts", "kinds"])
    params = {**vars(args), "command": "bench/loop_sim.py --parts kinds", "started": "now"}
    res: dict[str, Any] = {"params": params, "machine": sim.machine(), "figures": {"kinds": f}}
    res["figures"]["verdicts"] = sim.collect_verdicts(res["figures"])
    text = sim.render(res)
    assert "5. the best skill differs by kind of task" in text
    assert "every kind's best first at the end: in 2/2 runs (global only: 0/2)" in text
    assert "viz-kinds-000-a (0.85, the best)" in text
    # a failed run is not "every run"
    assert "aims met: 0/1" in text and "each kind of task's best skill first" in text

    ok = sim.kinds_figures(runs, horizon=150)
    assert sim.collect_verdicts({"kinds": ok})[0]["met"] is True
    lost = _kinds_run(3, {"chart": [(True, True)], "map": [(False, True)]}, scores)
    assert sim.collect_verdicts({"kinds": sim.kinds_figures([*runs, lost], 50)})[0]["met"] \
        is False
    broken: dict[str, Any] = {"kinds": {"error": "RuntimeError: semantic search is failed"}}
    broken["verdicts"] = sim.collect_verdicts(broken)
    assert broken["verdicts"][0]["met"] is False
    text = sim.render({**res, "figures": broken})
    assert "5. the best skill differs by kind of task: failed: RuntimeError" in text
    assert sim.plain(ok) == sim.plain(sim.kinds_figures(runs, horizon=150))  # JSON-safe
