"""Upgrading a data home from before accounts (m007): namespace tokens keep working.

The home is built as the previous release left it: the schema of m001-m006, namespaces
(one private), namespace tokens stored as their sha256, and skills in git. Then a Registry
starts as usual, which applies m007.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import OPERATOR
from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.store.gitstore import GitStore
from skills_hub.store.sqlite import migrations
from skills_hub.web.app import create_app
from tests.conftest import skill_md

OLD_AT = "2024-05-01T10:00:00+00:00"
TEAM_TOKEN = "team-token-from-before-accounts-0123456789"
TEAM_TOKEN_2 = "team-ci-token-from-before-accounts-abcdef"
SECRET_TOKEN = "secret-token-from-before-accounts-9876543"
NAMESPACES = {"team": "public", "secret": "private", "other": "public"}
TOKENS = {TEAM_TOKEN: "team", TEAM_TOKEN_2: "team", SECRET_TOKEN: "secret"}


def build_old_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = Settings(home=home, seed=False, semantic="off", sandbox="off")
    home.mkdir(parents=True)
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:6])
        conn = sqlite3.connect(settings.index_path, isolation_level=None)
        try:
            assert migrations.apply(conn)[-1] == "m006_client_counts"
            assert "users" not in {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            conn.execute("BEGIN")
            for ns, vis in NAMESPACES.items():
                conn.execute("INSERT INTO namespaces (name, visibility, created_at) "
                             "VALUES (?, ?, ?)", (ns, vis, OLD_AT))
            for token, ns in TOKENS.items():
                conn.execute("INSERT INTO tokens (namespace, token_sha256, label, created_at) "
                             "VALUES (?, ?, ?, ?)",
                             (ns, hashlib.sha256(token.encode()).hexdigest(), "ci", OLD_AT))
            conn.execute("COMMIT")
        finally:
            conn.close()
    git = GitStore(settings.repos_dir)
    for ns in NAMESPACES:
        name = f"{ns}-skill"
        bundle = Bundle({"SKILL.md": skill_md(name)})
        git.publish(ns, name, "1.0.0", bundle,
                    message=f"Publish {name} 1.0.0\n\nSkill-Name: {name}\n"
                            f"Skill-Version: 1.0.0\nContent-Sha256: {bundle.content_hash()}\n")
    return settings


@pytest.fixture
def upgraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        tuple[Registry, TestClient]]:
    settings = build_old_home(tmp_path / "data", monkeypatch)
    registry = Registry(settings)
    registry.start()
    try:
        with TestClient(create_app(settings, registry)) as client:
            yield registry, client
    finally:
        registry.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_m007_is_applied_and_keeps_the_catalogue(upgraded: tuple[Registry, TestClient]
                                                  ) -> None:
    registry, client = upgraded
    conn = sqlite3.connect(registry.settings.index_path)
    try:
        assert conn.execute("SELECT 1 FROM migrations WHERE name = 'm007_teams'").fetchone()
    finally:
        conn.close()
    for ns, vis in NAMESPACES.items():
        info = registry.store.namespaces.namespace(ns)
        assert info is not None and info.visibility == vis
        assert info.owner_org == (None if ns == "other" else ns)
        assert [v.version for v in registry.get_skill(ns, f"{ns}-skill", OPERATOR).versions] \
            == ["1.0.0"]
    names = {n["name"] for n in client.get("/api/v1/namespaces").json()["namespaces"]}
    assert names == {"team", "other"}  # the private one stays private
    assert client.get("/api/v1/skills/secret/secret-skill").status_code == 404


@pytest.mark.parametrize(("token", "ns"), list(TOKENS.items()))
def test_an_old_namespace_token_is_a_legacy_service_account_owning_its_org(
        upgraded: tuple[Registry, TestClient], token: str, ns: str) -> None:
    registry, client = upgraded
    r = client.get("/api/v1/whoami", headers=bearer(token))
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["username"] == f"{ns}.legacy"
    assert me["kind"] == "service"
    assert me["namespace"] == ns
    assert me["namespaces"] == [ns]
    assert me["orgs"] == [{"org": ns, "role": "owner"}]
    assert me["roles"] == {ns: "owner"}
    assert set(me["scopes"]) == {"read", "publish", "review", "admin"}
    row = registry.store.tokens.token(hashlib.sha256(token.encode()).hexdigest())
    assert row is not None
    assert row.expires_at is None and row.revoked_at is None
    assert row.created_at == OLD_AT


@pytest.mark.parametrize(("token", "ns"), list(TOKENS.items()))
def test_an_old_token_publishes_and_reads_its_namespace_only(
        upgraded: tuple[Registry, TestClient], token: str, ns: str) -> None:
    registry, client = upgraded
    h = bearer(token)
    name = f"{ns}-skill"
    assert client.get(f"/api/v1/skills/{ns}/{name}", headers=h).status_code == 200
    r = client.get(f"/api/v1/skills/{ns}/{name}/versions/latest/files/SKILL.md", headers=h)
    assert r.status_code == 200 and f"name: {name}".encode() in r.content
    new = skill_md(name, body=f"Say hello again, {token[:6]}.")
    r = client.post(f"/api/v1/namespaces/{ns}/skills", headers=h,
                    files=[("files", ("SKILL.md", new))])
    assert r.status_code == 201, r.text
    assert r.json()["version"] == "1.0.1"
    assert client.get(f"/api/v1/skills/{ns}/{name}/versions/latest",
                      headers=h).json()["version"] == "1.0.1"
    # another public namespace: readable, not writable
    r = client.post("/api/v1/namespaces/other/skills", headers=h,
                    files=[("files", ("SKILL.md", skill_md("other-skill", body="x y z")))])
    assert r.status_code == 403, r.text
    assert [v.version for v in registry.get_skill("other", "other-skill", OPERATOR).versions] \
        == ["1.0.0"]
    assert client.get("/api/v1/skills/other/other-skill", headers=h).status_code == 200


def test_the_private_namespace_is_read_with_its_token_only(
        upgraded: tuple[Registry, TestClient]) -> None:
    registry, client = upgraded
    path = "/api/v1/skills/secret/secret-skill"
    assert client.get(path, headers=bearer(SECRET_TOKEN)).status_code == 200
    assert client.get(path, headers=bearer(TEAM_TOKEN)).status_code == 404
    assert client.get(path).status_code == 404
    r = client.post("/api/v1/namespaces/secret/skills", headers=bearer(TEAM_TOKEN),
                    files=[("files", ("SKILL.md", skill_md("secret-skill", body="no")))])
    assert r.status_code == 404, r.text
    refs = "/git/secret.git/info/refs?service=git-upload-pack"
    assert client.get(refs, auth=("x", SECRET_TOKEN)).status_code == 200
    assert client.get(refs, auth=("x", TEAM_TOKEN)).status_code == 404
    assert [v.version for v in registry.get_skill("secret", "secret-skill",
                                                  OPERATOR).versions] == ["1.0.0"]
