"""The application factory: one Starlette app serving the API, git, pages and static files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from .. import __version__
from ..config import Settings
from ..resources import resource_dir
from ..services import Registry
from . import (
    accounts,
    api,
    clawhub,
    demands_page,
    diffs,
    invitations,
    marketplace,
    observability,
    pages,
    propose,
    publish_page,
    skillssh,
    wellknown,
)
from .docs import routes as docs_routes
from .errors import make_handlers
from .gitserver import GitApp
from .health import routes as health_routes
from .markdown import highlighted
from .middleware import HostCheck, SecurityHeaders
from .openapi import OpenApi
from .settings import routes as settings_routes

OPENAPI_BASE = {
    "openapi": "3.1.0",
    "info": {"title": "skills-hub", "version": __version__,
             "description": "A self-hosted, git-backed registry for agent skills. Errors are "
                            "JSON objects with `code`, `message` and, for invalid skills, "
                            "`problems` (field, message, hint)."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
}


def create_app(settings: Settings | None = None, registry: Registry | None = None) -> Starlette:
    """Build the app; the registry is started (migrated, reconciled, seeded) right here."""
    settings = settings or Settings.from_env()
    if registry is None:
        registry = Registry(settings)
        registry.start(resource_dir("seed") if settings.seed else None)
    templates = Jinja2Templates(directory=str(resource_dir("templates")))
    templates.env.globals.update(version=__version__, htmx="htmx-2.0.11.min.js")
    templates.env.filters["highlight"] = highlighted
    schemas = OpenApi(OPENAPI_BASE)

    def openapi(request: Request) -> JSONResponse:
        return JSONResponse(schemas.get_schema(routes=app.routes))

    def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    app = Hub(
        routes=[
            Route("/openapi.json", openapi, include_in_schema=False),
            Route("/api/v1/health", health, include_in_schema=False),
            # Probes and the scrape (web/observability.py); no page or API operation.
            *observability.routes(registry),
            Route("/favicon.ico", lambda request: RedirectResponse("/static/favicon.svg", 301),
                  include_in_schema=False),
            *api.routes(registry),
            *health_routes(registry),
            *accounts.routes(registry),
            # Compatibility interfaces for the clients people already use (README, "Client
            # set-up"); before the pages, whose /{namespace}/{name} would match them.
            *wellknown.routes(registry),
            *skillssh.routes(registry),
            *clawhub.routes(registry),
            *marketplace.routes(registry),
            Mount("/git", app=GitApp(registry)),
            Mount("/static", app=StaticFiles(directory=str(resource_dir("static"))),
                  name="static"),
            *docs_routes(templates),
            *_pages(settings_routes(registry, templates)),
            *_pages(publish_page.routes(registry, templates)),
            *_pages(invitations.routes(registry, templates)),
            *_pages(diffs.routes(registry, templates)),
            *_pages(propose.routes(registry, templates)),
            *_pages(demands_page.routes(registry, templates)),
            *_pages(pages.routes(registry, templates)),
        ],
        exception_handlers=make_handlers(templates),  # type: ignore[arg-type]
        middleware=[Middleware(SecurityHeaders), Middleware(HostCheck, settings=settings)],
        lifespan=_lifespan(registry),
    )
    app.state.registry = registry
    return app


class Hub(Starlette):
    """Starlette with `Observability` around its whole stack, outside even the handler of
    unhandled errors, so every answer (their 500 too) has its request id, metrics and log
    line; `middleware=` would put it inside that handler."""

    def build_middleware_stack(self) -> ASGIApp:
        return observability.Observability(super().build_middleware_stack())


def _pages(routes: list[Route]) -> list[Route]:
    """Routes for browsers: not operations of the API document."""
    for route in routes:
        route.include_in_schema = False
    return routes


def _lifespan(registry: Registry) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        registry.start_health_checks()  # one process of the deployment checks (the lease)
        yield
        registry.close()

    return lifespan
