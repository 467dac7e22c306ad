"""bandit, in process, over every Python file and fenced Python block of a skill.

Findings keep bandit's test id (`bandit.B602`), its severity and its confidence. `# nosec`
comments are ignored: a skill's author must not be able to silence the scan. bandit
reads files from disk, so the sources are written to a private temporary folder first
(about a millisecond for a typical skill).

Severity in our terms: bandit HIGH with HIGH confidence is HIGH (the version is flagged
`caution`); other HIGH, and MEDIUM, findings are MEDIUM; LOW stays LOW. bandit never makes a
version `dangerous` on its own: the threat rules and the sandbox decide that.
"""

from __future__ import annotations

import ast
import logging
import tempfile
import warnings
from pathlib import Path

from skills_hub.checks.findings import Finding, Severity, escape_invisible
from skills_hub.checks.syntax import python_sources
from skills_hub.skill.bundle import Bundle

# Tests that only say "this module exists" and drown the report: a skill's helper script
# importing subprocess is normal. The calls themselves are still checked (B602-B607).
SKIPPED_TESTS = ("B101", "B404", "B603")
_HINT = "See https://bandit.readthedocs.io/en/latest/plugins/index.html for {test_id} ({name})."


def bandit_version() -> str:
    from importlib.metadata import version

    return version("bandit")


def run_bandit(bundle: Bundle) -> list[Finding]:
    sources = [(path, offset, code) for path, offset, code in python_sources(bundle)
               if _parses(code)]
    if not sources:
        return []
    with warnings.catch_warnings():
        # bandit's plugin loader passes an argument stevedore now deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        from bandit.core import config, manager

    logging.getLogger("bandit").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="skills-hub-bandit-") as tmp:
        where: dict[str, tuple[str, int, str]] = {}
        for n, (path, offset, code) in enumerate(sources):
            name = f"s{n}.py"
            Path(tmp, name).write_text(code, encoding="utf-8")
            where[str(Path(tmp, name))] = (path, offset, code)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conf = config.BanditConfig()
            mgr = manager.BanditManager(conf, "file", quiet=True, ignore_nosec=True,
                                        profile={"exclude": list(SKIPPED_TESTS)})
            mgr.discover_files([tmp], recursive=True)
            mgr.run_tests()
        issues = mgr.get_issue_list()
    findings = []
    for issue in issues:
        path, offset, code = where.get(issue.fname, (issue.fname, 0, ""))
        lines = code.splitlines()
        excerpt = lines[issue.lineno - 1] if 0 < issue.lineno <= len(lines) else ""
        findings.append(Finding(
            rule=f"bandit.{issue.test_id}", family="bandit",
            severity=_severity(issue.severity, issue.confidence), source="bandit",
            message=f"{issue.text} (bandit {issue.test_id} {issue.test}, severity "
                    f"{issue.severity.lower()})",
            hint=_HINT.format(test_id=issue.test_id, name=issue.test),
            file=path, line=issue.lineno + offset, excerpt=escape_invisible(excerpt),
            confidence=issue.confidence.lower()))
    return sorted(findings, key=lambda f: (f.file or "", f.line or 0, f.rule))


def _parses(code: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _severity(severity: str, confidence: str) -> Severity:
    if severity == "HIGH":
        return Severity.HIGH if confidence == "HIGH" else Severity.MEDIUM
    if severity == "MEDIUM":
        return Severity.MEDIUM
    return Severity.LOW
