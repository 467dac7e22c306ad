"""Accounts, orgs, roles, scoped tokens, required review and the audit log, through the CLI
against the in-process app (CliRunner + TestClient), as people and CI use them."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from skills_hub.cli import SCOPES, ExitCode, main
from skills_hub.client.hub import HubClient
from skills_hub.services import Registry
from tests.conftest import write_skill

SERVER = "http://testserver"
PASSWORD = "correct horse battery staple"
Run = Callable[..., Result]


@pytest.fixture
def run(client: TestClient) -> Run:
    """`skills-hub --server SERVER [--token T] ARGS` against the in-process app."""

    def invoke(*args: str, token: str | None = None, input: str | None = None) -> Result:
        base = ["--server", SERVER] + (["--token", token] if token else [])
        return CliRunner().invoke(main, [*base, *args], obj={"http": client}, input=input,
                                  catch_exceptions=False)

    return invoke


@pytest.fixture
def people(registry: Registry, client: TestClient) -> dict[str, str]:
    """alice (owner of org acme), bob (publisher), carol (maintainer), root (operator):
    a password-login token for each."""
    for name in ("alice", "bob", "carol"):
        registry.add_user(name, password=PASSWORD, display_name=name.title())
    registry.add_user("root", password=PASSWORD, operator=True)
    tokens = {name: login_token(client, name) for name in ("alice", "bob", "carol", "root")}
    return tokens


@pytest.fixture
def acme(run: Run, people: dict[str, str]) -> dict[str, str]:
    assert run("org", "create", "acme", token=people["alice"]).exit_code == 0
    for name, role in (("bob", "publisher"), ("carol", "maintainer")):
        added = run("member", "add", "acme", name, "--role", role, token=people["alice"])
        assert added.exit_code == 0, added.output
    return people


def login_token(client: TestClient, username: str) -> str:
    """A password-login token with every scope (the default is read and publish)."""
    answer = client.post("/api/v1/auth/login", json={"username": username,
                                                     "password": PASSWORD,
                                                     "scopes": list(SCOPES)})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def config_file() -> Path:
    return Path(os.environ["HOME"]) / ".config" / "skills-hub" / "config.json"


def last_line(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


# --- accounts, login, whoami -----------------------------------------------------------------


def test_user_add_offline_then_password_login_whoami_and_logout(run: Run, tmp_path: Path,
                                                                 registry: Registry) -> None:
    home = str(tmp_path / "data")
    added = run("user", "add", "alice", "--password-stdin", "--display-name", "Alice A",
                "--email", "alice@example.org", "--operator", "--home", home,
                input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "added user alice (operator)" in added.stdout
    assert "skills-hub login --username alice" in added.stdout
    weak = run("user", "add", "bob", "--password-stdin", "--home", home, input="short\n")
    assert weak.exit_code == ExitCode.REFUSED
    assert "too weak" in weak.stderr and "password: shorter than" in weak.stderr
    listed = run("user", "list", "--json", "--home", home)
    assert [(u["username"], u["operator"]) for u in json.loads(listed.stdout)] == [
        ("alice", True)]
    assert "alice  user  Alice A  <alice@example.org>  operator" in \
        run("user", "list", "--home", home).stdout

    wrong = run("login", "--username", "alice", "--password-stdin", input="not the password\n")
    assert wrong.exit_code == ExitCode.AUTH
    assert wrong.stderr.startswith("error: ")
    assert not config_file().exists()

    login = run("login", "--username", "alice", "--password-stdin", "--label", "laptop",
                input=PASSWORD + "\n")
    assert login.exit_code == 0, login.output
    assert f"logged in to {SERVER} as alice" in login.stdout
    assert stat.S_IMODE(config_file().stat().st_mode) == 0o600
    saved = json.loads(config_file().read_text())
    assert saved["server"] == SERVER and saved["tokens"][SERVER]
    assert set(saved["sessions"]) == {SERVER}

    who = run("whoami")  # no --token: the saved one
    assert who.exit_code == 0, who.output
    assert who.stdout.startswith(f"alice (user, operator) on {SERVER}")
    assert "Alice A <alice@example.org>" in who.stdout
    assert "authenticated by: token" in who.stdout
    body = json.loads(run("whoami", "--json").stdout)
    assert body["username"] == "alice" and body["operator"] is True
    tokens = json.loads(run("token", "list", "--json").stdout)
    # A password login is the person at the keyboard: every scope, like a session.
    assert [(t["label"], t["scopes"]) for t in tokens] == [
        ("laptop", ["admin", "publish", "read", "review"])]
    made = run("org", "create", "acme")
    assert made.exit_code == 0, made.output

    out = run("logout")
    assert out.exit_code == 0, out.output
    assert "removed its token" in out.stdout and "revoked on the server" in out.stdout
    saved = json.loads(config_file().read_text())
    assert saved["tokens"] == {} and "sessions" not in saved
    row = registry.store.tokens.token_by_id(int(tokens[0]["id"]))
    assert row is not None and row.revoked_at is not None
    assert "not logged in" in run("logout").stdout
    assert run("whoami").exit_code == ExitCode.AUTH


def test_login_with_a_token_still_prompts_and_device_login_needs_oidc(
        run: Run, people: dict[str, str]) -> None:
    prompted = run("login", input=people["bob"] + "\n")
    assert prompted.exit_code == 0, prompted.output
    assert "as bob" in prompted.stdout and "publishes to 'bob'" in prompted.stdout
    assert "sessions" not in json.loads(config_file().read_text())
    both = run("login", "--token", people["bob"], "--username", "bob")
    assert both.exit_code == ExitCode.USAGE
    device = run("login", "--device")
    assert device.exit_code == ExitCode.NOT_FOUND
    assert "does not offer browser sign-in" in device.stderr
    assert "login --username" in device.stderr


def test_device_login_polls_until_approved(run: Run, people: dict[str, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    answers: list[dict[str, Any]] = [
        {"status": "authorization_pending"}, {"status": "slow_down"},
        {"token": people["carol"], "token_info": {"id": 99}}]
    waits: list[float] = []
    monkeypatch.setattr(HubClient, "device_start", lambda self: {
        "device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": "https://id/device",
        "verification_uri_complete": "https://id/device?code=ABCD-EFGH", "interval": 1,
        "expires_in": 600})
    monkeypatch.setattr(HubClient, "device_token", lambda self, code, label=None, scopes=None:
                        answers.pop(0))
    monkeypatch.setattr("skills_hub.cli.time.sleep", waits.append)
    done = run("login", "--device")
    assert done.exit_code == 0, done.output
    assert "open https://id/device and enter the code ABCD-EFGH" in done.stderr
    assert waits == [1, 1, 6]  # slow_down adds 5 s
    assert "as carol" in done.stdout
    assert json.loads(config_file().read_text())["sessions"] == {SERVER: "99"}


# --- tokens ----------------------------------------------------------------------------------


def test_token_create_list_revoke_and_the_revoked_token_is_refused(
        run: Run, people: dict[str, str]) -> None:
    alice = people["alice"]
    created = run("token", "create", "--label", "ci read", "--scope", "read", "--days", "30",
                  "--namespace", "alice", "--token", alice)  # --token after the subcommand
    assert created.exit_code == 0, created.output
    assert "It is shown once" in created.stderr and "read on alice" in created.stderr
    secret = last_line(created)
    assert secret not in created.stderr

    rows = json.loads(run("token", "list", "--json", token=alice).stdout)
    made = next(r for r in rows if r["label"] == "ci read")
    assert made["scopes"] == ["read"] and made["namespaces"] == ["alice"]
    assert made["expires_at"] and secret.startswith(made["prefix"])
    text = run("token", "list", token=alice).stdout
    assert f"{made['id']}  {made['prefix']}…  alice 'ci read'  read on alice" in text

    who = json.loads(run("whoami", "--json", token=secret).stdout)
    assert who["scopes"] == ["read"] and who["namespaces"] == ["alice"]

    revoked = run("token", "revoke", str(made["id"]), token=alice)
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked token {made['id']}" in revoked.stdout
    refused = run("whoami", token=secret)
    assert refused.exit_code == ExitCode.AUTH
    assert "revoked" in refused.stderr
    again = run("token", "revoke", str(made["id"]), token=alice)
    assert again.exit_code == ExitCode.REFUSED and "already revoked" in again.stderr
    assert "REVOKED" in run("token", "list", token=alice).stdout


def test_offline_namespace_token_still_works_and_flags_do_not_mix(run: Run,
                                                                   tmp_path: Path) -> None:
    home = str(tmp_path / "data")
    made = run("token", "create", "team", "--label", "ops", "--home", home)
    assert made.exit_code == 0, made.output
    assert "Created a token for namespace 'team'" in made.stderr
    assert run("whoami", token=last_line(made)).exit_code == 0
    mixed = run("token", "create", "team", "--scope", "read", "--home", home)
    assert mixed.exit_code == ExitCode.USAGE and "--scope" in mixed.stderr
    assert run("token", "create", "--private").exit_code == ExitCode.USAGE
    assert run("token", "create").exit_code == ExitCode.AUTH  # the API path needs a token


# --- orgs and members ------------------------------------------------------------------------


def test_org_members_roles_and_the_last_owner_cannot_leave(run: Run,
                                                           acme: dict[str, str]) -> None:
    alice = acme["alice"]
    listed = json.loads(run("member", "list", "acme", "--json", token=alice).stdout)
    assert {m["username"]: m["role"] for m in listed} == {
        "alice": "owner", "bob": "publisher", "carol": "maintainer"}
    role = run("member", "role", "acme", "bob", "maintainer", token=alice)
    assert role.exit_code == 0 and "bob is maintainer in acme" in role.stdout
    assert "bob  maintainer  Bob" in run("member", "list", "acme", token=alice).stdout
    assert run("member", "role", "acme", "bob", "boss", token=alice).exit_code == \
        ExitCode.USAGE
    not_owner = run("member", "add", "acme", "root", token=acme["bob"])
    assert not_owner.exit_code == ExitCode.AUTH

    last = run("member", "remove", "acme", "alice", token=alice)
    assert last.exit_code == ExitCode.REFUSED
    assert "alice is the last owner of acme" in last.stderr
    assert "hint: make someone else an owner first" in last.stderr
    removed = run("member", "remove", "acme", "bob", token=alice)
    assert removed.exit_code == 0 and "removed bob from acme" in removed.stdout
    assert "bob" not in json.dumps(json.loads(run("member", "list", "acme", "--json",
                                                  token=alice).stdout))

    who = json.loads(run("whoami", "--json", token=acme["carol"]).stdout)
    assert who["orgs"] == [{"org": "acme", "role": "maintainer"}]
    assert "orgs: acme (maintainer)" in run("whoami", token=acme["carol"]).stdout


def test_service_account_tokens_and_invitations(run: Run, acme: dict[str, str]) -> None:
    alice = acme["alice"]
    made = run("org", "service-account", "acme", "ci", "--role", "publisher", token=alice)
    assert made.exit_code == 0, made.output
    assert "created service account acme.ci (publisher)" in made.stdout
    ci = run("token", "create", "--account", "acme.ci", "--label", "github", token=alice)
    assert ci.exit_code == 0, ci.output
    who = json.loads(run("whoami", "--json", token=last_line(ci)).stdout)
    assert who["username"] == "acme.ci" and who["kind"] == "service"
    org_tokens = json.loads(run("token", "list", "--org", "acme", "--json", token=alice).stdout)
    assert [(t["account"], t["label"]) for t in org_tokens] == [("acme.ci", "github")]
    assert run("token", "list", "--org", "acme", token=acme["bob"]).exit_code == ExitCode.AUTH

    invited = run("org", "invite", "acme", "--role", "publisher", "--days", "3", token=alice)
    assert invited.exit_code == 0, invited.output
    url = last_line(invited)
    assert url.startswith(f"{SERVER}/") and "skills-hub org join" in invited.stderr
    joined = run("org", "join", url, "--username", "dave", "--password-stdin",
                 "--display-name", "Dave", input=f"{PASSWORD}\n")
    assert joined.exit_code == 0, joined.output
    assert "dave is now a member" in joined.stdout
    assert "skills-hub login --username dave" in joined.stdout
    members = json.loads(run("member", "list", "acme", "--json", token=alice).stdout)
    assert {"username": "dave", "role": "publisher"}.items() <= next(
        m for m in members if m["username"] == "dave").items()
    reused = run("org", "join", url, "--username", "eve", "--password-stdin",
                 input=f"{PASSWORD}\n")
    assert reused.exit_code != 0 and reused.stderr.startswith("error: ")

    # the invitee may also be signed in already and join with the bare secret
    secret = json.loads(run("org", "invite", "acme", "--json", token=alice).stdout)["secret"]
    as_root = run("org", "join", secret, token=acme["root"])
    assert as_root.exit_code == 0 and "root is now a member" in as_root.stdout

    gone = run("org", "create", "scratch", token=alice)
    assert gone.exit_code == 0
    deleted = run("org", "delete", "scratch", "--yes", token=alice)
    assert deleted.exit_code == 0 and "deleted org scratch" in deleted.stdout


# --- namespaces and required review ----------------------------------------------------------


def test_required_review_publish_waits_then_a_maintainer_approves(run: Run, tmp_path: Path,
                                                                  acme: dict[str, str]) -> None:
    alice, bob, carol = acme["alice"], acme["bob"], acme["carol"]
    policy = run("namespace", "policy", "acme", "review", "--two-person", token=alice)
    assert policy.exit_code == 0, policy.output
    assert "acme: releases review, two-person" in policy.stdout
    shown = run("namespace", "show", "acme", token=alice)
    assert "owner org acme" in shown.stdout and "releases: review (two people" in shown.stdout
    assert json.loads(run("namespace", "show", "acme", "--json").stdout)["release_policy"] \
        == "review"
    assert run("namespace", "policy", "acme", "direct", token=bob).exit_code == ExitCode.AUTH

    source = write_skill(tmp_path / "src", "hello-world")
    checked = run("publish", str(source), "--namespace", "acme", "--version", "1.0.0",
                  "--dry-run", token=bob)
    assert "hello-world 1.0.0 would be published: it would wait for a maintainer's review" \
        in checked.stdout
    published = run("publish", str(source), "--namespace", "acme", "--version", "1.0.0",
                    token=bob)
    assert published.exit_code == 0, published.output
    assert "published 0, unchanged 0, refused 0, waiting for review 1" in published.stdout
    assert "hello-world 1.0.0 waits for review (release " in published.stdout
    assert "`skills-hub review`" in published.stdout
    assert "[1/1] hello-world ... 1.0.0 waits for review" in published.stderr
    release_id = published.stdout.split("(release ")[1].split(")")[0]
    again = run("publish", str(source), "--namespace", "acme", "--json", "--version", "1.0.0",
                token=bob)
    assert again.exit_code == ExitCode.REFUSED
    assert json.loads(again.stdout)["refused"][0]["message"] == \
        "hello-world 1.0.0 already waits for review"
    assert run("info", "acme/hello-world", token=carol).exit_code == ExitCode.NOT_FOUND

    queue = run("review", token=carol)
    assert queue.exit_code == 0, queue.output
    assert f"{release_id}  release  acme/hello-world@1.0.0  by bob  checks safe" in queue.stdout
    assert json.loads(run("review", "--json", "--namespace", "acme",
                          token=carol).stdout)["releases"][0]["id"] == release_id
    detail = run("review", "show", release_id, token=carol)
    assert detail.exit_code == 0, detail.output
    assert "a new skill (no current version)" in detail.stdout
    assert "+name: hello-world" in detail.stdout
    assert run("review", "approve", release_id, token=bob).exit_code == ExitCode.AUTH

    approved = run("review", "approve", release_id, "--comment", "looks good", token=carol)
    assert approved.exit_code == 0, approved.output
    assert "approved: acme/hello-world 1.0.0 is published" in approved.stdout
    info = run("info", "acme/hello-world", token=carol)
    assert info.exit_code == 0 and info.stdout.startswith("acme/hello-world 1.0.0")
    assert "nothing waits for review" in run("review", token=carol).stderr
    mine = run("releases", "acme", "--mine", token=bob)
    assert "approved by carol: looks good" in mine.stdout


def test_reject_with_a_comment_the_author_reads(run: Run, tmp_path: Path,
                                                acme: dict[str, str]) -> None:
    bob, carol = acme["bob"], acme["carol"]
    assert run("namespace", "policy", "acme", "review", token=acme["alice"]).exit_code == 0
    source = write_skill(tmp_path / "src", "hello-world")
    sent = json.loads(run("publish", str(source), "-n", "acme", "--json", token=bob).stdout)
    release_id = sent["pending"][0]["release"]["id"]
    assert [r["id"] for r in json.loads(run("releases", "acme", "--state", "pending", "--json",
                                            token=carol).stdout)] == [release_id]
    missing = run("review", "reject", release_id, token=carol)
    assert missing.exit_code == ExitCode.USAGE and "--comment" in missing.stderr
    rejected = run("review", "reject", release_id, "--comment", "add tests first",
                   token=carol)
    assert rejected.exit_code == 0, rejected.output
    assert "rejected: acme/hello-world 0.1.0 (add tests first)" in rejected.stdout
    assert "rejected by carol: add tests first" in run("releases", "acme", "--mine",
                                                       token=bob).stdout
    assert run("info", "acme/hello-world", token=carol).exit_code == ExitCode.NOT_FOUND
    assert run("review", "approve", release_id, token=carol).exit_code == ExitCode.REFUSED


def test_visibility(run: Run, tmp_path: Path, acme: dict[str, str]) -> None:
    alice = acme["alice"]
    source = write_skill(tmp_path / "src", "hello-world")
    assert run("publish", str(source), "-n", "acme", token=alice).exit_code == 0
    done = run("namespace", "visibility", "acme", "private", token=alice)
    assert done.exit_code == 0 and "acme: visibility private" in done.stdout
    assert run("info", "acme/hello-world").exit_code == ExitCode.NOT_FOUND
    assert run("info", "acme/hello-world", token=acme["bob"]).exit_code == 0
    assert run("namespace", "visibility", "acme", "secret", token=alice).exit_code == \
        ExitCode.USAGE


# --- audit and global options ----------------------------------------------------------------


def test_audit_lists_pages_and_exports_jsonl(run: Run, acme: dict[str, str]) -> None:
    root = acme["root"]
    every = json.loads(run("audit", "--json", "--all", token=root).stdout)
    actions = [e["action"] for e in every["events"]]
    assert {"org.create", "member.add"} <= set(actions)
    assert every["next_cursor"] is None
    text = run("audit", "--action", "org.create", token=root)
    assert text.exit_code == 0, text.output
    assert "alice  org.create  acme" in text.stdout

    first = run("audit", "--limit", "1", token=root)
    assert len(first.stdout.splitlines()) == 1 and "more: --cursor" in first.stderr
    paged = run("audit", "--limit", "1", "--all", "--jsonl", token=root)
    lines = [json.loads(line) for line in paged.stdout.splitlines()]
    assert [e["id"] for e in lines] == [e["id"] for e in every["events"]]
    mine = json.loads(run("audit", "--org", "acme", "--json", token=acme["alice"]).stdout)
    assert mine["events"] and all(e["org"] == "acme" for e in mine["events"])
    assert run("audit", token=acme["bob"]).exit_code == ExitCode.AUTH


def test_global_options_after_the_subcommand(run: Run, client: TestClient, token: str,
                                             tmp_path: Path) -> None:
    source = write_skill(tmp_path / "src", "hello-world")

    def raw(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), obj={"http": client},
                                  catch_exceptions=False)

    published = raw("publish", str(source), "--token", token, "--server", SERVER)
    assert published.exit_code == 0, published.output
    assert "published 1" in published.stdout
    assert raw("--token", "bad", "whoami", "--token", token, "--server", SERVER
               ).exit_code == 0  # the later one wins
    assert raw("tap", "list", "--server", SERVER, "--token", token).exit_code == 0
    listed = raw("token", "--token", token, "list", "--server", SERVER)  # on a sub-group
    assert listed.exit_code == 0 and "team.ci" in listed.stdout
    found = raw("search", "hello", "--json", f"--server={SERVER}")
    assert [h["name"] for h in json.loads(found.stdout)["results"]] == ["hello-world"]
    queue = raw("review", "--token", token, "--server", SERVER)
    assert queue.exit_code == 0 and "nothing waits for review" in queue.stderr
    assert "--token" not in raw("publish", "--help").stdout  # hidden
    assert raw("whoami", "--server", SERVER).exit_code == ExitCode.AUTH  # no token anywhere


def test_review_also_takes_proposals_old_and_new_forms(run: Run, token: str,
                                                        tmp_path: Path) -> None:
    folder = write_skill(tmp_path / "src", "weekly-report",
                         body="## Steps\n\n1. Collect the updates.\n2. Send the report.\n")
    assert run("publish", str(folder), "--version", "1.0.0", token=token).exit_code == 0
    edit = json.dumps([{"op": "insert_after", "target": "1. Collect the updates.\n",
                        "content": "1b. Name an owner for each item.\n"}])
    ids: list[str] = []
    for _ in range(2):
        opened = run("propose", "team/weekly-report@1.0.0", "-", "--reasoning", "owners",
                     token=token, input=edit.replace("owner", f"owner {len(ids)}"))
        assert opened.exit_code == 0, opened.output
        ids.append(opened.stdout.split()[2])
    queue = run("review", token=token)
    assert f"{ids[0]}  proposal  team/weekly-report@1.0.0" in queue.stdout
    shown = run("review", "show", "team/weekly-report", ids[0], token=token)
    assert "+1b. Name an owner 0 for each item." in shown.stdout
    rejected = run("review", "team/weekly-report", ids[1], "reject", "--comment", "dup",
                   token=token)  # the form from before `review` was a group
    assert rejected.exit_code == 0 and "rejected by" in rejected.stdout
    accepted = run("review", "approve", "team/weekly-report", ids[0], "--version", "1.1.0",
                   token=token)
    assert accepted.exit_code == 0, accepted.output
    assert "accepted -> 1.1.0" in accepted.stdout
    assert run("review", "approve", ids[0], "--version", "1.2.0",
               token=token).exit_code == ExitCode.USAGE
