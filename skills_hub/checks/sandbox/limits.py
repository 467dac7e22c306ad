"""Resource limits on the sandboxed processes: rlimits, set in the child before exec."""

from __future__ import annotations

import os
import resource

from skills_hub.checks.sandbox.identity import _Identity
from skills_hub.checks.sandbox.model import SandboxLimits


def _rlimits(limits: SandboxLimits, identity: _Identity, *,
             whole_run: bool = False) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) to set in the child, never above the current hard limits.

    whole_run: a cgroup bounds the run's CPU time and tasks, so the per-process CPU limit
    and the per-uid process limit are only backstops (looser, so the run's limit is the one
    that bounds and the report names it).
    """
    cpu = limits.cpu_seconds + (2 if whole_run else 0)
    # RLIMIT_NPROC counts every process of the uid; a non-root server shares its own.
    processes = limits.processes * (2 if whole_run else 1) \
        + (0 if identity.drop else _tasks_of(identity.uid))
    memory = limits.memory_bytes
    wanted = [(resource.RLIMIT_CORE, 0, 0),
              (resource.RLIMIT_CPU, cpu, cpu + 1),
              (resource.RLIMIT_DATA, memory, memory),
              # Address space: 4x, because runtimes such as Node reserve large ranges.
              (resource.RLIMIT_AS, 4 * memory, 4 * memory),
              (resource.RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
              (resource.RLIMIT_NPROC, processes, processes),
              (resource.RLIMIT_NOFILE, limits.open_files, limits.open_files)]
    result = []
    for which, soft, hard in wanted:
        current = resource.getrlimit(which)[1]
        if current != resource.RLIM_INFINITY:
            hard = min(hard, current)
        result.append((which, min(soft, hard), hard))
    return result


def _tasks_of(uid: int) -> int:
    """How many threads the uid runs now (RLIMIT_NPROC counts threads)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count

