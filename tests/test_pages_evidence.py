"""The skill page's evidence chart (issue 14): outcome reports over time per version as a
server-drawn SVG. Its geometry (web/charts.py), its buckets (services.outcomes), the per-day
counter it reads (store.index `outcome_days`), and the page: drawn with reports, absent
without, and never shown to someone who may not read the skill."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, Principal
from skills_hub.errors import NotFound
from skills_hub.services import Registry
from skills_hub.services.outcomes import (
    CHART_DAYS,
    MIN_DAYS,
    OutcomeTimeline,
    VersionTimeline,
    bucket_days,
)
from skills_hub.skill.bundle import Bundle
from skills_hub.store.sqlite import migrations
from skills_hub.web import charts

from .conftest import send_outcomes, skill_md, token_principal
from .test_pages_learning import Node, parse
from .test_pages_learning import sign_in as session_for

PAGE = "/team/weekly-report"
PASSWORD = "correct horse battery staple"
SVG = "{http://www.w3.org/2000/svg}"
TODAY = date(2026, 3, 31)


@pytest.fixture
def owner(registry: Registry) -> Principal:
    """weekly-report 1.0.0 and 1.1.0 in `team`; the owner's token principal."""
    principal = token_principal(registry, "team")
    for version in ("1.0.0", "1.1.0"):
        md = skill_md("weekly-report", description="Formats the weekly status report.",
                      body=f"Keep it short ({version}).")
        registry.publish("team", Bundle({"SKILL.md": md}), principal=principal, version=version)
    return principal


def timeline(*series: tuple[str, list[tuple[int, int]]], step: int = 7,
             start: date = TODAY) -> OutcomeTimeline:
    buckets = len(series[0][1]) if series else 1
    return OutcomeTimeline(start, step, buckets,
                           [VersionTimeline(version, counts) for version, counts in series])


def chart_of(html: str) -> Node | None:
    found = parse(html).find("svg", class_="evidence-chart")
    assert len(found) <= 1
    return found[0] if found else None


# -- geometry --------------------------------------------------------------------------------


def test_rates_and_buckets_scale_into_the_plot() -> None:
    left, top, right, bottom = charts.LEFT, charts.TOP, charts.WIDTH - charts.RIGHT, \
        charts.HEIGHT - charts.BOTTOM
    assert (charts.y_of(1.0), charts.y_of(0.0)) == (top, bottom)
    assert charts.y_of(0.5) == pytest.approx((top + bottom) / 2)
    assert (charts.y_of(1.7), charts.y_of(-1)) == (top, bottom)  # clamped, never off the plot
    assert charts.x_of(0, 1) == pytest.approx((left + right) / 2)  # one bucket: the middle
    xs = [charts.x_of(i, 12) for i in range(12)]
    assert xs == sorted(xs) and left < xs[0] and xs[-1] < right
    assert xs[1] - xs[0] == pytest.approx(xs[-1] - xs[-2])  # evenly spaced
    assert charts.dot_radius(1, 1000) == pytest.approx(charts.DOT_MIN, abs=0.2)
    assert charts.dot_radius(1000, 1000) == charts.DOT_MAX
    assert charts.dot_radius(250, 1000) < charts.dot_radius(1000, 1000)


def test_nothing_to_draw_is_no_chart() -> None:
    assert charts.evidence_chart(None) is None
    assert charts.evidence_chart(timeline()) is None
    assert charts.evidence_chart(timeline(("1.0.0", [(0, 0), (0, 0)]))) is None
    assert bucket_days([], ["1.0.0"], TODAY) is None
    assert bucket_days([("1.0.0", "2026-03-30", 0, 0)], ["1.0.0"], TODAY) is None


def test_one_point_is_a_dot_without_a_line() -> None:
    chart = charts.evidence_chart(timeline(("1.0.0", [(3, 1)]), step=1))
    assert chart is not None and chart.unit == "day"
    [line] = chart.lines
    assert line.path == "" and len(line.dots) == 1
    dot = line.dots[0]
    assert (dot.x, dot.y) == (charts.x_of(0, 1), charts.y_of(0.75))
    assert dot.label == "v1.0.0, Mar 31: 3 successes, 1 failure (75%)"
    assert line.text == "75% of 4 reports"
    assert chart.summary == ("Success rate of outcome reports per day, Mar 31 to Mar 31 (UTC), "
                             "1 version. v1.0.0: 75% of 4 reports, 3 successes and 1 failure.")
    svg = ET.fromstring(chart.svg)
    assert not svg.findall(f".//{SVG}path") and len(svg.findall(f".//{SVG}circle")) == 1


def test_an_empty_bucket_breaks_the_line() -> None:
    counts = [(1, 0), (0, 0), (1, 1), (2, 0), (0, 0), (5, 5)]
    path = charts.line_path(counts, len(counts))
    # segments: bucket 0 alone (a dot only), buckets 2-3 (a line), bucket 5 alone
    assert path == f"M{charts.x_of(2, 6):g} {charts.y_of(0.5):g} L{charts.x_of(3, 6):g} " \
                   f"{charts.y_of(1.0):g}"


def test_many_versions_draw_the_newest_ten_each_in_its_own_class() -> None:
    versions = [f"1.{i}.0" for i in range(12, 0, -1)]  # newest first
    chart = charts.evidence_chart(timeline(*[(v, [(i, 1), (1, i)]) for i, v in
                                             enumerate(versions, start=1)]))
    assert chart is not None and chart.unit == "week"
    assert [line.version for line in chart.lines] == versions[:10]
    assert [line.index for line in chart.lines] == list(range(10))
    assert chart.hidden == 2 and chart.summary.endswith("2 older versions not drawn.")
    svg = ET.fromstring(chart.svg)
    classes = {p.attrib["class"] for p in svg.iter(f"{SVG}path")}
    assert classes == {f"chart-line chart-s{i}" for i in range(10)}
    assert len(svg.findall(f".//{SVG}circle")) == 20


def test_the_x_axis_labels_at_most_six_buckets_ending_with_the_newest() -> None:
    chart = charts.evidence_chart(timeline(("1.0.0", [(1, 0)] * 12), start=date(2026, 1, 5)))
    assert chart is not None
    labels = [tick.label for tick in chart.x_ticks]
    assert len(labels) == 6 and labels[-1] == "Mar 23" and labels[0] == "Jan 12"
    assert [tick.label for tick in chart.y_ticks] == ["0%", "25%", "50%", "75%", "100%"]


def test_version_strings_are_escaped_in_the_markup() -> None:
    hostile = '1.0.0"><script>alert(1)</script>&'
    chart = charts.evidence_chart(timeline((hostile, [(1, 0), (2, 2)])))
    assert chart is not None
    markup = str(chart.svg)
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    svg = ET.fromstring(markup)  # well-formed: nothing broke out of an attribute
    assert svg.attrib["role"] == "img" and hostile in svg.attrib["aria-label"]
    assert hostile in svg.find(f"{SVG}title").text  # type: ignore[union-attr]
    assert svg.attrib["viewBox"] == f"0 0 {charts.WIDTH} {charts.HEIGHT}"
    assert svg.attrib["width"] == "100%" and "height" not in svg.attrib


# -- buckets ---------------------------------------------------------------------------------


def test_a_short_span_is_daily_and_a_long_one_weekly_ending_today() -> None:
    rows = [("1.0.0", "2026-03-29", 2, 1), ("1.1.0", "2026-03-31", 4, 0)]
    daily = bucket_days(rows, ["1.1.0", "1.0.0"], TODAY)
    assert daily is not None
    assert (daily.step_days, daily.buckets, daily.end) == (1, MIN_DAYS, TODAY)
    assert [s.version for s in daily.series] == ["1.1.0", "1.0.0"]
    assert daily.series[1].counts[-3] == (2, 1) and daily.series[0].counts[-1] == (4, 0)
    weekly = bucket_days([*rows, ("1.0.0", "2026-01-10", 5, 5)], ["1.1.0", "1.0.0"], TODAY)
    assert weekly is not None and weekly.step_days == 7 and weekly.end == TODAY
    assert weekly.buckets == 12 and weekly.start <= date(2026, 1, 10)
    assert weekly.series[1].counts[0] == (5, 5)
    assert weekly.series[1].counts[-1] == (2, 1)  # Mar 29 is in the week ending today
    assert (weekly.series[1].successes, weekly.series[1].failures) == (7, 6)


# -- the stored counter ----------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_the_day_counter_matches_the_reports_and_the_migration_backfills_it(
        registry: Registry, owner: Principal) -> None:
    now = datetime.now(UTC)
    send_outcomes(registry, "team", "weekly-report", ["success"] * 3 + ["failure"],
                  version="1.0.0", at=now - timedelta(days=3))
    send_outcomes(registry, "team", "weekly-report", ["success", "infra_error"],
                  version="1.1.0", at=now)
    # a report stamped in another zone lands on its UTC day
    late = (now - timedelta(days=1)).replace(hour=23, minute=30).astimezone(
        timezone(timedelta(hours=5)))
    send_outcomes(registry, "team", "weekly-report", ["failure"], version="1.1.0", at=late)
    since = (now - timedelta(days=CHART_DAYS)).date().isoformat()
    stored = sorted(registry.store.outcomes.outcome_days("team", "weekly-report", since))
    assert stored == sorted([
        ("1.0.0", (now - timedelta(days=3)).date().isoformat(), 3, 1),
        ("1.1.0", now.date().isoformat(), 1, 0),
        ("1.1.0", (now - timedelta(days=1)).date().isoformat(), 0, 1)])
    with sqlite3.connect(registry.settings.home / "index.db") as conn:
        conn.execute("DROP TABLE outcome_days")
        migrations.m008_outcome_days(conn)  # the backfill, from the reports themselves
    assert sorted(registry.store.outcomes.outcome_days("team", "weekly-report", since)) == stored


# -- the page --------------------------------------------------------------------------------


def test_the_page_draws_the_chart_of_the_reports(registry: Registry, client: TestClient,
                                                 owner: Principal) -> None:
    now = datetime.now(UTC)
    send_outcomes(registry, "team", "weekly-report", ["success"] * 8 + ["failure"] * 2,
                  version="1.0.0", at=now - timedelta(days=30))
    send_outcomes(registry, "team", "weekly-report", ["success"] * 5, version="1.1.0")
    send_outcomes(registry, "team", "weekly-report", ["failure"], version="1.1.0")
    page = client.get(PAGE)
    assert page.status_code == 200
    evidence = parse(page.text).one("section", id="evidence")
    svg = chart_of(page.text)
    assert svg is not None and svg.attrs["role"] == "img"
    label = svg.attrs["aria-label"] or ""
    assert label.startswith("Success rate of outcome reports per week")
    assert "v1.1.0: 83% of 6 reports" in label and "v1.0.0: 80% of 10 reports" in label
    assert svg.find("title")[0].text() == label  # the first child; each dot has its own
    legend = evidence.one("ul", class_="chart-legend")
    assert [li.text() for li in legend.find("li")] == [
        "v1.1.0 83% of 6 reports", "v1.0.0 80% of 10 reports"]
    dots = [c.one("title").text() for c in svg.find("circle")]
    assert any(d.startswith("v1.0.0, week of ") and d.endswith(
        "8 successes, 2 failures (80%)") for d in dots)
    assert evidence.find("table", class_="versions-evidence")  # the numbers stay


def test_no_reports_no_chart_and_infra_errors_alone_draw_nothing(
        registry: Registry, client: TestClient, owner: Principal) -> None:
    page = client.get(PAGE)
    assert chart_of(page.text) is None and "No outcome reports yet" in page.text
    send_outcomes(registry, "team", "weekly-report", ["infra_error"] * 3, version="1.1.0")
    page = client.get(PAGE)
    assert chart_of(page.text) is None
    assert parse(page.text).find("tr", **{"data-version": "1.1.0"})  # counted in the table


def test_a_private_skills_chart_is_not_shown_to_an_outsider(
        registry: Registry, client: TestClient, owner: Principal) -> None:
    send_outcomes(registry, "team", "weekly-report", ["success"] * 4, version="1.1.0")
    registry.set_visibility("team", "private")
    registry.add_user("outsider", password=PASSWORD)
    with pytest.raises(NotFound):
        registry.outcome_timeline("team", "weekly-report", ANONYMOUS)
    with pytest.raises(NotFound):
        registry.outcome_timeline("team", "weekly-report",
                                  registry.account_principal("outsider"))
    assert client.get(PAGE).status_code == 404
    session_for(client, "outsider")
    page = client.get(PAGE)
    assert page.status_code == 404 and chart_of(page.text) is None
    assert "1.1.0" not in page.text and "evidence" not in page.text
    # a member reads it, chart and all
    registry.add_user("maya", password=PASSWORD)
    registry.set_member(owner, "team", "maya", "reader")
    session_for(client, "maya")
    assert chart_of(client.get(PAGE).text) is not None
    assert registry.outcome_timeline("team", "weekly-report",
                                     registry.account_principal("maya")) is not None
