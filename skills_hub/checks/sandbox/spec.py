"""The test format a skill declares (docs/SKILL_TESTS.md): tests.yaml, the test_*.py /
test_*.sh convention, and code template cases in SKILL.md."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from skills_hub.checks.findings import Finding, Severity
from skills_hub.checks.sandbox.model import _finding
from skills_hub.errors import InvalidSkill
from skills_hub.skill.bundle import Bundle
from skills_hub.skill.manifest import parse_manifest

SPEC_FILES = ("tests/tests.yaml", "tests/tests.yml")

MAX_TESTS = 100  # command tests and template cases together

ALLOWED_TEMPLATE_MODULES = ("base64", "collections", "datetime", "decimal", "fractions",
                            "functools", "hashlib", "itertools", "json", "math", "random",
                            "re", "statistics", "string", "textwrap", "unicodedata")

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


def _spec_problem(file: str, message: str, hint: str) -> Finding:
    return _finding("sandbox.bad-test-spec", Severity.MEDIUM, message, hint, file=file)


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

