"""Limits on a whole test run: one cgroup per sandboxed run (memory, processes, CPU).

rlimits bound each process: eight processes of 400 MiB each pass a 512 MiB RLIMIT_DATA, and
48 busy processes each get their own CPU seconds. A cgroup bounds everything the run starts,
together: memory (no swap), the number of tasks, the CPU share (cpu.max / CFS quota) and,
read from outside while the run goes, the CPU time used. The run's first process joins the
cgroup between fork and exec (writing "0" to cgroup.procs through a descriptor the server
opened), so nothing it starts is ever outside it.

Two layouts are supported, found once per server process:

- cgroup v2 (the unified hierarchy): a child of the server's own cgroup, with memory, pids
  and cpu enabled in its subtree_control (possible at the root, or in a delegated cgroup
  whose processes live in leaves). memory.oom.group kills the whole run on OOM.
- cgroup v1 (hybrid hosts such as this project's CI machines, where memory, pids, cpu and
  cpuacct are v1 hierarchies): a child in each hierarchy, under the server's own cgroup.

Where neither is writable (not root, a read-only /sys/fs/cgroup, a v2 cgroup that does not
delegate the controllers), the sandbox falls back to the per-process rlimits, logs a
warning once and says so in every report (`limits: "rlimits"` and `limits_note`).
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from skills_hub.checks.sandbox.model import MiB, SandboxLimits

log = logging.getLogger("skills_hub.checks.sandbox")

CFS_PERIOD_US = 100_000
_V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
_V2_CONTROLLERS = ("memory", "pids", "cpu")
_PREFIX = "skills-hub-sandbox"
_counter = itertools.count(1)

# The limit names a run's cgroup reports (CaseResult.limit).
MEMORY, PROCESSES, CPU_TIME = "memory (cgroup)", "processes (cgroup)", "cpu time (cgroup)"


@dataclass(frozen=True)
class CgroupSupport:
    """What this host offers: version "v1" | "v2", or "" with the reason in `problem`."""

    version: str
    parents: tuple[tuple[tuple[str, ...], Path], ...] = ()  # (controllers, parent dir)
    problem: str = ""

    def describe(self) -> str:
        if not self.version:
            return f"no cgroup: {self.problem}"
        controllers = sorted({c for names, _ in self.parents for c in names})
        return f"cgroup {self.version} ({', '.join(controllers)})"


@functools.cache
def cgroup_support() -> CgroupSupport:
    """Probe once: the first layout where a child cgroup can be made and limited."""
    problems = []
    for probe in (_probe_v2, _probe_v1):
        found = probe()
        if found.version:
            return found
        problems.append(found.problem)
    support = CgroupSupport("", problem="; ".join(problems))
    log.warning("skill tests are limited PER PROCESS only (rlimits), not per test run: %s. "
                "Run the server as root with a writable cgroup filesystem to bound each run's "
                "memory, processes and CPU together.", support.problem)
    return support


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fs type, super options) of the cgroup filesystems."""
    found = []
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        parts, tail = left.split(), right.split()
        if len(parts) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((parts[4].replace("\\040", " "), tail[0], set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """controller -> this process's cgroup path ("" for the v2 line)."""
    paths = {}
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name.removeprefix("name=")] = path
    return paths


def _probe_v2() -> CgroupSupport:
    mount = next((point for point, kind, _ in _mounts() if kind == "cgroup2"), None)
    own = _own_paths().get("")
    if mount is None or own is None:
        return CgroupSupport("", problem="no cgroup v2 hierarchy")
    parent = Path(mount) / own.lstrip("/")
    try:
        offered = set((parent / "cgroup.controllers").read_text().split())
    except OSError as exc:
        return CgroupSupport("", problem=f"cgroup v2 at {parent} cannot be read: {exc}")
    missing = [name for name in _V2_CONTROLLERS if name not in offered]
    if missing:
        offers = " ".join(sorted(offered)) or "none"
        return CgroupSupport("", problem=f"cgroup v2 at {parent} does not offer "
                             f"{', '.join(missing)} (it offers: {offers})")
    try:
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        wanted = [name for name in _V2_CONTROLLERS if name not in enabled]
        if wanted:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{n}" for n in wanted))
    except OSError as exc:
        why = ("it holds processes, so its children cannot get controllers; start the "
               "server in a delegated cgroup (systemd: Delegate=yes) with its processes in a "
               "leaf" if exc.errno == errno.EBUSY else str(exc))
        return CgroupSupport("", problem=f"cgroup v2 at {parent}: cannot enable "
                             f"{' '.join(_V2_CONTROLLERS)} for children: {why}")
    support = CgroupSupport("v2", ((_V2_CONTROLLERS, parent),))
    return _tried(support)


def _probe_v1() -> CgroupSupport:
    own = _own_paths()
    parents: dict[str, tuple[list[str], Path]] = {}
    for point, kind, options in _mounts():
        if kind != "cgroup":
            continue
        for name in _V1_CONTROLLERS:
            if name in options and name in own:
                entry = parents.setdefault(point, ([], Path(point) / own[name].lstrip("/")))
                entry[0].append(name)
    have = {name for names, _ in parents.values() for name in names}
    missing = [name for name in _V1_CONTROLLERS if name not in have]
    if missing:
        return CgroupSupport("", problem=f"no cgroup v1 hierarchy for {', '.join(missing)}")
    support = CgroupSupport("v1", tuple((tuple(names), path)
                                        for names, path in parents.values()))
    return _tried(support)


def _tried(support: CgroupSupport) -> CgroupSupport:
    """The support if a child cgroup can really be made and limited here."""
    try:
        with RunCgroup(support, SandboxLimits()):
            pass
    except OSError as exc:
        return CgroupSupport("", problem=f"cgroup {support.version}: cannot create a limited "
                             f"child cgroup: {exc}")
    return support


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _keyed(text: str, key: str) -> int:
    """The number after `key` in a flat-keyed file (memory.events, pids.events, cpu.stat)."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


@dataclass
class RunCgroup:
    """One test run's cgroup: made and limited on enter, emptied and removed on exit."""

    support: CgroupSupport
    limits: SandboxLimits
    dirs: dict[str, Path] = field(default_factory=dict)  # controller -> this run's dir
    _made: list[Path] = field(default_factory=list)
    stopped_by: str | None = None

    def __enter__(self) -> RunCgroup:
        name = f"{_PREFIX}-{os.getpid()}-{next(_counter)}"
        try:
            for controllers, parent in self.support.parents:
                path = parent / name
                path.mkdir()
                self._made.append(path)
                for controller in controllers:
                    self.dirs[controller] = path
            self._limit()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _limit(self) -> None:
        limits, memory, dirs = self.limits, str(self.limits.memory_bytes), self.dirs
        quota = str(max(1000, int(limits.cpus * CFS_PERIOD_US)))
        if self.support.version == "v2":
            path = dirs["memory"]
            _write(path / "memory.max", memory)
            if (path / "memory.swap.max").exists():
                _write(path / "memory.swap.max", "0")
            _write(path / "memory.oom.group", "1")
            _write(path / "pids.max", str(limits.processes))
            _write(path / "cpu.max", f"{quota} {CFS_PERIOD_US}")
            return
        _write(dirs["memory"] / "memory.limit_in_bytes", memory)
        if (dirs["memory"] / "memory.memsw.limit_in_bytes").exists():  # after the above
            _write(dirs["memory"] / "memory.memsw.limit_in_bytes", memory)
        _write(dirs["pids"] / "pids.max", str(limits.processes))
        _write(dirs["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        _write(dirs["cpu"] / "cpu.cfs_quota_us", quota)

    def procs_fds(self) -> list[int]:
        """Open cgroup.procs of each hierarchy; the child writes "0" to each (join_in_child)."""
        return [os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
                for path in self._made]

    # -- while the run goes, and after it -----------------------------------------------

    def oom_kills(self) -> int:
        if self.support.version == "v2":
            events = _read(self.dirs["memory"] / "memory.events")
            return max(_keyed(events, "oom_kill"), _keyed(events, "oom_group_kill"))
        return _keyed(_read(self.dirs["memory"] / "memory.oom_control"), "oom_kill")

    def pids_refused(self) -> int:
        return _keyed(_read(self.dirs["pids"] / "pids.events"), "max")

    def cpu_seconds(self) -> float:
        if self.support.version == "v2":
            return _keyed(_read(self.dirs["cpu"] / "cpu.stat"), "usage_usec") / 1e6
        text = _read(self.dirs["cpuacct"] / "cpuacct.usage").strip()
        return int(text) / 1e9 if text.isdigit() else 0.0

    def check(self) -> str | None:
        """The limit that must stop the run now (memory, CPU time), or None."""
        if self.stopped_by is None:
            if self.oom_kills():
                self.stopped_by = MEMORY  # v1 kills one process: the run is stopped whole
            elif self.cpu_seconds() >= self.limits.cpu_seconds:
                self.stopped_by = CPU_TIME
        return self.stopped_by

    def limit_hit(self) -> str | None:
        """After the run: the cgroup limit it ran into, if any (memory, CPU, processes)."""
        return self.check() or (PROCESSES if self.pids_refused() else None)

    def kill(self) -> None:
        """SIGKILL everything left in the run's cgroup, until it is empty (bounded)."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            left = self._pids()
            if not left:
                return
            kill_file = self._made[0] / "cgroup.kill" if self._made else None
            if kill_file is not None and kill_file.exists():
                try:
                    _write(kill_file, "1")
                except OSError:
                    pass
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)
        log.warning("sandbox cgroup %s still has processes after SIGKILL", self._made[0])

    def _pids(self) -> set[int]:
        pids: set[int] = set()
        for path in self._made:
            pids |= {int(pid) for pid in _read(path / "cgroup.procs").split() if pid.isdigit()}
        return pids

    def _remove(self) -> None:
        if self._made:
            self.kill()
        for path in reversed(self._made):
            for _ in range(100):  # exiting tasks leave the cgroup a moment after SIGKILL
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
            else:
                log.warning("could not remove the sandbox cgroup %s", path)
        self._made.clear()


def join_in_child(fds: list[int]) -> None:
    """Between fork and exec: move this process into the run's cgroup (only C calls)."""
    for fd in fds:
        os.write(fd, b"0")


def describe_limits(support: CgroupSupport, limits: SandboxLimits) -> str:
    """The limits note of a report."""
    if not support.version:
        return (f"rlimits per process only ({support.problem}): {limits.memory_bytes // MiB} "
                f"MiB of data and {limits.cpu_seconds} s of CPU per process, "
                f"{limits.processes} processes of the sandbox user")
    return (f"{support.describe()} per test run: {limits.memory_bytes // MiB} MiB of memory "
            f"(no swap), {limits.processes} processes, {limits.cpu_seconds} s of CPU time at "
            f"most {limits.cpus:g} CPU at a time, for the whole run; rlimits per process too")
