"""The publish pipeline: spec -> syntax -> bandit -> threat rules -> sandboxed tests -> verdict.

`check_bundle` runs every stage on a skill held in memory and returns a `Report`. The
server runs it on every publish (a `dangerous` report refuses the version), `skills-hub
check DIR` runs it locally and offline, and `skills-hub health` runs it again on stored
versions when rules or bandit change. Reviewed exceptions (a namespace owner's "this rule
is fine on this skill, because ...") are applied last: the findings stay in the report,
marked with the reason, and no longer weigh on the verdict.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from skills_hub.checks import bandit_scan, syntax, threats
from skills_hub.checks import sandbox as sandboxing
from skills_hub.checks.findings import SAFE, Finding, Severity, verdict_of
from skills_hub.errors import InvalidSkill, Problem
from skills_hub.skill.bundle import Bundle
from skills_hub.skill.manifest import parse_manifest

# Bump when a stage changes what it reports; `skills-hub health` records it per report.
PIPELINE_REVISION = 2  # 2: sandbox reports name the whole-run limit (cgroup) that stopped a run


@functools.cache
def pipeline_id() -> str:
    """What produced a report: pipeline revision, bandit version and a digest of the rules."""
    rules = "\n".join(f"{r.id}:{r.severity.label}" for r in threats.RULES)
    digest = hashlib.sha256(rules.encode()).hexdigest()[:12]
    return f"checks-{PIPELINE_REVISION}+bandit-{bandit_scan.bandit_version()}+rules-{digest}"


@dataclass(frozen=True)
class Report:
    """The checks report of one skill version."""

    verdict: str
    findings: tuple[Finding, ...]
    problems: tuple[Problem, ...] = ()   # spec errors: the skill is invalid, not dangerous
    warnings: tuple[Problem, ...] = ()   # spec warnings
    sandbox: dict[str, Any] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    pipeline: str = ""
    checked_at: float = 0.0

    @property
    def valid(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        """How many findings of each severity weigh on the verdict."""
        out = {s.label: 0 for s in reversed(Severity)}
        for f in self.findings:
            if f.counts:
                out[f.severity.label] += 1
        return out

    def flagged(self) -> list[Finding]:
        """The findings that set the verdict (HIGH and above, not excepted)."""
        return [f for f in self.findings if f.counts and f.severity >= Severity.HIGH]

    def with_exceptions(self, exceptions: Mapping[str, str]) -> Report:
        """The report with `exceptions` (rule id -> reason) applied, verdict recomputed."""
        findings = tuple(
            f.excepted(exceptions[f.rule]) if f.rule in exceptions
            else (replace(f, exception=None) if f.exception else f)
            for f in self.findings)
        return replace(self, findings=findings, verdict=verdict_of(findings))

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "valid": self.valid,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [p.to_dict() for p in self.warnings],
            "sandbox": self.sandbox,
            "timings_ms": self.timings_ms,
            "pipeline": self.pipeline,
            "checked_at": self.checked_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        return cls(
            verdict=data["verdict"],
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", ())),
            problems=tuple(_problem(p) for p in data.get("problems", ())),
            warnings=tuple(_problem(p) for p in data.get("warnings", ())),
            sandbox=data.get("sandbox"),
            timings_ms=dict(data.get("timings_ms", {})),
            pipeline=data.get("pipeline", ""),
            checked_at=float(data.get("checked_at", 0.0)),
        )


def _problem(data: Mapping[str, Any]) -> Problem:
    return Problem(data["field"], data["message"], data.get("hint", ""),
                   data.get("severity", "error"))


@dataclass(frozen=True)
class Options:
    """How to run the pipeline. `sandbox`: "auto", "bubblewrap", "rlimits" or "off"."""

    strict: bool = False
    sandbox: str = "auto"
    limits: sandboxing.SandboxLimits = field(default_factory=sandboxing.SandboxLimits)


def check_bundle(bundle: Bundle, options: Options = Options(), *,
                 exceptions: Mapping[str, str] | None = None) -> Report:
    """Run every stage on `bundle` and return its report (never raises for bad content)."""
    timings: dict[str, float] = {}
    findings: list[Finding] = []

    def stage(name: str, run: Callable[[], list[Finding]]) -> None:
        start = time.perf_counter()
        findings.extend(run())
        timings[name] = round((time.perf_counter() - start) * 1000, 2)

    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    start = time.perf_counter()
    try:
        manifest = parse_manifest(bundle.skill_md(), dirname=bundle.root_name,
                                  strict=options.strict)
        warnings = manifest.warnings
    except InvalidSkill as exc:
        problems = tuple(exc.problems)
    timings["spec"] = round((time.perf_counter() - start) * 1000, 2)
    stage("syntax", lambda: syntax.check_syntax(bundle))
    stage("bandit", lambda: bandit_scan.run_bandit(bundle))
    stage("threats", lambda: threats.scan_bundle(bundle))
    sandbox_report: dict[str, Any] | None = None
    if options.sandbox != "off" and not problems:
        start = time.perf_counter()
        result = sandboxing.run_tests(bundle, options.limits, isolation=options.sandbox)
        findings.extend(result.findings)
        sandbox_report = result.to_dict()
        timings["sandbox"] = round((time.perf_counter() - start) * 1000, 2)
    ordered = tuple(sorted(findings, key=_order))
    report = Report(verdict=verdict_of(ordered), findings=ordered, problems=problems,
                    warnings=warnings, sandbox=sandbox_report, timings_ms=timings,
                    pipeline=pipeline_id(), checked_at=time.time())
    return report.with_exceptions(exceptions) if exceptions else report


def _order(f: Finding) -> tuple[int, str, int, str]:
    return (-int(f.severity), f.file or "", f.line or 0, f.rule)


__all__ = ["SAFE", "Options", "PIPELINE_REVISION", "Report", "check_bundle", "pipeline_id"]
