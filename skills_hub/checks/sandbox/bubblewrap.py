"""The bubblewrap sandbox: bwrap found and probed once, its argv, and one supervised run."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from skills_hub.checks.sandbox import process as process_mod
from skills_hub.checks.sandbox.base import _Job, _runner_argv, _Sandbox, _sandbox_env, _StartError
from skills_hub.checks.sandbox.cgroup import RunCgroup
from skills_hub.checks.sandbox.identity import _identity
from skills_hub.checks.sandbox.model import (
    _HOST_ETC,
    SANDBOX_HOME,
    SANDBOX_LIB,
    SANDBOX_SKILL,
    SANDBOX_SPEC,
    SANDBOX_UID,
    SANDBOX_WORK,
    MiB,
    SandboxLimits,
    _text,
    _trim,
)
from skills_hub.checks.sandbox.monitors import (
    _BWRAP_FAMILIES,
    _DecoyWatch,
    _inotify_available,
    _NetCounters,
    _seccomp_args,
    _seccomp_program,
)
from skills_hub.checks.sandbox.process import (
    _HOST_ENV,
    _collect,
    _fd_numbers,
    _Fds,
    _kill_group,
    _Outcome,
    _reaped,
)
from skills_hub.checks.sandbox.workspace import _support_dir, _Workspace

_COPY_SKILL = f'cp -R {SANDBOX_SKILL}/. {SANDBOX_WORK}/ && exec /bin/sh -c "$1"'

@dataclass(frozen=True)
class _BwrapStatus:
    path: str | None
    version: str
    problem: str  # empty when usable


@functools.cache
def _bubblewrap() -> _BwrapStatus:
    """Find bwrap and start it once, as the sandbox user, with the options runs use."""
    path = next((p for p in ("/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap")
                 if os.access(p, os.X_OK)), None) or shutil.which("bwrap")
    if path is None:
        return _BwrapStatus(None, "", "bwrap is not installed")
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout.strip() or "bubblewrap"
        with _Fds() as fds:
            seccomp = _seccomp_args(fds)
            probe = subprocess.run(
                [path, *_bwrap_base_args(), "--size", str(MiB), "--tmpfs", "/tmp",
                 "--remount-ro", "/", *seccomp, "--", "/bin/sh", "-c", "exit 0"],
                capture_output=True, text=True, timeout=20, check=False, cwd="/",
                env=_HOST_ENV, pass_fds=_fd_numbers(seccomp), **_identity().popen_kwargs())
    except (OSError, subprocess.SubprocessError) as exc:
        return _BwrapStatus(path, "", f"bwrap cannot be started: {exc}")
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1:] or [f"exit {probe.returncode}"]
        return _BwrapStatus(path, version, f"bwrap fails here: {reason[0]}")
    return _BwrapStatus(path, version, "")


class _Bubblewrap(_Sandbox):
    """bwrap, started as the unprivileged sandbox user, with everything unshared."""

    name = "bubblewrap"

    def __init__(self, workspace: _Workspace, limits: SandboxLimits) -> None:
        super().__init__(workspace, limits)
        self.bwrap = _bubblewrap().path or "bwrap"
        self.decoys = workspace.decoys(workspace.new_dir("home"))

    def note(self, reason: str) -> str:
        identity = _identity()
        user = (f"host uid {identity.uid} (dropped from root before bwrap)" if identity.drop
                else f"host uid {identity.uid}")
        parts = [reason + ":", "network namespace with loopback only", "read-only /usr and "
                 "minimal /etc", "tmpfs /work, /tmp and HOME", user,
                 "seccomp socket filter" if _seccomp_program(_BWRAP_FAMILIES) else
                 "no seccomp filter (unknown architecture)",
                 "a cgroup per test run and rlimits" if self.cgroups.version
                 else "rlimits per process (no cgroup)"]
        if not _inotify_available():
            parts.append("decoy reads cannot be detected (no inotify)")
        return ", ".join(parts)

    def run(self, job: _Job, wall: float) -> _Outcome:
        with _Fds() as fds, _DecoyWatch(self.decoys) as watch, self._cgroup() as cgroup:
            info_r, info_w = fds.pipe()
            block_r, block_w = fds.pipe()
            extra = ["--info-fd", str(info_w), "--block-fd", str(block_r), *_seccomp_args(fds)]
            inherited = _fd_numbers(extra)
            argv = self._argv(job, extra)
            started = time.monotonic()
            try:
                process = process_mod._spawn(argv, "/", _HOST_ENV, inherited, self.limits,
                                             cgroup=cgroup)
            except (OSError, subprocess.SubprocessError) as exc:
                raise _StartError(f"bwrap cannot be started: {exc}") from exc
            for fd in inherited:
                fds.close(fd)
            with _reaped(process):
                outcome = self._supervise(process, fds, info_r, block_w, started, wall, job,
                                          cgroup)
            outcome.decoy_reads = watch.opened()
            return outcome

    def _supervise(self, process: subprocess.Popen[bytes], fds: _Fds, info_r: int,
                   block_w: int, started: float, wall: float, job: _Job,
                   cgroup: RunCgroup | None) -> _Outcome:
        """Open the sandbox's counters, let the test start, collect what it does."""
        child = _read_info(info_r, started + 10.0)
        if child is None:
            _kill_group(process.pid)
            stderr = process.communicate()[1]
            raise _StartError("bwrap failed before running the test: " + _trim(_text(stderr)))
        with _NetCounters(child) as counters:
            pidfd = _pidfd(child)
            try:
                os.write(block_w, b"1")  # the test starts now
            except BrokenPipeError:
                pass  # bwrap is gone already; _collect sees its exit
            fds.close(block_w)
            outcome = _collect(process, started, wall, self._output_cap(job), cgroup)
            _end_namespace(pidfd)
            outcome.network_attempts = counters.attempts()
        return outcome

    def _argv(self, job: _Job, extra: list[str]) -> list[str]:
        size = str(self.limits.tmpfs_bytes)
        work_size = str(self.limits.tmpfs_bytes + self.workspace.bundle.total_bytes)
        args = [self.bwrap, *_bwrap_base_args(), "--ro-bind", str(_support_dir() / "etc"),
                "/etc"]
        for name in _HOST_ETC:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        args += ["--size", size, "--tmpfs", "/dev/shm", "--size", size, "--tmpfs", "/tmp",
                 "--size", work_size, "--tmpfs", SANDBOX_WORK, "--size", size, "--tmpfs",
                 SANDBOX_HOME]
        for label, path in self.decoys.items():
            args += ["--ro-bind", str(path), SANDBOX_HOME + label[1:]]
        args += ["--ro-bind", str(self.workspace.skill), SANDBOX_SKILL]
        if job.kind == "template":
            spec = self.workspace.write_spec(job.spec)
            args += ["--ro-bind", str(_support_dir() / "lib"), SANDBOX_LIB,
                     "--ro-bind", str(spec), SANDBOX_SPEC]
            command = _runner_argv(job.python, SANDBOX_LIB, SANDBOX_SPEC)
        else:
            command = ["/bin/sh", "-c", _COPY_SKILL, "sh", job.command]
        args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_WORK,
                 "--clearenv"]
        for key, value in _sandbox_env(SANDBOX_HOME, "/tmp").items():
            args += ["--setenv", key, value]
        return [*args, *extra, "--", *command]


@functools.cache
def _system_binds() -> tuple[str, ...]:
    """/usr read-only, and /bin, /lib... as the symlinks or folders they are on the host."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return tuple(args)


def _bwrap_base_args() -> list[str]:
    return ["--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
            "--new-session", "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid",
            str(SANDBOX_UID), "--hostname", "sandbox", *_system_binds(), "--proc", "/proc",
            "--dev", "/dev"]


def _read_info(fd: int, deadline: float) -> int | None:
    """The sandbox's pid on the host, from bwrap's --info-fd JSON (None if bwrap died)."""
    data = b""
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    try:
        return int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None


def _end_namespace(pidfd: int | None, timeout: float = 2.0) -> None:
    """Kill the sandbox's init (usually gone already) and wait for it.

    bwrap's --die-with-parent already does this when bwrap is killed; this does not depend
    on it. When a pid namespace's init dies, the kernel kills everything else in it.
    """
    if pidfd is None:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)

