"""Evidence that is hard to game (`store.guards`): an author's own reports, a task reported
again and again, and one client's flood are stored and shown, never counted."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import OPERATOR
from skills_hub.learning.outcomes import CLIENT_CAP, task_key
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle

from .conftest import skill_md

OUTCOMES = "/api/v1/skills/team/weekly-report/outcomes"


@pytest.fixture
def tokens(registry: Registry) -> dict[str, str]:
    """The publisher's token (of the namespace's service account), another token of that
    account, and an agent's token of another account."""
    publisher = registry.create_token("team")
    md = skill_md("weekly-report", description="Formats the weekly status report.")
    registry.publish("team", Bundle({"SKILL.md": md}), principal=registry.authenticate(publisher),
                     version="1.0.0")
    registry.publish("team", Bundle({"SKILL.md": md.replace(b"Say hello.", b"Say hi.")}),
                     principal=OPERATOR, version="1.1.0")
    return {"publisher": publisher, "colleague": registry.create_token("team"),
            "agent": registry.create_token("agents")}


def post(client: TestClient, token: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post(OUTCOMES, json={"outcomes": reports},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def report(version: str = "1.0.0", outcome: str = "success", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": uuid.uuid4().hex, "version": version, "outcome": outcome,
                            **extra}
    if outcome == "failure":
        body["failure_kind"] = "wrong_result"
    return body


def stats(client: TestClient, version: str) -> dict[str, Any]:
    versions = client.get(OUTCOMES).json()["versions"]
    return dict(next(v for v in versions if v["version"] == version))


def test_the_publishers_token_and_account_do_not_count_on_their_version(
        registry: Registry, client: TestClient, tokens: dict[str, str]) -> None:
    body = post(client, tokens["publisher"], [report() for _ in range(5)])
    assert body["recorded"] == 5  # stored and acknowledged ...
    mine = body["versions"]["1.0.0"]
    assert (mine["successes"], mine["failures"], mine["discounted"]) == (0, 0, 5)  # ... not counted
    # Another token of the same account is the author too.
    post(client, tokens["colleague"], [report(outcome="failure")])
    assert stats(client, "1.0.0")["discounted"] == 6
    # On a version someone else published, the same tokens count.
    assert post(client, tokens["publisher"], [report("1.1.0")])["versions"]["1.1.0"][
        "successes"] == 1
    # An agent of another account counts on 1.0.0, and only it moves the skill's evidence.
    post(client, tokens["agent"], [report(), report(outcome="failure")])
    after = stats(client, "1.0.0")
    assert (after["successes"], after["failures"], after["discounted"]) == (1, 1, 6)
    summary = client.get(OUTCOMES).json()
    assert summary["successes"] == pytest.approx(2, rel=1e-3)  # 1.0.0's one and 1.1.0's one
    # Infra errors from the author stay infra errors.
    post(client, tokens["publisher"], [report(outcome="infra_error")])
    assert stats(client, "1.0.0")["infra_errors"] == 1
    # The skill page's table says so too: 1 success, 1 failure, 1 infra error, 6 not counted.
    page = client.get("/team/weekly-report").text
    row = page.split('<tr data-version="1.0.0"')[1].split("</tr>")[0]
    cells = [c.split("</td>")[0].strip() for c in row.split("<td>")[1:]]
    assert cells[1:5] == ["1", "1", "1", "6"] and "Not counted" in page


def test_a_task_reported_again_and_again_counts_once_per_token_and_version(
        client: TestClient, tokens: dict[str, str]) -> None:
    again = [report(task="Make the weekly report for team Blue") for _ in range(4)]
    again.append(report(task="  make the WEEKLY report   for team blue "))  # same task
    body = post(client, tokens["agent"], again)
    assert body["recorded"] == 5
    assert (body["versions"]["1.0.0"]["successes"], body["versions"]["1.0.0"]["discounted"]) \
        == (1, 4)
    # Later batches too; another task counts; the same task on another version counts.
    post(client, tokens["agent"], [report(task="make the weekly report for team blue"),
                                   report(task="make the weekly report for team red"),
                                   report("1.1.0", task="make the weekly report for team blue")])
    assert (stats(client, "1.0.0")["successes"], stats(client, "1.0.0")["discounted"]) == (2, 5)
    assert stats(client, "1.1.0")["successes"] == 1
    # Another token's report of the same task is another agent's evidence.
    post(client, tokens["colleague"],
         [report("1.1.0", task="make the weekly report for team blue")])
    assert stats(client, "1.1.0")["successes"] == 2
    # An infra error does not use the task up: the outcome reported after it counts.
    post(client, tokens["agent"], [report(task="t3", outcome="infra_error"),
                                   report(task="t3", outcome="failure")])
    assert stats(client, "1.0.0")["failures"] == 1


def test_one_clients_counted_reports_on_a_version_are_capped(
        client: TestClient, tokens: dict[str, str]) -> None:
    flood = [report(client={"id": "flooder"}) for _ in range(CLIENT_CAP + 30)]
    body = post(client, tokens["agent"], flood)
    assert body["recorded"] == CLIENT_CAP + 30
    assert (body["versions"]["1.0.0"]["successes"], body["versions"]["1.0.0"]["discounted"]) \
        == (CLIENT_CAP, 30)
    # Its later reports stay uncounted; another client, or another version, counts.
    post(client, tokens["agent"], [report(client={"id": "flooder"}),
                                   report(client={"id": "another"}),
                                   report("1.1.0", client={"id": "flooder"})])
    assert (stats(client, "1.0.0")["successes"], stats(client, "1.0.0")["discounted"]) \
        == (CLIENT_CAP + 1, 31)
    assert stats(client, "1.1.0")["successes"] == 1


def test_resending_is_still_idempotent_and_a_bad_task_refuses_the_batch(
        registry: Registry, client: TestClient, tokens: dict[str, str]) -> None:
    batch = [report(task="t1"), report(task="t1")]
    first = post(client, tokens["agent"], batch)
    again = post(client, tokens["agent"], batch)
    assert (first["recorded"], again["recorded"], again["repeated"]) == (2, 0, 2)
    assert (stats(client, "1.0.0")["successes"], stats(client, "1.0.0")["discounted"]) == (1, 1)
    bad = client.post(OUTCOMES, json={"outcomes": [report(task="t9"), report(task=""),
                                                   report(task="x" * 1001)]},
                      headers={"Authorization": f"Bearer {tokens['agent']}"})
    assert bad.status_code == 422
    assert [p["field"] for p in bad.json()["problems"]] == ["outcomes[1].task",
                                                            "outcomes[2].task"]
    assert stats(client, "1.0.0")["successes"] == 1  # nothing of the batch was recorded


@pytest.mark.sqlite_only
def test_stored_reports_say_why_they_do_not_count(registry: Registry, client: TestClient,
                                                  tokens: dict[str, str]) -> None:
    post(client, tokens["publisher"], [report(id="mine")])
    post(client, tokens["agent"], [report(id="a", task="t"), report(id="b", task="t")])
    conn = sqlite3.connect(registry.settings.index_path)
    try:
        rows = dict(conn.execute("SELECT report_id, discount FROM outcome_reports").fetchall())
        keys = {r[0] for r in conn.execute("SELECT task_key FROM outcome_reports "
                                           "WHERE task_key IS NOT NULL")}
    finally:
        conn.close()
    assert rows == {"mine": "author", "a": None, "b": "repeat_task"}
    assert keys == {task_key("t")}


def test_a_proposers_reports_do_not_count_on_the_version_its_edit_made(
        registry: Registry, client: TestClient, tokens: dict[str, str]) -> None:
    proposer = registry.create_token("proposers")
    headers = {"Authorization": f"Bearer {proposer}"}
    made = client.post("/api/v1/skills/team/weekly-report/proposals", headers=headers, json={
        "base_version": "1.1.0", "edits": [{"op": "replace", "target": "Say hi.",
                                            "content": "Say hi, then the date."}]})
    assert made.status_code == 201, made.text
    accepted = client.post(f"/api/v1/skills/team/weekly-report/proposals/{made.json()['id']}"
                           "/review", json={"decision": "accept", "comment": "ok"},
                           headers={"Authorization": f"Bearer {tokens['publisher']}"})
    assert accepted.status_code == 200, accepted.text
    version = accepted.json()["version"]
    body = post(client, proposer, [report(version)])
    assert body["versions"][version]["discounted"] == 1
    # The maintainer who accepted it did not write it: its reports count.
    body = post(client, tokens["publisher"], [report(version)])
    assert (body["versions"][version]["successes"], body["versions"][version]["discounted"]) \
        == (1, 1)
