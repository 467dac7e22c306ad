"""The native HTTP API, in-process, on a real registry home in tmp_path."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.skill.bundle import from_targz

from .conftest import skill_md

PUBLISH = "/api/v1/namespaces/team/skills"


# -- helpers ---------------------------------------------------------------------------------

def snapshot(settings: Settings) -> tuple[dict[str, bytes], list[str]]:
    """Everything a publish could change: every file under repos/ (not the uploads staged
    there for a coming publish) and the index's rows."""
    repos = settings.repos_dir
    files = {str(p.relative_to(repos)): p.read_bytes() for p in sorted(repos.rglob("*"))
             if p.is_file() and p.relative_to(repos).parts[0] != ".uploads"
             } if repos.exists() else {}
    # A token's last-used time moves when it is presented, whatever the answer.
    rows = [r for r in database_rows(settings) if not r.startswith('INSERT INTO "tokens"')]
    return files, rows


def database_rows(settings: Settings) -> list[str]:
    """Every row of the catalogue's database as `INSERT INTO "table" ...` lines: SQLite's
    dump, or each PostgreSQL table's rows in a fixed order (the same prefix per table, so
    callers filter tables alike on both backends)."""
    if settings.database_url is None:
        with sqlite3.connect(settings.index_path) as conn:
            return list(conn.iterdump())
    with psycopg.connect(settings.database_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "ORDER BY tablename")]
        return [f'INSERT INTO "{table}" VALUES {row!r}' for table in tables
                for row in sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(),
                                  key=repr)]


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tar_member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE,
               link: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


GOOD = skill_md()


def hostile_uploads() -> list[Any]:
    random_mb = [os.urandom(1 << 20) for _ in range(21)]
    return [
        pytest.param(make_zip({"SKILL.md": GOOD, "../evil.sh": b"x"}), 400, "path_traversal",
                     id="zip-dotdot"),
        pytest.param(make_zip({"SKILL.md": GOOD, "/etc/cron.d/x": b"x"}), 400, "absolute_path",
                     id="zip-absolute"),
        pytest.param(make_tar([tar_member("SKILL.md", GOOD),
                               tar_member("a/../../b", b"x")]), 400, "path_traversal",
                     id="tar-dotdot"),
        pytest.param(make_tar([tar_member("SKILL.md", GOOD),
                               tar_member("/abs", b"x")]), 400, "absolute_path",
                     id="tar-absolute"),
        pytest.param(make_tar([tar_member("SKILL.md", GOOD),
                               tar_member("key", kind=tarfile.SYMTYPE, link="/root/.ssh/id")]),
                     400, "symlink", id="tar-symlink"),
        pytest.param(make_tar([tar_member("SKILL.md", GOOD),
                               tar_member("hard", kind=tarfile.LNKTYPE, link="SKILL.md")]),
                     400, "hardlink", id="tar-hardlink"),
        pytest.param(make_tar([tar_member("SKILL.md", GOOD),
                               tar_member("dev", kind=tarfile.CHRTYPE)]),
                     400, "special_file", id="tar-device"),
        pytest.param(make_tar([tar_member("SKILL.md", GOOD),
                               tar_member("fifo", kind=tarfile.FIFOTYPE)]),
                     400, "special_file", id="tar-fifo"),
        pytest.param(make_zip({"SKILL.md": GOOD, **{f"f{i}.txt": b"x" for i in range(100)}}),
                     400, "too_many_files", id="101-files"),
        pytest.param(make_zip({"SKILL.md": GOOD, "big.bin": os.urandom(5 * 1024 * 1024 + 1)},
                              zipfile.ZIP_STORED), 413, "file_too_large", id="file-over-5mb"),
        pytest.param(make_zip({"SKILL.md": GOOD, **{f"r{i}.bin": d
                                                    for i, d in enumerate(random_mb)}},
                              zipfile.ZIP_STORED), 413, "archive_too_large", id="total-over-20mb"),
        pytest.param(make_zip({"SKILL.md": GOOD, "bomb.txt": b"\0" * (4 * 1024 * 1024)}), 400,
                     "compression_ratio", id="zip-bomb"),
        pytest.param(b"PK\x03\x04 this is not a zip at all", 400, "bad_archive", id="corrupt"),
        pytest.param(make_zip({}), 400, "empty_archive", id="empty"),
        pytest.param(make_zip({"README.md": b"hi"}), 400, "missing_skill_md", id="no-skill-md"),
        pytest.param(make_zip({"SKILL.md": GOOD, ".git/config": b"[core]"}), 400, "bad_path",
                     id="dot-git"),
        pytest.param(make_zip({"SKILL.md": GOOD.replace(b"name: hello-world", b"name: Hello_W")}),
                     422, "invalid_skill", id="invalid-name"),
        pytest.param(make_zip({"SKILL.md": b"no frontmatter here"}), 422, "invalid_skill",
                     id="no-frontmatter"),
    ]


# -- refused uploads leave the store exactly as it was ------------------------------------------

@pytest.mark.parametrize(("body", "status", "code"), hostile_uploads())
def test_refused_upload_is_a_json_error_and_changes_nothing(
        client: TestClient, settings: Settings, auth: dict[str, str], body: bytes, status: int,
        code: str) -> None:
    client.post(PUBLISH, content=make_zip({"SKILL.md": GOOD}),
                headers={**auth, "Content-Type": "application/zip"})
    before = snapshot(settings)
    content_type = "application/zip" if body.startswith(b"PK") else "application/gzip"
    response = client.post(PUBLISH, content=body, headers={**auth, "Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert snapshot(settings) == before


def test_invalid_skill_reports_every_problem_at_once(client: TestClient,
                                                      auth: dict[str, str]) -> None:
    md = b"---\nname: -Bad--Name\ndescription: ''\ncompatibility: ''\nmetadata: {a: 1}\n---\n"
    response = client.post(PUBLISH, files=[("files", ("SKILL.md", md))], headers=auth)
    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["problems"] if p["severity"] == "error"}
    assert {"name", "description", "compatibility"} <= fields
    assert all(p["hint"] for p in response.json()["problems"])


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 401, "unauthorized"),
    ({"Authorization": "Bearer shub_not-a-token"}, 401, "unauthorized"),
    ({"Authorization": "Token abc"}, 401, "unauthorized"),
])
def test_publish_needs_a_token_for_that_namespace(client: TestClient, settings: Settings,
                                                  headers: dict[str, str], status: int,
                                                  code: str) -> None:
    before = snapshot(settings)
    response = client.post(PUBLISH, files=[("files", ("SKILL.md", GOOD))], headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert snapshot(settings) == before


def test_a_token_cannot_publish_to_another_namespace(client: TestClient, registry: Registry,
                                                     auth: dict[str, str]) -> None:
    registry.create_token("other")
    response = client.post("/api/v1/namespaces/other/skills",
                           files=[("files", ("SKILL.md", GOOD))], headers=auth)
    assert response.status_code == 403


@pytest.mark.parametrize(("headers", "body", "status", "code"), [
    ({"Content-Type": "text/plain"}, b"hello", 400, "bad_request"),
    ({"Content-Type": "application/zip", "Content-Length": str(26 << 20)}, b"", 413,
     "payload_too_large"),
])
def test_bad_request_bodies(client: TestClient, auth: dict[str, str], headers: dict[str, str],
                            body: bytes, status: int, code: str) -> None:
    response = client.post(PUBLISH, content=body, headers={**auth, **headers})
    assert (response.status_code, response.json()["code"]) == (status, code)


# -- publish and read back -------------------------------------------------------------------

def test_publish_multipart_files_keeps_paths_and_executables(client: TestClient,
                                                             auth: dict[str, str]) -> None:
    response = client.post(PUBLISH, headers=auth, data={"executable": "scripts/run.sh"}, files=[
        ("files", ("SKILL.md", GOOD)),
        ("files", ("scripts/run.sh", b"#!/usr/bin/env bash\necho hi\n")),
        ("files", ("references/notes.md", b"# notes\n")),
    ])
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["version"]) == ("published", "0.1.0")
    version = client.get(body["url"]).json()
    assert {f["path"]: f["executable"] for f in version["files"]} == {
        "SKILL.md": False, "references/notes.md": False, "scripts/run.sh": True}
    raw = client.get(body["url"] + "/files/scripts/run.sh")
    assert raw.content == b"#!/usr/bin/env bash\necho hi\n"
    assert raw.headers["x-content-type-options"] == "nosniff"


def test_publish_zip_and_targz_with_a_top_folder(client: TestClient,
                                                 auth: dict[str, str]) -> None:
    zipped = make_zip({"hello-world/SKILL.md": GOOD, "hello-world/a.txt": b"a"})
    r1 = client.post(PUBLISH + "?version=1.0.0", content=zipped,
                     headers={**auth, "Content-Type": "application/zip"})
    assert (r1.status_code, r1.json()["version"]) == (201, "1.0.0")
    tarred = make_tar([tar_member("hello-world/SKILL.md", GOOD),
                       tar_member("hello-world/a.txt", b"b")])
    r2 = client.post(PUBLISH, headers=auth, files=[("archive", ("s.tar.gz", tarred))],
                     data={"version": "1.1.0"})
    assert (r2.status_code, r2.json()["version"]) == (201, "1.1.0")


def test_republishing_identical_content_is_unchanged_and_a_taken_version_is_409(
        client: TestClient, auth: dict[str, str]) -> None:
    files = [("files", ("SKILL.md", GOOD))]
    first = client.post(PUBLISH + "?version=1.0.0", files=files, headers=auth).json()
    again = client.post(PUBLISH + "?version=1.0.1", files=files, headers=auth)
    assert again.status_code == 200
    assert (again.json()["status"], again.json()["version"]) == ("unchanged", "1.0.0")
    assert again.json()["commit"] == first["commit"]
    changed = [("files", ("SKILL.md", skill_md(body="Different.")))]
    taken = client.post(PUBLISH + "?version=1.0.0", files=changed, headers=auth)
    assert (taken.status_code, taken.json()["code"]) == (409, "version_exists")


def test_archives_are_deterministic_and_carry_their_sha256(client: TestClient,
                                                           auth: dict[str, str]) -> None:
    url = client.post(PUBLISH, files=[("files", ("SKILL.md", GOOD)),
                                      ("files", ("x/y.txt", b"y"))], headers=auth).json()["url"]
    version = client.get(url).json()
    for fmt in ("tar.gz", "zip"):
        first = client.get(f"{url}/archive.{fmt}")
        second = client.get(f"{url}/archive.{fmt}")
        assert first.status_code == 200 and first.content == second.content
        digest = hashlib.sha256(first.content).hexdigest()
        assert first.headers["x-checksum-sha256"] == digest == version["archives"][fmt]["sha256"]
        assert first.headers["etag"] == f'"sha256:{digest}"'
        cached = client.get(f"{url}/archive.{fmt}",
                            headers={"If-None-Match": first.headers["etag"]})
        assert cached.status_code == 304
    bundle = from_targz(client.get(f"{url}/archive.tar.gz").content, Settings(Path(".")).limits)
    assert bundle.content_hash() == version["content_sha256"]
    assert client.get(url.rsplit("/", 1)[0] + "/latest/archive.zip").status_code == 200
    assert client.get(f"{url}/archive.rar").json()["code"] == "not_found"


def test_browse_pages_with_a_cursor(client: TestClient, registry: Registry,
                                    auth: dict[str, str]) -> None:
    for i in range(7):
        md = skill_md(f"skill-{i}", description=f"Does thing number {i} for the tests.")
        assert client.post(PUBLISH, files=[("files", ("SKILL.md", md))],
                           headers=auth).status_code == 201
    seen, cursor = [], None
    while True:
        page = client.get("/api/v1/skills", params={"limit": 3, **(
            {"cursor": cursor} if cursor else {})}).json()
        assert page["total"] == 7
        seen += [s["name"] for s in page["skills"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"skill-{i}" for i in range(7)]


def test_skill_detail_lists_versions_newest_first(client: TestClient,
                                                  auth: dict[str, str]) -> None:
    for version, body in (("1.0.0", "a"), ("1.2.0", "b"), ("1.10.0", "c")):
        client.post(PUBLISH + f"?version={version}", headers=auth,
                    files=[("files", ("SKILL.md", skill_md(body=body)))])
    detail = client.get("/api/v1/skills/team/hello-world").json()
    assert detail["latest_version"] == "1.10.0"
    assert [v["version"] for v in detail["versions"]] == ["1.10.0", "1.2.0", "1.0.0"]
    assert client.get("/api/v1/skills/team/hello-world/versions/9.9.9").status_code == 404


def test_private_namespaces_are_invisible_without_their_token(
        client: TestClient, registry: Registry) -> None:
    secret = registry.create_token("secret", private=True)
    headers = {"Authorization": f"Bearer {secret}"}
    md = skill_md("hidden-skill", description="A private helper about quarterly numbers.")
    assert client.post("/api/v1/namespaces/secret/skills", files=[("files", ("SKILL.md", md))],
                       headers=headers).status_code == 201
    assert client.get("/api/v1/skills/secret/hidden-skill").status_code == 404
    assert client.get("/api/v1/search", params={"q": "quarterly"}).json()["results"] == []
    assert client.get("/api/v1/skills").json()["total"] == 0
    assert client.get("/api/v1/skills/secret/hidden-skill", headers=headers).status_code == 200
    found = client.get("/api/v1/search", params={"q": "quarterly"}, headers=headers).json()
    assert [r["name"] for r in found["results"]] == ["hidden-skill"]


@pytest.mark.parametrize("query", [
    '"', "'", "NEAR(", "a OR", "*", "(((", ")", "a AND NOT b", "col:value", "^x", "-", "{x}",
    "\0", "😀 emoji", "x" * 999,
])
def test_search_never_fails_on_hostile_input(client: TestClient, auth: dict[str, str],
                                             query: str) -> None:
    client.post(PUBLISH, files=[("files", ("SKILL.md", GOOD))], headers=auth)
    response = client.get("/api/v1/search", params={"q": query})
    assert response.status_code == 200
    assert response.json()["mode"] == "keyword"


def test_search_ranks_name_and_description_matches(client: TestClient,
                                                   auth: dict[str, str]) -> None:
    for name, desc, body in (
        ("csv-summary", "Summarise a CSV file's columns and rows.", "Use pandas."),
        ("git-helper", "Clean up branches.", "Mentions csv once in the body."),
    ):
        client.post(PUBLISH, files=[("files", ("SKILL.md", skill_md(name, desc, body)))],
                    headers=auth)
    results = client.get("/api/v1/search", params={"q": "csv"}).json()["results"]
    assert [r["name"] for r in results] == ["csv-summary", "git-helper"]
    assert results[0]["install"] == "skills-hub install team/csv-summary"
    too_long = client.get("/api/v1/search", params={"q": "x" * 1001})
    assert (too_long.status_code, too_long.json()["code"]) == (400, "bad_request")


def test_errors_under_api_are_json(client: TestClient) -> None:
    for path in ("/api/v1/nothing", "/api/v1/skills/nope/nope",
                 "/api/v1/skills/team/x/versions/1.0.0/files/a"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert client.delete("/api/v1/skills").json()["code"] == "method_not_allowed"


def test_openapi_document_describes_the_api(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/namespaces/{namespace}/skills" in doc["paths"]
    publish = doc["paths"]["/api/v1/namespaces/{namespace}/skills"]["post"]
    assert {"201", "409", "422"} <= {str(k) for k in publish["responses"]}
    assert "/api/v1/search" in doc["paths"]


def test_seeding_publishes_the_example_skills_once(tmp_path: Path) -> None:
    from skills_hub.resources import resource_dir

    settings = Settings(home=tmp_path / "seeded", semantic="off")
    registry = Registry(settings)
    registry.start(resource_dir("seed"))
    seeds = sorted(p.name for p in resource_dir("seed").iterdir() if (p / "SKILL.md").exists())
    assert len(seeds) >= 12
    page = registry.list_skills(principal=registry.authenticate(None), limit=200)
    assert sorted(s.name for s in page.skills) == seeds
    registry.close()
    again = Registry(settings)
    again.start(resource_dir("seed"))
    assert len(again.git.tags("examples")) == len(seeds)
    again.close()
