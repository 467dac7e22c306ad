"""Web pages: in-process HTML checks, and a real headless Chromium against the real server."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from .conftest import skill_md

PUBLISH = "/api/v1/namespaces/team/skills"


class Elements(HTMLParser):
    """Collects (tag, attrs) of every start tag, to assert on structure, not on strings."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))

    def select(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.found if t == tag and all(a.get(k) == v
                                                            for k, v in attrs.items())]


def test_home_has_a_search_box_wired_to_htmx_and_lists_skills(client: TestClient,
                                                              auth: dict[str, str]) -> None:
    client.post(PUBLISH, files=[("files", ("SKILL.md", skill_md()))], headers=auth)
    page = client.get("/")
    assert page.status_code == 200
    html = Elements(page.text)
    boxes = html.select("input", type="search", name="q")
    assert any(box.get("hx-get") == "/search" for box in boxes)
    scripts = [s.get("src") or "" for s in html.select("script")]
    assert any("htmx-2.0.11.min.js" in s for s in scripts)
    assert html.select("a", href="/team/hello-world")
    assert client.get("/static/htmx-2.0.11.min.js").status_code == 200


def test_search_page_and_its_htmx_fragment(client: TestClient, auth: dict[str, str]) -> None:
    client.post(PUBLISH, files=[("files", ("SKILL.md", skill_md()))], headers=auth)
    full = client.get("/search", params={"q": "hello"})
    assert "<html" in full.text and "/team/hello-world" in full.text
    fragment = client.get("/search", params={"q": "hello"}, headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and 'id="results"' in fragment.text
    assert "/team/hello-world" in fragment.text
    none = client.get("/search", params={"q": "zzzqqq"}, headers={"HX-Request": "true"})
    assert "No skill matches" in none.text


def test_skill_page_renders_sanitised_markdown_files_versions_and_commands(
        client: TestClient, auth: dict[str, str]) -> None:
    body = ("## Steps\n\n1. run `tool`\n\n<script>alert(1)</script>\n\n"
            "[x](javascript:alert(2)) <img src=x onerror=alert(3)>\n")
    client.post(PUBLISH + "?version=1.0.0", headers=auth, files=[
        ("files", ("SKILL.md", skill_md(body=body))), ("files", ("scripts/a.py", b"print(1)\n"))])
    client.post(PUBLISH + "?version=1.1.0", headers=auth,
                files=[("files", ("SKILL.md", skill_md(body="New body.")))])
    page = client.get("/team/hello-world/v/1.0.0")
    assert page.status_code == 200
    html = Elements(page.text)
    assert not html.select("script", src=None)  # no inline script survived
    assert not [a for a in html.select("a") if (a.get("href") or "").startswith("javascript")]
    assert not [i for i in html.select("img") if "onerror" in i]
    assert "&lt;script&gt;" in page.text  # raw HTML in the markdown is shown as text
    assert "<h2>Steps</h2>" in page.text
    files = "/api/v1/skills/team/hello-world/versions/1.0.0/files"
    assert html.select("a", href=f"{files}/scripts/a.py")
    assert html.select("a", href="/team/hello-world/v/1.1.0")
    assert "skills-hub install team/hello-world@1.0.0" in page.text
    assert "/git/team.git" in page.text
    latest = client.get("/team/hello-world")
    assert "New body." in latest.text


def test_pages_show_html_errors(client: TestClient) -> None:
    page = client.get("/team/nothing-here")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]
    assert Elements(page.text).select("p", **{"class": "error", "data-code": "not_found"})


@pytest.mark.slow
def test_a_person_searches_and_opens_a_skill_in_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    from .live import start_server

    server = start_server(tmp_path / "data", seed=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            page.goto(server.url + "/")
            page.locator(".hero input[type=search]").fill("csv chart")
            result = page.locator("#results a.name").first
            result.wait_for(timeout=10_000)
            assert "sales-trend-chart" in (result.get_attribute("href") or "")
            result.click()
            page.wait_for_url("**/examples/sales-trend-chart")
            assert page.locator("article > h1").inner_text().startswith("sales-trend-chart")
            assert page.locator(".markdown h2").count() >= 1
            assert "skills-hub install examples/sales-trend-chart@" in \
                page.locator("pre.command").first.inner_text()
            page.screenshot(path=str(tmp_path / "skill.png"), full_page=True)
            browser.close()
    finally:
        server.stop()
