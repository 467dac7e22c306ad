"""Settings pages (issue 14): your account and tokens, an org's members, invitations,
namespaces and service accounts, and its audit log; all from a browser session with its CSRF
token, every change through the service (in-process, and once in headless Chromium)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from skills_hub.services import Registry

from .test_pages_learning import Node, parse
from .test_pages_team import CHROMIUM_ARGS, PASSWORD, post_forms, run_cli, signed_in_clients

SHOTS = Path("/tmp/shots-settings")
ORG = "/settings/orgs/acme"
PAGES = ("/settings", "/settings/tokens", ORG, ORG + "/audit")


@pytest.fixture
def acme(registry: Registry) -> None:
    """Org `acme`: lead owns it, bob publishes, rita reads; `outsider` is no member."""
    for name in ("lead", "bob", "rita", "outsider"):
        registry.add_user(name, password=PASSWORD, display_name=name.title())
    registry.create_org(registry.account_principal("lead"), "acme")
    lead = registry.account_principal("lead")
    for name, role in (("bob", "publisher"), ("rita", "reader")):
        registry.set_member(lead, "acme", name, role)


@pytest.fixture
def as_user(app, acme: None) -> Iterator:  # type: ignore[no-untyped-def]
    """as_user(name) -> (a TestClient signed in as name, its CSRF token)."""
    yield from signed_in_clients(app)


def role_of(registry: Registry, name: str) -> str | None:
    return next((m.role for m in registry.store.orgs.members("acme") if m.username == name),
                None)


def error_of(html: str) -> str:
    return parse(html).one("p", class_="settings-error").text()


# -- who may see what ----------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, "/settings/orgs/nope"])
def test_every_page_sends_anonymous_visitors_to_sign_in(
        client: TestClient, acme: None, path: str) -> None:
    got = client.get(path, follow_redirects=False)
    assert got.status_code == 303
    assert got.headers["location"] == "/login?next=" + path.replace("/", "%2F")
    posted = client.post(ORG + "/members/bob", data={"role": "owner"}, follow_redirects=False)
    assert posted.status_code == 303 and posted.headers["location"].startswith("/login?next=")


def test_the_account_page_shows_whoami_and_orgs(as_user) -> None:  # type: ignore[no-untyped-def]
    client, _ = as_user("lead")
    page = parse(client.get("/settings").text)
    assert page.one("dd", class_="username").text() == "lead"
    org = page.one("li", class_="org")
    assert org.attrs["data-org"] == "acme" and "owner" in org.text()
    assert org.one("a", class_="audit-link").attrs["href"] == ORG + "/audit"
    assert parse(client.get("/").text).one("a", class_="settings-link").attrs["href"] \
        == "/settings"


def test_a_non_member_gets_404_on_an_org_page(as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("outsider")
    for path in (ORG, "/settings/orgs/does-not-exist", ORG + "/audit"):
        got = client.get(path)
        assert got.status_code == 404, path
        assert "does not exist, or you are not a member" in got.text
    assert client.post(ORG + "/members/bob", data={"role": "owner", "csrf": csrf}
                       ).status_code == 404


def test_a_reader_sees_members_but_no_owner_controls(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("rita")
    got = client.get(ORG)
    assert got.status_code == 200
    page = parse(got.text)
    members = {li.attrs["data-member"]: li.text() for li in page.find("li", class_="member")}
    assert set(members) == {"lead", "bob", "rita"} and "publisher" in members["bob"]
    # nothing to change, no hidden control: only the header's sign-out form posts
    assert [f.attrs.get("id") for f in post_forms(got.text)] == ["sign-out"]
    assert page.find("a", class_="audit-link") == []
    assert client.get(ORG + "/audit").status_code == 403
    # a forged owner's form from the reader's session, with her CSRF token: refused
    for path, form in ((ORG + "/members/bob", {"role": "owner"}),
                       (ORG + "/members/bob/remove", {}),
                       (ORG + "/members", {"username": "outsider", "role": "owner"}),
                       (ORG + "/invitations", {"role": "owner"}),
                       (ORG + "/namespaces/acme", {"visibility": "public",
                                                   "release_policy": "review"}),
                       (ORG + "/service-accounts", {"name": "ci", "role": "owner"})):
        refused = client.post(path, data={**form, "csrf": csrf}, follow_redirects=False)
        assert refused.status_code == 403, (path, refused.status_code)
        assert "owner" in error_of(refused.text)
    assert [(m.username, m.role) for m in registry.store.orgs.members("acme")] == [
        ("bob", "publisher"), ("lead", "owner"), ("rita", "reader")]
    info = registry.store.namespaces.namespace("acme")
    assert info is not None and info.release_policy == "direct"
    assert registry.store.users.user("acme.ci") is None


def test_a_post_without_the_csrf_token_is_refused(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, _ = as_user("lead")
    for path, form in ((ORG + "/members/bob", {"role": "owner"}),
                       ("/settings/tokens", {"label": "x"}),
                       (ORG + "/members/bob", {"role": "owner", "csrf": "forged"})):
        refused = client.post(path, data=form, follow_redirects=False)
        assert refused.status_code == 403
        assert "CSRF" in error_of(refused.text)
    assert role_of(registry, "bob") == "publisher"
    assert registry.tokens(registry.account_principal("lead")) == []


# -- tokens --------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_revoked(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("bob")
    made = client.post("/settings/tokens", data={
        "csrf": csrf, "label": "laptop", "scopes": ["read", "publish"], "days": "30",
        "namespaces": "acme"})
    assert made.status_code == 200
    secret = parse(made.text).one("pre", class_="secret").text()
    assert secret.startswith("shub_")
    assert "only this once" in made.text
    row = parse(made.text).one("tr", class_="token")
    assert "laptop" in row.text() and "acme" in row.text() and "publish, read" in row.text()
    assert registry.authenticate(secret).username == "bob"
    listed = client.get("/settings/tokens")
    assert secret not in listed.text and parse(listed.text).find("pre", class_="secret") == []
    token_id = row.attrs["data-token"]
    revoked = client.post(f"/settings/tokens/{token_id}/revoke", data={"csrf": csrf},
                          follow_redirects=False)
    assert revoked.status_code == 303 and revoked.headers["location"] == "/settings/tokens"
    page = parse(client.get("/settings/tokens").text)
    assert "revoked" in page.one("tr", class_="token").text()
    with pytest.raises(Exception, match="revoked"):
        registry.authenticate(secret)
    again = client.post(f"/settings/tokens/{token_id}/revoke", data={"csrf": csrf})
    assert again.status_code == 409 and "already revoked" in error_of(again.text)


def test_a_bad_token_form_keeps_what_was_typed(as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("bob")
    got = client.post("/settings/tokens", data={"csrf": csrf, "label": "ci", "days": "9999",
                                                "scopes": ["read"]})
    assert got.status_code == 400 and "days" in error_of(got.text)
    form = parse(got.text).one("form", class_="create-token")
    assert form.one("input", name="label").attrs["value"] == "ci"
    checked = [i.attrs["value"] for i in form.find("input", name="scopes")
               if "checked" in i.attrs]
    assert checked == ["read"]


# -- an org's owner ------------------------------------------------------------------------


def owner_forms(html: str, class_: str) -> list[Node]:
    return [f for f in post_forms(html) if class_ in (f.attrs.get("class") or "").split()]


def test_an_owner_changes_a_role_adds_and_removes_members(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("lead")
    page = client.get(ORG).text
    assert len(owner_forms(page, "set-role")) == 3
    changed = client.post(ORG + "/members/bob", data={"role": "maintainer", "csrf": csrf},
                          follow_redirects=False)
    assert changed.status_code == 303 and changed.headers["location"] == ORG
    assert role_of(registry, "bob") == "maintainer"
    added = client.post(ORG + "/members", data={"username": "outsider", "role": "reader",
                                                "csrf": csrf})
    assert added.status_code == 200 and role_of(registry, "outsider") == "reader"
    missing = client.post(ORG + "/members", data={"username": "ghost", "role": "reader",
                                                  "csrf": csrf})
    assert missing.status_code == 404 and "no account 'ghost'" in error_of(missing.text)
    assert client.post(ORG + "/members/outsider/remove", data={"csrf": csrf}).status_code \
        == 200
    assert role_of(registry, "outsider") is None
    last = client.post(ORG + "/members/lead/remove", data={"csrf": csrf})
    assert last.status_code == 409
    assert "lead is the last owner of acme" in error_of(last.text)
    demoted = client.post(ORG + "/members/lead", data={"role": "reader", "csrf": csrf})
    assert demoted.status_code == 409 and "without an owner" in error_of(demoted.text)
    assert role_of(registry, "lead") == "owner"
    events = [e.action for e in registry.audit_events(registry.account_principal("lead"),
                                                      org="acme")[0]]
    assert events[:3] == ["member.remove", "member.add", "member.role"]


def test_an_owner_makes_an_invitation_and_its_link_is_shown_once(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("lead")
    made = client.post(ORG + "/invitations", data={"role": "publisher", "days": "3",
                                                   "email": "", "csrf": csrf})
    assert made.status_code == 200
    url = parse(made.text).one("section", class_="invitation-made").one("pre").text()
    assert "/invite/shinv_" in url  # the invitation page (tests/test_pages_invitation.py)
    assert url not in client.get(ORG).text
    secret = url.rsplit("/", 1)[1]
    registry.accept_invitation(secret, registry.account_principal("outsider"))
    assert role_of(registry, "outsider") == "publisher"
    bad = client.post(ORG + "/invitations", data={"role": "boss", "csrf": csrf})
    assert bad.status_code == 400


def test_an_owner_changes_visibility_and_release_policy(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("lead")
    (form,) = owner_forms(client.get(ORG).text, "namespace-form")
    assert form.attrs["action"] == ORG + "/namespaces/acme"
    saved = client.post(ORG + "/namespaces/acme", follow_redirects=False, data={
        "visibility": "private", "release_policy": "review", "two_person": "on",
        "csrf": csrf})
    assert saved.status_code == 303
    info = registry.store.namespaces.namespace("acme")
    assert info is not None
    assert (info.visibility, info.release_policy, info.two_person) == (
        "private", "review", True)
    page = parse(client.get(ORG).text).one("li", class_="namespace")
    selected = [o.attrs["value"] for o in page.find("option") if "selected" in o.attrs]
    assert selected == ["private", "review"]
    assert "checked" in page.one("input", name="two_person").attrs
    # a reader now sees the settings as text
    reader, _ = as_user("rita")
    assert "private · releases: review · two-person rule" in parse(
        reader.get(ORG).text).one("li", class_="namespace").text()
    bad = client.post(ORG + "/namespaces/acme", data={"visibility": "secret", "csrf": csrf})
    assert bad.status_code == 400 and "visibility is one of" in error_of(bad.text)


def test_an_owner_creates_a_service_account_and_revokes_its_token(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    client, csrf = as_user("lead")
    made = client.post(ORG + "/service-accounts", data={"name": "ci", "role": "publisher",
                                                        "csrf": csrf})
    assert made.status_code == 200
    _, secret = registry.create_user_token(registry.account_principal("lead"),
                                           account="acme.ci", label="deploy")
    page = parse(client.get(ORG).text).one("li", class_="service")
    assert page.attrs["data-service"] == "acme.ci"
    token = page.one("li", class_="token")
    assert "deploy" in token.text() and secret not in client.get(ORG).text
    revoked = client.post(f"{ORG}/tokens/{token.attrs['data-token']}/revoke",
                          data={"csrf": csrf}, follow_redirects=False)
    assert revoked.status_code == 303
    assert "revoked" in parse(client.get(ORG).text).one("li", class_="service").text()
    with pytest.raises(Exception, match="revoked"):
        registry.authenticate(secret)


# -- the audit log -------------------------------------------------------------------------


def test_the_audit_page_filters_and_pages(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    lead = registry.account_principal("lead")
    for n in range(60):
        registry.set_member(lead, "acme", "bob", ("maintainer", "publisher")[n % 2])
    client, _ = as_user("lead")
    first = parse(client.get(ORG + "/audit").text)
    events = first.find("li", class_="event")
    assert len(events) == 50
    older = first.one("a", class_="older").attrs["href"] or ""
    assert older.startswith("?cursor=")
    second = parse(client.get(ORG + "/audit" + older).text)
    ids = [int(e.attrs["data-event"] or 0) for e in events + second.find("li", class_="event")]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert len(ids) == len(registry.audit_events(lead, org="acme", limit=1000)[0])
    assert second.find("a", class_="older") == []
    assert second.one("a", class_="newest")
    created = parse(client.get(ORG + "/audit", params={"action": "org.create"}).text)
    assert [e.one("span", class_="action").text() for e in created.find("li", class_="event")
            ] == ["org.create"]
    by_rita = parse(client.get(ORG + "/audit", params={"actor": "rita"}).text)
    assert by_rita.find("li", class_="event") == [] and "matches these filters" in \
        by_rita.text()
    later = parse(client.get(ORG + "/audit", params={"since": "2999-01-01"}).text)
    assert later.find("li", class_="event") == []
    # the filters are kept in the "Older" link
    filtered = parse(client.get(ORG + "/audit", params={"action": "member.role"}).text)
    link = filtered.one("a", class_="older").attrs["href"] or ""
    assert "action=member.role" in link and "cursor=" in link
    assert client.get(ORG + "/audit", params={"cursor": "x"}).status_code == 400


def test_the_operator_reads_any_orgs_audit_log(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]
    registry.add_user("root", password=PASSWORD, operator=True)
    client, _ = as_user("root")
    got = client.get(ORG + "/audit")
    assert got.status_code == 200 and "org.create" in got.text


# -- in a browser ----------------------------------------------------------------------------


@pytest.fixture
def shots() -> Iterator[Path]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield SHOTS


@pytest.mark.slow
def test_an_owner_makes_a_token_and_changes_a_role_in_chromium(
        tmp_path: Path, shots: Path) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("chromium is not installed: run `make system-deps` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    from .live import start_server

    home = tmp_path / "data"
    server = start_server(home)
    api = httpx.Client(base_url=server.url, timeout=30)
    try:
        for name in ("lead", "bob"):
            run_cli(home, "user", "add", name, "--password-stdin", "--display-name",
                    {"lead": "Lee Ad", "bob": "Bob Builder"}[name], stdin=PASSWORD + "\n")
        got = api.post("/api/v1/auth/login", json={"username": "lead", "password": PASSWORD})
        lead = {"Authorization": f"Bearer {got.json()['token']}"}
        assert api.post("/api/v1/orgs", json={"name": "acme"}, headers=lead).status_code == 201
        assert api.put("/api/v1/orgs/acme/members/bob", json={"role": "publisher"},
                       headers=lead).status_code == 200
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900},
                                    color_scheme="light")
            page.goto(f"{server.url}/settings/tokens")
            page.wait_for_url("**/login?next=%2Fsettings%2Ftokens")
            page.get_by_label("Username").fill("lead")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/settings/tokens")
            page.get_by_label("Label").fill("laptop")
            page.get_by_label("review").check()
            page.get_by_role("button", name="Create token").click()
            secret = page.locator("pre.secret").inner_text().strip()
            assert secret.startswith("shub_")
            assert api.get("/api/v1/tokens",
                           headers={"Authorization": f"Bearer {secret}"}).status_code == 200
            page.screenshot(path=str(shots / "tokens-1280.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(shots / "tokens-390.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the tokens page is {width} px wide on a phone"
            page.set_viewport_size({"width": 1280, "height": 900})
            page.locator("header a.settings-link").click()
            page.wait_for_url("**/settings")
            page.screenshot(path=str(shots / "account-1280.png"), full_page=True)
            page.get_by_role("link", name="acme").click()
            page.wait_for_url("**/settings/orgs/acme")
            bob = page.locator("li.member[data-member=bob]")
            bob.get_by_label("Role of bob").select_option("maintainer")
            bob.get_by_role("button", name="Change role").click()
            page.wait_for_load_state()
            assert page.locator("li.member[data-member=bob] select").input_value() \
                == "maintainer"
            page.get_by_role("button", name="Make invitation link").click()
            page.locator(".invitation-made").wait_for()
            page.screenshot(path=str(shots / "org-1280.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})
            page.screenshot(path=str(shots / "org-390.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the org page is {width} px wide on a phone"
            page.goto(f"{server.url}/settings/orgs/acme/audit")
            page.screenshot(path=str(shots / "audit-390.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the audit page is {width} px wide on a phone"
            page.set_viewport_size({"width": 1280, "height": 900})
            page.screenshot(path=str(shots / "audit-1280.png"), full_page=True)
            browser.close()
        members = api.get("/api/v1/orgs/acme/members", headers=lead).json()["members"]
        assert {m["username"]: m["role"] for m in members}["bob"] == "maintainer"
    finally:
        api.close()
        server.stop()
