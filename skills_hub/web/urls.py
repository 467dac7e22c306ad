"""Absolute URLs for clients that need them (well-known indexes, clawhub.json, marketplaces),
and the Host names they may be built from.

A request's Host header is the client's to choose; behind a shared cache, a made-up one
would poison every cached index with its origin. So the app answers only the names
`allowed_hosts` gives (the loopback names, SKILLS_HUB_PUBLIC_URL's host and
SKILLS_HUB_ALLOWED_HOSTS; `HostCheck` in app.py sends 400 to anything else), and absolute
URLs come from SKILLS_HUB_PUBLIC_URL or from a Host already checked. Pages never need an
absolute URL: they link to `/static/...` and other paths of this origin.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request

from ..config import Settings
from ..services import Registry

# Always answered, so the quick start (http://127.0.0.1:8000) works with nothing set: these
# name the visitor's own machine, never an origin someone else could serve.
LOOPBACK = ("localhost", "127.0.0.1", "::1")
# Starlette's TestClient's name, answered only for requests that come in-process through it
# (scope client "testclient"), never for one from the network.
TEST_CLIENT_HOST, TEST_CLIENT = "testserver", "testclient"
# Bind addresses that are every interface rather than a name of this server.
ANY_ADDRESS = ("", "0.0.0.0", "::")


def public_base(request: Request, registry: Registry) -> str:
    """The server's base URL without a trailing slash: SKILLS_HUB_PUBLIC_URL when set (a
    server behind a proxy), else the address this request reached, whose Host the
    `HostCheck` middleware has already matched against `allowed_hosts`."""
    configured = registry.settings.public_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


def allowed_hosts(settings: Settings) -> tuple[str, ...]:
    """Every Host name (or `*.domain` pattern) requests may carry, lowercased."""
    names = [*LOOPBACK, *(host_name(name) or name for name in settings.allowed_hosts)]
    if settings.public_url:
        names.append(host_name(urlsplit(settings.public_url).netloc))
    if settings.host.lower() not in ANY_ADDRESS:  # `serve --host 10.0.0.5`: its own address
        names.append(host_name(settings.host))
    return tuple(dict.fromkeys(name for name in names if name))


def host_name(host: str) -> str:
    """A Host header's name: lowercased, without the port or an IPv6 address's brackets."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """Whether `name` (from `host_name`) is one of `allowed`: equal, or under a `*.domain`."""
    return any(pattern == "*" or name == pattern
               or (pattern.startswith("*.") and name.endswith(pattern[1:]))
               for pattern in allowed)


def invitation_url(base: str, secret: str) -> str:
    """The link an org's owner sends: the invitation page (web/invitations.py), which a
    browser opens and `skills-hub org join` also takes."""
    return f"{base}/invite/{quote(secret, safe='')}"
