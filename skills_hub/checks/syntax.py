"""Syntax checks: Python parses, shell passes `bash -n`, data files parse.

Files are judged by extension (and a shebang for extensionless scripts); fenced code
blocks in markdown files are judged by their info string. An error in a file is MEDIUM
(the skill ships broken code); an error in a fenced block is LOW, because documentation
often shows fragments and pseudo-code on purpose.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tomllib
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import yaml

from skills_hub.checks.findings import Finding, Severity, escape_invisible
from skills_hub.skill.bundle import Bundle

PYTHON_EXT = (".py", ".pyw")
SHELL_EXT = (".sh", ".bash")
MARKDOWN_EXT = (".md", ".markdown")
PYTHON_LANGS = frozenset({"python", "py", "python3", "py3"})
SHELL_LANGS = frozenset({"bash", "sh", "shell"})
BASH_TIMEOUT = 5.0
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`{]*)")
_BASH_LINE = re.compile(r"line (\d+):")
_PROMPT = re.compile(r"^(>>>|\.\.\.) ?")


@dataclass(frozen=True)
class Block:
    """A fenced code block of a markdown file; `first_line` is the 1-based line of its code."""

    path: str
    lang: str
    first_line: int
    code: str


def text_of(data: bytes) -> str | None:
    """The UTF-8 text of a file, or None for binary content."""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def fenced_blocks(path: str, text: str) -> Iterator[Block]:
    """The fenced code blocks of a markdown text, with their language and position."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match["fence"], match["info"].lower()
        start = i + 1
        end = start
        while end < len(lines) and not _closes(lines[end], fence):
            end += 1
        yield Block(path, lang, start + 1, "\n".join(lines[start:end]) + "\n")
        i = end + 1


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0])


def python_sources(bundle: Bundle) -> Iterator[tuple[str, int, str]]:
    """(path, line offset, source) of every Python file and fenced Python block."""
    for path, data in sorted(bundle.files.items()):
        text = text_of(data)
        if text is None:
            continue
        if _is_python(path, text):
            yield path, 0, text
        elif path.lower().endswith(MARKDOWN_EXT):
            for block in fenced_blocks(path, text):
                if block.lang in PYTHON_LANGS:
                    yield path, block.first_line - 1, strip_prompts(block.code)


def strip_prompts(code: str) -> str:
    """Drop `>>> ` / `... ` REPL prompts when a block is an interactive session."""
    lines = code.splitlines()
    if not any(line.startswith(">>>") for line in lines):
        return code
    kept = [_PROMPT.sub("", line) if _PROMPT.match(line) else "" for line in lines]
    return "\n".join(kept) + "\n"


def check_syntax(bundle: Bundle) -> list[Finding]:
    texts = [(path, text) for path, data in sorted(bundle.files.items())
             if (text := text_of(data)) is not None]
    checked = _bash_all([code for path, text in texts for code in _shell_sources(path, text)])
    findings: list[Finding] = []
    for path, text in texts:
        findings.extend(_check_file(path, text, checked))
    return findings


# `bash -n` is a process per script or block, mostly its start-up: a skill's blocks are
# checked together instead of one after another (a typical SKILL.md has two or three).
_BASH_WORKERS = 4
_Bashed = subprocess.CompletedProcess[bytes] | None  # None: bash -n timed out


def _shell_sources(path: str, text: str) -> Iterator[str]:
    """The shell code `_check_file` will give `bash -n` for this file (a warm-up only: a
    source missed here is checked on its own, so the findings never depend on it)."""
    if _is_python(path, text):
        return
    if _is_shell(path, text):
        yield text
    elif path.lower().endswith(MARKDOWN_EXT):
        yield from (b.code for b in fenced_blocks(path, text) if b.lang in SHELL_LANGS)


def _bash_all(codes: list[str]) -> Mapping[str, _Bashed]:
    """`bash -n` of each distinct code, run concurrently; {} when there are fewer than two."""
    distinct = list(dict.fromkeys(codes))
    if len(distinct) < 2 or shutil.which("bash") is None:
        return {}
    with ThreadPoolExecutor(min(_BASH_WORKERS, len(distinct))) as pool:
        return dict(zip(distinct, pool.map(_bash_n, distinct), strict=True))


def _bash_n(code: str) -> _Bashed:
    bash = shutil.which("bash")
    assert bash is not None
    try:
        return subprocess.run([bash, "-n"], input=code.encode("utf-8", "replace"),
                              capture_output=True, timeout=BASH_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None


def _check_file(path: str, text: str,
                checked: Mapping[str, _Bashed] | None = None) -> Iterator[Finding]:
    lower = path.lower()
    checked = checked or {}
    if _is_python(path, text):
        yield from _python(path, text, 0, Severity.MEDIUM)
    elif _is_shell(path, text):
        yield from _shell(path, text, 0, Severity.MEDIUM, checked)
    elif lower.endswith((".json", ".ipynb")):
        yield from _json(path, text, 0, Severity.MEDIUM)
    elif lower.endswith((".yaml", ".yml")):
        yield from _yaml(path, text, 0, Severity.MEDIUM)
    elif lower.endswith(".toml"):
        yield from _toml(path, text, Severity.MEDIUM)
    elif lower.endswith(MARKDOWN_EXT):
        for block in fenced_blocks(path, text):
            yield from _check_block(block, checked)


def _check_block(block: Block,
                 checked: Mapping[str, _Bashed] | None = None) -> Iterator[Finding]:
    offset = block.first_line - 1
    if block.lang in PYTHON_LANGS:
        yield from _python(block.path, strip_prompts(block.code), offset, Severity.LOW)
    elif block.lang in SHELL_LANGS:
        yield from _shell(block.path, block.code, offset, Severity.LOW, checked or {})
    elif block.lang == "json":
        yield from _json(block.path, block.code, offset, Severity.LOW)
    elif block.lang in ("yaml", "yml"):
        yield from _yaml(block.path, block.code, offset, Severity.LOW)


def _is_python(path: str, text: str) -> bool:
    if path.lower().endswith(PYTHON_EXT):
        return True
    return "." not in path.rsplit("/", 1)[-1] and _shebang(text).endswith(("python", "python3"))


def _is_shell(path: str, text: str) -> bool:
    if path.lower().endswith(SHELL_EXT):
        return True
    return "." not in path.rsplit("/", 1)[-1] and _shebang(text).endswith(("/sh", "bash"))


def _shebang(text: str) -> str:
    if not text.startswith("#!"):
        return ""
    words = text[2:].split("\n", 1)[0].split()
    if not words:
        return ""
    return words[1] if words[0].endswith("/env") and len(words) > 1 else words[0]


def _finding(rule: str, severity: Severity, path: str, line: int | None, what: str,
             hint: str, excerpt: str = "") -> Finding:
    return Finding(rule=rule, family="syntax", severity=severity, source="syntax",
                   message=what, hint=hint, file=path, line=line,
                   excerpt=escape_invisible(excerpt))


def _line(text: str, lineno: int | None) -> str:
    if not lineno:
        return ""
    lines = text.splitlines()
    return lines[lineno - 1] if 0 < lineno <= len(lines) else ""


def _python(path: str, code: str, offset: int, severity: Severity) -> Iterator[Finding]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not an error
            ast.parse(code, filename=path)
    except SyntaxError as exc:
        where = exc.lineno
        yield _finding("syntax.python", severity, path, (where or 1) + offset,
                       f"Python does not parse: {exc.msg}",
                       "Fix the syntax error; if this block is deliberately a fragment, "
                       "mark its fence as text instead of python.", _line(code, where))
    except (ValueError, RecursionError, MemoryError) as exc:
        yield _finding("syntax.python", severity, path, offset + 1,
                       f"Python does not parse: {exc}", "Remove the unparseable code.")


def _shell(path: str, code: str, offset: int, severity: Severity,
           checked: Mapping[str, _Bashed]) -> Iterator[Finding]:
    if code in checked:
        proc = checked[code]
    elif shutil.which("bash") is None:
        return
    else:
        proc = _bash_n(code)
    if proc is None:
        yield _finding("syntax.shell", severity, path, offset + 1,
                       "bash -n did not finish checking this script",
                       "Simplify the script; it is too large or too deep to check.")
        return
    if proc.returncode == 0:
        return
    message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    first = message[0] if message else "syntax error"
    match = _BASH_LINE.search(first)
    lineno = int(match.group(1)) if match else None
    detail = first.split(":", 2)[-1].strip() if match else first
    yield _finding("syntax.shell", severity, path, (lineno or 1) + offset,
                   f"bash -n reports: {detail}",
                   "Fix the shell syntax; if this block is not a runnable script, mark its "
                   "fence as text or console.", _line(code, lineno))


def _json(path: str, text: str, offset: int, severity: Severity) -> Iterator[Finding]:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        yield _finding("syntax.json", severity, path, exc.lineno + offset,
                       f"JSON does not parse: {exc.msg} (column {exc.colno})",
                       "Fix the JSON; comments and trailing commas are not allowed.",
                       _line(text, exc.lineno))
    except RecursionError:
        yield _finding("syntax.json", severity, path, offset + 1,
                       "JSON nests too deeply to parse", "Flatten the data.")


def _yaml(path: str, text: str, offset: int, severity: Severity) -> Iterator[Finding]:
    try:
        # Parse events only: checks the syntax without building (alias-expanded) objects.
        for _ in yaml.parse(text, Loader=yaml.SafeLoader):
            pass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        lineno = mark.line + 1 if mark is not None else None
        yield _finding("syntax.yaml", severity, path, (lineno or 1) + offset,
                       f"YAML does not parse: {exc.problem or exc}",
                       "Fix the YAML: check indentation and quote values containing ': '.",
                       _line(text, lineno))
    except (yaml.YAMLError, RecursionError) as exc:
        yield _finding("syntax.yaml", severity, path, offset + 1,
                       f"YAML does not parse: {exc}", "Fix the YAML syntax.")


def _toml(path: str, text: str, severity: Severity) -> Iterator[Finding]:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        lineno = int(match.group(1)) if match else None
        yield _finding("syntax.toml", severity, path, lineno,
                       f"TOML does not parse: {exc}", "Fix the TOML syntax.",
                       _line(text, lineno))
