"""The gate between an agent's proposed edit and the agents that install the skill: when a
namespace's `auto` policy may accept a proposal, who gets a canary, and when a canary is
promoted or rolled back. Pure functions over counts; the service applies them.

Auto policy (`auto_accept`): a proposal is accepted without a reviewer only when
  - its checks verdict is `safe` (a `caution` finding always waits for a person), and
  - at least AUTO_MIN_SUPPORT distinct tokens proposed the same resulting content, and
  - the server's own evidence says the version it fixes needs fixing: at least
    AUTO_MIN_OUTCOMES counted outcomes on it, with a success EMA below AUTO_MAX_EMA.
The evidence agents attach to a proposal is shown to reviewers but never trusted here.
An auto-accepted proposal always goes out as a canary (AUTO_CANARY_SHARE), so it reaches
everyone only after outcomes show it is better.

Canary (`in_canary`, `canary_decision`): a client is in the canary when
sha256("<ns>/<name>@<version>:<client id>") as a fraction of 2**64 is below the share,
so a client always gets the same answer for one canary, and different canaries pick
different clients. The decision is re-taken after every post of reports, so it is a
sequential test whose error rate holds however often it looks: a mixture sequential
probability ratio test (mSPRT, a normal mixture over the difference of success rates,
as in Johari et al., "Always valid inference", 2017), read as a confidence sequence.

    d      = canary rate - stable rate (each version's counted outcomes)
    V      = q_c (1 - q_c) / n_c + q_s (1 - q_s) / n_s,   q = (s + 1) / (n + 2)
    r(a)   = sqrt( V (V + TAU^2) / TAU^2 * (2 ln(1/a) + ln((V + TAU^2) / V)) )
    d - r(a) .. d + r(a) covers the true difference at every look at once, with
    probability about 1 - a (TAU = CANARY_TAU: the size of difference the test is tuned
    to find)

After both versions have CANARY_MIN_OUTCOMES counted outcomes:
  - promote when d - r(CANARY_ALPHA_PROMOTE) > 0 (shown better);
  - roll back when d + r(CANARY_ALPHA_ROLL_BACK) < 0 (shown worse);
  - roll back, too, once the canary has CANARY_MAX_OUTCOMES outcomes without either
    (not shown to be better: the stable version stays).
Promoting an equal version is the error that matters (it replaces the stable one on
noise): by simulation (tests/test_gate.py, bench/loop_sim.py; stable 0.70 with 200
outcomes, share 0.2) an equal canary is promoted in about 1-3 % of trials and a worse
one (-0.05) in about 1 % at most, however often the gate looks, while one 0.05 better is
promoted in every trial (median ~600-800 canary outcomes). The Wilson intervals
(z = 1.645) of both
versions are recorded beside the test, for people to read.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ..ranking.quality import Z, wilson_lower_bound

AUTO_MIN_SUPPORT = 2
AUTO_MIN_OUTCOMES = 20
AUTO_MAX_EMA = 0.8
AUTO_CANARY_SHARE = 0.2
CANARY_MIN_OUTCOMES = 30
CANARY_MAX_OUTCOMES = 4000
CANARY_TAU = 0.05
CANARY_ALPHA_PROMOTE = 0.03
CANARY_ALPHA_ROLL_BACK = 0.10
PROMOTE, ROLL_BACK, WAIT = "promote", "roll_back", "wait"


def auto_accept(verdict: str, support: int, base_outcomes: int,
                base_ema: float | None) -> tuple[bool, str]:
    """Whether the `auto` policy accepts, and why (or why not)."""
    if verdict != "safe":
        return False, f"the checks verdict is {verdict}, not safe: a maintainer reviews it"
    if support < AUTO_MIN_SUPPORT:
        return False, (f"{support} client(s) proposed it; auto-accept needs "
                       f"{AUTO_MIN_SUPPORT}")
    if base_outcomes < AUTO_MIN_OUTCOMES or base_ema is None:
        return False, (f"the base version has {base_outcomes} counted outcomes; auto-accept "
                       f"needs {AUTO_MIN_OUTCOMES}")
    if base_ema >= AUTO_MAX_EMA:
        return False, (f"the base version's success EMA is {base_ema:.2f}; auto-accept only "
                       f"fixes versions below {AUTO_MAX_EMA}")
    return True, (f"safe, proposed by {support} clients, base version EMA {base_ema:.2f} over "
                  f"{base_outcomes} outcomes")


def in_canary(namespace: str, name: str, version: str, client_id: str, share: float) -> bool:
    """Deterministic: the same client always lands on the same side of one canary."""
    digest = hashlib.sha256(f"{namespace}/{name}@{version}:{client_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def wilson_upper_bound(successes: float, total: float, z: float = Z) -> float:
    """The upper end of the Wilson interval (1 with no evidence)."""
    if total <= 0:
        return 1.0
    return 1.0 - wilson_lower_bound(total - successes, total, z)


@dataclass(frozen=True)
class Interval:
    successes: int
    total: int

    @property
    def lower(self) -> float:
        return wilson_lower_bound(self.successes, self.total)

    @property
    def upper(self) -> float:
        return wilson_upper_bound(self.successes, self.total)

    def to_dict(self) -> dict[str, float | int | None]:
        return {"successes": self.successes, "outcomes": self.total,
                "rate": round(self.successes / self.total, 6) if self.total else None,
                "wilson_lower": round(self.lower, 6), "wilson_upper": round(self.upper, 6)}


@dataclass(frozen=True)
class Difference:
    """The canary's success rate minus the stable version's, with the always-valid bounds
    of the sequential test (module docstring)."""

    canary: Interval
    stable: Interval

    @property
    def estimate(self) -> float:
        if not self.canary.total or not self.stable.total:
            return 0.0
        return self.canary.successes / self.canary.total - self.stable.successes / self.stable.total

    @property
    def variance(self) -> float:
        return sum(q * (1 - q) / max(n, 1) for q, n in (
            ((i.successes + 1) / (i.total + 2), i.total) for i in (self.canary, self.stable)))

    def radius(self, alpha: float) -> float:
        """Half the width of the confidence sequence at level 1 - alpha."""
        v, t2 = self.variance, CANARY_TAU * CANARY_TAU
        return math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + math.log((v + t2) / v)))

    @property
    def lower(self) -> float:
        """Above 0: shown better (promote)."""
        return self.estimate - self.radius(CANARY_ALPHA_PROMOTE)

    @property
    def upper(self) -> float:
        """Below 0: shown worse (roll back)."""
        return self.estimate + self.radius(CANARY_ALPHA_ROLL_BACK)

    def to_dict(self) -> dict[str, object]:
        return {"method": "msprt", "difference": round(self.estimate, 6),
                "lower": round(self.lower, 6), "upper": round(self.upper, 6),
                "tau": CANARY_TAU, "alpha_promote": CANARY_ALPHA_PROMOTE,
                "alpha_roll_back": CANARY_ALPHA_ROLL_BACK}


@dataclass(frozen=True)
class CanaryDecision:
    action: str  # PROMOTE, ROLL_BACK or WAIT
    reason: str
    canary: Interval
    stable: Interval
    rule: str = ""  # better, worse, max (rolled back at CANARY_MAX_OUTCOMES) or "" (WAIT)

    def to_dict(self) -> dict[str, object]:
        return {"action": self.action, "reason": self.reason, "rule": self.rule,
                "canary": self.canary.to_dict(), "stable": self.stable.to_dict(),
                "test": Difference(self.canary, self.stable).to_dict()}


def canary_decision(canary: Interval, stable: Interval) -> CanaryDecision:
    """Promote, roll back, or wait for more outcomes (rules in the module docstring)."""
    def decide(action: str, reason: str, rule: str = "") -> CanaryDecision:
        return CanaryDecision(action, reason, canary, stable, rule)

    if canary.total < CANARY_MIN_OUTCOMES or stable.total < CANARY_MIN_OUTCOMES:
        return decide(WAIT, f"waiting for {CANARY_MIN_OUTCOMES} outcomes on each version "
                            f"(canary {canary.total}, stable {stable.total})")
    diff = Difference(canary, stable)
    span = f"{diff.estimate:+.3f} (sequential bounds {diff.lower:+.3f} .. {diff.upper:+.3f})"
    if diff.lower > 0:
        return decide(PROMOTE, f"canary shown better: success rate difference {span}",
                      "better")
    if diff.upper < 0:
        return decide(ROLL_BACK, f"canary shown worse: success rate difference {span}",
                      "worse")
    if canary.total >= CANARY_MAX_OUTCOMES:
        return decide(ROLL_BACK, f"not shown better after {canary.total} outcomes: "
                                 f"difference {span}", "max")
    return decide(WAIT, f"not decided yet: difference {span}; waiting for more outcomes")
