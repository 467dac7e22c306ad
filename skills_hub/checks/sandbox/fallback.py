"""The fallback without bubblewrap: rlimits, the uid drop, a throwaway HOME and work dir."""

from __future__ import annotations

import shutil
import time

from skills_hub.checks.sandbox import process as process_mod
from skills_hub.checks.sandbox.base import _Job, _runner_argv, _Sandbox, _sandbox_env
from skills_hub.checks.sandbox.identity import _identity
from skills_hub.checks.sandbox.monitors import _DecoyWatch, _fallback_seccomp, _inotify_available
from skills_hub.checks.sandbox.process import _collect, _Outcome, _reaped
from skills_hub.checks.sandbox.workspace import _remove_tree, _support_dir


class _RlimitsOnly(_Sandbox):
    """The fallback: rlimits, the uid drop, a throwaway HOME and work dir, an empty env."""

    name = "rlimits"

    def note(self, reason: str) -> str:
        identity = _identity()
        bound = "a cgroup per test run and rlimits" if self.cgroups.version else "rlimits"
        have = [bound, f"host uid {identity.uid}" + (" (dropped from root)"
                                                          if identity.drop else ""),
                "a throwaway HOME with decoys and work dir", "an empty environment"]
        missing = ["network isolation: network attempts cannot be detected"
                   + (", IP sockets are refused by seccomp instead (tests that use loopback "
                      "fail)" if _fallback_seccomp() else ", and are not blocked"),
                   "filesystem isolation: the host's world-readable files are visible"]
        if not self.cgroups.version:
            missing.append("a pid namespace or cgroup: a process that calls setsid can "
                           "outlive its test")
        if not identity.drop:
            missing.append("a separate user: tests run as the server's own user")
        if not _inotify_available():
            missing.append("decoy detection: no inotify")
        return (f"{reason}. Weak isolation with {', '.join(have)}. Missing: "
                f"{'; '.join(missing)}.")

    def run(self, job: _Job, wall: float) -> _Outcome:
        base = self.workspace.new_dir("run")
        home, tmp, work = base / "home", base / "tmp", base / "work"
        tmp.mkdir()
        decoys = self.workspace.decoys(home)
        shutil.copytree(self.workspace.skill, work)
        for tree in (home, tmp, work):
            self.workspace.give(tree)
        if job.kind == "template":
            spec = self.workspace.write_spec(job.spec)
            argv = _runner_argv(job.python, str(_support_dir() / "lib"), str(spec))
        else:
            argv = ["/bin/sh", "-c", job.command]
        with _DecoyWatch(decoys) as watch, self._cgroup() as cgroup:
            started = time.monotonic()
            process = process_mod._spawn(argv, str(work), _sandbox_env(str(home), str(tmp)),
                                         (), self.limits, seccomp=_fallback_seccomp(),
                                         cgroup=cgroup)
            with _reaped(process):
                outcome = _collect(process, started, wall, self._output_cap(job), cgroup)
            outcome.decoy_reads = watch.opened()
        _remove_tree(base)
        return outcome

