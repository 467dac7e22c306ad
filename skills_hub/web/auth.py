"""Request -> principal, for every route of every interface: a bearer token
(`Authorization: Bearer <token>`, or Basic with the token as the password, which is what git
sends), else the session cookie of a signed-in browser. A session authorises a request that
changes state only with its CSRF token in `X-CSRF-Token` (or a `csrf` form field), so a page
of another site cannot act for the person signed in."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import replace

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import Response

from ..access.principal import ANONYMOUS, Origin, Principal
from ..errors import Forbidden, Unauthorized
from ..logs import REQUEST_ID
from ..services import Registry

SESSION_COOKIE = "shub_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The forms of people without a session yet (sign-in, accepting an invitation) use the
# double-submit technique: a random token in a cookie scoped to the form's path and in the form.
FORM_CSRF_COOKIE = "shub_csrf"
FORM_CSRF_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def request_token(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, credentials = value.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and credentials.strip():
        return credentials.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorized("the Basic credentials are not valid base64") from exc
        return decoded.partition(":")[2] or None
    raise Unauthorized("unsupported Authorization scheme",
                       extra={"hint": "send `Authorization: Bearer <token>`"})


def origin(request: HTTPConnection) -> Origin:
    """Where a request comes from, for the audit log."""
    headers = request.headers
    return Origin(address=request.client.host if request.client else "",
                  user_agent=headers.get("user-agent", "")[:300],
                  # The id the answer's X-Request-ID header and the log lines carry.
                  request_id=REQUEST_ID.get() or secrets.token_hex(8))


def page_reader(registry: Registry, request: HTTPConnection) -> Principal:
    """Who to render a page for, even after a refused write: a session's write without its
    CSRF token changes nothing, but the answer is still rendered for that session."""
    try:
        return request_principal(registry, request)
    except Forbidden:
        session = request.cookies.get(SESSION_COOKIE, "")
        found = registry.authenticate_session(session) if session else None
        return found or replace(ANONYMOUS, origin=origin(request))


def request_principal(registry: Registry, request: HTTPConnection,
                      csrf: str | None = None) -> Principal:
    """The caller of `request`; anonymous without credentials; 401 for bad ones."""
    token = request_token(request.headers)
    session = request.cookies.get(SESSION_COOKIE)
    found: Principal | None = None
    if token is not None:
        found = registry.authenticate(token)
    elif session:
        found = registry.authenticate_session(session)
        method = request.scope.get("method", "GET")
        sent = request.headers.get("x-csrf-token") or csrf
        if found is not None and method not in SAFE_METHODS \
                and not registry.session_csrf_ok(session, sent):
            raise Forbidden("this request changes state and lacks the session's CSRF token",
                            extra={"hint": "send the page's CSRF token in X-CSRF-Token, or "
                                           "use a bearer token"})
    return replace(found or ANONYMOUS, origin=origin(request))


def form_csrf(request: HTTPConnection) -> str:
    """The double-submit token for a form of someone without a session: the cookie's, if
    well-formed, else a new one (the response sets it with `set_form_csrf`)."""
    token = request.cookies.get(FORM_CSRF_COOKIE, "")
    return token if FORM_CSRF_RE.match(token) else secrets.token_urlsafe(24)


def form_csrf_ok(request: HTTPConnection, sent: str) -> bool:
    cookie = request.cookies.get(FORM_CSRF_COOKIE, "")
    return bool(cookie) and secrets.compare_digest(cookie.encode(), sent.encode())


def set_form_csrf(response: Response, token: str, path: str, *, secure: bool) -> None:
    response.set_cookie(FORM_CSRF_COOKIE, token, max_age=3600, path=path, httponly=True,
                        samesite="lax", secure=secure)
