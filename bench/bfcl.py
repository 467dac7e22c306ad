"""BFCL (Berkeley Function Calling Leaderboard) as a skill-retrieval benchmark.

Every function offered in a BFCL item becomes a skill; the item's first user turn is the
query and the functions in its ground truth are the relevant skills. The data comes from the
`bfcl-eval` wheel on PyPI (Apache-2.0) and is read straight from the zip.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import unicodedata
import zipfile
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

WHEEL_VERSION = "2026.3.23"
PIP_TIMEOUT = 300  # seconds
CATEGORIES: tuple[str, ...] = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
)
DATA_DIR = "bfcl_eval/data"
NAME_MAX = 64
DESCRIPTION_MAX = 1000
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$|^[a-z0-9]$")

_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")  # HTTPResponse -> HTTP-Response
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")  # getUser -> get-User
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class SkillDoc:
    """One skill made from one BFCL function; `function` is the original function name."""

    name: str
    description: str
    body: str
    function: str


@dataclass(frozen=True)
class Query:
    """One BFCL item: the first user turn and the names of the skills it should retrieve."""

    id: str
    text: str
    relevant: frozenset[str]


@dataclass(frozen=True)
class Dataset:
    """Skills, queries and the counts gathered while converting."""

    skills: list[SkillDoc]
    queries: list[Query]
    stats: dict[str, int] = field(default_factory=dict)


# --- fetching --------------------------------------------------------------------------------


def fetch_wheel(cache: Path) -> Path:
    """Return the bfcl-eval wheel in `cache`, downloading it with pip if none is there."""
    found = _cached_wheel(cache)
    if found is not None:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    spec = f"bfcl-eval=={WHEEL_VERSION}"
    cmd = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--quiet",
           "-d", str(cache)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"pip download {spec} timed out after {PIP_TIMEOUT} s") from exc
    except OSError as exc:
        raise RuntimeError(f"could not run pip to download {spec}: {exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()[-2000:] or "no output"
        raise RuntimeError(f"pip download {spec} failed (exit {proc.returncode}): {detail}")
    found = _cached_wheel(cache)
    if found is None:
        raise RuntimeError(f"pip download {spec} succeeded but left no bfcl_eval-*.whl in {cache}")
    return found


def _cached_wheel(cache: Path) -> Path | None:
    """The pinned wheel in `cache`, else the newest-named other bfcl_eval wheel, else None."""
    if not cache.is_dir():
        return None
    pinned = sorted(cache.glob(f"bfcl_eval-{WHEEL_VERSION}-*.whl"))
    if pinned:
        return pinned[0]
    others = sorted(cache.glob("bfcl_eval-*.whl"))
    return others[-1] if others else None


# --- names and text --------------------------------------------------------------------------


def slug(function_name: str, reserve: int = 0) -> str:
    """A valid skill name for `function_name`, at most 64 - `reserve` chars; never empty."""
    text = unicodedata.normalize("NFKD", function_name).encode("ascii", "ignore").decode()
    text = _CAMEL.sub(r"\1-\2", _ACRONYM.sub(r"\1-\2", text))
    text = _NON_ALNUM.sub("-", text.lower()).strip("-")
    text = text[: max(1, NAME_MAX - reserve)].rstrip("-")
    return text or "fn"


def _unique_name(function_name: str, taken: AbstractSet[str]) -> str:
    """slug(function_name), with the first free `-2`, `-3`... suffix if that name is taken."""
    name = slug(function_name)
    n = 2
    while name in taken:
        suffix = f"-{n}"
        name = slug(function_name, reserve=len(suffix)) + suffix
        n += 1
    return name


def _collapse(text: Any) -> str:
    """`text` with runs of whitespace made single spaces; non-strings give ''."""
    return " ".join(text.split()) if isinstance(text, str) else ""


def _truncate_words(text: str, limit: int) -> str:
    """`text` cut to at most `limit` chars, at a word boundary where there is one."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else text[:limit]
    return cut[:limit].rstrip()


def _literal(value: Any) -> str:
    """A parameter value (enum member, default) as inline code."""
    return "`" + json.dumps(value, ensure_ascii=False, sort_keys=True) + "`"


def _type_label(schema: Mapping[str, Any]) -> str:
    """A short type label: `string`, `array of integer`, `string | null`, `any`."""
    kind = schema.get("type")
    label = " | ".join(map(str, kind)) if isinstance(kind, list) else str(kind or "any")
    items = schema.get("items")
    if label == "array" and isinstance(items, Mapping) and items.get("type"):
        label = f"array of {_type_label(items)}"
    return label


def _param_lines(properties: Mapping[str, Any], required: Any, depth: int = 0) -> list[str]:
    """One markdown bullet per parameter; nested object fields as indented bullets."""
    needed = set(required) if isinstance(required, list) else set()
    lines: list[str] = []
    for pname, raw in properties.items():
        schema: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        status = "required" if pname in needed else "optional"
        line = f"{'  ' * depth}- `{pname}` ({_type_label(schema)}, {status})"
        parts = [_collapse(schema.get("description"))]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            parts.append("One of: " + ", ".join(_literal(v) for v in enum) + ".")
        if "default" in schema:
            parts.append(f"Default: {_literal(schema['default'])}.")
        text = " ".join(p for p in parts if p)
        lines.append(f"{line}: {text}" if text else line)
        nested = schema.get("properties")
        items = schema.get("items")
        if not isinstance(nested, Mapping) and isinstance(items, Mapping):
            nested, schema = items.get("properties"), items
        if isinstance(nested, Mapping) and nested:
            lines.extend(_param_lines(nested, schema.get("required"), depth + 1))
    return lines


def _body(function_name: str, description: str, parameters: Mapping[str, Any]) -> str:
    """The SKILL.md markdown body for one function."""
    lines = [f"# {function_name}", "", description, "", "## Parameters", ""]
    properties = parameters.get("properties")
    if isinstance(properties, Mapping) and properties:
        lines.extend(_param_lines(properties, parameters.get("required")))
    else:
        lines.append("This function takes no parameters.")
    return "\n".join(lines)


def skill_md(doc: SkillDoc) -> str:
    """The SKILL.md text for `doc`: YAML frontmatter (name, description) and the body."""
    front = yaml.safe_dump({"name": doc.name, "description": doc.description},
                           sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{front}---\n\n{doc.body.rstrip(chr(10))}\n"


# --- loading ---------------------------------------------------------------------------------


class _Builder:
    """Turns BFCL items into deduplicated skills and queries, counting as it goes."""

    def __init__(self, split_variants: bool = False) -> None:
        self.split_variants = split_variants
        self.skills: list[SkillDoc] = []
        self.queries: list[Query] = []
        self.by_key: dict[tuple[str, str], SkillDoc] = {}
        self.names: set[str] = set()
        self.functions_named: set[str] = set()
        self.query_ids: set[str] = set()
        self.stats: dict[str, int] = dict.fromkeys((
            "items", "functions", "functions_invalid", "skills", "renamed",
            "renamed_same_function", "renamed_slug_collision", "queries",
            "queries_multi_relevant", "gt_names_missing", "skipped_no_user_text",
            "skipped_no_ground_truth", "skipped_no_relevant", "skipped_duplicate_id"), 0)

    def skill_for(self, function: Any) -> SkillDoc | None:
        """The skill for one BFCL function entry, made on first sight; None if malformed."""
        self.stats["functions"] += 1
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            self.stats["functions_invalid"] += 1
            return None
        fname: str = function["name"]
        raw_params = function.get("parameters")
        params: Mapping[str, Any] = raw_params if isinstance(raw_params, Mapping) else {}
        raw_desc = function.get("description")
        key = (fname, _collapse(raw_desc) if self.split_variants else "")
        if key in self.by_key:
            return self.by_key[key]
        name = _unique_name(fname, self.names)
        if name != slug(fname):
            self.stats["renamed"] += 1
            seen = fname in self.functions_named
            self.stats["renamed_same_function" if seen else "renamed_slug_collision"] += 1
        described = _collapse(raw_desc) or f"Call {fname}."
        doc = SkillDoc(name=name, description=_truncate_words(described, DESCRIPTION_MAX),
                       body=_body(fname, described, params), function=fname)
        self.by_key[key] = doc
        self.names.add(name)
        self.functions_named.add(fname)
        self.skills.append(doc)
        return doc

    def add(self, category: str, item: Mapping[str, Any], ground_truth: Any) -> None:
        """Add one item's functions as skills and, if it qualifies, its query."""
        self.stats["items"] += 1
        functions = item.get("function")
        own: dict[str, SkillDoc] = {}
        for function in functions if isinstance(functions, list) else []:
            doc = self.skill_for(function)
            if doc is not None:
                own.setdefault(doc.function, doc)
        text = _first_user_text(item.get("question"))
        names = _ground_truth_names(ground_truth)
        if not names:
            self.stats["skipped_no_ground_truth"] += 1
            return
        if not text:
            self.stats["skipped_no_user_text"] += 1
            return
        missing = [n for n in names if n not in own]
        self.stats["gt_names_missing"] += len(missing)
        relevant = frozenset(own[n].name for n in names if n in own)
        if not relevant:
            self.stats["skipped_no_relevant"] += 1
            return
        qid = str(item.get("id", ""))
        if qid in self.query_ids:
            self.stats["skipped_duplicate_id"] += 1
            return
        self.query_ids.add(qid)
        self.queries.append(Query(id=qid, text=text, relevant=relevant))
        self.stats["queries"] += 1
        self.stats[f"queries_{category}"] = self.stats.get(f"queries_{category}", 0) + 1
        if len(relevant) > 1:
            self.stats["queries_multi_relevant"] += 1

    def dataset(self) -> Dataset:
        """The result so far."""
        self.stats["skills"] = len(self.skills)
        return Dataset(skills=list(self.skills), queries=list(self.queries),
                       stats=dict(self.stats))


def _first_user_text(question: Any) -> str:
    """The user messages of the first turn, stripped and joined by newlines."""
    if not isinstance(question, list) or not question or not isinstance(question[0], list):
        return ""
    texts = [m["content"].strip() for m in question[0]
             if isinstance(m, Mapping) and m.get("role") == "user"
             and isinstance(m.get("content"), str) and m["content"].strip()]
    return "\n".join(texts)


def _ground_truth_names(ground_truth: Any) -> list[str]:
    """Distinct function names called in a ground truth, in order of first call."""
    names: dict[str, None] = {}
    for call in ground_truth if isinstance(ground_truth, list) else []:
        if isinstance(call, Mapping):
            names.update((n, None) for n in call if isinstance(n, str))
    return list(names)


def _read_jsonl(archive: zipfile.ZipFile, member: str) -> list[dict[str, Any]]:
    """The JSON objects of one JSON-lines member of `archive`."""
    try:
        raw = archive.read(member).decode("utf-8")
    except KeyError as exc:
        raise ValueError(f"{member} is not in {archive.filename}") from exc
    rows: list[dict[str, Any]] = []
    for lineno, line in enumerate(raw.split("\n"), start=1):  # not splitlines(): U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{member}:{lineno}: {exc}") from exc
        if isinstance(row, dict):
            rows.append(row)
    return rows


def load(wheel: Path, categories: Sequence[str] = CATEGORIES, *,
         split_variants: bool = False) -> Dataset:
    """Read `categories` from the bfcl-eval wheel (no extraction) into skills and queries.

    One skill per function name: BFCL repeats many functions across items with reworded
    descriptions and other parameter lists, and those are one tool (the first occurrence
    gives the skill its text). `split_variants` makes one skill per (name, description)
    instead; relevance then hinges on which rewording an item carried.
    """
    builder = _Builder(split_variants)
    with zipfile.ZipFile(wheel) as archive:
        for category in categories:
            builder.stats.setdefault(f"queries_{category}", 0)
            items = _read_jsonl(archive, f"{DATA_DIR}/BFCL_v4_{category}.json")
            answers = _read_jsonl(archive, f"{DATA_DIR}/possible_answer/BFCL_v4_{category}.json")
            truth = {str(row.get("id")): row.get("ground_truth") for row in answers}
            for item in items:
                builder.add(category, item, truth.get(str(item.get("id"))))
    return builder.dataset()


# --- metrics (binary relevance) --------------------------------------------------------------


def _top(ranked: Sequence[str], k: int) -> list[str]:
    """The first `k` distinct entries of `ranked` (a repeated name counts once)."""
    return list(dict.fromkeys(ranked))[: max(k, 0)]


def ndcg_at_k(ranked: Sequence[str], relevant: AbstractSet[str], k: int) -> float:
    """nDCG@k: gains 1/log2(rank + 1), ideal = min(len(relevant), k) relevant at the top."""
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    if ideal == 0:
        return 0.0
    gains = sum(1 / math.log2(rank + 1)
                for rank, doc in enumerate(_top(ranked, k), start=1) if doc in relevant)
    return gains / ideal


def recall_at_k(ranked: Sequence[str], relevant: AbstractSet[str], k: int) -> float:
    """The fraction of `relevant` found in the top `k`; 0 when nothing is relevant."""
    if not relevant:
        return 0.0
    return len(set(_top(ranked, k)) & set(relevant)) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: AbstractSet[str]) -> float:
    """1 / rank of the first relevant entry; 0 if none is ranked."""
    for rank, doc in enumerate(dict.fromkeys(ranked), start=1):
        if doc in relevant:
            return 1 / rank
    return 0.0


def evaluate(runs: Mapping[str, Sequence[str]], queries: Sequence[Query]) -> dict[str, float]:
    """Mean ndcg@10, recall@1/5/10 and mrr over `queries`; a query not in `runs` ranks nothing."""
    if not queries:
        raise ValueError("evaluate() needs at least one query")
    totals = dict.fromkeys(("ndcg@10", "recall@1", "recall@5", "recall@10", "mrr"), 0.0)
    for query in queries:
        ranked = runs.get(query.id, ())
        totals["ndcg@10"] += ndcg_at_k(ranked, query.relevant, 10)
        for k in (1, 5, 10):
            totals[f"recall@{k}"] += recall_at_k(ranked, query.relevant, k)
        totals["mrr"] += reciprocal_rank(ranked, query.relevant)
    return {metric: total / len(queries) for metric, total in totals.items()}
