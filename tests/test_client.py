"""skills_hub.client: HubClient over every native route, verified installs, isolation."""

from __future__ import annotations

import hashlib
import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from skills_hub.cli import ExitCode, main
from skills_hub.client import (
    HubClient,
    IntegrityError,
    Lockfile,
    ServerError,
    Unreachable,
    install_from_hub,
)
from skills_hub.client.installer import skill_path, write_bundle
from skills_hub.errors import BadRequest
from skills_hub.skill.bundle import Bundle, from_directory, to_targz
from tests.conftest import skill_md, write_skill

SERVER = "http://testserver"
FORBIDDEN = ("starlette", "dulwich", "torch", "sentence_transformers", "uvicorn",
             "skills_hub.web", "skills_hub.services", "skills_hub.store")


def test_client_and_cli_import_no_server_modules() -> None:
    code = ("import sys, skills_hub.client, skills_hub.cli; "
            f"bad = [m for m in sys.modules if m.startswith({FORBIDDEN!r})]; "
            "print(','.join(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""


@pytest.fixture
def hub(client: TestClient, token: str) -> HubClient:
    return HubClient(SERVER + "/", token, http=client)


@pytest.fixture
def published(hub: HubClient, tmp_path: Path) -> Bundle:
    folder = write_skill(tmp_path / "src", "hello-world")
    tool = folder / "scripts" / "tool.py"
    tool.parent.mkdir()
    tool.write_text("print('hi')\n")
    tool.chmod(0o755)
    bundle = from_directory(folder)
    assert hub.publish("team", bundle, "1.0.0")["status"] == "published"
    return bundle


def test_every_route(hub: HubClient, published: Bundle, tmp_path: Path) -> None:
    assert hub.server == SERVER
    assert hub.whoami() == "team"
    assert {"name": "team", "visibility": "public", "skills": 1,
            "git": "/git/team.git"} in hub.namespaces()
    for name in ("b-skill", "c-skill"):
        hub.publish("team", from_directory(write_skill(tmp_path / "more", name)))
    first = hub.list_skills("team", limit=2)
    assert first["total"] == 3 and first["next_cursor"]
    second = hub.list_skills("team", limit=2, cursor=first["next_cursor"])
    assert [s["name"] for s in first["skills"] + second["skills"]] == [
        "b-skill", "c-skill", "hello-world"]
    assert [s["name"] for s in hub.iter_skills()] == ["b-skill", "c-skill", "hello-world"]
    assert hub.search("greets", namespace="team")["results"]
    assert hub.skill("team", "hello-world")["versions"][0]["version"] == "1.0.0"
    version = hub.version("team", "hello-world")
    assert version["content_sha256"] == published.content_hash()
    assert hub.file("team", "hello-world", "1.0.0", "scripts/tool.py") == b"print('hi')\n"
    download = hub.archive("team", "hello-world", "1.0.0")
    assert download.sha256 == hashlib.sha256(download.data).hexdigest()
    assert download.sha256 == version["archives"]["tar.gz"]["sha256"]
    assert download.version == "1.0.0"
    unchanged = hub.publish("team", published)
    assert (unchanged["status"], unchanged["version"]) == ("unchanged", "1.0.0")


def test_server_errors_carry_status_code_and_problems(hub: HubClient, tmp_path: Path) -> None:
    with pytest.raises(ServerError) as missing:
        hub.skill("team", "nope")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    bad = tmp_path / "bad-skill"
    bad.mkdir()
    (bad / "SKILL.md").write_text("---\nname: bad-skill\n---\n")
    with pytest.raises(ServerError) as invalid:
        hub.publish("team", from_directory(bad))
    assert invalid.value.status == 422
    assert invalid.value.code == "invalid_skill"
    assert [p.field for p in invalid.value.problems] == ["description"]
    with pytest.raises(ServerError) as denied:
        HubClient(SERVER, "wrong", http=hub.http).whoami()
    assert denied.value.status == 401
    assert denied.value.hint


def test_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with HubClient(f"127.0.0.1:{port}") as hub, pytest.raises(Unreachable) as info:
        hub.namespaces()
    assert str(info.value).startswith(f"cannot reach the registry at http://127.0.0.1:{port}: ")


def test_install_from_hub(hub: HubClient, published: Bundle, tmp_path: Path) -> None:
    skills = tmp_path / "skills"
    installed = install_from_hub(hub, "team", "hello-world", None, skills)
    assert installed.previous is None
    assert from_directory(installed.path).content_hash() == published.content_hash()
    assert stat.S_IMODE((installed.path / "scripts" / "tool.py").stat().st_mode) == 0o755
    again = install_from_hub(hub, "team", "hello-world", "1.0.0", skills)
    assert again.previous == installed.entry
    assert Lockfile(skills).get("hello-world") == again.entry
    assert again.entry.pinned


def tampering(client: TestClient, *, also_digests: bool) -> httpx.Client:
    """An httpx client whose network hands out a different archive than the registry has;
    with also_digests, the header and the version JSON are forged to match it too."""
    forged = to_targz(Bundle({"SKILL.md": skill_md("hello-world", body="evil")}), "hello-world")
    forged_sha = hashlib.sha256(forged).hexdigest()

    def handler(request: httpx.Request) -> httpx.Response:
        real = client.request(request.method, str(request.url), headers=request.headers)
        headers = {k: v for k, v in real.headers.items()
                   if k.lower() not in ("content-length", "content-encoding")}
        if request.url.path.endswith("/archive.tar.gz"):
            if also_digests:
                headers["x-checksum-sha256"] = forged_sha
            return httpx.Response(200, headers=headers, content=forged)
        if also_digests and "/versions/" in request.url.path:
            body = real.json()
            body["archives"]["tar.gz"]["sha256"] = forged_sha
            return httpx.Response(200, json=body)
        return httpx.Response(real.status_code, headers=headers, content=real.content)

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("also_digests", "message"), [
    (False, "checksum mismatch for team/hello-world 1.0.0"),
    (True, "content hash mismatch for team/hello-world 1.0.0"),
])
def test_tampered_download_is_refused(client: TestClient, published: Bundle, tmp_path: Path,
                                      also_digests: bool, message: str) -> None:
    skills = tmp_path / "skills"
    with tampering(client, also_digests=also_digests) as http:
        with pytest.raises(IntegrityError, match=message):
            install_from_hub(HubClient(SERVER, http=http), "team", "hello-world", None, skills)
        result = CliRunner().invoke(main, ["--server", SERVER, "install", "team/hello-world",
                                           "--dir", str(skills)], obj={"http": http})
    assert result.exit_code == ExitCode.INTEGRITY
    assert message in result.stderr
    assert not skills.exists() or list(skills.iterdir()) == []


def test_write_bundle_replaces_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "skills" / "hello-world"
    old = Bundle({"SKILL.md": skill_md(), "old.txt": b"old"})
    write_bundle(old, target, old.content_hash())
    new = Bundle({"SKILL.md": skill_md(), "run.sh": b"#!/bin/sh\n"}, frozenset({"run.sh"}))
    with pytest.raises(IntegrityError):
        write_bundle(new, target, "0" * 64)
    assert (target / "old.txt").read_bytes() == b"old"  # the old install is untouched
    write_bundle(new, target, new.content_hash())
    assert sorted(p.name for p in target.iterdir()) == ["SKILL.md", "run.sh"]
    assert stat.S_IMODE((target / "run.sh").stat().st_mode) == 0o755
    assert [p.name for p in target.parent.iterdir()] == ["hello-world"]  # no leftovers


@pytest.mark.parametrize("name", ["../evil", "Evil", "a/b", "-x", "a--b", ""])
def test_skill_path_refuses_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadRequest):
        skill_path(tmp_path, name)


def test_lockfile_roundtrip_and_bad_json(tmp_path: Path) -> None:
    lock = Lockfile(tmp_path)
    assert lock.entries == {}
    (tmp_path / ".skills-hub-lock.json").write_text("{nope")
    result = CliRunner().invoke(main, ["list", "--dir", str(tmp_path)])
    assert result.exit_code == ExitCode.ERROR
    assert "cannot read the lockfile" in result.stderr
    (tmp_path / ".skills-hub-lock.json").write_text(json.dumps({"skills": {}}))
    assert Lockfile(tmp_path).entries == {}
