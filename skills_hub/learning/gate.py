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
different clients. After both the canary and the stable version have CANARY_MIN_OUTCOMES
counted outcomes, their Wilson intervals (z = 1.645) are compared:
  - promote when the canary's lower bound is above the stable version's upper bound;
  - roll back when the canary's upper bound is below the stable version's lower bound;
  - roll back, too, once the canary has CANARY_MAX_OUTCOMES outcomes without either
    (not shown to be better: the stable version stays).
Separated intervals are a deliberately strict test, so that a worse version is almost
never promoted (bench/loop_sim.py measures how often, and what a better one costs).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..ranking.quality import Z, wilson_lower_bound

AUTO_MIN_SUPPORT = 2
AUTO_MIN_OUTCOMES = 20
AUTO_MAX_EMA = 0.8
AUTO_CANARY_SHARE = 0.2
CANARY_MIN_OUTCOMES = 30
CANARY_MAX_OUTCOMES = 1000
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
class CanaryDecision:
    action: str  # PROMOTE, ROLL_BACK or WAIT
    reason: str
    canary: Interval
    stable: Interval

    def to_dict(self) -> dict[str, object]:
        return {"action": self.action, "reason": self.reason,
                "canary": self.canary.to_dict(), "stable": self.stable.to_dict()}


def canary_decision(canary: Interval, stable: Interval) -> CanaryDecision:
    """Promote, roll back, or wait for more outcomes (rules in the module docstring)."""
    def decide(action: str, reason: str) -> CanaryDecision:
        return CanaryDecision(action, reason, canary, stable)

    if canary.total < CANARY_MIN_OUTCOMES or stable.total < CANARY_MIN_OUTCOMES:
        return decide(WAIT, f"waiting for {CANARY_MIN_OUTCOMES} outcomes on each version "
                            f"(canary {canary.total}, stable {stable.total})")
    if canary.lower > stable.upper:
        return decide(PROMOTE, f"canary Wilson lower bound {canary.lower:.3f} > stable upper "
                               f"bound {stable.upper:.3f}")
    if canary.upper < stable.lower:
        return decide(ROLL_BACK, f"canary Wilson upper bound {canary.upper:.3f} < stable "
                                 f"lower bound {stable.lower:.3f}")
    if canary.total >= CANARY_MAX_OUTCOMES:
        return decide(ROLL_BACK, f"no better than stable after {canary.total} outcomes "
                                 f"(intervals overlap)")
    return decide(WAIT, "the intervals overlap; waiting for more outcomes")
