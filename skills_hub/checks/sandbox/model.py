"""The model: limits, results, the report, and the paths inside every sandbox."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from skills_hub.checks.findings import Finding, Severity, escape_invisible

log = logging.getLogger("skills_hub.checks.sandbox")

KiB = 1024

MiB = 1024 * KiB

# Inside the sandbox.
SANDBOX_USER = "user"

SANDBOX_UID = 1000

SANDBOX_HOME = "/home/user"

SANDBOX_WORK = "/work"    # the working directory: a writable copy of the skill

SANDBOX_SKILL = "/skill"  # the skill as published, read-only

SANDBOX_LIB = "/opt/skills-hub"

SANDBOX_SPEC = "/run/skills-hub/spec.json"

# Host /etc entries bound read-only over placeholders in our minimal /etc.
_HOST_ETC = ("ld.so.cache", "alternatives", "localtime", "services", "protocols", "mime.types")

_RULE_HINT_LIMITS = ("Tests get {cpu} s of CPU, {memory} MiB of memory, {file} MiB per "
                     "written file, {procs} processes and {files} open files.")

class SandboxUnavailable(RuntimeError):
    """The isolation that was asked for cannot be used here."""


@dataclass(frozen=True)
class SandboxLimits:
    """What one test may use. wall_seconds is per test, total_wall_seconds for all."""

    # With a cgroup (see cgroup.py), cpu_seconds, memory_bytes and processes bound the whole
    # test run, everything it starts together; they are also set per process as rlimits
    # (RLIMIT_DATA, 4x for the address space; RLIMIT_NPROC counts the sandbox user's tasks).
    # Without a cgroup only the per-process rlimits apply.
    cpu_seconds: int = 10
    memory_bytes: int = 512 * MiB
    file_bytes: int = 16 * MiB
    processes: int = 64
    cpus: float = 1.0                  # cgroup only: CPUs the run may use at a time
    open_files: int = 256
    wall_seconds: float = 20.0
    total_wall_seconds: float = 60.0
    tmpfs_bytes: int = 64 * MiB        # each of /tmp, /work (plus the skill), HOME, /dev/shm
    output_bytes: int = 64 * KiB       # the tail of stdout and of stderr kept per test


@dataclass(frozen=True)
class CaseResult:
    """What one test did. For template cases the network and decoy counts are the run's."""

    name: str
    kind: str
    passed: bool
    exit_code: int | None
    expected: Any
    timed_out: bool
    duration_ms: float
    stdout: str = ""
    stderr: str = ""
    network_attempts: int = 0
    decoy_reads: tuple[str, ...] = ()
    value: Any = None           # what a template case returned
    error: str = ""             # why it failed beyond its exit code
    limit: str | None = None    # the resource limit that stopped it, when one did

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["decoy_reads"] = list(self.decoy_reads)
        return data


@dataclass(frozen=True)
class SandboxReport:
    """The sandbox stage's result: how tests were isolated, what each did, the findings."""

    isolation: str  # "bubblewrap" | "rlimits" | "skipped"
    isolation_note: str
    cases: tuple[CaseResult, ...]
    findings: tuple[Finding, ...]
    duration_ms: float
    limits: str = "none"  # "cgroup" (the whole run) | "rlimits" (per process) | "none"
    limits_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"isolation": self.isolation, "isolation_note": self.isolation_note,
                "limits": self.limits, "limits_note": self.limits_note,
                "duration_ms": round(self.duration_ms, 1),
                "cases": [case.to_dict() for case in self.cases],
                "findings": [finding.to_dict() for finding in self.findings]}


def _finding(rule: str, severity: Severity, message: str, hint: str, *,
             file: str | None = None, excerpt: str = "") -> Finding:
    return Finding(rule=rule, family="sandbox", severity=severity, source="sandbox",
                   message=message, hint=hint, file=file, excerpt=escape_invisible(excerpt))


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _trim(text: str, limit: int = 300) -> str:
    """The last lines of some output, on one line, for a message."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return escape_invisible(" | ".join(lines[-3:])[-limit:], limit)

