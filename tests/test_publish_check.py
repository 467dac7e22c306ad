"""Checking an upload without publishing it (`Registry.check_publish`, the API's
`?dry_run=true`): the same rights, validation, version choice, checks and duplicate lookup as
a publish, and nothing stored: no git object or ref, no index row, no audit event."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

import pytest
from dulwich.repo import Repo
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, Principal
from skills_hub.config import Settings
from skills_hub.errors import HubError
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle, from_files
from tests.conftest import skill_md
from tests.test_api import snapshot
from tests.test_publish_checks import DROPPER, SHELLY

PASSWORD = "correct horse battery staple"
TESTS_YAML = b"tests:\n  - name: says hi\n    run: python3 scripts/hi.py\n"


def bundle(body: str = "Say hello.", name: str = "hello-world",
           files: dict[str, bytes] | None = None, folder: str | None = None) -> Bundle:
    prefix = f"{folder}/" if folder else ""
    items = [(prefix + "SKILL.md", skill_md(name, body=body), False)]
    items += [(prefix + path, data, False) for path, data in (files or {}).items()]
    return from_files(items)


# The kinds of upload a check must leave no trace of, from fine to refused.
UPLOADS = {
    "safe": lambda: bundle(),
    "with-tests": lambda: bundle(files={"tests/tests.yaml": TESTS_YAML,
                                        "scripts/hi.py": b"print('hi')\n"}),
    "flagged": lambda: bundle(files={"scripts/run.py": SHELLY}),
    "invalid": lambda: bundle(name="Not_A_Name"),
    "dangerous": lambda: bundle(body=DROPPER),
}


@pytest.fixture
def team(registry: Registry) -> dict[str, Principal]:
    """Org `acme` (public): lead owns it, bob publishes, rita reads; org `vault` (private)
    of lead alone; org `held` requires review, bob publishes there; `outsider` is in no org.
    Each person also owns a namespace of their own name."""
    for name in ("lead", "bob", "rita", "outsider"):
        registry.add_user(name, password=PASSWORD)
    for org in ("acme", "vault", "held"):
        registry.create_org(registry.account_principal("lead"), org)
    lead = registry.account_principal("lead")
    registry.set_member(lead, "acme", "bob", "publisher")
    registry.set_member(lead, "acme", "rita", "reader")
    registry.set_member(lead, "held", "bob", "publisher")
    registry.set_visibility("vault", "private", lead)
    registry.set_release_policy(lead, "held", "review", False)
    return {name: registry.account_principal(name) for name in ("lead", "bob", "rita",
                                                                 "outsider")}


def audit_count(settings: Settings) -> int:
    with sqlite3.connect(settings.index_path) as conn:
        return int(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0])


def git_refs(registry: Registry) -> dict[bytes, bytes]:
    """Every ref of namespace acme's repository, read by dulwich."""
    with Repo(str(registry.git.path("acme"))) as repo:
        return dict(repo.get_refs())


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A report without what differs from one run to the next (times)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k not in ("timings_ms", "checked_at", "duration_ms")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return dict(strip(report))


# -- the service ---------------------------------------------------------------------------


@pytest.mark.sqlite_only
@pytest.mark.parametrize("kind", list(UPLOADS))
def test_a_check_stores_nothing(registry: Registry, settings: Settings,
                                team: dict[str, Principal], kind: str) -> None:
    registry.publish("acme", bundle(body="An older version."), principal=team["bob"])
    before, audits, refs = snapshot(settings), audit_count(settings), git_refs(registry)
    try:
        outcome = registry.check_publish("acme", UPLOADS[kind](), principal=team["bob"])
    except HubError as exc:
        assert kind in ("invalid", "dangerous")
        assert exc.status == 422
    else:
        assert kind not in ("invalid", "dangerous")
        assert outcome.status == "checked" and outcome.version == "0.1.1"
        assert outcome.commit_sha == "" and outcome.tag_sha == "" and outcome.release is None
    assert snapshot(settings) == before
    assert audit_count(settings) == audits
    assert git_refs(registry) == refs and b"refs/tags/hello-world/v0.1.0" in refs
    skill = registry.store.catalogue.get_skill("acme", "hello-world")
    assert skill is not None and skill.latest_version == "0.1.0"
    assert [v.version for v in registry.store.catalogue.versions(skill.id)] == ["0.1.0"]


@pytest.mark.parametrize("kind", ["safe", "with-tests", "flagged"])
def test_the_checked_report_is_the_one_publish_then_stores(
        registry: Registry, team: dict[str, Principal], kind: str) -> None:
    upload = UPLOADS[kind]()
    checked = registry.check_publish("acme", upload, principal=team["bob"])
    published = registry.publish("acme", upload, principal=team["bob"])
    assert (checked.status, published.status) == ("checked", "published")
    assert checked.version == published.version == "0.1.0"
    assert checked.content_sha256 == published.content_sha256 == upload.content_hash()
    assert checked.verdict == published.verdict
    assert checked.warnings == published.warnings
    assert checked.duplicates == published.duplicates is None  # the model is off here
    assert checked.report is not None and published.report is not None
    assert comparable(checked.report.to_dict()) == comparable(published.report.to_dict())
    skill = registry.store.catalogue.get_skill("acme", "hello-world")
    assert skill is not None
    stored = registry.stored_report("acme", "hello-world",
                                    registry.store.catalogue.get_version(skill.id, "0.1.0"))
    assert stored is not None
    assert comparable(stored.report) == comparable(checked.report.to_dict())
    # the same content once more: unchanged, for a check as for a publish
    again = registry.check_publish("acme", upload, principal=team["bob"])
    assert again.status == "unchanged" and again.version == "0.1.0"


def test_a_dangerous_check_is_refused_with_the_report_publish_gives(
        registry: Registry, team: dict[str, Principal]) -> None:
    refusals = []
    for act in (registry.check_publish, registry.publish):
        with pytest.raises(HubError) as caught:
            act("acme", UPLOADS["dangerous"](), principal=team["bob"])
        refusals.append(caught.value)
    checked, published = refusals
    assert checked.code == published.code == "dangerous_skill"
    assert checked.message == published.message
    assert comparable(checked.extra["report"]) == comparable(published.extra["report"])
    assert registry.store.catalogue.get_skill("acme", "hello-world") is None


@pytest.mark.parametrize(("who", "namespace", "status"), [
    ("outsider", "vault", 404),       # a private namespace one may not read does not exist
    ("outsider", "acme", 403),        # a public one: the role is missing
    ("rita", "acme", 403),            # a reader does not publish
    ("anonymous", "acme", 401),
    ("bob", "nowhere", 404),
])
def test_a_check_asks_the_access_policy_as_publish_does(
        registry: Registry, settings: Settings, team: dict[str, Principal], who: str,
        namespace: str, status: int) -> None:
    principal = team.get(who, ANONYMOUS)
    before = snapshot(settings)
    answers = []
    for act in (registry.check_publish, registry.publish):
        with pytest.raises(HubError) as caught:
            act(namespace, bundle(), principal=principal)
        answers.append((caught.value.status, caught.value.code, caught.value.message))
    assert answers[0] == answers[1]
    assert answers[0][0] == status
    assert snapshot(settings) == before


def test_a_token_for_another_namespace_may_not_check(
        registry: Registry, team: dict[str, Principal]) -> None:
    limited = replace(team["bob"], limit=frozenset({"held"}))
    with pytest.raises(HubError) as caught:
        registry.check_publish("acme", bundle(), principal=limited)
    assert caught.value.status == 403 and "limited" in caught.value.message


def test_a_check_tells_a_version_for_review_and_refuses_one_that_already_waits(
        registry: Registry, settings: Settings, team: dict[str, Principal]) -> None:
    checked = registry.check_publish("held", bundle(), principal=team["bob"])
    assert checked.status == "checked" and checked.for_review
    assert not registry.check_publish("held", bundle(), principal=team["lead"]).for_review
    pending = registry.publish("held", bundle(), principal=team["bob"])
    assert pending.status == "pending" and pending.for_review
    before = snapshot(settings)
    for act in (registry.check_publish, registry.publish):
        with pytest.raises(HubError) as caught:
            act("held", bundle(body="Say hello again."), principal=team["bob"],
                version="0.1.0")
        assert caught.value.status == 409 and "already waits for review" in caught.value.message
    assert snapshot(settings) == before


def test_a_check_refuses_an_older_version_as_publish_does(
        registry: Registry, team: dict[str, Principal]) -> None:
    registry.publish("acme", bundle(), principal=team["bob"], version="1.0.0")
    for act in (registry.check_publish, registry.publish):
        with pytest.raises(HubError) as caught:
            act("acme", bundle(body="Newer words."), principal=team["bob"], version="0.9.0")
        assert caught.value.code == "version_exists"


def test_a_check_compares_the_skill_name_with_its_folder(
        registry: Registry, team: dict[str, Principal]) -> None:
    ok = registry.check_publish("acme", bundle(folder="hello-world"), principal=team["bob"])
    assert ok.status == "checked" and ok.name == "hello-world"
    with pytest.raises(HubError) as caught:
        registry.check_publish("acme", bundle(folder="hello-world-main"), principal=team["bob"])
    assert caught.value.code == "invalid_skill"
    assert "does not match its folder" in caught.value.problems[0].message


def test_the_namespaces_one_may_publish_to(registry: Registry,
                                           team: dict[str, Principal]) -> None:
    names = {who: [n.name for n in registry.publishable_namespaces(p)]
             for who, p in team.items()}
    # each person's own namespace, and the orgs' where they publish
    assert names == {"lead": ["acme", "held", "lead", "vault"], "bob": ["acme", "bob", "held"],
                     "rita": ["rita"], "outsider": ["outsider"]}
    assert registry.publishable_namespaces(ANONYMOUS) == []


# -- the API: ?dry_run=true ------------------------------------------------------------------

PUBLISH = "/api/v1/namespaces/team/skills"


def post(client: TestClient, auth: dict[str, str], body: str = "Say hello.",
         **params: str) -> Any:
    return client.post(PUBLISH, params=params, headers=auth,
                       files=[("files", ("SKILL.md", skill_md(body=body)))])


def test_a_dry_run_answers_like_a_publish_and_stores_nothing(
        client: TestClient, settings: Settings, auth: dict[str, str]) -> None:
    assert post(client, auth).status_code == 201
    before = snapshot(settings)
    dry = post(client, auth, body="Say hello twice.", dry_run="true")
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["status"] == "checked" and body["dry_run"] is True
    assert body["for_review"] is False and body["version"] == "0.1.1"
    assert body["commit"] == "" and body["tag"] == ""
    assert body["report"]["verdict"] == "safe" and body["duplicates_checked"] is False
    assert snapshot(settings) == before
    real = post(client, auth, body="Say hello twice.")
    assert real.status_code == 201
    assert real.json()["content_sha256"] == body["content_sha256"]
    assert comparable(real.json()["report"]) == comparable(body["report"])
    unchanged = post(client, auth, body="Say hello twice.", dry_run="1")
    assert unchanged.status_code == 200 and unchanged.json()["status"] == "unchanged"


def test_a_dry_run_of_a_dangerous_skill_is_the_publish_refusal(
        client: TestClient, settings: Settings, auth: dict[str, str]) -> None:
    before = snapshot(settings)
    dry = post(client, auth, body=DROPPER, dry_run="true")
    assert dry.status_code == 422 and dry.json()["code"] == "dangerous_skill"
    assert dry.json()["report"]["verdict"] == "dangerous"
    assert snapshot(settings) == before


@pytest.mark.parametrize(("params", "headers", "status", "code"), [
    ({"dry_run": "maybe"}, True, 400, "bad_request"),
    ({"dry_run": "true"}, False, 401, "unauthorized"),
])
def test_a_bad_dry_run_is_refused(client: TestClient, settings: Settings,
                                  auth: dict[str, str], params: dict[str, str],
                                  headers: bool, status: int, code: str) -> None:
    before = snapshot(settings)
    got = post(client, auth if headers else {}, **params)
    assert (got.status_code, got.json()["code"]) == (status, code)
    assert snapshot(settings) == before
