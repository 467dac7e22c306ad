"""What agents' outcome reports do to a skill: the signal score of one report, the EMA of
success per version, and the trust level of the skill.

Signal score of one report, in [-1, 1] (`signal_score`):

    o = +1 success, -1 failure                       (infra_error reports are not scored)
    a = +1 task accepted, -1 rejected, 0 not said
    c = +1 session continued, -1 abandoned, 0 not said
    r = min(retries, 3) / 3
    e = manual edit ratio in [0, 1] (how much of the skill's output a person rewrote)
    x = 1 when an error was reported, else 0
    score = clamp(0.5 o + 0.2 a + 0.1 c - 0.1 r - 0.2 e - 0.1 x, -1, 1)

A clean success with every positive signal scores 0.8; the outcome alone moves the score by
0.5 either way, and the implicit signals say how good the success (or how bad the failure)
was. Scores are averaged per version; they are shown, and never count as outcomes.

EMA of success per version: ema <- ema + ALPHA (x - ema), x = 1 for a success, 0 for a
failure, starting at the first outcome. It reacts within tens of reports, which makes it
the regression alarm; the Wilson bound (ranking.quality) is the slow, evidence-weighted
view used for ranking.

Trust (`next_trust`), from the skill's totals over every version:

    community -> verified     >= 25 successes from >= 5 distinct clients, Wilson >= 0.60
    verified  -> trusted      >= 100 successes from >= 20 distinct clients, Wilson >= 0.80,
                              and the newest version's checks verdict is `safe`
    any       -> quarantined  the newest version has >= 20 outcomes and its EMA < 0.30
    quarantined -> community  the newest version's EMA >= 0.50 again (after >= 20 outcomes)

("Newest" is the highest version, even while a canary or a deprecation keeps installs on
an older one: a collapse of the skill's current development is what quarantine flags.)
    blocked                   only an owner or the operator sets or lifts it; reports never
                              move a blocked skill

Promotions step one level per evaluation (community never jumps to trusted), and a
verified or trusted skill whose Wilson bound falls below its level's threshold steps down.
A distinct client is a distinct (token, client id) pair; a token holder can claim many
client ids, which the per-token rate limit bounds, so trust is a ranking signal, not a
security boundary: the checks verdict stays the gate.
"""

from __future__ import annotations

from dataclasses import dataclass

from .quality import wilson_lower_bound

ALPHA = 0.1
COMMUNITY, VERIFIED, TRUSTED, QUARANTINED, BLOCKED = (
    "community", "verified", "trusted", "quarantined", "blocked")


@dataclass(frozen=True)
class Level:
    successes: int
    clients: int
    wilson: float


VERIFIED_AT = Level(successes=25, clients=5, wilson=0.60)
TRUSTED_AT = Level(successes=100, clients=20, wilson=0.80)
COLLAPSE_MIN_OUTCOMES = 20
COLLAPSE_EMA = 0.30
RECOVER_EMA = 0.50


def signal_score(success: bool, *, accepted: bool | None = None, continued: bool | None = None,
                 retries: int = 0, edit_ratio: float = 0.0, error_reported: bool = False
                 ) -> float:
    """One report's signals folded into [-1, 1] (formula in the module docstring)."""
    score = 0.5 if success else -0.5
    score += 0.2 * _tri(accepted) + 0.1 * _tri(continued)
    score -= 0.1 * min(max(retries, 0), 3) / 3
    score -= 0.2 * min(max(edit_ratio, 0.0), 1.0)
    score -= 0.1 if error_reported else 0.0
    return round(min(1.0, max(-1.0, score)), 6)


def _tri(flag: bool | None) -> float:
    return 0.0 if flag is None else (1.0 if flag else -1.0)


def ema_update(ema: float | None, success: bool, alpha: float = ALPHA) -> float:
    """The next EMA of success; the first outcome starts it."""
    x = 1.0 if success else 0.0
    return x if ema is None else ema + alpha * (x - ema)


@dataclass(frozen=True)
class Evidence:
    """What trust is judged on: the skill's totals and its latest version's state."""

    successes: int            # every version, undecayed
    clients: int              # distinct clients with at least one success
    decayed_successes: float  # every version, decayed (as ranking uses)
    decayed_failures: float
    latest_outcomes: int      # counted outcomes of the latest version
    latest_ema: float | None
    latest_safe: bool         # the latest version's checks verdict is `safe`

    @property
    def wilson(self) -> float:
        total = self.decayed_successes + self.decayed_failures
        return wilson_lower_bound(self.decayed_successes, total)


def next_trust(current: str, evidence: Evidence) -> tuple[str, str]:
    """The trust level after new evidence, and why (empty when unchanged)."""
    if current == BLOCKED:
        return current, ""
    judged = evidence.latest_outcomes >= COLLAPSE_MIN_OUTCOMES
    ema = evidence.latest_ema if judged else None
    if ema is not None and ema < COLLAPSE_EMA:
        if current == QUARANTINED:
            return current, ""
        return QUARANTINED, (f"the latest version's success EMA fell to {ema:.2f} "
                             f"(< {COLLAPSE_EMA}) over {evidence.latest_outcomes} outcomes")
    if current == QUARANTINED:
        if ema is not None and ema >= RECOVER_EMA:
            return COMMUNITY, f"the latest version's success EMA recovered to {ema:.2f}"
        return current, ""
    return _promote_or_demote(current, evidence)


def _promote_or_demote(current: str, evidence: Evidence) -> tuple[str, str]:
    if current == COMMUNITY and _meets(evidence, VERIFIED_AT):
        return VERIFIED, _why("reached", evidence, VERIFIED_AT)
    if current == VERIFIED and _meets(evidence, TRUSTED_AT) and evidence.latest_safe:
        return TRUSTED, _why("reached", evidence, TRUSTED_AT)
    if current == TRUSTED and evidence.wilson < TRUSTED_AT.wilson:
        return VERIFIED, f"Wilson bound {evidence.wilson:.3f} fell below {TRUSTED_AT.wilson}"
    if current == VERIFIED and evidence.wilson < VERIFIED_AT.wilson:
        return COMMUNITY, f"Wilson bound {evidence.wilson:.3f} fell below {VERIFIED_AT.wilson}"
    return current, ""


def _meets(evidence: Evidence, level: Level) -> bool:
    return (evidence.successes >= level.successes and evidence.clients >= level.clients
            and evidence.wilson >= level.wilson)


def _why(verb: str, evidence: Evidence, level: Level) -> str:
    return (f"{verb} {evidence.successes} successes from {evidence.clients} clients "
            f"(>= {level.successes} from >= {level.clients}), Wilson bound "
            f"{evidence.wilson:.3f} (>= {level.wilson})")
