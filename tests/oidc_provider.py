"""A real OpenID provider for the sign-in tests, and the part a person plays in a browser.

`start_oidc_provider` runs tests/oidc/provider.mjs (panva's `oidc-provider`, from `make
clients`) on Node 22 on a loopback port. The harness makes the provider's signing key, so a
test can also sign a token with a key the provider really publishes: that isolates one check
(expiry, audience, issuer) from the signature check.

`login_via_authorization` and `approve_device` drive the provider's own HTML pages with httpx
as a browser would: follow redirects, keep cookies, fill in and post each page's form (the
development login form takes any login name and password, then the consent form).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from .live import CLIENTS, client_path, free_port

SCRIPT = Path(__file__).resolve().parent / "oidc" / "provider.mjs"
CLIENT_ID = "skills-hub"
START_TIMEOUT = 30.0
MAX_PAGES = 20


@dataclass
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    signing_key: RSAKey  # the private key the provider signs its ID tokens with
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def sign(self, claims: dict[str, Any], key: RSAKey | None = None) -> str:
        """A JWT over `claims`, signed with the provider's own key unless another is given."""
        key = key or self.signing_key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def id_token_claims(self, **changes: Any) -> dict[str, Any]:
        """The claims of a valid ID token for `alice` (with `changes`), as the provider makes."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "alice", "aud": self.client_id,
                  "iat": now, "exp": now + 300, "auth_time": now}
        claims.update(changes)
        return {key: value for key, value in claims.items() if value is not None}

    def login_via_authorization(self, url: str, login: str) -> str:
        """Sign in as `login` at an authorization URL; the URL it redirects back to us with."""
        with _browser() as browser:
            result = _walk(browser, browser.get(url), {"login": login},
                           stop_at=self.redirect_uri)
        if not isinstance(result, str):
            raise AssertionError(f"the provider never redirected back; its last page "
                                 f"(HTTP {result.status_code}):\n{result.text[:3000]}")
        return result

    def approve_device(self, user_code: str, login: str,
                       verification_uri: str | None = None) -> None:
        """Enter `user_code` on the provider's device page, sign in as `login`, consent."""
        with _browser() as browser:
            start = verification_uri or f"{self.issuer}/device"
            page = _walk(browser, browser.get(start), {"login": login, "user_code": user_code})
        if isinstance(page, str) or "Sign-in Success" not in page.text:
            text = page if isinstance(page, str) else page.text[:3000]
            raise AssertionError(f"the device sign-in did not succeed:\n{text}")


@contextmanager
def start_oidc_provider(redirect_uri: str) -> Iterator[Provider]:
    """Run a real OpenID provider whose one client `skills-hub` redirects to `redirect_uri`."""
    node = client_path("node", "node")
    port = free_port()
    key = RSAKey.generate_key(2048, parameters={"kid": f"test-{secrets.token_hex(4)}",
                                                "use": "sig", "alg": "RS256"}, private=True)
    secret = secrets.token_urlsafe(24)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "OIDC_MODULES_DIR": str(CLIENTS), "OIDC_CLIENT_SECRET": secret,
           "OIDC_REDIRECT_URIS": redirect_uri,
           "OIDC_JWKS": json.dumps({"keys": [key.as_dict(private=True)]})}
    handle, name = tempfile.mkstemp(prefix="oidc-provider-", suffix=".log")
    log = Path(name)
    with os.fdopen(handle, "wb") as out:
        process = subprocess.Popen([str(node), str(SCRIPT), str(port)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    provider = Provider(issuer=f"http://127.0.0.1:{port}", client_id=CLIENT_ID,
                        client_secret=secret, redirect_uri=redirect_uri, signing_key=key,
                        process=process, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while f"READY {provider.issuer}" not in provider.output():
            if process.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with {process.returncode}" if process.poll() is not None
                       else f"did not print READY within {START_TIMEOUT:.0f} s")
                raise RuntimeError(f"the OpenID provider {why}; its output:\n"
                                   f"{provider.output()}")
            time.sleep(0.05)
        yield provider
    finally:
        provider.stop()
        log.unlink(missing_ok=True)


def _browser() -> httpx.Client:
    return httpx.Client(timeout=10, follow_redirects=False,
                        headers={"User-Agent": "skills-hub-tests (a browser stand-in)"})


def _walk(browser: httpx.Client, response: httpx.Response, fill: dict[str, str], *,
          stop_at: str | None = None) -> httpx.Response | str:
    """Follow redirects and post forms, as a person clicking through would; a page without a
    form ends the walk (the response), and so does a redirect to `stop_at` (its URL)."""
    for _ in range(MAX_PAGES):
        if response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            if stop_at and target.startswith(stop_at):
                return target
            response = browser.get(target)
            continue
        if response.status_code >= 400:
            raise AssertionError(f"the provider answered HTTP {response.status_code} at "
                                 f"{response.url}:\n{response.text[:3000]}")
        form = _FormParser.first_post_form(response.text)
        if form is None:
            return response
        fields = {**form.fields, **{k: v for k, v in fill.items() if k in form.fields}}
        if "password" in fields:
            fields["password"] = "any password"  # the development login takes any
        response = browser.post(urljoin(str(response.url), form.action), data=fields)
    raise AssertionError(f"gave up after {MAX_PAGES} pages, at {response.url}")


@dataclass
class _Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """The first <form method="post"> of a page: its action and its named inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.form: _Form | None = None
        self.done = False

    @classmethod
    def first_post_form(cls, html: str) -> _Form | None:
        parser = cls()
        parser.feed(html)
        return parser.form

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and self.form is None and values.get("method", "").lower() == "post":
            self.form = _Form(values.get("action", ""))
        elif tag == "input" and self.form is not None and not self.done and values.get("name"):
            self.form.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.form is not None:
            self.done = True
