"""The team scenario end to end: the operator adds accounts offline, a lead makes an org with
a private, two-person-reviewed namespace, colleagues log in with their own passwords, a
publish waits for review, the lead approves it, `git log` shows who did what, a removed
member loses access at once, a revoked token gets 401, and the audit log holds it all.

Everything goes through the real `skills-hub` console script, one subprocess per command,
each person with their own HOME (and so their own saved login), against the real server on
a loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from skills_hub.cli import ExitCode
from tests.conftest import write_skill

from .live import Server, start_server

PASSWORDS = {name: f"{name} rides the correct horse battery staple"
             for name in ("lead", "ann", "ben", "cat", "dev", "eli")}
NAMES = {"lead": "Lee Lead", "ann": "Ann Archer", "ben": "Ben Baker", "cat": "Cat Cole",
         "dev": "Dev Dale", "eli": "Eli Eddy"}
ROLES = {"ann": "publisher", "ben": "publisher", "cat": "maintainer", "dev": "reader",
         "eli": "publisher"}
SKILL = "deploy-checklist"
CLI = Path(sys.executable).parent / "skills-hub"


def email(name: str) -> str:
    return f"{name}@acme.example"


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Our environment without any SKILLS_HUB_/XDG_/GIT_ setting, with its own HOME."""
    home.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SKILLS_HUB_", "XDG_", "GIT_"))}
    env.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
                "NO_COLOR": "1"})
    env.update(extra)
    return env


def skills_hub(env: dict[str, str], *args: str, input: str | None = None,
               expect: int = 0) -> subprocess.CompletedProcess[str]:
    """`skills-hub ARGS`; asserts its exit status."""
    done = subprocess.run([str(CLI), *args], env=env, input=input, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == expect, (
        f"skills-hub {' '.join(args)}: exit {done.returncode}, expected {expect}\n"
        f"stdout: {done.stdout}\nstderr: {done.stderr}")
    return done


class Person:
    """One person at their own machine: their own HOME, SKILLS_HUB_URL set."""

    def __init__(self, name: str, root: Path, server: Server) -> None:
        self.name = name
        self.home = root / "people" / name
        self.env = cli_env(self.home, SKILLS_HUB_URL=server.url)

    def __call__(self, *args: str, input: str | None = None,
                 expect: int = 0) -> subprocess.CompletedProcess[str]:
        return skills_hub(self.env, *args, input=input, expect=expect)

    def login(self) -> subprocess.CompletedProcess[str]:
        return self("login", "--username", self.name, "--password-stdin",
                    input=PASSWORDS[self.name] + "\n")

    @property
    def saved_token(self) -> str:
        config = json.loads((self.home / ".config" / "skills-hub" / "config.json").read_text())
        return str(next(iter(config["tokens"].values())))


def add_user(operator_env: dict[str, str], data: Path, name: str) -> None:
    added = skills_hub(operator_env, "user", "add", name, "--password-stdin", "--display-name",
                       NAMES[name], "--email", email(name), "--home", str(data),
                       input=PASSWORDS[name] + "\n")
    assert f"added user {name}; log in with `skills-hub login --username {name}`" \
        in added.stdout


def git(env: dict[str, str], *args: str, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=30)


@pytest.mark.slow
def test_a_team_shares_a_private_reviewed_namespace(tmp_path: Path) -> None:
    assert CLI.exists(), f"{CLI} is missing: `pip install -e .` into the venv"
    started = time.monotonic()
    data = tmp_path / "data"
    operator = cli_env(tmp_path / "operator")

    # 1. The operator adds accounts offline: some before the server starts, some while.
    for name in ("lead", "ann", "ben"):
        add_user(operator, data, name)
    server = start_server(data)
    try:
        for name in ("cat", "dev", "eli"):
            add_user(operator, data, name)
        listed = json.loads(skills_hub(operator, "user", "list", "--json", "--home",
                                       str(data)).stdout)
        assert {u["username"] for u in listed} == set(PASSWORDS)

        people = {name: Person(name, tmp_path, server) for name in PASSWORDS}
        lead, ann, dev, eli = people["lead"], people["ann"], people["dev"], people["eli"]
        anonymous = Person("nobody", tmp_path, server)

        # 2. The lead logs in with the password and sets up the org.
        logged = lead.login()
        assert f"logged in to {server.url} as lead" in logged.stdout
        assert "acme" in lead("org", "create", "acme").stdout
        for name, role in ROLES.items():
            added = lead("member", "add", "acme", name, "--role", role)
            assert f"{name} is {role} in acme" in added.stdout
        assert "acme: releases review, two-person" in lead(
            "namespace", "policy", "acme", "review", "--two-person").stdout
        assert "acme: visibility private" in lead("namespace", "visibility", "acme",
                                                  "private").stdout
        settings = json.loads(lead("namespace", "show", "acme", "--json").stdout)
        assert (settings["visibility"], settings["release_policy"], settings["two_person"]) \
            == ("private", "review", True)

        # 3. Each colleague logs in with their own password: their own token, in their HOME.
        def log_in(name: str) -> dict[str, object]:
            assert f"as {name}" in people[name].login().stdout
            return dict(json.loads(people[name]("whoami", "--json").stdout))

        with ThreadPoolExecutor(len(ROLES)) as pool:  # at their own machines, at once
            whos = dict(zip(ROLES, pool.map(log_in, ROLES), strict=True))
        for name, who in whos.items():
            assert (who["username"], who["email"], who["display_name"]) == \
                (name, email(name), NAMES[name])
        tokens = {name: person.saved_token for name, person in people.items()}
        assert len(set(tokens.values())) == len(tokens)

        # 4. ann publishes: it waits for review; nobody can install it yet.
        source = write_skill(tmp_path / "src", SKILL,
                             description="Steps to check before every deploy.")
        published = ann("publish", str(source), "--namespace", "acme", "--version", "1.0.0")
        assert f"{SKILL} 1.0.0 waits for review (release " in published.stdout, published
        release_id = published.stdout.split("(release ")[1].split(")")[0]
        hidden = dev("info", f"acme/{SKILL}", expect=ExitCode.NOT_FOUND)
        assert f"skill acme/{SKILL} does not exist" in hidden.stderr, hidden
        dev("install", f"acme/{SKILL}", "--dir", str(dev.home / "skills"),
            expect=ExitCode.NOT_FOUND)
        assert not (dev.home / "skills" / SKILL).exists()

        queue = lead("review")
        assert f"{release_id}  release  acme/{SKILL}@1.0.0  by ann" in queue.stdout
        refused = ann("review", "approve", release_id, expect=ExitCode.AUTH)
        # A publisher may not review at all (the role refuses it before the two-person rule).
        assert "reviewing in 'acme' needs the 'maintainer' role" in refused.stderr, refused
        approved = lead("review", "approve", release_id, "--comment", "ship it")
        assert f"approved: acme/{SKILL} 1.0.0 is published" in approved.stdout
        assert "nothing waits for review" in lead("review").stderr

        shown = dev("info", f"acme/{SKILL}")
        assert shown.stdout.startswith(f"acme/{SKILL} 1.0.0  (latest 1.0.0)")
        installed = dev("install", f"acme/{SKILL}", "--dir", str(dev.home / "skills"))
        assert f"installed acme/{SKILL} 1.0.0" in installed.stdout, installed
        assert (dev.home / "skills" / SKILL / "SKILL.md").is_file()
        anonymous("info", f"acme/{SKILL}", expect=ExitCode.NOT_FOUND)  # private

        # 5. git log of the namespace: ann authored it, the lead reviewed it.
        git_env = cli_env(tmp_path / "git-home")
        authed = server.url.replace("http://", f"http://x:{tokens['dev']}@")
        assert git(git_env, "clone", "-q", f"{server.url}/git/acme.git",
                   str(tmp_path / "denied")).returncode != 0
        clone = git(git_env, "clone", "-q", f"{authed}/git/acme.git", str(tmp_path / "acme"))
        assert clone.returncode == 0, clone.stderr
        log = git(git_env, "log", "-1", "--format=%an <%ae>%n%B", cwd=tmp_path / "acme")
        assert log.returncode == 0, log.stderr
        assert log.stdout.startswith(f"{NAMES['ann']} <{email('ann')}>\n"), log.stdout
        assert f"Reviewed-by: {NAMES['lead']} <{email('lead')}>" in log.stdout, log.stdout

        # 6. The lead removes eli: eli cannot read the private namespace any more, at once.
        eli("info", f"acme/{SKILL}")
        assert "removed eli from acme" in lead("member", "remove", "acme", "eli").stdout
        eli("info", f"acme/{SKILL}", expect=ExitCode.NOT_FOUND)
        as_eli = server.url.replace("http://", f"http://x:{tokens['eli']}@")
        assert git(git_env, "clone", "-q", f"{as_eli}/git/acme.git",
                   str(tmp_path / "eli-clone")).returncode != 0
        # ... and eli revokes their own token: the next command with it gets 401, "revoked".
        mine = json.loads(eli("token", "list", "--json").stdout)
        assert [t["account"] for t in mine] == ["eli"], mine
        assert f"revoked token {mine[0]['id']}" in eli("token", "revoke",
                                                       str(mine[0]["id"])).stdout
        denied = eli("whoami", expect=ExitCode.AUTH)
        assert "revoked" in denied.stderr, denied
        dev("whoami")  # the others' tokens still work

        # 7. The audit log of the org, by its owner: every change of state, with actors.
        events = json.loads(lead("audit", "--org", "acme", "--json", "--all").stdout)["events"]
        happened = [(e["actor"], e["action"], e["target"]) for e in reversed(events)]
        expected = [
            ("lead", "org.create", "acme"),
            *[("lead", "member.add", name) for name in ROLES],
            ("lead", "namespace.release_policy", "acme"),
            ("lead", "namespace.visibility", "acme"),
            ("ann", "release.submit", f"acme/{SKILL}@1.0.0"),
            ("ann", "publish", f"acme/{SKILL}@1.0.0"),
            ("lead", "release.approve", f"acme/{SKILL}@1.0.0"),
            ("lead", "member.remove", "eli"),
        ]
        missing = [e for e in expected if e not in happened]
        assert not missing, f"missing {missing} in:\n" + "\n".join(map(str, happened))
        assert [e for e in happened if e in expected] == expected, happened
        assert all(e["org"] == "acme" for e in events)
        not_owner = people["ben"]("audit", "--org", "acme", expect=ExitCode.AUTH)
        assert not_owner.stderr.startswith("error: ")
    finally:
        server.stop()
    # A budget that catches a hang or a many-fold slowdown,
    # with room for the other test process sharing the cores (`make test` runs two).
    assert time.monotonic() - started < 150
