"""Processes: start as the sandbox user with the limits, collect output, kill, reap."""

from __future__ import annotations

import os
import resource
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skills_hub.checks.sandbox.cgroup import RunCgroup, join_in_child
from skills_hub.checks.sandbox.identity import _identity
from skills_hub.checks.sandbox.limits import _rlimits
from skills_hub.checks.sandbox.model import SandboxLimits

if TYPE_CHECKING:
    from skills_hub.checks.sandbox.monitors import _Seccomp


@dataclass
class _Outcome:
    """What one sandboxed process did."""

    exit_code: int | None
    timed_out: bool
    stdout: bytes
    stderr: bytes
    duration_ms: float
    network_attempts: int = 0
    decoy_reads: tuple[str, ...] = ()
    wall: float = 0.0
    cut_by_budget: bool = False
    stopped_by: str | None = None  # the limit that stopped the run (cgroup, wall clock)


_HOST_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

class _Fds:
    """The pipe ends of one run, each closed exactly once (fd numbers get reused)."""

    def __init__(self) -> None:
        self._open: set[int] = set()

    def __enter__(self) -> _Fds:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in list(self._open):
            self.close(fd)

    def pipe(self) -> tuple[int, int]:
        read_end, write_end = os.pipe()
        self._open |= {read_end, write_end}
        return read_end, write_end

    def close(self, fd: int) -> None:
        if fd in self._open:
            self._open.remove(fd)
            os.close(fd)


def _fd_numbers(args: list[str]) -> tuple[int, ...]:
    """The fds named after --info-fd, --block-fd and --seccomp in bwrap arguments."""
    flags = {"--info-fd", "--block-fd", "--seccomp"}
    return tuple(int(args[i + 1]) for i, arg in enumerate(args[:-1]) if arg in flags)


def _spawn(argv: list[str], cwd: str, env: dict[str, str], fds: tuple[int, ...],
           limits: SandboxLimits, *, seccomp: _Seccomp | None = None,
           cgroup: RunCgroup | None = None) -> subprocess.Popen[bytes]:
    """Start argv as the sandbox user in a new session, with the rlimits (and seccomp).

    With a cgroup, the child joins it before exec, and the per-process CPU rlimit becomes a
    backstop behind the run's CPU time budget.
    """
    identity = _identity()
    rlimits = _rlimits(limits, identity, whole_run=cgroup is not None)
    procs = cgroup.procs_fds() if cgroup is not None else []

    def in_child() -> None:  # runs after fork, after the uid drop, before exec
        join_in_child(procs)  # descriptors opened by the server: the uid drop does not matter
        for which, soft, hard in rlimits:
            resource.setrlimit(which, (soft, hard))
        if seccomp is not None:
            seccomp.install()

    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=cwd, env=env, pass_fds=fds,
                                start_new_session=True, umask=0o022, preexec_fn=in_child,
                                **identity.popen_kwargs())
    finally:
        for fd in procs:
            os.close(fd)


@contextmanager
def _reaped(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Kill the process group and reap the process however the block exits."""
    try:
        yield
    finally:
        if process.returncode is None:
            _kill_group(process.pid)
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Tail:
    """The last `cap` bytes written to a stream."""

    def __init__(self, cap: int) -> None:
        self.cap, self.data = cap, bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[:len(self.data) - self.cap]


def _collect(process: subprocess.Popen[bytes], started: float, wall: float,
             cap: int, cgroup: RunCgroup | None = None) -> _Outcome:
    """Read output until the process ends, the wall clock runs out or the run's cgroup says
    stop; then kill its group (and everything in its cgroup)."""
    assert process.stdout is not None and process.stderr is not None
    streams = {process.stdout.fileno(): _Tail(cap), process.stderr.fileno(): _Tail(cap)}
    tails = list(streams.values())
    stop = cgroup.check if cgroup is not None else None
    ended = _pump(streams, process.pid, started + wall, stop)
    duration = (time.monotonic() - started) * 1000
    _kill_group(process.pid)  # leftovers; the leader is not reaped yet, so the group is ours
    if cgroup is not None:
        cgroup.kill()
    _pump(streams, None, time.monotonic() + 1.0)
    code = process.wait()
    timed_out = ended == WALL_CLOCK
    exit_code = None if timed_out else (128 - code if code < 0 else code)
    outcome = _Outcome(exit_code, timed_out, bytes(tails[0].data), bytes(tails[1].data),
                       duration)
    if cgroup is not None:
        outcome.stopped_by = cgroup.limit_hit()
    if outcome.stopped_by is None and timed_out:
        outcome.stopped_by = WALL_CLOCK
    return outcome


WALL_CLOCK = "wall clock"


def _pump(streams: dict[int, _Tail], pid: int | None, deadline: float,
          stop: Callable[[], str | None] | None = None) -> str | None:
    """Read streams until pid exits (or, without pid, they close): None; "wall clock" at the
    deadline; the limit `stop` names when it names one (checked every 50 ms)."""
    while True:
        if (pid is not None and _exited(pid)) or (pid is None and not streams):
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return WALL_CLOCK
        if stop is not None and (limit := stop()) is not None:
            return limit
        if not streams:
            time.sleep(min(remaining, 0.005))
            continue
        ready, _, _ = select.select(list(streams), [], [], min(remaining, 0.05))
        for fd in ready:
            chunk = os.read(fd, 65536)
            if chunk:
                streams[fd].add(chunk)
            else:
                del streams[fd]


def _exited(pid: int) -> bool:
    """Whether pid has ended, without reaping it (its process group stays valid)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None

