"""The canary gate's sequential test: its error rates under continuous monitoring, by
simulation (seeded), and the shape of the decision it records."""

from __future__ import annotations

import numpy as np
import pytest

from skills_hub.learning import gate

STABLE, PRE, SHARE = 0.70, 200, 0.2


def simulate(delta: float, trials: int, *, batch: int, seed: int) -> list[tuple[str, int]]:
    """Trials as bench/loop_sim.py's model runs them: the stable version has PRE outcomes,
    then each outcome is the canary's with probability SHARE, and the gate judges after
    every `batch` outcomes until it decides. Returns (action, canary outcomes) per trial."""
    rng = np.random.default_rng(seed)
    horizon = int(gate.CANARY_MAX_OUTCOMES / SHARE * 1.3)
    out = []
    for _ in range(trials):
        is_canary = rng.random(horizon) < SHARE
        success = rng.random(horizon) < np.where(is_canary, STABLE + delta, STABLE)
        looks = np.arange(batch - 1, horizon, batch)
        c_n = np.cumsum(is_canary)[looks]
        c_s = np.cumsum(success & is_canary)[looks]
        s_n = PRE + np.cumsum(~is_canary)[looks]
        s_s = int(rng.binomial(PRE, STABLE)) + np.cumsum(success & ~is_canary)[looks]
        result = (gate.WAIT, int(c_n[-1]))
        for cn, cs, sn, ss in zip(c_n.tolist(), c_s.tolist(), s_n.tolist(), s_s.tolist(),
                                  strict=True):
            action = gate.canary_decision(gate.Interval(cs, cn), gate.Interval(ss, sn)).action
            if action != gate.WAIT:
                result = (action, cn)
                break
        out.append(result)
    return out


def promoted(runs: list[tuple[str, int]]) -> float:
    return sum(1 for action, _ in runs if action == gate.PROMOTE) / len(runs)


def test_a_worse_canary_is_almost_never_promoted_however_often_the_gate_looks() -> None:
    # Judged after every 5 outcomes (the API judges after every post).
    runs = simulate(-0.05, 150, batch=5, seed=1)
    assert promoted(runs) < 0.02
    assert all(action == gate.ROLL_BACK for action, _ in runs)


def test_an_equal_canary_is_promoted_in_under_5_percent_of_trials() -> None:
    runs = simulate(0.0, 300, batch=50, seed=2)
    assert promoted(runs) < 0.05
    # Every trial ends: shown worse by chance, or rolled back at the cap.
    assert all(action != gate.WAIT for action, _ in runs)
    assert max(n for _, n in runs) <= gate.CANARY_MAX_OUTCOMES + 50


def test_a_better_canary_is_promoted_in_at_least_90_percent_of_trials() -> None:
    runs = simulate(0.05, 100, batch=50, seed=3)
    assert promoted(runs) >= 0.9
    canary_n = sorted(n for action, n in runs if action == gate.PROMOTE)
    assert canary_n[len(canary_n) // 2] < 1500  # the median, in canary outcomes


def test_the_old_check_was_what_failed_and_the_new_one_holds() -> None:
    """Separated Wilson intervals re-taken at every look promote an equal canary often;
    the same looks through the sequential test rarely do (the reason for the change)."""
    rng = np.random.default_rng(4)
    wilson_promoted = 0
    trials = 200
    for _ in range(trials):
        c_s = c_n = 0
        s_s, s_n = int(rng.binomial(PRE, STABLE)), PRE
        for _ in range(1000 // 10):
            draws = rng.random(50) < STABLE
            canary = rng.random(50) < SHARE
            c_n, c_s = c_n + int(canary.sum()), c_s + int((draws & canary).sum())
            s_n, s_s = s_n + int((~canary).sum()), s_s + int((draws & ~canary).sum())
            if c_n >= 30 and gate.Interval(c_s, c_n).lower > gate.Interval(s_s, s_n).upper:
                wilson_promoted += 1
                break
    assert wilson_promoted / trials > 0.05


@pytest.mark.parametrize(("canary", "stable", "action", "rule"), [
    ((10, 20), (150, 200), gate.WAIT, ""),           # under CANARY_MIN_OUTCOMES
    ((95, 100), (600, 1000), gate.PROMOTE, "better"),
    ((30, 100), (700, 1000), gate.ROLL_BACK, "worse"),
    ((2800, gate.CANARY_MAX_OUTCOMES), (11200, 16000), gate.ROLL_BACK, "max"),
    ((70, 100), (700, 1000), gate.WAIT, ""),
])
def test_decisions_record_the_rule_the_test_and_both_intervals(
        canary: tuple[int, int], stable: tuple[int, int], action: str, rule: str) -> None:
    decision = gate.canary_decision(gate.Interval(*canary), gate.Interval(*stable))
    assert (decision.action, decision.rule) == (action, rule)
    record = decision.to_dict()
    assert set(record) == {"action", "reason", "rule", "canary", "stable", "test"}
    assert {"wilson_lower", "wilson_upper", "outcomes"} <= set(record["canary"])  # type: ignore[arg-type]
    test = record["test"]
    assert isinstance(test, dict) and test["method"] == "msprt"
    assert test["lower"] <= test["difference"] <= test["upper"]
    if action == gate.PROMOTE:
        assert test["lower"] > 0
    if rule == "worse":
        assert test["upper"] < 0


def test_the_bounds_narrow_with_evidence() -> None:
    small = gate.Difference(gate.Interval(70, 100), gate.Interval(700, 1000))
    large = gate.Difference(gate.Interval(700, 1000), gate.Interval(7000, 10000))
    assert large.radius(0.05) < small.radius(0.05)
    assert large.radius(0.05) > large.radius(0.10)
