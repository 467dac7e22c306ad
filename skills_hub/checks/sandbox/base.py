"""What every sandbox kind shares: the job to run, its environment, the interface."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from skills_hub.checks.sandbox import cgroup as cgroup_mod
from skills_hub.checks.sandbox.cgroup import RunCgroup
from skills_hub.checks.sandbox.model import SANDBOX_USER, MiB, SandboxLimits
from skills_hub.checks.sandbox.process import _Outcome
from skills_hub.checks.sandbox.workspace import _Workspace


class _StartError(RuntimeError):
    """The sandbox failed before any test code ran."""


@dataclass(frozen=True)
class _Job:
    kind: str                      # "command" | "template"
    command: str = ""
    spec: Mapping[str, Any] = field(default_factory=dict)
    python: str = ""


def _sandbox_env(home: str, tmp: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "USER": SANDBOX_USER,
            "LOGNAME": SANDBOX_USER, "LANG": "C.UTF-8", "TMPDIR": tmp,
            "PYTHONDONTWRITEBYTECODE": "1"}


def _runner_argv(python: str, lib: str, spec: str) -> list[str]:
    return [python, "-E", "-s", "-S", "-B", f"{lib}/_sandbox_runner.py", spec]


class _Sandbox:
    name = ""

    def __init__(self, workspace: _Workspace, limits: SandboxLimits) -> None:
        self.workspace, self.limits = workspace, limits
        self.cgroups = cgroup_mod.cgroup_support()  # probed once per server process

    @contextmanager
    def _cgroup(self) -> Iterator[RunCgroup | None]:
        """The run's own cgroup (None on a host without one: the rlimits fallback)."""
        if not self.cgroups.version:
            yield None
            return
        try:
            cgroup = RunCgroup(self.cgroups, self.limits).__enter__()
        except OSError as exc:  # the probe worked, so fail closed rather than run unbounded
            raise _StartError(f"the run's cgroup cannot be created: {exc}") from exc
        try:
            yield cgroup
        finally:
            cgroup.__exit__()

    def run(self, job: _Job, wall: float) -> _Outcome:
        raise NotImplementedError

    def note(self, reason: str) -> str:
        raise NotImplementedError

    def _output_cap(self, job: _Job) -> int:
        return 16 * MiB if job.kind == "template" else self.limits.output_bytes

