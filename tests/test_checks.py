"""The publish pipeline's own stages (syntax, bandit), the report model and verdicts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from skills_hub.checks import bandit_scan, threats
from skills_hub.checks.bandit_scan import run_bandit
from skills_hub.checks.findings import (
    CAUTION,
    DANGEROUS,
    FAMILIES,
    SAFE,
    Finding,
    Severity,
    escape_invisible,
    verdict_of,
)
from skills_hub.checks.pipeline import Options, Report, check_bundle, pipeline_id
from skills_hub.checks.syntax import check_syntax, fenced_blocks, strip_prompts
from skills_hub.skill.bundle import Bundle, from_files
from tests.conftest import skill_md

NO_SANDBOX = Options(sandbox="off")


def bundle(files: dict[str, bytes], name: str = "hello-world", body: str = "Say hello.",
           executables: tuple[str, ...] = ()) -> Bundle:
    items = [("SKILL.md", skill_md(name, body=body), False)]
    items += [(path, data, path in executables) for path, data in files.items()]
    return from_files(items)


def finding(severity: Severity, rule: str = "remote-exec.pipe-to-shell",
            exception: str | None = None) -> Finding:
    return Finding(rule=rule, family=rule.split(".")[0], severity=severity, source="threat",
                   message="m", hint="h", exception=exception)


# -- verdicts ---------------------------------------------------------------------------


@pytest.mark.parametrize(("severities", "expected"), [
    ((), SAFE),
    ((Severity.INFO, Severity.LOW, Severity.MEDIUM), SAFE),
    ((Severity.LOW, Severity.HIGH), CAUTION),
    ((Severity.HIGH, Severity.CRITICAL), DANGEROUS),
])
def test_verdict_is_set_by_the_worst_finding(severities: tuple[Severity, ...],
                                             expected: str) -> None:
    assert verdict_of(finding(s) for s in severities) == expected


def test_an_excepted_finding_does_not_weigh_on_the_verdict() -> None:
    findings = [finding(Severity.CRITICAL, exception="reviewed: a test fixture"),
                finding(Severity.HIGH, rule="secret.aws-access-key")]
    assert verdict_of(findings) == CAUTION


def test_report_round_trips_and_applies_exceptions() -> None:
    report = Report(verdict=DANGEROUS, findings=(finding(Severity.CRITICAL),),
                    pipeline="p", checked_at=1.0)
    again = Report.from_dict(report.to_dict())
    assert again == report
    excepted = again.with_exceptions({"remote-exec.pipe-to-shell": "installer we trust"})
    assert excepted.verdict == SAFE
    assert excepted.findings[0].exception == "installer we trust"
    assert excepted.to_dict()["counts"]["critical"] == 0
    # Removing the exception restores the verdict.
    assert excepted.with_exceptions({}).verdict == DANGEROUS


def test_escape_invisible_shows_hidden_characters_and_trims() -> None:
    assert escape_invisible("a\u200bb\U000E0041") == "a\\u200Bb\\U000E0041"
    assert len(escape_invisible("x" * 500)) == 160


def test_families_cover_every_stage() -> None:
    assert {"syntax", "bandit", "sandbox", "spec"} <= set(FAMILIES)


# -- syntax -----------------------------------------------------------------------------


SYNTAX_CASES = [
    ("scripts/a.py", b"def f(:\n    pass\n", "syntax.python", 1),
    ("scripts/b.py", b"x = 1\ny = (\n", "syntax.python", 2),
    ("scripts/run.sh", b"#!/bin/sh\necho ok\nif true; then\n", "syntax.shell", 4),
    ("scripts/tool", b"#!/usr/bin/env python3\nprint('x'\n", "syntax.python", 2),
    ("scripts/tool2", b"#!/bin/bash\nfi\n", "syntax.shell", 2),
    ("data/a.json", b'{\n  "a": 1,\n}\n', "syntax.json", 3),
    ("data/a.yaml", b"a: 1\nb: [1, 2\n", "syntax.yaml", 3),
    ("pyproject.toml", b"[tool]\nx = \n", "syntax.toml", 2),
]


@pytest.mark.parametrize(("path", "data", "rule", "line"), SYNTAX_CASES)
def test_syntax_errors_name_the_file_and_line(path: str, data: bytes, rule: str,
                                              line: int) -> None:
    found = check_syntax(bundle({path: data}))
    assert [(f.rule, f.file, f.line, f.severity) for f in found] == [
        (rule, path, line, Severity.MEDIUM)]
    assert found[0].hint


@pytest.mark.parametrize(("path", "data"), [
    ("scripts/ok.py", b"import sys\nprint(sys.argv)\n"),
    ("scripts/ok.sh", b"#!/bin/bash\nfor f in *; do echo \"$f\"; done\n"),
    ("data/ok.json", b'{"a": [1, 2]}'),
    ("data/ok.yml", b"a: &x 1\nb: *x\n"),
    ("ok.toml", b"[a]\nb = 1\n"),
    ("notes.txt", b"def f(: not python, just text"),
    ("img.png", b"\x89PNG\r\n\x1a\n\0\0\0"),
])
def test_valid_or_unknown_files_have_no_syntax_findings(path: str, data: bytes) -> None:
    assert check_syntax(bundle({path: data})) == []


def test_fenced_blocks_are_checked_with_lines_in_the_markdown_file() -> None:
    body = ("Intro.\n\n```python\nprint('ok')\n```\n\n```bash\nif then\n```\n\n"
            "```json\n{\"a\": }\n```\n\n```text\nanything ( goes\n```\n")
    found = check_syntax(bundle({}, body=body))
    text = skill_md(body=body).decode()
    lines = text.splitlines()
    by_rule = {f.rule: f for f in found}
    assert set(by_rule) == {"syntax.shell", "syntax.json"}
    assert lines[by_rule["syntax.shell"].line - 1] == "if then"
    assert lines[by_rule["syntax.json"].line - 1] == '{"a": }'
    assert all(f.severity == Severity.LOW and f.file == "SKILL.md" for f in found)


def test_repl_sessions_in_python_blocks_are_not_syntax_errors() -> None:
    code = ">>> x = [1, 2]\n>>> len(x)\n2\n"
    assert "x = [1, 2]" in strip_prompts(code)
    body = f"```python\n{code}```\n"
    assert check_syntax(bundle({}, body=body)) == []


def test_fenced_blocks_handle_long_fences_and_unclosed_blocks() -> None:
    text = "````md\n```python\nnot closed inside\n````\n```py\nx = (\n"
    blocks = list(fenced_blocks("r.md", text))
    assert [(b.lang, b.first_line) for b in blocks] == [("md", 2), ("py", 6)]


def test_yaml_syntax_check_does_not_expand_aliases() -> None:
    bomb = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        .encode() for i in range(9))
    skill = bundle({"bomb.yaml": bomb})

    def expand(*args: object, **kwargs: object) -> None:
        raise AssertionError("the syntax check built a YAML node graph (aliases expanded)")

    # Structural, not timed: only the event parser may run, and it sees each alias once
    # (expanded, the document would hold 9**10 scalars).
    with pytest.MonkeyPatch.context() as patch:
        for name in ("compose", "compose_all", "load", "load_all", "safe_load",
                     "safe_load_all", "full_load", "unsafe_load"):
            patch.setattr(yaml, name, expand)
        assert check_syntax(skill) == []
    events = list(yaml.parse(bomb.decode(), Loader=yaml.SafeLoader))
    assert len(events) < 2 * len(bomb.split(b","))


# -- bandit -----------------------------------------------------------------------------


def test_bandit_findings_keep_test_id_severity_and_confidence() -> None:
    code = (b"import pickle\nimport subprocess\n\n"
            b"def run(cmd):\n    subprocess.call(cmd, shell=True)  # nosec\n"
            b"    return pickle.loads(cmd)\n")
    found = {f.rule: f for f in run_bandit(bundle({"scripts/tool.py": code}))}
    assert found["bandit.B602"].severity == Severity.HIGH  # nosec is ignored
    assert found["bandit.B602"].line == 5
    assert found["bandit.B602"].confidence == "high"
    assert found["bandit.B602"].file == "scripts/tool.py"
    assert "subprocess.call" in found["bandit.B602"].excerpt
    assert found["bandit.B301"].severity == Severity.MEDIUM
    assert all(f.source == "bandit" and f.family == "bandit" for f in found.values())


def test_bandit_scans_fenced_python_blocks_at_their_markdown_line() -> None:
    body = "Run:\n\n```python\nimport yaml\ndata = yaml.load(open('x'))\n```\n"
    found = [f for f in run_bandit(bundle({}, body=body)) if f.rule == "bandit.B506"]
    assert len(found) == 1
    lines = skill_md(body=body).decode().splitlines()
    assert lines[found[0].line - 1] == "data = yaml.load(open('x'))"


def test_bandit_skips_unparseable_code_and_noise_tests() -> None:
    found = run_bandit(bundle({"a.py": b"def (:\n", "b.py": b"import subprocess\nassert 1\n"}))
    assert found == []


# -- the pipeline -----------------------------------------------------------------------


def test_pipeline_reports_timings_pipeline_id_and_is_safe_for_a_plain_skill() -> None:
    report = check_bundle(bundle({"scripts/ok.py": b"print('hello')\n"}), NO_SANDBOX)
    assert report.verdict == SAFE and report.valid
    assert set(report.timings_ms) == {"spec", "syntax", "bandit", "threats"}
    assert report.pipeline == pipeline_id() and "bandit-" in report.pipeline
    assert report.sandbox is None


def test_pipeline_reports_spec_problems_without_calling_them_dangerous() -> None:
    broken = from_files([("SKILL.md", b"---\nname: Bad Name\n---\nbody\n", False)])
    report = check_bundle(broken, NO_SANDBOX)
    assert not report.valid
    assert {p.field for p in report.problems} >= {"name", "description"}
    assert report.verdict == SAFE
    assert report.to_dict()["valid"] is False


def test_pipeline_orders_findings_worst_first() -> None:
    files = {"scripts/a.py": b"def f(:\n",
             "scripts/b.py": b"import subprocess\nsubprocess.call(x, shell=True)\n"}
    report = check_bundle(bundle(files), NO_SANDBOX)
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, reverse=True)


def test_pipeline_without_tests_does_bounded_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Work, not time (the p50 < 300 ms aim is measured in bench/checks_bench.py): each
    file is scanned once by the threat rules, bandit runs once for the whole bundle, and no
    sandbox is started."""
    files = {f"scripts/s{i}.py": b"import json\nprint(json.dumps({'a': 1}))\n" * 20
             for i in range(5)}
    body = "Use it.\n\n```bash\ncurl -s https://api.example.com/items | jq .\n```\n" * 20
    b = bundle(files, body=body)
    calls: dict[str, int] = {"scan_text": 0, "run_bandit": 0}
    real_scan, real_bandit = threats.scan_text, bandit_scan.run_bandit

    def scan_text(*args: Any, **kwargs: Any) -> Any:
        calls["scan_text"] += 1
        return real_scan(*args, **kwargs)

    def run_bandit(*args: Any, **kwargs: Any) -> Any:
        calls["run_bandit"] += 1
        return real_bandit(*args, **kwargs)

    monkeypatch.setattr(threats, "scan_text", scan_text)
    monkeypatch.setattr(bandit_scan, "run_bandit", run_bandit)
    report = check_bundle(b, NO_SANDBOX)
    assert report.verdict == SAFE and report.sandbox is None
    assert calls == {"scan_text": len(b.files), "run_bandit": 1}
