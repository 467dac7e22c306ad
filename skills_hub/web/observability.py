"""What an operator watches: the request id, metrics and access log line of every request
(`Observability`, the outermost middleware), and the routes `/livez`, `/readyz` and
`/metrics`.

/metrics holds counts by route template, method, status, result and cache name, never a
namespace, a skill name or a raw path, so it names no private skill; it needs no token.
An operator who would rather not show even the traffic can block `/metrics` (and the
probes) at the reverse proxy and scrape the server on its own address, e.g. nginx's
`location = /metrics { allow 10.0.0.0/8; deny all; }`.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import metrics
from ..logs import REQUEST_ID
from ..services import Registry

access_log = logging.getLogger("skills_hub.access")

REQUEST_ID_HEADER = b"x-request-id"
# An incoming X-Request-ID is kept only if it is this (a proxy's or a client's id), so a
# log line or header never carries what a client smuggles in (newlines, quotes, 1 MB).
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Skills whose text waits for its search vector, counted up to this many: the only query
# for them reads the texts too, so a scrape does not read every skill after a reindex.
EMBED_QUEUE_CAP = 1000
EMBEDDER_STATES = ("off", "idle", "loading", "ready", "failed")


def request_id(scope: Scope) -> str:
    """The request's X-Request-ID if it is a valid one, else a new id (uuid4 hex)."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            given = value.decode("latin-1")
            if VALID_REQUEST_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that answered (`/api/v1/skills/{namespace}/{name}`,
    `/git/{path}` for a mount), or `unmatched`: never the request's own path."""
    route = scope.get("route")
    return getattr(route, "path_format", None) or metrics.UNMATCHED


class Observability:
    """Gives every HTTP request an id (a context variable while it is answered, and the
    `X-Request-ID` header of its answer), counts it in the metrics and writes its access
    log line. Pure ASGI and outermost (app.Hub wraps Starlette's whole stack in it), so the
    400 of HostCheck and the 500 of an unhandled error carry the id too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = request_id(scope)
        token = REQUEST_ID.set(rid)
        header = (REQUEST_ID_HEADER, rid.encode())
        status, sent = 500, 0  # 500: what the server answers if the app never does

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        metrics.IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.IN_PROGRESS.dec()
            seconds = time.perf_counter() - start
            route = route_template(scope)
            metrics.observe_request(route, scope["method"], status, seconds)
            _log_access(scope, route, status, seconds, sent, rid)
            REQUEST_ID.reset(token)


def _log_access(scope: Scope, route: str, status: int, seconds: float, sent: int,
                rid: str) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    duration_ms = round(seconds * 1000, 3)
    access_log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, duration_ms,
                    extra={"method": scope["method"], "route": route, "path": scope["path"],
                           "status": status, "duration_ms": duration_ms,
                           "client": client[0] if client else None, "bytes": sent,
                           "request_id": rid})


def routes(registry: Registry) -> list[Route]:
    """/livez, /readyz and /metrics: for probes and scrapers, not the API document."""
    live = metrics.Live()
    live.gauge("skills_hub_embed_queue", "Skills whose text waits for its search vector "
               f"(counted up to {EMBED_QUEUE_CAP}; absent while semantic search is off).",
               lambda: _embed_queue(registry))
    live.state("skills_hub_embedder_state", "The embedding model of the process scraped "
               "(ready: semantic search is on).", EMBEDDER_STATES,
               lambda: registry.embedder.state)

    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    def readyz(request: Request) -> JSONResponse:
        checks = registry.readiness()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                            200 if ready else 503)

    def scrape(request: Request) -> Response:
        body, content_type = metrics.exposition(request.headers.get("accept", ""), live)
        return Response(body, headers={"Content-Type": content_type})

    return [Route("/livez", livez, methods=["GET"], include_in_schema=False),
            Route("/readyz", readyz, methods=["GET"], include_in_schema=False),
            Route("/metrics", scrape, methods=["GET"], include_in_schema=False)]


def _embed_queue(registry: Registry) -> int | None:
    if registry.embedder.state == "off":
        return None
    return len(registry.store.vectors.embed_jobs(EMBED_QUEUE_CAP))
