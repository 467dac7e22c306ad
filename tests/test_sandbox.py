"""The sandboxed test run: discovery, isolation, detection of network and credential access."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from skills_hub.checks.findings import Severity
from skills_hub.checks.sandbox import (
    SandboxLimits,
    SandboxReport,
    SandboxUnavailable,
    bubblewrap,
    cgroup,
    discover_tests,
    identity,
    process,
    run_tests,
    sandbox_available,
    workspace,
)
from skills_hub.skill.bundle import Bundle, from_files

MiB = 1024 * 1024
FAST = SandboxLimits(wall_seconds=10.0, total_wall_seconds=30.0)

needs_bwrap = pytest.mark.skipif(
    sandbox_available() != "bubblewrap",
    reason=f"bubblewrap is not usable here ({bubblewrap._bubblewrap().problem}); CI installs it")
needs_cgroup = pytest.mark.skipif(
    not cgroup.cgroup_support().version,
    reason=f"no writable cgroup here ({cgroup.cgroup_support().problem}); CI runs as root with one")
NO_CGROUP = cgroup.CgroupSupport("", problem="turned off by the test")


@pytest.fixture
def without_cgroup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback: per-process rlimits only, as on a host without a writable cgroup."""
    monkeypatch.setattr(cgroup, "cgroup_support", lambda: NO_CGROUP)


def make_bundle(*files: tuple[str, str | bytes], frontmatter: str = "",
                executables: tuple[str, ...] = ()) -> Bundle:
    skill_md = ("---\nname: demo\ndescription: A demo skill used by the sandbox tests.\n"
                f"{frontmatter}---\n# Demo\n")
    items = [("SKILL.md", skill_md.encode(), False)]
    for path, data in files:
        raw = data.encode() if isinstance(data, str) else data
        items.append((path, raw, path in executables))
    return from_files(items)


def with_tests(*tests: dict[str, object], extra: tuple[tuple[str, str], ...] = (),
               executables: tuple[str, ...] = ()) -> Bundle:
    spec = json.dumps({"tests": list(tests)})  # JSON is YAML
    return make_bundle(("tests/tests.yaml", spec), *extra, executables=executables)


def run(bundle: Bundle, limits: SandboxLimits = FAST, isolation: str = "bubblewrap"
        ) -> SandboxReport:
    return run_tests(bundle, limits, isolation=isolation)


def rules(report: SandboxReport) -> list[str]:
    return [finding.rule for finding in report.findings]


def run_one(command: str, limits: SandboxLimits = FAST, isolation: str = "bubblewrap",
            **test: object) -> SandboxReport:
    return run(with_tests({"name": "t", "run": command, **test}), limits, isolation)


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


def leftovers_of(marker: str) -> list[int]:
    """Processes still carrying marker, after giving the kernel a moment to reap them."""
    deadline = time.monotonic() + 2.0
    while (found := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.fixture(autouse=True)
def no_temp_dirs_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test's run directories go to a folder of its own, which must end up empty."""
    folder = Path(tempfile.mkdtemp(prefix="skills-hub-sandbox-test-"))
    folder.chmod(0o711)  # reachable by the sandbox user, like the real temp dir
    monkeypatch.setattr(workspace, "_workspace_root", lambda identity: str(folder))
    try:
        yield
        assert os.listdir(folder) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- discovery ------------------------------------------------------------------------------


def test_no_tests_is_skipped_without_any_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no process may start")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)  # no workspace either
    monkeypatch.setattr(cgroup, "RunCgroup", refuse)  # nor a cgroup
    report = run_tests(make_bundle(("scripts/tool.py", "print(1)\n")))
    assert report.isolation == "skipped"
    assert report.cases == () and report.findings == ()
    assert report.isolation_note == "the skill declares no tests"


def test_off_skips_declared_tests() -> None:
    report = run_tests(with_tests({"run": "true"}), isolation="off")
    assert report.isolation == "skipped" and report.cases == ()


def test_convention_tests_are_found() -> None:
    bundle = make_bundle(("tests/test_a.py", ""), ("tests/test_b.sh", ""),
                         ("tests/helper.py", ""), ("tests/deep/test_c.py", ""))
    cases, problems = discover_tests(bundle)
    assert [(case.name, case.command) for case in cases] == [
        ("tests/test_a.py", "python3 tests/test_a.py"), ("tests/test_b.sh", "bash tests/test_b.sh")]
    assert problems == []


def test_tests_yaml_replaces_the_convention() -> None:
    bundle = make_bundle(("tests/tests.yaml", "tests:\n  - run: python3 scripts/x.py --flag\n"
                                              "    exit: 2\n    timeout: 5\n"),
                         ("tests/test_a.py", ""))
    cases, problems = discover_tests(bundle)
    assert problems == []
    assert [(c.name, c.command, c.expect_exit, c.timeout) for c in cases] == [
        ("test 1", "python3 scripts/x.py --flag", 2, 5.0)]


BAD_SPECS = [
    ("tests:\n  - run: [unclosed\n", "is not valid YAML"),
    ("- run: echo\n", "must be a mapping with a 'tests' list"),
    ("tests: true\n", "must be a mapping with a 'tests' list"),
    ("tests: []\n", "declares no tests"),
    ("tests:\n  - name: no command\n", "has no 'run' command"),
    ("tests:\n  - just a string\n", "is not a mapping"),
    ("tests:\n  - run: true\n", "'run' must be a shell command, but YAML read bool True"),
    ("tests:\n  - run: echo\n    exit: 300\n", "'exit' must be a number from 0 to 255"),
    ("tests:\n  - run: echo\n    exit: yes\n", "'exit' must be a number from 0 to 255"),
    ("tests:\n  - run: echo\n    timeout: -1\n", "'timeout' must be a positive number"),
    ("tests:\n  - run: echo\n    expect: 0\n", "unknown key 'expect'"),
    ("tests:\n  - run: echo\n    name: [a]\n", "'name' must be text"),
    ("tests:\n  - &a {run: echo}\n  - *a\n", "aliases"),
    ("tests:\n  - run: echo\nsetup: make\n", "unknown top-level key 'setup'"),
]


@pytest.mark.parametrize(("text", "message"), BAD_SPECS)
def test_bad_tests_yaml_is_reported(text: str, message: str) -> None:
    cases, problems = discover_tests(make_bundle(("tests/tests.yaml", text)))
    assert [p.rule for p in problems] and {p.rule for p in problems} == {"sandbox.bad-test-spec"}
    assert all(p.severity == Severity.MEDIUM and p.file == "tests/tests.yaml" for p in problems)
    assert any(message in p.message for p in problems), [p.message for p in problems]
    assert all(p.hint for p in problems)
    if "top-level" not in message:  # an entry with a problem does not run
        assert cases == []


def test_a_bad_entry_does_not_stop_the_good_ones() -> None:
    text = "tests:\n  - run: echo\n    exit: -1\n  - name: good\n    run: echo\n"
    cases, problems = discover_tests(make_bundle(("tests/tests.yaml", text)))
    assert [case.name for case in cases] == ["good"]
    assert len(problems) == 1


def test_tests_yaml_that_is_not_utf8() -> None:
    _, problems = discover_tests(make_bundle(("tests/tests.yaml", b"\xff\xfe")))
    assert "not UTF-8" in problems[0].message


TEMPLATE = """
from collections import Counter


def main(words, n=2):
    counts = Counter(words)
    print("counted", len(words))
    return {"top": [word for word, _ in counts.most_common(n)], "total": sum(counts.values())}
"""


def template_bundle(source: str, cases: object, *, where: str = "top",
                    extra: str = "") -> Bundle:
    inline = json.dumps(cases)
    if where == "top":
        frontmatter = f"code_template: tpl/main.py\ntest_parameters: '{inline}'\n{extra}"
        files: tuple[tuple[str, str], ...] = ()
    elif where == "metadata":
        frontmatter = ("metadata:\n  code_template: tpl/main.py\n  test_parameters: "
                       f"tpl/cases.json\n{extra}")
        files = (("tpl/cases.json", inline),)
    else:  # a YAML list in the frontmatter
        frontmatter = f"code_template: tpl/main.py\ntest_parameters: {inline}\n{extra}"
        files = ()
    return make_bundle(("tpl/main.py", source), *files, frontmatter=frontmatter)


@pytest.mark.parametrize("where", ["top", "metadata", "yaml"])
def test_template_cases_are_found(where: str) -> None:
    bundle = template_bundle(TEMPLATE, [{"args": {"words": ["a"]}, "expect": 1},
                                        {"name": "named", "args": {}, "timeout": 2}],
                             where=where)
    cases, problems = discover_tests(bundle)
    assert problems == []
    assert [(c.name, c.kind, c.template, dict(c.args), c.has_expect_value, c.timeout)
            for c in cases] == [
        ("tpl/main.py case 1", "template", "tpl/main.py", {"words": ["a"]}, True, None),
        ("named", "template", "tpl/main.py", {}, False, 2.0)]


BAD_TEMPLATE_SPECS = [
    ("test_parameters: '[]'\n", "test_parameters is set but code_template is not"),
    ("code_template: missing.py\ntest_parameters: '[]'\n", "is not a .py file in the skill"),
    ("code_template: tpl/main.py\ntest_parameters: '[{'\n", "is not valid JSON"),
    ("code_template: tpl/main.py\ntest_parameters: nowhere.json\n", "which is not in the skill"),
    ("code_template: tpl/main.py\ntest_parameters: '{\"args\": {}}'\n", "must be a list"),
    ("code_template: tpl/main.py\ntest_parameters: '[1]'\n", "is not a mapping"),
    ("code_template: tpl/main.py\ntest_parameters: '[{\"args\": [1]}]'\n",
     "'args' must map argument names"),
    ("code_template: tpl/main.py\ntest_parameters: '[{\"arg\": {}}]'\n", "unknown key 'arg'"),
    ("code_template: tpl/main.py\nentrypoint: _hidden\ntest_parameters: '[]'\n",
     "is not a function name"),
]


@pytest.mark.parametrize(("frontmatter", "message"), BAD_TEMPLATE_SPECS)
def test_bad_template_specs_are_reported(frontmatter: str, message: str) -> None:
    bundle = make_bundle(("tpl/main.py", TEMPLATE), frontmatter=frontmatter)
    cases, problems = discover_tests(bundle)
    assert cases == []
    assert {p.rule for p in problems} == {"sandbox.bad-test-spec"}
    assert any(message in p.message for p in problems), [p.message for p in problems]


def test_bad_spec_findings_are_in_the_report_even_without_tests() -> None:
    report = run_tests(make_bundle(("tests/tests.yaml", "tests: []\n")))
    assert report.isolation == "skipped"
    assert rules(report) == ["sandbox.bad-test-spec"]


# --- command tests under bubblewrap ---------------------------------------------------------


@needs_bwrap
def test_passing_test_runs_in_a_writable_copy_of_the_skill() -> None:
    script = "import os, sys\nopen('out.txt', 'w').write('ok')\nprint(os.getcwd(), sys.argv[1])\n"
    bundle = with_tests({"name": "tool", "run": "python3 scripts/tool.py --flag && cat out.txt"},
                        extra=(("scripts/tool.py", script),))
    report = run(bundle)
    assert report.isolation == "bubblewrap"
    assert "bubblewrap" in report.isolation_note
    [case] = report.cases
    assert (case.name, case.passed, case.exit_code, case.timed_out) == ("tool", True, 0, False)
    assert case.stdout == "/work --flag\nok"
    assert report.findings == ()
    json.dumps(report.to_dict())


@needs_bwrap
def test_executables_keep_their_mode() -> None:
    bundle = with_tests({"run": "./scripts/run.sh"},
                        extra=(("scripts/run.sh", "#!/bin/sh\necho ran\n"),),
                        executables=("scripts/run.sh",))
    [case] = run(bundle).cases
    assert case.passed and case.stdout == "ran\n"


@needs_bwrap
def test_convention_tests_run() -> None:
    bundle = make_bundle(("tests/test_ok.py", "assert 1 + 1 == 2\n"),
                         ("tests/test_ok.sh", "test -f SKILL.md\n"))
    report = run(bundle)
    assert [(c.name, c.passed) for c in report.cases] == [
        ("tests/test_ok.py", True), ("tests/test_ok.sh", True)]


@needs_bwrap
def test_failing_exit_code_is_reported_with_stderr() -> None:
    report = run_one("echo 'step one' >&2; echo 'KeyError: x' >&2; exit 3")
    [case] = report.cases
    assert (case.passed, case.exit_code, case.expected) == (False, 3, 0)
    [finding] = report.findings
    assert (finding.rule, finding.severity) == ("sandbox.test-failed", Severity.HIGH)
    assert "exited with 3, expected 0" in finding.message
    assert "KeyError: x" in finding.message
    assert finding.file == "tests/tests.yaml"


@needs_bwrap
def test_expected_nonzero_exit_passes() -> None:
    report = run_one("exit 4", exit=4)
    assert report.cases[0].passed and report.findings == ()


@needs_bwrap
def test_timeout_kills_the_whole_sandbox() -> None:
    report = run_one("sleep 1000.123 & sleep 1000.321", timeout=0.3)
    [case] = report.cases
    assert case.timed_out and not case.passed and case.exit_code is None
    assert rules(report) == ["sandbox.timeout"]
    assert "still running after 0.3 s" in report.findings[0].message
    assert leftovers_of("1000.123") == [] and leftovers_of("1000.321") == []


@needs_bwrap
def test_background_processes_end_with_their_test() -> None:
    report = run_one("(setsid sleep 1000.456 &) ; exit 0")
    assert report.cases[0].passed
    assert leftovers_of("1000.456") == []


@needs_bwrap
def test_total_budget_stops_the_run() -> None:
    limits = SandboxLimits(wall_seconds=5.0, total_wall_seconds=0.4)
    bundle = with_tests({"name": "slow", "run": "sleep 3"}, {"name": "never", "run": "true"})
    report = run(bundle, limits)
    assert [(c.name, c.timed_out) for c in report.cases] == [("slow", True), ("never", False)]
    assert report.cases[1].error.startswith("not run")
    assert rules(report) == ["sandbox.timeout", "sandbox.timeout"]
    assert "budget for all tests ran out" in report.findings[0].message
    assert "did not run ('never')" in report.findings[1].message


@needs_bwrap
def test_output_keeps_only_the_tail() -> None:
    limits = SandboxLimits(output_bytes=1000)
    report = run_one("python3 -c \"print('x' * 100000 + 'END')\"", limits)
    assert len(report.cases[0].stdout) == 1000 and report.cases[0].stdout.endswith("END\n")


# --- network ----------------------------------------------------------------------------------

SWALLOWED_CONNECT = """
import socket
try:
    socket.create_connection(("192.0.2.10", 443), timeout=2)
except OSError as exc:
    print("swallowed", exc)
"""
DNS_LOOKUP = """
import socket
try:
    socket.getaddrinfo("example.com", 80)
except OSError:
    pass
"""
LOOPBACK = """
import socket, threading
server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
threading.Thread(target=lambda: server.accept()[0].sendall(b"hi"), daemon=True).start()
client = socket.create_connection(("127.0.0.1", port))
assert client.recv(2) == b"hi"
socket.getaddrinfo("localhost", port)
"""
IPV6 = """
import socket
try:
    socket.create_connection(("2001:db8::1", 443), timeout=2)
except OSError:
    pass
"""


@needs_bwrap
@pytest.mark.parametrize("script", [SWALLOWED_CONNECT, DNS_LOOKUP, IPV6],
                         ids=["connect", "dns", "ipv6"])
def test_network_attempts_fail_the_run_whatever_the_exit_code(script: str) -> None:
    bundle = make_bundle(("tests/test_net.py", script))
    report = run(bundle)
    [case] = report.cases
    assert case.passed and case.network_attempts >= 1
    [finding] = report.findings
    assert (finding.rule, finding.severity) == ("sandbox.network", Severity.CRITICAL)
    assert "tests/test_net.py" in finding.message and finding.file == "tests/test_net.py"


@needs_bwrap
def test_loopback_is_allowed_and_not_counted() -> None:
    report = run(make_bundle(("tests/test_loopback.py", LOOPBACK)))
    assert report.cases[0].passed, report.cases[0].stderr
    assert report.cases[0].network_attempts == 0 and report.findings == ()


@needs_bwrap
def test_other_socket_families_are_refused() -> None:
    script = ("import socket\ntry:\n    socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)\n"
              "except OSError as exc:\n    print(exc.errno)\n")
    report = run(make_bundle(("tests/test_vsock.py", script)))
    assert report.cases[0].stdout.strip() == "97"  # EAFNOSUPPORT


# --- credentials and the host -----------------------------------------------------------------


@needs_bwrap
@pytest.mark.parametrize("decoy", ["~/.ssh/id_rsa", "~/.aws/credentials",
                                   "~/.config/google-chrome/Default/Login Data"])
def test_reading_a_decoy_credential_is_critical(decoy: str) -> None:
    report = run_one(f"cat ~/{shlex.quote(decoy[2:])} > /dev/null")
    [case] = report.cases
    assert case.passed and case.decoy_reads == (decoy,)
    [finding] = report.findings
    assert (finding.rule, finding.severity) == ("sandbox.decoy-read", Severity.CRITICAL)
    assert decoy in finding.message


@needs_bwrap
def test_listing_home_is_not_a_read() -> None:
    report = run_one("ls -la ~/.ssh ~/.aws && find ~ -type f | grep -q id_rsa && stat ~/.netrc")
    assert report.cases[0].passed and report.findings == ()


@needs_bwrap
def test_the_host_is_out_of_reach(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    report = run_one(f"test ! -e {secret} && test ! -r /etc/shadow && test ! -e /root "
                     "&& ! touch /usr/x /skill/x /x 2>/dev/null && touch /tmp/x ~/x /work/x")
    assert report.cases[0].passed, report.cases[0].stderr


@needs_bwrap
def test_the_environment_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLS_HUB_SECRET_TOKEN", "s3cret")
    report = run_one("env")
    env = dict(line.split("=", 1) for line in report.cases[0].stdout.splitlines())
    assert env["HOME"] == "/home/user" and env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert "s3cret" not in report.cases[0].stdout


@needs_bwrap
def test_tests_run_unprivileged() -> None:
    seen: set[int] = set()
    done = threading.Event()

    def watch() -> None:  # the host uid of every process of the test, while it runs
        while not done.is_set():
            for pid in processes_with("marker-uid-check"):
                with contextlib.suppress(OSError):
                    seen.add(os.stat(f"/proc/{pid}").st_uid)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        report = run_one("id -u; sleep 0.2; : marker-uid-check")
    finally:
        done.set()
        watcher.join()
    assert report.cases[0].stdout.strip() != "0"
    assert seen == {identity._identity().uid}
    if os.geteuid() == 0:
        assert 0 not in seen


# --- limits -----------------------------------------------------------------------------------


@needs_bwrap
def test_memory_limit_per_process() -> None:
    script = "python3 -c \"b = bytearray(2 * 1024 ** 3); print(len(b))\""
    report = run_one(script)
    [case] = report.cases
    assert not case.passed and case.limit == "memory"
    [finding] = report.findings
    assert (finding.rule, finding.severity) == ("sandbox.resource-limit", Severity.HIGH)
    assert "memory limit (512 MiB per process)" in finding.message


@needs_bwrap
def test_file_size_limit() -> None:
    report = run_one("head -c 3000000 /dev/zero > big", SandboxLimits(file_bytes=MiB))
    assert report.cases[0].limit == "file size"
    assert rules(report) == ["sandbox.resource-limit"]


@needs_bwrap
@pytest.mark.usefixtures("without_cgroup")
def test_cpu_limit_per_process() -> None:
    report = run_one("python3 -c 'while True: pass'", SandboxLimits(cpu_seconds=1))
    assert report.cases[0].limit == "cpu"
    assert "CPU time limit (1 s per process)" in report.findings[0].message


FORK_MANY = """
import subprocess
children = []
try:
    for _ in range(200):
        children.append(subprocess.Popen(["sleep", "1000.789"]))
finally:
    print(len(children))
"""


@needs_bwrap
def test_process_limit_stops_a_fork_storm() -> None:
    report = run(make_bundle(("tests/test_fork.py", FORK_MANY)))
    [case] = report.cases
    assert not case.passed and int(case.stdout) < 64
    assert case.limit == ("processes (cgroup)" if cgroup.cgroup_support().version
                          else "processes")
    assert leftovers_of("1000.789") == []


# --- cgroup: limits on the whole run ----------------------------------------------------------

SMALL = SandboxLimits(wall_seconds=10.0, total_wall_seconds=30.0, memory_bytes=256 * MiB,
                      cpu_seconds=2)
# Eight processes of 100 MiB each: every one is within the 256 MiB per-process rlimit; the
# run is not. Each touches its pages, then waits on a pipe that never ends (bounded by the
# wall clock, never reached: the cgroup stops the run at the first OOM kill).
HOARDERS = ("for i in 1 2 3 4 5 6 7 8; do python3 -c \"import sys; b = bytearray(100 * 1024 ** 2);"
            " sys.stdin.read()\" & done; wait")


@needs_cgroup
@pytest.mark.parametrize("isolation", [
    pytest.param("bubblewrap", marks=needs_bwrap), "rlimits"])
def test_memory_is_bounded_for_the_whole_run(isolation: str) -> None:
    report = run_one(f"sleep 1000.901 | ( {HOARDERS} )", SMALL, isolation)
    assert report.limits == "cgroup" and "256 MiB of memory" in report.limits_note
    [case] = report.cases
    assert not case.passed and not case.timed_out and case.limit == "memory (cgroup)"
    [finding] = report.findings if isolation == "bubblewrap" else [
        f for f in report.findings if f.rule != "sandbox.degraded"]
    assert finding.rule == "sandbox.resource-limit"
    assert "memory limit (cgroup, 256 MiB for the whole run)" in finding.message
    assert leftovers_of("1000.901") == []
    assert report.to_dict()["limits"] == "cgroup"


FORK_BOMB = "b() { b | b & }; b; sleep 1000.902"


@needs_cgroup
@needs_bwrap
def test_a_fork_bomb_is_bounded_by_the_runs_pids() -> None:
    limits = SandboxLimits(wall_seconds=3.0, processes=32)
    report = run_one(FORK_BOMB, limits, timeout=3)
    [case] = report.cases
    assert not case.passed and case.limit == "processes (cgroup)"
    [finding] = report.findings
    assert finding.rule == "sandbox.resource-limit"
    assert "process limit (cgroup, 32 processes for the whole run)" in finding.message
    assert leftovers_of("1000.902") == []


@needs_cgroup
@needs_bwrap
def test_cpu_burners_share_one_cpu_time_budget() -> None:
    burners = "for i in 1 2 3 4 5 6; do python3 -c 'while True: pass' & done; wait"
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=15.0, total_wall_seconds=30.0)
    report = run_one(burners, limits)
    [case] = report.cases
    # Six processes, each far below its own 3 s rlimit backstop: the run's total stops it.
    assert not case.passed and not case.timed_out and case.limit == "cpu time (cgroup)"
    assert "CPU time limit (cgroup, 1 s for the whole run, at most 1 CPU at a time)" in \
        report.findings[0].message


@needs_cgroup
def test_each_run_gets_its_own_cgroup_and_it_is_removed() -> None:
    support = cgroup.cgroup_support()
    before = {path: set(os.listdir(path)) for _, path in support.parents}
    report = run_one("cat /proc/self/cgroup", isolation="rlimits")
    assert "skills-hub-sandbox-" in report.cases[0].stdout, report.cases[0].stdout
    assert {path: set(os.listdir(path)) for _, path in support.parents} == before


@pytest.mark.usefixtures("without_cgroup")
@pytest.mark.parametrize("isolation", [
    pytest.param("bubblewrap", marks=needs_bwrap), "rlimits"])
def test_without_a_cgroup_the_rlimits_still_bound_each_process(isolation: str) -> None:
    report = run(with_tests({"name": "mem", "run": "python3 -c \"bytearray(2 * 1024 ** 3)\""},
                            {"name": "ok", "run": "echo fine"}), isolation=isolation)
    assert report.limits == "rlimits"
    assert report.limits_note.startswith("rlimits per process only (turned off by the test)")
    assert [(c.name, c.passed, c.limit) for c in report.cases] == [
        ("mem", False, "memory"), ("ok", True, None)]


def test_no_cgroup_is_said_loudly(caplog: pytest.LogCaptureFixture,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroup, "_probe_v2", lambda: NO_CGROUP)
    monkeypatch.setattr(cgroup, "_probe_v1", lambda: cgroup.CgroupSupport("", problem="no v1"))
    cgroup.cgroup_support.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="skills_hub.checks.sandbox"):
            support = cgroup.cgroup_support()
    finally:
        cgroup.cgroup_support.cache_clear()
    assert support.problem == "turned off by the test; no v1"
    assert "PER PROCESS only (rlimits)" in caplog.text


def test_cgroup_counters_are_read_from_flat_keyed_files() -> None:
    assert cgroup._keyed("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n", "oom_kill") == 1
    assert cgroup._keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", "oom_kill") == 2
    assert cgroup._keyed("usage_usec 1500000\n", "max") == 0


# --- code templates ---------------------------------------------------------------------------


@needs_bwrap
def test_template_cases_pass_and_fail() -> None:
    cases = [{"args": {"words": ["a", "b", "a"]}, "expect": {"top": ["a", "b"], "total": 3}},
             {"name": "any value", "args": {"words": ["x"]}},
             {"name": "wrong", "args": {"words": ["x"]}, "expect": {"top": [], "total": 1}}]
    report = run(template_bundle(TEMPLATE, cases, where="metadata"))
    assert [(c.name, c.kind, c.passed) for c in report.cases] == [
        ("tpl/main.py case 1", "template", True), ("any value", "template", True),
        ("wrong", "template", False)]
    assert report.cases[0].stdout == "counted 3\n"
    assert report.cases[2].value == {"top": ["x"], "total": 1}
    [finding] = report.findings
    assert finding.rule == "sandbox.test-failed" and finding.file == "tpl/cases.json"
    assert 'returned {"top": ["x"], "total": 1}, expected {"top": [], "total": 1}' in \
        finding.message


@needs_bwrap
def test_template_entrypoint_and_classes() -> None:
    source = ("class Acc:\n    def __init__(self):\n        self.total = 0\n\n"
              "def run(x):\n    acc = Acc()\n    for i, v in enumerate(sorted(x)):\n"
              "        acc.total = acc.total + v * i\n    return acc.total\n")
    report = run(template_bundle(source, [{"args": {"x": [3, 1, 2]}, "expect": 8}],
                                 extra="entrypoint: run\n"))
    assert report.cases[0].passed, report.cases[0].error


ESCAPES = [
    ("def main():\n    return __import__('os').getcwd()\n", "does not compile",
     '"__import__" is an invalid variable name'),
    ("def main():\n    return ().__class__.__subclasses__()\n", "does not compile",
     '"__class__" is an invalid attribute name'),
    ("def main():\n    return open('/etc/passwd').read()\n", "failed",
     "NameError: name 'open' is not defined"),
    ("import os\ndef main():\n    return 1\n", "failed", "templates cannot import 'os'"),
    ("import json\ndef main():\n    return json.codecs.open('/etc/passwd').read()\n", "failed",
     "has no attribute 'codecs'"),
    ("import string\ndef main():\n    return string.Formatter().get_field('0', [1], {})\n",
     "failed", "has no attribute 'Formatter'"),
    ("def main():\n    return '{0.__class__}'.format(1)\n", "failed", "format"),
    ("import functools\ndef main():\n    return functools.update_wrapper(main, len)\n",
     "failed", "has no attribute 'update_wrapper'"),
    ("import functools\ndef main():\n    return functools.singledispatch(main)\n",
     "failed", "has no attribute 'singledispatch'"),
    ("def main():\n    return getattr((x for x in []), 'gi_frame')\n", "failed",
     '"gi_frame" is a restricted name'),
    ("def main():\n    return 1\n\ndef main2(\n", "does not compile", "Line"),
]


@needs_bwrap
@pytest.mark.parametrize(("source", "kind", "message"), ESCAPES)
def test_restricted_python_refuses_escapes(source: str, kind: str, message: str) -> None:
    report = run(template_bundle(source, [{"args": {}}]))
    assert not report.cases[0].passed
    [finding] = report.findings
    assert (finding.rule, finding.severity) == ("sandbox.template-error", Severity.HIGH)
    assert kind in finding.message and message in finding.message, finding.message


@needs_bwrap
def test_template_timeout_and_runtime_errors_are_per_case() -> None:
    source = ("def main(n):\n    if n == 0:\n        while True:\n            pass\n"
              "    return 10 // n\n")
    cases = [{"name": "spins", "args": {"n": 0}, "timeout": 0.3},
             {"name": "divides", "args": {"n": None}},
             {"name": "fine", "args": {"n": 5}, "expect": 2}]
    report = run(template_bundle(source, cases))
    assert [(c.name, c.passed, c.timed_out) for c in report.cases] == [
        ("spins", False, True), ("divides", False, False), ("fine", True, False)]
    assert rules(report) == ["sandbox.timeout", "sandbox.template-error"]
    assert "TypeError: unsupported operand" in report.findings[1].message


@needs_bwrap
def test_template_memory_limit() -> None:
    report = run(template_bundle("def main():\n    return len('a' * (2 * 1024 ** 3))\n",
                                 [{"args": {}}]))
    assert report.cases[0].limit == "memory"
    assert rules(report) == ["sandbox.resource-limit"]


# --- isolation choice and the fallback --------------------------------------------------------


def test_forcing_bubblewrap_when_it_is_missing_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = bubblewrap._BwrapStatus(None, "", "bwrap is not installed")
    monkeypatch.setattr(bubblewrap, "_bubblewrap", lambda: missing)
    assert sandbox_available() == "rlimits"
    with pytest.raises(SandboxUnavailable, match="bwrap is not installed"):
        run_tests(with_tests({"run": "true"}), isolation="bubblewrap")


def test_unknown_isolation_is_an_error() -> None:
    with pytest.raises(ValueError, match="isolation must be one of"):
        run_tests(with_tests({"run": "true"}), isolation="docker")


def test_auto_falls_back_loudly(monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    missing = bubblewrap._BwrapStatus(None, "", "bwrap is not installed (test_auto_falls_back)")
    monkeypatch.setattr(bubblewrap, "_bubblewrap", lambda: missing)
    with caplog.at_level(logging.WARNING, logger="skills_hub.checks.sandbox"):
        report = run_tests(with_tests({"run": "echo hi"}), FAST)
    assert report.isolation == "rlimits" and report.cases[0].passed
    assert "WITHOUT bubblewrap" in caplog.text
    [finding] = report.findings
    assert (finding.rule, finding.severity) == ("sandbox.degraded", Severity.MEDIUM)
    assert "bwrap is not installed" in finding.message


def test_rlimits_fallback_runs_tests_and_says_what_is_missing() -> None:
    report = run_one("echo hi; test \"$(id -u)\" != 0; cat ~/.ssh/id_rsa > /dev/null",
                     isolation="rlimits")
    assert report.isolation == "rlimits"
    [case] = report.cases
    assert case.passed, case.stderr
    assert case.decoy_reads == ("~/.ssh/id_rsa",)
    assert sorted(rules(report)) == ["sandbox.decoy-read", "sandbox.degraded"]
    note = report.isolation_note
    assert "Missing: network isolation" in note and "filesystem isolation" in note
    degraded = next(f for f in report.findings if f.rule == "sandbox.degraded")
    assert "network attempts cannot be detected" in degraded.message


def test_rlimits_fallback_limits_and_times_out() -> None:
    report = run(with_tests({"name": "mem", "run": "python3 -c \"bytearray(2 * 1024 ** 3)\""},
                            {"name": "slow", "run": "sleep 1000.654", "timeout": 0.3}),
                 isolation="rlimits")
    assert [(c.name, c.limit, c.timed_out) for c in report.cases] == [
        ("mem", "memory", False), ("slow", "wall clock", True)]
    assert leftovers_of("1000.654") == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server drops to another uid")
def test_rlimits_fallback_drops_root(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root only")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)
    report = run_one(f"cat {secret}", isolation="rlimits")
    assert "Permission denied" in report.cases[0].stderr


def test_rlimits_fallback_runs_templates() -> None:
    report = run(template_bundle(TEMPLATE, [{"args": {"words": ["a"]},
                                             "expect": {"top": ["a"], "total": 1}}]),
                 isolation="rlimits")
    assert report.cases[0].passed, report.cases[0].error


def test_bwrap_failing_to_start_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = bubblewrap._BwrapStatus("/bin/false", "bubblewrap (broken)", "")
    monkeypatch.setattr(bubblewrap, "_bubblewrap", lambda: broken)
    report = run_tests(with_tests({"name": "t", "run": "echo hi"}), FAST)
    assert report.isolation == "bubblewrap"  # never the weaker sandbox behind the probe's back
    [case] = report.cases
    assert not case.passed and case.error.startswith("not run: bwrap failed before")
    [finding] = report.findings
    assert (finding.rule, finding.severity) == ("sandbox.degraded", Severity.MEDIUM)
    assert "test 't' did not run" in finding.message
    with pytest.raises(SandboxUnavailable, match="bwrap failed before running the test"):
        run_tests(with_tests({"run": "echo hi"}), FAST, isolation="bubblewrap")


def test_templates_without_a_system_python_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workspace, "_sandbox_python", lambda: None)
    report = run(template_bundle(TEMPLATE, [{"args": {"words": []}}]), isolation="rlimits")
    assert not report.cases[0].passed and report.cases[0].error.startswith("not run")
    assert sorted(rules(report)) == ["sandbox.degraded", "sandbox.degraded"]
    assert "could not be tested: no python3 under /usr" in report.findings[0].message


def test_the_workspace_is_removed_when_a_run_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(process, "_spawn", explode)
    with pytest.raises(RuntimeError, match="boom"):
        run_tests(with_tests({"run": "true"}), FAST, isolation="rlimits")
    # no_temp_dirs_left checks that nothing stayed behind
