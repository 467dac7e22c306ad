"""What every request and response goes through: the Host check (absolute URLs never
name someone else's origin) and the security headers of every answer."""

from __future__ import annotations

import logging

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from .urls import TEST_CLIENT, TEST_CLIENT_HOST, allowed_hosts, host_allowed, host_name

log = logging.getLogger(__name__)

# Every response (pages above all) loads scripts, styles and everything else only from this
# origin, and nothing inline: the templates have no inline script, event handler, hx-on or
# style attribute, and htmx is told not to inject its indicator style (base.html).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"))
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response that does not set its own (a raw skill
    file keeps its `Content-Security-Policy: sandbox; default-src 'none'`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HostCheck:
    """400 for a request whose Host is not one of this server's names (urls.allowed_hosts),
    so no URL the app builds from the request's address can name someone else's origin.
    A request without a Host (HTTP/1.0) is served: its address is the server's own."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.allowed = allowed_hosts(settings)
        names = ", ".join(self.allowed)
        if "*" in self.allowed:
            log.warning("SKILLS_HUB_ALLOWED_HOSTS has `*`: every Host header is trusted, and "
                        "absolute URLs in indexes follow whatever Host a client sends; set "
                        "SKILLS_HUB_PUBLIC_URL, or list this server's names instead")
        elif not settings.public_url and not settings.allowed_hosts:
            log.warning("neither SKILLS_HUB_PUBLIC_URL nor SKILLS_HUB_ALLOWED_HOSTS is set: "
                        "only requests addressed to %s are answered, any other Host gets "
                        "400. To serve this registry under another name, set "
                        "SKILLS_HUB_PUBLIC_URL=https://that.name (or list the names in "
                        "SKILLS_HUB_ALLOWED_HOSTS, comma-separated)", names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host")
            if host is not None and not self.allows(host_name(host), scope):
                response = JSONResponse({
                    "code": "invalid_host",
                    "message": f"this server does not answer to the name {host!r}",
                    "hint": "the operator lists its names in SKILLS_HUB_ALLOWED_HOSTS or "
                            "SKILLS_HUB_PUBLIC_URL"}, 400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def allows(self, name: str, scope: Scope) -> bool:
        if host_allowed(name, self.allowed):
            return True
        client = scope.get("client") or ("",)
        return name == TEST_CLIENT_HOST and client[0] == TEST_CLIENT  # in-process tests only


# What a browser sends (Sec-Fetch-Dest) for a navigation or a fetch(); anything else
# (image, script, style, iframe, ...) is a page loading a subresource. Clients send none.
NOT_SUBRESOURCE = frozenset({"document", "empty", ""})


def counts_as_install(request: Request) -> bool:
    """Whether a download counts as an install: a GET by a client or a person's click,
    never a page loading it as an image or other subresource (viewing a page that embeds
    an archive URL must not inflate the count)."""
    dest = request.headers.get("sec-fetch-dest", "").strip().lower()
    return request.method == "GET" and dest in NOT_SUBRESOURCE
