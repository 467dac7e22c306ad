"""Outcome reports: intake through the API, idempotency, rate limits, per-version stats,
trust transitions, blocking, and the CLI `report` command."""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, OPERATOR
from skills_hub.cli import main
from skills_hub.config import Settings
from skills_hub.errors import RateLimited
from skills_hub.ranking import trust as rules
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.web.app import create_app

from .conftest import send_outcomes, skill_md, token_principal

OUTCOMES = "/api/v1/skills/team/weekly-report/outcomes"


@pytest.fixture
def published(registry: Registry) -> Registry:
    registry.create_token("team")
    for version in ("1.0.0", "1.1.0"):
        md = skill_md("weekly-report", description="Formats the weekly status report.",
                      body=f"Version {version} of the steps.")
        # Published by the operator: the `auth` token's account (the namespace's service
        # account) rates it, and an author's own reports would not count.
        registry.publish("team", Bundle({"SKILL.md": md}), principal=OPERATOR,
                         version=version)
    return registry


def report(version: str = "1.1.0", outcome: str = "success", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": uuid.uuid4().hex, "version": version, "outcome": outcome}
    if outcome == "failure":
        body["failure_kind"] = "wrong_result"
    body.update(extra)
    return body


def table_counts(registry: Registry) -> dict[str, int]:
    conn = sqlite3.connect(registry.settings.index_path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("outcome_reports", "version_stats", "outcome_totals", "skill_clients",
                          "trust_events")}
    finally:
        conn.close()


def test_a_batch_is_recorded_per_version_with_ema_and_signal_scores(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    batch = [report(signals={"task_accepted": True, "session_continued": True}),
             report(signals={"retries": 3, "edit_ratio": 0.5, "error_reported": True}),
             report(outcome="failure", signals={"task_accepted": False}),
             report(version="1.0.0", outcome="infra_error"),
             report(version="1.0.0")]
    response = client.post(OUTCOMES, json={"outcomes": batch}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["recorded"] == 5 and body["repeated"] == 0 and body["trust"] == "community"
    latest, older = body["versions"]["1.1.0"], body["versions"]["1.0.0"]
    assert (latest["successes"], latest["failures"], latest["infra_errors"]) == (2, 1, 0)
    # EMA: starts at the first outcome (1), then 1 + 0.1 (1 - 1) = 1, then 1 + 0.1 (0 - 1).
    assert latest["ema"] == pytest.approx(0.9)
    # Signal scores: 0.5+0.2+0.1 = 0.8; 0.5-0.1-0.1-0.1 = 0.2; -0.5-0.2 = -0.7.
    assert latest["score_mean"] == pytest.approx((0.8 + 0.2 - 0.7) / 3)
    # An infra error is kept but never counts against the skill.
    assert (older["successes"], older["failures"], older["infra_errors"]) == (1, 0, 1)
    assert older["ema"] == 1.0
    summary = client.get(OUTCOMES).json()
    assert summary["successes"] == pytest.approx(3, rel=1e-3)
    assert summary["failures"] == pytest.approx(1, rel=1e-3)
    assert [v["version"] for v in summary["versions"]] == ["1.1.0", "1.0.0"]


def test_resending_ids_is_acknowledged_and_not_counted_twice(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    batch = [report(), report(outcome="failure")]
    first = client.post(OUTCOMES, json={"outcomes": batch}, headers=auth).json()
    again = client.post(OUTCOMES, json={"outcomes": batch + [report()]}, headers=auth).json()
    assert (first["recorded"], again["recorded"], again["repeated"]) == (2, 1, 2)
    assert again["versions"]["1.1.0"]["successes"] == 2
    # The same id from another token is another report.
    other = {"Authorization": f"Bearer {published.create_token('other')}"}
    assert client.post(OUTCOMES, json=batch[0], headers=other).json()["recorded"] == 1


BAD_REPORTS = [
    ({"outcome": "success", "version": "1.1.0"}, "id"),
    (report(id="has space"), "id"),
    (report(outcome="great"), "outcome"),
    (report(outcome="failure", failure_kind="meh"), "failure_kind"),
    (report(version="9.9.9"), "version"),
    (report(signals={"retries": -1}), "signals.retries"),
    (report(signals={"edit_ratio": 2}), "signals.edit_ratio"),
    (report(signals={"task_accepted": "yes"}), "signals.task_accepted"),
    (report(signals={"mood": True}), "signals.mood"),
    (report(client={"agent": 7}), "client.agent"),
    (report(at="yesterday"), "at"),
    (report(at=(datetime.now(UTC) + timedelta(days=1)).isoformat()), "at"),
    (report(at=(datetime.now(UTC) - timedelta(days=400)).isoformat()), "at"),
]


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("bad", "field"), BAD_REPORTS)
def test_one_bad_report_refuses_the_batch_and_stores_nothing(
        published: Registry, client: TestClient, auth: dict[str, str], bad: dict[str, Any],
        field: str) -> None:
    before = table_counts(published)
    response = client.post(OUTCOMES, json={"outcomes": [report(), bad]}, headers=auth)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "invalid_report"
    assert [p["field"] for p in body["problems"]] == [f"outcomes[1].{field}"]
    assert body["problems"][0]["hint"]
    assert table_counts(published) == before


@pytest.mark.parametrize(("payload", "status", "code"), [
    ("not json", 400, "bad_request"),
    ([1, 2], 422, "invalid_report"),
    ({"outcomes": []}, 422, "invalid_report"),
    ({"outcomes": [{"x": 1}] * 1001}, 422, "invalid_report"),
])
@pytest.mark.sqlite_only
def test_malformed_bodies_are_refused(published: Registry, client: TestClient,
                                      auth: dict[str, str], payload: Any, status: int,
                                      code: str) -> None:
    before = table_counts(published)
    kwargs: dict[str, Any] = {"content": payload} if isinstance(payload, str) else {
        "json": payload}
    response = client.post(OUTCOMES, headers=auth, **kwargs)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert table_counts(published) == before


def test_reports_need_a_token_and_a_readable_skill(published: Registry,
                                                   client: TestClient) -> None:
    assert client.post(OUTCOMES, json=report()).status_code == 401
    bad = {"Authorization": "Bearer shub_nope"}
    assert client.post(OUTCOMES, json=report(), headers=bad).status_code == 401
    published.create_token("hidden", private=True)
    md = skill_md("secret-skill")
    published.publish("hidden", Bundle({"SKILL.md": md}), principal=token_principal(published, "hidden"))  # noqa: E501
    other = {"Authorization": f"Bearer {published.create_token('other')}"}
    response = client.post("/api/v1/skills/hidden/secret-skill/outcomes",
                           json=report(version="0.1.0"), headers=other)
    assert response.status_code == 404


@pytest.mark.sqlite_only
def test_reports_are_rate_limited_per_token(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "rl", seed=False, semantic="off", outcome_rate=1.0,
                        outcome_burst=3.0)
    registry = Registry(settings)
    registry.start()
    try:
        token = registry.create_token("team")
        md = skill_md("weekly-report")
        registry.publish("team", Bundle({"SKILL.md": md}), principal=token_principal(registry, "team"))  # noqa: E501
        with TestClient(create_app(settings, registry)) as client:
            headers = {"Authorization": f"Bearer {token}"}
            batch = {"outcomes": [report("0.1.0") for _ in range(3)]}
            assert client.post(OUTCOMES, json=batch, headers=headers).status_code == 200
            before = table_counts(registry)
            limited = client.post(OUTCOMES, json=batch, headers=headers)
            assert limited.status_code == 429
            assert limited.json()["code"] == "rate_limited"
            assert int(limited.headers["retry-after"]) >= 1
            assert table_counts(registry) == before
            other = {"Authorization": f"Bearer {registry.create_token('other')}"}
            assert client.post(OUTCOMES, json=report("0.1.0"), headers=other).status_code == 200
    finally:
        registry.close()


def test_trust_rises_with_enough_successes_from_enough_clients(published: Registry) -> None:
    # 30 successes from one client: plenty of evidence, but not from enough clients.
    assert send_outcomes(published, "team", "weekly-report", ["success"] * 30,
                         version="1.1.0")["trust"] == "community"
    receipt = send_outcomes(published, "team", "weekly-report", ["success"] * 10,
                            version="1.1.0", clients=5)
    assert receipt["trust"] == "verified"
    # Verified -> trusted needs 100 successes from 20 clients (one step per evaluation).
    receipt = send_outcomes(published, "team", "weekly-report", ["success"] * 80,
                            version="1.1.0", clients=20)
    assert receipt["trust"] == "trusted"
    events = published.store.outcomes.trust_events("team", "weekly-report")
    assert [(e.old, e.new) for e in events] == [("verified", "trusted"),
                                               ("community", "verified")]
    assert "from 5 clients" in events[1].reason and events[1].actor.startswith("outcomes:")
    assert published.store.catalogue.get_skill("team", "weekly-report").trust == "trusted"


def test_a_collapse_of_the_latest_version_quarantines_and_recovery_lifts_it(
        published: Registry) -> None:
    send_outcomes(published, "team", "weekly-report", ["success"] * 30, clients=6,
                  version="1.1.0")
    assert published.store.outcomes.trust_of("team", "weekly-report") == "verified"
    # Failures on the old version do not touch the latest version's EMA.
    assert send_outcomes(published, "team", "weekly-report", ["failure"] * 5,
                         version="1.0.0")["trust"] == "verified"
    receipt = send_outcomes(published, "team", "weekly-report", ["failure"] * 20,
                            version="1.1.0")
    assert receipt["trust"] == "quarantined"
    ema = published.store.outcomes.version_stats("team", "weekly-report")["1.1.0"].ema
    assert ema is not None and ema < rules.COLLAPSE_EMA
    # Successes bring the EMA back over 0.5: quarantine is lifted to community.
    receipt = send_outcomes(published, "team", "weekly-report", ["success"] * 10,
                            version="1.1.0")
    assert receipt["trust"] == "community"
    assert [e.new for e in published.store.outcomes.trust_events("team", "weekly-report")][:2] == [
        "community", "quarantined"]


def test_an_owner_blocks_a_skill_and_reports_never_move_it(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    trust = "/api/v1/skills/team/weekly-report/trust"
    assert client.put(trust, json={"trust": "blocked"}, headers=auth).status_code == 400
    assert client.put(trust, json={"trust": "trusted", "reason": "x"},
                      headers=auth).status_code == 400
    other = {"Authorization": f"Bearer {published.create_token('other')}"}
    assert client.put(trust, json={"trust": "blocked", "reason": "x"},
                      headers=other).status_code == 403
    response = client.put(trust, json={"trust": "blocked", "reason": "leaks tokens"},
                          headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["trust"] == "blocked"
    assert response.json()["event"]["actor"] == "team.ci"
    send_outcomes(published, "team", "weekly-report", ["success"] * 40, clients=10,
                  version="1.1.0")
    assert published.store.outcomes.trust_of("team", "weekly-report") == "blocked"
    assert published.search("weekly report", principal=ANONYMOUS).results.results == []
    # Lifting the block judges the evidence at once: 40 successes from 10 clients.
    lifted = client.put(trust, json={"trust": "community", "reason": "fixed"}, headers=auth)
    assert lifted.json()["trust"] == "verified"


def test_evidence_against_a_verified_skill_steps_it_down(published: Registry) -> None:
    send_outcomes(published, "team", "weekly-report", ["success"] * 30, clients=6,
                  version="1.1.0")
    receipt = send_outcomes(published, "team", "weekly-report", ["failure"] * 30,
                            version="1.0.0")
    assert receipt["trust"] == "community"
    assert "fell below 0.6" in published.store.outcomes.trust_events("team",
                                                                     "weekly-report")[0].reason


def test_trust_and_evidence_survive_a_full_reindex(published: Registry) -> None:
    send_outcomes(published, "team", "weekly-report", ["success"] * 30, clients=6,
                  version="1.1.0")
    published.set_trust("team", "weekly-report", "blocked", "audit", OPERATOR)
    published.reconcile(full=True)
    skill = published.store.catalogue.get_skill("team", "weekly-report")
    assert skill is not None and skill.trust == "blocked"
    assert published.store.outcomes.version_stats("team", "weekly-report")["1.1.0"].successes == 30


def test_the_cli_reports_the_installed_version_and_batches_from_a_file(
        published: Registry, client: TestClient, token: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--server", "http://testserver", "--token", token]

    def run(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(main, [*base, *args], input=stdin, obj={"http": client},
                             catch_exceptions=False)

    skills = tmp_path / "skills"
    installed = run("install", "team/weekly-report@1.0.0", "--dir", str(skills))
    assert installed.exit_code == 0, installed.output
    sent = run("report", "team/weekly-report", "success", "--dir", str(skills), "--accepted",
               "--retries", "1", "--agent-name", "hermes", "--client-id", "laptop-1", "--id", "r-1")
    assert sent.exit_code == 0, sent.output
    assert "recorded 1 outcome(s) for team/weekly-report; trust: community" in sent.output
    again = run("report", "team/weekly-report", "success", "--dir", str(skills), "--id", "r-1")
    assert "recorded 0 outcome(s)" in again.output and "1 already sent" in again.output
    stats = published.store.outcomes.version_stats("team", "weekly-report")
    assert stats["1.0.0"].successes == 1 and "1.1.0" not in stats
    missing = run("report", "team/weekly-report", "success", "--dir", str(tmp_path / "none"))
    assert missing.exit_code == 2 and "NS/NAME@VERSION" in missing.output
    no_kind = run("report", "team/weekly-report@1.1.0", "failure")
    assert no_kind.exit_code == 2 and "--kind" in no_kind.output  # refused before sending
    batch = json.dumps([report(), report(outcome="failure")])
    from_file = run("report", "team/weekly-report", "--file", "-", "--json", stdin=batch)
    assert json.loads(from_file.output)["recorded"] == 2
    shown = run("outcomes", "team/weekly-report")
    assert "1.1.0: 1 ok, 1 failed, 0 infra" in shown.output


def test_the_cli_blocks_and_lifts(published: Registry, client: TestClient, token: str) -> None:
    runner = CliRunner()
    base = ["--server", "http://testserver", "--token", token]
    blocked = runner.invoke(main, [*base, "block", "team/weekly-report", "--reason", "audit"],
                            obj={"http": client}, catch_exceptions=False)
    assert "team/weekly-report: trust blocked" in blocked.output
    lifted = runner.invoke(main, [*base, "block", "team/weekly-report", "--reason", "ok",
                                  "--lift"], obj={"http": client}, catch_exceptions=False)
    assert "trust community" in lifted.output
    assert [e.new for e in published.store.outcomes.trust_events("team", "weekly-report")] == [
        "community", "blocked"]


def test_processes_and_nodes_share_one_rate_limit(settings: Settings) -> None:
    """Two registries on one catalogue (two workers, or two nodes on one PostgreSQL)
    spend from the same bucket per token: the limit is the registry's, not a process's."""
    limited = replace(settings, outcome_rate=0.01, outcome_burst=4.0)
    first, second = Registry(limited), Registry(limited)
    first.start()
    second.start()
    try:
        principal = token_principal(first, "team")
        first.publish("team", Bundle({"SKILL.md": skill_md("weekly-report")}),
                      principal=principal)
        batch = {"outcomes": [report("0.1.0") for _ in range(3)]}
        first.report_outcomes("team", "weekly-report", batch, principal)
        with pytest.raises(RateLimited):
            second.report_outcomes("team", "weekly-report", batch, principal)
        assert second.report_outcomes("team", "weekly-report",
                                      {"outcomes": [report("0.1.0")]}, principal).recorded == 1
    finally:
        second.close()
        first.close()
