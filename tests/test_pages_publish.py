"""Publishing from the browser (issue 14): /publish lists the namespaces a person may publish
to, checks an upload with nothing stored and shows the full report, then publishes exactly
the checked files (or submits them for review). In-process with the session and its CSRF
token, and in headless Chromium with a folder and a zip."""

from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.skill.bundle import from_files

from .conftest import skill_md
from .test_api import hostile_uploads, snapshot
from .test_pages_learning import Node, parse
from .test_pages_look import CONTRAST_JS, UNLABELLED_JS
from .test_pages_team import CHROMIUM_ARGS, PASSWORD, run_cli, signed_in_clients
from .test_publish_check import team  # noqa: F401 (a fixture)
from .test_publish_checks import DROPPER, SHELLY

FRAGMENT = {"HX-Request": "true"}
SHOTS = os.environ.get("SKILLS_HUB_SHOTS")  # read before conftest.hermetic clears it


@pytest.fixture
def orgs(team: dict[str, Any]) -> None:  # noqa: F811
    """The people and orgs of tests/test_publish_check.py's `team`."""


@pytest.fixture
def as_user(app, orgs: None) -> Iterator:  # type: ignore[no-untyped-def]
    """as_user(name) -> (a TestClient signed in as name, its CSRF token)."""
    yield from signed_in_clients(app)


def files(body: str = "Say hello.", extra: dict[str, bytes] | None = None,
          folder: str = "hello-world") -> list[tuple[str, tuple[str, bytes]]]:
    """A dropped folder as publish.js sends it: `files` parts named by path."""
    parts = {"SKILL.md": skill_md(body=body), **(extra or {})}
    return [("files", (f"{folder}/{path}", data)) for path, data in parts.items()]


def content_hash(parts: list[tuple[str, tuple[str, bytes]]]) -> str:
    return from_files([(name, data, False) for _, (name, data) in parts]).content_hash()


def check(client: TestClient, csrf: str | None, parts: list[Any], namespace: str = "acme",
          headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    data = {"namespace": namespace, **fields, **({"csrf": csrf} if csrf else {})}
    return client.post("/publish/check", data=data, files=parts,
                       headers=FRAGMENT if headers is None else headers)


def publish(client: TestClient, csrf: str | None, parts: list[Any], sha: str,
            namespace: str = "acme", headers: dict[str, str] | None = None,
            **fields: str) -> httpx.Response:
    return check_or_publish(client, "/publish", csrf, parts, namespace, headers,
                            content_sha256=sha, **fields)


def check_or_publish(client: TestClient, path: str, csrf: str | None, parts: list[Any],
                     namespace: str, headers: dict[str, str] | None,
                     **fields: str) -> httpx.Response:
    data = {"namespace": namespace, **fields, **({"csrf": csrf} if csrf else {})}
    return client.post(path, data=data, files=parts,
                       headers=FRAGMENT if headers is None else headers)


def confirm_form(html: str) -> dict[str, str]:
    """The hidden fields of the report's Publish form."""
    form = parse(html).one("form", class_="publish-confirm")
    return {i.attrs["name"] or "": i.attrs.get("value") or ""
            for i in form.find("input", type="hidden")}


def outcome(html: str) -> Node:
    return parse(html).one("div", class_="publish-outcome")


def versions(registry: Registry, namespace: str = "acme") -> list[str]:
    skill = registry.store.catalogue.get_skill(namespace, "hello-world")
    if skill is None:
        return []
    return sorted(v.version for v in registry.store.catalogue.versions(skill.id))


# -- who sees what ---------------------------------------------------------------------------


def test_the_page_lists_only_the_namespaces_one_may_publish_to(as_user) -> None:  # type: ignore[no-untyped-def]
    for name, expected in (("bob", ["acme", "bob", "held"]), ("rita", ["rita"]),
                           ("lead", ["acme", "held", "lead", "vault"])):
        client, _ = as_user(name)
        got = client.get("/publish")
        assert got.status_code == 200
        page = parse(got.text)
        select = page.one("form", id="publish-form").one("select", name="namespace")
        assert [o.attrs["value"] for o in select.find("option")] == expected, name
        assert page.one("a", class_="publish-link").attrs["href"] == "/publish"
    held = parse(as_user("bob")[0].get("/publish?namespace=held").text).one(
        "option", value="held")
    assert "selected" in held.attrs and "review required" in held.text()


def test_anonymous_visitors_get_a_sign_in_link_and_change_nothing(
        client: TestClient, settings: Settings, orgs: None) -> None:
    page = parse(client.get("/publish").text)
    assert page.one("a", class_="sign-in-link").attrs["href"] == "/login?next=%2Fpublish"
    assert page.find("form", id="publish-form") == []
    assert page.find("a", class_="publish-link") == []
    before = snapshot(settings)
    for path in ("/publish/check", "/publish"):
        refused = check_or_publish(client, path, None, files(), "acme", None,
                                   content_sha256=content_hash(files()))
        assert refused.status_code == 401
        assert parse(refused.text).one("a", class_="sign-in-link").attrs["href"] \
            == "/login?next=%2Fpublish"
    assert snapshot(settings) == before


def test_a_private_namespace_is_a_404_to_an_outsider_and_a_reader_gets_403(
        registry: Registry, settings: Settings, as_user) -> None:  # type: ignore[no-untyped-def]
    outsider, csrf = as_user("outsider")
    hidden = outsider.get("/publish?namespace=vault")
    assert hidden.status_code == 404
    shown = parse(hidden.text).one("p", class_="publish-error").text()
    missing = outsider.get("/publish?namespace=nope")
    assert missing.status_code == 404
    assert shown == parse(missing.text).one("p", class_="publish-error").text().replace(
        "nope", "vault") == "namespace 'vault' does not exist"
    rita, rita_csrf = as_user("rita")
    before = snapshot(settings)
    refused = check(outsider, csrf, files(), namespace="vault")
    assert refused.status_code == 404 and "vault" in outcome(refused.text).text()
    assert "review" not in outcome(refused.text).text()  # nothing about its policy either
    assert rita.get("/publish?namespace=acme").status_code == 403
    denied = check(rita, rita_csrf, files())
    assert denied.status_code == 403 and "'publisher' role" in outcome(denied.text).text()
    assert snapshot(settings) == before


# -- checking --------------------------------------------------------------------------------


def test_a_check_shows_the_full_report_and_stores_nothing(
        registry: Registry, settings: Settings, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("bob")
    parts = files(extra={"scripts/run.py": SHELLY})
    before = snapshot(settings)
    got = check(client, csrf, parts)
    assert got.status_code == 200, got.text
    assert snapshot(settings) == before
    result = outcome(got.text)
    assert result.attrs["data-status"] == "checked"
    assert "Ready to publish: hello-world 0.1.0" in result.one("h2", class_="result-heading").text()
    assert "published at once" in result.one("dd", class_="what-happens").text()
    findings = result.one("table", class_="findings").text()
    assert "bandit.B602" in findings and "scripts/run.py:5" in findings
    assert result.one("strong", class_="verdict").text() == "caution"
    hidden = confirm_form(got.text)
    assert hidden == {"csrf": csrf, "namespace": "acme", "version": "0.1.0",
                      "content_sha256": content_hash(parts)}
    assert result.one("button", class_="publish-button").text() == "Publish hello-world 0.1.0"


@pytest.mark.parametrize(("body", "extra", "code", "shown"), [
    (DROPPER, {}, "dangerous_skill", "remote-exec"),
    ("Say hello.", {"SKILL.md": b"---\nname: Bad_Name\ndescription: ''\n---\n"},
     "invalid_skill", "name"),
])
def test_a_refused_check_shows_why_and_stores_nothing(
        settings: Settings, as_user, body: str, extra: dict[str, bytes], code: str,  # type: ignore[no-untyped-def]
        shown: str) -> None:
    client, csrf = as_user("bob")
    parts = [("files", ("SKILL.md", extra.get("SKILL.md") or skill_md(body=body)))]
    before = snapshot(settings)
    got = check(client, csrf, parts)
    assert got.status_code == 422
    result = outcome(got.text)
    error = result.one("div", class_="publish-error")
    assert error.attrs["data-code"] == code and "Nothing was stored" in error.text()
    assert result.find("form", class_="publish-confirm") == []
    if code == "dangerous_skill":
        assert shown in result.one("table", class_="findings").text()
    else:
        problems = [li.text() for li in error.find("li", class_="problem")]
        assert any(p.startswith(shown) for p in problems) and len(problems) >= 2
    assert snapshot(settings) == before


@pytest.mark.parametrize(("body", "status", "code"), hostile_uploads())
def test_bad_uploads_are_shown_in_the_page_and_change_nothing(
        settings: Settings, as_user, body: bytes, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("bob")
    before = snapshot(settings)
    got = check(client, csrf, [("archive", ("skill.zip", body))])
    assert got.status_code == status, got.text
    assert outcome(got.text).one("div", class_="publish-error").attrs["data-code"] == code
    assert snapshot(settings) == before


def test_empty_huge_and_foreign_uploads_are_clear_refusals(
        settings: Settings, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("bob")
    before = snapshot(settings)
    # the form sent with no file chosen: an empty `archive` part
    empty = check(client, csrf, [("archive", ("", b""))])
    assert empty.status_code == 400
    assert "choose a skill folder or an archive" in outcome(empty.text).text()
    cap = settings.limits.max_upload_bytes
    huge = check(client, csrf, [("archive", ("big.zip", b"PK\x03\x04" + b"\0" * cap))])
    assert huge.status_code == 413
    assert f"larger than {cap} bytes" in outcome(huge.text).text()
    foreign = client.post("/publish/check", content=b"{}", headers={
        **FRAGMENT, "Content-Type": "application/json"})
    assert foreign.status_code == 400 and "unsupported Content-Type" in foreign.text
    assert snapshot(settings) == before


def test_a_post_without_the_csrf_token_is_refused(
        settings: Settings, as_user) -> None:  # type: ignore[no-untyped-def]
    client, _ = as_user("bob")
    before = snapshot(settings)
    for path, token in (("/publish/check", None), ("/publish", None),
                        ("/publish", "forged")):
        got = check_or_publish(client, path, token, files(), "acme", None,
                               content_sha256=content_hash(files()))
        assert got.status_code == 403, path
        assert "CSRF" in outcome(got.text).text()
    assert snapshot(settings) == before


# -- publishing ------------------------------------------------------------------------------


def test_publish_stores_the_checked_files_and_links_the_version(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("bob")
    parts = files()
    hidden = confirm_form(check(client, csrf, parts).text)
    got = publish(client, csrf, parts, hidden["content_sha256"], version=hidden["version"])
    assert got.status_code == 200, got.text
    result = outcome(got.text)
    assert result.attrs["data-status"] == "published"
    assert result.one("a", class_="version-link").attrs["href"] == "/acme/hello-world/v/0.1.0"
    assert versions(registry) == ["0.1.0"]
    assert client.get("/acme/hello-world/v/0.1.0").status_code == 200
    # the same files again: nothing new, and said so
    again = check(client, csrf, parts)
    assert outcome(again.text).attrs["data-status"] == "unchanged"
    assert parse(again.text).find("form", class_="publish-confirm") == []


def test_publish_refuses_files_other_than_the_checked_ones(
        registry: Registry, settings: Settings, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("bob")
    sha = confirm_form(check(client, csrf, files()).text)["content_sha256"]
    before = snapshot(settings)
    changed = publish(client, csrf, files(body="Say something else."), sha)
    assert changed.status_code == 409
    error = outcome(changed.text).one("div", class_="publish-error")
    assert "not the ones that were checked" in error.text()
    assert "Nothing was stored" in error.text()
    unchecked = publish(client, csrf, files(), "")
    assert unchecked.status_code == 400 and "check the files" in unchecked.text
    assert snapshot(settings) == before and versions(registry) == []


def test_a_namespace_that_requires_review_gets_a_pending_release(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("bob")
    checked = check(client, csrf, files(), namespace="held")
    result = outcome(checked.text)
    assert "Ready to submit for review" in result.one("h2", class_="result-heading").text()
    assert "requires review" in result.one("dd", class_="what-happens").text()
    assert result.one("button", class_="publish-button").text() == "Submit for review"
    hidden = confirm_form(checked.text)
    got = publish(client, csrf, files(), hidden["content_sha256"], namespace="held")
    assert got.status_code == 200
    result = outcome(got.text)
    assert result.attrs["data-status"] == "pending"
    assert result.one("a", class_="review-link").attrs["href"] == "/review"
    assert versions(registry, "held") == []
    pending = registry.store.releases.pending_release("held", "hello-world", "0.1.0")
    assert pending is not None and pending.author == "bob"
    assert pending.id in result.text()


def test_without_javascript_the_page_posts_an_archive_and_shows_the_result_in_place(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("bob")
    page = parse(client.get("/publish").text)
    form = page.one("form", id="publish-form")
    assert form.attrs["action"] == "/publish/check"
    assert form.attrs["enctype"] == "multipart/form-data"
    assert "hidden" in page.one("div", id="drop-zone").attrs  # publish.js shows it
    archive = form.one("input", name="archive")
    assert archive.attrs["type"] == "file"
    zipped = make_zip({"hello-world/SKILL.md": skill_md()})
    checked = check(client, csrf, [("archive", ("hello-world.zip", zipped))], headers={})
    assert checked.status_code == 200
    whole = parse(checked.text)
    assert whole.find("header") and whole.find("form", id="publish-form")
    confirm = whole.one("form", class_="publish-confirm")
    assert confirm.one("input", type="file").attrs["name"] == "archive"
    hidden = confirm_form(checked.text)
    got = publish(client, csrf, [("archive", ("hello-world.zip", zipped))],
                  hidden["content_sha256"], headers={}, version=hidden["version"])
    assert got.status_code == 200
    assert parse(got.text).one("a", class_="version-link").attrs["href"] \
        == "/acme/hello-world/v/0.1.0"
    assert versions(registry) == ["0.1.0"]


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# -- in a browser ----------------------------------------------------------------------------


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(SHOTS or tmp_path / "shots") / "publish"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A real server where bob publishes to org acme (lead owns it), and Chromium."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    from .live import start_server

    home = tmp_path / "data"
    server = start_server(home)
    try:
        for name in ("lead", "bob"):
            run_cli(home, "user", "add", name, "--password-stdin", stdin=PASSWORD + "\n")
        api = httpx.Client(base_url=server.url, timeout=30)
        token = api.post("/api/v1/auth/login",
                         json={"username": "lead", "password": PASSWORD}).json()["token"]
        lead = {"Authorization": f"Bearer {token}"}
        assert api.post("/api/v1/orgs", json={"name": "acme"}, headers=lead).status_code == 201
        assert api.put("/api/v1/orgs/acme/members/bob", json={"role": "publisher"},
                       headers=lead).status_code == 200
        api.close()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            yield server.url, browser
            browser.close()
    finally:
        server.stop()


def browser_sign_in(browser: Any, url: str, width: int, scheme: str = "light") -> Any:
    page = browser.new_context(viewport={"width": width, "height": 900},
                               color_scheme=scheme).new_page()
    page.goto(f"{url}/publish")
    page.locator("a.sign-in-link").click()
    page.wait_for_url("**/login?next=%2Fpublish")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/publish")
    return page


def no_sideways_scroll(page: Any) -> None:
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"the page is {scroll} px wide in a {inner} px window"


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 390])
def test_a_folder_is_checked_and_published_in_chromium(
        live: tuple[str, Any], tmp_path: Path, shots: Path, width: int) -> None:
    url, browser = live
    folder = tmp_path / "upload" / "hello-world"
    (folder / "scripts").mkdir(parents=True)
    (folder / "SKILL.md").write_bytes(skill_md())
    (folder / "scripts" / "run.py").write_bytes(SHELLY)
    (folder / ".DS_Store").write_bytes(b"clutter")
    page = browser_sign_in(browser, url, width)
    assert page.locator("#drop-zone").is_visible()  # publish.js is running
    page.get_by_label("Namespace").select_option("acme")
    page.get_by_label("Choose a folder").set_input_files(str(folder))
    chosen = page.locator("#chosen")
    chosen.wait_for()
    assert "Folder hello-world: 2 files" in chosen.inner_text()
    assert ".DS_Store" not in chosen.inner_text()
    no_sideways_scroll(page)
    page.screenshot(path=str(shots / f"chosen-{width}.png"), full_page=True)
    page.get_by_role("button", name="Check").click()
    heading = page.locator(".publish-outcome h2.result-heading")
    heading.wait_for()
    assert "Ready to publish: hello-world 0.1.0" in heading.inner_text()
    assert "bandit.B602" in page.locator("table.findings").inner_text()
    assert not page.locator(".publish-again").is_visible()  # the page holds the files
    no_sideways_scroll(page)
    assert page.evaluate(CONTRAST_JS) == [] and page.evaluate(UNLABELLED_JS) == []
    page.screenshot(path=str(shots / f"checked-{width}.png"), full_page=True)
    answer = httpx.get(f"{url}/api/v1/skills/acme/hello-world")
    assert answer.status_code == 404  # checked, not stored
    page.get_by_role("button", name="Publish hello-world 0.1.0").click()
    page.locator(".publish-outcome[data-status=published]").wait_for()
    page.screenshot(path=str(shots / f"published-{width}.png"), full_page=True)
    page.locator("a.version-link").click()
    page.wait_for_url("**/acme/hello-world/v/0.1.0")
    stored = httpx.get(f"{url}/api/v1/skills/acme/hello-world/versions/0.1.0").json()
    assert sorted(f["path"] for f in stored["files"]) == ["SKILL.md", "scripts/run.py"]
    page.context.close()


@pytest.mark.slow
def test_a_zip_is_checked_and_published_in_chromium_in_the_dark(
        live: tuple[str, Any], tmp_path: Path, shots: Path) -> None:
    url, browser = live
    archive = tmp_path / "hello-world.zip"
    archive.write_bytes(make_zip({"hello-world/SKILL.md": skill_md(body="Say hello, zipped.")}))
    page = browser_sign_in(browser, url, 390, "dark")
    assert page.get_by_label("Namespace").input_value() == "bob"
    zone = page.locator("#drop-zone")
    zone.dispatch_event("dragenter")
    assert "drag-over" in (zone.get_attribute("class") or "")
    assert page.evaluate(CONTRAST_JS) == []  # the drag-over colours too
    # a scripted drop of the zip (a real drag from the desktop is not scriptable)
    dropped = page.evaluate_handle(
        """([name, bytes]) => { const t = new DataTransfer();
             t.items.add(new File([new Uint8Array(bytes)], name)); return t; }""",
        ["hello-world.zip", list(archive.read_bytes())])
    zone.dispatch_event("drop", {"dataTransfer": dropped})
    assert "drag-over" not in (zone.get_attribute("class") or "")
    page.locator("#chosen").wait_for()
    assert "Archive hello-world.zip" in page.locator("#chosen").inner_text()
    page.get_by_label("Choose an archive (.zip or .tar.gz)").set_input_files(str(archive))
    assert "Archive hello-world.zip" in page.locator("#chosen").inner_text()
    page.locator("#drop-zone").focus()
    outline = page.evaluate("getComputedStyle(document.getElementById('drop-zone')).outlineStyle")
    assert outline == "solid"  # the drop zone shows keyboard focus
    page.get_by_role("button", name="Check").click()
    page.locator(".publish-outcome[data-status=checked]").wait_for()
    no_sideways_scroll(page)
    assert page.evaluate(CONTRAST_JS) == [] and page.evaluate(UNLABELLED_JS) == []
    page.screenshot(path=str(shots / "checked-390-dark.png"), full_page=True)
    page.get_by_role("button", name="Publish hello-world 0.1.0").click()
    page.locator(".publish-outcome[data-status=published]").wait_for()
    assert page.evaluate(CONTRAST_JS) == []
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(shots / "published-1280-dark.png"), full_page=True)
    page.locator("a.version-link").click()
    page.wait_for_url("**/bob/hello-world/v/0.1.0")  # bob's own namespace: the default
    page.context.close()


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_refusals_in_chromium_are_clear_and_offer_no_publish(
        live: tuple[str, Any], tmp_path: Path, shots: Path, scheme: str) -> None:
    url, browser = live
    notes = tmp_path / "upload" / "notes"
    notes.mkdir(parents=True)
    (notes / "README.md").write_text("no skill here\n")
    dangerous = tmp_path / "upload" / "hello-world"
    dangerous.mkdir()
    (dangerous / "SKILL.md").write_bytes(skill_md(body=DROPPER))
    page = browser_sign_in(browser, url, 390, scheme)
    page.get_by_label("Choose a folder").set_input_files(str(notes))
    error = page.locator("#client-error")
    error.wait_for()
    assert "no SKILL.md" in error.inner_text()  # refused before anything is sent
    assert page.get_by_role("button", name="Check").is_disabled()
    page.get_by_label("Choose a folder").set_input_files(str(dangerous))
    page.get_by_role("button", name="Check").click()
    refused = page.locator(".publish-outcome[data-status='422']")
    refused.wait_for()
    assert "dangerous" in page.locator("section.report").inner_text()
    assert page.locator("form.publish-confirm").count() == 0
    assert page.evaluate(CONTRAST_JS) == []
    no_sideways_scroll(page)
    page.screenshot(path=str(shots / f"refused-390-{scheme}.png"), full_page=True)
    assert httpx.get(url + "/api/v1/skills/bob/hello-world").status_code == 404
    page.context.close()


def test_publish_js_holds_no_inline_script_and_the_page_loads_it() -> None:
    """The strict CSP allows only script files: the page names static/publish.js."""
    template = (Path(__file__).parents[1] / "templates" / "publish.html").read_text()
    assert '<script src="/static/publish.js" defer></script>' in template
    assert re.search(r"<script(?![^>]*\bsrc=)", template) is None
    assert not re.search(r"\son[a-z]+=", template)
