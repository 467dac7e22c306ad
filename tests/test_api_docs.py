"""The API reference page (/docs): the vendored Swagger UI renders /openapi.json under the
site's strict Content-Security-Policy, with every file served from this origin."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from skills_hub.web import docs
from skills_hub.web.middleware import CONTENT_SECURITY_POLICY

from .test_web_hardening import Tags

STATIC = Path(__file__).resolve().parent.parent / "static"
SHOTS = Path("/tmp/shots-docs")


def directives(csp: str) -> dict[str, list[str]]:
    parsed = (part.split() for part in csp.split(";") if part.strip())
    return {words[0]: words[1:] for words in parsed}


def test_docs_page_references_the_versioned_viewer_and_no_inline_script(
        client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    tags = Tags(page.text)
    scripts = [s.get("src") for s in tags.all("script")]
    assert f"/static/{docs.SWAGGER_UI_JS}" in scripts
    assert f"/static/{docs.BOOT_JS}" in scripts
    assert None not in scripts and not tags.inline  # no inline script or style
    assert not [t for t, attrs in tags.tags if "style" in attrs]
    sheets = [link.get("href") for link in tags.all("link") if link.get("rel") == "stylesheet"]
    assert f"/static/{docs.SWAGGER_UI_CSS}" in sheets and f"/static/{docs.DOCS_CSS}" in sheets
    assert docs.SWAGGER_UI in docs.SWAGGER_UI_JS and docs.SWAGGER_UI in docs.SWAGGER_UI_CSS
    roots = [d for d in tags.all("div") if d.get("id") == "swagger-ui"]
    assert roots and roots[0].get("data-url") == "/openapi.json"
    links = [a.get("href") for a in tags.all("a")]
    assert "/" in links and "/openapi.json" in links  # back to the registry, and the raw JSON
    # Nothing names another origin: no CDN, no external font.
    for attrs in tags.tags:
        for name in ("src", "href"):
            assert not (attrs[1].get(name) or "").startswith(("http:", "https:", "//"))


def test_docs_keeps_the_strict_content_security_policy(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    csp = directives(page.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert "'unsafe-eval'" not in page.headers["content-security-policy"]
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def test_the_viewer_files_and_their_licence_are_served(client: TestClient) -> None:
    version = docs.SWAGGER_UI
    for name, kind in ((docs.SWAGGER_UI_JS, "javascript"), (docs.BOOT_JS, "javascript"),
                       (docs.SWAGGER_UI_CSS, "text/css"), (docs.DOCS_CSS, "text/css")):
        answer = client.get(f"/static/{name}")
        assert answer.status_code == 200, name
        assert kind in answer.headers["content-type"], name
        assert answer.content == (STATIC / name).read_bytes()
    bundle = (STATIC / docs.SWAGGER_UI_JS).read_text()
    assert bundle.startswith("/*! For license information please see")  # header kept
    licence = client.get(f"/static/swagger-ui-{version}.LICENSE")
    assert licence.status_code == 200 and "Apache License" in licence.text
    assert "SmartBear" in client.get(f"/static/swagger-ui-{version}.NOTICE").text
    third_party = client.get(f"/static/swagger-ui-bundle-{version}.js.LICENSE.txt")
    assert third_party.status_code == 200 and "MIT" in third_party.text
    # The viewer loads nothing from elsewhere by itself: no web font, no remote stylesheet.
    css = (STATIC / docs.SWAGGER_UI_CSS).read_text()
    assert "@import" not in css and "@font-face" not in css and "url(http" not in css


def test_api_redirects_to_the_docs(client: TestClient) -> None:
    answer = client.get("/api", follow_redirects=False)
    assert answer.status_code == 308 and answer.headers["location"] == "/docs"


def test_docs_is_not_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/docs" not in paths and "/api" not in paths


@pytest.mark.slow
def test_the_viewer_renders_the_operations_in_chromium_under_the_csp(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import ConsoleMessage, Page, Request, Route, sync_playwright

    from .live import start_server

    server = start_server(tmp_path / "data")
    origin = urlsplit(server.url).netloc
    console: list[str] = []
    errors: list[str] = []
    outside: list[str] = []

    def route(route: Route, request: Request) -> None:
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob") or url.netloc == origin:
            route.continue_()
        else:  # offline: nothing leaves the origin, and the test says what tried to
            outside.append(request.url)
            route.abort()

    def watch(page: Page) -> None:
        def log(message: ConsoleMessage) -> None:
            # The site has no favicon (every page): the browser's own 404 for it is not ours.
            if message.type in ("error", "warning") and \
                    not message.location.get("url", "").endswith("/favicon.ico"):
                console.append(f"{message.type}: {message.text}")

        page.on("console", log)
        page.on("pageerror", lambda e: errors.append(str(e)))
        # Violations the page caught itself (a `new Function` in a try) still fire this.
        page.add_init_script("window.__csp = []; document.addEventListener("
                             "'securitypolicyviolation', e => window.__csp.push("
                             "e.effectiveDirective + ' ' + e.blockedURI));")
        page.route("**/*", route)

    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            for width, height, scheme in ((1280, 900, "light"), (390, 844, "light"),
                                          (1280, 900, "dark")):
                page = browser.new_page(viewport={"width": width, "height": height},
                                        color_scheme=scheme)  # type: ignore[arg-type]
                name = f"docs-{width}" + ("-dark" if scheme == "dark" else "")
                watch(page)
                page.goto(server.url + "/docs")
                operation = page.locator('.opblock-summary-path[data-path="/api/v1/skills"]')
                operation.first.wait_for(timeout=20_000)
                assert "/api/v1/skills" in operation.first.inner_text().replace("\u200b", "")
                assert page.locator(".opblock").count() >= 20
                assert page.locator(".info .title").first.inner_text().startswith("skills-hub")
                page.screenshot(path=str(SHOTS / f"{name}-top.png"))
                # An operation opens and shows its responses, rendered from the schemas.
                operation.first.click()
                page.locator(".opblock.is-open .responses-wrapper").first.wait_for(
                    timeout=10_000)
                assert page.locator("a[href='/']").count() >= 1  # back to the registry
                page.screenshot(path=str(SHOTS / f"{name}-operation.png"))
                dark = page.evaluate("document.documentElement.classList.contains('dark-mode')")
                assert dark == (scheme == "dark")  # Swagger UI follows the site's scheme
                violations = page.evaluate("window.__csp")
                assert violations == [], violations
                page.close()
            browser.close()
    finally:
        server.stop()
    assert errors == [], errors
    assert not [m for m in console if "Content Security Policy" in m or "Refused" in m], console
    assert not [m for m in console if m.startswith("error")], console
    assert outside == [], outside
