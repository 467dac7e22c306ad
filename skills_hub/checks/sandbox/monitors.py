"""Watching and filtering from outside the test: network namespace counters, inotify on
the decoy credentials, and the seccomp filter on socket families."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import struct
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skills_hub.checks.sandbox.process import _HOST_ENV, _Fds


class _NetCounters:
    """Packets the sandbox's network namespace could not route, read from the host.

    With only loopback, every connection, datagram or DNS query to another address fails
    with ENETUNREACH and counts in OutNoRoutes (Ip6OutNoRoutes). The files are opened before
    the test starts and keep the namespace's counters readable after it is gone.
    """

    def __init__(self, pid: int) -> None:
        self._files: list[Any] = []
        for name in ("snmp", "snmp6"):
            try:
                handle = open(f"/proc/{pid}/net/{name}", "rb", buffering=0)
            except FileNotFoundError:  # no IPv6
                continue
            self._files.append(handle)
        self._start = self._total()

    def __enter__(self) -> _NetCounters:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._files:
            handle.close()

    def attempts(self) -> int:
        return self._total() - self._start

    def _total(self) -> int:
        total = 0
        for handle in self._files:
            handle.seek(0)
            total += _no_routes(handle.read().decode("ascii", errors="replace"))
        return total


def _no_routes(text: str) -> int:
    """OutNoRoutes from /proc/net/snmp, or Ip6OutNoRoutes from /proc/net/snmp6."""
    lines = text.splitlines()
    ip = [line.split()[1:] for line in lines if line.startswith("Ip:")]
    total = int(dict(zip(ip[0], ip[1], strict=False)).get("OutNoRoutes", 0)) if len(ip) > 1 else 0
    for line in lines:
        if line.startswith("Ip6OutNoRoutes"):
            total += int(line.split()[1])
    return total


_IN_ACCESS, _IN_OPEN = 0x1, 0x20

@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _inotify_available() -> bool:
    return _libc() is not None and hasattr(_libc(), "inotify_init1")


class _Inotify:
    """One inotify instance for the process, shared by all runs.

    Closing an inotify instance waits for an RCU grace period (~10 ms), so it is never
    closed; watches go away with the decoy files. Events are sorted by watch under a lock.
    """

    def __init__(self, fd: int) -> None:
        self._fd, self._lock = fd, threading.Lock()
        self._hits: set[int] = set()
        self._active: set[int] = set()

    def watch(self, path: Path) -> int:
        wd = int(_libc().inotify_add_watch(self._fd, os.fsencode(path), _IN_OPEN | _IN_ACCESS))
        if wd >= 0:
            with self._lock:
                self._active.add(wd)
        return wd

    def take(self, wds: set[int], *, release: bool = False) -> set[int]:
        """Which of wds saw an open or read since the last take; forget them."""
        with self._lock:
            self._drain()
            found = self._hits & wds
            self._hits -= wds
            if release:
                self._active -= wds
            return found

    def _drain(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset + 16 <= len(data):
                wd, mask, _, length = struct.unpack_from("iIII", data, offset)
                offset += 16 + length
                if mask & _IN_Q_OVERFLOW:  # events were lost: fail closed
                    self._hits |= self._active
                elif mask & (_IN_OPEN | _IN_ACCESS):
                    self._hits.add(wd)


_IN_Q_OVERFLOW = 0x4000

@functools.cache
def _inotify() -> _Inotify | None:
    if not _inotify_available():
        return None
    fd = _libc().inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    return _Inotify(fd) if fd >= 0 else None


class _DecoyWatch:
    """Which decoy files one run opened or read (inotify events pass through bind mounts)."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self._inotify = _inotify()
        self._labels: dict[int, str] = {}
        if self._inotify is None:
            return
        for label, path in files.items():
            wd = self._inotify.watch(path)
            if wd >= 0:
                self._labels[wd] = label
        self._inotify.take(set(self._labels))  # events from before this run are not its own

    def __enter__(self) -> _DecoyWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._inotify is not None:
            self._inotify.take(set(self._labels), release=True)

    def opened(self) -> tuple[str, ...]:
        if self._inotify is None:
            return ()
        return tuple(sorted(self._labels[wd] for wd in self._inotify.take(set(self._labels))))


_AF_UNIX, _AF_INET, _AF_INET6, _AF_NETLINK = 1, 2, 10, 16

# In bwrap, IP sockets reach only loopback (and are counted); AF_VSOCK and friends are not
# covered by the network namespace, so they are refused. Without bwrap, IP is refused too.
_BWRAP_FAMILIES = (_AF_UNIX, _AF_INET, _AF_INET6, _AF_NETLINK)

_FALLBACK_FAMILIES = (_AF_UNIX, _AF_NETLINK)

_ARCHES = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}  # audit arch, socket()

_IO_URING = (425, 426, 427)  # io_uring can create sockets without socket()

@functools.cache
def _seccomp_program(families: tuple[int, ...]) -> bytes | None:
    """A classic BPF seccomp filter: socket() only for `families`, no io_uring."""
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        return None
    audit_arch, socket_nr = arch
    allow, kill = 0x7FFF0000, 0x80000000
    errno = 0x00050000

    def op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
        return struct.pack("HBBI", code, jt, jf, k)

    load, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    program = [op(load, 4), op(jeq, audit_arch, 1, 0), op(ret, kill),
               op(load, 0), op(jge, 0x40000000, 0, 1), op(ret, kill)]  # x32 syscalls
    for number in _IO_URING:
        program += [op(jeq, number, 0, 1), op(ret, errno | 38)]  # ENOSYS
    program += [op(jeq, socket_nr, 1, 0), op(ret, allow), op(load, 16)]
    for family in families:
        program += [op(jeq, family, 0, 1), op(ret, allow)]
    program.append(op(ret, errno | 97))  # EAFNOSUPPORT
    return b"".join(program)


def _seccomp_args(fds: _Fds) -> list[str]:
    """["--seccomp", fd] with the filter written into a pipe, or [] if there is none."""
    program = _seccomp_program(_BWRAP_FAMILIES)
    if program is None:
        return []
    read_end, write_end = fds.pipe()
    os.write(write_end, program)  # a few hundred bytes: fits the pipe buffer
    fds.close(write_end)
    return ["--seccomp", str(read_end)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Seccomp:
    """A filter installed from preexec (fallback only; bwrap installs its own)."""

    def __init__(self, program: bytes) -> None:
        self._libc = _libc()
        self._buffer = ctypes.create_string_buffer(program, len(program))
        self._prog = _SockFprog(len(program) // 8, ctypes.addressof(self._buffer))

    def install(self) -> None:
        """Called between fork and exec: only C calls, no locks, no imports."""
        libc = self._libc
        if libc.prctl(38, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if libc.prctl(22, ctypes.c_ulong(2), ctypes.byref(self._prog), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
            raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP failed")


@functools.cache
def _fallback_seccomp() -> _Seccomp | None:
    """The fallback's filter, if installing it works here (checked once)."""
    program = _seccomp_program(_FALLBACK_FAMILIES)
    if program is None or _libc() is None:
        return None
    seccomp = _Seccomp(program)
    try:
        probe = subprocess.run(
            ["/bin/sh", "-c", "exit 0"], preexec_fn=seccomp.install, env=_HOST_ENV,
            capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return seccomp if probe.returncode == 0 else None

