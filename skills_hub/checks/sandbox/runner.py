"""Orchestration: which isolation, the plan, one run per test (per template), the report."""

from __future__ import annotations

import functools
import time
from typing import Any

from skills_hub.checks.findings import Finding, Severity
from skills_hub.checks.sandbox import bubblewrap as bwrap_mod
from skills_hub.checks.sandbox import cgroup as cgroup_mod
from skills_hub.checks.sandbox import workspace as workspace_mod
from skills_hub.checks.sandbox.base import _Job, _Sandbox, _StartError
from skills_hub.checks.sandbox.bubblewrap import _Bubblewrap
from skills_hub.checks.sandbox.cgroup import describe_limits
from skills_hub.checks.sandbox.fallback import _RlimitsOnly
from skills_hub.checks.sandbox.identity import _identity
from skills_hub.checks.sandbox.model import (
    CaseResult,
    KiB,
    SandboxLimits,
    SandboxReport,
    SandboxUnavailable,
    _finding,
    log,
)
from skills_hub.checks.sandbox.process import _Outcome
from skills_hub.checks.sandbox.results import (
    _command_result,
    _result_findings,
    _security_findings,
    _template_results,
)
from skills_hub.checks.sandbox.spec import ALLOWED_TEMPLATE_MODULES, TestCase, discover_tests
from skills_hub.checks.sandbox.workspace import _Workspace
from skills_hub.skill.bundle import Bundle

ISOLATIONS = ("auto", "bubblewrap", "rlimits", "off")

def sandbox_available() -> str:
    """The isolation run_tests(isolation="auto") uses here: "bubblewrap" or "rlimits"."""
    return "rlimits" if bwrap_mod._bubblewrap().problem else "bubblewrap"


def _choose(isolation: str) -> tuple[str, str]:
    """("bubblewrap" | "rlimits", why) for the requested isolation."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}")
    if isolation == "rlimits":
        return "rlimits", "isolation='rlimits' was requested"
    status = bwrap_mod._bubblewrap()
    if not status.problem:
        return "bubblewrap", status.version
    if isolation == "bubblewrap":
        raise SandboxUnavailable(f"bubblewrap cannot be used: {status.problem}. Install it "
                                 "(apt-get install bubblewrap) and allow unprivileged user "
                                 "namespaces.")
    _warn_degraded(status.problem)
    return "rlimits", status.problem


@functools.cache
def _warn_degraded(reason: str) -> None:
    log.warning("skill tests run WITHOUT bubblewrap (%s): rlimits, a throwaway HOME and an "
                "unprivileged uid only; no network or filesystem isolation", reason)


_DEFAULT_LIMITS = SandboxLimits()


def run_tests(bundle: Bundle, limits: SandboxLimits = _DEFAULT_LIMITS, *,
              isolation: str = "auto") -> SandboxReport:
    """Run the bundle's tests, one sandbox per test (per template), and report findings.

    Raises:
        SandboxUnavailable: isolation="bubblewrap" and bubblewrap cannot run here.
    """
    started = time.monotonic()
    cases, findings = discover_tests(bundle)
    if not cases or isolation == "off":
        note = "the skill declares no tests" if not cases else "sandboxed tests are turned off"
        return SandboxReport("skipped", note, (), tuple(findings), _ms_since(started))
    mode, reason = _choose(isolation)
    runner = _Runner(bundle, limits, started)
    note = runner.run_all(_plan(cases), mode, reason, strict=isolation == "bubblewrap")
    findings.extend(runner.findings)
    if mode == "rlimits":
        findings.append(_finding(
            "sandbox.degraded", Severity.MEDIUM,
            f"the tests ran without bubblewrap: {note}",
            "Install bubblewrap (apt-get install bubblewrap) and allow unprivileged user "
            "namespaces on the server; until then tests are only weakly isolated."))
    cgroups = cgroup_mod.cgroup_support()
    return SandboxReport(mode, note, tuple(runner.results), tuple(dict.fromkeys(findings)),
                         _ms_since(started), "cgroup" if cgroups.version else "rlimits",
                         describe_limits(cgroups, limits))


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _plan(cases: list[TestCase]) -> list[tuple[TestCase, ...]]:
    """Runs in order: each command test alone, the cases of one template together."""
    runs: list[tuple[TestCase, ...]] = []
    for case in cases:
        if case.kind == "template" and runs and runs[-1][0].template == case.template:
            runs[-1] = (*runs[-1], case)
        else:
            runs.append((case,))
    return runs


class _Runner:
    """Runs the planned tests of one bundle in order, within the total time budget."""

    def __init__(self, bundle: Bundle, limits: SandboxLimits, started: float) -> None:
        self.bundle, self.limits = bundle, limits
        self.deadline = started + limits.total_wall_seconds
        self.results: list[CaseResult] = []
        self.findings: list[Finding] = []

    def run_all(self, runs: list[tuple[TestCase, ...]], mode: str, reason: str, *,
                strict: bool) -> str:
        """Run everything; return the note on the isolation used."""
        with _Workspace(self.bundle, _identity()) as workspace:
            sandbox = _make_sandbox(mode, workspace, self.limits)
            for index, run in enumerate(runs):
                if self.deadline <= time.monotonic():
                    self._not_run([case for later in runs[index:] for case in later])
                    break
                outcome = self._attempt(sandbox, run, strict=strict)
                if outcome is not None:
                    self._record(run, outcome)
            return sandbox.note(reason)

    def _attempt(self, sandbox: _Sandbox, run: tuple[TestCase, ...], *,
                 strict: bool) -> _Outcome | None:
        """Run once, again if bwrap failed to start; then give up on this run.

        The probe found bwrap working, so a failure now is transient (e.g. the sandbox
        user's process limit, shared with a concurrent run). Falling back to the weaker
        sandbox here would let one run weaken another's isolation: fail closed instead.
        """
        for _ in range(2):
            try:
                return self._execute(sandbox, run, self.deadline - time.monotonic())
            except _StartError as exc:
                if strict:
                    raise SandboxUnavailable(str(exc)) from exc
                error = str(exc)
                log.warning("%s; retrying once", error)
                time.sleep(0.1)
        self._not_started(run, error)
        return None

    def _execute(self, sandbox: _Sandbox, run: tuple[TestCase, ...], remaining: float) -> _Outcome:
        wanted = sum(self._timeout(case) for case in run)
        if run[0].kind == "template":
            wanted += 2.0  # interpreter start and compiling the template
            python = workspace_mod._sandbox_python()
            if python is None:
                return _Outcome(None, False, b"", b"no python3 under /usr", 0.0)
            job = _Job(kind="template", spec=self._spec(run), python=python)
        else:
            job = _Job(kind="command", command=run[0].command)
        wall = min(wanted, remaining)
        outcome = sandbox.run(job, wall)
        outcome.wall, outcome.cut_by_budget = wall, wall < wanted
        return outcome

    def _timeout(self, case: TestCase) -> float:
        return min(case.timeout or self.limits.wall_seconds, self.limits.wall_seconds)

    def _spec(self, run: tuple[TestCase, ...]) -> dict[str, Any]:
        first = run[0]
        return {"source": self.bundle.files[first.template].decode("utf-8"),
                "filename": first.template, "entrypoint": first.entrypoint,
                "output_bytes": min(self.limits.output_bytes, 4 * KiB),
                "modules": list(ALLOWED_TEMPLATE_MODULES),
                "cases": [{"name": case.name, "args": dict(case.args),
                           "timeout": self._timeout(case)} for case in run]}

    def _record(self, run: tuple[TestCase, ...], outcome: _Outcome) -> None:
        problems: list[Finding] = []
        if run[0].kind == "command":
            results = [_command_result(run[0], outcome)]
        else:
            results, problems = _template_results(run, outcome)
            self.findings.extend(problems)
        self.results.extend(results)
        self.findings.extend(_security_findings(run, outcome))
        if run[0].kind == "template" and problems:
            return  # the whole template failed; one finding says why
        for case, result in zip(run, results, strict=True):
            timeout = self._timeout(case) if case.kind == "template" else outcome.wall
            self.findings.extend(_result_findings(case, result, outcome, timeout, self.limits))

    def _not_started(self, run: tuple[TestCase, ...], error: str) -> None:
        for case in run:
            self.results.append(CaseResult(case.name, case.kind, False, None, case.expected,
                                           False, 0.0, error=f"not run: {error}"))
        self.findings.append(_finding(
            "sandbox.degraded", Severity.MEDIUM, f"test '{run[0].name}' did not run: {error}",
            "A server problem, not the skill's: check that bwrap works for the sandbox user; "
            "publish again to rerun the tests.", file=run[0].source))

    def _not_run(self, cases: list[TestCase]) -> None:
        budget = self.limits.total_wall_seconds
        for case in cases:
            self.results.append(CaseResult(case.name, case.kind, False, None, case.expected,
                                           False, 0.0, error=f"not run: the {budget:g} s "
                                           "budget for all tests was used up"))
        names = ", ".join(f"'{case.name}'" for case in cases[:5])
        self.findings.append(_finding(
            "sandbox.timeout", Severity.HIGH,
            f"{len(cases)} test(s) did not run ({names}) because all tests together may take "
            f"{budget:g} s", "Make the tests faster or fewer; every declared test must run "
            "for the skill to pass.", file=cases[0].source))


def _make_sandbox(mode: str, workspace: _Workspace, limits: SandboxLimits) -> _Sandbox:
    return _Bubblewrap(workspace, limits) if mode == "bubblewrap" else _RlimitsOnly(workspace,
                                                                                  limits)

