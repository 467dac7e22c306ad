"""The client commands end to end: the CLI against the in-process app (CliRunner + TestClient)."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from skills_hub.cli import ExitCode, main
from skills_hub.services import Registry
from tests.conftest import skill_md, write_skill

SERVER = "http://testserver"
Cli = Callable[..., Result]


@pytest.fixture
def cli(client: TestClient, token: str) -> Cli:
    """Run `skills-hub --server SERVER [--token T] ARGS` against the in-process app."""

    def run(*args: str, auth: str | None = token, input: str | None = None) -> Result:
        base = ["--server", SERVER] + (["--token", auth] if auth else [])
        return CliRunner().invoke(main, [*base, *args], obj={"http": client}, input=input,
                                  catch_exceptions=False)

    return run


@pytest.fixture
def skills(tmp_path: Path) -> Path:
    return tmp_path / "skills"


def make_rich_skill(parent: Path, name: str = "csv-analysis", body: str = "Analyse CSV.") -> Path:
    folder = write_skill(parent, name, description="Analyses CSV files and summarises columns.",
                         body=body)
    script = folder / "scripts" / "run.sh"
    script.parent.mkdir()
    script.write_bytes(b"#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    (folder / "references").mkdir()
    (folder / "references" / "notes.md").write_bytes(b"# Notes\n\nbinary-ish \xc3\xa9\n")
    return folder


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def lock_of(skills_dir: Path) -> dict[str, dict[str, object]]:
    body = json.loads((skills_dir / ".skills-hub-lock.json").read_text())
    assert body["lockfile_version"] == 1
    return dict(body["skills"])


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=t@example.org",
                           *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def make_git_repo(root: Path, names: dict[str, str | None]) -> Path:
    """A repo with skills/<name>/SKILL.md (metadata.version when given), committed."""
    git("init", "--quiet", "-b", "main", str(root))
    for name, version in names.items():
        folder = write_skill(root / "skills", name)
        if version:
            text = (folder / "SKILL.md").read_text()
            (folder / "SKILL.md").write_text(text.replace("metadata:\n",
                                                          f'metadata:\n  version: "{version}"\n'))
    git("add", "-A", cwd=root)
    git("commit", "--quiet", "-m", "skills", cwd=root)
    return root


# --- publish and install --------------------------------------------------------------------


def test_publish_then_install_is_byte_equal_with_lockfile(cli: Cli, tmp_path: Path,
                                                          skills: Path, client: TestClient
                                                          ) -> None:
    source = make_rich_skill(tmp_path / "src")
    published = cli("publish", str(source), "--version", "1.0.0")
    assert published.exit_code == 0, published.output
    assert "[1/1] csv-analysis ... published 1.0.0" in published.stderr
    assert "published 1, unchanged 0, refused 0" in published.stdout

    result = cli("install", "team/csv-analysis", "--dir", str(skills))
    assert result.exit_code == 0, result.output
    assert "installed team/csv-analysis 1.0.0" in result.stdout
    target = skills / "csv-analysis"
    assert files_of(target) == files_of(source)
    assert stat.S_IMODE((target / "scripts" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "SKILL.md").stat().st_mode) == 0o644

    meta = client.get("/api/v1/skills/team/csv-analysis/versions/1.0.0").json()
    entry = lock_of(skills)["csv-analysis"]
    assert entry["kind"] == "hub"
    assert entry["source"] == SERVER
    assert (entry["namespace"], entry["name"], entry["version"]) == ("team", "csv-analysis",
                                                                     "1.0.0")
    assert entry["commit"] == meta["commit"]
    assert entry["content_sha256"] == meta["content_sha256"]
    assert entry["archive_sha256"] == meta["archives"]["tar.gz"]["sha256"]
    assert entry["pinned"] is False
    assert str(entry["installed_at"]).endswith("+00:00")
    assert sorted(p.name for p in skills.iterdir()) == [".skills-hub-lock.json", "csv-analysis"]


def test_publish_folder_of_folders_then_unchanged(cli: Cli, tmp_path: Path) -> None:
    parent = tmp_path / "many"
    for name in ("alpha-skill", "beta-skill", "gamma-skill"):
        write_skill(parent, name)
    first = cli("publish", str(parent), "--json")
    assert first.exit_code == 0, first.output
    body = json.loads(first.stdout)
    assert body["namespace"] == "team"
    assert [r["name"] for r in body["published"]] == ["alpha-skill", "beta-skill", "gamma-skill"]
    assert "[3/3] gamma-skill ... published 0.1.0" in first.stderr

    again = cli("publish", str(parent))
    assert again.exit_code == 0
    assert "published 0, unchanged 3, refused 0" in again.stdout
    assert "[2/3] beta-skill ... unchanged 0.1.0" in again.stderr


def test_publish_dry_run_checks_and_stores_nothing(cli: Cli, tmp_path: Path,
                                                  registry: Registry) -> None:
    source = write_skill(tmp_path / "src", "hello-world")
    checked = cli("publish", str(source), "--dry-run")
    assert checked.exit_code == 0, checked.output
    assert "team: passed the checks 1 (nothing stored), unchanged 0, refused 0" \
        in checked.stdout
    assert "hello-world 0.1.0 would be published: publishing it stores it at once" \
        in checked.stdout
    assert registry.store.catalogue.get_skill("team", "hello-world") is None
    body = json.loads(cli("publish", str(source), "--dry-run", "--json").stdout)
    assert [(r["name"], r["version"], r["for_review"]) for r in body["checked"]] == \
        [("hello-world", "0.1.0", False)]
    assert body["published"] == []
    bad = write_skill(tmp_path / "bad", "bad-skill", description="")
    refused = cli("publish", str(bad), "--dry-run")
    assert refused.exit_code == ExitCode.REFUSED and "refused bad-skill" in refused.stdout
    assert registry.store.catalogue.get_skill("team", "bad-skill") is None
    assert cli("publish", str(source)).exit_code == 0  # the real publish still works
    assert registry.store.catalogue.get_skill("team", "hello-world") is not None


def test_install_default_dirs_agent_and_env(cli: Cli, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cli("publish", str(write_skill(tmp_path / "src", "hello-world")))
    home = Path(os.environ["HOME"])
    assert cli("install", "team/hello-world").exit_code == 0
    assert (home / ".agents" / "skills" / "hello-world" / "SKILL.md").is_file()
    assert cli("install", "team/hello-world", "--agent", "hermes").exit_code == 0
    assert (home / ".hermes" / "skills" / "hello-world" / "SKILL.md").is_file()
    monkeypatch.setenv("SKILLS_DIR", str(tmp_path / "from-env"))
    assert cli("install", "team/hello-world").exit_code == 0
    assert (tmp_path / "from-env" / "hello-world" / "SKILL.md").is_file()
    listed = cli("list", "--json")
    assert [e["name"] for e in json.loads(listed.stdout)] == ["hello-world"]


def test_pinned_install_update_and_force(cli: Cli, tmp_path: Path, skills: Path) -> None:
    source = write_skill(tmp_path / "src", "hello-world")
    cli("publish", str(source), "--version", "1.0.0")
    write_skill(tmp_path / "src", "hello-world", body="Say hello, warmly.")
    cli("publish", str(source), "--version", "1.1.0")

    pinned = cli("install", "team/hello-world@1.0.0", "--dir", str(skills))
    assert pinned.exit_code == 0, pinned.output
    assert "1.0.0 (pinned)" in pinned.stdout
    assert lock_of(skills)["hello-world"]["pinned"] is True
    assert b"Say hello." in (skills / "hello-world" / "SKILL.md").read_bytes()

    skipped = cli("update", "--dir", str(skills))
    assert skipped.exit_code == 0
    assert "hello-world: pinned at 1.0.0, skipped (use --force to update)" in skipped.stdout

    forced = cli("update", "--force", "--dir", str(skills), "--json")
    assert json.loads(forced.stdout) == [{"name": "hello-world", "from": "1.0.0", "to": "1.1.0",
                                          "status": "updated",
                                          "message": "updated 1.0.0 -> 1.1.0"}]
    assert lock_of(skills)["hello-world"]["pinned"] is False
    assert b"warmly" in (skills / "hello-world" / "SKILL.md").read_bytes()


def test_update_after_new_version_and_uninstall(cli: Cli, tmp_path: Path, skills: Path) -> None:
    source = write_skill(tmp_path / "src", "hello-world")
    cli("publish", str(source))
    assert cli("install", "team/hello-world", "--dir", str(skills)).exit_code == 0
    current = cli("update", "--dir", str(skills))
    assert "hello-world: up to date at 0.1.0" in current.stdout

    write_skill(tmp_path / "src", "hello-world", body="Say hello twice.")
    assert "published 0.1.1" in cli("publish", str(source)).stderr
    updated = cli("update", "hello-world", "--dir", str(skills))
    assert updated.exit_code == 0, updated.output
    assert "hello-world: updated 0.1.0 -> 0.1.1" in updated.stdout
    assert lock_of(skills)["hello-world"]["version"] == "0.1.1"
    assert b"twice" in (skills / "hello-world" / "SKILL.md").read_bytes()

    removed = cli("uninstall", "hello-world", "--dir", str(skills))
    assert removed.exit_code == 0
    assert not (skills / "hello-world").exists()
    assert lock_of(skills) == {}
    again = cli("uninstall", "hello-world", "--dir", str(skills))
    assert again.exit_code == ExitCode.NOT_FOUND
    assert "hello-world is not installed" in again.stderr
    assert cli("update", "nope", "--dir", str(skills)).exit_code == ExitCode.NOT_FOUND


# --- taps -----------------------------------------------------------------------------------


def test_bare_name_install_through_a_namespace_tap(cli: Cli, tmp_path: Path,
                                                   skills: Path) -> None:
    cli("publish", str(make_rich_skill(tmp_path / "src")))
    none = cli("install", "csv-analysis", "--dir", str(skills))
    assert none.exit_code == ExitCode.NOT_FOUND
    assert "no skill named 'csv-analysis' in any tap" in none.stderr

    added = cli("tap", "add", "team")
    assert added.exit_code == 0, added.output
    assert "added tap team" in added.stdout and "(1 skills)" in added.stdout
    result = cli("install", "csv-analysis", "--dir", str(skills))
    assert result.exit_code == 0, result.output
    assert lock_of(skills)["csv-analysis"]["namespace"] == "team"
    listed = json.loads(cli("tap", "list", "--json").stdout)
    assert listed == [{"name": "team", "kind": "hub", "server": SERVER, "namespace": "team"}]
    assert cli("tap", "add", "nobody").exit_code == ExitCode.NOT_FOUND
    assert cli("tap", "add", "team").exit_code == ExitCode.USAGE  # already there
    assert cli("tap", "remove", "team").exit_code == 0
    assert json.loads(cli("tap", "list", "--json").stdout) == []


def test_ambiguous_bare_name_lists_candidates(cli: Cli, registry: Registry, tmp_path: Path,
                                              skills: Path) -> None:
    other = registry.create_token("other")
    source = write_skill(tmp_path / "src", "hello-world")
    cli("publish", str(source))
    assert cli("publish", str(source), auth=other).exit_code == 0
    cli("tap", "add", "team")
    cli("tap", "add", "other")
    result = cli("install", "hello-world", "--dir", str(skills))
    assert result.exit_code == ExitCode.USAGE
    assert "'hello-world' is in 2 taps: team/hello-world, other/hello-world" in result.stderr
    assert not skills.exists()
    assert cli("install", "other/hello-world", "--dir", str(skills)).exit_code == 0
    assert lock_of(skills)["hello-world"]["namespace"] == "other"


def test_git_tap_install_and_update(cli: Cli, tmp_path: Path, skills: Path) -> None:
    work = make_git_repo(tmp_path / "work", {"git-skill": "2.0.0", "plain-skill": None})
    bare = tmp_path / "remote.git"
    git("clone", "--quiet", "--bare", str(work), str(bare))

    added = cli("tap", "add", str(bare), "--name", "mine")
    assert added.exit_code == 0, added.output
    assert "2 skills: git-skill, plain-skill" in added.stdout
    assert cli("install", "git-skill", "--dir", str(skills)).exit_code == 0
    assert cli("install", "mine/plain-skill", "--dir", str(skills)).exit_code == 0
    head = git("rev-parse", "HEAD", cwd=work)
    lock = lock_of(skills)
    assert lock["git-skill"] | {"installed_at": None} == {
        "kind": "git", "source": str(bare), "namespace": "mine", "name": "git-skill",
        "version": "2.0.0", "commit": head, "archive_sha256": None, "pinned": False,
        "content_sha256": lock["git-skill"]["content_sha256"], "installed_at": None}
    assert lock["plain-skill"]["version"] == f"0.0.0+g{head[:7]}"
    assert files_of(skills / "git-skill") == files_of(work / "skills" / "git-skill")

    (work / "skills" / "git-skill" / "SKILL.md").write_bytes(
        skill_md("git-skill", body="New body.").replace(b"metadata:\n",
                                                        b'metadata:\n  version: "2.1.0"\n'))
    git("commit", "--quiet", "-am", "new", cwd=work)
    git("push", "--quiet", str(bare), "main", cwd=work)
    updated = cli("update", "--dir", str(skills))
    assert updated.exit_code == 0, updated.output
    assert "git-skill: updated 2.0.0 -> 2.1.0" in updated.stdout
    assert f"plain-skill: up to date at 0.0.0+g{git('rev-parse', 'HEAD', cwd=work)[:7]}" in (
        updated.stdout)  # same content; its sha-derived version follows the tap's HEAD
    again = cli("update", "--dir", str(skills))
    assert "git-skill: up to date at 2.1.0" in again.stdout
    assert b"New body." in (skills / "git-skill" / "SKILL.md").read_bytes()
    assert lock_of(skills)["git-skill"]["commit"] == git("rev-parse", "HEAD", cwd=work)


def test_git_tap_without_skills_is_refused(cli: Cli, tmp_path: Path) -> None:
    work = tmp_path / "empty"
    git("init", "--quiet", "-b", "main", str(work))
    (work / "README.md").write_text("nothing\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "x", cwd=work)
    result = cli("tap", "add", str(work))
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "has no skills/*/SKILL.md" in result.stderr
    assert json.loads(cli("tap", "list", "--json").stdout) == []


# --- import ---------------------------------------------------------------------------------


def test_import_local_repo_and_git_url(cli: Cli, tmp_path: Path, client: TestClient) -> None:
    repo = make_git_repo(tmp_path / "repo", {"one-skill": None, "two-skill": "1.2.3"})
    result = cli("import", str(repo), "--namespace", "team", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [(r["name"], r["version"]) for r in body["published"]] == [("one-skill", "0.1.0"),
                                                                      ("two-skill", "1.2.3")]

    nested = tmp_path / "nested"
    write_skill(nested / "a" / "b", "deep-skill")
    write_skill(nested / "a" / "b" / "c" / "d", "too-deep-skill")
    git("init", "--quiet", "-b", "main", str(nested))
    git("add", "-A", cwd=nested)
    git("commit", "--quiet", "-m", "x", cwd=nested)
    bare = tmp_path / "nested.git"
    git("clone", "--quiet", "--bare", str(nested), str(bare))
    cloned = cli("import", bare.as_uri())
    assert cloned.exit_code == 0, cloned.output
    assert "[1/1] deep-skill ... published 0.1.0" in cloned.stderr
    names = [s["name"] for s in client.get("/api/v1/skills?namespace=team").json()["skills"]]
    assert names == ["deep-skill", "one-skill", "two-skill"]


# --- errors and exit codes ------------------------------------------------------------------


def test_unknown_skill(cli: Cli, skills: Path) -> None:
    result = cli("install", "team/no-such-skill", "--dir", str(skills))
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "error: " in result.stderr and "does not exist" in result.stderr
    assert cli("info", "team/no-such-skill").exit_code == ExitCode.NOT_FOUND
    assert cli("install", "a/b/c").exit_code == ExitCode.USAGE


def test_bad_token(cli: Cli, tmp_path: Path) -> None:
    source = write_skill(tmp_path / "src", "hello-world")
    result = cli("publish", str(source), auth="not-a-token")
    assert result.exit_code == ExitCode.AUTH
    assert "error: the token is not valid" in result.stderr
    missing = cli("publish", str(source), auth=None)
    assert missing.exit_code == ExitCode.AUTH
    assert "publishing needs a token" in missing.stderr
    assert "skills-hub login" in missing.stderr


def test_unreachable_server(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = CliRunner().invoke(main, ["--server", url, "search", "csv"])
    assert result.exit_code == ExitCode.UNREACHABLE
    assert f"error: cannot reach the registry at {url}" in result.stderr


def test_invalid_skill_is_refused_with_problems(cli: Cli, tmp_path: Path) -> None:
    parent = tmp_path / "mixed"
    write_skill(parent, "good-skill")
    bad = parent / "bad-skill"
    bad.mkdir()
    (bad / "SKILL.md").write_text("---\nname: Bad_Skill\n---\nbody\n")
    result = cli("publish", str(parent))
    assert result.exit_code == ExitCode.REFUSED
    assert "[1/2] bad-skill ... refused: SKILL.md has" in result.stderr
    assert "published 1, unchanged 0, refused 1" in result.stdout
    assert "refused bad-skill" in result.stdout
    assert "    - name: " in result.stdout and "    - description: " in result.stdout

    as_json = cli("publish", str(parent), "--json")
    body = json.loads(as_json.stdout)
    refused = body["refused"][0]
    assert refused["code"] == "invalid_skill"
    assert {p["field"] for p in refused["problems"]} >= {"name", "description"}
    assert [r["name"] for r in body["unchanged"]] == ["good-skill"]


def test_existing_version_is_refused(cli: Cli, tmp_path: Path) -> None:
    source = write_skill(tmp_path / "src", "hello-world")
    cli("publish", str(source), "--version", "2.0.0")
    write_skill(tmp_path / "src", "hello-world", body="changed")
    older = cli("publish", str(source), "--version", "1.0.0")
    assert older.exit_code == ExitCode.REFUSED
    assert "older than the latest version 2.0.0" in older.stdout


# --- login, search, info --------------------------------------------------------------------


def test_login_writes_config_0600_and_is_used(cli: Cli, token: str, tmp_path: Path) -> None:
    result = cli("login", "--server", SERVER, auth=None, input=token + "\n")
    assert result.exit_code == 0, result.output
    assert "publishes to 'team'" in result.stdout
    path = Path(os.environ["HOME"]) / ".config" / "skills-hub" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"server": SERVER, "tokens": {SERVER: token},
                                            "taps": []}
    published = cli("publish", str(write_skill(tmp_path / "src")), auth=None)
    assert published.exit_code == 0, published.output
    bad = cli("login", "--token", "wrong", auth=None)
    assert bad.exit_code == ExitCode.AUTH
    assert json.loads(path.read_text())["tokens"] == {SERVER: token}


def test_search_and_info_json(cli: Cli, tmp_path: Path) -> None:
    cli("publish", str(make_rich_skill(tmp_path / "src")), "--version", "1.0.0")
    found = cli("search", "csv", "--json")
    assert found.exit_code == 0
    assert [h["name"] for h in json.loads(found.stdout)["results"]] == ["csv-analysis"]
    text = cli("search", "csv")
    assert text.stdout.startswith("team/csv-analysis@1.0.0  Analyses CSV files")
    info = cli("info", "team/csv-analysis", "--json")
    body = json.loads(info.stdout)
    assert body["latest_version"] == "1.0.0"
    assert body["version"]["archives"]["tar.gz"]["sha256"]
    human = cli("info", "team/csv-analysis@1.0.0")
    assert "scripts/run.sh" in human.stdout and "(executable)" in human.stdout
    assert cli("info", "csv-analysis").exit_code == ExitCode.USAGE


def test_each_worker_listens_on_a_tcp_socket_of_its_own() -> None:
    """`serve --workers N`: every worker binds the port itself (SO_REUSEPORT), so the kernel
    spreads connections over them; the sockets carry their TCP protocol, so asyncio sets
    TCP_NODELAY (uvicorn's shared `socket.socket(family)` had proto 0: every kept-alive
    answer waited ~40 ms for a delayed ACK)."""
    from skills_hub.web.workers import listening_socket

    first = listening_socket("127.0.0.1", 0)
    port = first.getsockname()[1]
    second = listening_socket("127.0.0.1", port)
    try:
        for sock in (first, second):
            assert sock.proto == socket.IPPROTO_TCP and sock.family == socket.AF_INET
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert second.getsockname() == ("127.0.0.1", port)
    finally:
        first.close()
        second.close()
