"""Pages of a team: the sign-in form, sign-out, the header, the review queue and the proposal
page's review form, all from a browser session with its CSRF token; never a token pasted into
a page (in-process, and once in headless Chromium)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.web.app import create_app

from .conftest import skill_md
from .test_pages_learning import Node, pairs, parse
from .test_proposals import OWNER_STEP, STEPS

PASSWORD = "correct horse battery staple"
SHOTS = Path("/tmp/shots14")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def md(version_note: str = "") -> bytes:
    body = STEPS + (f"\n{version_note}\n" if version_note else "")
    return skill_md("weekly-report", description="Formats the weekly status report.",
                    body=body)


@pytest.fixture
def acme(registry: Registry) -> dict[str, str]:
    """Org `acme` (private, required review, two-person rule): lead owns it, bob publishes,
    cara and dan maintain; `outsider` is no member. weekly-report 1.0.0 is released and bob's
    1.1.0 waits for review. Returns {name: release id}."""
    for name in ("lead", "bob", "cara", "dan", "outsider"):
        registry.add_user(name, password=PASSWORD, display_name=name.title())
    registry.create_org(registry.account_principal("lead"), "acme")
    lead = registry.account_principal("lead")  # now with the org's roles
    for name, role in (("bob", "publisher"), ("cara", "maintainer"), ("dan", "maintainer")):
        registry.set_member(lead, "acme", name, role)
    registry.set_release_policy(lead, "acme", "review", True)
    registry.set_visibility("acme", "private", lead)
    bob, cara = registry.account_principal("bob"), registry.account_principal("cara")
    registry.publish("acme", Bundle({"SKILL.md": md()}), principal=bob, version="1.0.0")
    registry.approve_release(cara, pending_id(registry, "1.0.0"), "first one")
    registry.publish("acme", Bundle({"SKILL.md": md("Add <b>owners</b>.")}), principal=bob,
                     version="1.1.0")
    return {"bob": pending_id(registry, "1.1.0")}


def pending_id(registry: Registry, version: str) -> str:
    row = registry.store.releases.pending_release("acme", "weekly-report", version)
    assert row is not None
    return row.id


def release_state(registry: Registry, release_id: str) -> tuple[str, list[str], str]:
    """The release's state, the released versions and git's tags: what a refusal keeps."""
    row = registry.store.releases.release(release_id)
    assert row is not None
    tags = subprocess.run(["git", "tag", "--list"], cwd=registry.git.path("acme"),
                          capture_output=True, text=True, check=True).stdout
    detail = registry.get_skill("acme", "weekly-report", registry.account_principal("lead"))
    return row.state, [v.version for v in detail.versions], tags


def login_form(client: TestClient, next_: str = "/") -> Node:
    page = client.get("/login", params={"next": next_})
    assert page.status_code == 200
    return parse(page.text).one("form", class_="login")


def sign_in(client: TestClient, username: str, next_: str = "/") -> str:
    """Sign in through the form, as a browser does; the session's CSRF token."""
    form = login_form(client, next_)
    response = client.post("/login", follow_redirects=False, data={
        "username": username, "password": PASSWORD,
        "csrf": form.one("input", name="csrf").attrs["value"] or "", "next": next_})
    assert response.status_code == 303, response.text
    return csrf_of(client)


def signed_in_clients(app: Any) -> Iterator[Callable[[str], tuple[TestClient, str]]]:
    """For an `as_user` fixture: make(name) -> (a TestClient signed in as name, its CSRF
    token); every client is closed at the end."""
    clients: list[TestClient] = []

    def make(name: str) -> tuple[TestClient, str]:
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client, sign_in(client, name)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def csrf_of(client: TestClient) -> str:
    """The CSRF token the pages put into the forms of the signed-in person."""
    header = parse(client.get("/").text).one("header")
    return header.one("form", id="sign-out").one("input", name="csrf").attrs["value"] or ""


def post_forms(html: str) -> list[Node]:
    return [f for f in parse(html).find("form") if (f.attrs.get("method") or "") == "post"]


def decide(client: TestClient, release_id: str, htmx: bool = True, **form: str) -> Any:
    return client.post(f"/review/releases/{release_id}", data=form, follow_redirects=False,
                       headers={"HX-Request": "true"} if htmx else {})


# -- signing in and out -----------------------------------------------------------------


def test_signing_in_sets_the_session_cookie_and_goes_to_next(
        registry: Registry, client: TestClient, acme: dict[str, str]) -> None:
    page = client.get("/login", params={"next": "/review"})
    csrf_cookie = page.cookies.get("shub_csrf")
    assert csrf_cookie and "HttpOnly" in page.headers["set-cookie"]
    html = parse(page.text)
    form = html.one("form", class_="login")
    assert (form.attrs["method"], form.attrs["action"]) == ("post", "/login")
    assert form.one("input", name="csrf").attrs["value"] == csrf_cookie
    assert form.one("input", name="next").attrs["value"] == "/review"
    assert form.one("input", name="password").attrs["type"] == "password"
    assert not html.find("a", class_="oidc-login")  # OpenID Connect is not configured
    assert not html.find("a", class_="sign-in")  # no "Sign in" link on the sign-in page

    signed = client.post("/login", follow_redirects=False, data={
        "username": "cara", "password": PASSWORD, "csrf": csrf_cookie, "next": "/review"})
    assert signed.status_code == 303 and signed.headers["location"] == "/review"
    cookie = next(c for c in signed.headers.get_list("set-cookie")
                  if c.startswith("shub_session="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; Secure behind https
    session_id = client.cookies["shub_session"]
    username, csrf = registry.session_info(session_id) or ("", "")
    assert username == "cara"

    header = parse(client.get("/").text).one("header")
    assert header.one("span", class_="who").text() == "Cara"
    assert header.one("a", class_="review-link").text() == "Review (1)"  # bob's 1.1.0
    assert not header.find("a", class_="sign-in")
    out = header.one("form", id="sign-out")
    assert (out.attrs["action"], out.one("input", name="csrf").attrs["value"]) == (
        "/logout", csrf)
    assert header.one("button", class_="sign-out").attrs["form"] == "sign-out"


def test_anonymous_visitors_get_a_sign_in_link_back_to_where_they_were(
        client: TestClient, acme: dict[str, str]) -> None:
    header = parse(client.get("/search", params={"q": "x"}).text).one("header")
    assert header.one("a", class_="sign-in").attrs["href"] == "/login?next=/search"
    assert not header.find("form", id="sign-out") and not header.find("a", class_="review-link")


def test_the_openid_connect_button_when_configured(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "oidc", seed=False, semantic="off",
                        oidc_issuer="https://id.example.com", oidc_client_id="hub",
                        oidc_client_secret="s3cret")
    registry = Registry(settings)
    registry.start()
    try:
        with TestClient(create_app(settings, registry)) as client:
            link = parse(client.get("/login", params={"next": "/review?x=1"}).text).one(
                "a", class_="oidc-login")
            assert link.attrs["href"] == "/auth/oidc/login?next=/review%3Fx%3D1"
    finally:
        registry.close()


def test_a_wrong_password_rerenders_the_form_401_without_echoing_it(
        registry: Registry, client: TestClient, acme: dict[str, str]) -> None:
    form = login_form(client)
    wrong = "hunter2-not-the-password"
    response = client.post("/login", follow_redirects=False, data={
        "username": "cara", "password": wrong,
        "csrf": form.one("input", name="csrf").attrs["value"] or "", "next": "/"})
    assert response.status_code == 401
    assert wrong not in response.text and "shub_session" not in client.cookies
    page = parse(response.text)
    error = page.one("p", class_="login-error")
    assert error.attrs["data-status"] == "401"
    assert error.text().startswith("the username or password is wrong")
    again = page.one("form", class_="login")
    assert again.one("input", name="username").attrs["value"] == "cara"
    assert "value" not in again.one("input", name="password").attrs
    assert registry.store.audit.audit_events(orgs=None, action="signin.failed")[0].target == "cara"


def test_failed_sign_ins_are_throttled_429_with_retry_after(
        client: TestClient, acme: dict[str, str]) -> None:
    csrf = login_form(client).one("input", name="csrf").attrs["value"] or ""
    for _ in range(10):
        assert client.post("/login", data={"username": "bob", "password": "nope",
                                           "csrf": csrf}).status_code == 401
    limited = client.post("/login", follow_redirects=False, data={
        "username": "bob", "password": PASSWORD, "csrf": csrf})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert "too many failed sign-ins" in parse(limited.text).one("p", class_="login-error").text()
    assert "shub_session" not in client.cookies


@pytest.mark.parametrize("csrf", ["", "forged-value-from-another-site-1234"])
def test_the_sign_in_form_needs_its_csrf_cookie_and_field(
        client: TestClient, acme: dict[str, str], csrf: str) -> None:
    login_form(client)  # the cookie is set; the forged post does not know it
    response = client.post("/login", follow_redirects=False, data={
        "username": "cara", "password": PASSWORD, "csrf": csrf})
    assert response.status_code == 403 and "shub_session" not in client.cookies
    assert parse(response.text).one("p", class_="login-error").attrs["data-status"] == "403"
    # Without the cookie at all (a cross-site post from a browser that never saw the form).
    client.cookies.clear()
    assert client.post("/login", data={"username": "cara", "password": PASSWORD,
                                       "csrf": csrf or "x" * 32}).status_code == 403


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
    "evil.example", "/\t/evil.example"])
def test_next_never_leaves_this_site(client: TestClient, acme: dict[str, str],
                                     target: str) -> None:
    form = login_form(client, target)
    assert form.one("input", name="next").attrs["value"] == "/"
    response = client.post("/login", follow_redirects=False, data={
        "username": "cara", "password": PASSWORD, "next": target,
        "csrf": form.one("input", name="csrf").attrs["value"] or ""})
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_signing_out_needs_the_csrf_token_and_ends_the_session(
        registry: Registry, client: TestClient, acme: dict[str, str]) -> None:
    csrf = sign_in(client, "cara")
    session_id = client.cookies["shub_session"]
    for forged in ({}, {"csrf": "wrong"}):
        refused = client.post("/logout", data=forged, follow_redirects=False)
        assert refused.status_code == 403
        assert registry.session_info(session_id) is not None  # still signed in
    done = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/"
    assert registry.session_info(session_id) is None
    assert "shub_session" not in client.cookies
    assert parse(client.get("/").text).one("header").find("a", class_="sign-in")


def test_a_private_namespace_after_sign_in_and_404_to_an_outsider(
        client: TestClient, acme: dict[str, str]) -> None:
    for path in ("/acme", "/acme/weekly-report"):
        assert client.get(path).status_code == 404
    sign_in(client, "outsider")
    assert client.get("/acme/weekly-report").status_code == 404
    assert not parse(client.get("/").text).find("a", href="/acme/weekly-report")
    sign_in(client, "bob")  # signing in again replaces the outsider's session
    page = client.get("/acme/weekly-report")
    assert page.status_code == 200
    assert parse(page.text).one("article").find("h1")[0].text().startswith("weekly-report")
    assert parse(client.get("/").text).find("a", href="/acme/weekly-report")


# -- the review queue ---------------------------------------------------------------------


def test_the_review_queue_needs_a_signed_in_person(client: TestClient,
                                                   acme: dict[str, str]) -> None:
    response = client.get("/review", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/review"
    assert decide(client, acme["bob"], decision="approve").status_code == 303


def test_a_maintainer_approves_from_the_queue(
        registry: Registry, client: TestClient, acme: dict[str, str]) -> None:
    csrf = sign_in(client, "cara", "/review")
    release = acme["bob"]
    page = parse(client.get("/review").text)
    item = page.one("li", id=f"release-{release}")
    facts = pairs(item.one("dl", class_="facts"))
    assert (facts["Published by"], facts["Replaces"]) == ("bob", "v1.0.0")
    lines = {(span.attrs["class"], span.text()) for span in item.one("pre", class_="diff")
             .find("span")}
    assert ("add", "+Add <b>owners</b>.") in lines  # escaped: text, not markup
    assert not item.find("b")
    assert "Checks: safe" in item.one("p", class_="checks").text()
    assert not item.find("p", class_="two-person")  # bob's, not cara's
    form = item.one("form", class_="review")
    assert form.attrs["hx-post"] == f"/review/releases/{release}"
    assert form.one("input", name="csrf").attrs["value"] == csrf
    assert [b.attrs["value"] for b in form.find("button")] == ["approve", "reject"]

    before = release_state(registry, release)
    for forged in (None, "wrong"):
        sent = {"decision": "approve"} | ({} if forged is None else {"csrf": forged})
        refused = client.post(f"/review/releases/{release}", data=sent,
                              headers={"HX-Request": "true"})
        assert refused.status_code == 403
        error = parse(refused.text).one("p", class_="review-error")
        assert "lacks the session's CSRF token" in error.text()
        assert release_state(registry, release) == before

    done = decide(client, release, decision="approve", comment="ship it", csrf=csrf)
    assert done.status_code == 200 and "<html" not in done.text
    item = parse(done.text).one("li", id=f"release-{release}")
    assert item.attrs["data-state"] == "approved" and not item.find("form")
    assert item.one("a", class_="new-version").attrs["href"] == "/acme/weekly-report/v/1.1.0"
    count = parse(done.text).one("a", id="review-link")  # the header's, out of band
    assert (count.text(), count.attrs["hx-swap-oob"]) == ("Review (0)", "true")
    state, versions, tags = release_state(registry, release)
    assert state == "approved" and "1.1.0" in versions and "1.1.0" in tags
    row = registry.store.releases.release(release)
    assert row is not None and (row.decided_by, row.comment) == ("cara", "ship it")
    after = parse(client.get("/review").text)
    assert "No release waits for your review." in after.one("section", id="releases").text()
    assert after.one("a", class_="review-link").text() == "Review (0)"


def test_rejecting_needs_a_comment_and_a_plain_post_gets_the_whole_page(
        registry: Registry, client: TestClient, acme: dict[str, str]) -> None:
    csrf = sign_in(client, "dan")
    release = acme["bob"]
    before = release_state(registry, release)
    missing = decide(client, release, decision="reject", comment="  ", csrf=csrf)
    assert missing.status_code == 400
    error = parse(missing.text).one("p", class_="review-error")
    assert "say why the release is rejected" in error.text()
    assert release_state(registry, release) == before
    rejected = decide(client, release, htmx=False, decision="reject",
                      comment="owners are optional", csrf=csrf)
    assert rejected.status_code == 200 and "<html" in rejected.text  # works without JS
    item = parse(rejected.text).one("li", id=f"release-{release}")
    assert item.attrs["data-state"] == "rejected"
    assert "Rejected by dan: owners are optional" in item.one("p", class_="decided").text()
    assert release_state(registry, release)[0] == "rejected"
    assert release_state(registry, release)[1:] == before[1:]  # nothing released
    again = decide(client, release, decision="approve", csrf=csrf)  # a stale form
    assert again.status_code == 409
    assert "already rejected" in parse(again.text).one("p", class_="review-error").text()


def test_the_two_person_rule_is_shown_and_enforced(
        registry: Registry, client: TestClient, acme: dict[str, str]) -> None:
    cara = registry.account_principal("cara")
    registry.publish("acme", Bundle({"SKILL.md": md("cara's note")}), principal=cara,
                     version="1.2.0")
    own = pending_id(registry, "1.2.0")
    csrf = sign_in(client, "cara")
    page = parse(client.get("/review").text)
    note = page.one("li", id=f"release-{own}").one("p", class_="two-person")
    assert note.text().startswith("You published this: another maintainer approves it")
    assert not page.one("li", id=f"release-{acme['bob']}").find("p", class_="two-person")
    before = release_state(registry, own)
    refused = decide(client, own, decision="approve", csrf=csrf)
    assert refused.status_code == 403
    error = parse(refused.text).one("p", class_="review-error")
    assert "the two-person rule is on" in error.text()
    assert release_state(registry, own) == before
    # Another maintainer may.
    client.cookies.clear()
    assert decide(client, own, decision="approve",
                  csrf=sign_in(client, "dan")).status_code == 200
    assert release_state(registry, own)[0] == "approved"


def test_a_publisher_has_no_queue_and_cannot_decide(
        registry: Registry, client: TestClient, acme: dict[str, str]) -> None:
    csrf = sign_in(client, "bob")
    header = parse(client.get("/").text).one("header")
    assert header.one("a", class_="review-link").text() == "Review (0)"  # his own namespace
    assert acme["bob"] not in client.get("/review").text
    before = release_state(registry, acme["bob"])
    refused = decide(client, acme["bob"], decision="approve", csrf=csrf)
    assert refused.status_code == 403
    assert release_state(registry, acme["bob"]) == before


# -- the proposal page's review form --------------------------------------------------------


@pytest.fixture
def proposal(registry: Registry, client: TestClient, acme: dict[str, str]) -> str:
    """bob's proposal on acme/weekly-report (through the API with his token)."""
    token = client.post("/api/v1/auth/login", json={"username": "bob", "password": PASSWORD})
    response = client.post("/api/v1/skills/acme/weekly-report/proposals",
                           headers={"Authorization": f"Bearer {token.json()['token']}"},
                           json={"base_version": "1.0.0", "edits": [OWNER_STEP],
                                 "reasoning": "reports were missing owners"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def proposal_status(registry: Registry, proposal_id: str) -> str:
    row = registry.store.proposals.get_proposal(proposal_id)
    assert row is not None
    return row.status


def review(client: TestClient, proposal_id: str, htmx: bool = True, **form: str) -> Any:
    return client.post(f"/acme/weekly-report/proposals/{proposal_id}/review", data=form,
                       headers={"HX-Request": "true"} if htmx else {})


def test_the_proposal_form_works_from_a_session(
        registry: Registry, client: TestClient, proposal: str) -> None:
    url = f"/acme/weekly-report/proposals/{proposal}"
    sign_in(client, "bob")  # the proposer: a publisher, no form
    status = parse(client.get(url).text).one("section", id="proposal-status")
    assert not status.find("form") and "you are not one" in status.text()
    client.cookies.clear()
    csrf = sign_in(client, "cara")
    status = parse(client.get(url).text).one("section", id="proposal-status")
    form = status.one("form", class_="review")
    assert form.one("input", name="csrf").attrs["value"] == csrf
    assert not form.find("input", name="token") and not form.find("input", type="password")

    refused = review(client, proposal, decision="accept", comment="")
    assert refused.status_code == 403
    fragment = parse(refused.text)
    assert "lacks the session's CSRF token" in fragment.one("p", class_="review-error").text()
    assert fragment.one("span", class_="status").text() == "open"
    assert proposal_status(registry, proposal) == "open"

    done = review(client, proposal, decision="accept", comment="good catch", csrf=csrf)
    assert done.status_code == 200 and "<html" not in done.text
    decision = pairs(parse(done.text).one("section", id="proposal-status").one("dl"))
    assert decision["Reviewer"] == "cara" and decision["Comment"] == "good catch"
    assert proposal_status(registry, proposal) == "accepted"


def test_an_anonymous_visitor_gets_a_sign_in_link_not_a_form(
        registry: Registry, client: TestClient, proposal: str) -> None:
    registry.set_visibility("acme", "public")
    url = f"/acme/weekly-report/proposals/{proposal}"
    status = parse(client.get(url).text).one("section", id="proposal-status")
    assert not status.find("form")
    assert status.one("a", class_="sign-in").attrs["href"] == (
        f"/login?next=/acme/weekly-report/proposals/{proposal}")
    refused = review(client, proposal, decision="accept")
    assert refused.status_code == 401
    assert "needs you to sign in" in parse(refused.text).one("p", class_="review-error").text()
    assert proposal_status(registry, proposal) == "open"


def test_every_form_carries_the_sessions_csrf_and_no_page_asks_for_a_token(
        client: TestClient, proposal: str, acme: dict[str, str]) -> None:
    csrf = sign_in(client, "cara")
    pages = ["/", "/search?q=weekly", "/acme", "/acme/weekly-report", "/review",
             f"/acme/weekly-report/proposals/{proposal}", "/acme/nothing-here"]
    seen = 0
    for path in pages:
        html = client.get(path).text
        tree = parse(html)
        assert not tree.find("input", name="token") and not tree.find("input", type="password")
        for form in post_forms(html):
            assert form.one("input", name="csrf").attrs["value"] == csrf, (path, form.attrs)
            seen += 1
    assert seen >= len(pages) + 2  # sign-out everywhere, the release, the proposal
    login = parse(client.get("/login").text)
    assert [i.attrs["name"] for i in login.find("input", type="password")] == ["password"]


# -- in a real browser --------------------------------------------------------------------


@pytest.fixture
def shots() -> Iterator[Path]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield SHOTS


def run_cli(home: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run([sys.executable, "-m", "skills_hub.cli", *args, "--home", str(home)],
                          input=stdin, capture_output=True, text=True, check=True).stdout


@pytest.mark.slow
def test_a_maintainer_signs_in_and_approves_in_chromium(tmp_path: Path, shots: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import Dialog, sync_playwright

    from .live import start_server

    home = tmp_path / "data"
    server = start_server(home)
    api = httpx.Client(base_url=server.url, timeout=30)
    try:
        for name in ("lead", "bob", "cara"):
            run_cli(home, "user", "add", name, "--password-stdin", "--display-name",
                    {"lead": "Lee Ad", "bob": "Bob Builder", "cara": "Cara Maintainer"}[name],
                    stdin=PASSWORD + "\n")

        def token(name: str) -> dict[str, str]:
            got = api.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            return {"Authorization": f"Bearer {got.json()['token']}"}

        lead, bob = token("lead"), token("bob")
        assert api.post("/api/v1/orgs", json={"name": "acme"}, headers=lead).status_code == 201
        for name, role in (("bob", "publisher"), ("cara", "maintainer")):
            assert api.put(f"/api/v1/orgs/acme/members/{name}", json={"role": role},
                           headers=lead).status_code == 200
        assert api.put("/api/v1/namespaces/acme/release-policy", headers=lead,
                       json={"policy": "review", "two_person": True}).status_code == 200
        publish = "/api/v1/namespaces/acme/skills?version="
        assert api.post(publish + "1.0.0", headers=lead,
                        files=[("files", ("SKILL.md", md()))]).status_code in (200, 201, 202)
        hostile = md("Add <script>alert(1)</script> owners.")
        held = api.post(publish + "1.1.0", headers=bob, files=[("files", ("SKILL.md", hostile))])
        assert held.status_code in (200, 201, 202), held.text
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            dialogs: list[str] = []

            def dialog(box: Dialog) -> None:
                dialogs.append(box.message)
                box.dismiss()

            page.on("dialog", dialog)
            page.goto(f"{server.url}/review")
            page.wait_for_url("**/login?next=/review")
            page.get_by_label("Username").fill("cara")
            page.get_by_label("Password").fill("not her password")
            page.get_by_role("button", name="Sign in").click()
            assert "the username or password is wrong" in page.locator(".login-error").inner_text()
            page.screenshot(path=str(shots / "login-1280.png"), full_page=True)
            assert page.get_by_label("Password").input_value() == ""
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/review")
            assert page.locator("header .who").inner_text() == "Cara Maintainer"
            items = page.locator("li.release")
            assert items.count() == 2  # lead's 1.0.0 and bob's 1.1.0 (two-person: both wait)
            page.screenshot(path=str(shots / "review-1280.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(shots / "review-390.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page is {width} px wide on a phone"
            page.set_viewport_size({"width": 1280, "height": 900})
            page.evaluate("window.sameDocument = true")  # gone if the page reloads
            first = items.filter(has_text="acme/weekly-report v1.0.0")
            first.get_by_role("button", name="Reject").click()  # no comment: refused
            first.locator(".review-error").wait_for(timeout=10_000)
            assert "say why" in first.locator(".review-error").inner_text()
            first.get_by_role("button", name="Approve and release v1.0.0").click()
            page.locator(".decided").first.wait_for(timeout=30_000)
            assert page.evaluate("window.sameDocument") is True  # swapped in place by htmx
            assert page.locator("header .review-link").inner_text() == "Review (1)"
            page.screenshot(path=str(shots / "approved-1280.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(f"{server.url}/login")
            page.screenshot(path=str(shots / "login-390.png"), full_page=True)
            page.goto(f"{server.url}/review")
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url(f"{server.url}/")
            assert page.locator("header a.sign-in").inner_text() == "Sign in"
            browser.close()
        assert dialogs == []  # the <script> in the diff never ran
        assert api.get("/api/v1/skills/acme/weekly-report/versions/latest",
                       headers=lead).json()["version"] == "1.0.0"
    finally:
        api.close()
        server.stop()
