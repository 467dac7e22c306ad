"""Signing in to the registry through a real OpenID provider: the browser's authorization
code flow ending in a session, the CLI's device grant ending in a token, and refusals that
leave nobody signed in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from skills_hub.config import Settings
from skills_hub.services import Registry
from skills_hub.web.app import create_app

from .oidc_provider import Provider, start_oidc_provider

SERVER = "http://127.0.0.1:8000"
CALLBACK = SERVER + "/auth/oidc/callback"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def op() -> Iterator[Provider]:
    with start_oidc_provider(CALLBACK) as provider:
        yield provider


def hub(tmp_path: Path, op: Provider, issuer: str | None = None) -> TestClient:
    settings = Settings(home=tmp_path / "data", seed=False, semantic="off",
                        public_url=SERVER, oidc_issuer=issuer or op.issuer,
                        oidc_client_id=op.client_id, oidc_client_secret=op.client_secret)
    registry = Registry(settings)
    registry.start()
    return TestClient(create_app(settings, registry), base_url=SERVER)


@pytest.fixture
def client(tmp_path: Path, op: Provider) -> Iterator[TestClient]:
    with hub(tmp_path, op) as test_client:
        yield test_client


def browser_sign_in(client: TestClient, op: Provider, login: str,
                    next_path: str = "/") -> tuple[str, str]:
    """What a browser does: our login route, the provider's pages, our callback. Returns
    the callback's query and the provider's redirect target."""
    start = client.get(f"/auth/oidc/login?next={next_path}", follow_redirects=False)
    assert start.status_code == 302, start.text
    assert start.headers["location"].startswith(op.issuer)
    back = op.login_via_authorization(start.headers["location"], login)
    assert back.startswith(CALLBACK)
    return urlsplit(back).query, back


def test_a_browser_signs_in_and_gets_a_session(client: TestClient, op: Provider) -> None:
    query, _ = browser_sign_in(client, op, "carol", next_path="/examples")
    done = client.get("/auth/oidc/callback?" + query, follow_redirects=False)
    assert done.status_code == 302 and done.headers["location"] == "/examples"
    cookie = done.headers["set-cookie"]
    assert "shub_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    me = client.get("/api/v1/whoami").json()
    assert (me["username"], me["via"], me["email"]) == ("carol", "session",
                                                         "carol@example.test")
    # A write with the session cookie needs the session's CSRF token.
    refused = client.post("/api/v1/orgs", json={"name": "carols"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["message"]
    csrf = client.get("/api/v1/auth/session").json()["csrf"]
    made = client.post("/api/v1/orgs", json={"name": "carols"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    # The second sign-in finds the same account.
    query, _ = browser_sign_in(client, op, "carol")
    client.get("/auth/oidc/callback?" + query, follow_redirects=False)
    assert client.get("/api/v1/whoami").json()["orgs"] == [{"org": "carols", "role": "owner"}]
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code in (
        200, 403)


def test_a_callback_is_used_once_and_a_forged_state_is_refused(client: TestClient,
                                                               op: Provider) -> None:
    query, _ = browser_sign_in(client, op, "erin")
    forged = query.replace("state=", "state=x")
    assert client.get("/auth/oidc/callback?" + forged).status_code == 401
    client.cookies.clear()
    # The real state was not spent by the forgery; it works once, then never again.
    assert client.get("/auth/oidc/callback?" + query,
                      follow_redirects=False).status_code == 302
    client.cookies.clear()
    again = client.get("/auth/oidc/callback?" + query, follow_redirects=False)
    assert again.status_code == 401 and "unknown or expired" in again.text
    assert client.get("/api/v1/whoami").status_code == 401


def test_an_open_redirect_is_not_followed(client: TestClient, op: Provider) -> None:
    query, _ = browser_sign_in(client, op, "frank", next_path="https://evil.example/x")
    done = client.get("/auth/oidc/callback?" + query, follow_redirects=False)
    assert done.headers["location"] == "/"


def test_an_issuer_that_is_not_the_configured_one_is_refused(tmp_path: Path,
                                                            op: Provider) -> None:
    # The provider's discovery document names its own issuer, not this one.
    other = op.issuer.replace("127.0.0.1", "localhost")
    with hub(tmp_path, op, issuer=other) as client:
        response = client.get("/auth/oidc/login", follow_redirects=False)
        assert response.status_code == 401 and "issuer" in response.text


def test_the_cli_device_grant_ends_in_a_token(client: TestClient, op: Provider) -> None:
    grant = client.post("/api/v1/auth/device").json()
    pending = client.post("/api/v1/auth/device/token",
                          json={"device_code": grant["device_code"]})
    assert pending.status_code == 202 and pending.json()["status"] == "authorization_pending"
    op.approve_device(grant["user_code"], "dave")
    done = client.post("/api/v1/auth/device/token",
                       json={"device_code": grant["device_code"], "label": "laptop"})
    assert done.status_code == 200, done.text
    token = done.json()["token"]
    assert token.startswith("shub_") and done.json()["token_info"]["label"] == "laptop"
    me = client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}).json()
    assert (me["username"], me["via"]) == ("dave", "token")
    # The device code is spent.
    assert client.post("/api/v1/auth/device/token",
                       json={"device_code": grant["device_code"]}).status_code == 401


def test_oidc_routes_say_when_it_is_not_configured(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "data", seed=False, semantic="off")
    registry = Registry(settings)
    registry.start()
    with TestClient(create_app(settings, registry)) as client:
        response = client.get("/auth/oidc/login")
        assert response.status_code == 404 and "SKILLS_HUB_OIDC_ISSUER" in response.text
        assert client.post("/api/v1/auth/device").status_code == 404
