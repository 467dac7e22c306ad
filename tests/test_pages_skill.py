"""The skill page (issue 14): the frontmatter facts, a copy button per install method, and
the file browser (markdown rendered, code highlighted by Pygments, binaries as a download)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.services import Registry
from skills_hub.web.highlight import MAX_HIGHLIGHT_BYTES

from .test_pages import Elements

PUBLISH = "/api/v1/namespaces/team/skills"
SKILL = """---
name: csv-tools
description: Reads CSV files and summarises their columns for a report.
license: MIT
compatibility: Python 3.11+
allowed-tools: Bash Read
metadata:
  author: Ada <ada@example.org>
  tags: "csv, data"
  homepage: https://example.org/a/very/long/path/that/must/wrap/in/the/sidebar/of/the/page
---
# CSV tools

Run `scripts/summary.py` on a file.
"""
PYTHON = b'"""Summarise a CSV file."""\nimport csv\n\n\ndef main(path: str) -> int:\n' \
         b'    with open(path) as f:\n        return len(list(csv.reader(f)))  # rows\n'
NOTES = b"# Notes\n\nSome **bold** text and a [link](https://example.org).\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
FILES = [("SKILL.md", SKILL.encode()), ("scripts/summary.py", PYTHON),
         ("references/NOTES.md", NOTES), ("assets/logo.png", PNG)]
PAGE = "/team/csv-tools/v/1.0.0"


def publish(client: TestClient, auth: dict[str, str], path: str = PUBLISH) -> None:
    answer = client.post(path + "?version=1.0.0", headers=auth,
                         files=[("files", (name, data)) for name, data in FILES])
    assert answer.status_code in (200, 201), answer.text


def facts(html: str) -> dict[str, str]:
    """The facts sidebar's dt -> dd text."""
    section = html.split('<dl class="facts skill-facts">', 1)[1].split("</dl>", 1)[0]
    out: dict[str, str] = {}
    for chunk in section.split("<dt>")[1:]:
        label, rest = chunk.split("</dt>", 1)
        out[label.strip()] = rest.split("</dd>", 1)[0]
    return out


def test_the_facts_sidebar_shows_the_frontmatter(client: TestClient,
                                                 auth: dict[str, str]) -> None:
    publish(client, auth)
    page = client.get(PAGE)
    assert page.status_code == 200
    shown = facts(page.text)
    assert "MIT" in shown["license"]
    assert "Ada &lt;ada@example.org&gt;" in shown["author"]  # escaped
    assert "Python 3.11+" in shown["compatibility"]
    assert "Bash Read" in shown["allowed-tools"]
    assert 'href="/search?tag=csv"' in shown["tags"] and ">data</a>" in shown["tags"]
    assert "example.org/a/very/long" in shown["homepage"]
    assert list(shown)[:5] == ["license", "author", "compatibility", "allowed-tools", "tags"]


def test_every_install_method_has_a_copy_button_with_its_command(
        client: TestClient, auth: dict[str, str]) -> None:
    publish(client, auth)
    page = client.get(PAGE)
    html = Elements(page.text)
    base = "http://testserver"
    expected = {
        "skills-hub": "skills-hub install team/csv-tools@1.0.0",
        "npx": f"npx skills add {base}/team@csv-tools",
        "clawhub": f"CLAWHUB_REGISTRY={base}/clawhub/team clawhub install csv-tools",
        "hermes": f"hermes skills install well-known:{base}/team/.well-known/skills/csv-tools"
                  " --yes",
        "claude": f"claude plugin marketplace add {base}/team/marketplace.json && "
                  "claude plugin install csv-tools@team",
        "git": f"git clone {base}/git/team.git",
    }
    labels = {"skills-hub": "skills-hub", "npx": "npx skills", "clawhub": "clawhub",
              "hermes": "Hermes", "claude": "Claude Code", "git": "git"}
    for key, command in expected.items():
        buttons = html.select("button", **{"class": "copy", "data-copy": f"cmd-{key}"})
        assert len(buttons) == 1, key
        assert buttons[0]["aria-label"] == f"Copy the {labels[key]} command"
        assert buttons[0]["type"] == "button"
        assert f'<code id="cmd-{key}">{command}</code>' in page.text.replace("&amp;", "&")
    assert html.select("p", **{"class": "copy-status visually-hidden", "role": "status"})


def test_the_file_list_links_to_the_file_pages(client: TestClient,
                                               auth: dict[str, str]) -> None:
    publish(client, auth)
    html = Elements(client.get(PAGE).text)
    for name, _ in FILES:
        assert html.select("a", href=f"{PAGE}/files/{name}")
        assert html.select("a", href=f"/api/v1/skills/team/csv-tools/versions/1.0.0/files/{name}")


def test_a_markdown_file_is_rendered_and_python_is_highlighted_with_classes(
        client: TestClient, auth: dict[str, str]) -> None:
    publish(client, auth)
    notes = client.get(f"{PAGE}/files/references/NOTES.md")
    assert notes.status_code == 200
    assert "<strong>bold</strong>" in notes.text and "<h1>Notes</h1>" in notes.text
    assert Elements(notes.text).select("a", href=f"{PAGE}/files/references/NOTES.md?view=source")
    skill_md = client.get(f"{PAGE}/files/SKILL.md")  # the frontmatter as YAML, then the body
    assert "<h1>CSV tools</h1>" in skill_md.text and 'class="highlight"' in skill_md.text
    source = client.get(f"{PAGE}/files/references/NOTES.md", params={"view": "source"})
    assert "<strong>" not in source.text and 'class="gh"' in source.text  # Generic.Heading

    code = client.get(f"{PAGE}/files/scripts/summary.py")
    assert code.status_code == 200
    html = Elements(code.text)
    assert html.select("div", **{"class": "highlight"})
    for token in ('class="kn"', 'class="nf"', 'class="c1"', 'class="sd"'):
        assert token in code.text, token
    assert "style=" not in code.text
    assert not [attrs for _, attrs in html.found if "style" in attrs]
    assert html.select("link", rel="stylesheet", href="/static/pygments.css")
    assert "Python" in code.text
    assert "default-src 'self'" in code.headers["content-security-policy"]
    css = client.get("/static/pygments.css")
    assert css.status_code == 200 and ".highlight .kn" in css.text
    assert "prefers-color-scheme: dark" in css.text


def test_a_binary_file_is_its_size_and_a_download_link(client: TestClient,
                                                       auth: dict[str, str]) -> None:
    publish(client, auth)
    page = client.get(f"{PAGE}/files/assets/logo.png")
    assert page.status_code == 200
    raw = "/api/v1/skills/team/csv-tools/versions/1.0.0/files/assets/logo.png"
    assert [a for a in Elements(page.text).select("a", href=raw) if "download" in a]
    assert f"{len(PNG)} B" in page.text
    assert 'class="highlight"' not in page.text


def test_a_large_text_file_is_not_highlighted(client: TestClient, registry: Registry) -> None:
    from skills_hub.web.pages import file_view

    big = ("x = 1\n" * (MAX_HIGHLIGHT_BYTES // 6 + 10)).encode()
    shown = file_view("big.py", big)
    assert shown["kind"] == "large" and 'class="k' not in str(shown["html"])
    assert file_view("a.bin", b"\x00\x01")["kind"] == "binary"


def test_a_private_namespace_file_page_is_404_to_an_anonymous_visitor(
        client: TestClient, registry: Registry) -> None:
    token = registry.create_token("secret", private=True)
    publish(client, {"Authorization": f"Bearer {token}"},
            path="/api/v1/namespaces/secret/skills")
    mine = client.get("/secret/csv-tools/v/1.0.0/files/scripts/summary.py",
                      headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200
    for path in ("scripts/summary.py", "SKILL.md", "assets/logo.png"):
        page = client.get(f"/secret/csv-tools/v/1.0.0/files/{path}")
        assert page.status_code == 404, path
        assert "summarise" not in page.text.lower()


@pytest.mark.parametrize("path", ["scripts/%2e%2e/SKILL.md", "%2e%2e/%2e%2e/etc/passwd",
                                  "scripts/..%2fSKILL.md", "%2e/SKILL.md", "scripts//summary.py",
                                  "nothing.txt"])
def test_a_path_outside_the_files_is_404(client: TestClient, auth: dict[str, str],
                                         path: str) -> None:
    publish(client, auth)
    page = client.get(f"{PAGE}/files/{path}")
    assert page.status_code == 404
    assert "text/html" in page.headers["content-type"]


SHOTS = Path("/tmp/shots-skill")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.slow
def test_copy_a_command_and_browse_files_in_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import expect, sync_playwright

    from .live import make_token, start_server

    SHOTS.mkdir(exist_ok=True)
    home = tmp_path / "data"
    server = start_server(home)
    try:
        token = make_token(home, "team")
        answer = httpx.post(server.url + PUBLISH + "?version=1.0.0",
                            headers={"Authorization": f"Bearer {token}"},
                            files=[("files", (name, data)) for name, data in FILES], timeout=60)
        assert answer.status_code in (200, 201), answer.text
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(permissions=["clipboard-read", "clipboard-write"],
                                          viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(server.url + PAGE)
            button = page.get_by_role("button", name="Copy the npx skills command")
            button.click()
            expect(button).to_have_text("Copied")
            copied = page.evaluate("navigator.clipboard.readText()")
            assert copied == f"npx skills add {server.url}/team@csv-tools"
            expect(page.locator(".copy-status")).to_have_text("Copied npx skills command")
            page.get_by_role("button", name="Copy the Claude Code command").click()
            expect(page.get_by_role("button", name="Copy the Claude Code command")).to_have_text(
                "Copied")
            assert page.evaluate("navigator.clipboard.readText()").endswith(
                "claude plugin install csv-tools@team")
            page.locator(".files a", has_text="scripts/summary.py").click()
            page.wait_for_url(f"**{PAGE}/files/scripts/summary.py")
            assert page.locator(".highlight .kn").first.inner_text() == "import"
            color = page.locator(".highlight .kn").first.evaluate(
                "e => getComputedStyle(e).color")
            assert color not in ("rgb(29, 35, 48)", "")  # a token colour, not the body's
            context.close()

            for scheme in ("light", "dark"):
                for width in (1280, 390):
                    context = browser.new_context(viewport={"width": width, "height": 900},
                                                  color_scheme=scheme)
                    page = context.new_page()
                    for shot, url in (("skill", PAGE), ("code", PAGE + "/files/scripts/summary.py"),
                                      ("markdown", PAGE + "/files/SKILL.md"),
                                      ("binary", PAGE + "/files/assets/logo.png")):
                        page.goto(server.url + url)
                        page.screenshot(path=str(SHOTS / f"{shot}-{width}-{scheme}.png"),
                                        full_page=True)
                        if width == 390:
                            wide = page.evaluate("document.documentElement.scrollWidth")
                            assert wide <= 390, (shot, scheme, wide)
                    context.close()
            browser.close()
    finally:
        server.stop()
