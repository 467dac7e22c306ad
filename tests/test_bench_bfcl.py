"""bench/bfcl.py: metrics, skill names, SKILL.md text and the wheel conversion (fake wheel)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from skills_hub.skill.manifest import parse_manifest, split_frontmatter

REPO_ROOT = Path(__file__).resolve().parents[1]


def _import_bfcl() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_bfcl", REPO_ROOT / "bench" / "bfcl.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


bfcl = _import_bfcl()


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_hand_computed() -> None:
    ranked = ["x", "r1", "y", "r2"]
    relevant = {"r1", "r2"}
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert bfcl.ndcg_at_k(ranked, relevant, 10) == pytest.approx(expected)
    assert bfcl.recall_at_k(ranked, relevant, 1) == 0.0
    assert bfcl.recall_at_k(ranked, relevant, 2) == 0.5
    assert bfcl.recall_at_k(ranked, relevant, 5) == 1.0
    assert bfcl.reciprocal_rank(ranked, relevant) == 0.5


def test_metrics_perfect_and_empty_rankings() -> None:
    assert bfcl.ndcg_at_k(["a", "b", "c"], {"a", "b"}, 10) == pytest.approx(1.0)
    assert bfcl.reciprocal_rank(["a"], {"a"}) == 1.0
    assert bfcl.ndcg_at_k([], {"a"}, 10) == 0.0
    assert bfcl.recall_at_k([], {"a"}, 10) == 0.0
    assert bfcl.reciprocal_rank([], {"a"}) == 0.0


def test_metrics_with_nothing_relevant_are_zero() -> None:
    assert bfcl.ndcg_at_k(["a", "b"], set(), 10) == 0.0
    assert bfcl.recall_at_k(["a", "b"], set(), 10) == 0.0
    assert bfcl.reciprocal_rank(["a", "b"], set()) == 0.0


def test_k_smaller_than_relevant() -> None:
    relevant = {"a", "b", "c"}
    # Ideal DCG@2 has two ones, so a perfect top 2 scores 1 though recall@2 is only 2/3.
    assert bfcl.ndcg_at_k(["a", "b", "c"], relevant, 2) == pytest.approx(1.0)
    assert bfcl.recall_at_k(["a", "b", "c"], relevant, 2) == pytest.approx(2 / 3)
    assert bfcl.ndcg_at_k(["x", "a"], relevant, 1) == 0.0
    assert bfcl.ndcg_at_k(["x", "a"], relevant, 2) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert bfcl.ndcg_at_k(["a"], relevant, 0) == 0.0


def test_repeated_entries_count_once() -> None:
    assert bfcl.ndcg_at_k(["a", "a", "a"], {"a"}, 10) == pytest.approx(1.0)
    assert bfcl.recall_at_k(["x", "x", "a"], {"a"}, 2) == 1.0
    assert bfcl.reciprocal_rank(["x", "x", "a"], {"a"}) == 0.5


def test_evaluate_means_and_missing_runs() -> None:
    queries = [
        bfcl.Query(id="q1", text="one", relevant=frozenset({"r1", "r2"})),
        bfcl.Query(id="q2", text="two", relevant=frozenset({"s"})),
        bfcl.Query(id="q3", text="three", relevant=frozenset({"t"})),  # not in runs
    ]
    runs = {"q1": ["x", "r1", "y", "r2"], "q2": ["s", "z"], "other": ["t"]}
    scores = bfcl.evaluate(runs, queries)
    assert set(scores) == {"ndcg@10", "recall@1", "recall@5", "recall@10", "mrr"}
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert scores["ndcg@10"] == pytest.approx((ndcg_q1 + 1 + 0) / 3)
    assert scores["recall@1"] == pytest.approx((0 + 1 + 0) / 3)
    assert scores["recall@5"] == pytest.approx((1 + 1 + 0) / 3)
    assert scores["recall@10"] == pytest.approx((1 + 1 + 0) / 3)
    assert scores["mrr"] == pytest.approx((0.5 + 1 + 0) / 3)


def test_evaluate_needs_queries() -> None:
    with pytest.raises(ValueError):
        bfcl.evaluate({}, [])


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("function_name", "expected"), [
    ("calculate_triangle_area", "calculate-triangle-area"),
    ("math.factorial", "math-factorial"),
    ("ChaDri.change_drink", "cha-dri-change-drink"),
    ("getHTTPResponse", "get-http-response"),
    ("Movies_3_FindMovies", "movies-3-find-movies"),
    ("GET_PARCEL_STATE", "get-parcel-state"),
    ("calculate_BMI", "calculate-bmi"),
    ("base64Encode", "base64-encode"),
    ("__init__", "init"),
    ("a..b__c--d", "a-b-c-d"),
    ("café.Menü", "cafe-menu"),
    ("天气_forecast", "forecast"),
    ("天气", "fn"),
    ("!!!", "fn"),
    ("", "fn"),
    ("x", "x"),
])
def test_slug(function_name: str, expected: str) -> None:
    assert bfcl.slug(function_name) == expected
    assert bfcl.NAME_RE.match(expected)


def test_slug_truncates_long_names_without_trailing_hyphen() -> None:
    long_name = "a" * 63 + "_bbbb"
    assert bfcl.slug(long_name) == "a" * 63
    name = bfcl.slug("word_" * 40)
    assert len(name) <= 64 and bfcl.NAME_RE.match(name)
    assert not name.endswith("-")
    reserved = bfcl.slug("word_" * 40, reserve=3)
    assert len(reserved) <= 61 and not reserved.endswith("-")


def test_unique_name_suffixes_fit_in_64() -> None:
    base = "segment_" * 20
    taken = {bfcl.slug(base)}
    second = bfcl._unique_name(base, taken)
    assert second.endswith("-2") and len(second) <= 64 and bfcl.NAME_RE.match(second)
    taken |= {second}
    third = bfcl._unique_name(base, taken)
    assert third.endswith("-3") and len(third) <= 64 and bfcl.NAME_RE.match(third)


# --- SKILL.md --------------------------------------------------------------------------------


@pytest.mark.parametrize("description", [
    "Plain text.",
    "key: value # not a comment, - not a list, 'quotes' and \"double\" quotes",
    "- starts like a list item",
    "yes",
    "123",
    "Unicode: café, 天气, emoji 🌦",
    "x " * 499 + "end",
])
def test_skill_md_round_trips(description: str) -> None:
    doc = bfcl.SkillDoc(name="get-weather", description=description,
                        body="# get_weather\n\nBody text.\n\n---\n\nafter a rule",
                        function="get_weather")
    text = bfcl.skill_md(doc)
    assert text.startswith("---\nname: get-weather\n")
    assert text.endswith("after a rule\n") and not text.endswith("\n\n")
    front, body = split_frontmatter(text)
    assert yaml.safe_load(front) == {"name": "get-weather", "description": description}
    assert body == "\n" + doc.body + "\n"
    manifest = parse_manifest(text, dirname="get-weather", strict=True)
    assert manifest.name == "get-weather" and manifest.description == description


# --- conversion from a fake wheel ------------------------------------------------------------


def _fn(name: str, description: str, properties: dict[str, Any] | None = None,
        required: list[str] | None = None) -> dict[str, Any]:
    return {"name": name, "description": description,
            "parameters": {"type": "dict", "properties": properties or {},
                           "required": required or []}}


FACT_A = _fn("math.factorial", "Compute n!\u2028 exactly.",
             {"number": {"type": "integer", "description": "The number."}}, ["number"])
# The same function with its JSON keys in another order: must dedupe into FACT_A's skill.
FACT_A_REORDERED = {"parameters": {"required": ["number"], "properties": {
    "number": {"description": "The number.", "type": "integer"}}, "type": "dict"},
    "description": "Compute n!\u2028 exactly.", "name": "math.factorial"}
FACT_B = _fn("math.factorial", "Factorial of a number.",
             {"number": {"type": "integer", "description": "The number."}}, ["number"])
FACT_C = _fn("math_factorial", "Factorial, the other spelling.",
             {"n": {"type": "integer", "description": "n"}}, ["n"])
BMI = _fn("calculate_BMI", "Body mass index.",
          {"weight": {"type": "float", "description": "Weight  in\tkg."},
           "height": {"type": "float", "description": "Height in m."}}, ["weight", "height"])
NO_ARGS = _fn("getHTTPResponse", "   ")
LONG = _fn("describe_everything", "word\n\t" * 300)
WEATHER = _fn("get_current_weather", "Current weather for a place.", {
    "location": {"type": "string", "description": "City, State."},
    "unit": {"type": "string", "description": "Temperature unit.",
             "enum": ["celsius", "fahrenheit"], "default": "fahrenheit"},
    "options": {"type": "dict", "description": "Extras.", "properties": {
        "days": {"type": "integer", "description": "Days ahead.", "default": None}},
        "required": ["days"]},
    "tags": {"type": "array", "items": {"type": "string"}},
}, ["location"])
WEATHER_B = _fn("get_current_weather", "Current weather for a place.",
                {"location": {"type": "string", "description": "City only."}}, ["location"])


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}

ITEMS: dict[str, list[dict[str, Any]]] = {
    "simple_python": [
        {"id": "sp_0", "question": [[_user("What is 5 factorial?")]], "function": [FACT_A]},
        {"id": "sp_1", "question": [[_user("My BMI at 70 kg, 1.8 m?")]],
         "function": [FACT_A_REORDERED, BMI]},
        {"id": "sp_2", "question": [[_user("6!")]], "function": [FACT_B]},
        {"id": "sp_3", "question": [[_user("Fetch it.")]], "function": [NO_ARGS]},
        {"id": "sp_4", "question": [[_user("Describe.")]], "function": [LONG]},
    ],
    "live_multiple": [
        {"id": "lm_0", "question": [[SYSTEM, _user("Compute 7!"), _user("And my BMI.")]],
         "function": [FACT_C, BMI, WEATHER]},
        {"id": "lm_1", "question": [[SYSTEM]], "function": [WEATHER]},
        {"id": "lm_2", "question": [[_user("Weather in Paris?")], [_user("And tomorrow?")]],
         "function": [WEATHER_B]},
    ],
}
ANSWERS: dict[str, list[dict[str, Any]]] = {
    "simple_python": [
        {"id": "sp_0", "ground_truth": [{"math.factorial": {"number": [5]}}]},
        {"id": "sp_1", "ground_truth": [{"calculate_BMI": {"weight": [70.0], "height": [1.8]}}]},
        {"id": "sp_2", "ground_truth": [{"math.factorial": {"number": [6]}}]},
        {"id": "sp_3", "ground_truth": [{"missing.fn": {}}]},
        # sp_4 has no answer row.
    ],
    "live_multiple": [
        {"id": "lm_0", "ground_truth": [{"math_factorial": {"n": [7]}},
                                        {"calculate_BMI": {"weight": [1.0], "height": [1.0]}},
                                        {"calculate_BMI": {"weight": [2.0], "height": [2.0]}},
                                        {"ghost": {}}]},
        {"id": "lm_1", "ground_truth": [{"get_current_weather": {"location": ["Paris"]}}]},
        {"id": "lm_2", "ground_truth": [{"get_current_weather": {"location": ["Paris"]}}]},
    ],
}


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n"


@pytest.fixture
def fake_wheel(tmp_path: Path) -> Path:
    wheel = tmp_path / "bfcl_eval-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("bfcl_eval/__init__.py", "")
        for category, rows in ITEMS.items():
            archive.writestr(f"bfcl_eval/data/BFCL_v4_{category}.json", _jsonl(rows))
            archive.writestr(f"bfcl_eval/data/possible_answer/BFCL_v4_{category}.json",
                             _jsonl(ANSWERS[category]))
    return wheel


def test_load_skills_dedupe_and_suffixes(fake_wheel: Path) -> None:
    data = bfcl.load(fake_wheel, categories=("simple_python", "live_multiple"),
                     split_variants=True)
    assert [(s.name, s.function) for s in data.skills] == [
        ("math-factorial", "math.factorial"),
        ("calculate-bmi", "calculate_BMI"),
        ("math-factorial-2", "math.factorial"),
        ("get-http-response", "getHTTPResponse"),
        ("describe-everything", "describe_everything"),
        ("math-factorial-3", "math_factorial"),
        ("get-current-weather", "get_current_weather"),  # WEATHER_B merges into it
    ]
    for skill in data.skills:
        assert bfcl.NAME_RE.match(skill.name) and len(skill.name) <= 64
    assert data.stats["functions"] == 11
    assert data.stats["skills"] == 7
    assert data.stats["renamed"] == 2
    assert data.stats["renamed_same_function"] == 1
    assert data.stats["renamed_slug_collision"] == 1
    assert bfcl.load(fake_wheel, categories=("simple_python", "live_multiple"),
                     split_variants=True) == data


def test_load_makes_one_skill_per_function_name_by_default(fake_wheel: Path) -> None:
    data = bfcl.load(fake_wheel, categories=("simple_python", "live_multiple"))
    assert [(s.name, s.function) for s in data.skills] == [
        ("math-factorial", "math.factorial"),  # FACT_B's rewording merges into it
        ("calculate-bmi", "calculate_BMI"),
        ("get-http-response", "getHTTPResponse"),
        ("describe-everything", "describe_everything"),
        ("math-factorial-2", "math_factorial"),  # another function, same slug
        ("get-current-weather", "get_current_weather"),
    ]
    queries = {q.id: q for q in data.queries}
    assert queries["sp_2"].relevant == {"math-factorial"}
    assert queries["lm_0"].relevant == {"math-factorial-2", "calculate-bmi"}


def test_load_descriptions_and_bodies(fake_wheel: Path) -> None:
    data = bfcl.load(fake_wheel, categories=("simple_python", "live_multiple"))
    skills = {s.name: s for s in data.skills}
    assert skills["math-factorial"].description == "Compute n! exactly."
    assert skills["get-http-response"].description == "Call getHTTPResponse."
    assert skills["get-http-response"].body == (
        "# getHTTPResponse\n\nCall getHTTPResponse.\n\n## Parameters\n\n"
        "This function takes no parameters.")
    long = skills["describe-everything"].description
    assert len(long) <= 1000 and long.endswith(" word") and "  " not in long
    assert skills["calculate-bmi"].body == (
        "# calculate_BMI\n\nBody mass index.\n\n## Parameters\n\n"
        "- `weight` (float, required): Weight in kg.\n"
        "- `height` (float, required): Height in m.")
    assert skills["get-current-weather"].body.split("## Parameters\n\n")[1] == (
        "- `location` (string, required): City, State.\n"
        '- `unit` (string, optional): Temperature unit. One of: `"celsius"`, `"fahrenheit"`.'
        ' Default: `"fahrenheit"`.\n'
        "- `options` (dict, optional): Extras.\n"
        "  - `days` (integer, required): Days ahead. Default: `null`.\n"
        "- `tags` (array of string, optional)")
    for skill in skills.values():
        manifest = parse_manifest(bfcl.skill_md(skill), dirname=skill.name, strict=True)
        assert (manifest.name, manifest.description) == (skill.name, skill.description)


def test_load_queries(fake_wheel: Path) -> None:
    data = bfcl.load(fake_wheel, categories=("simple_python", "live_multiple"),
                     split_variants=True)
    queries = {q.id: q for q in data.queries}
    assert list(queries) == ["sp_0", "sp_1", "sp_2", "lm_0", "lm_2"]
    assert queries["sp_0"].relevant == {"math-factorial"}
    assert queries["sp_1"].relevant == {"calculate-bmi"}
    assert queries["sp_2"].relevant == {"math-factorial-2"}  # resolved within its own item
    assert queries["lm_0"].text == "Compute 7!\nAnd my BMI."  # system message left out
    assert queries["lm_0"].relevant == {"math-factorial-3", "calculate-bmi"}
    assert queries["lm_2"].text == "Weather in Paris?"  # first turn only
    # Same function and description, other parameters: the same skill.
    assert queries["lm_2"].relevant == {"get-current-weather"}
    stats = data.stats
    assert stats["items"] == 8
    assert stats["queries"] == 5
    assert stats["queries_simple_python"] == 3
    assert stats["queries_live_multiple"] == 2
    assert stats["queries_multi_relevant"] == 1
    assert stats["gt_names_missing"] == 2  # missing.fn in sp_3, ghost in lm_0
    assert stats["skipped_no_relevant"] == 1  # sp_3
    assert stats["skipped_no_ground_truth"] == 1  # sp_4
    assert stats["skipped_no_user_text"] == 1  # lm_1


def test_load_category_order_decides_suffixes(fake_wheel: Path) -> None:
    data = bfcl.load(fake_wheel, categories=("live_multiple",))
    assert [s.name for s in data.skills] == [
        "math-factorial", "calculate-bmi", "get-current-weather"]
    assert data.stats["queries_live_multiple"] == 2


def test_load_missing_category_is_an_error(fake_wheel: Path) -> None:
    with pytest.raises(ValueError, match="BFCL_v4_parallel.json"):
        bfcl.load(fake_wheel, categories=("parallel",))


# --- fetch_wheel (no network: pip is faked) --------------------------------------------------


def test_fetch_wheel_uses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = tmp_path / f"bfcl_eval-{bfcl.WHEEL_VERSION}-py3-none-any.whl"
    cached.write_bytes(b"")

    def no_pip(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pip must not run when the wheel is cached")

    monkeypatch.setattr(bfcl.subprocess, "run", no_pip)
    assert bfcl.fetch_wheel(tmp_path) == cached


def test_fetch_wheel_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    seen: dict[str, Any] = {}

    def fake_pip(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen["cmd"], seen["timeout"] = cmd, kwargs.get("timeout")
        target = Path(cmd[cmd.index("-d") + 1])
        (target / f"bfcl_eval-{bfcl.WHEEL_VERSION}-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(bfcl.subprocess, "run", fake_pip)
    wheel = bfcl.fetch_wheel(cache)
    assert wheel.parent == cache and wheel.name.startswith(f"bfcl_eval-{bfcl.WHEEL_VERSION}-")
    assert seen["cmd"] == [sys.executable, "-m", "pip", "download",
                           f"bfcl-eval=={bfcl.WHEEL_VERSION}", "--no-deps", "--quiet",
                           "-d", str(cache)]
    assert seen["timeout"] == 300


def test_fetch_wheel_reports_pip_failure(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(bfcl.subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError, match="No matching distribution"):
        bfcl.fetch_wheel(tmp_path)


def test_fetch_wheel_reports_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_pip(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(bfcl.subprocess, "run", slow_pip)
    with pytest.raises(RuntimeError, match="timed out"):
        bfcl.fetch_wheel(tmp_path)


def test_fetch_wheel_reports_a_missing_wheel(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def empty_pip(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(bfcl.subprocess, "run", empty_pip)
    with pytest.raises(RuntimeError, match="no bfcl_eval"):
        bfcl.fetch_wheel(tmp_path)
