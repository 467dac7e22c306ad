"""Hostile input through the API (issue 13): every refusal is a JSON error with a code and a
hint, never a 500, and leaves the store exactly as it was."""

from __future__ import annotations

import io
import sqlite3
import tarfile
import zipfile
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from skills_hub.cli import main, terminal_safe
from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle

from .conftest import skill_md, token_principal
from .test_api import make_zip, snapshot

PUBLISH = "/api/v1/namespaces/team/skills"
SKILL = "/api/v1/skills/team/hello-world"
GOOD = skill_md()
OSC8 = "\x1b]8;;https://evil.example/\x07click me\x1b]8;;\x1b\\"


def frontmatter(yaml_text: str, body: str = "# hello\n") -> bytes:
    return f"---\n{yaml_text}---\n{body}".encode()


def good_with(**lines: str) -> bytes:
    """The good SKILL.md with extra or replaced frontmatter lines (key: raw YAML value)."""
    fields = {"name": "hello-world",
              "description": "Greets the user by name when asked to say hello."}
    fields.update(lines)
    return frontmatter("".join(f"{key}: {value}\n" for key, value in fields.items()))


def yaml_quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar, control characters written as escapes."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\x1b", "\\e").replace("\x07", "\\a") + '"'


def nested_block_yaml(depth: int) -> str:
    return "metadata:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(depth)) + \
        "  " * (depth + 1) + "leaf: x\n"


def tar_gz(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def upload(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> dict[str, Any]:
    return {"method": "POST", "path": PUBLISH, "content": make_zip(entries, compression),
            "headers": {"Content-Type": "application/zip"}}


def upload_targz(entries: dict[str, bytes]) -> dict[str, Any]:
    return {"method": "POST", "path": PUBLISH, "content": tar_gz(entries),
            "headers": {"Content-Type": "application/gzip"}}


def with_file(path: str, data: bytes = b"x") -> dict[str, Any]:
    return upload({"SKILL.md": GOOD, path: data})


def publish_version(version: str, md: bytes = GOOD + b"\nChanged.\n") -> dict[str, Any]:
    return {"method": "POST", "path": f"{PUBLISH}?version={quote(version)}",
            "content": make_zip({"SKILL.md": md}), "headers": {"Content-Type": "application/zip"}}


def json_post(path: str, body: str | bytes, method: str = "POST") -> dict[str, Any]:
    return {"method": method, "path": path, "content": body,
            "headers": {"Content-Type": "application/json"}}


DEEP = "[" * 100_000 + "]" * 100_000
OUTCOMES = f"{SKILL}/outcomes"
PROPOSALS = f"{SKILL}/proposals"
EXCEPTION = f"{SKILL}/exceptions/remote-exec.pipe-to-shell"

# (request, status, code, the problem's field for invalid_skill)
HOSTILE: list[Any] = [
    # -- 2: nesting and characters the parsers choke on -----------------------------------------
    pytest.param(json_post(OUTCOMES, DEEP), 400, "json_too_deep", None, id="outcomes-deep-json"),
    pytest.param(json_post(OUTCOMES, '{"outcomes": ' + "[" * 65 + "]" * 65 + "}"), 400,
                 "json_too_deep", None, id="outcomes-65-levels"),
    pytest.param(json_post(PROPOSALS, DEEP), 400, "json_too_deep", None, id="proposal-deep-json"),
    pytest.param(json_post(PROPOSALS, '{"edits": ' + "{\"a\": " * 5000 + "1" + "}" * 5001), 400,
                 "json_too_deep", None, id="proposal-deep-objects"),
    pytest.param(json_post(EXCEPTION, "[" * 20_000 + "]" * 20_000, "PUT"), 400,
                 "json_too_deep", None, id="exception-deep-json"),
    pytest.param(json_post(EXCEPTION, '{"reason": "' + "x" * (70 << 10) + '"}', "PUT"), 413,
                 "payload_too_large", None, id="exception-over-cap"),
    pytest.param(json_post(EXCEPTION, "{not json", "PUT"), 400, "bad_request", None,
                 id="exception-not-json"),
    pytest.param(json_post(OUTCOMES, b"\xff\xfe\xfd"), 400, "bad_request", None,
                 id="outcomes-not-text"),
    pytest.param(upload({"SKILL.md": good_with(description="[" * 5000 + "]" * 5000)}), 422,
                 "invalid_skill", "frontmatter", id="yaml-deep-flow"),
    pytest.param(upload({"SKILL.md": frontmatter(
        "name: hello-world\ndescription: ok\n" + nested_block_yaml(600))}, zipfile.ZIP_STORED),
        422,
        "invalid_skill", "frontmatter", id="yaml-deep-block"),
    pytest.param(upload({"SKILL.md": good_with(license="MIT\x00")}), 422, "invalid_skill",
                 "frontmatter", id="yaml-nul"),
    pytest.param(upload({"SKILL.md": good_with(description="hi \x1b[31mred")}), 422,
                 "invalid_skill", "frontmatter", id="yaml-raw-escape"),
    # -- 3: names git cannot check out ------------------------------------------------------
    pytest.param(with_file("a" * 256 + ".md"), 400, "path_too_long", None, id="segment-256"),
    pytest.param(with_file("references/" + "é" * 128), 400, "path_too_long", None,
                 id="segment-256-bytes-128-chars"),
    pytest.param(with_file("/".join(["d" * 200] * 6) + "/f.md"), 400, "path_too_long", None,
                 id="path-over-1024"),
    pytest.param(upload_targz({"SKILL.md": GOOD, "b" * 300: b"x"}), 400, "path_too_long", None,
                 id="tar-pax-long-name"),
    # -- 5 and 12: control, bidi and invisible characters --------------------------------------
    pytest.param(with_file(f"scripts/{OSC8}.sh"), 400, "unsafe_character", None, id="path-osc8"),
    pytest.param(with_file("notes\n.md"), 400, "unsafe_character", None, id="path-newline"),
    pytest.param(with_file("notes\t.md"), 400, "unsafe_character", None, id="path-tab"),
    pytest.param(with_file("notes\x7f.md"), 400, "unsafe_character", None, id="path-del"),
    pytest.param(with_file("notes\x9b2J.md"), 400, "unsafe_character", None, id="path-c1-csi"),
    pytest.param(with_file("scripts/evil\u202eht.sh"), 400, "unsafe_character", None,
                 id="path-rlo"),
    pytest.param(with_file("scripts/a\u2066b.sh"), 400, "unsafe_character", None, id="path-lri"),
    pytest.param(with_file("run\u200b.sh"), 400, "unsafe_character", None, id="path-zwsp"),
    pytest.param(with_file("dir\u202e/x.md"), 400, "unsafe_character", None, id="folder-rlo"),
    pytest.param(upload({"hello\u202eworld/SKILL.md": GOOD}), 400, "unsafe_character", None,
                 id="top-folder-rlo"),
    pytest.param(upload({"SKILL.md": good_with(description=yaml_quoted(OSC8))}), 422,
                 "invalid_skill", "description", id="description-osc8-escapes"),
    pytest.param(upload({"SKILL.md": good_with(description='"say \\x9b2J hello"')}), 422,
                 "invalid_skill", "description", id="description-c1"),
    pytest.param(upload({"SKILL.md": good_with(description='"line\\rover"')}), 422,
                 "invalid_skill", "description", id="description-cr"),
    pytest.param(upload({"SKILL.md": good_with(metadata='{tags: "a\\e[2Jb"}')}), 422,
                 "invalid_skill", "metadata.tags", id="metadata-escape"),
    pytest.param(upload({"SKILL.md": good_with(name='"hello\\u202e-world"')}), 422,
                 "invalid_skill", "name", id="name-rlo"),
    pytest.param(upload({"SKILL.md": good_with(name='"hello-\\u200bworld"')}), 422,
                 "invalid_skill", "name", id="name-zwsp"),
    # -- 9: build metadata has no precedence --------------------------------------------------
    pytest.param(publish_version("1.0.0+b1"), 409, "version_exists", None, id="version-plus-b1"),
    pytest.param(upload({"SKILL.md": good_with(metadata='{version: "1.0.0+b2"}')}), 409,
                 "version_exists", None, id="metadata-version-plus-b2"),
]


@pytest.fixture
def seeded(client: TestClient, auth: dict[str, str]) -> TestClient:
    """hello-world 1.0.0 published: the skill every hostile request aims at."""
    response = client.post(f"{PUBLISH}?version=1.0.0", content=make_zip({"SKILL.md": GOOD}),
                           headers={**auth, "Content-Type": "application/zip"})
    assert response.status_code == 201, response.text
    return client


@pytest.mark.parametrize(("request_", "status", "code", "field"), HOSTILE)
def test_hostile_input_is_a_clear_refusal_and_changes_nothing(
        seeded: TestClient, settings: Settings, auth: dict[str, str], request_: dict[str, Any],
        status: int, code: str, field: str | None) -> None:
    before = snapshot(settings)
    response = seeded.request(request_["method"], request_["path"], content=request_["content"],
                              headers={**auth, **request_["headers"]})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    problems = body.get("problems") or []
    assert body.get("hint") or (problems and all(p["hint"] for p in problems)), body
    if field is not None:
        assert field in {p["field"] for p in problems if p["severity"] == "error"}, problems
    # Nothing hostile is echoed raw: no escape or bidi character in the answer.
    assert terminal_safe(response.text) == response.text
    assert snapshot(settings) == before


def test_brackets_inside_strings_do_not_count_as_nesting(seeded: TestClient,
                                                         auth: dict[str, str]) -> None:
    deep_text = "[" * 1000 + '\\"{' * 1000
    response = seeded.post(OUTCOMES, content='{"outcomes": "' + deep_text + '"}',
                           headers={**auth, "Content-Type": "application/json"})
    assert response.json()["code"] != "json_too_deep"
    assert response.status_code in (400, 422), response.text


def test_64_levels_of_json_are_still_accepted(seeded: TestClient,
                                              auth: dict[str, str]) -> None:
    reason = '{"reason": "reviewed", "x": ' + "[" * 63 + "]" * 63 + "}"
    response = seeded.put(EXCEPTION, content=reason,
                          headers={**auth, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text


def test_names_up_to_the_limits_are_accepted(seeded: TestClient, auth: dict[str, str]) -> None:
    long_ok = {"SKILL.md": GOOD + b"\nlong\n", "references/" + "é" * 126 + ".md": b"x",
               "/".join(["d" * 200] * 5) + "/f.md": b"y", "ünïcode نص.md": b"z"}
    response = seeded.post(PUBLISH, content=make_zip(long_ok),
                           headers={**auth, "Content-Type": "application/zip"})
    assert response.status_code == 201, response.text


def test_a_version_equal_in_precedence_names_the_existing_one(seeded: TestClient,
                                                               auth: dict[str, str]) -> None:
    response = seeded.post(f"{PUBLISH}?version=1.0.0%2Bbuild.7",
                           content=make_zip({"SKILL.md": GOOD + b"\nNew.\n"}),
                           headers={**auth, "Content-Type": "application/zip"})
    assert response.status_code == 409
    assert response.json()["existing"] == "1.0.0"
    assert "1.0.0" in response.json()["message"] and response.json()["hint"]
    # The very same version with the same content stays a no-op; a higher one goes through.
    same = seeded.post(f"{PUBLISH}?version=1.0.0", content=make_zip({"SKILL.md": GOOD}),
                       headers={**auth, "Content-Type": "application/zip"})
    assert (same.status_code, same.json()["status"]) == (200, "unchanged")
    higher = seeded.post(f"{PUBLISH}?version=1.0.1%2Bbuild.8",
                         content=make_zip({"SKILL.md": GOOD + b"\nNew.\n"}),
                         headers={**auth, "Content-Type": "application/zip"})
    assert (higher.status_code, higher.json()["version"]) == (201, "1.0.1+build.8")


def test_build_metadata_alone_is_allowed_on_a_first_version(client: TestClient,
                                                            auth: dict[str, str]) -> None:
    response = client.post(f"{PUBLISH}?version=1.0.0%2Bb1", content=make_zip({"SKILL.md": GOOD}),
                           headers={**auth, "Content-Type": "application/zip"})
    assert (response.status_code, response.json()["version"]) == (201, "1.0.0+b1")


# -- 12: proposal ids cannot be probed across skills ---------------------------------------------

STEPS = "## Steps\n\n1. Collect the updates.\n2. Group them by project.\n"


@pytest.fixture
def foreign_proposal(registry: Registry, client: TestClient, auth: dict[str, str]) -> str:
    """A proposal of team/weekly-report; hello-world exists too."""
    principal = token_principal(registry, "team")
    for name in ("hello-world", "weekly-report"):
        md = skill_md(name, description="Formats the weekly status report.", body=STEPS)
        registry.publish("team", Bundle({"SKILL.md": md}), principal=principal,
                         version="1.0.0")
    response = client.post("/api/v1/skills/team/weekly-report/proposals", headers=auth, json={
        "base_version": "1.0.0", "reasoning": "owners were missing",
        "edits": [{"op": "insert_after", "target": "2. Group them by project.\n",
                   "content": "3. Name an owner.\n"}]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize(("method", "suffix", "json"), [
    ("GET", "", None),
    ("POST", "/review", {"decision": "reject", "comment": "no"}),
])
def test_another_skills_proposal_answers_like_a_missing_one(
        foreign_proposal: str, client: TestClient, settings: Settings, auth: dict[str, str],
        method: str, suffix: str, json: dict[str, str] | None) -> None:
    missing_id = "0" * len(foreign_proposal)
    before = snapshot(settings)

    def ask(proposal_id: str) -> tuple[int, str, str]:
        response = client.request(method, f"{SKILL}/proposals/{proposal_id}{suffix}",
                                  headers=auth, json=json)
        body = response.json()
        return response.status_code, body["code"], body["message"].replace(proposal_id, "ID")

    assert ask(foreign_proposal) == ask(missing_id) == (404, "not_found", "no proposal 'ID'")
    assert snapshot(settings) == before


# -- 5: the CLI never prints control sequences the server sends --------------------------------


def test_terminal_safe_strips_sequences_and_keeps_text() -> None:
    assert terminal_safe(f"see {OSC8} now") == "see click me now"
    assert terminal_safe("\x1b[31mred\x1b[0m \x9b2Jx \x1b]0;title\x07t") == "red x t"
    assert terminal_safe("a\u202eb\u2066c\u200bd\x7f\x00e") == "abcde"
    assert terminal_safe("tab\tand\nnewline ünïcode 日本 نص") == "tab\tand\nnewline ünïcode 日本 نص"
    assert terminal_safe("\x1b]52;c;ZXZpbA==") == ""  # unterminated clipboard write


@pytest.mark.sqlite_only
def test_cli_info_and_search_strip_escapes_from_old_data(
        seeded: TestClient, settings: Settings, token: str) -> None:
    """Data stored before validation refused control characters is printed without them."""
    hostile = f"Greets {OSC8}\x1b[2J\u202eusers"
    with sqlite3.connect(settings.index_path) as conn:
        conn.execute("UPDATE skills SET description = ?", (hostile,))
        conn.execute("UPDATE versions SET description = ?, files_json = replace(files_json, "
                     "'SKILL.md', ?)", (hostile, "SKILL\\u001b]0;pwned\\u0007.md"))

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, ["--server", "http://testserver", "--token", token,
                                           *args], obj={"http": seeded},
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    outputs: list[Callable[[], str]] = [lambda: run("info", "team/hello-world"),
                                        lambda: run("search", "")]
    for output in (make() for make in outputs):
        assert "\x1b" not in output and "\u202e" not in output and "\x07" not in output
        assert "Greets click me" in output
    assert "SKILL.md" in run("info", "team/hello-world")


# -- what the OpenAPI document promises tools ----------------------------------------------


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("POST", "/clawhub/api/v1/search", "GET, HEAD"),
    ("PUT", "/clawhub/api/v1/skills/hello-world", "GET, HEAD"),
    ("POST", "/clawhub/team/api/v1/search", "GET, HEAD"),
    ("DELETE", "/api/v1/search", "GET"),
    ("POST", "/api/v1/skills", "GET"),
])
def test_a_wrong_method_is_405_with_allow(client: TestClient, method: str, path: str,
                                          allow: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) >= set(allow.split(", "))


def test_an_unserved_clawhub_route_is_still_404(client: TestClient) -> None:
    assert client.get("/clawhub/api/v1/stars").status_code == 404


@pytest.mark.parametrize(("path", "limit"), [("/api/v1/skills", "0"),
                                             ("/api/v1/skills", "201"),
                                             ("/api/v1/search?q=x", "101"),
                                             ("/api/v1/search?q=x", "-1")])
def test_out_of_range_limits_are_refused_not_clamped(client: TestClient, path: str,
                                                     limit: str) -> None:
    sep = "&" if "?" in path else "?"
    response = client.get(f"{path}{sep}limit={limit}")
    assert response.status_code == 400 and response.json()["problems"][0]["field"] == "limit"
