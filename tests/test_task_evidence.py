"""Evidence per kind of task (`learning.tasks`): reports that name their task are embedded,
and a search ranks by the evidence of the tasks near its query, falling back to the global
numbers; the skill page and the outcomes API group a skill's tasks."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, OPERATOR
from skills_hub.domain import TaskStats
from skills_hub.errors import InvalidReport, NotFound
from skills_hub.learning import tasks
from skills_hub.learning.outcomes import RateLimiter, task_key
from skills_hub.ranking import explore
from skills_hub.ranking.quality import quality
from skills_hub.services import Registry
from skills_hub.skill.bundle import from_files
from skills_hub.web.app import create_app

from .conftest import skill_md, token_principal

DIM = 8


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[:len(values)] = values
    return v / np.linalg.norm(v)


def stats(key: str, s: int, f: int, *, age_days: float = 0.0, reporters: int = 1) -> TaskStats:
    return TaskStats(key, s, f, time.time() - age_days * 86_400, reporters)


# -- the kernel and the blend, on constructed vectors --------------------------------------

def test_a_repeat_of_a_reported_task_counts_in_full_and_an_unrelated_one_not_at_all() -> None:
    q = unit(1, 0)
    same, far = unit(1, 0), unit(0, 1)
    w = tasks.weights(q, np.vstack([same, far]))
    assert w[0] == pytest.approx(1.0) and w[1] == 0.0
    near = tasks.near(q, np.vstack([same, far]), [stats("a", 9, 1), stats("b", 0, 50)])
    assert near is not None and near.tasks == 1
    assert (near.successes, near.failures) == pytest.approx((9.0, 1.0), rel=1e-4)
    assert near.weight == pytest.approx(10 / (10 + tasks.PRIOR), rel=1e-4)


def test_closer_tasks_weigh_more_and_too_little_near_evidence_falls_back() -> None:
    q = unit(1, 0)
    close, middling = unit(0.95, 0.31), unit(0.7, 0.71)  # cosines 0.95 and 0.70
    w = tasks.weights(q, np.vstack([close, middling]))
    assert 1.0 > w[0] > w[1] > 0.0
    # One report near the query: under MIN_NEAR, the global numbers decide alone.
    assert tasks.near(q, close[None, :], [stats("a", 1, 0)]) is None
    assert tasks.near(q, np.zeros((0, DIM)), []) is None


def test_old_reports_of_a_task_weigh_less() -> None:
    q = unit(1, 0)
    fresh = tasks.near(q, q[None, :], [stats("a", 20, 0)])
    old = tasks.near(q, q[None, :], [stats("a", 20, 0, age_days=60)])
    assert fresh is not None and old is not None
    assert old.successes == pytest.approx(fresh.successes / 2, rel=1e-3)
    assert old.weight < fresh.weight


def test_the_near_evidence_moves_quality_by_its_weight_only() -> None:
    base = quality(50, 50, 0)  # a skill that works half the time overall
    good = tasks.Near(3, 40.0, 0.0, 0.91, 0.8)
    bad = tasks.Near(3, 0.0, 40.0, 0.0, 0.8)
    assert base.with_near(None) is base
    assert base.with_near(good).quality > base.quality > base.with_near(bad).quality
    assert base.with_near(good).quality == pytest.approx(
        0.8 * (0.2 * base.evidence + 0.8 * 0.91) + 0.2 * base.installs)
    assert base.with_near(good).parts()["task"] == good.parts()
    assert base.parts()["task"] is None


def test_exploration_draws_from_the_near_evidence_too() -> None:
    base = quality(50, 50, 0)
    qualities = {1: base.with_near(tasks.Near(2, 200.0, 0.0, 0.98, 0.95)),
                 2: base.with_near(tasks.Near(2, 0.0, 200.0, 0.0, 0.95))}
    for seed in range(50):
        draws = explore.explored(seed, qualities)
        assert draws == explore.explored(seed, qualities)
        assert draws[1][0] > 0.9 > 0.1 > draws[2][0]


def test_neighbourhoods_group_similar_tasks_and_show_only_labels_several_tokens_sent() -> None:
    a1, a2, b = unit(1, 0), unit(0.97, 0.24), unit(0, 1)
    rows = [stats("a1", 8, 2, reporters=1), stats("a2", 3, 0, reporters=2),
            stats("b", 1, 5, reporters=3)]
    labels = {"a1": "weekly chart for one client", "a2": "weekly chart", "b": None}
    groups = tasks.neighbourhoods(rows, np.vstack([a1, a2, b]), labels)
    assert [(g.tasks, g.successes, g.failures) for g in groups] == [(2, 11, 2), (1, 1, 5)]
    assert groups[0].label == "weekly chart"  # a1 was reported by one token only
    assert groups[1].label is None           # b's text held a secret: no label
    assert groups[0].wilson > groups[1].wilson


def test_a_label_is_folded_cut_and_never_holds_a_secret() -> None:
    assert tasks.label("  plot   weekly\nsales ") == "plot weekly sales"
    long = tasks.label("word " * 100)
    assert long is not None and len(long) == tasks.LABEL_CHARS and long.endswith("…")
    assert tasks.label("deploy with key AKIAIOSFODNN7EXAMPLF to prod") is None


# -- through the registry, with the real model -----------------------------------------------

SALES = ["monthly sales bar chart for the finance team",
         "bar chart of sales per month by region",
         "plot each month's revenue as bars"]
MAPS = ["map of customers by country",
        "world map shaded by number of users per country",
        "choropleth of orders per country"]


@pytest.fixture
def charts(semantic_registry: Registry) -> Registry:
    """Two chart skills of one name and text in two namespaces, so equally relevant to
    every query: team's does sales bar charts well and maps badly, crew's the other way
    round; overall both are even."""
    text = skill_md("charts", "Draw charts and maps from tabular data, such as bar charts, "
                              "line charts, maps by country.", "Steps.")
    for namespace in ("team", "crew"):
        semantic_registry.publish(namespace, from_files([("charts/SKILL.md", text, False)]),
                                  principal=OPERATOR)
    assert semantic_registry.search_engine.wait_indexed(60)
    report(semantic_registry, "charts", SALES, success=True)
    report(semantic_registry, "charts", MAPS, success=False)
    report(semantic_registry, "charts", SALES, success=False, namespace="crew")
    report(semantic_registry, "charts", MAPS, success=True, namespace="crew")
    return semantic_registry


def report(registry: Registry, name: str, texts: list[str], *, success: bool,
           per_text: int = 4, token: str = "reporters", namespace: str = "team") -> None:
    batch = [{"id": uuid.uuid4().hex, "version": "0.1.0",
              "outcome": "success" if success else "failure",
              **({} if success else {"failure_kind": "wrong_result"}),
              "client": {"id": f"c{n}-{i}"}, "task": f"{text} #{i}"}
             for n, text in enumerate(texts) for i in range(per_text)]
    registry.report_outcomes(namespace, name, {"outcomes": batch},
                             token_principal(registry, token))


def ranked(registry: Registry, query: str) -> list[tuple[str, dict[str, Any]]]:
    page = registry.search(query, principal=ANONYMOUS, mode="hybrid")
    return [(r.skill.namespace, r.parts) for r in page.results.results]


def test_each_kind_of_task_ranks_the_skill_that_works_for_it_first(charts: Registry) -> None:
    sales = ranked(charts, "bar chart of monthly sales")
    maps = ranked(charts, "map of users per country")
    assert [n for n, _ in sales] == ["team", "crew"]
    assert [n for n, _ in maps] == ["crew", "team"]
    good, bad = dict(sales)["team"], dict(sales)["crew"]
    assert good["relevance"] == bad["relevance"]
    # The global numbers are even: only the near evidence tells the two apart.
    assert good["wilson"] == bad["wilson"]
    assert good["task"]["wilson"] > 0.4 > 0.1 > bad["task"]["wilson"]
    assert 0 < good["task"]["weight"] < 1 and good["task"]["tasks"] >= 1
    assert good["quality"] > bad["quality"]


def test_a_query_far_from_every_reported_task_uses_the_global_numbers(charts: Registry) -> None:
    for _, parts in ranked(charts, "compress a folder into a zip archive"):
        assert parts["task"] is None


def test_keyword_search_and_reports_without_a_task_leave_the_score_as_it_was(
        charts: Registry) -> None:
    page = charts.search("bar chart monthly sales", principal=ANONYMOUS, mode="keyword")
    assert all(r.parts["task"] is None for r in page.results.results)


def test_a_task_is_embedded_once_and_a_refused_post_embeds_nothing(
        semantic_registry: Registry) -> None:
    registry = semantic_registry
    registry.publish("team", from_files([("solo/SKILL.md", skill_md("solo"), False)]),
                     principal=OPERATOR)
    model = registry.embedder.model_id
    bad = {"outcomes": [{"id": "r1", "version": "0.1.0", "outcome": "success",
                         "task": "summarise a meeting"},
                        {"id": "r2", "version": "9.9.9", "outcome": "success",
                         "task": "a task of a refused post"}]}
    with pytest.raises(InvalidReport):
        registry.report_outcomes("team", "solo", bad, token_principal(registry, "reporters"))
    keys = [task_key("summarise a meeting"), task_key("a task of a refused post")]
    assert registry.store.outcomes.task_vectors(model, keys) == {}
    report(registry, "solo", ["Summarise  a MEETING"], success=True, per_text=1)
    report(registry, "solo", ["summarise a meeting"], success=True, per_text=1,
           token="others")
    found = registry.store.outcomes.task_vectors(model, [task_key("summarise a meeting #0")])
    assert list(found) == [task_key("summarise a meeting #0")]
    vec = np.frombuffer(found[task_key("summarise a meeting #0")].vector, dtype=np.float32)
    assert vec.shape == (384,) and abs(float(vec @ vec) - 1.0) < 1e-4
    assert found[task_key("summarise a meeting #0")].label == "Summarise a MEETING #0"


def test_without_the_model_reports_keep_their_task_key_and_count_globally(
        registry: Registry) -> None:
    registry.publish("team", from_files([("solo/SKILL.md", skill_md("solo"), False)]),
                     principal=OPERATOR)
    report(registry, "solo", SALES, success=True)
    stats_ = registry.store.outcomes.task_stats([("team", "solo")])[("team", "solo")]
    assert sorted((s.successes, s.failures) for s in stats_) == [(1, 0)] * 12
    assert registry.store.outcomes.task_vectors(registry.embedder.model_id,
                                                [s.task_key for s in stats_]) == {}
    assert registry.task_neighbourhoods("team", "solo", ANONYMOUS) == []


def test_the_outcomes_api_and_the_skill_page_group_the_tasks(charts: Registry) -> None:
    # Two tokens report the same sales task, so its text may be shown.
    report(charts, "charts", ["weekly sales bar chart"], success=True, per_text=1,
           token="others")
    report(charts, "charts", ["weekly sales bar chart"], success=True, per_text=1)
    with TestClient(create_app(charts.settings, charts)) as client:
        body = client.get("/api/v1/skills/team/charts/outcomes").json()
        groups = body["tasks"]
        assert sum(g["tasks"] for g in groups) == 25
        assert sum(g["successes"] for g in groups) == 14
        assert sum(g["failures"] for g in groups) == 12
        shown = [g["label"] for g in groups if g["label"]]
        assert shown == ["weekly sales bar chart #0"]
        page = client.get("/team/charts").text
        assert "By kind of task" in page and "weekly sales bar chart #0" in page
        assert "tasks each reported by one client (not shown)" in page
        assert "map of customers by country" not in page  # one token's text stays private


def test_a_private_skills_tasks_show_only_to_its_readers(charts: Registry) -> None:
    charts.set_visibility("crew", "private")
    outsider = token_principal(charts, "reporters")  # a token of another namespace
    assert [n for n, _ in ranked(charts, "map of users per country")] == ["team"]
    page = charts.search("map of users per country", principal=outsider, mode="hybrid")
    assert [r.skill.namespace for r in page.results.results] == ["team"]
    with pytest.raises(NotFound):
        charts.task_neighbourhoods("crew", "charts", outsider)
    assert charts.task_neighbourhoods("crew", "charts", OPERATOR)
    with TestClient(create_app(charts.settings, charts)) as client:
        assert client.get("/api/v1/skills/crew/charts/outcomes").status_code == 404
        assert "By kind of task" not in client.get("/crew/charts").text


def test_a_label_drops_control_characters() -> None:
    assert tasks.label("plot\x00 weekly\x1b[31m sales") == "plot weekly [31m sales"


def test_grouping_opens_at_most_leaders_groups_however_many_unrelated_tasks() -> None:
    many = 3 * tasks.LEADERS
    vectors = np.eye(many, dtype=np.float32)  # every task unrelated to every other
    rows = [stats(f"t{i:03d}", many - i, 0) for i in range(many)]  # t000 most reported
    groups = tasks.neighbourhoods(rows, vectors, {}, limit=many)
    assert len(groups) == tasks.LEADERS and all(g.tasks == 1 for g in groups)
    assert [g.successes for g in groups] == list(range(many, many - tasks.LEADERS, -1))
    assert len(tasks.neighbourhoods(rows, vectors, {})) == tasks.MAX_GROUPS


def test_past_a_tokens_embedding_budget_tasks_keep_their_key_and_still_count(
        semantic_registry: Registry) -> None:
    registry = semantic_registry
    registry.publish("team", from_files([("solo/SKILL.md", skill_md("solo"), False)]),
                     principal=OPERATOR)
    registry.task_limiter = RateLimiter(0.001, 60, registry.store.buckets, prefix="tasks:")
    texts = [f"summarise meeting number {i}" for i in range(100)]
    report(registry, "solo", texts, success=True, per_text=1)
    keys = [task_key(f"{t} #0") for t in texts]
    embedded = registry.store.outcomes.task_vectors(registry.embedder.model_id, keys)
    assert len(embedded) == tasks.EMBED_CHUNK  # the first chunk; the second is past budget
    assert registry.store.outcomes.version_stats("team", "solo")["0.1.0"].successes == 100
    # Another token has its own budget: a later report of a task embeds it.
    report(registry, "solo", texts[-1:], success=True, per_text=1, token="others")
    assert keys[-1] in registry.store.outcomes.task_vectors(registry.embedder.model_id, keys)
