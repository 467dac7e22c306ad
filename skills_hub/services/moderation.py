"""Moderation: checks reports, re-checks (health, backfill), reviewed exceptions, who owns a
namespace's skills, and whether a skill may be offered to clients that show no warning."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from .. import metrics
from ..access.policy import MODERATE
from ..access.principal import Principal
from ..checks.findings import DANGEROUS, FAMILIES
from ..checks.pipeline import Report, check_bundle
from ..domain import ExceptionRow, HistoryRow, ReportRow, SkillRow, VersionRow
from ..errors import BadRequest, NotFound, Problem
from .base import RegistryBase
from .common import MAX_EXCEPTION_REASON, _check_skill_name, _new_report, check_namespace

log = logging.getLogger(__name__)

RULE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


@dataclass(frozen=True)
class HealthChange:
    """A stored version whose verdict changed when its checks were run again."""

    namespace: str
    name: str
    version: str
    old_verdict: str | None
    new_verdict: str
    health: str = ""  # "deprecated" or "restored" when a health check changed that (else "")
    note: str = ""    # why it was deprecated

    @property
    def deprecated(self) -> bool:
        return self.new_verdict == DANGEROUS or self.health == "deprecated"

    @property
    def changed(self) -> bool:
        return self.old_verdict != self.new_verdict or bool(self.health)


class ModerationMixin(RegistryBase):
    """Checks reports, health and reviewed exceptions."""

    def report(self, namespace: str, name: str, version: str,
               principal: Principal) -> tuple[VersionRow, ReportRow | None]:
        """The stored checks report of a version (None while it waits for its first check)."""
        _, row = self.get_version(namespace, name, version, principal)
        return row, self.stored_report(namespace, name, row)

    def stored_report(self, namespace: str, name: str, row: VersionRow) -> ReportRow | None:
        """The report of a version row the caller has already been allowed to read."""
        stored = self.store.reports.get_report(namespace, name, row.version)
        if stored is not None and stored.content_sha256 != row.content_sha256:
            return None
        return stored

    def report_history(self, namespace: str, name: str,
                       principal: Principal) -> list[HistoryRow]:
        self.check_readable(namespace, principal)
        return self.store.reports.report_history(namespace, name)

    def recheck(self, namespace: str, name: str, row: VersionRow, reason: str) -> HealthChange:
        """Run the pipeline again on a stored version and record the report."""
        return self._recheck(namespace, name, row, reason)[0]

    def _recheck(self, namespace: str, name: str, row: VersionRow,
                 reason: str) -> tuple[HealthChange, Report]:
        """`recheck`, and the new report (health checks read its tests' results)."""
        bundle = self.bundle(namespace, row)
        report = check_bundle(bundle, self.check_options,
                              exceptions=self._exception_map(namespace, name))
        metrics.observe_verdict(report.verdict, "recheck")
        old = self.store.reports.save_report(_new_report(namespace, name, row.version,
                                                         row.content_sha256, report, reason))
        return HealthChange(namespace, name, row.version, old, report.verdict), report

    def health(self, namespace: str | None = None) -> tuple[int, list[HealthChange]]:
        """Re-run the checks on every stored version (new rules, new bandit) now, as the
        scheduled health checks do a budget at a time (`services.health`).

        Returns how many versions were checked and those whose verdict or deprecation
        changed. A version that now fails (`dangerous`, or tests that passed now fail) is
        reported as deprecated by search, pages and installs.
        """
        checked, changed = 0, []
        for ns in ([namespace] if namespace else self.git.namespaces()):
            check_namespace(ns)
            for skill in self.store.catalogue.list_skills(readable=frozenset({ns}), namespace=ns,
                                                          after=None, limit=1_000_000):
                moved = False
                for row in self.store.catalogue.versions(skill.id):
                    change, _ = self.check_health(ns, skill.name, row, kind="health")
                    checked += 1
                    if change.changed:
                        changed.append(change)
                        moved = True
                if moved:  # `latest` moves to the newest healthy version
                    self._refresh_latest(ns, skill.name)
        return checked, changed

    def backfill_reports(self, pending: list[tuple[str, str, str]] | None = None) -> int:
        """Check the versions that have no report (after `reindex` or a crash); count them."""
        done = 0
        for namespace, name, version in pending or self.store.reports.unchecked_versions():
            skill = self.store.catalogue.get_skill(namespace, name)
            row = self.store.catalogue.get_version(skill.id, version) if skill else None
            if row is None:
                continue
            try:
                self.recheck(namespace, name, row, "backfill")
            except Exception:  # one bad version must not stop the others
                log.exception("checking %s/%s %s failed", namespace, name, version)
                continue
            done += 1
        return done

    def exceptions(self, namespace: str, name: str, principal: Principal) -> list[ExceptionRow]:
        self.check_readable(namespace, principal)
        return self.store.reports.exceptions(namespace, name)

    def set_exception(self, namespace: str, name: str, rule: str, reason: str,
                      principal: Principal) -> list[HealthChange]:
        """Record a reviewed exception for `rule` on one skill; re-judge its stored versions.

        The skill need not exist yet: an owner can clear a false alarm before publishing.
        """
        self.require(principal, MODERATE, namespace)
        _check_skill_name(name)
        if not RULE_RE.match(rule) or rule.split(".", 1)[0] not in FAMILIES:
            raise BadRequest(f"{rule!r} is not a rule id", problems=[Problem(
                "rule", "not a rule id",
                "use the id shown in the report, such as remote-exec.pipe-to-shell or "
                "bandit.B602")])
        reason = reason.strip()
        if not reason or len(reason) > MAX_EXCEPTION_REASON:
            raise BadRequest("a reviewed exception needs a reason", problems=[Problem(
                "reason", f"give a reason of 1-{MAX_EXCEPTION_REASON} characters",
                "say why the finding is a false alarm on this skill")])
        self.store.reports.set_exception(namespace, name, rule, reason)
        self.audit(principal, "exception.set", f"{namespace}/{name}", namespace=namespace,
                   detail={"rule": rule, "reason": reason})
        return self._rejudge(namespace, name)

    def remove_exception(self, namespace: str, name: str, rule: str,
                         principal: Principal) -> list[HealthChange]:
        self.require(principal, MODERATE, namespace)
        if not self.store.reports.delete_exception(namespace, name, rule):
            raise NotFound(f"{namespace}/{name} has no exception for {rule!r}")
        self.audit(principal, "exception.remove", f"{namespace}/{name}", namespace=namespace,
                   detail={"rule": rule})
        return self._rejudge(namespace, name)

    def _exception_map(self, namespace: str, name: str) -> dict[str, str]:
        return {e.rule: e.reason for e in self.store.reports.exceptions(namespace, name)}

    def _rejudge(self, namespace: str, name: str) -> list[HealthChange]:
        """Apply the skill's current exceptions to its stored reports (no re-run needed)."""
        exceptions = self._exception_map(namespace, name)
        skill = self.store.catalogue.get_skill(namespace, name)
        changes = []
        for row in self.store.catalogue.versions(skill.id) if skill else []:
            stored = self.store.reports.get_report(namespace, name, row.version)
            if stored is None:
                continue
            report = Report.from_dict(stored.report).with_exceptions(exceptions)
            old = self.store.reports.save_report(_new_report(namespace, name, row.version,
                                                     row.content_sha256, report, "exception"))
            changes.append(HealthChange(namespace, name, row.version, old, report.verdict))
        self._refresh_latest(namespace, name)
        return changes


def installable(skill: SkillRow) -> bool:
    """Whether clients that cannot show a warning may be offered the skill: its `latest`
    is not deprecated by a failed re-check, and it is not blocked."""
    return skill.verdict != DANGEROUS and skill.trust != "blocked"
