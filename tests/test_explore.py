"""Exploration in search (`ranking.explore`): a share of an agent's pages rank near-equally
relevant results by posterior samples, deterministically per query, client and hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from skills_hub.access.principal import ANONYMOUS, OPERATOR
from skills_hub.ranking import explore
from skills_hub.ranking.quality import quality
from skills_hub.services import Registry
from skills_hub.skill.bundle import from_files

from .conftest import send_outcomes, skill_md

QUERY = "tidy messy csv files"


def test_the_page_seed_is_stable_within_an_hour_and_differs_across_clients_and_hours() -> None:
    at = datetime(2026, 12, 2, 10, 5, tzinfo=UTC)
    seed = explore.page_seed(" Tidy CSV ", "agent-1", at)
    assert seed == explore.page_seed("tidy csv", "agent-1", at + timedelta(minutes=50))
    assert seed != explore.page_seed("tidy csv", "agent-2", at)
    assert seed != explore.page_seed("tidy csv", "agent-1", at + timedelta(hours=1))
    pages = [explore.page_seed("q", f"agent-{i}", at) for i in range(2000)]
    share = sum(explore.explores(s) for s in pages) / len(pages)
    assert abs(share - explore.EXPLORE_SHARE) < 0.03


def test_samples_follow_the_evidence_and_repeat_for_one_seed() -> None:
    qualities = {1: quality(400, 100, 0), 2: quality(2, 1, 0), 3: quality(0, 0, 0)}
    first = explore.explored(7, qualities)
    assert first == explore.explored(7, qualities)
    draws = [explore.explored(seed, qualities) for seed in range(400)]
    proven = [d[1][0] for d in draws]
    assert all(abs(x - 0.8) < 0.06 for x in proven)  # a narrow posterior around 400/500
    # The under-tested skill's draws spread widely, so it is on top of some pages.
    assert sum(d[2][1] > d[1][1] for d in draws) > 20
    # The new-skill floor still holds under a sample; installs still count.
    assert all(d[3][1] >= 0.8 * 0.5 for d in draws)


@pytest.fixture
def three(registry: Registry) -> Registry:
    """Three skills equally relevant to QUERY: a proven middling one, an under-tested
    one with a good start, and a new one."""
    for name in ("tidy-csv-a", "tidy-csv-b", "tidy-csv-c"):
        text = skill_md(name, "Tidy messy CSV files before analysis.", "Steps.")
        registry.publish("team", from_files([(f"{name}/SKILL.md", text, False)]),
                         principal=OPERATOR)
    send_outcomes(registry, "team", "tidy-csv-a", ["success"] * 60 + ["failure"] * 40,
                  version="0.1.0", clients=20)
    send_outcomes(registry, "team", "tidy-csv-b", ["success"] * 3 + ["failure"],
                  version="0.1.0", clients=4)
    return registry


def _page(registry: Registry, client: str | None) -> list[tuple[str, dict[str, object]]]:
    page = registry.search(QUERY, principal=ANONYMOUS, client_id=client)
    return [(r.skill.name, r.parts) for r in page.results.results]


def test_agents_pages_explore_and_people_browsing_get_the_plain_order(three: Registry) -> None:
    plain = _page(three, None)
    assert [name for name, _ in plain] == ["tidy-csv-a", "tidy-csv-c", "tidy-csv-b"]
    assert all("explore" not in parts for _, parts in plain)
    assert len({p["relevance"] for _, p in plain}) == 1  # relevance ties: quality orders
    pages = {f"agent-{i}": _page(three, f"agent-{i}") for i in range(40)}
    assert _page(three, "agent-3") == pages["agent-3"]  # one client, one hour: one page
    explored = [page for page in pages.values() if "explore" in page[0][1]]
    assert 0.7 * len(pages) <= len(explored) <= len(pages)
    firsts = {page[0][0] for page in explored}
    assert "tidy-csv-b" in firsts  # the under-tested skill gets a chance at the top
    for page in explored:
        scores = [parts["score"] for _, parts in page]
        assert scores == sorted(scores, reverse=True)
        ranks = {name: parts["explore"]["plain_rank"] for name, parts in page}  # type: ignore[index]
        assert ranks == {"tidy-csv-a": 1, "tidy-csv-c": 2, "tidy-csv-b": 3}
        for _, parts in page:
            part = parts["explore"]
            assert isinstance(part, dict)
            assert parts["score"] == pytest.approx(
                parts["relevance"] * (0.9 + 0.1 * part["quality"]), abs=1e-5)  # type: ignore[operator]
    # Other sorts never explore.
    rated = three.search(QUERY, principal=ANONYMOUS, client_id="agent-1", sort="rating")
    assert all("explore" not in r.parts for r in rated.results.results)
