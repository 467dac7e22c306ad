"""The ClawHub API (web/clawhub.py), in-process: every route's shape, the same versions,
bytes and fingerprints as the native API, moderation from the checks, and the errors."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import OPERATOR
from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.web.clawhub import client_fingerprint
from tests.conftest import skill_md
from tests.test_api import snapshot
from tests.test_publish_checks import DROPPER, SHELLY

ROOT = "/clawhub/api/v1"
TEAM = "/clawhub/team/api/v1"
SCRIPT = b"#!/usr/bin/env bash\necho hello\n"
NOTES = b"# Notes\n\nSay it kindly.\n"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def publish(client: TestClient, headers: dict[str, str], name: str = "hello-world",
            namespace: str = "team", body: str = "Say hello.",
            files: dict[str, bytes] | None = None, version: str | None = None) -> Any:
    """A version through the native API (the reference the ClawHub routes must match)."""
    parts = [("files", ("SKILL.md", skill_md(name, body=body)))]
    parts += [("files", (path, data)) for path, data in (files or {}).items()]
    url = f"/api/v1/namespaces/{namespace}/skills" + (f"?version={version}" if version else "")
    response = client.post(url, files=parts, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def clawhub_publish(client: TestClient, headers: dict[str, str], files: dict[str, bytes],
                    slug: str = "hello-world", version: str = "1.0.0", root: str = ROOT,
                    **extra: Any) -> httpx.Response:
    """What `clawhub publish` sends: an upload URL per file, the bytes, then the publish."""
    named = []
    for path, data in files.items():
        sha256 = hashlib.sha256(data).hexdigest()
        ticket = client.post(root + "/skills/-/upload-url", headers=headers, json={
            "path": path, "size": len(data), "sha256": sha256, "contentType": "text/plain"})
        assert ticket.status_code == 200, ticket.text
        stored = client.post(ticket.json()["uploadUrl"], headers={
            **headers, "Content-Type": "text/plain"}, content=data)
        assert stored.status_code == 200, stored.text
        named.append({"path": path, "size": len(data), "sha256": sha256,
                      "storageId": stored.json()["storageId"],
                      "uploadTicket": ticket.json()["uploadTicket"]})
    payload = {"slug": slug, "displayName": slug.title(), "version": version,
               "changelog": "", "acceptLicenseTerms": True, "tags": ["latest"],
               "files": named, **extra}
    return client.post(root + "/skills", headers=headers, json=payload)


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture
def team(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    """team/hello-world 0.1.0 and 0.2.0, with a script and notes."""
    publish(client, auth, files={"scripts/run.sh": SCRIPT})
    return publish(client, auth, files={"scripts/run.sh": SCRIPT, "references/notes.md": NOTES},
                   version="0.2.0")


@pytest.fixture
def rival(client: TestClient, registry: Registry, team: dict[str, Any]) -> str:
    """A second namespace with a skill of the same name: the slug is ambiguous server-wide."""
    token = registry.create_token("rival")
    publish(client, bearer(token), namespace="rival", body="Say hello, rival.")
    return token


# -- discovery and auth ----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/.well-known/clawhub.json", "/.well-known/clawdhub.json"])
def test_discovery_points_the_cli_at_the_clawhub_root(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"apiBase": "http://testserver/clawhub"}


def test_discovery_uses_the_public_url(tmp_path: Any) -> None:
    from skills_hub.web.app import create_app
    settings = Settings(home=tmp_path / "pub", seed=False, semantic="off",
                        public_url="https://hub.example.org")
    with TestClient(create_app(settings)) as client:
        assert client.get("/.well-known/clawhub.json").json() == {
            "apiBase": "https://hub.example.org/clawhub"}


def test_whoami_names_the_tokens_namespace(client: TestClient, auth: dict[str, str]) -> None:
    for root in (ROOT, TEAM):
        response = client.get(root + "/whoami", headers=auth)
        assert response.status_code == 200
        assert response.json()["user"]["handle"] == "team"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer shub_not-a-token"}])
def test_whoami_without_a_valid_token_is_401_in_plain_text(client: TestClient,
                                                            headers: dict[str, str]) -> None:
    response = client.get(ROOT + "/whoami", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-skills-hub-error"] == "unauthorized"
    assert "token" in response.text


def test_a_bad_token_is_401_on_every_route(client: TestClient, team: dict[str, Any]) -> None:
    bad = bearer("shub_not-a-token")
    for path in ("/search?q=hello", "/skills", "/skills/hello-world",
                 "/resolve?slug=hello-world&hash=" + "0" * 64,
                 "/download?slug=hello-world"):
        response = client.get(ROOT + path, headers=bad)
        assert response.status_code == 401, path


# -- search and listings ---------------------------------------------------------------------

def test_search_finds_a_skill_and_names_its_namespace(client: TestClient,
                                                      team: dict[str, Any]) -> None:
    response = client.get(ROOT + "/search", params={"q": "hello"})
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert (result["slug"], result["ownerHandle"], result["version"]) == (
        "hello-world", "team", "0.2.0")
    assert result["owner"]["handle"] == "team"
    assert isinstance(result["score"], float) and result["updatedAt"] > 0


def test_server_wide_search_shows_every_namespace_and_a_root_only_its_own(
        client: TestClient, rival: str) -> None:
    everywhere = client.get(ROOT + "/search", params={"q": "hello"}).json()["results"]
    assert sorted(r["ownerHandle"] for r in everywhere) == ["rival", "team"]
    scoped = client.get("/clawhub/rival/api/v1/search", params={"q": "hello"}).json()
    assert [r["ownerHandle"] for r in scoped["results"]] == ["rival"]
    exact = client.get(ROOT + "/search", params={"q": "hello-world", "mode": "exact"}).json()
    assert {r["slug"] for r in exact["results"]} == {"hello-world"}
    assert client.get(ROOT + "/search", params={"q": " "}).status_code == 400


def test_listing_pages_with_a_cursor_and_accepts_the_clis_sorts(
        client: TestClient, auth: dict[str, str]) -> None:
    for name in ("alpha", "beta", "gamma"):
        publish(client, auth, name=name)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get(ROOT + "/skills", params=params).json()
        seen += [item["slug"] for item in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["alpha", "beta", "gamma"]
    item = client.get(ROOT + "/skills").json()["items"][0]
    assert set(item) >= {"slug", "displayName", "tags", "stats", "createdAt", "updatedAt",
                         "latestVersion", "ownerHandle"}
    assert item["latestVersion"]["version"] == "0.1.0"
    for sort in ("createdAt", "downloads", "stars", "installs", "trending", "updated"):
        response = client.get(ROOT + "/skills", params={"sort": sort})
        assert response.status_code == 200 and len(response.json()["items"]) == 3, sort
    assert client.get(ROOT + "/skills", params={"sort": "loudest"}).status_code == 400


def test_listing_by_prefix(client: TestClient, auth: dict[str, str]) -> None:
    for name in ("pdf-fill", "pdf-merge", "png-crop"):
        publish(client, auth, name=name)
    first = client.get(TEAM + "/skills", params={"prefix": "pdf", "limit": "1"}).json()
    assert [i["slug"] for i in first["items"]] == ["pdf-fill"]
    rest = client.get(TEAM + "/skills", params={"prefix": "pdf", "cursor": first["nextCursor"]})
    assert [i["slug"] for i in rest.json()["items"]] == ["pdf-merge"]
    assert rest.json()["nextCursor"] is None


# -- one skill -------------------------------------------------------------------------------

def test_skill_has_owner_latest_version_and_clean_moderation(
        client: TestClient, team: dict[str, Any]) -> None:
    response = client.get(ROOT + "/skills/hello-world")
    assert response.status_code == 200
    body = response.json()
    assert body["skill"]["slug"] == "hello-world"
    assert body["skill"]["tags"] == {"latest": "0.2.0"}
    assert body["owner"]["handle"] == "team"
    assert body["latestVersion"]["version"] == "0.2.0"
    assert body["latestVersion"]["fingerprint"] == team["content_sha256"]
    moderation = body["moderation"]
    assert (moderation["isMalwareBlocked"], moderation["isSuspicious"],
            moderation["verdict"]) == (False, False, "clean")
    assert client.get(TEAM + "/skills/hello-world").json() == body


def test_an_unknown_slug_is_404_and_says_skill_not_found(client: TestClient,
                                                         team: dict[str, Any]) -> None:
    for root in (ROOT, TEAM):
        response = client.get(root + "/skills/no-such-skill")
        assert response.status_code == 404
        assert response.text.lower().startswith("skill not found")
        assert response.headers["x-skills-hub-error"] == "not_found"


def test_an_ambiguous_slug_is_409_naming_the_candidates(client: TestClient,
                                                        rival: str) -> None:
    for path in ("/skills/hello-world", "/download?slug=hello-world",
                 "/resolve?slug=hello-world&hash=" + "0" * 64):
        response = client.get(ROOT + path)
        assert response.status_code == 409, path
        body = response.json()
        assert body["code"] == "AMBIGUOUS_SKILL_SLUG" and body["error"] == "ambiguous_name"
        assert body["candidates"] == ["rival/hello-world", "team/hello-world"]
        assert [(m["ownerHandle"], m["slug"], m["ref"]) for m in body["matches"]] == [
            ("rival", "hello-world", "rival/hello-world"),
            ("team", "hello-world", "team/hello-world")]
        assert body["matches"][0]["url"] == "http://testserver/rival/hello-world"
        assert "rival/hello-world" in body["message"]
    # The owner handle, or a namespace's own root, picks one.
    picked = client.get(ROOT + "/skills/hello-world", params={"ownerHandle": "@Rival"})
    assert picked.json()["owner"]["handle"] == "rival"
    assert client.get(TEAM + "/skills/hello-world").json()["owner"]["handle"] == "team"


def test_a_namespace_root_serves_only_its_namespace(client: TestClient, rival: str) -> None:
    response = client.get(TEAM + "/skills/hello-world", params={"ownerHandle": "rival"})
    assert response.status_code == 404
    assert "team" in response.text
    assert client.get("/clawhub/nobody/api/v1/skills/hello-world").status_code == 404
    assert client.get("/clawhub/nobody/api/v1/search?q=hello").status_code == 404


def test_a_private_namespace_is_invisible_without_its_token(
        client: TestClient, registry: Registry, team: dict[str, Any],
        auth: dict[str, str]) -> None:
    registry.set_visibility("team", "private")
    assert client.get(ROOT + "/skills/hello-world").status_code == 404
    assert client.get(TEAM + "/skills/hello-world").status_code == 404
    assert client.get(ROOT + "/search", params={"q": "hello"}).json()["results"] == []
    assert client.get(ROOT + "/skills/hello-world", headers=auth).status_code == 200
    assert client.get(TEAM + "/download?slug=hello-world", headers=auth).status_code == 200


# -- versions, files, downloads, resolve ------------------------------------------------------

def test_versions_are_newest_first_with_paging(client: TestClient,
                                               team: dict[str, Any]) -> None:
    native = client.get("/api/v1/skills/team/hello-world").json()["versions"]
    first = client.get(ROOT + "/skills/hello-world/versions", params={"limit": "1"}).json()
    assert [i["version"] for i in first["items"]] == ["0.2.0"]
    rest = client.get(ROOT + "/skills/hello-world/versions",
                      params={"cursor": first["nextCursor"]}).json()
    assert [i["version"] for i in rest["items"]] == ["0.1.0"] and rest["nextCursor"] is None
    items = first["items"] + rest["items"]
    assert [(i["version"], i["fingerprint"]) for i in items] == [
        (v["version"], v["content_sha256"]) for v in native]
    assert all(isinstance(i["createdAt"], int) and i["changelog"] == "" for i in items)


def test_a_version_lists_the_native_files(client: TestClient, team: dict[str, Any]) -> None:
    for asked in ("0.2.0", "latest"):
        body = client.get(ROOT + f"/skills/hello-world/versions/{asked}").json()
        native = client.get("/api/v1/skills/team/hello-world/versions/0.2.0").json()
        assert body["version"]["version"] == "0.2.0"
        assert body["version"]["fingerprint"] == native["content_sha256"]
        assert [(f["path"], f["size"], f["sha256"]) for f in body["version"]["files"]] == [
            (f["path"], f["size"], f["sha256"]) for f in native["files"]]
        assert body["version"]["security"]["status"] == "clean"
        assert body["skill"] == {"slug": "hello-world", "displayName": "hello-world"}
    assert client.get(ROOT + "/skills/hello-world/versions/9.9.9").status_code == 404


def test_a_file_is_served_raw_and_sandboxed(client: TestClient, team: dict[str, Any]) -> None:
    response = client.get(ROOT + "/skills/hello-world/file",
                          params={"path": "scripts/run.sh", "version": "0.1.0"})
    assert response.status_code == 200 and response.content == SCRIPT
    assert response.headers["content-security-policy"].startswith("sandbox")
    assert response.headers["content-type"] == "application/octet-stream"
    missing = client.get(ROOT + "/skills/hello-world/file", params={"path": "nope.txt"})
    assert missing.status_code == 404


def test_download_is_the_native_files_at_the_zip_root_and_deterministic(
        client: TestClient, team: dict[str, Any]) -> None:
    response = client.get(ROOT + "/download", params={"slug": "hello-world",
                                                      "version": "0.2.0"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    sha256 = hashlib.sha256(response.content).hexdigest()
    assert response.headers["etag"] == f'"sha256:{sha256}"'
    assert response.headers["x-checksum-sha256"] == sha256
    files = unzip(response.content)
    assert sorted(files) == ["SKILL.md", "references/notes.md", "scripts/run.sh"]
    for path, data in files.items():
        native = client.get(f"/api/v1/skills/team/hello-world/versions/0.2.0/files/{path}")
        assert native.content == data, path
    again = client.get(TEAM + "/download", params={"slug": "hello-world"})
    assert again.content == response.content  # latest is 0.2.0: the very same bytes
    cached = client.get(ROOT + "/download", params={"slug": "hello-world", "version": "0.2.0"},
                        headers={"If-None-Match": response.headers["etag"]})
    assert cached.status_code == 304
    older = client.get(ROOT + "/download", params={"slug": "hello-world", "version": "0.1.0"})
    assert sorted(unzip(older.content)) == ["SKILL.md", "scripts/run.sh"]


@pytest.mark.parametrize(("params", "status"), [
    ({"slug": "hello-world", "version": "9.9.9"}, 404),
    ({"slug": "no-such-skill"}, 404),
    ({"slug": "hello-world", "tag": "beta"}, 404),
    ({}, 400),
])
def test_download_errors(client: TestClient, team: dict[str, Any], params: dict[str, str],
                         status: int) -> None:
    response = client.get(ROOT + "/download", params=params)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")


def test_download_counts_like_the_native_archive(client: TestClient,
                                                 team: dict[str, Any]) -> None:
    client.get(ROOT + "/download", params={"slug": "hello-world"})
    client.head(ROOT + "/download", params={"slug": "hello-world"})
    client.app.state.registry.downloads.flush()  # counts are batched
    assert client.get("/api/v1/skills/team/hello-world").json()["downloads"] == 1


def test_resolve_matches_a_version_by_either_fingerprint(client: TestClient,
                                                         team: dict[str, Any]) -> None:
    native = client.get("/api/v1/skills/team/hello-world/versions/0.1.0").json()
    by_hash = client.get(ROOT + "/resolve", params={"slug": "hello-world",
                                                    "hash": native["content_sha256"]})
    assert by_hash.status_code == 200
    assert by_hash.json() == {"match": {"version": "0.1.0",
                                        "fingerprint": native["content_sha256"]},
                              "latestVersion": {"version": "0.2.0"}}
    # What the CLI computes for the installed folder: localeCompare puts scripts/ before
    # SKILL.md (code-point order puts it after), and leaves out its own .clawhub/ files.
    hashes = {f["path"]: f["sha256"] for f in native["files"]}
    lines = "\n".join(f"{p}:{hashes[p]}" for p in ["scripts/run.sh", "SKILL.md"])
    cli = hashlib.sha256(lines.encode()).hexdigest()
    assert cli != native["content_sha256"]
    by_cli = client.get(ROOT + "/resolve", params={"slug": "hello-world", "hash": cli,
                                                   "ownerHandle": "team"})
    assert by_cli.json()["match"]["version"] == "0.1.0"


def test_resolve_with_an_unknown_hash_gives_only_the_latest(client: TestClient,
                                                            team: dict[str, Any]) -> None:
    response = client.get(TEAM + "/resolve", params={"slug": "hello-world", "hash": "a" * 64})
    assert response.json() == {"match": None, "latestVersion": {"version": "0.2.0"}}
    assert client.get(TEAM + "/resolve", params={"slug": "hello-world",
                                                 "hash": "xyz"}).status_code == 400
    unknown = client.get(TEAM + "/resolve", params={"slug": "no-such", "hash": "a" * 64})
    assert unknown.status_code == 404 and "skill not found" in unknown.text.lower()


def test_the_cli_fingerprint_sorts_like_localecompare() -> None:
    # The order Node 22's localeCompare gives these paths (checked against node).
    node_order = ["_a", "-b", "1", "a", "A", "a_b", "a-b", "a.b", "a/b", "aB", "Ab", "b", "B",
                  "README.md", "references/y.md", "scripts/x.py", "SKILL.md"]
    files = [{"path": p, "sha256": hashlib.sha256(p.encode()).hexdigest()}
             for p in sorted(node_order)]
    files.append({"path": ".clawhub/origin.json", "sha256": "0" * 64})
    expected = "\n".join(f"{p}:{hashlib.sha256(p.encode()).hexdigest()}" for p in node_order)
    assert client_fingerprint(files) == hashlib.sha256(expected.encode()).hexdigest()


# -- moderation ------------------------------------------------------------------------------

def dangerous_after_publish(client: TestClient, auth: dict[str, str]) -> str:
    """Publish a dropper under a reviewed exception, then withdraw it: now dangerous."""
    refused = client.post("/api/v1/namespaces/team/skills", headers=auth, files=[
        ("files", ("SKILL.md", skill_md(body=DROPPER)))]).json()
    rules = sorted({f["rule"] for f in refused["report"]["findings"]
                    if f["severity"] == "critical"})
    for rule in rules:
        client.put(f"/api/v1/skills/team/hello-world/exceptions/{rule}", headers=auth,
                   json={"reason": "our installer host"})
    publish(client, auth, body=DROPPER)
    for rule in rules:
        removed = client.delete(f"/api/v1/skills/team/hello-world/exceptions/{rule}",
                                headers=auth)
        assert removed.status_code == 200
    assert client.get("/api/v1/skills/team/hello-world").json()["verdict"] == "dangerous"
    return rules[0]


def test_a_dangerous_version_is_malware_blocked_and_not_downloadable(
        client: TestClient, auth: dict[str, str]) -> None:
    rule = dangerous_after_publish(client, auth)
    moderation = client.get(ROOT + "/skills/hello-world").json()["moderation"]
    assert moderation["isMalwareBlocked"] is True and moderation["verdict"] == "malicious"
    assert rule in moderation["reasonCodes"]
    response = client.get(ROOT + "/download", params={"slug": "hello-world"})
    assert response.status_code == 403
    assert response.headers["x-skills-hub-error"] == "blocked"
    assert "dangerous" in response.text and rule in response.text
    # The native API still serves it (deprecated) to `skills-hub install --allow-deprecated`.
    native = client.get("/api/v1/skills/team/hello-world/versions/latest/archive.zip")
    assert native.status_code == 200
    detail = client.get(ROOT + "/skills/hello-world/moderation").json()["moderation"]
    assert detail["verdict"] == "malicious"
    assert any(e["code"] == rule and e["severity"] == "critical" and e["file"] == "SKILL.md"
               for e in detail["evidence"])
    version = client.get(ROOT + "/skills/hello-world/versions/latest").json()["version"]
    assert version["security"]["status"] == "malicious"


def test_a_caution_version_is_suspicious_but_downloadable(client: TestClient,
                                                          auth: dict[str, str]) -> None:
    publish(client, auth, files={"scripts/run.py": SHELLY})
    moderation = client.get(ROOT + "/skills/hello-world").json()["moderation"]
    assert (moderation["isSuspicious"], moderation["isMalwareBlocked"],
            moderation["verdict"]) == (True, False, "suspicious")
    assert "bandit.B602" in moderation["reasonCodes"]
    assert client.get(ROOT + "/download", params={"slug": "hello-world"}).status_code == 200


@pytest.mark.parametrize(("trust", "blocked", "suspicious"), [
    ("blocked", True, False), ("quarantined", False, True), ("verified", False, False)])
def test_trust_levels_set_the_moderation(client: TestClient, registry: Registry,
                                         team: dict[str, Any], auth: dict[str, str],
                                         trust: str, blocked: bool, suspicious: bool) -> None:
    if trust == "blocked":  # what an owner or the operator does
        registry.set_trust("team", "hello-world", trust, "audit", OPERATOR)
    else:  # levels only outcome reports reach
        assert registry.store.outcomes.change_trust("team", "hello-world", "community", trust,
                                                    "outcomes", "test")
    moderation = client.get(TEAM + "/skills/hello-world").json()["moderation"]
    assert (moderation["isMalwareBlocked"], moderation["isSuspicious"]) == (blocked, suspicious)
    download = client.get(TEAM + "/download", params={"slug": "hello-world"})
    assert download.status_code == (403 if blocked else 200)


@pytest.mark.sqlite_only
def test_an_unchecked_version_has_no_verdict(client: TestClient, registry: Registry,
                                             team: dict[str, Any]) -> None:
    import sqlite3
    with sqlite3.connect(registry.settings.index_path) as conn:
        conn.execute("DELETE FROM reports")
    moderation = client.get(ROOT + "/skills/hello-world").json()["moderation"]
    assert "verdict" not in moderation and moderation["summary"] == "not checked yet"
    assert client.get(ROOT + "/skills/hello-world/moderation").json() == {"moderation": None}


# -- publish ---------------------------------------------------------------------------------

FILES = {"SKILL.md": skill_md(), "scripts/run.sh": SCRIPT}


def test_the_clis_publish_lands_a_version_seen_by_the_native_api(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    response = clawhub_publish(client, auth, FILES, ownerHandle="team")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["ok"], body["slug"], body["version"], body["ownerHandle"]) == (
        True, "hello-world", "1.0.0", "team")
    assert body["publicationStatus"] == "published" and body["verdict"] == "safe"
    assert body["skillId"] and body["versionId"]
    native = client.get("/api/v1/skills/team/hello-world/versions/1.0.0").json()
    assert native["content_sha256"] == body["fingerprint"]
    assert client.get("/api/v1/skills/team/hello-world/versions/1.0.0/files/scripts/run.sh"
                      ).content == SCRIPT
    # The uploads it used are gone from the staging folder.
    staged = settings.uploads_dir / "team"
    assert not any(p for p in staged.iterdir() if not p.name.startswith("."))


def test_publish_into_a_namespace_root(client: TestClient, auth: dict[str, str]) -> None:
    response = clawhub_publish(client, auth, FILES, root=TEAM, version="2.0.0")
    assert response.status_code == 201, response.text
    assert client.get(TEAM + "/skills/hello-world").json()["latestVersion"]["version"] == \
        "2.0.0"


def test_the_legacy_multipart_publish(client: TestClient, auth: dict[str, str]) -> None:
    payload = '{"slug": "hello-world", "displayName": "Hello", "version": "1.2.3"}'
    response = client.post(ROOT + "/skills", headers=auth, data={"payload": payload}, files=[
        ("files", ("SKILL.md", skill_md())), ("files", ("scripts/run.sh", SCRIPT))])
    assert response.status_code == 201, response.text
    assert response.json()["version"] == "1.2.3"


def test_identical_content_under_a_new_version_is_409(client: TestClient,
                                                      auth: dict[str, str]) -> None:
    assert clawhub_publish(client, auth, FILES).status_code == 201
    same = clawhub_publish(client, auth, FILES, version="1.0.0")
    assert same.status_code == 200 and same.json()["version"] == "1.0.0"
    again = clawhub_publish(client, auth, FILES, version="1.0.1")
    assert again.status_code == 409
    assert "already published" in again.text and "1.0.0" in again.text


def refused(client: TestClient, headers: dict[str, str], settings: Settings,
            files: dict[str, bytes], **kwargs: Any) -> httpx.Response:
    before = snapshot(settings)
    response = clawhub_publish(client, headers, files, **kwargs)
    assert snapshot(settings) == before
    assert response.headers["content-type"].startswith("text/plain")
    return response


def test_an_invalid_skill_is_422_with_every_problem_and_stores_nothing(
        client: TestClient, auth: dict[str, str], settings: Settings) -> None:
    clawhub_publish(client, auth, FILES)
    bad = b"---\nname: hello-world\ndescription: ''\n---\n"
    response = refused(client, auth, settings, {"SKILL.md": bad}, version="1.1.0")
    assert response.status_code == 422
    assert response.headers["x-skills-hub-error"] == "invalid_skill"
    assert "description" in response.text


def test_a_slug_that_is_not_the_skill_name_is_422(client: TestClient, auth: dict[str, str],
                                                  settings: Settings) -> None:
    response = refused(client, auth, settings, FILES, slug="hello-there")
    assert response.status_code == 422
    assert "hello-there" in response.text and "hello-world" in response.text


def test_a_dangerous_skill_is_refused_with_its_findings(client: TestClient,
                                                        auth: dict[str, str],
                                                        settings: Settings) -> None:
    response = refused(client, auth, settings, {"SKILL.md": skill_md(body=DROPPER)})
    assert response.status_code == 422
    assert response.headers["x-skills-hub-error"] == "dangerous_skill"
    assert "remote-exec." in response.text and "SKILL.md:" in response.text


def test_a_version_below_the_latest_is_409(client: TestClient, auth: dict[str, str],
                                           settings: Settings) -> None:
    clawhub_publish(client, auth, FILES, version="2.0.0")
    changed = {**FILES, "scripts/run.sh": b"echo changed\n"}
    response = refused(client, auth, settings, changed, version="1.5.0")
    assert response.status_code == 409 and "2.0.0" in response.text


def test_publish_needs_a_token_of_that_namespace(client: TestClient, registry: Registry,
                                                 auth: dict[str, str],
                                                 settings: Settings) -> None:
    other = bearer(registry.create_token("other"))
    before = snapshot(settings)
    ticket = client.post(TEAM + "/skills/-/upload-url", headers=other, json={
        "path": "SKILL.md", "size": 3, "sha256": "a" * 64})
    assert ticket.status_code == 403 and "limited to other namespaces than 'team'" in ticket.text
    assert refused(client, other, settings, FILES, ownerHandle="team").status_code == 403
    anonymous = client.post(ROOT + "/skills", json={"slug": "hello-world", "files": []})
    assert anonymous.status_code == 401 and "clawhub login --token" in anonymous.text
    bad = bearer("shub_not-a-token")
    assert client.post(ROOT + "/skills/-/upload-url", headers=bad, json={
        "path": "SKILL.md", "size": 3, "sha256": "a" * 64}).status_code == 401
    assert snapshot(settings) == before


def test_uploads_are_checked(client: TestClient, auth: dict[str, str],
                             settings: Settings) -> None:
    url = ROOT + "/skills/-/upload-url"
    assert client.post(url, headers=auth, json={"path": "a", "size": 1,
                                                "sha256": "nope"}).status_code == 400
    too_big = settings.limits.max_file_bytes + 1
    assert client.post(url, headers=auth, json={"path": "a", "size": too_big,
                                                "sha256": "a" * 64}).status_code == 413
    wrong = client.post(ROOT + "/skills/-/uploads/" + "a" * 64, headers=auth, content=b"x")
    assert wrong.status_code == 400 and "sha256" in wrong.text
    before = snapshot(settings)
    missing = client.post(ROOT + "/skills", headers=auth, json={
        "slug": "hello-world", "version": "1.0.0",
        "files": [{"path": "SKILL.md", "sha256": "b" * 64, "storageId": "b" * 64}]})
    assert missing.status_code == 400 and "was not uploaded" in missing.text
    assert client.post(ROOT + "/skills", headers=auth, content=b"[1]").status_code == 400
    assert snapshot(settings) == before


def test_the_openapi_document_has_the_clawhub_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/clawhub/api/v1/download" in paths and "/.well-known/clawhub.json" in paths
    assert paths["/clawhub/{namespace}/api/v1/skills/{slug}"]["get"]["tags"] == ["clawhub"]


def test_the_rest_of_clawhub_is_a_plain_404(client: TestClient) -> None:
    for method, path in [("POST", "/clawhub/api/v1/stars/hello-world"),
                         ("POST", "/clawhub/api/cli/telemetry/install"),
                         ("GET", "/clawhub/team/api/v1/packages")]:
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/plain")
        assert path in response.text and "login --token" in response.text
