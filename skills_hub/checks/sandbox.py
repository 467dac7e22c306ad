"""Run a skill's declared tests in a sandbox at publish, and report what they did.

A skill declares tests in `tests/tests.yaml`, by convention (`tests/test_*.py`,
`tests/test_*.sh`), or as code template cases (`code_template` + `test_parameters` in
SKILL.md); docs/SKILL_TESTS.md is the format. Each test runs under bubblewrap: no network
(loopback only), a read-only system, tmpfs work dir, /tmp and HOME, an unprivileged uid
(the server drops root *before* starting bwrap, so the user namespace is unprivileged
too), rlimits, a seccomp filter on socket families, and a wall clock. The HOME holds decoy
credential files watched with inotify; network attempts are read from the sandbox's own
network namespace counters, from the host. Both fail the publish whatever the exit code.

Without bubblewrap the tests run with rlimits, a dropped uid, a throwaway HOME and work
dir only, and the report says so (`sandbox.degraded`).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import functools
import hashlib
import importlib.util
import json
import logging
import os
import platform
import pwd
import re
import resource
import select
import shlex
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from skills_hub.checks.findings import Finding, Severity, escape_invisible
from skills_hub.errors import InvalidSkill
from skills_hub.skill.bundle import Bundle
from skills_hub.skill.manifest import parse_manifest

log = logging.getLogger("skills_hub.checks.sandbox")

KiB = 1024
MiB = 1024 * KiB

ISOLATIONS = ("auto", "bubblewrap", "rlimits", "off")
SPEC_FILES = ("tests/tests.yaml", "tests/tests.yml")
MAX_TESTS = 100  # command tests and template cases together
ALLOWED_TEMPLATE_MODULES = ("base64", "collections", "datetime", "decimal", "fractions",
                            "functools", "hashlib", "itertools", "json", "math", "random",
                            "re", "statistics", "string", "textwrap", "unicodedata")

# Inside the sandbox.
SANDBOX_USER = "user"
SANDBOX_UID = 1000
SANDBOX_HOME = "/home/user"
SANDBOX_WORK = "/work"    # the working directory: a writable copy of the skill
SANDBOX_SKILL = "/skill"  # the skill as published, read-only
SANDBOX_LIB = "/opt/skills-hub"
SANDBOX_SPEC = "/run/skills-hub/spec.json"
_COPY_SKILL = f'cp -R {SANDBOX_SKILL}/. {SANDBOX_WORK}/ && exec /bin/sh -c "$1"'

# Fake but plausible credentials planted in every sandbox HOME; opening one is a finding.
DECOY_FILES = (
    ".ssh/id_rsa", ".ssh/id_ed25519", ".aws/credentials",
    ".config/gcloud/application_default_credentials.json", ".config/gcloud/credentials.db",
    ".netrc", ".docker/config.json", ".kube/config", ".env", ".git-credentials",
    ".config/gh/hosts.yml", ".pypirc",
    ".config/google-chrome/Default/Login Data", ".config/google-chrome/Default/Cookies",
    ".mozilla/firefox/q8m3x2ka.default-release/logins.json", ".bitcoin/wallet.dat",
)
# Host /etc entries bound read-only over placeholders in our minimal /etc.
_HOST_ETC = ("ld.so.cache", "alternatives", "localtime", "services", "protocols", "mime.types")

_RULE_HINT_LIMITS = ("Tests get {cpu} s of CPU, {memory} MiB of memory, {file} MiB per "
                     "written file, {procs} processes and {files} open files.")


class SandboxUnavailable(RuntimeError):
    """The isolation that was asked for cannot be used here."""


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxLimits:
    """What one test may use. wall_seconds is per test, total_wall_seconds for all."""

    cpu_seconds: int = 10
    memory_bytes: int = 512 * MiB      # RLIMIT_DATA; address space gets 4x (see docs)
    file_bytes: int = 16 * MiB
    processes: int = 64
    open_files: int = 256
    wall_seconds: float = 20.0
    total_wall_seconds: float = 60.0
    tmpfs_bytes: int = 64 * MiB        # each of /tmp, /work (plus the skill), HOME, /dev/shm
    output_bytes: int = 64 * KiB       # the tail of stdout and of stderr kept per test


@dataclass(frozen=True)
class TestCase:
    """One declared test: a shell command, or one case of a code template."""

    __test__ = False  # not a pytest class

    name: str
    kind: str                      # "command" | "template"
    source: str                    # the file that declares it
    command: str = ""              # kind "command": run with /bin/sh -c in the work dir
    template: str = ""             # kind "template": the template's path in the bundle
    entrypoint: str = "main"
    args: Mapping[str, Any] = field(default_factory=dict)
    expect_exit: int = 0
    expect_value: Any = None
    has_expect_value: bool = False
    timeout: float | None = None   # as declared; capped at SandboxLimits.wall_seconds

    @property
    def expected(self) -> Any:
        """The expected exit code (command) or returned value (template, None if any)."""
        return self.expect_exit if self.kind == "command" else self.expect_value


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

    def to_dict(self) -> dict[str, Any]:
        return {"isolation": self.isolation, "isolation_note": self.isolation_note,
                "duration_ms": round(self.duration_ms, 1),
                "cases": [case.to_dict() for case in self.cases],
                "findings": [finding.to_dict() for finding in self.findings]}


def _finding(rule: str, severity: Severity, message: str, hint: str, *,
             file: str | None = None, excerpt: str = "") -> Finding:
    return Finding(rule=rule, family="sandbox", severity=severity, source="sandbox",
                   message=message, hint=hint, file=file, excerpt=escape_invisible(excerpt))


def _spec_problem(file: str, message: str, hint: str) -> Finding:
    return _finding("sandbox.bad-test-spec", Severity.MEDIUM, message, hint, file=file)


# --- discovery ---------------------------------------------------------------------------


def discover_tests(bundle: Bundle) -> tuple[list[TestCase], list[Finding]]:
    """The tests a bundle declares, and a finding for every problem with the declarations."""
    problems: list[Finding] = []
    cases = _command_tests(bundle, problems) + _template_tests(bundle, problems)
    if len(cases) > MAX_TESTS:
        problems.append(_spec_problem(
            cases[MAX_TESTS].source, f"the skill declares {len(cases)} tests; only the first "
            f"{MAX_TESTS} run", f"Keep at most {MAX_TESTS} tests and template cases."))
        cases = cases[:MAX_TESTS]
    return _unique_names(cases), problems


def _unique_names(cases: list[TestCase]) -> list[TestCase]:
    seen: dict[str, int] = {}
    unique = []
    for case in cases:
        count = seen[case.name] = seen.get(case.name, 0) + 1
        unique.append(case if count == 1 else replace(case, name=f"{case.name} ({count})"))
    return unique


def _command_tests(bundle: Bundle, problems: list[Finding]) -> list[TestCase]:
    present = [path for path in SPEC_FILES if path in bundle.files]
    if len(present) > 1:
        problems.append(_spec_problem(present[1], f"both {present[0]} and {present[1]} exist; "
                                      f"only {present[0]} is used", f"Delete {present[1]}."))
    if present:
        return _yaml_tests(present[0], bundle.files[present[0]], problems)
    return _convention_tests(bundle)


def _convention_tests(bundle: Bundle) -> list[TestCase]:
    """tests/test_*.py run with python3, tests/test_*.sh with bash, expecting exit 0."""
    paths = sorted(p for p in bundle.files if re.fullmatch(r"tests/test_[^/]*\.(py|sh)", p))
    runner = {".py": "python3", ".sh": "bash"}
    return [TestCase(name=path, kind="command", source=path,
                     command=f"{runner[path[-3:]]} {shlex.quote(path)}") for path in paths]


class _SpecLoader(yaml.SafeLoader):
    """The safe loader, refusing `*alias` references (no expansion bombs)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed",
                                              self.peek_event().start_mark)
        return super().compose_node(parent, index)


_YAML_SHAPE_HINT = ('Write:\ntests:\n  - name: prints help\n    run: "python3 scripts/tool.py '
                    '--help"\n    exit: 0\n    timeout: 10')


def _yaml_tests(path: str, data: bytes, problems: list[Finding]) -> list[TestCase]:
    """Tests from tests/tests.yaml; invalid entries are reported and skipped."""
    try:
        document = yaml.load(data.decode("utf-8"), Loader=_SpecLoader)  # a SafeLoader
    except UnicodeDecodeError:
        problems.append(_spec_problem(path, f"{path} is not UTF-8", "Save it as UTF-8."))
        return []
    except yaml.YAMLError as exc:
        problems.append(_spec_problem(path, f"{path} is not valid YAML: {_yaml_error(exc)}",
                                      _YAML_SHAPE_HINT))
        return []
    if not isinstance(document, dict) or not isinstance(document.get("tests"), list):
        problems.append(_spec_problem(path, f"{path} must be a mapping with a 'tests' list",
                                      _YAML_SHAPE_HINT))
        return []
    for key in sorted(set(map(str, document)) - {"tests"}):
        problems.append(_spec_problem(path, f"{path}: unknown top-level key '{key}'",
                                      "Only 'tests' is read; remove the key."))
    if not document["tests"]:
        problems.append(_spec_problem(path, f"{path} declares no tests",
                                      "Add tests or delete the file."))
    entries = [_yaml_test(path, index, entry, problems)
               for index, entry in enumerate(document["tests"], start=1)]
    return [case for case in entries if case is not None]


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} (line {mark.line + 1})" if mark is not None else str(problem)


def _yaml_test(path: str, index: int, entry: Any,
               problems: list[Finding]) -> TestCase | None:
    """One entry of tests.yaml, or None after reporting why it cannot run."""
    where = f"{path}: test {index}"
    if not isinstance(entry, dict):
        problems.append(_spec_problem(path, f"{where} is not a mapping", _YAML_SHAPE_HINT))
        return None
    before = len(problems)
    for key in sorted(set(map(str, entry)) - {"name", "run", "exit", "timeout"}):
        problems.append(_spec_problem(path, f"{where}: unknown key '{key}'",
                                      "Allowed keys: name, run, exit, timeout."))
    name = entry.get("name", f"test {index}")
    if not isinstance(name, str) or not name.strip():
        problems.append(_spec_problem(path, f"{where}: 'name' must be text",
                                      'Quote it: name: "my test".'))
    run = entry.get("run")
    if run is None or run == "":
        problems.append(_spec_problem(path, f"{where} has no 'run' command",
                                      'Add run: "python3 scripts/tool.py --help".'))
    elif not isinstance(run, str):
        problems.append(_spec_problem(path, f"{where}: 'run' must be a shell command, but YAML "
                                      f"read {type(run).__name__} {run!r}",
                                      "Quote the command: run: \"true\"."))
    expect_exit = entry.get("exit", 0)
    if isinstance(expect_exit, bool) or not isinstance(expect_exit, int) \
            or not 0 <= expect_exit <= 255:
        problems.append(_spec_problem(path, f"{where}: 'exit' must be a number from 0 to 255",
                                      "Write the exit code the command should end with."))
    timeout = _timeout(entry.get("timeout"), where, path, problems)
    if len(problems) > before:
        return None
    return TestCase(name=name.strip(), kind="command", source=path, command=str(run),
                    expect_exit=expect_exit, timeout=timeout)


def _timeout(value: Any, where: str, path: str, problems: list[Finding]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        problems.append(_spec_problem(path, f"{where}: 'timeout' must be a positive number of "
                                      "seconds", "Write e.g. timeout: 10."))
        return None
    return float(value)


def _template_tests(bundle: Bundle, problems: list[Finding]) -> list[TestCase]:
    """Cases of a code template declared in SKILL.md (top level or under metadata)."""
    try:
        manifest = parse_manifest(bundle.skill_md(), dirname=None)
    except InvalidSkill:
        return []  # the spec check reports a broken SKILL.md
    settings = {key: manifest.frontmatter.get(key, manifest.metadata.get(key))
                for key in ("code_template", "test_parameters", "entrypoint")}
    template, parameters = settings["code_template"], settings["test_parameters"]
    if template is None:
        if parameters is not None:
            problems.append(_spec_problem("SKILL.md", "test_parameters is set but code_template "
                                          "is not", "Add code_template: path/to/template.py."))
        return []
    path = _template_path(template, bundle, problems)
    entrypoint = _entrypoint(settings["entrypoint"], problems)
    if path is None or entrypoint is None or parameters is None:
        return []
    loaded = _load_parameters(parameters, bundle, problems)
    if loaded is None:
        return []
    source, raw_cases = loaded
    cases = [_template_case(path, entrypoint, source, index, raw, problems)
             for index, raw in enumerate(raw_cases, start=1)]
    return [case for case in cases if case is not None]


def _template_path(value: Any, bundle: Bundle, problems: list[Finding]) -> str | None:
    if not isinstance(value, str) or value.strip() not in bundle.files \
            or not value.strip().endswith(".py"):
        problems.append(_spec_problem("SKILL.md", f"code_template {value!r} is not a .py file "
                                      "in the skill", "Point code_template at the template's "
                                      "path from the skill root, e.g. templates/main.py."))
        return None
    try:
        bundle.files[value.strip()].decode("utf-8")
    except UnicodeDecodeError:
        problems.append(_spec_problem(value, "the code template is not UTF-8",
                                      "Save it as UTF-8."))
        return None
    return value.strip()


def _entrypoint(value: Any, problems: list[Finding]) -> str | None:
    if value is None:
        return "main"
    if isinstance(value, str) and value.isidentifier() and not value.startswith("_"):
        return value
    problems.append(_spec_problem("SKILL.md", f"entrypoint {value!r} is not a function name",
                                  "Name the template's function, e.g. entrypoint: main."))
    return None


def _load_parameters(value: Any, bundle: Bundle,
                     problems: list[Finding]) -> tuple[str, list[Any]] | None:
    """(declaring file, raw cases) from inline JSON, a JSON file, or a YAML list."""
    source, data = "SKILL.md", value
    if isinstance(value, str):
        text = value.strip()
        if text[:1] not in ("[", "{"):
            source = text
            if text not in bundle.files:
                problems.append(_spec_problem("SKILL.md", f"test_parameters names {text!r}, "
                                              "which is not in the skill", "Give the JSON "
                                              "file's path from the skill root, or inline JSON."))
                return None
            text = bundle.files[text].decode("utf-8", errors="replace")
        try:
            data = json.loads(text)
        except ValueError as exc:
            problems.append(_spec_problem(source, f"test_parameters is not valid JSON: {exc}",
                                          'Write a JSON list: [{"args": {"x": 1}, '
                                          '"expect": 2}].'))
            return None
    if not isinstance(data, list):
        problems.append(_spec_problem(source, "test_parameters must be a list of cases",
                                      'Write [{"args": {...}, "expect": ...}, ...].'))
        return None
    return source, data


def _template_case(template: str, entrypoint: str, source: str, index: int, raw: Any,
                   problems: list[Finding]) -> TestCase | None:
    where = f"test_parameters case {index}"
    if not isinstance(raw, dict):
        problems.append(_spec_problem(source, f"{where} is not a mapping",
                                      'Write {"args": {...}, "expect": ...}.'))
        return None
    before = len(problems)
    for key in sorted(set(map(str, raw)) - {"name", "args", "expect", "timeout"}):
        problems.append(_spec_problem(source, f"{where}: unknown key '{key}'",
                                      "Allowed keys: name, args, expect, timeout."))
    args = raw.get("args", {})
    if not isinstance(args, dict) or not all(isinstance(k, str) and k.isidentifier()
                                             for k in args):
        problems.append(_spec_problem(source, f"{where}: 'args' must map argument names to "
                                      "values", 'Write "args": {"text": "hello"}.'))
    elif not _is_json(args) or not _is_json(raw.get("expect")):
        problems.append(_spec_problem(source, f"{where}: 'args' and 'expect' must be JSON "
                                      "values", "Use strings, numbers, booleans, null, lists "
                                      "and objects."))
    name = raw.get("name", f"{template} case {index}")
    if not isinstance(name, str):
        problems.append(_spec_problem(source, f"{where}: 'name' must be text", "Quote it."))
    timeout = _timeout(raw.get("timeout"), where, source, problems)
    if len(problems) > before:
        return None
    return TestCase(name=name, kind="template", source=source, template=template,
                    entrypoint=entrypoint, args=args, expect_value=raw.get("expect"),
                    has_expect_value="expect" in raw, timeout=timeout)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


# --- which isolation ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Identity:
    """Who the sandboxed processes run as on the host; drop = the server is root."""

    uid: int
    gid: int
    drop: bool

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.drop:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


@functools.cache
def _identity() -> _Identity:
    if os.geteuid() != 0:
        return _Identity(os.getuid(), os.getgid(), drop=False)
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return _Identity(65534, 65534, drop=True)
    return _Identity(nobody.pw_uid, nobody.pw_gid, drop=True)


@dataclass(frozen=True)
class _BwrapStatus:
    path: str | None
    version: str
    problem: str  # empty when usable


def sandbox_available() -> str:
    """The isolation run_tests(isolation="auto") uses here: "bubblewrap" or "rlimits"."""
    return "rlimits" if _bubblewrap().problem else "bubblewrap"


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


def _choose(isolation: str) -> tuple[str, str]:
    """("bubblewrap" | "rlimits", why) for the requested isolation."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}")
    if isolation == "rlimits":
        return "rlimits", "isolation='rlimits' was requested"
    status = _bubblewrap()
    if not status.problem:
        return "bubblewrap", status.version
    if isolation == "bubblewrap":
        raise SandboxUnavailable(f"bubblewrap cannot be used: {status.problem}. Install it "
                                 "(apt-get install bubblewrap) and allow unprivileged user "
                                 "namespaces.")
    _warn_degraded(status.problem)
    return "rlimits", status.problem


@functools.cache
def _warn_degraded(reason: str) -> None:
    log.warning("skill tests run WITHOUT bubblewrap (%s): rlimits, a throwaway HOME and an "
                "unprivileged uid only; no network or filesystem isolation", reason)


# --- running -----------------------------------------------------------------------------


def run_tests(bundle: Bundle, limits: SandboxLimits = SandboxLimits(), *,
              isolation: str = "auto") -> SandboxReport:
    """Run the bundle's tests, one sandbox per test (per template), and report findings.

    Raises:
        SandboxUnavailable: isolation="bubblewrap" and bubblewrap cannot run here.
    """
    started = time.monotonic()
    cases, findings = discover_tests(bundle)
    if not cases or isolation == "off":
        note = "the skill declares no tests" if not cases else "sandboxed tests are turned off"
        return SandboxReport("skipped", note, (), tuple(findings), _ms_since(started))
    mode, reason = _choose(isolation)
    runner = _Runner(bundle, limits, started)
    note = runner.run_all(_plan(cases), mode, reason, strict=isolation == "bubblewrap")
    findings.extend(runner.findings)
    if mode == "rlimits":
        findings.append(_finding(
            "sandbox.degraded", Severity.MEDIUM,
            f"the tests ran without bubblewrap: {note}",
            "Install bubblewrap (apt-get install bubblewrap) and allow unprivileged user "
            "namespaces on the server; until then tests are only weakly isolated."))
    return SandboxReport(mode, note, tuple(runner.results), tuple(dict.fromkeys(findings)),
                         _ms_since(started))


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _plan(cases: list[TestCase]) -> list[tuple[TestCase, ...]]:
    """Runs in order: each command test alone, the cases of one template together."""
    runs: list[tuple[TestCase, ...]] = []
    for case in cases:
        if case.kind == "template" and runs and runs[-1][0].template == case.template:
            runs[-1] = (*runs[-1], case)
        else:
            runs.append((case,))
    return runs


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


class _StartError(RuntimeError):
    """bwrap failed before any test code ran."""


class _Runner:
    """Runs the planned tests of one bundle in order, within the total time budget."""

    def __init__(self, bundle: Bundle, limits: SandboxLimits, started: float) -> None:
        self.bundle, self.limits = bundle, limits
        self.deadline = started + limits.total_wall_seconds
        self.results: list[CaseResult] = []
        self.findings: list[Finding] = []

    def run_all(self, runs: list[tuple[TestCase, ...]], mode: str, reason: str, *,
                strict: bool) -> str:
        """Run everything; return the note on the isolation used."""
        with _Workspace(self.bundle, _identity()) as workspace:
            sandbox = _make_sandbox(mode, workspace, self.limits)
            for index, run in enumerate(runs):
                if self.deadline <= time.monotonic():
                    self._not_run([case for later in runs[index:] for case in later])
                    break
                outcome = self._attempt(sandbox, run, strict=strict)
                if outcome is not None:
                    self._record(run, outcome)
            return sandbox.note(reason)

    def _attempt(self, sandbox: _Sandbox, run: tuple[TestCase, ...], *,
                 strict: bool) -> _Outcome | None:
        """Run once, again if bwrap failed to start; then give up on this run.

        The probe found bwrap working, so a failure now is transient (e.g. the sandbox
        user's process limit, shared with a concurrent run). Falling back to the weaker
        sandbox here would let one run weaken another's isolation: fail closed instead.
        """
        for _ in range(2):
            try:
                return self._execute(sandbox, run, self.deadline - time.monotonic())
            except _StartError as exc:
                if strict:
                    raise SandboxUnavailable(str(exc)) from exc
                error = str(exc)
                log.warning("%s; retrying once", error)
                time.sleep(0.1)
        self._not_started(run, error)
        return None

    def _execute(self, sandbox: _Sandbox, run: tuple[TestCase, ...], remaining: float) -> _Outcome:
        wanted = sum(self._timeout(case) for case in run)
        if run[0].kind == "template":
            wanted += 2.0  # interpreter start and compiling the template
            python = _sandbox_python()
            if python is None:
                return _Outcome(None, False, b"", b"no python3 under /usr", 0.0)
            job = _Job(kind="template", spec=self._spec(run), python=python)
        else:
            job = _Job(kind="command", command=run[0].command)
        wall = min(wanted, remaining)
        outcome = sandbox.run(job, wall)
        outcome.wall, outcome.cut_by_budget = wall, wall < wanted
        return outcome

    def _timeout(self, case: TestCase) -> float:
        return min(case.timeout or self.limits.wall_seconds, self.limits.wall_seconds)

    def _spec(self, run: tuple[TestCase, ...]) -> dict[str, Any]:
        first = run[0]
        return {"source": self.bundle.files[first.template].decode("utf-8"),
                "filename": first.template, "entrypoint": first.entrypoint,
                "output_bytes": min(self.limits.output_bytes, 4 * KiB),
                "modules": list(ALLOWED_TEMPLATE_MODULES),
                "cases": [{"name": case.name, "args": dict(case.args),
                           "timeout": self._timeout(case)} for case in run]}

    def _record(self, run: tuple[TestCase, ...], outcome: _Outcome) -> None:
        problems: list[Finding] = []
        if run[0].kind == "command":
            results = [_command_result(run[0], outcome)]
        else:
            results, problems = _template_results(run, outcome)
            self.findings.extend(problems)
        self.results.extend(results)
        self.findings.extend(_security_findings(run, outcome))
        if run[0].kind == "template" and problems:
            return  # the whole template failed; one finding says why
        for case, result in zip(run, results, strict=True):
            timeout = self._timeout(case) if case.kind == "template" else outcome.wall
            self.findings.extend(_result_findings(case, result, outcome, timeout, self.limits))

    def _not_started(self, run: tuple[TestCase, ...], error: str) -> None:
        for case in run:
            self.results.append(CaseResult(case.name, case.kind, False, None, case.expected,
                                           False, 0.0, error=f"not run: {error}"))
        self.findings.append(_finding(
            "sandbox.degraded", Severity.MEDIUM, f"test '{run[0].name}' did not run: {error}",
            "A server problem, not the skill's: check that bwrap works for the sandbox user; "
            "publish again to rerun the tests.", file=run[0].source))

    def _not_run(self, cases: list[TestCase]) -> None:
        budget = self.limits.total_wall_seconds
        for case in cases:
            self.results.append(CaseResult(case.name, case.kind, False, None, case.expected,
                                           False, 0.0, error=f"not run: the {budget:g} s "
                                           "budget for all tests was used up"))
        names = ", ".join(f"'{case.name}'" for case in cases[:5])
        self.findings.append(_finding(
            "sandbox.timeout", Severity.HIGH,
            f"{len(cases)} test(s) did not run ({names}) because all tests together may take "
            f"{budget:g} s", "Make the tests faster or fewer; every declared test must run "
            "for the skill to pass.", file=cases[0].source))


# --- results and findings ----------------------------------------------------------------


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _command_result(case: TestCase, outcome: _Outcome) -> CaseResult:
    passed = not outcome.timed_out and outcome.exit_code == case.expect_exit
    stderr = _text(outcome.stderr)
    limit = None if passed or outcome.timed_out else _limit_hit(outcome.exit_code, stderr)
    return CaseResult(case.name, "command", passed, outcome.exit_code, case.expect_exit,
                      outcome.timed_out, round(outcome.duration_ms, 1), _text(outcome.stdout),
                      stderr, outcome.network_attempts, outcome.decoy_reads, limit=limit)


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
    return {"cpu": f"the CPU time limit ({limits.cpu_seconds} s)",
            "memory": f"the memory limit ({limits.memory_bytes // MiB} MiB)",
            "file size": f"the file size limit ({limits.file_bytes // MiB} MiB)",
            "processes": f"the process limit ({limits.processes})",
            "open files": f"the open files limit ({limits.open_files})",
            "cpu or memory": f"the CPU or memory limit ({limits.cpu_seconds} s, "
                             f"{limits.memory_bytes // MiB} MiB)"}.get(limit, limit)


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
        return replace(result, timed_out=outcome.timed_out)
    status = line.get("status")
    value = line.get("value")
    passed = status == "ok" and (not case.has_expect_value or _json_equal(value,
                                                                          case.expect_value))
    error = "" if status == "ok" else str(line.get("error", status))
    limit = None
    if status == "signal":
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


def _trim(text: str, limit: int = 300) -> str:
    """The last lines of some output, on one line, for a message."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return escape_invisible(" | ".join(lines[-3:])[-limit:], limit)


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
    if result.timed_out:
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


# --- the host side of a run: workspace and support files ---------------------------------


class _Workspace:
    """A private temporary directory for one run_tests call; removed on exit, always.

    It stays owned by the server (mode 0711: the sandbox user can reach known paths but not
    list or change them). Root never writes into a directory the sandbox user owns: a
    subtree is handed over (give) only once it is complete.
    """

    def __init__(self, bundle: Bundle, identity: _Identity) -> None:
        self.bundle, self.identity = bundle, identity
        self.root = Path(tempfile.mkdtemp(prefix="skills-hub-sandbox-run-",
                                          dir=_workspace_root(identity)))
        self._count = 0

    def __enter__(self) -> _Workspace:
        try:
            self.root.chmod(0o711)
            _write_bundle(self.bundle, self.skill)
        except BaseException:
            _remove_tree(self.root)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        _remove_tree(self.root)

    @property
    def skill(self) -> Path:
        return self.root / "skill"

    def new_dir(self, name: str) -> Path:
        """A fresh directory the sandbox user can pass through."""
        self._count += 1
        path = self.root / f"{name}-{self._count}"
        path.mkdir()
        path.chmod(0o711)
        return path

    def decoys(self, home: Path) -> dict[str, Path]:
        """Write the decoy credential files under home; {"~/.ssh/id_rsa": path}.

        The files belong to the sandbox user (0600, like real keys); folders are 0711.
        """
        placed = {}
        for relative, data in _decoy_contents().items():
            path = home / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o600)
            if self.identity.drop:
                os.lchown(path, self.identity.uid, self.identity.gid)
            placed[f"~/{relative}"] = path
        for folder, _, _ in os.walk(home):
            os.chmod(folder, 0o711)
        return placed

    def write_spec(self, spec: Mapping[str, Any]) -> Path:
        self._count += 1
        path = self.root / f"spec-{self._count}.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        path.chmod(0o644)
        return path

    def give(self, tree: Path) -> None:
        """Hand a finished tree to the sandbox user: its folders 0700, writable by it."""
        for folder, dirs, files in os.walk(tree):
            os.chmod(folder, 0o700)
            if self.identity.drop:
                for name in (*dirs, *files):
                    os.lchown(os.path.join(folder, name), self.identity.uid, self.identity.gid)
        if self.identity.drop:
            os.lchown(tree, self.identity.uid, self.identity.gid)


def _workspace_root(identity: _Identity) -> str:
    """Where run directories go (a seam for tests)."""
    return _scratch_root(identity)


def _scratch_root(identity: _Identity) -> str:
    """The temp dir, if the sandbox user can reach it; /tmp otherwise."""
    base = tempfile.gettempdir()
    if not identity.drop:
        return base
    path = Path(base).resolve()
    reachable = all(os.stat(p).st_mode & 0o001 for p in (path, *path.parents))
    return base if reachable else "/tmp"


def _write_bundle(bundle: Bundle, dest: Path) -> None:
    """The skill's files with plain modes: 0755 folders, 0644 files, 0755 executables."""
    dest.mkdir(mode=0o755)
    dest.chmod(0o755)
    for relative, data in bundle.files.items():
        path = dest / relative
        if not path.resolve().is_relative_to(dest.resolve()):
            raise ValueError(f"unsafe path in bundle: {relative!r}")
        for parent in reversed(Path(relative).parents[:-1]):
            folder = dest / parent
            if not folder.exists():
                folder.mkdir()
                folder.chmod(0o755)
        path.write_bytes(data)
        path.chmod(0o755 if relative in bundle.executables else 0o644)


def _remove_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError:  # a test (rlimits mode, non-root server) left read-only folders
        for folder, dirs, _ in os.walk(path):
            for name in dirs:
                target = os.path.join(folder, name)
                if not os.path.islink(target):
                    os.chmod(target, 0o700)
        shutil.rmtree(path, ignore_errors=True)


def _decoy_contents() -> dict[str, bytes]:
    """Fresh fake credentials, plausible enough to be worth stealing."""
    def b64(count: int) -> str:
        return base64.b64encode(os.urandom(count)).decode()

    def pem(count: int) -> bytes:
        body = b64(count)
        lines = "\n".join(body[i:i + 70] for i in range(0, len(body), 70))
        return (f"-----BEGIN OPENSSH PRIVATE KEY-----\n{lines}\n"
                "-----END OPENSSH PRIVATE KEY-----\n").encode()

    token = os.urandom(20).hex()
    key_id = "AKIA" + "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[b % 32] for b in os.urandom(16))
    sqlite = b"SQLite format 3\x00" + os.urandom(4080)
    text = {
        ".aws/credentials": f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key"
                            f" = {b64(30)}\nregion = us-east-1\n",
        ".config/gcloud/application_default_credentials.json": json.dumps({
            "client_id": f"{token[:12]}.apps.googleusercontent.com", "client_secret": b64(18),
            "refresh_token": f"1//{b64(60)}", "type": "authorized_user"}),
        ".netrc": f"machine github.com\n  login user\n  password ghp_{token}\n",
        ".docker/config.json": json.dumps({"auths": {"https://index.docker.io/v1/": {
            "auth": b64(24)}}}),
        ".kube/config": f"apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: "
                        f"https://10.0.12.4:6443\n  name: prod\nusers:\n- name: admin\n  user:"
                        f"\n    token: {b64(48)}\n",
        ".env": f"OPENAI_API_KEY=sk-proj-{b64(36)}\nDATABASE_URL=postgres://app:{token[:16]}"
                "@db.internal:5432/app\n",
        ".git-credentials": f"https://user:ghp_{token}@github.com\n",
        ".config/gh/hosts.yml": f"github.com:\n    oauth_token: gho_{token}\n    user: user\n",
        ".pypirc": f"[pypi]\nusername = __token__\npassword = pypi-{b64(48)}\n",
        ".mozilla/firefox/q8m3x2ka.default-release/logins.json": json.dumps({"logins": [{
            "hostname": "https://accounts.example.com", "encryptedUsername": b64(40),
            "encryptedPassword": b64(40)}]}),
    }
    binary = {".ssh/id_rsa": pem(1800), ".ssh/id_ed25519": pem(300),
              ".config/gcloud/credentials.db": sqlite,
              ".config/google-chrome/Default/Login Data": sqlite,
              ".config/google-chrome/Default/Cookies": sqlite,
              ".bitcoin/wallet.dat": b"\x00\x00\x00\x00\x01\x00\x00\x00" + os.urandom(8184)}
    contents = {path: data.encode() for path, data in text.items()} | binary
    return {path: contents[path] for path in DECOY_FILES}


_support_lock = threading.Lock()


@functools.cache
def _sandbox_python() -> str | None:
    """A python3 under /usr that the sandbox user can run (not the server's own venv)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        real = os.path.realpath(candidate)
        if real.startswith("/usr/") and os.path.isfile(real) \
                and os.stat(real).st_mode & 0o001:
            return candidate
    return None


def _support_dir() -> Path:
    """World-readable files every sandbox binds: the template runner and a minimal /etc.

    Content-addressed under the temp dir, built once per content and reused; checked to be
    ours and not writable by others before use.
    """
    with _support_lock:
        return _build_support_dir()


@functools.cache
def _build_support_dir() -> Path:
    files = _support_files()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + (files[name] or b"<dir>") + b"\0")
    digest.update(str(_sandbox_python()).encode())
    base = Path(_scratch_root(_identity()))
    final = base / f"skills-hub-sandbox-support-{os.geteuid()}-{digest.hexdigest()[:16]}"
    if _trusted(final):
        return final
    staging = Path(tempfile.mkdtemp(prefix=".skills-hub-sandbox-support-", dir=base))
    for name, data in sorted(files.items()):
        path = staging / name
        if data is None:
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
            path.chmod(0o755)
            continue
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)
    _precompile(staging / "lib")
    for folder, _, _ in os.walk(staging):
        os.chmod(folder, 0o755)
    try:
        staging.rename(final)
    except OSError:  # another process won the race, or an untrusted directory is in the way
        if _trusted(final):
            _remove_tree(staging)
            return final
        atexit.register(_remove_tree, staging)
        return staging
    return final


def _trusted(path: Path) -> bool:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    return (path.is_dir() and not path.is_symlink() and info.st_uid == os.geteuid()
            and not info.st_mode & 0o022)


def _support_files() -> dict[str, bytes | None]:
    """Relative path -> bytes (None for a folder)."""
    here = Path(__file__).with_name("_sandbox_runner.py")
    files: dict[str, bytes | None] = {"lib/_sandbox_runner.py": here.read_bytes()}
    spec = importlib.util.find_spec("RestrictedPython")
    if spec is not None and spec.submodule_search_locations:
        package = Path(list(spec.submodule_search_locations)[0])
        for source in sorted(package.glob("*.py")):
            files[f"lib/RestrictedPython/{source.name}"] = source.read_bytes()
    files.update(_etc_files())
    return files


def _etc_files() -> dict[str, bytes | None]:
    uid = gid = SANDBOX_UID
    etc: dict[str, bytes | None] = {
        "etc/passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n{SANDBOX_USER}:x:{uid}:{gid}:"
                      f"{SANDBOX_USER}:{SANDBOX_HOME}:/bin/sh\nnobody:x:65534:65534:nobody:"
                      "/nonexistent:/usr/sbin/nologin\n".encode(),
        "etc/group": f"root:x:0:\n{SANDBOX_USER}:x:{gid}:\nnogroup:x:65534:\n".encode(),
        "etc/hosts": b"127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost ip6-loopback\n",
        # TEST-NET-1: unroutable, so every DNS lookup becomes a counted network attempt.
        "etc/resolv.conf": b"nameserver 192.0.2.1\noptions timeout:1 attempts:1\n",
        "etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files dns\n"
                             b"services: files\nprotocols: files\n",
        "etc/hostname": b"sandbox\n",
    }
    for name in _HOST_ETC:  # placeholders to bind the host's files over
        etc[f"etc/{name}"] = None if os.path.isdir(f"/etc/{name}") else b""
    return etc


def _precompile(lib: Path) -> None:
    """Byte-compile the runner's libraries for the sandbox's python (read-only inside)."""
    python = _sandbox_python()
    if python is None:
        return
    try:
        subprocess.run([python, "-E", "-s", "-m", "compileall", "-q", str(lib)], check=False,
                       capture_output=True, timeout=120, env=_HOST_ENV)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("could not precompile the sandbox runner: %s", exc)


# --- the sandboxes -----------------------------------------------------------------------


_HOST_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


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

    def run(self, job: _Job, wall: float) -> _Outcome:
        raise NotImplementedError

    def note(self, reason: str) -> str:
        raise NotImplementedError

    def _output_cap(self, job: _Job) -> int:
        return 16 * MiB if job.kind == "template" else self.limits.output_bytes


def _make_sandbox(mode: str, workspace: _Workspace, limits: SandboxLimits) -> _Sandbox:
    return _Bubblewrap(workspace, limits) if mode == "bubblewrap" else _RlimitsOnly(workspace,
                                                                                  limits)


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
                 "no seccomp filter (unknown architecture)", "rlimits"]
        if not _inotify_available():
            parts.append("decoy reads cannot be detected (no inotify)")
        return ", ".join(parts)

    def run(self, job: _Job, wall: float) -> _Outcome:
        with _Fds() as fds, _DecoyWatch(self.decoys) as watch:
            info_r, info_w = fds.pipe()
            block_r, block_w = fds.pipe()
            extra = ["--info-fd", str(info_w), "--block-fd", str(block_r), *_seccomp_args(fds)]
            inherited = _fd_numbers(extra)
            argv = self._argv(job, extra)
            started = time.monotonic()
            try:
                process = _spawn(argv, "/", _HOST_ENV, inherited, self.limits)
            except (OSError, subprocess.SubprocessError) as exc:
                raise _StartError(f"bwrap cannot be started: {exc}") from exc
            for fd in inherited:
                fds.close(fd)
            with _reaped(process):
                outcome = self._supervise(process, fds, info_r, block_w, started, wall, job)
            outcome.decoy_reads = watch.opened()
            return outcome

    def _supervise(self, process: subprocess.Popen[bytes], fds: _Fds, info_r: int,
                   block_w: int, started: float, wall: float, job: _Job) -> _Outcome:
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
            outcome = _collect(process, started, wall, self._output_cap(job))
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


class _RlimitsOnly(_Sandbox):
    """The fallback: rlimits, the uid drop, a throwaway HOME and work dir, an empty env."""

    name = "rlimits"

    def note(self, reason: str) -> str:
        identity = _identity()
        have = ["rlimits", f"host uid {identity.uid}" + (" (dropped from root)"
                                                          if identity.drop else ""),
                "a throwaway HOME with decoys and work dir", "an empty environment"]
        missing = ["network isolation: network attempts cannot be detected"
                   + (", IP sockets are refused by seccomp instead (tests that use loopback "
                      "fail)" if _fallback_seccomp() else ", and are not blocked"),
                   "filesystem isolation: the host's world-readable files are visible",
                   "a pid namespace: a process that calls setsid can outlive its test"]
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
        with _DecoyWatch(decoys) as watch:
            started = time.monotonic()
            process = _spawn(argv, str(work), _sandbox_env(str(home), str(tmp)), (),
                             self.limits, seccomp=_fallback_seccomp())
            with _reaped(process):
                outcome = _collect(process, started, wall, self._output_cap(job))
            outcome.decoy_reads = watch.opened()
        _remove_tree(base)
        return outcome


# --- processes: start, limit, collect, kill ----------------------------------------------


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


def _rlimits(limits: SandboxLimits, identity: _Identity) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) to set in the child, never above the current hard limits."""
    # RLIMIT_NPROC counts every process of the uid; a non-root server shares its own.
    processes = limits.processes + (0 if identity.drop else _tasks_of(identity.uid))
    memory = limits.memory_bytes
    wanted = [(resource.RLIMIT_CORE, 0, 0),
              (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
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


def _spawn(argv: list[str], cwd: str, env: dict[str, str], fds: tuple[int, ...],
           limits: SandboxLimits, *, seccomp: _Seccomp | None = None) -> subprocess.Popen[bytes]:
    """Start argv as the sandbox user in a new session, with the rlimits (and seccomp)."""
    identity = _identity()
    rlimits = _rlimits(limits, identity)

    def in_child() -> None:  # runs after fork, after the uid drop, before exec
        for which, soft, hard in rlimits:
            resource.setrlimit(which, (soft, hard))
        if seccomp is not None:
            seccomp.install()

    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd, env=env, pass_fds=fds,
                            start_new_session=True, umask=0o022, preexec_fn=in_child,
                            **identity.popen_kwargs())


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
             cap: int) -> _Outcome:
    """Read output until the process ends or the wall clock runs out; then kill its group."""
    assert process.stdout is not None and process.stderr is not None
    streams = {process.stdout.fileno(): _Tail(cap), process.stderr.fileno(): _Tail(cap)}
    tails = list(streams.values())
    ended = _pump(streams, process.pid, started + wall)
    duration = (time.monotonic() - started) * 1000
    _kill_group(process.pid)  # leftovers; the leader is not reaped yet, so the group is ours
    _pump(streams, None, time.monotonic() + 1.0)
    code = process.wait()
    exit_code = None if not ended else (128 - code if code < 0 else code)
    return _Outcome(exit_code, not ended, bytes(tails[0].data), bytes(tails[1].data), duration)


def _pump(streams: dict[int, _Tail], pid: int | None, deadline: float) -> bool:
    """Read streams until pid exits (or, without pid, they close); False at the deadline."""
    while True:
        if (pid is not None and _exited(pid)) or (pid is None and not streams):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
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


# --- watching: network counters, decoy files ---------------------------------------------


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


# --- seccomp: which socket families a test may create ------------------------------------


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

