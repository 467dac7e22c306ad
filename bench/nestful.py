"""NESTFUL (IBM) as a second skill-retrieval benchmark, from another source than BFCL.

NESTFUL pairs a user request with the sequence of API calls that answers it. Its tools
come from three places: executable RapidAPI endpoints, Glaive function-calling schemas and
the Schema-Guided Dialogue (SGD) services. Every tool of a part becomes a skill; every
request a query whose relevant skills are the tools its answer calls. The data ships in the
`nestful-wrapper` wheel on PyPI (Apache-2.0), pinned by version and file digest, and is read
straight from the zip.

Left out: the wheel's ComplexFuncBench part (40 tools of one booking service whose answers
call five or more of them each), which measures ordering inside one service rather than
finding a tool.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import bfcl

PACKAGE = "nestful-wrapper"
WHEEL_VERSION = "0.1.7"
WHEEL_FILE = f"nestful_wrapper-{WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "7e7b34b0491d6fb26e9670d6fca93f39a7cc9475e25962d39633889a04e26fe4"
PIP_TIMEOUT = 300  # seconds
# part: (its requests, its tool specs) inside the wheel
PARTS: dict[str, tuple[str, str]] = {
    "executable": ("data_v1/executable/executable-data.json",
                   "data_v1/executable/executable-spec.json"),
    "glaive": ("data_v1/non-executable/non-executable-glaive-data.json",
               "data_v1/non-executable/non-executable-glaive-spec.json"),
    "sgd": ("data_v1/non-executable/non-executable-sgd-data.json",
            "data_v1/non-executable/non-executable-sgd-spec.json"),
}
RESULT_CALL = "var_result"  # NESTFUL's closing pseudo-call that gathers the outputs


def fetch_wheel(cache: Path) -> Path:
    """The pinned wheel in `cache` (downloaded with pip if absent), its digest checked."""
    path = cache / WHEEL_FILE
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        spec = f"{PACKAGE}=={WHEEL_VERSION}"
        cmd = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--quiet",
               "-d", str(cache)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                                  check=False)
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise RuntimeError(f"pip download {spec} failed: {exc}") from exc
        if proc.returncode != 0 or not path.is_file():
            detail = (proc.stderr or proc.stdout or "").strip()[-2000:] or "no output"
            raise RuntimeError(f"pip download {spec} failed (exit {proc.returncode}): {detail}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{path} has sha256 {digest}, not the pinned {WHEEL_SHA256}")
    return path


def _schema(parameters: Any) -> dict[str, Any]:
    """NESTFUL's `query_parameters` as the JSON-schema object bfcl's body writer reads."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for pname, raw in (parameters.items() if isinstance(parameters, Mapping) else []):
        spec: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        prop: dict[str, Any] = {"type": spec.get("type") or "string",
                                "description": spec.get("description") or ""}
        allowed = spec.get("allowed_values") or spec.get("enum")
        if isinstance(allowed, list) and allowed:
            prop["enum"] = allowed
        default = spec.get("default_value", spec.get("default"))
        if default not in (None, ""):
            prop["default"] = default
        properties[str(pname)] = prop
        if spec.get("required") is True:
            required.append(str(pname))
    return {"type": "object", "properties": properties, "required": required}


def _calls(output: Any) -> list[str]:
    """Distinct tool names an answer calls, in order, without the closing pseudo-call."""
    names: dict[str, None] = {}
    for call in output if isinstance(output, list) else []:
        name = call.get("name") if isinstance(call, Mapping) else None
        if isinstance(name, str) and name != RESULT_CALL:
            names[name] = None
    return list(names)


def load(wheel: Path, parts: Sequence[str] = tuple(PARTS)) -> bfcl.Dataset:
    """Skills (one per tool of each part) and queries (one per request) from the wheel.

    Query ids are `<part>_<n>`; a request whose answer calls a tool its part does not
    specify keeps the tools it can name (`gt_names_missing` counts the others)."""
    skills: list[bfcl.SkillDoc] = []
    queries: list[bfcl.Query] = []
    names: set[str] = set()
    stats: dict[str, int] = dict.fromkeys(("tools", "queries", "queries_multi_relevant",
                                           "gt_names_missing", "skipped_no_relevant"), 0)
    with zipfile.ZipFile(wheel) as archive:
        for part in parts:
            data_member, spec_member = PARTS[part]
            tools = json.loads(archive.read(spec_member))
            own: dict[str, str] = {}  # tool name -> skill name
            for tool in tools if isinstance(tools, list) else []:
                fname = tool.get("name") if isinstance(tool, Mapping) else None
                if not isinstance(fname, str) or fname in own:
                    continue
                name = bfcl._unique_name(fname, names)
                described = bfcl._collapse(tool.get("description")) or f"Call {fname}."
                skills.append(bfcl.SkillDoc(
                    name=name, description=bfcl._truncate_words(described, bfcl.DESCRIPTION_MAX),
                    body=bfcl._body(fname, described, _schema(tool.get("query_parameters"))),
                    function=fname))
                names.add(name)
                own[fname] = name
                stats["tools"] += 1
            items = json.loads(archive.read(data_member))
            stats[f"queries_{part}"] = 0
            for n, item in enumerate(items if isinstance(items, list) else []):
                text = bfcl._collapse(item.get("input")) if isinstance(item, Mapping) else ""
                called = _calls(item.get("output")) if isinstance(item, Mapping) else []
                stats["gt_names_missing"] += sum(c not in own for c in called)
                relevant = frozenset(own[c] for c in called if c in own)
                if not text or not relevant:
                    stats["skipped_no_relevant"] += 1
                    continue
                queries.append(bfcl.Query(id=f"{part}_{n}", text=text, relevant=relevant))
                stats["queries"] += 1
                stats[f"queries_{part}"] += 1
                stats["queries_multi_relevant"] += len(relevant) > 1
    stats["skills"] = len(skills)
    return bfcl.Dataset(skills=skills, queries=queries, stats=stats)
