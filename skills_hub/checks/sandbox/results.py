"""From what a sandboxed run did to per-test results and findings."""

from __future__ import annotations

import json
import re
import signal
from dataclasses import replace
from typing import Any

from skills_hub.checks.findings import Finding, Severity
from skills_hub.checks.sandbox import cgroup
from skills_hub.checks.sandbox.model import (
    _RULE_HINT_LIMITS,
    CaseResult,
    KiB,
    MiB,
    SandboxLimits,
    _finding,
    _text,
    _trim,
)
from skills_hub.checks.sandbox.process import WALL_CLOCK, _Outcome
from skills_hub.checks.sandbox.spec import ALLOWED_TEMPLATE_MODULES, TestCase


def _command_result(case: TestCase, outcome: _Outcome) -> CaseResult:
    stopped = outcome.stopped_by  # named by the run's cgroup, or the wall clock
    passed = (not outcome.timed_out and stopped not in _STOPPED_BY_CGROUP
              and outcome.exit_code == case.expect_exit)
    stderr = _text(outcome.stderr)
    limit = None if passed else stopped or _limit_hit(outcome.exit_code, stderr)
    return CaseResult(case.name, "command", passed, outcome.exit_code, case.expect_exit,
                      outcome.timed_out, round(outcome.duration_ms, 1), _text(outcome.stdout),
                      stderr, outcome.network_attempts, outcome.decoy_reads, limit=limit)


_STOPPED_BY_CGROUP = (cgroup.MEMORY, cgroup.CPU_TIME)  # the server ended the run
_LIMIT_SIGNALS = {int(signal.SIGXCPU): "cpu", int(signal.SIGXFSZ): "file size",
                  int(signal.SIGKILL): "cpu or memory"}

_LIMIT_PATTERNS = (
    ("memory", re.compile(r"MemoryError|Cannot allocate memory|bad_alloc|out of memory", re.I)),
    ("processes", re.compile(r"Cannot fork|can't fork|fork: Resource temporarily|"
                             r"BlockingIOError: \[Errno 11\]|fork failed", re.I)),
    ("open files", re.compile(r"Too many open files")),
    ("file size", re.compile(r"File size limit exceeded|File too large")),
    ("cpu", re.compile(r"CPU time limit exceeded")),
)

def _limit_hit(exit_code: int | None, stderr: str) -> str | None:
    """Which resource limit most likely stopped a failed test (best effort)."""
    if exit_code is not None and exit_code > 128:
        with_signal = _LIMIT_SIGNALS.get(exit_code - 128)
        if with_signal:
            return with_signal
    tail = stderr[-4 * KiB:]
    return next((name for name, pattern in _LIMIT_PATTERNS if pattern.search(tail)), None)


def _limit_text(limit: str, limits: SandboxLimits) -> str:
    return {"cpu": f"the CPU time limit ({limits.cpu_seconds} s per process)",
            "memory": f"the memory limit ({limits.memory_bytes // MiB} MiB per process)",
            "file size": f"the file size limit ({limits.file_bytes // MiB} MiB)",
            "processes": f"the process limit ({limits.processes})",
            "open files": f"the open files limit ({limits.open_files})",
            "cpu or memory": f"the CPU or memory limit ({limits.cpu_seconds} s, "
                             f"{limits.memory_bytes // MiB} MiB)",
            cgroup.MEMORY: f"the memory limit (cgroup, {limits.memory_bytes // MiB} MiB for "
                           "the whole run)",
            cgroup.PROCESSES: f"the process limit (cgroup, {limits.processes} processes for "
                              "the whole run)",
            cgroup.CPU_TIME: f"the CPU time limit (cgroup, {limits.cpu_seconds} s for the "
                             f"whole run, at most {limits.cpus:g} CPU at a time)",
            WALL_CLOCK: "the wall clock"}.get(limit, limit)


def _template_results(run: tuple[TestCase, ...],
                      outcome: _Outcome) -> tuple[list[CaseResult], list[Finding]]:
    """Per-case results from the runner's JSON lines; findings when none could run."""
    lines = _json_lines(outcome.stdout)
    head = lines[0] if lines else {}
    template = run[0].template
    if (outcome.exit_code is None and not outcome.timed_out) or "fatal" in head:
        why = head.get("fatal") or _text(outcome.stderr) or "the template runner did not start"
        problem = _finding("sandbox.degraded", Severity.MEDIUM,
                           f"the code template {template} could not be tested: {why}",
                           "Install python3 (3.11 or later) under /usr on the server.",
                           file=template)
        return [_failed(case, outcome, f"not run: {why}") for case in run], [problem]
    if "compile_error" in head:
        error = str(head["compile_error"])
        problem = _finding("sandbox.template-error", Severity.HIGH,
                           f"the code template {template} does not compile under "
                           f"RestrictedPython: {_trim(error)}", _TEMPLATE_HINT, file=template)
        return [_failed(case, outcome, error) for case in run], [problem]
    by_case = {line.get("case"): line for line in lines if "case" in line}
    return [_template_result(case, by_case.get(index), outcome)
            for index, case in enumerate(run)], []


def _json_lines(data: bytes) -> list[dict[str, Any]]:
    lines = []
    for line in _text(data).splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            lines.append(parsed)
    return lines


def _failed(case: TestCase, outcome: _Outcome, error: str) -> CaseResult:
    return CaseResult(case.name, "template", False, None, case.expected, False, 0.0,
                      stderr=_text(outcome.stderr), network_attempts=outcome.network_attempts,
                      decoy_reads=outcome.decoy_reads, error=error)


def _template_result(case: TestCase, line: dict[str, Any] | None,
                     outcome: _Outcome) -> CaseResult:
    if line is None:  # the runner died or the run was stopped before this case
        error = "the run was stopped before this case" if outcome.timed_out \
            else "the template runner stopped before this case"
        tail = _trim(_text(outcome.stderr))
        result = _failed(case, outcome, f"{error}: {tail}" if tail else error)
        return replace(result, timed_out=outcome.timed_out, limit=outcome.stopped_by)
    status = line.get("status")
    value = line.get("value")
    passed = status == "ok" and (not case.has_expect_value or _json_equal(value,
                                                                          case.expect_value))
    error = "" if status == "ok" else str(line.get("error", status))
    limit = None
    if outcome.stopped_by in _STOPPED_BY_CGROUP and status != "ok":
        limit = outcome.stopped_by
    elif status == "timeout":
        limit = WALL_CLOCK
    elif status == "signal":
        limit = _LIMIT_SIGNALS.get(int(line.get("signal") or 0), "cpu or memory")
    elif status == "error" and error.startswith("MemoryError"):
        limit = "memory"
    return CaseResult(case.name, "template", passed, None, case.expected, status == "timeout",
                      round(float(line.get("duration_ms", 0.0)), 1), str(line.get("stdout", "")),
                      "", outcome.network_attempts, outcome.decoy_reads, value=value,
                      error=error, limit=limit)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1 and lists are ordered."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_json_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    numbers = isinstance(a, (int, float)) and isinstance(b, (int, float))
    return (numbers or type(a) is type(b)) and a == b


_TEMPLATE_HINT = ("Templates run under RestrictedPython: no open(), no names or attributes "
                  "starting with '_', imports only from " + ", ".join(ALLOWED_TEMPLATE_MODULES)
                  + "; see docs/SKILL_TESTS.md.")

def _security_findings(run: tuple[TestCase, ...], outcome: _Outcome) -> list[Finding]:
    case = run[0]
    label = f"test '{case.name}'" if case.kind == "command" else \
        f"the code template {case.template}"
    found = []
    if outcome.network_attempts:
        found.append(_finding(
            "sandbox.network", Severity.CRITICAL,
            f"{label} tried to reach the network ({outcome.network_attempts} connection or DNS "
            "attempt(s) to non-local addresses)",
            "Tests run offline with only loopback; mock network calls in tests. A skill whose "
            "tests reach out to the network is refused.", file=case.source,
            excerpt=case.command))
    for decoy in outcome.decoy_reads:
        found.append(_finding(
            "sandbox.decoy-read", Severity.CRITICAL,
            f"{label} opened {decoy}, a decoy credential file planted in the sandbox's HOME",
            "Skills must not read credentials they were not given; remove the code that opens "
            f"{decoy}. A skill whose tests read credential files is refused.",
            file=case.source, excerpt=case.command))
    return found


def _result_findings(case: TestCase, result: CaseResult, outcome: _Outcome, timeout: float,
                     limits: SandboxLimits) -> list[Finding]:
    if result.passed:
        return []
    what = f"test '{case.name}'" if case.kind == "command" else f"template case '{case.name}'"
    file, excerpt = case.source, case.command
    if result.timed_out and result.limit in (None, WALL_CLOCK):
        reached = case.kind == "command" or result.duration_ms > 0  # a template case ran
        within = (f"the {limits.total_wall_seconds:g} s budget for all tests ran out"
                  if outcome.cut_by_budget and (case.kind == "command" or not reached)
                  else f"it was still running after {timeout:g} s")
        return [_finding("sandbox.timeout", Severity.HIGH, f"{what} was stopped: {within}",
                         f"Make it finish well within {limits.wall_seconds:g} s (a test's "
                         "'timeout' can only lower that).", file=file, excerpt=excerpt)]
    if result.limit:
        tail = _trim(result.error or result.stderr)
        return [_finding("sandbox.resource-limit", Severity.HIGH,
                         f"{what} was stopped by {_limit_text(result.limit, limits)}"
                         + (f": {tail}" if tail else ""), _limits_hint(limits),
                         file=file, excerpt=excerpt)]
    if case.kind == "template" and result.error:
        return [_finding("sandbox.template-error", Severity.HIGH,
                         f"{what} failed: {_trim(result.error)}", _TEMPLATE_HINT, file=file)]
    return [_finding("sandbox.test-failed", Severity.HIGH, _failure_message(what, case, result),
                     "Run the test locally the same way (see docs/SKILL_TESTS.md: the skill is "
                     "the working directory, HOME is empty, there is no network) and fix it.",
                     file=file, excerpt=excerpt)]


def _failure_message(what: str, case: TestCase, result: CaseResult) -> str:
    if case.kind == "template":
        return (f"{what} returned {_short_json(result.value)}, expected "
                f"{_short_json(case.expect_value)}")
    tail = _trim(result.stderr) or _trim(result.stdout)
    return (f"{what} exited with {result.exit_code}, expected {case.expect_exit}"
            + (f": {tail}" if tail else ""))


def _short_json(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:79] + "…"


def _limits_hint(limits: SandboxLimits) -> str:
    return _RULE_HINT_LIMITS.format(cpu=limits.cpu_seconds, memory=limits.memory_bytes // MiB,
                                    file=limits.file_bytes // MiB, procs=limits.processes,
                                    files=limits.open_files) + " Make the test smaller."

