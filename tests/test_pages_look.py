"""How the pages look and behave everywhere (issue 14): phone widths without sideways
scrolling, the dark scheme's contrast, the favicon, visible keyboard focus, a label on every
control, and install commands that break only between words.

The browser tests drive a real headless Chromium against a real seeded server. Screenshots
(1280 and 390 px, light and dark) go to $SKILLS_HUB_SHOTS when it is set, else to a
temporary folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from .test_pages import Elements

WIDTHS = (360, 390)
SCHEMES = ("light", "dark")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# Every visible element with its own text (and every control) against the background it is
# painted on: the first ancestor-or-self with an opaque background colour. WCAG AA: 4.5:1.
CONTRAST_JS = """() => {
  const parse = (s) => {
    const m = /rgba?\\(([^)]+)\\)/.exec(s || '');
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const ownText = (el) => [...el.childNodes].some(
    (n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
  const low = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (!el.getClientRects().length || el.closest('[hidden], option, script')) continue;
    const control = el.matches('input:not([type=hidden]), select, textarea, button');
    if (!control && !ownText(el)) continue;
    const fg = parse(getComputedStyle(el).color), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    if (ratio < 4.5) low.push(`${el.tagName.toLowerCase()}.${el.className}: ${ratio.toFixed(2)}`);
  }
  return low;
}"""

UNLABELLED_JS = """() => {
  const named = (e) => (e.getAttribute('aria-label') || '').trim()
    || (e.getAttribute('aria-labelledby') || '').trim() || (e.labels && e.labels.length);
  const controls = [...document.querySelectorAll('input, select, textarea')]
    .filter((e) => e.type !== 'hidden' && !e.closest('[hidden]') && !named(e));
  const buttons = [...document.querySelectorAll('button')]
    .filter((e) => !e.closest('[hidden]') && !e.textContent.trim() && !named(e));
  return [...controls, ...buttons].map((e) => e.outerHTML);
}"""


@dataclass
class Site:
    url: str
    pages: dict[str, str]
    browser: Any
    shots: Path

    def page(self, width: int, scheme: str = "light") -> Any:
        context = self.browser.new_context(viewport={"width": width, "height": 900},
                                           color_scheme=scheme)
        return context.new_page()


def shots_folder(topic: str, fallback: Path) -> Path:
    """Where a browser module saves its screenshots: $SKILLS_HUB_SHOTS/<topic> when set
    (`make screenshots` sets the git-ignored screenshots/), else `fallback`. Call it from a
    module-scoped fixture: conftest.hermetic clears SKILLS_HUB_* for each test."""
    root = os.environ.get("SKILLS_HUB_SHOTS")
    folder = Path(root) / topic if root else fallback
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Any, folder: Path, name: str,
               widths: tuple[int, ...] = (1280, 390)) -> None:
    """Full-page screenshots `<name>-<width>.png` of the page as it is now, at each width;
    the viewport is put back afterwards."""
    size = page.viewport_size
    for width in widths:
        if width != size["width"]:
            page.set_viewport_size({"width": width, "height": size["height"]})
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    if page.viewport_size != size:
        page.set_viewport_size(size)


def _proposal(url: str, home: Path) -> str | None:
    """A proposal on the first seeded skill (inserting a line after one of its headings), so
    the proposal page is in the tour; None if the seed has nothing to propose against."""
    from .live import make_token

    skills = httpx.get(f"{url}/api/v1/skills").json()["skills"]
    if not skills:
        return None
    skill = skills[0]
    base = f"{url}/api/v1/skills/{skill['namespace']}/{skill['name']}"
    text = httpx.get(f"{base}/versions/{skill['latest_version']}/files/SKILL.md").text
    lines = [line + "\n" for line in text.splitlines() if line.startswith("## ")]
    targets = [line for line in lines if text.count(line) == 1]
    if not targets:
        return None
    token = make_token(home, "agents")
    answer = httpx.post(f"{base}/proposals", headers={"Authorization": f"Bearer {token}"}, json={
        "base_version": skill["latest_version"], "reasoning": "agents asked for this twice",
        "evidence": {"failures": 2, "samples": "a first sample\na second, longer sample line"},
        "edits": [{"op": "insert_after", "target": targets[0],
                   "content": "A note with a_very_long_identifier_that_has_no_spaces_at_all.\n"}]})
    assert answer.status_code == 201, answer.text
    return f"/{skill['namespace']}/{skill['name']}/proposals/{answer.json()['id']}"


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    from .live import module_home, start_server

    with module_home() as tmp:
        shots = Path(os.environ.get("SKILLS_HUB_SHOTS") or Path(tmp) / "shots")
        shots.mkdir(parents=True, exist_ok=True)
        server = start_server(Path(tmp) / "data", seed=True)
        try:
            first = httpx.get(f"{server.url}/api/v1/skills").json()["skills"][0]
            skill = f"/{first['namespace']}/{first['name']}"
            pages = {"home": "/", "search": "/search?q=csv", "namespace": f"/{first['namespace']}",
                     "skill": skill, "version": f"{skill}/v/{first['latest_version']}",
                     "error": "/no-such/skill-here"}
            proposal = _proposal(server.url, Path(tmp) / "data")
            if proposal:
                pages["proposal"] = proposal
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                yield Site(server.url, pages, browser, shots)
                browser.close()
        finally:
            server.stop()


def test_the_favicon_is_served_and_linked(client: TestClient) -> None:
    icon = client.get("/favicon.ico", follow_redirects=False)
    assert icon.status_code == 301 and icon.headers["location"] == "/static/favicon.svg"
    followed = client.get("/favicon.ico")
    assert followed.status_code == 200
    assert followed.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in followed.content and b"<script" not in followed.content
    head = Elements(client.get("/").text)
    assert head.select("link", rel="icon", href="/static/favicon.svg")
    assert head.select("meta", name="color-scheme", content="light dark")


@pytest.mark.slow
def test_no_page_scrolls_sideways_on_a_phone_in_either_scheme(site: Site) -> None:
    wide = []
    for scheme in SCHEMES:
        for width in (*WIDTHS, 1280):
            page = site.page(width, scheme)
            for name, path in site.pages.items():
                page.goto(site.url + path)
                scroll, inner = page.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]")
                if scroll > inner:
                    wide.append(f"{name} at {width} px, {scheme}: {scroll} > {inner}")
                if width in (390, 1280):
                    page.screenshot(path=str(site.shots / f"{name}-{width}-{scheme}.png"),
                                    full_page=True)
            page.context.close()
    assert not wide
    assert "proposal" in site.pages


@pytest.mark.slow
def test_text_keeps_its_contrast_in_the_light_and_the_dark_scheme(site: Site) -> None:
    low = {}
    for scheme in SCHEMES:
        page = site.page(390, scheme)
        for name, path in site.pages.items():
            page.goto(site.url + path)
            if found := page.evaluate(CONTRAST_JS):
                low[f"{name}, {scheme}"] = found
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark = sum(int(c) for c in background[4:-1].split(",")) < 3 * 64
        assert dark == (scheme == "dark"), background
        page.context.close()
    assert not low


@pytest.mark.slow
def test_keyboard_focus_is_visible_on_every_kind_of_control(site: Site) -> None:
    page = site.page(1280)
    page.goto(site.url + site.pages["search"])
    seen = {}
    for _ in range(40):
        page.keyboard.press("Tab")
        tag, visible, style, width = page.evaluate("""() => {
            const e = document.activeElement, s = getComputedStyle(e);
            return [e.tagName.toLowerCase(), e.matches(':focus-visible'), s.outlineStyle,
                    parseFloat(s.outlineWidth)];
        }""")
        if tag == "body":
            continue
        assert visible and style != "none" and width >= 2, (tag, style, width)
        seen[tag] = style
    assert {"a", "input", "select", "button", "summary"} <= set(seen), seen
    page.context.close()


@pytest.mark.slow
def test_every_control_has_an_accessible_label(site: Site) -> None:
    page = site.page(390)
    unlabelled = {}
    for name, path in site.pages.items():
        page.goto(site.url + path)
        if found := page.evaluate(UNLABELLED_JS):
            unlabelled[name] = found
    assert not unlabelled
    page.context.close()


@pytest.mark.slow
def test_install_commands_break_only_between_words(site: Site) -> None:
    page = site.page(360)
    page.goto(site.url + site.pages["skill"])
    commands = page.locator("pre.command")
    assert commands.count() >= 2
    style = commands.first.evaluate("""(e) => { const s = getComputedStyle(e);
        return [s.whiteSpace, s.overflowWrap, s.wordBreak, s.overflowX]; }""")
    assert style == ["pre-wrap", "normal", "keep-all", "auto"]
    assert "skills-hub install " in commands.first.inner_text()  # the text is unchanged
    split = page.evaluate("""() => [...document.querySelectorAll('pre.command .word')]
        .filter((w) => w.getClientRects().length > 1).map((w) => w.textContent)""")
    words = page.locator("pre.command .word").count()
    assert words >= 6 and not split
    page.context.close()
