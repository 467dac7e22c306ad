"""bench/nestful.py: NESTFUL's tools and requests as skills and queries (a fake wheel)."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from skills_hub.skill.manifest import parse_manifest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _import_nestful() -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # nestful imports its sibling bfcl by name
    return importlib.import_module("nestful")


nestful = _import_nestful()

SPECS = {
    "executable": [
        {"name": "SkyScrapperSearchAirport", "description": "Find airports by city name.",
         "query_parameters": {"query": {"type": "string", "description": "City or airport.",
                                        "required": True}}},
        {"name": "SkyScrapperFlightSearch", "description": "Search flights between airports.",
         "query_parameters": {"date": {"type": "string", "description": "YYYY-MM-DD",
                                       "required": True},
                              "cabinClass": {"type": "string", "description": "Cabin.",
                                             "required": False, "enum": ["economy", "first"],
                                             "default": "economy"}}},
    ],
    "glaive": [
        {"name": "analyze_sentiment", "description": "Analyze the sentiment of a text",
         "query_parameters": {"text": {"type": "string", "required": True,
                                       "description": "The text"}}},
    ],
    "sgd": [
        {"name": "Buses.FindBus", "description": "Find a bus itinerary between cities",
         "query_parameters": {"fare_type": {"description": "Fare", "required": False,
                                            "default_value": "Economy",
                                            "allowed_values": ["Economy", "Flexible"]}}},
        # the same tool name as an executable one: another skill name
        {"name": "SkyScrapperSearchAirport", "description": "Bus stations by city.",
         "query_parameters": {}},
    ],
}
DATA = {
    "executable": [
        {"input": "Flights from  New York to London on 2024-08-15",
         "output": [{"name": "SkyScrapperSearchAirport", "arguments": {}, "label": "var1"},
                    {"name": "SkyScrapperSearchAirport", "arguments": {}, "label": "var2"},
                    {"name": "SkyScrapperFlightSearch", "arguments": {}, "label": "var3"},
                    {"name": "var_result", "arguments": {"flights": "$var3$"}}]},
        {"input": "", "output": [{"name": "SkyScrapperFlightSearch", "arguments": {}}]},
    ],
    "glaive": [
        {"input": "How do people feel about this review?",
         "output": [{"name": "analyze_sentiment", "arguments": {}},
                    {"name": "not_specified_anywhere", "arguments": {}}]},
    ],
    "sgd": [
        {"input": "A bus from Portland to Seattle, and airports near Portland",
         "output": [{"name": "Buses.FindBus", "arguments": {}},
                    {"name": "SkyScrapperSearchAirport", "arguments": {}}]},
    ],
}


@pytest.fixture
def fake_wheel(tmp_path: Path) -> Path:
    path = tmp_path / "nestful.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for part, (data_member, spec_member) in nestful.PARTS.items():
            archive.writestr(data_member, json.dumps(DATA[part]))
            archive.writestr(spec_member, json.dumps(SPECS[part]))
    return path


def test_load_makes_a_skill_per_tool_and_a_query_per_request(fake_wheel: Path) -> None:
    data = nestful.load(fake_wheel)
    assert [s.name for s in data.skills] == [
        "sky-scrapper-search-airport", "sky-scrapper-flight-search", "analyze-sentiment",
        "buses-find-bus", "sky-scrapper-search-airport-2"]
    queries = {q.id: q for q in data.queries}
    assert set(queries) == {"executable_0", "glaive_0", "sgd_0"}  # the empty request is out
    # Each tool once, the closing var_result pseudo-call left out, whitespace collapsed.
    assert queries["executable_0"].relevant == {"sky-scrapper-search-airport",
                                                "sky-scrapper-flight-search"}
    assert queries["executable_0"].text == "Flights from New York to London on 2024-08-15"
    # A tool name is resolved within its own part.
    assert queries["sgd_0"].relevant == {"buses-find-bus", "sky-scrapper-search-airport-2"}
    assert queries["glaive_0"].relevant == {"analyze-sentiment"}
    assert data.stats["gt_names_missing"] == 1 and data.stats["skipped_no_relevant"] == 1
    assert data.stats["queries_multi_relevant"] == 2


def test_skills_are_valid_skill_md_with_their_parameters(fake_wheel: Path) -> None:
    data = nestful.load(fake_wheel)
    by_name = {s.name: s for s in data.skills}
    flight = by_name["sky-scrapper-flight-search"]
    manifest = parse_manifest(nestful.bfcl.skill_md(flight), dirname=flight.name)
    assert manifest.description == "Search flights between airports."
    assert "- `date` (string, required): YYYY-MM-DD" in flight.body
    assert '`cabinClass` (string, optional): Cabin. One of: `"economy"`, `"first"`. ' \
           'Default: `"economy"`.' in flight.body
    bus = by_name["buses-find-bus"]
    assert '`fare_type` (string, optional): Fare One of: `"Economy"`, `"Flexible"`. ' \
           'Default: `"Economy"`.' in bus.body
    assert "This function takes no parameters." in by_name["sky-scrapper-search-airport-2"].body


def test_the_wheel_is_checked_against_its_pinned_digest(tmp_path: Path) -> None:
    wrong = tmp_path / nestful.WHEEL_FILE
    wrong.write_bytes(b"not the wheel")
    with pytest.raises(RuntimeError, match="not the pinned"):
        nestful.fetch_wheel(tmp_path)
    assert hashlib.sha256(b"not the wheel").hexdigest() != nestful.WHEEL_SHA256
