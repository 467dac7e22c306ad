"""Run a skill's declared tests in a sandbox at publish, and report what they did.

A skill declares tests in `tests/tests.yaml`, by convention (`tests/test_*.py`,
`tests/test_*.sh`), or as code template cases (`code_template` + `test_parameters` in
SKILL.md); docs/SKILL_TESTS.md is the format. Each test runs under bubblewrap: no network
(loopback only), a read-only system, tmpfs work dir, /tmp and HOME, an unprivileged uid
(the server drops root *before* starting bwrap, so the user namespace is unprivileged
too), a cgroup per test run (rlimits per process where there is none), a seccomp filter
on socket families, and a wall clock. The HOME holds decoy credential files watched
with inotify; network attempts are read from the sandbox's own network namespace
counters, from the host. Both fail the publish whatever the exit code.

Without bubblewrap the tests run with rlimits, a dropped uid, a throwaway HOME and work
dir only, and the report says so (`sandbox.degraded`).

The package, by concern (each module's docstring says more):

- `spec`: the test format a skill declares, and discovery;
- `runner`: orchestration, the entry points (`run_tests`, `sandbox_available`);
- `results`: per-test results and findings from what a run did;
- `workspace`: the throwaway workspace, decoy credentials, the support files;
- `bubblewrap`, `fallback`: the two kinds of sandbox; `base`, what they share;
- `cgroup`: one cgroup per test run (memory, processes, CPU for the whole run);
- `limits`, `identity`, `process`: rlimits, the host uid, starting and reaping processes;
- `monitors`: network counters, inotify on the decoys, the seccomp filter.
"""

from skills_hub.checks.sandbox.model import (
    CaseResult,
    KiB,
    MiB,
    SandboxLimits,
    SandboxReport,
    SandboxUnavailable,
)
from skills_hub.checks.sandbox.runner import ISOLATIONS, run_tests, sandbox_available
from skills_hub.checks.sandbox.spec import (
    ALLOWED_TEMPLATE_MODULES,
    MAX_TESTS,
    SPEC_FILES,
    TestCase,
    discover_tests,
)
from skills_hub.checks.sandbox.workspace import DECOY_FILES

__all__ = ["ALLOWED_TEMPLATE_MODULES", "DECOY_FILES", "ISOLATIONS", "MAX_TESTS", "SPEC_FILES",
           "CaseResult", "KiB", "MiB", "SandboxLimits", "SandboxReport", "SandboxUnavailable",
           "TestCase", "discover_tests", "run_tests", "sandbox_available"]
