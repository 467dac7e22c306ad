"""Web hardening (issue 13): the Host header never becomes an origin, pages carry a strict
Content-Security-Policy and the other security headers, and images in skill bodies are
links, so a page view neither tracks its reader nor counts a download."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.web import markdown
from skills_hub.web.app import create_app
from skills_hub.web.middleware import CONTENT_SECURITY_POLICY
from skills_hub.web.urls import allowed_hosts, host_allowed, host_name

from .conftest import skill_md
from .test_proposals import OWNER_STEP, STEPS

PUBLISH = "/api/v1/namespaces/team/skills"
INDEX = "/.well-known/agent-skills/index.json"
ARCHIVE = "/api/v1/skills/team/hello-world/versions/0.1.0/archive.tar.gz"
TRACKER = "https://tracker.example/pixel.png"
IMAGES = f"![a chart]({TRACKER} \"sales\")\n\n![the archive]({ARCHIVE})\n"


class Tags(HTMLParser):
    """Every start tag as (tag, attrs), and the text inside <script> and <style>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._open: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag if tag in ("script", "style") else None

    def handle_data(self, data: str) -> None:
        if self._open and data.strip():
            self.inline.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]


@contextmanager
def app_client(home: Path, **settings: Any) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A client of an app with these settings, and an owner token of `team`."""
    config = Settings(home=home, seed=False, semantic="off", **settings)
    registry = Registry(config)
    registry.start()
    try:
        with TestClient(create_app(config, registry)) as client:
            yield client, {"Authorization": f"Bearer {registry.create_token('team')}"}
    finally:
        registry.close()


@pytest.fixture
def published(client: TestClient, auth: dict[str, str]) -> TestClient:
    response = client.post(PUBLISH, headers=auth, files=[
        ("files", ("SKILL.md", skill_md(body="Say hello.\n\n" + IMAGES)))])
    assert response.status_code == 201, response.text
    return client


def downloads(client: TestClient) -> int:
    client.app.state.registry.downloads.flush()  # counts are batched
    return int(client.get("/api/v1/skills/team/hello-world").json()["downloads"])


# -- 6. the Host header ---------------------------------------------------------------------

def test_a_made_up_host_is_refused_and_never_becomes_an_origin(published: TestClient) -> None:
    evil = {"Host": "evil.example"}
    for path in ("/", "/team/hello-world", INDEX, "/.well-known/skills/index.json",
                 "/clawhub.json", "/static/style.css"):
        response = published.get(path, headers=evil)
        assert response.status_code == 400, (path, response.text)
        assert "evil.example" not in response.headers.get("location", "")
        assert response.json()["code"] == "invalid_host"
    with_port = published.get(INDEX, headers={"Host": "evil.example:8000"})
    assert with_port.status_code == 400


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000",
                                  "LOCALHOST"])
def test_loopback_names_are_always_answered(published: TestClient, host: str) -> None:
    page = published.get("/", headers={"Host": host})
    assert page.status_code == 200
    index = published.get(INDEX, headers={"Host": host}).json()
    assert all(entry["url"].lower().startswith(f"http://{host.lower()}/")
               for entry in index["skills"])


def test_pages_name_static_files_by_path_not_by_the_request_host(published: TestClient) -> None:
    for path in ("/", "/team/hello-world", "/search?q=hello", "/team", "/team/nothing"):
        html = Tags(published.get(path, headers={"Host": "localhost:8000"}).text)
        scripts = [s.get("src") for s in html.all("script")]
        assert scripts[:2] == ["/static/htmx-2.0.11.min.js", "/static/commands.js"]
        assert all((src or "").startswith("/static/") for src in scripts), scripts
        assert [ln.get("href") for ln in html.all("link")] == ["/static/style.css",
                                                               "/static/favicon.svg"]


def test_allowed_hosts_are_answered_and_name_the_urls(tmp_path: Path) -> None:
    with app_client(tmp_path, allowed_hosts=("hub.example.org", "*.corp.example")) as (
            client, auth):
        client.post(PUBLISH, headers=auth, files=[("files", ("SKILL.md", skill_md()))])
        for host in ("hub.example.org", "Hub.Example.org:443", "skills.corp.example"):
            index = client.get(INDEX, headers={"Host": host})
            assert index.status_code == 200, host
            url = index.json()["skills"][0]["url"].lower()
            assert url.startswith(f"http://{host.lower()}/.well-known/"), url
        for host in ("evil.example", "corp.example", "hub.example.org.evil.example"):
            assert client.get(INDEX, headers={"Host": host}).status_code == 400, host


def test_with_a_public_url_its_host_is_answered_and_urls_never_follow_the_request(
        tmp_path: Path) -> None:
    with app_client(tmp_path, public_url="https://skills.example.org") as (client, auth):
        client.post(PUBLISH, headers=auth, files=[("files", ("SKILL.md", skill_md()))])
        for host in ("skills.example.org", "localhost:8000"):
            index = client.get(INDEX, headers={"Host": host})
            assert index.status_code == 200
            assert index.json()["skills"][0]["url"].startswith(
                "https://skills.example.org/.well-known/")
            page = client.get("/team/hello-world", headers={"Host": host}).text
            assert "git clone https://skills.example.org/git/team.git" in page
        assert client.get(INDEX, headers={"Host": "evil.example"}).status_code == 400


def test_the_settings_read_allowed_hosts_and_the_names_add_up() -> None:
    settings = Settings.from_env({"SKILLS_HUB_ALLOWED_HOSTS": " Hub.Example.org, *.corp.example ,,",
                                  "SKILLS_HUB_PUBLIC_URL": "https://skills.example.org:8443/"})
    assert settings.allowed_hosts == ("hub.example.org", "*.corp.example")
    assert Settings.from_env({}).allowed_hosts == ()
    names = allowed_hosts(settings)
    assert {"localhost", "127.0.0.1", "::1", "hub.example.org", "*.corp.example",
            "skills.example.org"} <= set(names)
    bound = allowed_hosts(Settings(home=Path("/x"), host="10.1.2.3"))
    assert "10.1.2.3" in bound
    assert allowed_hosts(Settings(home=Path("/x"), host="0.0.0.0")) == (
        "localhost", "127.0.0.1", "::1")
    assert host_name("[::1]:8000") == "::1" and host_name("Example.ORG.:80") == "example.org"
    assert host_name("::1") == "::1"
    assert host_allowed("a.corp.example", names) and not host_allowed("corp.example", names)
    assert not host_allowed("xcorp.example", names)


def test_a_warning_at_start_when_no_public_url_nor_allowed_hosts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="skills_hub.web.app"):
        with app_client(tmp_path / "a"):
            pass
    assert any("SKILLS_HUB_PUBLIC_URL" in r.getMessage() and "SKILLS_HUB_ALLOWED_HOSTS"
               in r.getMessage() and "400" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skills_hub.web.app"):
        with app_client(tmp_path / "b", public_url="https://skills.example.org"):
            pass
        with app_client(tmp_path / "c", allowed_hosts=("hub.example.org",)):
            pass
    assert not [r for r in caplog.records if r.name == "skills_hub.web.app"]


# -- 7. security headers and no inline code ---------------------------------------------------

def test_pages_and_other_responses_carry_the_security_headers(published: TestClient) -> None:
    for path in ("/", "/team/hello-world", "/search?q=hello", "/team/nothing-here", INDEX,
                 "/api/v1/skills/team/hello-world", "/static/style.css"):
        headers = published.get(path).headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["object-src"] == "'none'" and policy["img-src"] == "'self' data:"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    raw = published.get("/api/v1/skills/team/hello-world/versions/0.1.0/files/SKILL.md")
    assert raw.headers["content-security-policy"].startswith("sandbox")  # its own, kept
    assert raw.headers["x-frame-options"] == "DENY"


def test_pages_have_no_inline_script_style_or_handler(published: TestClient) -> None:
    pages = ["/", "/team/hello-world", "/search?q=hello", "/team", "/team/nothing-here"]
    for path in pages:
        html = Tags(published.get(path).text)
        assert html.inline == [], path
        assert all(s.get("src") for s in html.all("script")), path
        assert not html.all("style"), path
        for tag, attrs in html.tags:
            bad = [a for a in attrs if a == "style" or a.startswith(("on", "hx-on", "hx-vars"))
                   or (a == "hx-vals" and "js:" in (attrs[a] or ""))]
            assert not bad, (path, tag, bad)
        config = [m for m in html.all("meta") if m.get("name") == "htmx-config"]
        assert len(config) == 1 and '"includeIndicatorStyles": false' in (
            config[0].get("content") or "")


# -- 8. images in skill bodies ------------------------------------------------------------------

def test_markdown_images_are_links_never_img() -> None:
    html = markdown.render(IMAGES + "\n![](https://e.example/x.gif)\n\n![ref][r]\n\n"
                           "[r]: https://e.example/y.gif\n\n<img src=x>\n")
    tags = Tags(html)
    assert not tags.all("img")
    links = {a.get("href"): a for a in tags.all("a")}
    assert links[TRACKER]["class"] == "image-link" and links[TRACKER]["title"] == "sales"
    assert links[ARCHIVE]["class"] == "image-link"
    assert links["https://e.example/y.gif"]["class"] == "image-link"
    assert ">a chart</a>" in html and ">https://e.example/x.gif</a>" in html


def test_a_skill_page_loads_no_image_and_counts_no_download(published: TestClient) -> None:
    page = published.get("/team/hello-world")
    html = Tags(page.text)
    assert not html.all("img")
    assert [a.get("href") for a in html.all("a") if a.get("class") == "image-link"] == [
        TRACKER, ARCHIVE]
    assert downloads(published) == 0


def test_a_browser_loading_an_archive_as_a_subresource_counts_nothing(
        published: TestClient) -> None:
    for dest in ("image", "script", "style", "iframe"):
        embedded = published.get(ARCHIVE, headers={"Sec-Fetch-Dest": dest})
        assert embedded.status_code == 200  # served (the bytes are public), not counted
        claw = published.get("/clawhub/api/v1/download", params={"slug": "hello-world"},
                             headers={"Sec-Fetch-Dest": dest})
        assert claw.status_code == 200
    assert downloads(published) == 0
    assert published.get(ARCHIVE).status_code == 200  # skills-hub install, curl
    assert published.get(ARCHIVE, headers={"Sec-Fetch-Dest": "document"}).status_code == 200
    assert published.get("/clawhub/api/v1/download",
                         params={"slug": "hello-world"}).status_code == 200
    assert downloads(published) == 3
    # the well-known archive is served to browsers' fetches and counted by no one
    well_known = published.get("/.well-known/agent-skills/hello-world/SKILL.md",
                               headers={"Sec-Fetch-Dest": "empty"})
    assert well_known.status_code == 200 and downloads(published) == 3


# -- in a real browser: htmx works under the policy, nothing is blocked or fetched ----------------

@pytest.mark.slow
def test_pages_work_in_chromium_under_the_policy(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import ConsoleMessage, Request, sync_playwright

    from .live import make_token, start_server

    server = start_server(tmp_path / "data", seed=True)
    api = httpx.Client(base_url=server.url, timeout=30)
    try:
        maintainer, proposer = make_token(server.home, "team"), make_token(server.home, "agents")
        owner = {"Authorization": f"Bearer {maintainer}"}
        md = skill_md("weekly-report", description="Formats the weekly status report.",
                      body=STEPS + "\n" + IMAGES.replace("hello-world", "weekly-report")
                      .replace("0.1.0", "1.0.0"))
        assert api.post(PUBLISH + "?version=1.0.0", headers=owner,
                        files=[("files", ("SKILL.md", md))]).status_code == 201
        opened = api.post("/api/v1/skills/team/weekly-report/proposals",
                          headers={"Authorization": f"Bearer {proposer}"},
                          json={"base_version": "1.0.0", "edits": [OWNER_STEP],
                                "reasoning": "reports were missing owners"})
        assert opened.status_code == 201, opened.text
        # A maintainer of `team` signs in through the page's form (no token in a page).
        subprocess.run([sys.executable, "-m", "skills_hub.cli", "user", "add", "maya",
                        "--password-stdin", "--home", str(server.home)],
                       input="correct horse battery staple\n", capture_output=True,
                       text=True, check=True)
        assert api.put("/api/v1/orgs/team/members/maya", json={"role": "maintainer"},
                       headers=owner).status_code == 200
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            problems: list[str] = []
            fetched: list[str] = []

            def console(message: ConsoleMessage) -> None:
                if "Content Security Policy" in message.text or "csp" in message.text:
                    problems.append(message.text)

            def request(req: Request) -> None:
                fetched.append(req.url)

            page.on("console", console)
            page.on("request", request)
            page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                                 "console.error('csp violation: ' + e.violatedDirective))")
            page.goto(server.url + "/")
            page.locator(".hero input[type=search]").fill("weekly report")
            page.locator("#results a.name").first.wait_for(timeout=10_000)  # htmx swapped
            page.goto(server.url + "/team/weekly-report")
            assert page.locator(".markdown a.image-link").count() == 2
            assert page.locator("img").count() == 0
            proposal = f"/team/weekly-report/proposals/{opened.json()['id']}"
            page.goto(f"{server.url}/login?next={proposal}")
            page.get_by_label("Username").fill("maya")
            page.get_by_label("Password").fill("correct horse battery staple")
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(server.url + proposal)
            page.evaluate("window.sameDocument = true")
            page.get_by_label("Accept").check()
            page.get_by_role("button", name="Submit review").click()
            page.locator("#proposal-status .status.accepted").wait_for(timeout=30_000)
            assert page.evaluate("window.sameDocument") is True  # swapped in place by htmx
            browser.close()
        assert problems == []
        assert not [url for url in fetched if not url.startswith(server.url)]
        assert not [url for url in fetched if "/archive." in url]
        skill = api.get("/api/v1/skills/team/weekly-report").json()
        assert skill["downloads"] == 0
    finally:
        api.close()
        server.stop()
