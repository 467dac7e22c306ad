"""Refinement proposals end to end: edits in both formats, rebase, agreement, review,
the `auto` policy, canaries promoted or rolled back on outcomes, and health deprecation."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from skills_hub.cli import main
from skills_hub.learning import gate
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle

from .conftest import send_outcomes, skill_md, token_principal
from .test_publish_checks import DROPPER

SKILL = "/api/v1/skills/team/weekly-report"
STEPS = ("## Steps\n\n1. Collect the updates.\n2. Group them by project.\n"
         "3. Send the report.\n\n## Notes\n\nKeep it short.\n")


@pytest.fixture
def published(registry: Registry) -> Registry:
    registry.create_token("team")
    publish(registry, "1.0.0", STEPS)
    return registry


def publish(registry: Registry, version: str, body: str) -> None:
    md = skill_md("weekly-report", description="Formats the weekly status report.", body=body)
    registry.publish("team", Bundle({"SKILL.md": md}), principal=token_principal(registry, "team"),
                     version=version)


def propose(client: TestClient, headers: dict[str, str], edits: list[dict[str, Any]],
            base: str = "1.0.0", status: int = 201) -> dict[str, Any]:
    response = client.post(f"{SKILL}/proposals", headers=headers, json={
        "base_version": base, "edits": edits, "reasoning": "reports were missing owners",
        "evidence": {"failures": 7, "summary": "owners missing"}})
    assert response.status_code == status, response.text
    return dict(response.json())


def state(registry: Registry) -> tuple[int, list[str]]:
    """Proposal rows and the proposal branches in git: what a refusal must not change."""
    refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)", "refs/heads/"],
                          cwd=registry.git.path("team"), capture_output=True, text=True,
                          check=True).stdout.split()
    return len(registry.store.proposals.proposals("team")), refs


def latest_md(client: TestClient) -> str:
    return client.get(f"{SKILL}/versions/latest/files/SKILL.md").text


OWNER_STEP = {"op": "insert_after", "target": "2. Group them by project.\n",
              "content": "2b. Name an owner for each item.\n"}


def test_a_proposal_is_a_checked_commit_on_its_branch_with_a_diff(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    body = propose(client, auth, [OWNER_STEP,
                                  {"old_string": "Keep it short.", "new_string": "Keep it "
                                   "under one page."}])
    assert (body["status"], body["verdict"], body["support"], body["created"]) == (
        "open", "safe", 1, True)
    assert body["branch"] == f"refs/heads/proposals/weekly-report/{body['id']}"
    log = subprocess.run(["git", "log", "--format=%s", body["branch"]],
                         cwd=published.git.path("team"), capture_output=True, text=True,
                         check=True).stdout
    assert log.startswith(f"proposal {body['id']} for weekly-report 1.0.0")
    shown = client.get(body["url"]).json()
    assert "+2b. Name an owner for each item." in shown["diff"]
    assert "-Keep it short." in shown["diff"] and shown["report"]["verdict"] == "safe"
    assert "2b." not in latest_md(client)  # nothing reaches users before a decision


def test_whitespace_differences_still_match(published: Registry, client: TestClient,
                                            auth: dict[str, str]) -> None:
    body = propose(client, auth, [{"op": "replace", "target": "3.   Send   the report.\r\n",
                                   "content": "3. Send the report to the team list.\n"}])
    assert "+3. Send the report to the team list." in client.get(body["url"]).json()["diff"]


@pytest.mark.parametrize(("edits", "code", "status"), [
    ([{"op": "replace", "target": "4. Celebrate.", "content": "x"}], "edit_failed", 422),
    ([{"op": "replace", "target": "the", "content": "a"}], "edit_failed", 422),
    ([{"op": "explode", "target": "x"}], "bad_request", 400),
    ([{"old_string": "Keep it short.", "new_string": DROPPER}], "dangerous_skill", 422),
    ([{"op": "replace", "target": "name: weekly-report", "content": "name: other"}],
     "invalid_skill", 422),
    ([{"op": "replace", "target": "Keep it short.", "content": "Keep it brief."},
      {"op": "replace", "target": "Keep it brief.", "content": "Keep it short."}],
     "invalid_skill", 422),
])
def test_refused_proposals_store_nothing(published: Registry, client: TestClient,
                                         auth: dict[str, str], edits: list[dict[str, Any]],
                                         code: str, status: int) -> None:
    before = state(published)
    body = propose(client, auth, edits, status=status)
    assert body["code"] == code
    assert state(published) == before


def test_a_missing_target_names_the_edit_and_the_nearest_text(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    body = propose(client, auth, [OWNER_STEP, {"op": "delete", "target": "Group them by prjoect."}],
                   status=422)
    assert body["edit"] == 1 and body["reason"] == "missing"
    assert "Group them by project" in str(body["nearest"])


def test_a_stale_base_is_rebased_or_refused_with_the_conflict(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    publish(published, "1.1.0", STEPS.replace("Keep it short.", "Keep it short and kind."))
    body = propose(client, auth, [OWNER_STEP])  # written against 1.0.0
    assert (body["base_version"], body["applies_to"]) == ("1.0.0", "1.1.0")
    merged = published.git.read_tree("team",
                                     published.store.proposals.get_proposal(body["id"]).tree_sha)
    text = merged.files["SKILL.md"].decode()
    assert "2b. Name an owner" in text and "short and kind" in text
    before = state(published)
    conflict = propose(client, auth, [{"op": "replace", "target": "Keep it short.",
                                       "content": "Be brief."}], status=409)
    assert conflict["code"] == "merge_conflict" and conflict["conflicts"]
    assert state(published) == before


def test_agreeing_edits_from_several_agents_merge_into_one_proposal(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    first = propose(client, auth, [OWNER_STEP])
    other = {"Authorization": f"Bearer {published.create_token('other')}"}
    hermes_style = [{"old_string": "2. Group them by project.\n",
                     "new_string": "2. Group them by project.\n2b. Name an owner for each "
                                   "item.\n"}]
    second = propose(client, other, hermes_style, status=200)
    assert (second["id"], second["created"], second["support"]) == (first["id"], False, 2)
    again = propose(client, other, hermes_style, status=200)
    assert (again["supported"], again["support"]) == (False, 2)
    assert len(published.store.proposals.proposals("team")) == 1


def test_review_accepts_into_the_next_version_and_rejects_with_a_reason(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    agent = {"Authorization": f"Bearer {published.create_token('agents')}"}
    good = propose(client, agent, [OWNER_STEP])
    bad = propose(client, agent, [{"old_string": "Keep it short.", "new_string": "Ramble."}])
    review = f"{SKILL}/proposals/{{}}/review"
    assert client.post(review.format(good["id"]), headers=agent,
                       json={"decision": "accept"}).status_code == 403
    assert client.post(review.format(bad["id"]), headers=auth,
                       json={"decision": "reject"}).status_code == 400
    rejected = client.post(review.format(bad["id"]), headers=auth,
                           json={"decision": "reject", "comment": "brevity is the point"})
    assert rejected.json()["status"] == "rejected"
    accepted = client.post(review.format(good["id"]), headers=auth,
                           json={"decision": "accept", "comment": "yes"}).json()
    assert (accepted["status"], accepted["version"]) == ("accepted", "1.0.1")
    assert "2b. Name an owner" in latest_md(client)
    again = client.post(review.format(good["id"]), headers=auth, json={"decision": "accept"})
    assert again.status_code == 409
    mine = client.get(f"{SKILL}/proposals", params={"mine": "1"}, headers=agent).json()
    decided = {p["id"]: (p["status"], p["comment"]) for p in mine["proposals"]}
    assert decided == {good["id"]: ("accepted", "yes"),
                       bad["id"]: ("rejected", "brevity is the point")}
    assert client.get(f"{SKILL}/proposals", params={"mine": "1"}).status_code == 401


def test_a_reviewer_can_name_the_version(published: Registry, client: TestClient,
                                         auth: dict[str, str]) -> None:
    body = propose(client, auth, [OWNER_STEP])
    accepted = client.post(f"{SKILL}/proposals/{body['id']}/review", headers=auth,
                           json={"decision": "accept", "comment": "", "version": "2.0.0"})
    assert accepted.json()["version"] == "2.0.0"
    assert client.get(f"{SKILL}/versions/latest").json()["version"] == "2.0.0"


def client_ids(version: str, share: float) -> tuple[str, str]:
    """A client id inside the canary and one outside it."""
    ids = [f"agent-{i}" for i in range(200)]
    inside = next(c for c in ids if gate.in_canary("team", "weekly-report", version, c, share))
    outside = next(c for c in ids
                   if not gate.in_canary("team", "weekly-report", version, c, share))
    return inside, outside


def test_the_auto_policy_accepts_agreed_fixes_as_a_canary_that_outcomes_promote(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    assert client.put("/api/v1/namespaces/team/policy", headers=auth,
                      json={"policy": "auto"}).status_code == 200
    # 100 outcomes from 5 clients: enough that the stable rate (0.5) is known well.
    send_outcomes(published, "team", "weekly-report", ["success", "failure"] * 50,
                  version="1.0.0", clients=5)
    first = propose(client, {"Authorization": f"Bearer {published.create_token('a')}"},
                    [OWNER_STEP])
    assert first["status"] == "open" and "needs 2" in first["policy"]
    second = propose(client, {"Authorization": f"Bearer {published.create_token('b')}"},
                     [OWNER_STEP], status=200)
    assert (second["status"], second["version"], second["decided_by"]) == (
        "accepted", "1.0.1", "policy:auto")
    # The canary reaches its share only; `latest` stays the stable version.
    assert client.get(f"{SKILL}/versions/latest").json()["version"] == "1.0.0"
    inside, outside = client_ids("1.0.1", gate.AUTO_CANARY_SHARE)
    got = client.get(f"{SKILL}/versions/latest", params={"client_id": inside}).json()
    assert (got["version"], got["channel"]) == ("1.0.1", "canary")
    assert client.get(f"{SKILL}/resolve", params={"client_id": outside}).json()[
        "version"] == "1.0.0"
    assert client.get(f"{SKILL}/resolve", params={"client_id": inside}).json()[
        "version"] == "1.0.1"
    send_outcomes(published, "team", "weekly-report", ["success"] * 29, version="1.0.1")
    assert published.store.proposals.canaries("team", "weekly-report")[0].state == "active"
    send_outcomes(published, "team", "weekly-report", ["success"], version="1.0.1")
    canary = client.get(f"{SKILL}/outcomes").json()["canaries"][0]
    assert canary["state"] == "promoted"
    assert canary["decision"]["canary"]["outcomes"] == 30
    assert canary["decision"]["rule"] == "better"
    assert canary["decision"]["test"]["lower"] > 0  # the sequential test's bound
    assert client.get(f"{SKILL}/versions/latest").json()["version"] == "1.0.1"


def test_a_worse_canary_is_rolled_back_and_stays_held_back(
        published: Registry, client: TestClient, auth: dict[str, str]) -> None:
    send_outcomes(published, "team", "weekly-report", ["success"] * 40, version="1.0.0")
    body = propose(client, auth, [OWNER_STEP])
    accepted = client.post(f"{SKILL}/proposals/{body['id']}/review", headers=auth,
                           json={"decision": "accept", "comment": "try it", "canary": 0.5})
    assert accepted.json()["version"] == "1.0.1"
    send_outcomes(published, "team", "weekly-report", ["failure"] * 30, version="1.0.1")
    canary = published.store.proposals.canaries("team", "weekly-report")[0]
    assert canary.state == "rolled_back" and canary.decision is not None
    assert canary.decision["action"] == "roll_back"
    inside, _ = client_ids("1.0.1", 0.5)
    assert client.get(f"{SKILL}/resolve", params={"client_id": inside}).json() == {
        **client.get(f"{SKILL}/resolve").json()}
    assert client.get(f"{SKILL}/versions/latest").json()["version"] == "1.0.0"
    # A restart (reconcile from git) keeps the rolled-back version out of `latest`.
    published.reconcile(full=True)
    assert client.get(f"{SKILL}/versions/latest").json()["version"] == "1.0.0"
    assert client.get(f"{SKILL}/versions/1.0.1").status_code == 200  # pinned still works


def test_an_outcome_collapse_deprecates_a_version_and_latest_falls_back(
        published: Registry, client: TestClient) -> None:
    publish(published, "1.1.0", STEPS + "\nNew wording.\n")
    send_outcomes(published, "team", "weekly-report", ["failure"] * 25, version="1.1.0")
    meta = client.get(f"{SKILL}/versions/1.1.0").json()
    assert meta["deprecated"] and "EMA" in meta["deprecated_reason"]
    assert client.get(f"{SKILL}/versions/latest").json()["version"] == "1.0.0"
    assert client.get(f"{SKILL}/outcomes").json()["trust"] == "quarantined"
    send_outcomes(published, "team", "weekly-report", ["success"] * 30, version="1.1.0")
    assert client.get(f"{SKILL}/versions/latest").json()["version"] == "1.1.0"
    assert not client.get(f"{SKILL}/versions/1.1.0").json()["deprecated"]


def test_the_cli_proposes_reviews_and_installs_a_canary_by_client_id(
        published: Registry, client: TestClient, token: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Any:
        result = runner.invoke(main, ["--server", "http://testserver", "--token", token, *args],
                               input=stdin, obj={"http": client}, catch_exceptions=False)
        return result

    opened = run("propose", "team/weekly-report@1.0.0", "-", "--reasoning", "owners",
                 stdin=json.dumps([OWNER_STEP]))
    assert opened.exit_code == 0, opened.output
    assert "opened proposal" in opened.output and "open" in opened.output
    proposal_id = opened.output.split()[2]
    listed = run("proposals", "team", "--status", "open")
    assert proposal_id in listed.output
    shown = run("proposals", "team/weekly-report", "--show", proposal_id)
    assert "+2b. Name an owner for each item." in shown.output
    reviewed = run("review", "team/weekly-report", proposal_id, "accept", "--canary", "0.5")
    assert "accepted -> 1.0.1" in reviewed.output
    inside, outside = client_ids("1.0.1", 0.5)
    for client_id, expected in ((inside, "1.0.1"), (outside, "1.0.0")):
        monkeypatch.setenv("SKILLS_HUB_CLIENT_ID", client_id)
        target = tmp_path / client_id
        done = run("install", "team/weekly-report", "--dir", str(target))
        assert done.exit_code == 0, done.output
        assert expected in done.output
    assert "proposals are gated by auto" in run("policy", "team", "auto").output
    assert published.store.namespaces.review_policy("team") == "auto"
    assert run("policy", "other", "auto").exit_code != 0


def test_proposals_need_a_token_and_the_policy_needs_a_maintainer(
        published: Registry, client: TestClient) -> None:
    assert client.post(f"{SKILL}/proposals", json={"base_version": "1.0.0",
                                                   "edits": [OWNER_STEP]}).status_code == 401
    other = {"Authorization": f"Bearer {published.create_token('other')}"}
    assert client.put("/api/v1/namespaces/team/policy", headers=other,
                      json={"policy": "auto"}).status_code == 403
    incomplete = client.post(f"{SKILL}/proposals", headers=other, json={"edits": "x"})
    assert incomplete.status_code == 400
    assert {p["field"] for p in incomplete.json()["problems"]} == {"base_version", "edits"}
