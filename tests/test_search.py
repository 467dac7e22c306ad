"""Search through the registry and the API: keyword, semantic, hybrid, ranking, filters,
paging, duplicates and gaps. Real SQLite, real git, the real MiniLM model (shared)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, OPERATOR, Principal
from skills_hub.config import Settings
from skills_hub.ranking.quality import decay_factor
from skills_hub.search.embedder import DIM, Embedder
from skills_hub.services import Registry
from skills_hub.skill.bundle import from_files
from skills_hub.web.app import create_app

from .conftest import send_outcomes, skill_md

SKILLS = {
    "csv-trend-chart": ("Turns a sales CSV export into a monthly trend chart (PNG).",
                        "Group rows by month, sum revenue and plot a line chart.", "data, charts"),
    "release-notes": ("Writes release notes from merged pull requests since the last tag.",
                      "List merged PRs, group by label, write a changelog section.", "git"),
    "dockerfile-review": ("Reviews a Dockerfile for size, caching and security mistakes.",
                          "Check base image pins, layer order, root user.", "docker, security"),
    "invoice-parser": ("Extracts totals, dates and vendors from PDF invoices into JSON.",
                       "Read each page, find the totals table, emit JSON.", "pdf, finance"),
    "meeting-minutes": ("Summarises a meeting transcript into decisions and action items.",
                        "Read the transcript, list decisions, owners and due dates.", "writing"),
}


def publish(registry: Registry, namespace: str, name: str, description: str,
            body: str = "Steps.", tags: str = "", principal: Principal = OPERATOR):
    text = skill_md(name, description, body).decode()
    if tags:
        text = text.replace('tags: "testing, example"', f'tags: "{tags}"')
    bundle = from_files([(f"{name}/SKILL.md", text.encode(), False)])
    return registry.publish(namespace, bundle, principal=principal)


def names(registry: Registry, query: str, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    page = registry.search(query, principal=kwargs.pop("principal", ANONYMOUS), **kwargs)
    return [r.skill.name for r in page.results.results]


@pytest.fixture
def catalogue(semantic_registry: Registry) -> Registry:
    for name, (description, body, tags) in SKILLS.items():
        publish(semantic_registry, "team", name, description, body, tags)
    assert semantic_registry.search_engine.wait_indexed(60)
    return semantic_registry


@pytest.fixture
def keyword_registry(registry: Registry) -> Registry:
    for name, (description, body, tags) in SKILLS.items():
        publish(registry, "team", name, description, body, tags)
    return registry


# -- keyword ---------------------------------------------------------------------------------


def test_keyword_search_without_the_model_says_so(keyword_registry: Registry) -> None:
    page = keyword_registry.search("chart", principal=ANONYMOUS)
    assert (page.results.mode, page.results.semantic) == ("keyword", "off")
    assert [r.skill.name for r in page.results.results] == ["csv-trend-chart"]
    assert page.results.gap is None
    # Asking for semantic explicitly is served by keyword too, and says so.
    assert keyword_registry.search("chart", principal=ANONYMOUS,
                                   mode="semantic").results.mode == "keyword"


def test_name_and_description_outrank_the_body(registry: Registry) -> None:
    publish(registry, "team", "body-mention", "Formats tables.", body="Works with invoices.")
    publish(registry, "team", "invoice-tool", "Handles invoices end to end.")
    assert names(registry, "invoices") == ["invoice-tool", "body-mention"]


def test_prefix_matching_for_search_as_you_type(keyword_registry: Registry) -> None:
    assert names(keyword_registry, "dockerf") == ["dockerfile-review"]
    assert names(keyword_registry, "release no") == ["release-notes"]


def test_all_words_rank_above_any_word(keyword_registry: Registry) -> None:
    found = names(keyword_registry, "monthly chart of meeting")
    assert found[0] == "csv-trend-chart" or found[0] == "meeting-minutes"
    both = names(keyword_registry, "monthly chart")
    assert both == ["csv-trend-chart"]


def test_snippets_highlight_matches_and_escape_html(client: TestClient,
                                                    registry: Registry) -> None:
    publish(registry, "team", "html-escape", "Escapes <script> tags in exported reports.")
    body = client.get("/api/v1/search", params={"q": "exported"}).json()
    result = body["results"][0]
    assert "\x02" not in result["snippet"] and "exported" in result["snippet"]
    assert "<mark>exported</mark>" in result["snippet_html"]
    assert "<script>" not in result["snippet_html"] and "&lt;script&gt;" in result["snippet_html"]


HOSTILE = ['"', "'", 'a"b', "NEAR(", "NEAR(a b", "*", "a*", "(", ")", "((a)", "a OR",
           "AND NOT", "name:csv", "{name}: x", "-x", "^x", "\x00", "x" * 1000, "( " * 500,
           '"' * 1000, "%", "_", "\\", "'; DROP TABLE skills; --", "\u202e", "日本語の検索"]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_get_results_or_nothing_never_an_error(client: TestClient,
                                                               registry: Registry,
                                                               query: str) -> None:
    publish(registry, "team", "near-words", "NEAR and OR are plain words here.")
    for params in ({"q": query}, {"q": query, "mode": "keyword", "sort": "recent"},
                   {"q": query, "tag": "x"}):
        response = client.get("/api/v1/search", params=params)
        assert response.status_code == 200, response.text
        assert isinstance(response.json()["results"], list)


def test_bad_parameters_are_400_with_the_field(client: TestClient) -> None:
    for params, field in (({"q": "x", "mode": "psychic"}, "mode"),
                          ({"q": "x", "sort": "random"}, "sort"),
                          ({"q": "x", "trust": "famous"}, "trust"),
                          ({"q": "x", "verdict": "fine"}, "verdict")):
        response = client.get("/api/v1/search", params=params)
        assert response.status_code == 400
        assert response.json()["problems"][0]["field"] == field
    assert client.get("/api/v1/search", params={"q": "x", "updated_since": "last week"}
                      ).status_code == 400
    assert client.get("/api/v1/search", params={"q": "x" * 1001}).status_code == 400
    assert client.get("/api/v1/search", params={"q": "x", "cursor": "!!"}).status_code == 400


# -- semantic and hybrid ------------------------------------------------------------------------


def test_hybrid_finds_the_skill_for_an_agents_request(catalogue: Registry) -> None:
    page = catalogue.search("a skill that turns a sales CSV into a monthly trend chart",
                            principal=ANONYMOUS)
    assert (page.results.mode, page.results.semantic) == ("hybrid", "ready")
    assert page.results.results[0].skill.name == "csv-trend-chart"
    assert page.results.gap is not None and not page.results.gap.detected


def test_semantic_finds_a_paraphrase_with_no_shared_word(catalogue: Registry) -> None:
    query = "condense a conversation recording into conclusions and tasks"
    assert names(catalogue, query, mode="keyword") == []
    assert names(catalogue, query, mode="semantic")[0] == "meeting-minutes"
    assert names(catalogue, query)[0] == "meeting-minutes"


def test_an_exact_name_match_is_first(catalogue: Registry) -> None:
    publish(catalogue, "team", "chart", "Draws any chart from a table; a trend chart too.")
    for query in ("chart", "team/chart", "Chart"):
        page = catalogue.search(query, principal=ANONYMOUS)
        first = page.results.results[0]
        assert first.skill.name == "chart" and first.parts["exact_name"] is True
    # Another namespace's name is no exact match: `team/chart` may still rank on its
    # words, but nothing is placed first for being named so.
    other = catalogue.search("other/chart", principal=ANONYMOUS).results.results
    assert other and not any(r.parts["exact_name"] for r in other)


def test_score_parts_explain_the_score(catalogue: Registry) -> None:
    page = catalogue.search("release notes from pull requests", principal=ANONYMOUS)
    top = page.results.results[0]
    parts = top.parts
    assert top.skill.name == "release-notes"
    assert parts["keyword"]["rank"] == 1 and parts["semantic"]["rank"] == 1
    assert parts["relevance"] == pytest.approx(1.0)
    assert parts["new_skill_floor"] is True and parts["wilson"] == 0.0
    expected = parts["relevance"] * (0.9 + 0.1 * parts["quality"])
    assert parts["score"] == pytest.approx(expected, abs=1e-5)
    assert top.score == pytest.approx(parts["score"], abs=1e-5)


def test_reported_success_lifts_a_skill_among_equally_relevant_ones(
        semantic_registry: Registry) -> None:
    for name in ("pdf-merge-a", "pdf-merge-b"):
        publish(semantic_registry, "team", name, "Merges PDF files into one document.")
    assert semantic_registry.search_engine.wait_indexed(60)
    send_outcomes(semantic_registry, "team", "pdf-merge-b", ["success"] * 40)
    page = semantic_registry.search("merge pdf files", principal=ANONYMOUS)
    first, second = page.results.results[:2]
    assert first.skill.name == "pdf-merge-b"
    assert first.parts["wilson"] > 0.9 and first.parts["successes"] == pytest.approx(40)
    assert second.parts["new_skill_floor"] is True
    # Outcomes decay: the same successes a year ago weigh far less.
    old = datetime.now(UTC) - timedelta(days=300)
    send_outcomes(semantic_registry, "team", "pdf-merge-a", ["failure"] * 40, at=old)
    stats = {r.skill.name: r.parts for r in
             semantic_registry.search("merge pdf files", principal=ANONYMOUS).results.results}
    assert stats["pdf-merge-a"]["failures"] == pytest.approx(40 * decay_factor(300 * 86400),
                                                             rel=1e-3)


# -- filters, sorts, paging ------------------------------------------------------------------------


def test_filters_namespace_tag_trust_verdict_and_updated_since(catalogue: Registry) -> None:
    publish(catalogue, "other", "chart-maker", "Makes a chart from CSV data.", tags="charts")
    assert set(names(catalogue, "chart")) == {"csv-trend-chart", "chart-maker"}
    assert names(catalogue, "chart", namespace="other") == ["chart-maker"]
    assert names(catalogue, "chart", tag="charts", namespace="team") == ["csv-trend-chart"]
    assert names(catalogue, "", tag="security") == ["dockerfile-review"]
    catalogue.store.outcomes.change_trust("team", "csv-trend-chart", "community", "verified",
                                          "test",
                                 "test")
    assert names(catalogue, "chart", trust="verified") == ["csv-trend-chart"]
    catalogue.set_trust("other", "chart-maker", "blocked", "spam", OPERATOR)
    assert names(catalogue, "chart") == ["csv-trend-chart"]  # blocked skills never show
    assert names(catalogue, "chart", verdict="safe") == ["csv-trend-chart"]
    assert names(catalogue, "chart", verdict="caution") == []
    future = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert names(catalogue, "chart", updated_since=future) == []
    assert names(catalogue, "chart", updated_since="2000-01-01") == ["csv-trend-chart"]


def test_filters_hold_in_the_semantic_ranking_too(catalogue: Registry) -> None:
    query = "summarise a meeting held about pdf invoices"
    assert set(names(catalogue, query, mode="semantic")[:2]) == {"meeting-minutes",
                                                                "invoice-parser"}
    assert names(catalogue, query, mode="semantic", tag="pdf") == ["invoice-parser"]
    assert names(catalogue, query, mode="semantic", namespace="nobody") == []


def test_sorts(keyword_registry: Registry) -> None:
    skill = keyword_registry.store.catalogue.get_skill("team", "invoice-parser")
    assert skill is not None
    for _ in range(3):
        keyword_registry.store.catalogue.count_download(skill.id)
    assert names(keyword_registry, "", sort="installs")[0] == "invoice-parser"
    assert names(keyword_registry, "", sort="recent")[0] == "meeting-minutes"
    send_outcomes(keyword_registry, "team", "release-notes", ["success"] * 30)
    assert names(keyword_registry, "", sort="rating")[0] == "release-notes"
    # With a query, the sort orders the matching skills only.
    assert set(names(keyword_registry, "read")) == {"invoice-parser", "meeting-minutes"}
    assert names(keyword_registry, "read", sort="installs")[0] == "invoice-parser"
    # Skills with every word come first by relevance; any-word matches follow.
    assert names(keyword_registry, "read transcript") == ["meeting-minutes", "invoice-parser"]


def test_cursor_pages_cover_the_results_once(registry: Registry) -> None:
    for i in range(23):
        publish(registry, "team", f"lint-rule-{i}", f"Lint rule number {i} for Python code.")
    everything = names(registry, "lint python", limit=100)
    assert len(everything) == 23
    seen: list[str] = []
    cursor = None
    while True:
        page = registry.search("lint python", principal=ANONYMOUS, limit=10, cursor=cursor)
        seen += [r.skill.name for r in page.results.results]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == everything
    with pytest.raises(Exception, match="another search"):
        registry.search("something else", principal=ANONYMOUS, cursor=registry.search(
            "lint python", principal=ANONYMOUS, limit=5).next_cursor)


# -- visibility, duplicates, gaps ---------------------------------------------------------------


def test_private_skills_stay_private_in_every_mode(semantic_registry: Registry) -> None:
    token = semantic_registry.create_token("secret", private=True)
    owner = semantic_registry.authenticate(token)
    publish(semantic_registry, "secret", "payroll-export", "Exports payroll to the bank.",
            principal=owner)
    assert semantic_registry.search_engine.wait_indexed(60)
    for mode in ("keyword", "semantic", "hybrid"):
        assert names(semantic_registry, "payroll bank export", mode=mode) == []
        assert names(semantic_registry, "payroll bank export", mode=mode,
                     principal=owner) == ["payroll-export"]
    # A publisher elsewhere is never told a private skill is similar to theirs.
    outcome = publish(semantic_registry, "team", "payroll-export-2",
                      "Exports payroll to the bank.")
    assert outcome.duplicates == ()


def test_publish_names_near_duplicates_and_still_publishes(catalogue: Registry,
                                                           tmp_path: Path) -> None:
    outcome = publish(catalogue, "other", "csv-monthly-chart",
                      "Turns a sales CSV export into a monthly trend chart (PNG image).",
                      "Group rows by month, sum revenue and plot a line chart.", "data, charts")
    assert outcome.status == "published"
    assert outcome.duplicates is not None
    assert [(d.skill.namespace, d.skill.name) for d in outcome.duplicates] == [
        ("team", "csv-trend-chart")]
    assert outcome.duplicates[0].similarity >= 0.9
    # A new version of the same skill is not its own duplicate.
    again = publish(catalogue, "team", "csv-trend-chart",
                    "Turns a sales CSV export into a monthly trend chart (SVG).",
                    "Group rows by month, sum revenue and plot a line chart.", "data, charts")
    assert again.duplicates is not None
    assert ("team", "csv-trend-chart") not in {(d.skill.namespace, d.skill.name)
                                               for d in again.duplicates}
    distinct = publish(catalogue, "other", "haiku-writer", "Writes haiku about the seasons.")
    assert distinct.duplicates == ()


def test_gaps(catalogue: Registry) -> None:
    gap = catalogue.gap("calibrate a telescope mount for astrophotography",
                        principal=ANONYMOUS)
    assert gap is not None and gap.detected and gap.best_similarity < 0.3
    covered = catalogue.gap("summarise the meeting transcript", principal=ANONYMOUS)
    assert covered is not None and not covered.detected
    assert covered.best == ("team", "meeting-minutes")


# -- the vectors: content-addressed, in step, survive reindex ----------------------------------


def _vector_count(registry: Registry) -> int:
    return registry.store.db.connection().execute("SELECT count(*) FROM embeddings").fetchone()[0]


@pytest.mark.sqlite_only
def test_unchanged_text_is_never_embedded_twice(catalogue: Registry) -> None:
    before = _vector_count(catalogue)
    text = skill_md("release-notes", SKILLS["release-notes"][0], SKILLS["release-notes"][1])
    text = text.replace(b'tags: "testing, example"', b'tags: "git"')
    bundle = from_files([("release-notes/SKILL.md", text, False),
                         ("release-notes/scripts/notes.py", b"print('notes')\n", False)])
    outcome = catalogue.publish("team", bundle, principal=OPERATOR)
    assert outcome.status == "published" and outcome.version == "0.1.1"
    assert _vector_count(catalogue) == before
    # A full reindex from git finds every vector again: nothing to embed.
    catalogue.reconcile(full=True)
    assert catalogue.store.vectors.embed_jobs() == []
    assert names(catalogue, "changelog from merged PRs", mode="semantic")[0] == "release-notes"


def test_an_upgrade_makes_every_vector_again_with_the_new_recipe(catalogue: Registry) -> None:
    """A registry whose vectors an older model or text recipe made (another `model` on the
    stored vector, another digest) gets them made again at start, by the worker."""
    skill = catalogue.store.catalogue.get_skill("team", "invoice-parser")
    assert skill is not None
    job = catalogue.store.vectors.skill_text(skill.id)
    assert job is not None and job.embed_sha256
    current = catalogue.search_engine.vectors.get(skill.id)
    old = np.zeros(DIM, dtype=np.float32)
    old[0] = 1.0  # what an older recipe left: another digest, another model, its vector
    catalogue.store.vectors.restamp_vectors([(skill.id, "0" * 64, "older-model/128",
                                              old.tobytes())])
    assert [j.skill_id for j in catalogue.store.vectors.stale_vectors(
        catalogue.embedder.skill_model_id)] == [skill.id]
    reopened = Registry(catalogue.settings, embedder=catalogue.embedder)
    reopened.start()
    try:
        assert reopened.search_engine.wait_indexed(60)
        assert reopened.store.vectors.stale_vectors(catalogue.embedder.skill_model_id) == []
        again = reopened.store.vectors.skill_text(skill.id)
        assert again is not None and again.embed_sha256 == job.embed_sha256
        assert np.allclose(reopened.search_engine.vectors.get(skill.id), current, atol=1e-5)
        assert names(reopened, "pull totals out of PDF bills", mode="semantic")[0] == \
            "invoice-parser"
    finally:
        reopened.close()


def test_vectors_are_written_with_the_version(catalogue: Registry, tmp_path: Path) -> None:
    publish(catalogue, "team", "sql-explainer", "Explains slow SQL queries with EXPLAIN plans.")
    reopened = Registry(catalogue.settings, embedder=catalogue.embedder)
    reopened.store.db.migrate()
    reopened.search_engine.load_vectors()
    skill = reopened.store.catalogue.get_skill("team", "sql-explainer")
    assert skill is not None and skill.id in reopened.search_engine.vectors
    reopened.store.close()


def test_model_loads_in_the_background_and_keyword_serves_meanwhile(
        tmp_path: Path, embedder: Embedder) -> None:
    fresh = Embedder()  # not loaded: `start` begins loading on a thread
    registry = Registry(Settings(home=tmp_path / "bg", seed=False), embedder=fresh)
    registry.start()
    try:
        publish(registry, "team", "csv-trend-chart", SKILLS["csv-trend-chart"][0])
        page = registry.search("csv chart", principal=ANONYMOUS)
        state = page.results.semantic
        assert (page.results.mode, state) in {("keyword", "loading"), ("keyword", "indexing"),
                                              ("hybrid", "ready")}
        assert registry.search_engine.wait_indexed(120)
        page = registry.search("csv chart", principal=ANONYMOUS)
        assert (page.results.mode, page.results.semantic) == ("hybrid", "ready")
    finally:
        registry.close()


# -- API and page -----------------------------------------------------------------------------


@pytest.fixture
def semantic_client(catalogue: Registry) -> Iterator[TestClient]:
    with TestClient(create_app(catalogue.settings, catalogue)) as test_client:
        yield test_client


def test_search_api_returns_what_clients_need(semantic_client: TestClient) -> None:
    body = semantic_client.get("/api/v1/search", params={"q": "review my Dockerfile"}).json()
    assert body["mode"] == "hybrid" and body["semantic"] == "ready"
    assert body["gap"]["gap"] is False
    first = body["results"][0]
    for key in ("name", "namespace", "version", "description", "score_parts", "verdict",
                "trust", "install", "score"):
        assert key in first
    assert first["name"] == "dockerfile-review" and first["trust"] == "community"
    assert first["install"] == "skills-hub install team/dockerfile-review"


def test_gaps_api(semantic_client: TestClient, client: TestClient) -> None:
    far = semantic_client.get("/api/v1/gaps", params={"q": "tune a violin"}).json()
    assert far["gap"] is True and far["threshold"] == 0.3 and far["closest"]
    assert semantic_client.get("/api/v1/gaps").status_code == 400
    off = client.get("/api/v1/gaps", params={"q": "tune a violin"})  # model off
    assert off.status_code == 503 and off.json()["code"] == "semantic_unavailable"


def test_publish_response_and_page_name_near_duplicates(semantic_client: TestClient,
                                                        catalogue: Registry) -> None:
    token = catalogue.create_token("other")
    text = skill_md("invoice-reader", "Extracts totals, dates and vendors from PDF invoices "
                    "into JSON.", "Read each page, find the totals table, emit JSON.")
    response = semantic_client.post(
        "/api/v1/namespaces/other/skills", headers={"Authorization": f"Bearer {token}"},
        files=[("files", ("invoice-reader/SKILL.md", text, "text/markdown"))])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["duplicates_checked"] is True
    assert [d["name"] for d in body["duplicates"]] == ["invoice-parser"]
    assert "propos" in body["duplicates"][0]["hint"]
    page = semantic_client.get("/other/invoice-reader").text
    assert "Near-duplicates" in page and "/team/invoice-parser" in page


# -- the CLI ----------------------------------------------------------------------------------


def _cli(test_client: TestClient, *args: str):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from skills_hub.cli import main

    return CliRunner().invoke(main, ["--server", "http://testserver", *args],
                              obj={"http": test_client}, catch_exceptions=False)


def test_cli_search_with_scores_filters_and_gaps(semantic_client: TestClient) -> None:
    found = _cli(semantic_client, "search", "review my Dockerfile", "--scores")
    assert found.exit_code == 0, found.output
    assert found.stdout.startswith("team/dockerfile-review@0.1.0")
    assert "score " in found.stdout and "relevance" in found.stdout and "semantic #1" in \
        found.stdout
    assert "(hybrid search)" in found.stderr
    tagged = _cli(semantic_client, "search", "review", "--tag", "pdf", "--json")
    assert {r["name"] for r in json.loads(tagged.stdout)["results"]} <= {"invoice-parser"}
    listed = _cli(semantic_client, "search", "--sort", "recent", "--json")
    assert len(json.loads(listed.stdout)["results"]) == len(SKILLS)
    gap = _cli(semantic_client, "gaps", "tune a violin")
    assert gap.exit_code == 0 and gap.stdout.startswith("gap: closest is team/")
    covered = _cli(semantic_client, "gaps", "summarise a meeting transcript", "--json")
    assert json.loads(covered.stdout)["gap"] is False
    bad = _cli(semantic_client, "search", "x", "--sort", "random")
    assert bad.exit_code == 2


def test_two_server_processes_on_one_home_stay_in_step(catalogue: Registry) -> None:
    """A second registry on the same home (as a second uvicorn worker would be) sees the
    first one's publishes and rebuilds in its semantic index."""
    other = Registry(catalogue.settings, embedder=catalogue.embedder)
    other.start()
    try:
        query = "explain why a SQL query is slow using its query plan"
        assert "sql-explainer" not in names(other, query, mode="semantic")
        publish(catalogue, "team", "sql-explainer", "Explains slow SQL queries with EXPLAIN "
                "plans and suggests indexes.")
        # SQLite's processes see a commit at once; PostgreSQL's nodes within a notification
        # (milliseconds; the aim is under a second).
        assert within(1.0, lambda: names(other, query, mode="semantic")[:1]
                      == ["sql-explainer"])
        catalogue.reconcile(full=True)  # ids are reassigned: the other process reloads
        assert within(1.0, lambda: names(other, query, mode="semantic")[:1]
                      == ["sql-explainer"])
        assert len(other.search_engine.vectors) == len(SKILLS) + 1
    finally:
        other.close()


def within(seconds: float, check: Callable[[], bool]) -> bool:
    """Whether `check` comes true within `seconds` (asked every 10 ms)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_search_page_shows_mode_filters_snippets_and_scores(semantic_client: TestClient) -> None:
    page = semantic_client.get("/search", params={"q": "monthly trend chart"})
    assert page.status_code == 200
    text = page.text
    assert '<form class="filters"' in text and '<select name="sort">' in text
    assert '<option value="team">team</option>' in text
    assert re.search(r'<span class="mode"[^>]*>hybrid</span>', text)
    first = text[text.index('<li class="skill">'):text.index("</li>")]
    assert "csv-trend-chart" in first and "<mark>" in first
    assert '<details class="score">' in first and "relevance" in first
    fragment = semantic_client.get("/search", params={"q": "chart", "tag": "docker"},
                                   headers={"HX-Request": "true"})
    assert fragment.text.lstrip().startswith('<div id="results">')
    assert "csv-trend-chart" not in fragment.text
    gap = semantic_client.get("/search", params={"q": "tune a violin for a concert"})
    assert "No skill here is close to this task" in gap.text
