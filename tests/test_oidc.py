"""OpenID Connect sign-in (skills_hub.access.oidc).

The slow tests run against a real OpenID provider (oidc-provider, see tests/oidc_provider.py)
and sign in through its real pages. Each refusal comes with a control: the same input, minus
the one defect, is accepted, so the refusal is the check's doing and nothing else's.
The fast tests stand a scripted provider (httpx.MockTransport) in for the edge cases a real
provider will not produce on demand: key rotation, alg "none", HS256, odd error answers.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from skills_hub.access.oidc import (
    LEEWAY,
    AuthRequest,
    OidcClient,
    OidcError,
    OidcIdentity,
    client_from_settings,
)
from skills_hub.config import Settings

from .live import free_port
from .oidc_provider import Provider, start_oidc_provider

REDIRECT_URI = "http://127.0.0.1:8000/auth/oidc/callback"


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"},
                               private=True)


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- against the real provider ---------------------------------------------------------------


@pytest.fixture(scope="module")
def op() -> Iterator[Provider]:
    with start_oidc_provider(REDIRECT_URI) as provider:
        yield provider


@pytest.fixture
def oidc(op: Provider) -> Iterator[OidcClient]:
    with OidcClient(op.issuer, op.client_id, op.client_secret) as client:
        yield client


def sign_in(op: Provider, oidc: OidcClient, login: str = "alice") -> tuple[AuthRequest, dict]:
    """Start a sign-in, log in at the provider: the request and the redirect's parameters."""
    request = oidc.authorization_request(REDIRECT_URI)
    return request, query(op.login_via_authorization(request.url, login))


def finish(oidc: OidcClient, request: AuthRequest, params: dict, **changes: str) -> OidcIdentity:
    args = {"state": request.state, "nonce": request.nonce,
            "code_verifier": request.code_verifier, "redirect_uri": REDIRECT_URI, **changes}
    return oidc.finish_authorization(params, **args)


def real_id_token(op: Provider, oidc: OidcClient, login: str = "alice") -> tuple[str, str]:
    """An ID token the provider issued (redeemed by hand, unvalidated), and its nonce."""
    request, params = sign_in(op, oidc, login)
    response = httpx.post(oidc.metadata()["token_endpoint"], auth=(op.client_id, op.client_secret),
                          data={"grant_type": "authorization_code", "code": params["code"],
                                "redirect_uri": REDIRECT_URI,
                                "code_verifier": request.code_verifier})
    assert response.status_code == 200, response.text
    return response.json()["id_token"], request.nonce


@pytest.mark.slow
def test_discovery(op: Provider, oidc: OidcClient) -> None:
    meta = oidc.metadata()
    assert meta["issuer"] == op.issuer
    assert meta["token_endpoint"].startswith(op.issuer)
    assert "S256" in meta["code_challenge_methods_supported"]
    assert oidc.supports_device_flow()
    assert oidc.metadata() is meta  # fetched once


@pytest.mark.slow
def test_authorization_code_flow_with_pkce(op: Provider, oidc: OidcClient) -> None:
    request, params = sign_in(op, oidc, "alice")
    sent = query(request.url)
    assert sent["code_challenge_method"] == "S256" and sent["code_challenge"]
    assert sent["state"] == request.state and sent["nonce"] == request.nonce
    assert sent["scope"] == "openid email profile"
    assert params["state"] == request.state and params["code"]

    identity = finish(oidc, request, params)

    assert identity == OidcIdentity(issuer=op.issuer, subject="alice",
                                    email="alice@example.test", email_verified=True,
                                    name="Name alice", preferred_username="alice")


def test_each_sign_in_has_fresh_secrets(scripted: OidcClient) -> None:
    first, second = (scripted.authorization_request(REDIRECT_URI) for _ in range(2))
    assert first.state != second.state and first.nonce != second.nonce
    assert first.code_verifier != second.code_verifier and len(first.code_verifier) >= 43


@pytest.mark.slow
def test_device_flow(op: Provider, oidc: OidcClient) -> None:
    grant = oidc.start_device()
    assert grant.user_code and grant.verification_uri.startswith(op.issuer)
    assert grant.expires_in > 0 and grant.interval > 0

    assert oidc.poll_device(grant.device_code) is None  # nobody approved yet
    assert oidc.poll_device_status(grant.device_code) == "authorization_pending"

    op.approve_device(grant.user_code, "bob")
    identity = oidc.poll_device(grant.device_code)

    assert identity == OidcIdentity(issuer=op.issuer, subject="bob", email="bob@example.test",
                                    email_verified=True, name="Name bob",
                                    preferred_username="bob")
    with pytest.raises(OidcError):  # a device code signs in once
        oidc.poll_device(grant.device_code)


@pytest.mark.slow
def test_device_flow_through_the_complete_uri(op: Provider, oidc: OidcClient) -> None:
    grant = oidc.start_device()
    assert grant.verification_uri_complete
    op.approve_device(grant.user_code, "carol", grant.verification_uri_complete)
    identity = oidc.poll_device(grant.device_code)
    assert identity is not None and identity.subject == "carol"


@pytest.mark.slow
def test_wrong_state_is_refused(op: Provider, oidc: OidcClient) -> None:
    request, params = sign_in(op, oidc)
    other = oidc.authorization_request(REDIRECT_URI)
    with pytest.raises(OidcError, match="state does not match"):
        finish(oidc, request, params, state=other.state)
    with pytest.raises(OidcError, match="state does not match"):
        finish(oidc, request, {k: v for k, v in params.items() if k != "state"})
    assert finish(oidc, request, params).subject == "alice"  # control: the right state


@pytest.mark.slow
def test_wrong_nonce_is_refused(op: Provider, oidc: OidcClient) -> None:
    request, params = sign_in(op, oidc)
    with pytest.raises(OidcError, match="nonce does not match"):
        finish(oidc, request, params, nonce=oidc.authorization_request(REDIRECT_URI).nonce)


@pytest.mark.slow
def test_wrong_code_verifier_is_refused(op: Provider, oidc: OidcClient) -> None:
    request, params = sign_in(op, oidc)
    with pytest.raises(OidcError, match="invalid_grant"):
        finish(oidc, request, params, code_verifier="x" * 64)


@pytest.mark.slow
def test_a_code_is_redeemed_once(op: Provider, oidc: OidcClient) -> None:
    request, params = sign_in(op, oidc)
    assert finish(oidc, request, params).subject == "alice"
    with pytest.raises(OidcError, match="already used"):
        finish(oidc, request, params)


@pytest.mark.slow
def test_a_provider_error_is_refused(op: Provider, oidc: OidcClient) -> None:
    request = oidc.authorization_request(REDIRECT_URI)
    params = {"error": "access_denied", "error_description": "End-User aborted interaction",
              "state": request.state, "iss": op.issuer}
    with pytest.raises(OidcError, match="access_denied: End-User aborted"):
        finish(oidc, request, params)


@pytest.mark.slow
def test_real_id_token_validates(op: Provider, oidc: OidcClient) -> None:
    token, nonce = real_id_token(op, oidc, "dave")
    identity = oidc.validate_id_token(token, nonce=nonce)
    assert (identity.issuer, identity.subject) == (op.issuer, "dave")


@pytest.mark.slow
def test_tampered_id_token_is_refused(op: Provider, oidc: OidcClient) -> None:
    token, nonce = real_id_token(op, oidc, "dave")
    header, payload, signature = token.split(".")
    # Claim to be someone else, keeping the provider's signature.
    claims = json.loads(unb64(payload))
    claims["sub"] = "admin"
    forged = ".".join([header, b64(json.dumps(claims).encode()), signature])
    with pytest.raises(OidcError, match="signature does not verify"):
        oidc.validate_id_token(forged, nonce=nonce)
    # Flip one byte of the payload.
    raw = bytearray(unb64(payload))
    raw[len(raw) // 2] ^= 0x01
    with pytest.raises(OidcError, match="signature does not verify"):
        oidc.validate_id_token(".".join([header, b64(bytes(raw)), signature]), nonce=nonce)
    # The same claims re-signed with a fresh key that claims the provider's key id.
    impostor = new_key(op.signing_key.kid or "")
    with pytest.raises(OidcError, match="signature does not verify"):
        oidc.validate_id_token(op.sign(json.loads(unb64(payload)), impostor), nonce=nonce)
    # ...and with a key id of its own.
    with pytest.raises(OidcError, match="key the OpenID provider does not publish"):
        oidc.validate_id_token(op.sign(json.loads(unb64(payload)), new_key("mallory")),
                               nonce=nonce)
    assert oidc.validate_id_token(token, nonce=nonce).subject == "dave"  # control


@pytest.mark.slow
def test_a_token_from_another_issuer_is_refused(op: Provider, oidc: OidcClient) -> None:
    claims = op.id_token_claims(iss="https://evil.example")
    # From the other issuer's own key, which the provider does not publish...
    with pytest.raises(OidcError):
        oidc.validate_id_token(op.sign(claims, new_key("evil")), nonce=None)
    # ...and even signed with the provider's own key: the issuer check alone.
    with pytest.raises(OidcError, match="issued by someone other"):
        oidc.validate_id_token(op.sign(claims), nonce=None)


REFUSED_CLAIMS: dict[str, tuple[Callable[[int], dict[str, Any]], str]] = {
    "expired": (lambda now: {"iat": now - 3600, "exp": now - LEEWAY - 30, "auth_time": None},
                "has expired"),
    "issued in the future": (lambda now: {"iat": now + LEEWAY + 60, "exp": now + 3600},
                             "dated in the future"),
    "wrong audience": (lambda now: {"aud": "someone-else"}, "another client"),
    "wrong audience, our azp": (lambda now: {"aud": "someone-else", "azp": "skills-hub"},
                                "another client"),
    "audiences without azp": (lambda now: {"aud": ["skills-hub", "someone-else"]},
                              "another client"),
    "azp of another client": (lambda now: {"aud": ["skills-hub", "someone-else"],
                                           "azp": "someone-else"}, "another client"),
    "wrong issuer": (lambda now: {"iss": "https://evil.example"}, "issued by someone other"),
    "wrong nonce": (lambda now: {"nonce": "another-nonce"}, "nonce does not match"),
    "no nonce": (lambda now: {"nonce": None}, "nonce"),
    "no subject": (lambda now: {"sub": None}, "'sub'"),
    "no expiry": (lambda now: {"exp": None}, "'exp'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(REFUSED_CLAIMS))
def test_bad_claims_are_refused(op: Provider, oidc: OidcClient, case: str) -> None:
    changes, message = REFUSED_CLAIMS[case]
    good = op.id_token_claims(nonce="the-nonce")
    assert oidc.validate_id_token(op.sign(good), nonce="the-nonce").subject == "alice"
    bad = op.id_token_claims(**{"nonce": "the-nonce", **changes(int(time.time()))})
    with pytest.raises(OidcError, match=message):
        oidc.validate_id_token(op.sign(bad), nonce="the-nonce")


@pytest.mark.slow
def test_small_leeway_for_clocks(op: Provider, oidc: OidcClient) -> None:
    now = int(time.time())
    late = op.id_token_claims(iat=now - 600, exp=now - LEEWAY // 2)
    assert oidc.validate_id_token(op.sign(late), nonce=None).subject == "alice"
    several = op.id_token_claims(aud=["skills-hub", "someone-else"], azp="skills-hub")
    assert oidc.validate_id_token(op.sign(several), nonce=None).subject == "alice"


@pytest.mark.slow
def test_discovery_naming_another_issuer_is_refused(op: Provider) -> None:
    # The same provider reached by another name: its discovery names 127.0.0.1, not localhost.
    alias = op.issuer.replace("127.0.0.1", "localhost")
    for issuer in (alias, op.issuer + "/"):
        with OidcClient(issuer, op.client_id, op.client_secret) as client:
            with pytest.raises(OidcError, match="calls itself"):
                client.metadata()
            with pytest.raises(OidcError, match="calls itself"):
                client.authorization_request(REDIRECT_URI)


@pytest.mark.slow
def test_provider_down_mid_sign_in() -> None:
    with start_oidc_provider(REDIRECT_URI) as provider:
        client = OidcClient(provider.issuer, provider.client_id, provider.client_secret,
                            timeout=5)
        request, params = sign_in(provider, client)
    with client, pytest.raises(OidcError, match="could not reach the OpenID provider"):
        finish(client, request, params)


# -- without a provider ----------------------------------------------------------------------

ISSUER = "https://op.example.test"


class ScriptedProvider:
    """Answers as an OpenID provider would, from attributes a test may change."""

    def __init__(self) -> None:
        self.key = new_key("k1")
        self.keys = [self.key]
        self.metadata: dict[str, Any] = {
            "issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth",
            "token_endpoint": f"{ISSUER}/token", "jwks_uri": f"{ISSUER}/jwks",
            "userinfo_endpoint": f"{ISSUER}/me",
            "device_authorization_endpoint": f"{ISSUER}/device/auth",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"]}
        self.token: Callable[[httpx.Request], httpx.Response] = self.good_token
        self.userinfo: dict[str, Any] = {"sub": "alice", "email": "alice@example.test",
                                         "email_verified": True}
        self.requests: list[httpx.Request] = []

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "alice", "aud": "skills-hub", "iat": now,
                  "exp": now + 300, "nonce": "n0nce", **changes}
        return {key: value for key, value in claims.items() if value is not None}

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None) -> str:
        key = key or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def good_token(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "at", "token_type": "Bearer",
                                         "id_token": self.sign(self.claims())})

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.metadata)
        if path == "/jwks":
            return httpx.Response(200, json={"keys": [k.as_dict(private=False)
                                                      for k in self.keys]})
        if path == "/token":
            return self.token(request)
        if path == "/me":
            return httpx.Response(200, json=self.userinfo)
        return httpx.Response(404)

    def fetches(self, path: str) -> int:
        return sum(1 for request in self.requests if request.url.path == path)


@pytest.fixture
def fake() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def scripted(fake: ScriptedProvider) -> Iterator[OidcClient]:
    with httpx.Client(transport=httpx.MockTransport(fake.handle)) as http:
        yield OidcClient(ISSUER, "skills-hub", "s3cret", http=http)


def finish_scripted(client: OidcClient, **params: str) -> OidcIdentity:
    return client.finish_authorization({"code": "c0de", "state": "st4te", **params},
                                       state="st4te", nonce="n0nce", code_verifier="v" * 43,
                                       redirect_uri=REDIRECT_URI)


def test_no_issuer_no_client(tmp_path: Path) -> None:
    assert client_from_settings(Settings(home=tmp_path)) is None
    client = client_from_settings(Settings(home=tmp_path, oidc_issuer=ISSUER,
                                           oidc_client_id="skills-hub"))
    assert client is not None and client.issuer == ISSUER and client.client_secret is None
    client.close()
    with pytest.raises(OidcError, match="SKILLS_HUB_OIDC_CLIENT_ID"):
        client_from_settings(Settings(home=tmp_path, oidc_issuer=ISSUER))


@pytest.mark.parametrize("issuer", ["http://op.example.test", "ftp://op.example.test", "op"])
def test_issuer_must_be_https_off_loopback(issuer: str) -> None:
    with pytest.raises(OidcError, match="not an https:// URL"):
        OidcClient(issuer, "skills-hub", "s")


def test_token_request_and_client_secret_basic(fake: ScriptedProvider,
                                               scripted: OidcClient) -> None:
    identity = finish_scripted(scripted)
    assert identity == OidcIdentity(ISSUER, "alice", "alice@example.test", True, None, None)
    (token_request,) = [r for r in fake.requests if r.url.path == "/token"]
    body = dict(parse_qsl(token_request.content.decode()))
    assert body == {"grant_type": "authorization_code", "code": "c0de",
                    "redirect_uri": REDIRECT_URI, "code_verifier": "v" * 43}
    expected = "Basic " + base64.b64encode(b"skills-hub:s3cret").decode()
    assert token_request.headers["authorization"] == expected


def test_client_secret_post_when_basic_is_not_offered(fake: ScriptedProvider,
                                                      scripted: OidcClient) -> None:
    fake.metadata["token_endpoint_auth_methods_supported"] = ["client_secret_post"]
    finish_scripted(scripted)
    (token_request,) = [r for r in fake.requests if r.url.path == "/token"]
    body = dict(parse_qsl(token_request.content.decode()))
    assert body["client_id"] == "skills-hub" and body["client_secret"] == "s3cret"
    assert "authorization" not in token_request.headers


def test_no_supported_client_auth_method(fake: ScriptedProvider, scripted: OidcClient) -> None:
    fake.metadata["token_endpoint_auth_methods_supported"] = ["private_key_jwt"]
    with pytest.raises(OidcError, match="private_key_jwt"):
        finish_scripted(scripted)


def test_state_is_checked_before_anything_is_sent(fake: ScriptedProvider,
                                                  scripted: OidcClient) -> None:
    with pytest.raises(OidcError, match="state does not match"):
        finish_scripted(scripted, state="another")
    with pytest.raises(OidcError, match="state does not match"):
        scripted.finish_authorization({"code": "c0de", "state": ""}, state="", nonce="n",
                                      code_verifier="v" * 43, redirect_uri=REDIRECT_URI)
    assert fake.requests == []


def test_a_response_from_another_issuer_is_refused(fake: ScriptedProvider,
                                                   scripted: OidcClient) -> None:
    fake.metadata["authorization_response_iss_parameter_supported"] = True
    with pytest.raises(OidcError, match="comes from 'https://evil.example'"):
        finish_scripted(scripted, iss="https://evil.example")
    with pytest.raises(OidcError, match="comes from None"):  # promised but missing
        finish_scripted(scripted)
    assert fake.fetches("/token") == 0
    assert finish_scripted(scripted, iss=ISSUER).subject == "alice"  # control


def test_an_unpromised_iss_is_still_checked(fake: ScriptedProvider,
                                            scripted: OidcClient) -> None:
    with pytest.raises(OidcError, match="comes from 'https://evil.example'"):
        finish_scripted(scripted, iss="https://evil.example")
    assert finish_scripted(scripted).subject == "alice"  # control: no iss, none promised


def test_provider_error_params(scripted: OidcClient) -> None:
    with pytest.raises(OidcError, match="access_denied"):
        finish_scripted(scripted, error="access_denied")
    with pytest.raises(OidcError, match="no authorization code"):
        finish_scripted(scripted, code="")


@pytest.mark.parametrize("answer, message", [
    (httpx.Response(400, json={"error": "invalid_grant"}), "invalid_grant"),
    (httpx.Response(401, json={"error": "invalid_client"}), "SKILLS_HUB_OIDC_CLIENT_SECRET"),
    (httpx.Response(500, text="oops"), "HTTP 500"),
    (httpx.Response(200, text="<html>"), "sent no token"),
    (httpx.Response(200, json={"access_token": "at", "token_type": "Bearer"}), "no ID token"),
])
def test_token_endpoint_failures(fake: ScriptedProvider, scripted: OidcClient,
                                 answer: httpx.Response, message: str) -> None:
    fake.token = lambda request: answer
    with pytest.raises(OidcError, match=message):
        finish_scripted(scripted)


def test_discovery_is_fetched_once_and_checked(fake: ScriptedProvider,
                                               scripted: OidcClient) -> None:
    assert scripted.metadata()["issuer"] == ISSUER
    scripted.metadata()
    scripted.authorization_request(REDIRECT_URI)
    assert fake.fetches("/.well-known/openid-configuration") == 1


@pytest.mark.parametrize("change, message", [
    ({"issuer": ISSUER + "/"}, "calls itself"),
    ({"jwks_uri": None}, "lacks jwks_uri"),
])
def test_bad_discovery_documents(fake: ScriptedProvider, scripted: OidcClient,
                                 change: dict[str, Any], message: str) -> None:
    fake.metadata.update(change)
    with pytest.raises(OidcError, match=message):
        scripted.metadata()


def test_discovery_answers_that_are_not_documents(fake: ScriptedProvider) -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, text="<html>")])
    with httpx.Client(transport=httpx.MockTransport(lambda r: next(answers))) as http:
        client = OidcClient(ISSUER, "skills-hub", None, http=http)
        with pytest.raises(OidcError, match="HTTP 503"):
            client.metadata()
        with pytest.raises(OidcError, match="not a JSON object"):
            client.metadata()


def test_provider_unreachable() -> None:
    with OidcClient(f"http://127.0.0.1:{free_port()}", "skills-hub", "s", timeout=2) as client:
        with pytest.raises(OidcError, match="could not reach the OpenID provider"):
            client.metadata()


def test_keys_are_refetched_once_for_an_unknown_key(fake: ScriptedProvider,
                                                    scripted: OidcClient) -> None:
    assert scripted.validate_id_token(fake.sign(fake.claims()), nonce="n0nce")
    rotated = new_key("k2")
    fake.keys = [fake.key, rotated]  # the provider rotates its keys
    assert scripted.validate_id_token(fake.sign(fake.claims(), rotated), nonce="n0nce")
    assert fake.fetches("/jwks") == 2
    assert scripted.validate_id_token(fake.sign(fake.claims(), rotated), nonce="n0nce")
    assert fake.fetches("/jwks") == 2  # cached again
    with pytest.raises(OidcError, match="does not publish"):
        scripted.validate_id_token(fake.sign(fake.claims(), new_key("k3")), nonce="n0nce")
    assert fake.fetches("/jwks") == 3  # one more try, not more


def test_unsigned_and_symmetric_tokens_are_refused(fake: ScriptedProvider,
                                                   scripted: OidcClient) -> None:
    fake.metadata["id_token_signing_alg_values_supported"] = ["RS256", "HS256", "none"]
    claims = fake.claims()
    unsigned = ".".join([b64(b'{"alg":"none","typ":"JWT"}'),
                         b64(json.dumps(claims).encode()), ""])
    with pytest.raises(OidcError):
        scripted.validate_id_token(unsigned, nonce="n0nce")
    secret = OctKey.import_key(b"s3cret" * 6)
    symmetric = jwt.encode({"alg": "HS256", "kid": "k1"}, claims, secret)
    with pytest.raises(OidcError, match="not accepted"):
        scripted.validate_id_token(symmetric, nonce="n0nce")
    assert scripted.validate_id_token(fake.sign(claims), nonce="n0nce")  # control


def test_a_provider_signing_only_symmetrically_is_refused(fake: ScriptedProvider,
                                                          scripted: OidcClient) -> None:
    fake.metadata["id_token_signing_alg_values_supported"] = ["HS256"]
    with pytest.raises(OidcError, match="RS256 or ES256"):
        scripted.validate_id_token(fake.sign(fake.claims()), nonce="n0nce")


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "e30.e30.e30"])
def test_garbage_tokens_are_refused(scripted: OidcClient, token: str) -> None:
    with pytest.raises(OidcError):
        scripted.validate_id_token(token, nonce=None)


def test_userinfo_about_someone_else_is_refused(fake: ScriptedProvider,
                                                scripted: OidcClient) -> None:
    fake.userinfo = {"sub": "mallory", "email": "mallory@example.test"}
    with pytest.raises(OidcError, match="another user"):
        finish_scripted(scripted)


def test_id_token_claims_win_over_userinfo(fake: ScriptedProvider,
                                           scripted: OidcClient) -> None:
    fake.token = lambda request: httpx.Response(200, json={
        "access_token": "at", "token_type": "Bearer",
        "id_token": fake.sign(fake.claims(email="a@id.test", email_verified="true"))})
    identity = finish_scripted(scripted)
    assert identity.email == "a@id.test" and identity.email_verified is True
    (me,) = [r for r in fake.requests if r.url.path == "/me"]
    assert me.headers["authorization"] == "Bearer at"


@pytest.mark.parametrize("error, expected", [
    ("authorization_pending", "authorization_pending"), ("slow_down", "slow_down")])
def test_device_polling_while_pending(fake: ScriptedProvider, scripted: OidcClient,
                                      error: str, expected: str) -> None:
    fake.token = lambda request: httpx.Response(400, json={"error": error})
    assert scripted.poll_device("dc") is None
    assert scripted.poll_device_status("dc") == expected
    body = dict(parse_qsl(fake.requests[-1].content.decode()))
    assert body == {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                    "device_code": "dc"}


@pytest.mark.parametrize("error, message", [
    ("expired_token", "expired before it was approved"), ("access_denied", "denied")])
def test_device_polling_refusals(fake: ScriptedProvider, scripted: OidcClient,
                                 error: str, message: str) -> None:
    fake.token = lambda request: httpx.Response(400, json={"error": error})
    with pytest.raises(OidcError, match=message):
        scripted.poll_device("dc")


def test_device_flow_needs_the_endpoint(fake: ScriptedProvider, scripted: OidcClient) -> None:
    del fake.metadata["device_authorization_endpoint"]
    assert not scripted.supports_device_flow()
    with pytest.raises(OidcError, match="does not offer device sign-in"):
        scripted.start_device()
