"""The invitation page (issue 14): the link an owner sends opens a page that says which org
and role it is for; a signed-in person joins with one button, anyone else makes an account
there (and is signed in) or signs in first. Refusals say why and change nothing."""

from __future__ import annotations

import sqlite3

import pytest
from starlette.testclient import TestClient

from skills_hub.config import Settings
from skills_hub.services import Registry

from .test_pages_learning import Node, parse
from .test_pages_settings import acme, as_user, role_of  # noqa: F401 (fixtures)
from .test_pages_team import PASSWORD, post_forms


def invite(registry: Registry, role: str = "publisher", email: str = "",
           days: int = 7) -> str:
    return registry.invite(registry.account_principal("lead"), "acme", role, email, days)


def join_form(html: str) -> Node:
    """The page's own form (a signed-in page also has the header's sign-out form)."""
    (form,) = [f for f in post_forms(html) if "review" in (f.attrs.get("class") or "")]
    return form


def page_csrf(html: str) -> str:
    return join_form(html).one("input", name="csrf").attrs["value"] or ""


def audit_actions(registry: Registry) -> list[str]:
    return [e.action for e in registry.audit_events(registry.account_principal("lead"),
                                                    org="acme")[0]]


def test_the_page_names_the_org_the_role_and_the_expiry(
        registry: Registry, client: TestClient, acme: None) -> None:  # noqa: F811
    secret = invite(registry, "publisher")
    page = client.get(f"/invite/{secret}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    what = parse(page.text).one("p", class_="invitation-what").text()
    assert "acme" in what and "publisher" in what
    assert page.cookies.get("shub_csrf")  # the new-account form's double-submit cookie
    login = parse(page.text).one("a", class_="invite-login").attrs["href"]
    assert login == f"/login?next=%2Finvite%2F{secret}"


def test_a_new_person_makes_an_account_joins_and_is_signed_in(
        registry: Registry, client: TestClient, acme: None) -> None:  # noqa: F811
    secret = invite(registry, "publisher", email="nia@example.org")
    page = client.get(f"/invite/{secret}")
    assert 'value="nia@example.org"' in page.text  # the invitation's email is offered
    joined = client.post(f"/invite/{secret}", follow_redirects=False, data={
        "username": "nia", "display_name": "Nia", "email": "nia@example.org",
        "password": "a long enough passphrase", "csrf": page_csrf(page.text)})
    assert joined.status_code == 303, joined.text
    assert joined.headers["location"] == "/settings/orgs/acme"
    assert role_of(registry, "nia") == "publisher"
    whoami = client.get("/api/v1/whoami").json()  # the session cookie set by the join
    assert whoami["username"] == "nia"
    assert audit_actions(registry)[:2] == ["invitation.accept", "user.create"]
    used = client.get(f"/invite/{secret}")
    assert used.status_code == 409
    assert "already used" in parse(used.text).one("p", class_="invitation-gone").text()


def test_a_signed_in_person_joins_with_one_button(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, csrf = as_user("outsider")
    secret = invite(registry, "maintainer")
    page = client.get(f"/invite/{secret}")
    assert join_form(page.text).one("button").text() == "Join acme as Outsider"
    assert page_csrf(page.text) == csrf  # the session's token, not a new one
    forged = client.post(f"/invite/{secret}", data={"csrf": "not-the-token"})
    assert forged.status_code == 403 and role_of(registry, "outsider") is None
    joined = client.post(f"/invite/{secret}", data={"csrf": csrf}, follow_redirects=False)
    assert joined.status_code == 303 and role_of(registry, "outsider") == "maintainer"


def test_refusals_are_shown_and_change_nothing(
        registry: Registry, client: TestClient, acme: None) -> None:  # noqa: F811
    secret = invite(registry)
    csrf = page_csrf(client.get(f"/invite/{secret}").text)
    before = audit_actions(registry)
    cases = [
        ({"username": "bob", "password": PASSWORD}, 409),           # a taken username
        ({"username": "newbie", "password": "short"}, 422),          # a weak password
        ({"username": "", "password": ""}, 400),                     # nothing
        ({"username": "Bad Name!", "password": "a long enough passphrase"}, 400),
    ]
    for fields, status in cases:
        refused = client.post(f"/invite/{secret}", data={**fields, "csrf": csrf})
        assert refused.status_code == status, (fields, refused.text)
        error = parse(refused.text).one("div", class_="settings-error")
        assert error.attrs["data-status"] == str(status)
        password = parse(refused.text).find("input", type="password")
        assert all(not p.attrs.get("value") for p in password)  # never given back
    no_cookie = TestClient(client.app).post(f"/invite/{secret}", data={
        "username": "newbie", "password": "a long enough passphrase", "csrf": csrf})
    assert no_cookie.status_code == 403  # the form's cookie is missing: another site's post
    assert registry.store.users.user("newbie") is None
    assert audit_actions(registry) == before
    assert client.get(f"/invite/{secret}").status_code == 200  # still usable


@pytest.mark.sqlite_only
def test_unknown_and_expired_links_say_what_to_do(
        registry: Registry, client: TestClient, settings: Settings,
        acme: None) -> None:  # noqa: F811
    unknown = client.get("/invite/shinv_nope")
    assert unknown.status_code == 404
    gone = parse(unknown.text).one("p", class_="invitation-gone").text()
    assert "does not exist" in gone and "ask the org's owner" in gone.lower()
    assert not post_forms(unknown.text)
    posted = client.post("/invite/shinv_nope", data={"username": "x", "password": "y" * 12})
    assert posted.status_code in (403, 404)
    secret = invite(registry)
    with sqlite3.connect(settings.index_path) as conn:  # the clock moves on
        conn.execute("UPDATE invitations SET expires_at = '2000-01-01T00:00:00+00:00'")
    expired = client.get(f"/invite/{secret}")
    assert expired.status_code == 409 and "expired" in expired.text


def test_the_settings_page_link_opens_the_page_and_the_cli_takes_it(
        registry: Registry, as_user) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    client, csrf = as_user("lead")
    made = client.post("/settings/orgs/acme/invitations", data={"role": "reader", "csrf": csrf})
    url = parse(made.text).one("section", class_="invitation-made").one("pre").text()
    path = "/invite/" + url.rsplit("/invite/", 1)[1]
    assert TestClient(client.app).get(path).status_code == 200
    from skills_hub.cli import _invitation_secret
    assert _invitation_secret(url) == path.rsplit("/", 1)[1]
