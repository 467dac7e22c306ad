"""Which version `latest` is: canaries (who gets them, promotion and roll-back), deprecation
by the outcome EMA or a failed re-check, and the one rule that chooses `latest`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..access.principal import Principal
from ..checks.findings import DANGEROUS
from ..domain import CanaryRow, VersionRow, VersionStats
from ..learning import gate
from ..ranking import trust as trust_rules
from ..skill import semver
from .base import RegistryBase
from .catalogue import SkillDetail, version_of
from .common import _version_key

# The reason a health check gives the versions it deprecates (services.health).
RECHECK_FAILED = "re-check failed: "


@dataclass(frozen=True)
class Resolution:
    """The version a client gets for `latest`, and through which channel."""

    row: VersionRow
    channel: str  # "stable" or "canary"
    canary: CanaryRow | None  # the active canary, if any


class ReleasesMixin(RegistryBase):
    """`latest` selection, canaries and health."""

    # canaries

    def resolve(self, namespace: str, name: str, principal: Principal,
                client_id: str | None = None) -> Resolution:
        """The version a client gets for `latest`: the canary for clients in its share
        (by client id), else the stable version."""
        detail = self.get_skill(namespace, name, principal)
        canary = _active(self.store.proposals.canaries(namespace, name))
        if canary is not None and client_id and gate.in_canary(
                namespace, name, canary.version, client_id, canary.share):
            return Resolution(version_of(detail, canary.version), "canary", canary)
        return Resolution(version_of(detail, "latest"), "stable", canary)

    def _judge_canary(self, namespace: str, name: str) -> None:
        """Promote or roll back the active canary when the outcomes decide it."""
        canary = _active(self.store.proposals.canaries(namespace, name))
        if canary is None:
            return
        decision = _canary_decision(canary, self.store.outcomes.version_stats(namespace, name))
        if decision.action == gate.WAIT:
            return
        state = "promoted" if decision.action == gate.PROMOTE else "rolled_back"
        if self.store.proposals.finish_canary(namespace, name, canary.version, state,
                                              decision.to_dict()):
            self._refresh_latest(namespace, name)

    # health

    def _judge_health(self, namespace: str, name: str, versions: Iterable[str]) -> None:
        """The outcome EMA deprecates a version whose success collapsed, and restores it
        when it recovers (thresholds of ranking.trust); `latest` follows. It does not
        restore a version a health check deprecated (its tests fail): the next health
        check that passes does (`services.health`)."""
        stats = self.store.outcomes.version_stats(namespace, name)
        recorded: dict[str, tuple[str, str]] | None = None
        moved = False
        for version in versions:
            current = stats.get(version)
            if current is None or current.ema is None \
                    or current.successes + current.failures < trust_rules.COLLAPSE_MIN_OUTCOMES:
                continue
            if current.ema < trust_rules.COLLAPSE_EMA:
                moved |= self.store.outcomes.set_health(
                    namespace, name, version, "deprecated",
                    f"success EMA {current.ema:.2f} < {trust_rules.COLLAPSE_EMA} over "
                    f"{current.successes + current.failures} outcomes")
            elif current.ema >= trust_rules.RECOVER_EMA:
                if recorded is None:
                    recorded = self.store.outcomes.health(namespace, name)
                status, why = recorded.get(version, ("healthy", ""))
                if status == "deprecated" and why.startswith(RECHECK_FAILED):
                    continue
                moved |= self.store.outcomes.set_health(namespace, name, version, "healthy",
                                               f"success EMA recovered to {current.ema:.2f}")
        if moved:
            self._refresh_latest(namespace, name)

    def deprecated_versions(self, namespace: str, name: str,
                            verdicts: dict[str, str] | None = None) -> dict[str, str]:
        """version -> why it is deprecated: a failed re-check, or a collapsed EMA."""
        if verdicts is None:
            verdicts = self.store.reports.verdicts(namespace, name)
        out = {v: "a re-check of the publish checks failed it"
               for v, verdict in verdicts.items() if verdict == DANGEROUS}
        for version, (status, reason) in self.store.outcomes.health(namespace, name).items():
            if status == "deprecated":
                out.setdefault(version, reason)
        return out

    def _latest_choice(self, namespace: str, name: str, versions: list[str]) -> str | None:
        """`latest`: the newest version that is neither held back (an active or rolled
        back canary) nor deprecated; failing that the newest not held back."""
        held = {c.version for c in self.store.proposals.canaries(namespace, name)
                if c.state in ("active", "rolled_back")}
        deprecated = self.deprecated_versions(namespace, name)
        ordered = sorted(versions, key=_version_key, reverse=True)
        for pool in ([v for v in ordered if v not in held and v not in deprecated],
                     [v for v in ordered if v not in held], ordered):
            if pool:
                return pool[0]
        return None

    def _refresh_latest(self, namespace: str, name: str) -> None:
        """Point the catalogue's `latest` at `_latest_choice` (re-read from git)."""
        skill = self.store.catalogue.get_skill(namespace, name)
        if skill is None:
            return
        chosen = self._latest_choice(namespace, name,
                                     [v.version for v in self.store.catalogue.versions(skill.id)])
        if chosen is None or chosen == skill.latest_version:
            return
        info = next(i for i in self.git.tags(namespace)
                    if i.name == name and i.version == chosen)
        new = self._from_git(namespace, info, is_latest=True)
        self.store.catalogue.record_versions([new])
        self.search_engine.indexed(skill.id, new.embed_sha256, None)

    def _newest_row(self, detail: SkillDetail) -> VersionRow:
        """The highest version (main's content), whatever `latest` currently is."""
        newest = semver.latest([v.version for v in detail.versions])
        return version_of(detail, newest or "latest")


def _active(canaries: list[CanaryRow]) -> CanaryRow | None:
    """The active canary (starting one supersedes the previous, so there is at most one)."""
    return next((c for c in canaries if c.state == "active"), None)


def _canary_decision(canary: CanaryRow, stats: dict[str, VersionStats]) -> gate.CanaryDecision:
    """The gate's decision on a canary against its stable version, on today's counts."""
    return gate.canary_decision(_interval(stats.get(canary.version)),
                                _interval(stats.get(canary.stable_version)))


def _interval(stats: VersionStats | None) -> gate.Interval:
    if stats is None:
        return gate.Interval(0, 0)
    return gate.Interval(stats.successes, stats.successes + stats.failures)
