"""Accounts, orgs, tokens and required review through the API: every refusal is a clear
error that changes nothing, and each accepted change is audited."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, OPERATOR
from skills_hub.config import Settings
from skills_hub.errors import HubError
from skills_hub.services import Registry
from skills_hub.web.app import create_app

from .conftest import skill_md
from .test_api import snapshot

PASSWORD = "correct horse battery staple"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, username: str, **extra: Any) -> dict[str, str]:
    response = client.post("/api/v1/auth/login",
                           json={"username": username, "password": PASSWORD, **extra})
    assert response.status_code == 200, response.text
    return bearer(response.json()["token"])


@pytest.fixture
def people(registry: Registry) -> dict[str, str]:
    """Accounts with passwords: a lead, colleagues, an outsider, the operator."""
    for name in ("lead", "bob", "cara", "dan", "outsider"):
        registry.add_user(name, password=PASSWORD, display_name=name.title(),
                          email=f"{name}@example.com")
    registry.add_user("root", password=PASSWORD, operator=True)
    return {}


@pytest.fixture
def team(client: TestClient, people: dict[str, str]) -> dict[str, dict[str, str]]:
    """Org `acme` owned by `lead`; bob publisher, cara maintainer, dan maintainer."""
    auth = {name: login(client, name) for name in ("lead", "bob", "cara", "dan", "outsider",
                                                    "root")}
    assert client.post("/api/v1/orgs", json={"name": "acme"},
                       headers=auth["lead"]).status_code == 201
    for name, role in (("bob", "publisher"), ("cara", "maintainer"), ("dan", "maintainer")):
        response = client.put(f"/api/v1/orgs/acme/members/{name}", json={"role": role},
                              headers=auth["lead"])
        assert response.status_code == 200, response.text
    return auth


def publish(client: TestClient, headers: dict[str, str], version: str,
            body: str = "Say hello.", namespace: str = "acme") -> Any:
    md = skill_md("hello-world", body=body)
    return client.post(f"/api/v1/namespaces/{namespace}/skills?version={version}",
                       files=[("files", ("SKILL.md", md))], headers=headers)


# -- sign-in ----------------------------------------------------------------------------


def test_password_login_gives_a_scoped_expiring_token(client: TestClient,
                                                      people: dict[str, str]) -> None:
    response = client.post("/api/v1/auth/login", json={
        "username": "bob", "password": PASSWORD, "label": "laptop", "scopes": ["read"]})
    info = response.json()["token_info"]
    assert info["label"] == "laptop" and info["scopes"] == ["read"]
    assert info["expires_at"] > info["created_at"] and info["account"] == "bob"
    me = client.get("/api/v1/whoami", headers=bearer(response.json()["token"])).json()
    assert (me["username"], me["namespace"], me["scopes"]) == ("bob", "bob", ["read"])


def test_failed_sign_ins_are_throttled_per_account_with_retry_after(
        client: TestClient, people: dict[str, str], registry: Registry) -> None:
    for _ in range(10):
        wrong = client.post("/api/v1/auth/login", json={"username": "bob", "password": "nope"})
        assert wrong.status_code == 401
        assert wrong.json()["message"] == "the username or password is wrong"
    limited = client.post("/api/v1/auth/login", json={"username": "bob", "password": PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    # Another account from the same test client is not locked by bob's failures alone...
    assert client.post("/api/v1/auth/login",
                       json={"username": "cara", "password": PASSWORD}).status_code == 200
    events = registry.store.audit.audit_events(orgs=None, action="signin.failed")
    assert len(events) == 10 and events[0].target == "bob" and events[0].address


def test_a_second_process_counts_the_same_failed_sign_ins(
        client: TestClient, people: dict[str, str], settings: Settings) -> None:
    """Failures counted by one worker (or node) lock the account on every other one."""
    for _ in range(10):
        client.post("/api/v1/auth/login", json={"username": "bob", "password": "nope"})
    other = Registry(settings)
    other.start()
    try:
        with TestClient(create_app(settings, other)) as second:
            limited = second.post("/api/v1/auth/login",
                                  json={"username": "bob", "password": PASSWORD})
        assert limited.status_code == 429 and "this account" in limited.json()["message"]
    finally:
        other.close()


def test_failed_sign_ins_are_throttled_per_address(client: TestClient,
                                                   people: dict[str, str]) -> None:
    for i in range(50):
        client.post("/api/v1/auth/login", json={"username": f"ghost{i}", "password": "x"})
    limited = client.post("/api/v1/auth/login", json={"username": "cara", "password": PASSWORD})
    assert limited.status_code == 429 and "this address" in limited.json()["message"]


# -- bad input: a clear error, nothing changed --------------------------------------------


BAD_REQUESTS = [
    # (who, method, path, body, status, code or message fragment)
    ("lead", "PUT", "/api/v1/orgs/acme/members/nobody", {"role": "reader"}, 404, "no account"),
    ("root", "POST", "/api/v1/users", {"username": "eve", "password": "short"}, 422,
     "weak_password"),
    ("root", "POST", "/api/v1/users", {"username": "bob", "password": PASSWORD}, 409,
     "is taken"),
    ("root", "POST", "/api/v1/users", {"username": "Bad Name", "password": PASSWORD}, 400,
     "not a valid username"),
    ("lead", "DELETE", "/api/v1/orgs/acme/members/lead", None, 409, "last owner"),
    ("lead", "PUT", "/api/v1/orgs/acme/members/lead", {"role": "reader"}, 409,
     "without an owner"),
    ("cara", "PUT", "/api/v1/orgs/acme/members/cara", {"role": "owner"}, 403,
     "needs the 'owner' role"),
    ("bob", "PUT", "/api/v1/orgs/acme/members/outsider", {"role": "reader"}, 403,
     "needs the 'owner' role"),
    ("outsider", "GET", "/api/v1/orgs/acme/members", None, 404, "not a member"),
    ("lead", "PUT", "/api/v1/orgs/acme/members/bob", {"role": "admin"}, 400, "role must be"),
    ("lead", "POST", "/api/v1/tokens", {"scopes": ["root"]}, 400, "unknown scope"),
    ("lead", "POST", "/api/v1/tokens", {"days": 9999}, 400, "a token lives"),
    ("bob", "POST", "/api/v1/users", {"username": "eve", "password": PASSWORD}, 403,
     "only the operator"),
    ("bob", "PUT", "/api/v1/namespaces/acme/visibility", {"visibility": "private"}, 403,
     "needs the 'owner' role"),
    ("lead", "PUT", "/api/v1/namespaces/acme/visibility", {"visibility": "secret"}, 400,
     "visibility is one of"),
    ("lead", "PUT", "/api/v1/namespaces/acme/release-policy", {"policy": "maybe"}, 400,
     "release_policy must be"),
    ("lead", "POST", "/api/v1/orgs", {"name": "bob"}, 409, "is taken"),
    ("lead", "POST", "/api/v1/orgs", {"name": "api"}, 400, "not a valid org"),
    (None, "POST", "/api/v1/orgs", {"name": "anon"}, 401, "sign in"),
    ("lead", "POST", "/api/v1/orgs", "[1, 2]", 400, "not a JSON object"),
    ("lead", "POST", "/api/v1/orgs", "{" * 2000, 400, "not JSON"),
    ("lead", "DELETE", "/api/v1/tokens/999999", None, 404, "no token"),
    ("bob", "GET", "/api/v1/audit", None, 403, "only org owners"),
    ("lead", "GET", "/api/v1/audit?limit=0", None, 400, "limit is 1-1000"),
    ("lead", "POST", "/api/v1/invitations/shinv_nope/accept", {}, 404, "does not exist"),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "status", "expected"), BAD_REQUESTS,
                         ids=[f"{r[0]}-{r[1]}-{r[2]}-{r[4]}" for r in BAD_REQUESTS])
def test_refusals_are_clear_and_change_nothing(
        client: TestClient, team: dict[str, dict[str, str]], settings: Settings,
        who: str | None, method: str, path: str, body: Any, status: int,
        expected: str) -> None:
    headers = team[who] if who else {}
    before = snapshot(settings)
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, str) else (
        {"json": body} if body is not None else {})
    response = client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    payload = response.json()
    assert expected in payload["code"] + " " + payload["message"] or \
        expected in str(payload.get("problems", ""))
    assert payload.get("message") and "code" in payload
    assert snapshot_without_audit(settings) == without_audit(before)


def snapshot_without_audit(settings: Settings) -> tuple[dict[str, bytes], list[str]]:
    return without_audit(snapshot(settings))


def without_audit(snap: tuple[dict[str, bytes], list[str]]) -> tuple[dict[str, bytes], list[str]]:
    """Refusals change nothing; the audit log may record a refused sign-in, nothing else."""
    files, rows = snap
    return files, [r for r in rows if not r.startswith('INSERT INTO "audit_log"')
                   and "sqlite_sequence" not in r]


@pytest.mark.sqlite_only
def test_an_expired_invitation_is_refused_and_a_fresh_one_joins_once(
        client: TestClient, team: dict[str, dict[str, str]], settings: Settings) -> None:
    made = client.post("/api/v1/orgs/acme/invitations", json={"role": "reader"},
                       headers=team["lead"]).json()
    with sqlite3.connect(settings.index_path) as conn:
        conn.execute("UPDATE invitations SET expires_at = '2000-01-01T00:00:00+00:00'")
    expired = client.post(f"/api/v1/invitations/{made['secret']}/accept",
                          json={"username": "newbie", "password": PASSWORD})
    assert expired.status_code == 409 and "expired" in expired.json()["message"]
    fresh = client.post("/api/v1/orgs/acme/invitations", json={"role": "publisher"},
                        headers=team["lead"]).json()
    assert fresh["url"].endswith(f"/invite/{fresh['secret']}")  # the page a browser opens
    assert fresh["accept"].endswith(f"/api/v1/invitations/{fresh['secret']}/accept")
    joined = client.post(f"/api/v1/invitations/{fresh['secret']}/accept",
                         json={"username": "newbie", "password": PASSWORD})
    assert joined.status_code == 200, joined.text
    members = client.get("/api/v1/orgs/acme/members", headers=team["lead"]).json()["members"]
    assert {"username": "newbie", "role": "publisher"}.items() <= next(
        m for m in members if m["username"] == "newbie").items()
    again = client.post(f"/api/v1/invitations/{fresh['secret']}/accept",
                        headers=team["outsider"])
    assert again.status_code == 409 and "already used" in again.json()["message"]


# -- tokens ---------------------------------------------------------------------------


def test_tokens_are_listed_without_secrets_and_revoked_at_once(
        client: TestClient, team: dict[str, dict[str, str]]) -> None:
    made = client.post("/api/v1/tokens", json={"label": "ci", "scopes": ["read", "publish"],
                                               "namespaces": ["acme"], "days": 7},
                       headers=team["bob"])
    assert made.status_code == 201
    secret, info = made.json()["token"], made.json()["token_info"]
    assert info["prefix"] == secret[:11] and info["namespaces"] == ["acme"]
    listed = client.get("/api/v1/tokens", headers=team["bob"]).json()["tokens"]
    assert secret not in str(listed) and info["id"] in [t["id"] for t in listed]
    assert publish(client, bearer(secret), "1.0.0").status_code == 201
    # Another person cannot revoke bob's token (nor learn it exists).
    assert client.delete(f"/api/v1/tokens/{info['id']}",
                         headers=team["cara"]).status_code == 404
    assert client.delete(f"/api/v1/tokens/{info['id']}",
                         headers=team["bob"]).status_code == 200
    revoked = client.get("/api/v1/whoami", headers=bearer(secret))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]


@pytest.mark.sqlite_only
def test_an_expired_token_says_so(client: TestClient, team: dict[str, dict[str, str]],
                                  settings: Settings) -> None:
    secret = client.post("/api/v1/tokens", json={}, headers=team["bob"]).json()["token"]
    with sqlite3.connect(settings.index_path) as conn:
        conn.execute("UPDATE tokens SET expires_at = '2000-01-01T00:00:00+00:00' "
                     "WHERE prefix = ?", (secret[:11],))
    expired = client.get("/api/v1/whoami", headers=bearer(secret))
    assert expired.status_code == 401 and "expired on 2000-01-01" in expired.json()["message"]
    assert "token create" in expired.json()["hint"]


def test_a_read_token_cannot_publish_and_a_limited_token_stays_in_its_namespace(
        client: TestClient, team: dict[str, dict[str, str]]) -> None:
    read = client.post("/api/v1/tokens", json={"scopes": ["read"]},
                       headers=team["lead"]).json()["token"]
    refused = publish(client, bearer(read), "1.0.0")
    assert refused.status_code == 403 and refused.json()["needed_scope"] == "publish"
    limited = client.post("/api/v1/tokens", json={"namespaces": ["lead"]},
                          headers=team["lead"]).json()["token"]
    assert publish(client, bearer(limited), "1.0.0").status_code == 403
    assert publish(client, bearer(limited), "1.0.0", namespace="lead").status_code == 201


def test_service_accounts_of_an_org_hold_tokens_for_ci(
        client: TestClient, team: dict[str, dict[str, str]]) -> None:
    made = client.post("/api/v1/orgs/acme/service-accounts", json={"name": "ci",
                                                                   "role": "publisher"},
                       headers=team["lead"])
    assert made.status_code == 201 and made.json()["username"] == "acme.ci"
    token = client.post("/api/v1/tokens", json={"account": "acme.ci", "scopes": ["publish"]},
                        headers=team["lead"]).json()["token"]
    assert publish(client, bearer(token), "1.0.0").status_code == 201
    # Only owners make them; a maintainer cannot mint a token for the org's robot.
    assert client.post("/api/v1/tokens", json={"account": "acme.ci"},
                       headers=team["cara"]).status_code == 403
    listed = client.get("/api/v1/orgs/acme/tokens", headers=team["lead"]).json()["tokens"]
    assert [t["account"] for t in listed] == ["acme.ci"]


# -- required review ----------------------------------------------------------------------


def test_required_review_holds_a_publishers_version_until_a_maintainer_approves(
        client: TestClient, team: dict[str, dict[str, str]], settings: Settings,
        registry: Registry) -> None:
    assert publish(client, team["cara"], "1.0.0").status_code == 201
    policy = client.put("/api/v1/namespaces/acme/release-policy",
                        json={"policy": "review", "two_person": True}, headers=team["lead"])
    assert policy.json()["release_policy"] == "review" and policy.json()["two_person"]
    held = publish(client, team["bob"], "1.1.0", body="Say hello twice.")
    assert held.status_code == 202, held.text
    release = held.json()["release"]
    assert held.json()["status"] == "pending"
    # Not latest, not in the indexes, not installable without a pin...
    assert client.get("/api/v1/skills/acme/hello-world").json()["latest_version"] == "1.0.0"
    index = client.get("/.well-known/agent-skills/index.json").json()
    assert all("1.1.0" not in s["url"] for s in index["skills"])
    assert client.get("/api/v1/skills/acme/hello-world/versions/1.1.0").status_code == 404
    # ... except by members who pin it.
    pinned = client.get("/api/v1/skills/acme/hello-world/versions/1.1.0/files/SKILL.md",
                        headers=team["bob"])
    assert pinned.status_code == 200 and b"twice" in pinned.content
    # The publisher cannot approve it; the queue shows it to maintainers with its diff.
    assert client.post(f"/api/v1/releases/{release['id']}/approve",
                       headers=team["bob"]).status_code == 403
    queue = client.get("/api/v1/review", headers=team["cara"]).json()
    assert [r["id"] for r in queue["releases"]] == [release["id"]]
    assert "+Say hello twice." in queue["releases"][0]["diff"]
    assert queue["releases"][0]["current_version"] == "1.0.0"
    nothing = client.get("/api/v1/review", headers=team["bob"]).json()
    assert nothing == {"releases": [], "proposals": []}
    assert client.get("/api/v1/review?namespace=acme", headers=team["bob"]).status_code == 403
    approved = client.post(f"/api/v1/releases/{release['id']}/approve",
                           json={"comment": "looks right"}, headers=team["cara"])
    assert approved.status_code == 200, approved.text
    assert approved.json()["release"]["state"] == "approved"
    assert client.get("/api/v1/skills/acme/hello-world").json()["latest_version"] == "1.1.0"
    log = subprocess.run(
        ["git", "--git-dir", str(settings.repos_dir / "acme.git"), "log", "-1",
         "--format=%an <%ae>%n%cn%n%B", "main"], capture_output=True, text=True, check=True)
    assert log.stdout.startswith("Bob <bob@example.com>\nskills-hub\n")
    assert "Reviewed-by: Cara <cara@example.com>" in log.stdout
    tagger = subprocess.run(
        ["git", "--git-dir", str(settings.repos_dir / "acme.git"), "for-each-ref",
         "--format=%(taggername)", "refs/tags/hello-world/v1.1.0"],
        capture_output=True, text=True, check=True)
    assert tagger.stdout.strip() == "Bob"
    actions = [e.action for e in registry.store.audit.audit_events(orgs=["acme"])]
    assert {"release.submit", "release.approve", "publish", "namespace.release_policy",
            "member.add", "org.create"} <= set(actions)


def test_under_the_two_person_rule_even_a_maintainers_version_waits_for_another(
        client: TestClient, team: dict[str, dict[str, str]]) -> None:
    assert publish(client, team["cara"], "1.0.0").status_code == 201  # direct policy
    client.put("/api/v1/namespaces/acme/release-policy",
               json={"policy": "review", "two_person": True}, headers=team["lead"])
    own = publish(client, team["cara"], "1.1.0", body="Changed by cara.")
    assert own.status_code == 202, own.text
    refused = client.post(f"/api/v1/releases/{own.json()['release']['id']}/approve",
                          headers=team["cara"])
    assert refused.status_code == 403 and "two-person" in refused.json()["message"]
    assert client.post(f"/api/v1/releases/{own.json()['release']['id']}/approve",
                       headers=team["dan"]).status_code == 200
    # Without the rule a maintainer publishes directly again.
    client.put("/api/v1/namespaces/acme/release-policy",
               json={"policy": "review", "two_person": False}, headers=team["lead"])
    assert publish(client, team["cara"], "1.2.0", body="Again.").status_code == 201
    held = publish(client, team["bob"], "1.3.0", body="Changed.").json()["release"]
    assert client.post(f"/api/v1/releases/{held['id']}/reject",
                       json={"comment": ""}, headers=team["cara"]).status_code == 400
    rejected = client.post(f"/api/v1/releases/{held['id']}/reject",
                           json={"comment": "needs a test"}, headers=team["dan"])
    assert rejected.json()["release"]["state"] == "rejected"
    mine = client.get("/api/v1/namespaces/acme/releases?mine=1&state=rejected",
                      headers=team["bob"]).json()["releases"]
    assert [(r["comment"], r["decided_by"]) for r in mine] == [("needs a test", "dan")]
    assert client.post(f"/api/v1/releases/{held['id']}/approve",
                       headers=team["cara"]).status_code == 409


def test_two_person_rule_for_a_maintainers_own_proposal(
        client: TestClient, team: dict[str, dict[str, str]]) -> None:
    publish(client, team["cara"], "1.0.0")
    client.put("/api/v1/namespaces/acme/release-policy",
               json={"policy": "review", "two_person": True}, headers=team["lead"])
    proposal = client.post("/api/v1/skills/acme/hello-world/proposals", json={
        "base_version": "1.0.0", "reasoning": "clearer",
        "edits": [{"op": "replace", "target": "Say hello.", "content": "Say hello, warmly."}]},
        headers=team["cara"])
    assert proposal.status_code == 201, proposal.text
    pid = proposal.json()["id"]
    assert proposal.json()["author"] == "cara"
    own = client.post(f"/api/v1/skills/acme/hello-world/proposals/{pid}/review",
                      json={"decision": "accept"}, headers=team["cara"])
    assert own.status_code == 403 and "two-person" in own.json()["message"]
    other = client.post(f"/api/v1/skills/acme/hello-world/proposals/{pid}/review",
                        json={"decision": "accept"}, headers=team["dan"])
    assert other.status_code == 200, other.text


# -- visibility and the audit log ----------------------------------------------------------


def test_internal_namespaces_are_for_any_signed_in_account(
        client: TestClient, team: dict[str, dict[str, str]]) -> None:
    publish(client, team["cara"], "1.0.0")
    client.put("/api/v1/namespaces/acme/visibility", json={"visibility": "internal"},
               headers=team["lead"])
    assert client.get("/api/v1/skills/acme/hello-world").status_code == 404
    assert client.get("/api/v1/skills/acme/hello-world",
                      headers=team["outsider"]).status_code == 200
    assert client.get("/git/acme.git/info/refs?service=git-upload-pack").status_code == 401
    names = [n["name"] for n in client.get("/api/v1/namespaces").json()["namespaces"]]
    assert "acme" not in names


def test_owners_read_their_orgs_audit_log_and_the_operator_reads_all(
        client: TestClient, team: dict[str, dict[str, str]]) -> None:
    client.post("/api/v1/orgs", json={"name": "other"}, headers=team["outsider"])
    lead = client.get("/api/v1/audit?limit=2", headers=team["lead"]).json()
    assert len(lead["events"]) == 2 and lead["next_cursor"]
    rest = client.get(f"/api/v1/audit?cursor={lead['next_cursor']}",
                      headers=team["lead"]).json()["events"]
    everything = lead["events"] + rest
    assert {e["org"] for e in everything} == {"acme"}
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    event = next(e for e in everything if e["action"] == "member.add")
    assert event["actor"] == "lead" and event["address"] and event["request_id"]
    assert client.get("/api/v1/audit?org=other", headers=team["lead"]).status_code == 404
    operator = client.get("/api/v1/audit?action=org.create", headers=team["root"]).json()
    assert {e["target"] for e in operator["events"]} == {"acme", "other"}
    lines = client.get("/api/v1/audit?format=jsonl", headers=team["lead"])
    assert lines.headers["content-type"].startswith("application/jsonl")
    assert len(lines.text.splitlines()) == len(everything)


@pytest.mark.sqlite_only
def test_the_audit_log_is_append_only(registry: Registry, settings: Settings) -> None:
    registry.audit(OPERATOR, "test.event", "x")
    with sqlite3.connect(settings.index_path) as conn, pytest.raises(sqlite3.DatabaseError):
        conn.execute("DELETE FROM audit_log")
    with sqlite3.connect(settings.index_path) as conn, pytest.raises(sqlite3.DatabaseError):
        conn.execute("UPDATE audit_log SET actor = 'someone else'")


def test_sessions_need_csrf_for_writes(client: TestClient, people: dict[str, str]) -> None:
    signed = client.post("/api/v1/auth/session",
                         json={"username": "bob", "password": PASSWORD})
    assert signed.status_code == 200 and "HttpOnly" in signed.headers["set-cookie"]
    csrf = signed.json()["csrf"]
    assert client.get("/api/v1/whoami").json()["via"] == "session"
    assert client.post("/api/v1/tokens", json={}).status_code == 403
    assert client.post("/api/v1/tokens", json={},
                       headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert client.post("/api/v1/tokens", json={},
                       headers={"X-CSRF-Token": csrf}).status_code == 201
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.get("/api/v1/whoami").status_code == 401


def test_principals_are_anonymous_without_credentials(registry: Registry) -> None:
    assert not ANONYMOUS.signed_in and registry.authenticate(None) == ANONYMOUS


@pytest.mark.parametrize("backend", ["git", "dulwich"])
def test_clones_never_see_proposals_or_releases_under_review(
        tmp_path: Any, backend: str) -> None:

    settings = Settings(home=tmp_path / "data", seed=False, semantic="off",
                        git_backend=backend)
    registry = Registry(settings)
    registry.start()
    with TestClient(create_app(settings, registry)) as client:
        registry.add_user("lead", password=PASSWORD, display_name="Lead")
        registry.add_user("bob", password=PASSWORD, display_name="Bob")
        lead, bob = login(client, "lead"), login(client, "bob")
        client.post("/api/v1/orgs", json={"name": "acme"}, headers=lead)
        client.put("/api/v1/orgs/acme/members/bob", json={"role": "publisher"}, headers=lead)
        assert publish(client, lead, "1.0.0").status_code == 201
        client.put("/api/v1/namespaces/acme/release-policy", json={"policy": "review"},
                   headers=lead)
        assert publish(client, bob, "1.1.0", body="Unreviewed.").status_code == 202
        proposal = client.post("/api/v1/skills/acme/hello-world/proposals", json={
            "base_version": "1.0.0", "reasoning": "r",
            "edits": [{"op": "replace", "target": "Say hello.", "content": "Say hi."}]},
            headers=bob)
        assert proposal.status_code == 201, proposal.text
        refs = client.get("/git/acme.git/info/refs?service=git-upload-pack").content
        assert b"refs/heads/main" in refs and b"refs/tags/hello-world/v1.0.0" in refs
        assert b"proposals/" not in refs and b"releases/" not in refs
        assert proposal.json()["commit"].encode() not in refs


def test_an_audit_event_carries_the_request_id_of_its_answer(
        client: TestClient, team: dict[str, dict[str, str]]) -> None:
    """The audit log, the log lines and the X-Request-ID header name a request alike."""
    given = client.post("/api/v1/orgs", json={"name": "given-id"},
                        headers={**team["outsider"], "X-Request-ID": "audit-trail-1"})
    made = client.post("/api/v1/orgs", json={"name": "made-id"},
                       headers={**team["outsider"], "X-Request-ID": "not valid\tid"})
    assert given.headers["x-request-id"] == "audit-trail-1"
    events = {e["target"]: e for e in client.get(
        "/api/v1/audit?action=org.create", headers=team["root"]).json()["events"]}
    assert events["given-id"]["request_id"] == "audit-trail-1"
    assert events["made-id"]["request_id"] == made.headers["x-request-id"] != "not valid\tid"


def test_two_requests_making_one_name_at_once_end_in_one_org_and_409s(
        registry: Registry, people: dict[str, str]) -> None:
    """Between the name check and the insert, another request may make the same name: the
    database's unique key refuses the second (Duplicate, 409), never a 500."""
    lead = registry.account_principal("lead")
    start = threading.Barrier(8)

    def make(_: int) -> int:
        start.wait()
        try:
            registry.create_org(lead, "racers")
        except HubError as exc:
            return exc.status
        return 201

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(make, range(8)))
    assert statuses == [201] + [409] * 7
    assert [m.username for m in registry.store.orgs.members("racers")] == ["lead"]
