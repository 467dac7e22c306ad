"""Absolute URLs for clients that need them (well-known indexes, clawhub.json, marketplaces)."""

from __future__ import annotations

from starlette.requests import Request

from ..services import Registry


def public_base(request: Request, registry: Registry) -> str:
    """The server's base URL without a trailing slash: SKILLS_HUB_PUBLIC_URL when set (a
    server behind a proxy), else the address this request reached."""
    configured = registry.settings.public_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")
