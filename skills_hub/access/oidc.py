"""OpenID Connect sign-in: the one doorway to authlib (and to joserfc, its JOSE library).

Two flows against one provider found by discovery ({issuer}/.well-known/openid-configuration):
the authorization code flow with PKCE (S256) for browsers, and the device authorization grant
(RFC 8628) for the command line. Both end in a validated ID token turned into an OidcIdentity.

authlib's protocol core (`authlib.oauth2.client.OAuth2Client`) builds the authorization URL,
the PKCE challenge, the token requests and the client authentication, and parses token
responses; it runs over the project's own `httpx.Client` through a small `httpx.Auth` adapter
(`_ClientAuth`), the same way authlib's own httpx integration does. That integration is not
used: it binds to `httpx2` when that is installed (huggingface_hub pulls it in) and warns
deprecation when it is not. ID tokens are verified with joserfc (authlib's JOSE library since
authlib.jose was deprecated) and their claims checked by `authlib.oidc.core.CodeIDToken`.

Every failure is an OidcError (401) that says what failed and what to do; nothing the
provider sends, or fails to send, escapes as another exception.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from ..errors import HubError

if TYPE_CHECKING:
    from ..config import Settings

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Seconds of clock difference tolerated between us and the provider (exp, iat, nbf).
LEEWAY = 60
# Signature algorithms accepted for ID tokens: asymmetric only. "none" is never accepted,
# nor HS*, which would make the client secret a signing key.
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                       "ES256", "ES384", "ES512", "EdDSA", "Ed25519")
_PROFILE_CLAIMS = ("email", "email_verified", "name", "preferred_username")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class OidcError(HubError):
    """Sign-in through the OpenID provider failed; the message says what and what to do."""

    status = 401
    code = "oidc_failed"


@dataclass(frozen=True)
class OidcIdentity:
    """Who the provider says signed in. (issuer, subject) is the stable key of a person."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    preferred_username: str | None


@dataclass(frozen=True)
class AuthRequest:
    """Where to send the browser, and the secrets to keep (server side) until it returns."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class DeviceGrant:
    """What to show the user of a device sign-in, and the code to poll with."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int


class _ClientAuth(httpx.Auth, ClientAuth):
    """authlib's client authentication (client_secret_basic/_post, none) as an httpx.Auth."""

    requires_request_body = True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = dict(request.headers)
        headers.pop("content-length", None)  # recomputed: client_secret_post grows the body
        url, headers, body = self.prepare(request.method, str(request.url), headers,
                                          request.content.decode())
        yield httpx.Request(request.method, url, headers=headers, content=body,
                            extensions=request.extensions)


class _OAuth2(OAuth2Client):
    client_auth_class = _ClientAuth


class OidcClient:
    """One relying party (client_id) at one OpenID provider (issuer). Thread-safe."""

    def __init__(self, issuer: str, client_id: str, client_secret: str | None, *,
                 scopes: str = "openid email profile", http: httpx.Client | None = None,
                 timeout: float = 10.0) -> None:
        if not issuer or not client_id:
            raise OidcError("OpenID Connect needs an issuer and a client id: set "
                            "SKILLS_HUB_OIDC_ISSUER and SKILLS_HUB_OIDC_CLIENT_ID")
        parts = urlsplit(issuer)
        if parts.scheme != "https" and not (parts.scheme == "http"
                                            and parts.hostname in _LOOPBACK):
            raise OidcError(f"the OpenID issuer {issuer!r} is not an https:// URL (plain http "
                            "is allowed only on loopback, for tests): fix "
                            "SKILLS_HUB_OIDC_ISSUER")
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret or None
        self.scopes = scopes
        self._own_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> OidcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- discovery and keys -------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, fetched once; its issuer must be ours exactly."""
        with self._lock:
            if self._metadata is None:
                url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                doc = self._get_json(url, "the discovery document")
                if doc.get("issuer") != self.issuer:
                    raise OidcError(
                        f"the OpenID provider at {url} calls itself {doc.get('issuer')!r}, "
                        f"not {self.issuer!r}: set SKILLS_HUB_OIDC_ISSUER to exactly the "
                        "issuer it names (scheme, host, port and path)")
                missing = [key for key in ("authorization_endpoint", "token_endpoint",
                                           "jwks_uri") if not isinstance(doc.get(key), str)]
                if missing:
                    raise OidcError(f"the discovery document at {url} lacks "
                                    f"{', '.join(missing)}: is {self.issuer} an OpenID provider?")
                self._metadata = doc
            return self._metadata

    def _key_set(self, *, refresh: bool = False) -> KeySet:
        uri = self.metadata()["jwks_uri"]
        with self._lock:
            if self._keys is None or refresh:
                doc = self._get_json(uri, "the signing keys (JWKS)")
                try:
                    self._keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
                except (JoseError, KeyError, TypeError, ValueError) as exc:
                    raise OidcError(f"the provider's signing keys at {uri} do not parse "
                                    f"({exc}); check the provider") from exc
            return self._keys

    def _get_json(self, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.get(url, **kwargs)
        except httpx.HTTPError as exc:
            raise _unreachable(url, exc) from exc
        if response.status_code != 200:
            raise OidcError(f"the OpenID provider answered HTTP {response.status_code} for "
                            f"{what} at {url}; check SKILLS_HUB_OIDC_ISSUER and the provider")
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise OidcError(f"{what} at {url} is not a JSON object; check the provider")
        return doc

    # -- authorization code flow with PKCE ----------------------------------------------

    def authorization_request(self, redirect_uri: str) -> AuthRequest:
        """Where to send the browser: an authorization code request with PKCE (S256)."""
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url, _ = self._oauth(redirect_uri=redirect_uri).create_authorization_url(
            self.metadata()["authorization_endpoint"], state=state, code_verifier=verifier,
            nonce=nonce)
        return AuthRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)

    def finish_authorization(self, params: Mapping[str, str], *, state: str, nonce: str,
                             code_verifier: str, redirect_uri: str) -> OidcIdentity:
        """Check the provider's redirect back to us, redeem its code, validate the ID token."""
        returned = params.get("state") or ""
        if not state or not hmac.compare_digest(returned.encode(), state.encode()):
            raise OidcError("the sign-in response does not belong to this sign-in (its state "
                            "does not match): start the sign-in again from this browser")
        meta = self.metadata()
        if "iss" in params or meta.get("authorization_response_iss_parameter_supported"):
            # RFC 9207: the response names its issuer, so a response from another provider
            # (a mix-up attack) is refused before its code goes anywhere.
            if params.get("iss") != self.issuer:
                raise OidcError(f"the sign-in response comes from {params.get('iss')!r}, not "
                                f"from {self.issuer!r}: start the sign-in again")
        if params.get("error"):
            raise OidcError(_provider_said("the OpenID provider refused the sign-in",
                                           params.get("error"),
                                           params.get("error_description"))
                            + ": try again, or ask an administrator of the provider")
        code = params.get("code")
        if not code:
            raise OidcError("the sign-in response has no authorization code: start the "
                            "sign-in again")
        token = self._token_request(redirect_uri=redirect_uri, grant_type="authorization_code",
                                    code=code, code_verifier=code_verifier)
        return self._identity(token, nonce=nonce)

    # -- device authorization grant (RFC 8628) ------------------------------------------

    def supports_device_flow(self) -> bool:
        return isinstance(self.metadata().get("device_authorization_endpoint"), str)

    def start_device(self) -> DeviceGrant:
        """Ask the provider for a device code and the user code to show."""
        if not self.supports_device_flow():
            raise OidcError(f"the OpenID provider {self.issuer} does not offer device sign-in "
                            "(no device_authorization_endpoint): sign in in a browser instead")
        url = self.metadata()["device_authorization_endpoint"]
        oauth = self._oauth()
        try:
            response = self._http.post(
                url, data={"scope": self.scopes},
                auth=oauth.client_auth(oauth.token_endpoint_auth_method),
                headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise _unreachable(url, exc) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OidcError(f"the device authorization endpoint {url} answered HTTP "
                            f"{response.status_code} without a JSON object; check the provider")
        if response.status_code != 200 or "error" in body:
            raise OidcError(_provider_said("the OpenID provider refused to start a device "
                                           "sign-in", body.get("error"),
                                           body.get("error_description"))
                            + ": check that this client may use the device flow")
        try:
            return DeviceGrant(
                device_code=str(body["device_code"]), user_code=str(body["user_code"]),
                verification_uri=str(body["verification_uri"]),
                verification_uri_complete=(str(body["verification_uri_complete"])
                                           if body.get("verification_uri_complete") else None),
                expires_in=int(body["expires_in"]), interval=int(body.get("interval", 5)))
        except (KeyError, TypeError, ValueError) as exc:
            raise OidcError(f"the device authorization response from {url} lacks or garbles "
                            f"{exc}; check the provider") from exc

    def poll_device(self, device_code: str) -> OidcIdentity | None:
        """The identity once the user approved; None while pending (poll again later)."""
        status = self.poll_device_status(device_code)
        return status if isinstance(status, OidcIdentity) else None

    def poll_device_status(
            self, device_code: str,
    ) -> OidcIdentity | Literal["authorization_pending", "slow_down"]:
        """Like poll_device, but says whether to slow down (then wait 5 s longer, RFC 8628)."""
        try:
            token = self._token_request(grant_type=DEVICE_GRANT, device_code=device_code,
                                        pending_ok=True)
        except _Pending as pending:
            return pending.error
        return self._identity(token, nonce=None)

    # -- ID tokens ----------------------------------------------------------------------

    def validate_id_token(self, id_token: str, *, nonce: str | None) -> OidcIdentity:
        """Verify an ID token (signature, issuer, audience, times, nonce): who signed in."""
        return _identity_from(self._verify(id_token, nonce=nonce, access_token=None),
                              self.issuer)

    def _verify(self, id_token: str, *, nonce: str | None,
                access_token: str | None) -> dict[str, Any]:
        supported = self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in ID_TOKEN_ALGORITHMS if alg in supported]
        if not algorithms:
            raise OidcError(f"the OpenID provider signs ID tokens only with {supported}, none "
                            "of which this server accepts: configure it to use RS256 or ES256")
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                token = jwt.decode(id_token, self._key_set(), registry=registry)
            except InvalidKeyIdError:
                # The provider may have rotated its keys since we fetched them: once more.
                token = jwt.decode(id_token, self._key_set(refresh=True), registry=registry)
            claims = CodeIDToken(
                token.claims, token.header,
                {"iss": {"essential": True, "value": self.issuer},
                 "aud": {"essential": True, "value": self.client_id},
                 "sub": {"essential": True}},
                {"nonce": nonce, "client_id": self.client_id, "access_token": access_token})
            claims.validate(leeway=LEEWAY)
        except InvalidKeyIdError as exc:
            raise OidcError("the ID token is signed with a key the OpenID provider does not "
                            "publish: sign in again; if it persists, check the provider's "
                            "keys") from exc
        except BadSignatureError as exc:
            raise OidcError("the ID token's signature does not verify against the OpenID "
                            "provider's keys (tampered with, or from elsewhere): sign in "
                            "again") from exc
        except UnsupportedAlgorithmError as exc:
            raise OidcError(f"the ID token is signed with an algorithm that is not accepted "
                            f"(accepted: {', '.join(algorithms)}): sign in again") from exc
        except ExpiredTokenError as exc:
            raise OidcError("the ID token has expired: sign in again; if it persists, check "
                            "that this server's clock is right") from exc
        except ClaimError as exc:
            raise OidcError(_claim_problem(exc, self)) from exc
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OidcError(f"the ID token is not a valid signed JWT ({exc}): sign in "
                            "again") from exc
        return dict(claims)

    # -- internals ----------------------------------------------------------------------

    def _auth_method(self) -> str:
        if not self.client_secret:
            return "none"
        supported = self.metadata().get("token_endpoint_auth_methods_supported") or [
            "client_secret_basic"]  # the default of OpenID Connect Discovery
        for method in ("client_secret_basic", "client_secret_post"):
            if method in supported:
                return method
        raise OidcError(f"the OpenID provider authenticates clients only by {supported}; "
                        "this server supports client_secret_basic and client_secret_post")

    def _oauth(self, *, redirect_uri: str | None = None) -> _OAuth2:
        return _OAuth2(self._http, client_id=self.client_id, client_secret=self.client_secret,
                       token_endpoint_auth_method=self._auth_method(), scope=self.scopes,
                       redirect_uri=redirect_uri, code_challenge_method="S256")

    def _token_request(self, *, redirect_uri: str | None = None, grant_type: str,
                       pending_ok: bool = False, **params: str) -> dict[str, Any]:
        url = self.metadata()["token_endpoint"]
        oauth = self._oauth(redirect_uri=redirect_uri)
        if grant_type != "authorization_code":
            oauth.scope = None  # the scope was asked for when the grant started
        try:
            token = oauth.fetch_token(url, grant_type=grant_type, **params)
        except OAuth2Error as exc:
            if pending_ok and exc.error in ("authorization_pending", "slow_down"):
                raise _Pending(exc.error) from exc
            raise OidcError(_token_refusal(exc.error, exc.description)) from exc
        except httpx.HTTPStatusError as exc:
            raise OidcError(f"the OpenID provider's token endpoint answered HTTP "
                            f"{exc.response.status_code}; try again later") from exc
        except httpx.HTTPError as exc:
            raise _unreachable(url, exc) from exc
        except ValueError as exc:
            raise OidcError(f"the OpenID provider's token endpoint sent no token ({exc}); "
                            "try again later") from exc
        if not isinstance(token.get("id_token"), str):
            raise OidcError("the OpenID provider sent no ID token: check that the client asks "
                            f"for the openid scope (scopes: {self.scopes!r})")
        return dict(token)

    def _identity(self, token: dict[str, Any], *, nonce: str | None) -> OidcIdentity:
        access_token = token.get("access_token")
        claims = self._verify(token["id_token"], nonce=nonce,
                              access_token=access_token if isinstance(access_token, str)
                              else None)
        userinfo = self.metadata().get("userinfo_endpoint")
        if (any(key not in claims for key in _PROFILE_CLAIMS) and isinstance(userinfo, str)
                and isinstance(access_token, str)):
            # Many providers put only the protocol claims in the ID token and the profile
            # behind the userinfo endpoint; its subject must be the ID token's.
            info = self._get_json(userinfo, "the user's profile (userinfo)",
                                  headers={"Authorization": f"Bearer {access_token}",
                                           "Accept": "application/json"})
            if info.get("sub") != claims["sub"]:
                raise OidcError("the OpenID provider's userinfo is about another user than "
                                "its ID token: sign in again")
            claims = {**{k: info[k] for k in _PROFILE_CLAIMS if k in info}, **claims}
        return _identity_from(claims, self.issuer)


class _Pending(Exception):
    def __init__(self, error: Literal["authorization_pending", "slow_down"]) -> None:
        super().__init__(error)
        self.error: Literal["authorization_pending", "slow_down"] = error


def _identity_from(claims: Mapping[str, Any], issuer: str) -> OidcIdentity:
    def text(key: str) -> str | None:
        value = claims.get(key)
        return value if isinstance(value, str) and value else None

    verified = claims.get("email_verified")
    return OidcIdentity(
        issuer=issuer, subject=str(claims["sub"]), email=text("email"),
        # Some providers send the string "true".
        email_verified=verified is True or verified == "true",
        name=text("name"), preferred_username=text("preferred_username"))


def _unreachable(url: str, exc: httpx.HTTPError) -> OidcError:
    return OidcError(f"could not reach the OpenID provider at {url} "
                     f"({type(exc).__name__}: {exc}); check SKILLS_HUB_OIDC_ISSUER and that "
                     "the provider is up, then try again")


def _provider_said(what: str, error: object, description: object) -> str:
    return f"{what} ({error}{': ' + str(description) if description else ''})"


def _token_refusal(error: str | None, description: str | None) -> str:
    said = _provider_said("the OpenID provider refused", error, description)
    if error == "invalid_grant":
        return (f"{said}: the sign-in code was already used, has expired or was not issued "
                "to this server; start the sign-in again")
    if error == "expired_token":
        return f"{said}: the device sign-in expired before it was approved; start again"
    if error == "access_denied":
        return f"{said}: the sign-in was denied at the provider"
    if error in ("invalid_client", "unauthorized_client"):
        return (f"{said}: check SKILLS_HUB_OIDC_CLIENT_ID and SKILLS_HUB_OIDC_CLIENT_SECRET "
                "and the client's registration at the provider")
    return f"{said}: try again, or ask an administrator of the provider"


def _claim_problem(exc: ClaimError, client: OidcClient) -> str:
    claim = exc.claim
    missing = isinstance(exc, MissingClaimError)
    if claim == "iss":
        return (f"the ID token was issued by someone other than {client.issuer!r}: sign in "
                "again")
    if claim in ("aud", "azp"):
        return (f"the ID token was issued for another client, not {client.client_id!r}: "
                "sign in again; if it persists, check SKILLS_HUB_OIDC_CLIENT_ID")
    if claim == "nonce":
        return ("the ID token does not belong to this sign-in (its nonce does not match): "
                "start the sign-in again")
    if claim in ("iat", "nbf"):
        return ("the ID token is dated in the future: check that this server's clock and "
                "the provider's agree")
    if missing:
        return f"the ID token lacks its {claim!r} claim: check the provider"
    return f"the ID token's {claim!r} claim is not valid ({exc.description}): sign in again"


def client_from_settings(settings: Settings) -> OidcClient | None:
    """The configured OpenID client, or None when SKILLS_HUB_OIDC_ISSUER is not set."""
    if not settings.oidc_issuer:
        return None
    return OidcClient(settings.oidc_issuer, settings.oidc_client_id or "",
                      settings.oidc_client_secret)


__all__ = ["LEEWAY", "AuthRequest", "DeviceGrant", "OidcClient", "OidcError", "OidcIdentity",
           "client_from_settings"]
