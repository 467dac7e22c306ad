"""Issue 14, the CLI and README fixes found on one user trial: each test failed before its fix."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from skills_hub.cli import ExitCode, _proposal_line, main
from skills_hub.learning.outcomes import FAILURE_KINDS
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.store.gitstore import GitStore
from tests.conftest import REPO_ROOT, skill_md, write_skill

SERVER = "http://testserver"
Cli = Callable[..., Result]
STEPS = "## Steps\n\n1. Collect the updates.\n2. Group them by project.\n3. Send it.\n"
OWNER_STEP = {"op": "insert_after", "target": "2. Group them by project.\n",
              "content": "2b. Name an owner for each item.\n"}


@pytest.fixture
def cli(client: TestClient, token: str) -> Cli:
    def run(*args: str, input: str | None = None, http: httpx.Client | None = None) -> Result:
        return CliRunner().invoke(main, ["--server", SERVER, "--token", token, *args],
                                  obj={"http": http or client}, input=input,
                                  catch_exceptions=False)

    return run


def publish(cli: Cli, tmp_path: Path, version: str = "1.0.0", body: str = STEPS) -> Path:
    folder = write_skill(tmp_path / "src", "weekly-report",
                         description="Formats the weekly status report.", body=body)
    done = cli("publish", str(folder), "--version", version)
    assert done.exit_code == 0, done.output
    return folder


# 1. `info` points to the checks report viewer, `findings` (`report` sends outcomes).

def test_info_points_to_findings_not_report(cli: Cli, tmp_path: Path) -> None:
    publish(cli, tmp_path)
    shown = cli("info", "team/weekly-report")
    assert shown.exit_code == 0, shown.output
    assert "(skills-hub findings team/weekly-report@1.0.0)" in shown.stdout
    assert "skills-hub report" not in shown.stdout
    named = shown.stdout.split("(skills-hub ", 1)[1].split(")", 1)[0].split()
    assert cli(*named).exit_code == 0  # the command it names works


# 2. `report NS/NAME failure` without --kind: a usage error naming the kinds, no request.

def test_report_failure_without_kind_is_a_local_usage_error(cli: Cli) -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    offline = httpx.Client(transport=httpx.MockTransport(record))
    done = cli("report", "team/weekly-report@1.0.0", "failure", http=offline)
    assert done.exit_code == ExitCode.USAGE
    assert sent == []
    assert "None" not in done.stderr
    assert "a failure needs --kind" in done.stderr
    for kind in FAILURE_KINDS:
        assert kind in done.stderr


def test_report_failure_with_kind_is_recorded(cli: Cli, tmp_path: Path) -> None:
    publish(cli, tmp_path)
    done = cli("report", "team/weekly-report@1.0.0", "failure", "--kind", "timeout")
    assert done.exit_code == 0, done.output
    assert "recorded 1 outcome(s)" in done.stdout


# 3. A decided proposal: "by WHO" with no stray colon, for old and new `decided_by` values.

PROPOSAL = {"id": "p1", "namespace": "acme", "name": "x", "status": "accepted",
            "version": "1.0.1", "base_version": "1.0.0", "verdict": "safe", "support": 1}


@pytest.mark.parametrize(("decided_by", "comment", "expected"), [
    ("maintainer:acme", "", "accepted -> 1.0.1 by a maintainer of acme  (base"),
    ("maintainer:acme", "good", "accepted -> 1.0.1 by a maintainer of acme: good  (base"),
    ("alice", "", "accepted -> 1.0.1 by alice  (base"),
    ("alice", "good", "accepted -> 1.0.1 by alice: good  (base"),
    ("policy:auto", "agreed fix", "accepted -> 1.0.1 by the auto policy: agreed fix  (base"),
    ("operator", None, "accepted -> 1.0.1 by operator  (base"),
])
def test_proposal_line_names_who_decided_without_a_stray_colon(
        decided_by: str, comment: str | None, expected: str) -> None:
    line = _proposal_line({**PROPOSAL, "decided_by": decided_by, "comment": comment})
    assert expected in line
    assert not re.search(r":\s*(\(|$)", line.split("(base")[0] + "(")


def test_review_accept_without_comment_prints_no_stray_colon(cli: Cli, tmp_path: Path) -> None:
    publish(cli, tmp_path)
    opened = cli("propose", "team/weekly-report@1.0.0", "-", input=json.dumps([OWNER_STEP]))
    assert opened.exit_code == 0, opened.output
    proposal_id = opened.stdout.split()[2]
    reviewed = cli("review", "team/weekly-report", proposal_id, "accept")
    assert reviewed.exit_code == 0, reviewed.output
    decided = reviewed.stdout.split("  (base")[0]
    assert re.search(r"accepted -> 1\.0\.1 by [\w.-]+$", decided), reviewed.stdout


# 4. `publish --version V` of content identical to the latest version X: V is not published.

def test_publish_version_of_unchanged_content_says_it_was_not_published(
        cli: Cli, tmp_path: Path, client: TestClient) -> None:
    folder = publish(cli, tmp_path)
    again = cli("publish", str(folder), "--version", "2.0.0")
    assert again.exit_code == ExitCode.REFUSED, again.output
    assert ("2.0.0 was not published: the content is the same as the published version "
            "1.0.0") in again.stdout
    assert "refused 1" in again.stdout
    assert client.get("/api/v1/skills/team/weekly-report/versions/2.0.0").status_code == 404
    as_json = cli("publish", str(folder), "--version", "2.0.0", "--json")
    assert as_json.exit_code == ExitCode.REFUSED
    refused = json.loads(as_json.stdout)["refused"]
    assert [(r["code"], r["version"]) for r in refused] == [("version_not_published", "1.0.0")]
    # Re-running the same publish (same version, same content) stays a quiet no-op.
    rerun = cli("publish", str(folder), "--version", "1.0.0")
    assert rerun.exit_code == 0, rerun.output
    assert "unchanged weekly-report 1.0.0" in rerun.stdout
    assert cli("publish", str(folder)).exit_code == 0  # no --version: unchanged, fine
    assert "not published" in cli("publish", "--help").stdout


# 5. The README's `proposals` examples work as written.

def readme_commands(prefix: str) -> list[list[str]]:
    text = (REPO_ROOT / "README.md").read_text()
    lines = [line.split("  #")[0].strip() for line in text.splitlines()
             if line.startswith(f"skills-hub {prefix}")]
    return [shlex.split(line)[1:] for line in lines]


def test_readme_proposals_examples_work(cli: Cli, tmp_path: Path) -> None:
    publish(cli, tmp_path)
    opened = cli("propose", "team/weekly-report@1.0.0", "-", input=json.dumps([OWNER_STEP]))
    proposal_id = opened.stdout.split()[2]
    examples = readme_commands("proposals ")
    assert any("--show" in args for args in examples)
    for args in examples:
        done = cli(*[proposal_id if arg == "ID" else arg for arg in args])
        assert done.exit_code == 0, (args, done.output)
        assert proposal_id in done.stdout
        if "--show" in args:
            assert "+2b. Name an owner for each item." in done.stdout
    missing = cli("proposals", "team", "--show", "nosuchid")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert "proposals team/NAME --show nosuchid" in missing.stderr


# 6. The quick start says `make serve` holds the terminal, how to pick a port, and what the
# CLI then needs.

def test_quick_start_says_how_to_serve_on_another_port() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "holds the terminal" in quick
    assert "make serve PORT=8080" in quick
    assert "SKILLS_HUB_URL=http://127.0.0.1:8080" in quick and "--server" in quick
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "PORT     ?= 8000" in makefile and "--port $(PORT)" in makefile


# 7. Repos use core.fsync (git warned about core.fsyncObjectFiles on every clone); dulwich
# still fsyncs our object writes; old repos are updated at start.

def clone_stderr(repo: Path, target: Path) -> str:
    done = subprocess.run(["git", "clone", f"file://{repo}", str(target)], capture_output=True,
                          text=True, check=True, env={**os.environ, "LC_ALL": "C"})
    return done.stderr


def test_git_clone_of_a_store_repo_warns_about_nothing(tmp_path: Path) -> None:
    store = GitStore(tmp_path / "repos")
    store.publish("team", "hello", "1.0.0", Bundle({"SKILL.md": skill_md("hello")}),
                  message="hello 1.0.0")
    config = (store.path("team") / "config").read_text()
    assert "fsyncObjectFiles" not in config
    assert "fsync = objects,derived-metadata,reference" in config
    assert "fsyncMethod = fsync" in config
    stderr = clone_stderr(store.path("team"), tmp_path / "clone")
    assert "deprecated" not in stderr and "warning" not in stderr, stderr
    assert (tmp_path / "clone" / "skills" / "hello" / "SKILL.md").is_file()


def test_dulwich_still_fsyncs_the_objects_we_write(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = GitStore(tmp_path / "repos")
    store.ensure("team")
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.publish("team", "hello", "1.0.0", Bundle({"SKILL.md": skill_md("hello")}),
                  message="hello 1.0.0")
    objects = store.path("team") / "objects"
    written = {str(p) for p in objects.glob("??/*") if p.is_file()}
    assert written  # a blob, trees, a commit and a tag, loose
    # dulwich fsyncs the temporary file it then renames into place
    synced_objects = {re.sub(r"\.lock$", "", path) for path in synced}
    assert written <= synced_objects, written - synced_objects


def test_start_updates_the_config_of_an_old_repo(registry: Registry, tmp_path: Path) -> None:
    registry.git.publish("team", "hello", "1.0.0", Bundle({"SKILL.md": skill_md("hello")}),
                         message="hello 1.0.0")
    path = registry.git.path("team")
    # the config a repo made before the fix has
    (path / "config").write_text("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n"
                                 "\tbare = true\n\tfsyncObjectFiles = true\n"
                                 "\tlogAllRefUpdates = false\n")
    assert "deprecated" in clone_stderr(path, tmp_path / "before")
    again = Registry(registry.settings)
    try:
        again.start()
    finally:
        again.close()
    config = (path / "config").read_text()
    assert "fsyncObjectFiles" not in config and "fsync = objects" in config
    assert "logAllRefUpdates = false" in config
    assert "deprecated" not in clone_stderr(path, tmp_path / "after")


# 8. A page under a reserved name is not "namespace ... does not exist".

@pytest.mark.parametrize("path", ["/admin", "/settings/nothing/here", "/docs/nothing", "/login/x"])
def test_a_reserved_name_is_not_called_a_namespace(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "does not exist" not in response.text
    assert "namespace &#39;" not in response.text and "namespace '" not in response.text
    assert f"nothing at {path}" in response.text


def test_a_missing_namespace_is_still_named(client: TestClient) -> None:
    response = client.get("/nosuchteam")
    assert response.status_code == 404
    assert "nosuchteam" in response.text
