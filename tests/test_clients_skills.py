"""The real `npx skills` (npm `skills` 1.7.4) against a real server on loopback.

Three ways to point it at us: the namespace's git URL (`add <server>/git/<ns>.git`), a
well-known root (`add <server>`, `add <server>/<ns>`, `add <server>/<ns>@<name>`), and
`SKILLS_API_URL=<server> npx skills find`. Each run has its own HOME and project folder.
In 1.7.4 `skills check` is the same command as `skills update` (both install what changed).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from .conftest import skill_md
from .live import Server, client_env, client_path, make_token, start_server

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
PDF_TOOLS = {
    "SKILL.md": skill_md("pdf-tools", "Splits and merges PDF files when asked.",
                         "Run `scripts/split.py`; see references/guide.md."),
    "scripts/split.py": b"import sys\n\nprint('split', sys.argv[1:])\n",
    "references/guide.md": b"# Guide\n\nPages are numbered from 1.\n",
}
HELLO = {"SKILL.md": skill_md("hello-world")}


class Hub:
    """The running server and a publisher for its namespaces."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.url = server.url
        self._tokens: dict[str, str] = {}

    def publish(self, namespace: str, files: dict[str, bytes],
                version: str | None = None) -> dict[str, object]:
        if namespace not in self._tokens:
            self._tokens[namespace] = make_token(self.server.home, namespace)
        response = httpx.post(
            f"{self.url}/api/v1/namespaces/{namespace}/skills",
            headers={"Authorization": f"Bearer {self._tokens[namespace]}"},
            files=[("files", (path, data)) for path, data in files.items()],
            params={"version": version} if version else None, timeout=60)
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with pytest.MonkeyPatch.context() as patch:  # the server must not inherit our settings
        for key in ("SKILLS_HUB_PUBLIC_URL", "SKILLS_HUB_SEED", "SKILLS_HUB_STRICT"):
            patch.delenv(key, raising=False)
        server = start_server(tmp_path_factory.mktemp("hub") / "data")
    hub = Hub(server)
    hub.publish("team", PDF_TOOLS)
    hub.publish("team", HELLO)
    try:
        yield hub
    finally:
        server.stop()


def skills(project: Path, *args: str, ok: bool = True, **env: str) -> str:
    """Run `skills ARGS` in `project` with an isolated HOME; the output without colours."""
    project.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(client_path("npm", "skills")), *args], cwd=project,
        env=client_env(project.parent / f"{project.name}-home", **env),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    output = ANSI.sub("", done.stdout + done.stderr)
    if ok:
        assert done.returncode == 0, output
    return output


def installed(project: Path, name: str, agent_dir: str = ".claude") -> dict[str, bytes]:
    """Every file of an installed skill (following the client's symlinks), by path."""
    folder = (project / agent_dir / "skills" / name).resolve()
    assert folder.is_dir(), f"{name} is not installed under {agent_dir}"
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def lock_entry(project: Path, name: str) -> dict[str, str]:
    return dict(json.loads((project / "skills-lock.json").read_text())["skills"][name])


def index_entry(url: str, name: str) -> dict[str, str]:
    index = httpx.get(f"{url}/.well-known/agent-skills/index.json", timeout=30).json()
    return next(e for e in index["skills"] if e["name"] == name)


# -- add -------------------------------------------------------------------------------------

def test_add_from_the_git_url_installs_the_published_bytes(hub: Hub, tmp_path: Path) -> None:
    project = tmp_path / "project"
    out = skills(project, "add", f"{hub.url}/git/team.git", "--skill", "pdf-tools",
                 "-a", "claude-code", "-y")
    assert "Repository cloned" in out and "Installed 1 skill" in out
    assert installed(project, "pdf-tools") == PDF_TOOLS
    entry = lock_entry(project, "pdf-tools")
    assert (entry["sourceType"], entry["sourceUrl"], entry["skillPath"]) == (
        "git", f"{hub.url}/git/team.git", "skills/pdf-tools/SKILL.md")


@pytest.mark.parametrize("name, files, kind", [("pdf-tools", PDF_TOOLS, "archive"),
                                               ("hello-world", HELLO, "skill-md")])
def test_add_from_the_well_known_root_installs_what_the_digest_names(
        hub: Hub, tmp_path: Path, name: str, files: dict[str, bytes], kind: str) -> None:
    project = tmp_path / "project"
    out = skills(project, "add", hub.url, "--skill", name, "-a", "claude-code", "-y")
    assert "Installed 1 skill" in out
    assert installed(project, name) == files
    entry = index_entry(hub.url, name)
    assert entry["type"] == kind
    served = httpx.get(entry["url"], timeout=30).content
    assert entry["digest"] == "sha256:" + hashlib.sha256(served).hexdigest()
    lock = lock_entry(project, name)
    assert (lock["sourceType"], lock["sourceUrl"], lock["wellKnownDigest"]) == (
        "well-known", hub.url, entry["digest"])


class Relay(BaseHTTPRequestHandler):
    """Serves the upstream discovery index only (so the client cannot fall back to the
    legacy index), optionally with every digest replaced; the artifact URLs in it still
    point at the real server."""

    upstream = ""
    tamper = False

    def do_GET(self) -> None:
        if not self.path.endswith("/.well-known/agent-skills/index.json"):
            self.send_error(404)
            return
        index = httpx.get(self.upstream + self.path, timeout=30).json()
        for entry in index["skills"]:
            if self.tamper:
                entry["digest"] = "sha256:" + hashlib.sha256(b"not the bytes").hexdigest()
        body = json.dumps(index).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("tamper", [False, True], ids=["digest-kept", "digest-changed"])
def test_the_client_installs_only_when_the_digest_matches(hub: Hub, tmp_path: Path,
                                                          tamper: bool) -> None:
    handler = type("Handler", (Relay,), {"upstream": hub.url, "tamper": tamper})
    relay = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=relay.serve_forever, daemon=True).start()
    project = tmp_path / "project"
    try:
        out = skills(project, "add", f"http://127.0.0.1:{relay.server_port}", "--skill",
                     "pdf-tools", "-a", "claude-code", "-y", ok=not tamper)
    finally:
        relay.shutdown()
        relay.server_close()
    if tamper:
        assert "No well-known skills found" in out
        assert not (project / ".claude" / "skills" / "pdf-tools").exists()
    else:
        assert installed(project, "pdf-tools") == PDF_TOOLS


# -- find ------------------------------------------------------------------------------------

def test_find_searches_us_and_prints_a_line_that_installs(hub: Hub, tmp_path: Path) -> None:
    out = skills(tmp_path / "finder", "find", "pdf", SKILLS_API_URL=hub.url)
    printed = re.findall(r"^(http://\S+@pdf-tools)(?: .*)?$", out, re.MULTILINE)
    assert printed == [f"{hub.url}/team@pdf-tools"], out
    assert "hello-world" not in out
    project = tmp_path / "project"
    skills(project, "add", printed[0], "-a", "claude-code", "-y")
    assert list((project / ".claude" / "skills").iterdir()) == [
        project / ".claude" / "skills" / "pdf-tools"]
    assert installed(project, "pdf-tools") == PDF_TOOLS


def test_find_with_an_owner_keeps_one_namespace(hub: Hub, tmp_path: Path) -> None:
    hub.publish("finders", {"SKILL.md": skill_md("pdf-indexer",
                                                 "Indexes PDF files for search.")})
    out = skills(tmp_path / "finder", "find", "pdf", "--owner", "finders",
                 SKILLS_API_URL=hub.url)
    assert re.findall(r"^http://\S+", out, re.MULTILINE) == [f"{hub.url}/finders@pdf-indexer"]


# -- scopes ----------------------------------------------------------------------------------

def test_a_namespace_root_installs_its_skill_where_the_name_is_shared(
        hub: Hub, tmp_path: Path) -> None:
    for namespace in ("north", "south"):
        hub.publish(namespace, {
            "SKILL.md": skill_md("weekly-report", body=f"The {namespace} office's report."),
            "template.md": f"# {namespace} report\n".encode()})
    project = tmp_path / "project"
    out = skills(project, "add", f"{hub.url}/south", "--skill", "weekly-report",
                 "-a", "claude-code", "-y")
    assert "Installed 1 skill" in out
    files = installed(project, "weekly-report")
    assert files["template.md"] == b"# south report\n"
    assert b"The south office's report." in files["SKILL.md"]
    assert lock_entry(project, "weekly-report")["sourceUrl"] == f"{hub.url}/south"
    # The server-wide root never picks one of the two for the client.
    elsewhere = tmp_path / "elsewhere"
    out = skills(elsewhere, "add", hub.url, "--skill", "weekly-report", "-a", "claude-code",
                 "-y", ok=False)
    assert "No matching skills found for: weekly-report" in out
    assert not (elsewhere / ".claude" / "skills" / "weekly-report").exists()


# -- check and update ------------------------------------------------------------------------

def notes(version: str) -> dict[str, bytes]:
    return {"SKILL.md": skill_md("release-notes", "Drafts release notes from a changelog.",
                                 f"Release notes, edition {version}."),
            "checklist.md": f"- edition {version}\n".encode()}


def test_check_and_update_install_a_new_version_from_every_source(hub: Hub,
                                                                  tmp_path: Path) -> None:
    hub.publish("team", notes("0.1.0"), version="0.1.0")
    # One project per source: the project lock keeps one source per skill name.
    sources = {"git": f"{hub.url}/git/team.git", "root": hub.url,
               "namespace": f"{hub.url}/team", "skill": f"{hub.url}/team@release-notes"}
    projects = {kind: tmp_path / kind for kind in sources}
    for kind, source in sources.items():
        skills(projects[kind], "add", source, "--skill", "release-notes", "-a", "claude-code",
               "-y")
        assert installed(projects[kind], "release-notes") == notes("0.1.0")
    for kind, project in projects.items():  # nothing new yet: nothing is installed
        out = skills(project, "check")
        assert "Updated" not in out, (kind, out)

    hub.publish("team", notes("0.2.0"), version="0.2.0")
    for kind, project in projects.items():
        command = "check" if kind in ("git", "root") else "update"
        out = skills(project, command, "-y")
        assert "Updated release-notes" in out and "Updated 1 skill(s)" in out, (kind, out)
        assert installed(project, "release-notes") == notes("0.2.0"), kind
        if kind != "git":
            assert lock_entry(project, "release-notes")["wellKnownDigest"] == index_entry(
                sources[kind], "release-notes")["digest"]
    for kind, project in projects.items():  # and now everything is current again
        assert "Updated" not in skills(project, "update", "-y"), kind
