"""The real `clawhub` CLI (npm `clawhub` 0.23.3) against a real server on loopback.

Pointed at us three ways: `CLAWHUB_REGISTRY=<server>/clawhub` (every namespace),
`CLAWHUB_REGISTRY=<server>/clawhub/<namespace>` (one), and `CLAWHUB_SITE=<server>`
(discovery through /.well-known/clawhub.json). The token goes in with `clawhub login
--token`, which writes the CLI's config file under the isolated HOME; 0.23.3 reads no token
from the environment. One server serves the module; each test has its own skill names,
client HOME and work folder.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .conftest import skill_md
from .live import Server, client_env, client_path, make_token, start_server
from .test_publish_checks import DROPPER, SHELLY

pytestmark = pytest.mark.slow


def folder_files(root: Path) -> dict[str, bytes]:
    """Every file under `root` but the CLI's own `.clawhub/` bookkeeping."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".clawhub" not in p.relative_to(root).parts}


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


@dataclass
class Hub:
    server: Server
    tokens: dict[str, str]
    tmp: Path

    @property
    def url(self) -> str:
        return self.server.url

    def publish(self, namespace: str, files: dict[str, bytes],
                version: str | None = None) -> dict[str, object]:
        """A version through the native API."""
        response = httpx.post(
            f"{self.url}/api/v1/namespaces/{namespace}/skills", headers=self.auth(namespace),
            files=[("files", (path, data)) for path, data in files.items()],
            params={"version": version} if version else None, timeout=60)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def auth(self, namespace: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[namespace]}"}

    def native(self, path: str) -> httpx.Response:
        return httpx.get(self.url + "/api/v1" + path, timeout=30)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("clawhub")
    with pytest.MonkeyPatch.context() as patch:  # the server must not inherit our settings
        for key in ("SKILLS_HUB_PUBLIC_URL", "SKILLS_HUB_SEED", "SKILLS_HUB_STRICT"):
            patch.delenv(key, raising=False)
        server = start_server(tmp / "data")
    try:
        tokens = {ns: make_token(server.home, ns) for ns in ("team", "rival")}
        yield Hub(server, tokens, tmp)
    finally:
        server.stop()


class Cli:
    """`clawhub` with its own HOME (and so its own config file) and work folder."""

    def __init__(self, hub: Hub, name: str, **env: str) -> None:
        self.home = hub.tmp / f"{name}-home"
        self.workdir = hub.tmp / f"{name}-work"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = client_env(self.home, **env)

    def __call__(self, *args: str, ok: bool = True) -> str:
        done = subprocess.run(
            [str(client_path("npm", "clawhub")), "--workdir", str(self.workdir), "--no-input",
             *args], env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=60)
        output = done.stdout + done.stderr
        assert (done.returncode == 0) == ok, f"clawhub {' '.join(args)}:\n{output}"
        return output

    def login(self, token: str) -> str:
        return self("login", "--token", token, "--no-browser")

    @property
    def skills(self) -> Path:
        return self.workdir / "skills"

    def lock(self) -> dict[str, dict[str, object]]:
        return dict(json.loads((self.workdir / ".clawhub" / "lock.json").read_text())["skills"])


def registry(hub: Hub, namespace: str | None = None) -> dict[str, str]:
    root = f"{hub.url}/clawhub" + (f"/{namespace}" if namespace else "")
    return {"CLAWHUB_REGISTRY": root}


# -- publish, search, install, update ---------------------------------------------------------

GREETER = {
    "SKILL.md": skill_md("greeter", "Greets people by name in their own language."),
    "scripts/greet.sh": b"#!/usr/bin/env bash\necho \"Hello, $1\"\n",
    "references/Languages.md": b"# Languages\n\nEnglish, French, Welsh.\n",
}


def test_publish_search_install_and_update(hub: Hub) -> None:
    cli = Cli(hub, "flow", **registry(hub))
    assert "Logged in as @team" in cli.login(hub.tokens["team"])
    assert cli("whoami").strip().endswith("team")

    # Publish from a folder with our token: a version the native API serves.
    source = write_folder(hub.tmp / "src" / "greeter", GREETER)
    assert "Published greeter@1.0.0" in cli("publish", str(source))
    native = hub.native("/skills/team/greeter/versions/1.0.0").json()
    assert {f["path"] for f in native["files"]} == set(GREETER)
    for path, data in GREETER.items():
        assert hub.native(f"/skills/team/greeter/versions/1.0.0/files/{path}").content == data
    # Publishing the same folder again is recognised by its fingerprint.
    assert "already published" in cli("publish", str(source))

    found = cli("search", "greets people")
    assert "greeter v1.0.0" in found and "@team" in found

    # Install: every file byte-equal to what was published.
    assert "Installed greeter v1.0.0" in cli("install", "greeter")
    assert folder_files(cli.skills / "greeter") == GREETER
    assert cli.lock()["greeter"]["version"] == "1.0.0"
    origin = json.loads((cli.skills / "greeter" / ".clawhub" / "origin.json").read_text())
    resolved = httpx.get(f"{hub.url}/clawhub/api/v1/resolve", params={
        "slug": "greeter", "hash": origin["fingerprint"]}).json()
    assert resolved["match"]["version"] == "1.0.0"  # the CLI's own fingerprint resolves
    assert "up to date" in cli("update", "greeter")

    # A new version, published through the native API: update sees it and installs it.
    newer = {**GREETER, "scripts/greet.sh": b"#!/usr/bin/env bash\necho \"Hi, $1!\"\n"}
    hub.publish("team", newer, version="1.1.0")
    versions = cli("inspect", "greeter", "--versions")
    assert "1.1.0" in versions and "1.0.0" in versions
    assert "Updated greeter -> v1.1.0" in cli("update", "--all")
    assert folder_files(cli.skills / "greeter") == newer
    assert cli.lock()["greeter"]["version"] == "1.1.0"
    assert "greeter  1.1.0" in cli("list")
    assert "up to date" in cli("update", "--all")


# -- moderation --------------------------------------------------------------------------------

def test_a_dangerous_skill_is_neither_installed_nor_updated(hub: Hub) -> None:
    """A version published under a reviewed exception turns dangerous when the exception
    is withdrawn; the CLI reads the moderation and refuses it."""
    files = {"SKILL.md": skill_md("net-setup", "Sets up the network tools.", DROPPER)}
    refused = httpx.post(f"{hub.url}/api/v1/namespaces/team/skills", headers=hub.auth("team"),
                         files=[("files", ("SKILL.md", files["SKILL.md"]))]).json()
    rules = {f["rule"] for f in refused["report"]["findings"] if f["severity"] == "critical"}
    exceptions = f"{hub.url}/api/v1/skills/team/net-setup/exceptions/"
    for rule in rules:
        response = httpx.put(exceptions + rule, headers=hub.auth("team"),
                             json={"reason": "our installer host"})
        assert response.status_code == 200, response.text
    hub.publish("team", files)  # caution: the raw IP is still flagged
    early = Cli(hub, "dangerous-early", **registry(hub))
    assert "Installed net-setup" in early("install", "net-setup", "--force")

    for rule in rules:
        httpx.delete(exceptions + rule, headers=hub.auth("team")).raise_for_status()
    assert hub.native("/skills/team/net-setup").json()["verdict"] == "dangerous"
    assert "blocked as malicious" in early("update", "net-setup", "--force")

    cli = Cli(hub, "dangerous", **registry(hub))
    refused_install = cli("install", "net-setup", ok=False)
    assert "flagged as malware and cannot be installed" in refused_install
    assert not (cli.skills / "net-setup").exists()
    refused_install = cli("install", "net-setup", "--force", ok=False)  # not even forced
    assert "flagged as malware" in refused_install and not (cli.skills / "net-setup").exists()


def test_a_caution_skill_needs_force(hub: Hub) -> None:
    files = {"SKILL.md": skill_md("shell-runner", "Runs shell commands for the user."),
             "scripts/run.py": SHELLY}
    hub.publish("team", files)
    cli = Cli(hub, "caution", **registry(hub))
    assert "Use --force to install suspicious skills" in cli("install", "shell-runner",
                                                             ok=False)
    assert not (cli.skills / "shell-runner").exists()
    assert "Installed shell-runner" in cli("install", "shell-runner", "--force")
    assert folder_files(cli.skills / "shell-runner") == files


# -- discovery, namespace roots and ambiguity ---------------------------------------------------

def test_site_discovery(hub: Hub) -> None:
    files = {"SKILL.md": skill_md("weather-report", "Reports the weather for a city.")}
    hub.publish("team", files)
    cli = Cli(hub, "site", CLAWHUB_SITE=hub.url)
    assert "weather-report v0.1.0" in cli("search", "weather")
    assert "Installed weather-report" in cli("install", "weather-report")
    assert folder_files(cli.skills / "weather-report") == files
    config = json.loads((cli.home / ".config" / "clawhub" / "config.json").read_text())
    assert config["registry"] == f"{hub.url}/clawhub"


def test_namespace_roots_and_an_ambiguous_slug(hub: Hub) -> None:
    ours = {"SKILL.md": skill_md("csv-tools", "Cleans CSV files for the team.")}
    theirs = {"SKILL.md": skill_md("csv-tools", "Cleans CSV files, the rival way.")}
    hub.publish("team", ours)
    hub.publish("rival", theirs)

    everywhere = Cli(hub, "ambiguous", **registry(hub))
    found = everywhere("search", "csv")
    assert "@team" in found and "@rival" in found
    refused = everywhere("install", "csv-tools", ok=False)
    assert "2 namespaces have a skill called 'csv-tools'" in refused
    assert "Run:   clawhub install rival/csv-tools" in refused
    assert "Run:   clawhub install team/csv-tools" in refused
    assert not (everywhere.skills / "csv-tools").exists()
    # Naming the owner picks one (the CLI installs it under skills/@<owner>/).
    assert "Installed" in everywhere("install", "rival/csv-tools")
    assert folder_files(everywhere.skills / "@rival" / "csv-tools") == theirs

    scoped = Cli(hub, "scoped", **registry(hub, "team"))
    assert "@rival" not in scoped("search", "csv")
    assert "Installed csv-tools" in scoped("install", "csv-tools")
    assert folder_files(scoped.skills / "csv-tools") == ours
    assert scoped.lock()["csv-tools"]["ownerHandle"] == "team"


# -- publish errors ----------------------------------------------------------------------------

def test_publish_errors_print_our_message(hub: Hub) -> None:
    cli = Cli(hub, "errors", **registry(hub))
    cli.login(hub.tokens["team"])
    bad = write_folder(hub.tmp / "src" / "broken", {
        "SKILL.md": b"---\nname: broken\ndescription: ''\n---\nBody.\n"})
    refused = cli("publish", str(bad), ok=False)
    assert "description" in refused and "422" not in refused
    assert hub.native("/skills/team/broken").status_code == 404

    renamed = write_folder(hub.tmp / "src" / "other-name", {
        "SKILL.md": skill_md("real-name", "A skill in a folder of another name.")})
    refused = cli("publish", str(renamed), ok=False)
    assert "does not match its folder 'other-name'" in refused

    rival_root = Cli(hub, "errors-rival", **registry(hub, "rival"))
    rival_root.login(hub.tokens["team"])
    good = write_folder(hub.tmp / "src" / "team-only", {
        "SKILL.md": skill_md("team-only", "A skill only the team publishes.")})
    refused = rival_root("publish", str(good), ok=False)
    assert "this token is limited to other namespaces than 'rival'" in refused
    assert hub.native("/skills/rival/team-only").status_code == 404

    nobody = Cli(hub, "errors-anonymous", **registry(hub))
    assert "Not logged in" in nobody("publish", str(good), ok=False)
    bogus = Cli(hub, "errors-bogus", **registry(hub))
    assert "the token is not valid" in bogus("login", "--token", "shub_bogus", ok=False)
