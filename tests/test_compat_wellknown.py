"""Well-known discovery indexes and the skills.sh search API, in-process.

The real `npx skills` client drives the same routes in tests/test_clients_skills.py; here
the shapes, digests, scopes, ambiguity, privacy and refusals are checked one by one.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Any

import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import OPERATOR
from skills_hub.services import Registry

from .conftest import skill_md
from .test_publish_checks import DROPPER

BASE = "http://testserver"
SCHEMA = "https://schemas.agentskills.io/discovery/0.2.0/schema.json"
RUN_SH = b"#!/bin/sh\necho hello\n"
PUBLISH = "/api/v1/namespaces/team/skills"
README = b"# Read me\n"


# -- helpers ---------------------------------------------------------------------------------

def publish(client: TestClient, registry: Registry, namespace: str, name: str,
            extra: dict[str, bytes] | None = None, body: str = "Say hello.",
            private: bool = False, version: str | None = None) -> dict[str, Any]:
    """Publish through the native API with a token of `namespace`; return the response."""
    token = registry.create_token(namespace, private=private or None)
    files = [("files", ("SKILL.md", skill_md(name, body=body)))]
    files += [("files", (path, data)) for path, data in (extra or {}).items()]
    response = client.post(f"/api/v1/namespaces/{namespace}/skills", files=files,
                           headers={"Authorization": f"Bearer {token}"},
                           params={"version": version} if version else None)
    assert response.status_code == 201, response.text
    return dict(response.json())


def local(url: str) -> str:
    """The path and query of an absolute URL on the test server."""
    assert url.startswith(BASE + "/"), url
    return url[len(BASE):]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def native_file(client: TestClient, namespace: str, name: str, version: str,
                path: str) -> bytes:
    response = client.get(f"/api/v1/skills/{namespace}/{name}/versions/{version}/files/{path}")
    assert response.status_code == 200, response.text
    return response.content


def entries(client: TestClient, url: str, headers: dict[str, str] | None = None
            ) -> dict[str, dict[str, Any]]:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return {entry["name"]: entry for entry in response.json()["skills"]}


@pytest.fixture
def team(client: TestClient, registry: Registry) -> None:
    """`team` holds `hello-world` (SKILL.md only) and `toolbox` (with more files)."""
    publish(client, registry, "team", "hello-world")
    publish(client, registry, "team", "toolbox",
            {"scripts/run.sh": RUN_SH, "README.md": README})


# -- the legacy index (Hermes Agent) ---------------------------------------------------------

@pytest.mark.usefixtures("team")
def test_legacy_index_lists_every_file_with_skill_md_first(client: TestClient) -> None:
    response = client.get("/.well-known/skills/index.json")
    assert response.status_code == 200
    assert response.json() == {"skills": [
        {"name": "hello-world", "description": "Greets the user by name when asked to say "
                                               "hello.", "files": ["SKILL.md"]},
        {"name": "toolbox", "description": "Greets the user by name when asked to say hello.",
         "files": ["SKILL.md", "README.md", "scripts/run.sh"]},
    ]}


@pytest.mark.usefixtures("team")
@pytest.mark.parametrize("root", ["", "/team"])
def test_legacy_files_are_the_native_api_bytes(client: TestClient, root: str) -> None:
    for name, entry in entries(client, f"{root}/.well-known/skills/index.json").items():
        for path in entry["files"]:
            response = client.get(f"{root}/.well-known/skills/{name}/{path}")
            assert response.status_code == 200, (name, path)
            assert response.content == native_file(client, "team", name, "0.1.0", path)
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in response.headers["content-security-policy"]


# -- the discovery index v0.2.0 (npx skills) -------------------------------------------------

@pytest.mark.usefixtures("team")
def test_discovery_index_shape_and_types(client: TestClient) -> None:
    response = client.get("/.well-known/agent-skills/index.json")
    assert response.status_code == 200
    body = response.json()
    assert body["$schema"] == SCHEMA
    assert [(e["name"], e["type"]) for e in body["skills"]] == [
        ("hello-world", "skill-md"), ("toolbox", "archive")]
    for entry in body["skills"]:
        assert set(entry) == {"name", "type", "description", "url", "digest"}
        assert entry["description"] == "Greets the user by name when asked to say hello."
        assert entry["digest"].startswith("sha256:") and len(entry["digest"]) == 71
    by_name = {e["name"]: e for e in body["skills"]}
    assert by_name["hello-world"]["url"] == (
        f"{BASE}/.well-known/agent-skills/hello-world/SKILL.md?version=0.1.0")
    assert by_name["toolbox"]["url"] == (
        f"{BASE}/.well-known/agent-skills/toolbox.zip?version=0.1.0")


@pytest.mark.usefixtures("team")
@pytest.mark.parametrize("root", ["", "/team", "/team@toolbox", "/team@hello-world"])
def test_digests_are_of_the_served_bytes_and_agree_with_the_native_api(
        client: TestClient, registry: Registry, root: str) -> None:
    listed = entries(client, f"{root}/.well-known/agent-skills/index.json")
    assert listed
    for name, entry in listed.items():
        assert entry["url"].startswith(f"{BASE}{root}/.well-known/agent-skills/{name}")
        served = client.get(local(entry["url"]))
        assert served.status_code == 200
        assert entry["digest"] == "sha256:" + sha256(served.content)
        version = client.get(f"/api/v1/skills/team/{name}/versions/0.1.0").json()
        native = {f["path"]: f["sha256"] for f in version["files"]}
        if entry["type"] == "skill-md":
            assert served.content == native_file(client, "team", name, "0.1.0", "SKILL.md")
            assert entry["digest"] == "sha256:" + native["SKILL.md"]
            continue
        # The archive: the registry's root-layout zip of that version, files at the root,
        # each byte-equal to the native API's file.
        _, archive = registry.archive("team", name, "0.1.0", "zip", OPERATOR, count=False,
                                      at_root=True)
        assert entry["digest"] == "sha256:" + archive.sha256
        assert served.headers["x-checksum-sha256"] == archive.sha256
        with zipfile.ZipFile(io.BytesIO(served.content)) as unpacked:
            names = sorted(unpacked.namelist())
            assert names == sorted(native)
            for path in names:
                data = unpacked.read(path)
                assert data == native_file(client, "team", name, "0.1.0", path)
                assert sha256(data) == native[path]


def test_urls_pin_the_version_so_an_index_never_disagrees_with_a_download(
        client: TestClient, registry: Registry) -> None:
    publish(client, registry, "team", "toolbox", {"scripts/run.sh": RUN_SH})
    old = entries(client, "/.well-known/agent-skills/index.json")["toolbox"]
    publish(client, registry, "team", "toolbox", {"scripts/run.sh": b"echo two\n"},
            version="0.2.0")
    new = entries(client, "/.well-known/agent-skills/index.json")["toolbox"]
    assert new["url"].endswith("?version=0.2.0") and new["digest"] != old["digest"]
    for entry in (old, new):
        served = client.get(local(entry["url"]))
        assert "sha256:" + sha256(served.content) == entry["digest"]
        assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    latest = client.get("/.well-known/agent-skills/toolbox.zip")
    assert "sha256:" + sha256(latest.content) == new["digest"]
    assert latest.headers["cache-control"] == "no-cache"
    legacy = client.get("/.well-known/skills/toolbox/scripts/run.sh")
    assert legacy.content == b"echo two\n" and legacy.headers["x-skill-version"] == "0.2.0"
    pinned = client.get("/.well-known/skills/toolbox/scripts/run.sh?version=0.1.0")
    assert pinned.content == RUN_SH


@pytest.mark.usefixtures("team")
def test_well_known_downloads_are_not_counted_as_installs(client: TestClient) -> None:
    # npx skills downloads every artifact of an index even to install one skill.
    for entry in entries(client, "/.well-known/agent-skills/index.json").values():
        assert client.get(local(entry["url"])).status_code == 200
    client.app.state.registry.downloads.flush()  # counts are batched
    assert client.get("/api/v1/skills/team/toolbox").json()["downloads"] == 0
    assert client.get("/api/v1/skills/team/toolbox/versions/0.1.0/archive.zip"
                      ).status_code == 200
    client.app.state.registry.downloads.flush()
    assert client.get("/api/v1/skills/team/toolbox").json()["downloads"] == 1


# -- scopes ----------------------------------------------------------------------------------

def test_a_namespace_root_lists_its_own_skills(client: TestClient, registry: Registry) -> None:
    publish(client, registry, "team", "hello-world")
    publish(client, registry, "other", "weekly-report")
    assert list(entries(client, "/team/.well-known/skills/index.json")) == ["hello-world"]
    assert list(entries(client, "/other/.well-known/agent-skills/index.json")) == [
        "weekly-report"]
    assert list(entries(client, "/.well-known/agent-skills/index.json")) == [
        "hello-world", "weekly-report"]
    # A skill of another namespace is not reachable under this one's root.
    assert client.get("/team/.well-known/skills/weekly-report/SKILL.md").status_code == 404
    assert client.get("/team/.well-known/agent-skills/weekly-report.zip").status_code == 404


@pytest.mark.usefixtures("team")
def test_a_skill_root_serves_that_one_skill(client: TestClient) -> None:
    assert list(entries(client, "/team@toolbox/.well-known/agent-skills/index.json")) == [
        "toolbox"]
    legacy = entries(client, "/team@toolbox/.well-known/skills/index.json")
    assert legacy["toolbox"]["files"] == ["SKILL.md", "README.md", "scripts/run.sh"]
    assert client.get("/team@toolbox/.well-known/skills/toolbox/scripts/run.sh"
                      ).content == RUN_SH
    assert client.get("/team@toolbox/.well-known/skills/hello-world/SKILL.md"
                      ).status_code == 404
    for root in ("/team@nope", "/team@", "/@toolbox", "/nobody@toolbox"):
        response = client.get(f"{root}/.well-known/agent-skills/index.json")
        assert response.status_code == 404, root
        assert response.json()["code"] == "not_found"


# -- ambiguity -------------------------------------------------------------------------------

@pytest.fixture
def clash(client: TestClient, registry: Registry) -> None:
    """`alpha` and `beta` both have `weekly-report`; only `alpha` has `solo`."""
    publish(client, registry, "alpha", "weekly-report", body="Alpha's report.")
    publish(client, registry, "beta", "weekly-report", body="Beta's report.")
    publish(client, registry, "alpha", "solo")


@pytest.mark.usefixtures("clash")
def test_an_ambiguous_name_is_left_out_of_the_server_wide_indexes(client: TestClient) -> None:
    assert list(entries(client, "/.well-known/skills/index.json")) == ["solo"]
    assert list(entries(client, "/.well-known/agent-skills/index.json")) == ["solo"]
    assert list(entries(client, "/alpha/.well-known/skills/index.json")) == [
        "solo", "weekly-report"]
    assert list(entries(client, "/beta/.well-known/agent-skills/index.json")) == [
        "weekly-report"]


@pytest.mark.usefixtures("clash")
@pytest.mark.parametrize("url", [
    "/.well-known/skills/weekly-report/SKILL.md",
    "/.well-known/agent-skills/weekly-report/SKILL.md",
    "/.well-known/agent-skills/weekly-report.zip",
])
def test_fetching_an_ambiguous_name_server_wide_is_409_naming_the_candidates(
        client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 409
    assert "ambiguous_name" in response.text
    assert "alpha/weekly-report" in response.text and "beta/weekly-report" in response.text


@pytest.mark.usefixtures("clash")
def test_each_namespace_serves_its_own_copy_of_a_shared_name(client: TestClient) -> None:
    for namespace, body in (("alpha", b"Alpha's report."), ("beta", b"Beta's report.")):
        response = client.get(f"/{namespace}/.well-known/skills/weekly-report/SKILL.md")
        assert response.status_code == 200 and body in response.content
        entry = entries(client, f"/{namespace}/.well-known/agent-skills/index.json")[
            "weekly-report"]
        assert entry["digest"] == "sha256:" + sha256(client.get(local(entry["url"])).content)


# -- private namespaces ----------------------------------------------------------------------

def test_private_skills_are_never_in_public_indexes(client: TestClient,
                                                    registry: Registry) -> None:
    publish(client, registry, "team", "hello-world")
    publish(client, registry, "secret", "hidden-tool", {"notes.txt": b"classified\n"},
            private=True)
    anonymous = [
        "/.well-known/skills/index.json", "/.well-known/agent-skills/index.json"]
    for url in anonymous:
        assert list(entries(client, url)) == ["hello-world"]
        assert "hidden-tool" not in client.get(url).text
    for url in ("/secret/.well-known/skills/index.json",
                "/secret/.well-known/agent-skills/index.json",
                "/secret@hidden-tool/.well-known/agent-skills/index.json",
                "/secret/.well-known/skills/hidden-tool/SKILL.md",
                "/secret/.well-known/agent-skills/hidden-tool.zip",
                "/.well-known/skills/hidden-tool/SKILL.md",
                "/.well-known/agent-skills/hidden-tool.zip"):
        assert client.get(url).status_code == 404, url


def test_a_token_reads_its_private_namespace(client: TestClient, registry: Registry) -> None:
    publish(client, registry, "secret", "hidden-tool", {"notes.txt": b"classified\n"},
            private=True)
    auth = {"Authorization": f"Bearer {registry.create_token('secret')}"}
    for url in ("/.well-known/skills/index.json", "/secret/.well-known/skills/index.json"):
        assert entries(client, url, auth)["hidden-tool"]["files"] == ["SKILL.md", "notes.txt"]
    entry = entries(client, "/secret/.well-known/agent-skills/index.json", auth)["hidden-tool"]
    served = client.get(local(entry["url"]), headers=auth)
    assert served.status_code == 200
    assert entry["digest"] == "sha256:" + sha256(served.content)
    assert client.get(local(entry["url"])).status_code == 404
    assert client.get("/.well-known/skills/hidden-tool/notes.txt",
                      headers=auth).content == b"classified\n"
    bad = {"Authorization": "Bearer shub_not-a-token"}
    assert client.get("/.well-known/skills/index.json", headers=bad).status_code == 401


@pytest.mark.usefixtures("team")
def test_blocked_and_deprecated_skills_are_left_out_of_the_indexes(
        client: TestClient, registry: Registry) -> None:
    token = registry.create_token("team")
    auth = {"Authorization": f"Bearer {token}"}
    files = [("files", ("SKILL.md", skill_md("dropper", body=DROPPER)))]
    refused = client.post(PUBLISH, files=files, headers=auth).json()
    rules = {f["rule"] for f in refused["report"]["findings"] if f["severity"] == "critical"}
    for rule in rules:
        registry.set_exception("team", "dropper", rule, "temporarily", OPERATOR)
    assert client.post(PUBLISH, files=files, headers=auth).status_code == 201
    for index in ("/.well-known/skills/index.json", "/team/.well-known/agent-skills/index.json"):
        assert "dropper" in entries(client, index)
    for rule in rules:  # a re-judgement now fails the version: it is deprecated
        registry.remove_exception("team", "dropper", rule, OPERATOR)
    registry.set_trust("team", "toolbox", "blocked", "under review", OPERATOR)
    for index in ("/.well-known/skills/index.json", "/.well-known/agent-skills/index.json",
                  "/team/.well-known/skills/index.json",
                  "/team/.well-known/agent-skills/index.json"):
        assert set(entries(client, index)) == {"hello-world"}, index


# -- refusals --------------------------------------------------------------------------------

@pytest.mark.usefixtures("team")
@pytest.mark.parametrize("url", [
    "/.well-known/skills/nope/SKILL.md",
    "/.well-known/agent-skills/nope/SKILL.md",
    "/.well-known/agent-skills/nope.zip",
    "/team/.well-known/skills/nope/SKILL.md",
    "/team/.well-known/agent-skills/nope.zip",
    "/nobody/.well-known/skills/index.json",
    "/nobody/.well-known/agent-skills/index.json",
    "/.well-known/skills/toolbox/missing.md",
    "/.well-known/skills/toolbox/SKILL.md?version=9.9.9",
    "/.well-known/agent-skills/toolbox.zip?version=9.9.9",
])
def test_unknown_skills_files_and_versions_are_404(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert "not_found" in response.text


@pytest.mark.usefixtures("team")
@pytest.mark.parametrize("root", ["", "/team", "/team@toolbox"])
@pytest.mark.parametrize("path", [
    "scripts/%2E%2E/SKILL.md",
    "%2E%2E/%2E%2E/index.json",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2E/SKILL.md",
    "scripts//run.sh",
    "scripts%5Crun.sh",
])
@pytest.mark.parametrize("well_known", ["skills", "agent-skills"])
def test_paths_leaving_the_skill_folder_are_refused(client: TestClient, root: str, path: str,
                                                    well_known: str) -> None:
    response = client.get(f"{root}/.well-known/{well_known}/toolbox/{path}")
    assert response.status_code == 400, response.text
    assert "is not a path inside a skill folder" in response.text
    assert RUN_SH not in response.content and b"name: toolbox" not in response.content


# -- skills.sh search ------------------------------------------------------------------------

def test_skills_sh_search_shape_and_install_source(client: TestClient,
                                                   registry: Registry) -> None:
    publish(client, registry, "team", "pdf-tools", body="Split and merge PDF files.")
    publish(client, registry, "team", "hello-world")
    response = client.get("/api/search", params={"q": "pdf", "limit": "20"})
    assert response.status_code == 200
    assert response.json() == {"skills": [{"id": "team/pdf-tools", "name": "pdf-tools",
                                           "source": f"{BASE}/team", "installs": 0}]}
    # What `npx skills find` prints, `<source>@<name>`, is a well-known root for that skill.
    hit = response.json()["skills"][0]
    root = local(f"{hit['source']}@{hit['name']}")
    assert list(entries(client, f"{root}/.well-known/agent-skills/index.json")) == [
        "pdf-tools"]


def test_skills_sh_search_owner_limit_installs_and_privacy(client: TestClient,
                                                           registry: Registry) -> None:
    for namespace in ("alpha", "beta"):
        publish(client, registry, namespace, "weekly-report", {"a.txt": b"a\n"})
    publish(client, registry, "secret", "weekly-digest", private=True)
    client.get("/api/v1/skills/beta/weekly-report/versions/latest/archive.zip")
    registry.downloads.flush()  # counts are batched

    def ids(headers: dict[str, str] | None = None, **params: str) -> list[tuple[str, int]]:
        response = client.get("/api/search", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return sorted((s["id"], s["installs"]) for s in response.json()["skills"])

    assert ids(q="weekly") == [("alpha/weekly-report", 0), ("beta/weekly-report", 1)]
    assert ids(q="weekly", owner="beta") == [("beta/weekly-report", 1)]
    assert len(ids(q="weekly", limit="1")) == 1
    assert ids(q="weekly", owner="secret") == []
    auth = {"Authorization": f"Bearer {registry.create_token('secret')}"}
    assert ("secret/weekly-digest", 0) in ids(auth, q="weekly")
    bad = client.get("/api/search", params={"q": "weekly", "limit": "lots"})
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request"


def test_openapi_documents_the_compatibility_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    tags = {path: [op["tags"] for op in ops.values()] for path, ops in paths.items()}
    assert tags["/.well-known/agent-skills/index.json"] == [["well-known"]]
    assert tags["/.well-known/skills/index.json"] == [["well-known"]]
    assert tags["/{scope}/.well-known/agent-skills/{name}.zip"] == [["well-known"]]
    assert tags["/{scope}/.well-known/skills/{name}/{path}"] == [["well-known"]]
    assert tags["/api/search"] == [["skills-sh"]]
