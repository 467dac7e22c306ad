"""One renderer for every error: JSON under /api and /git, an HTML page elsewhere."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from ..errors import HubError

log = logging.getLogger(__name__)


def wants_json(request: Request) -> bool:
    path = request.url.path
    return (path.startswith(("/api/", "/clawhub/")) or path == "/api" or path.endswith(".json")
            or "/.well-known/" in path)


def make_handlers(templates: Jinja2Templates) -> dict:
    def render(request: Request, status: int, code: str, message: str,
               body: dict | None = None) -> Response:
        if wants_json(request):
            return JSONResponse(body or {"code": code, "message": message}, status)
        hint = (body or {}).get("hint")
        return templates.TemplateResponse(request, "error.html", {
            "status": status, "code": code, "message": message,
            "hint": hint if isinstance(hint, str) else None}, status_code=status)

    async def hub_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HubError)
        response = render(request, exc.status, exc.code, exc.message, exc.to_dict())
        if exc.extra.get("retry_after"):
            response.headers["Retry-After"] = str(exc.extra["retry_after"])
        if exc.extra.get("allow"):
            response.headers["Allow"] = str(exc.extra["allow"])
        return response

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = exc.detail if exc.status_code != 404 else f"nothing at {request.url.path}"
        response = render(request, exc.status_code, code, str(message))
        response.headers.update(exc.headers or {})  # Allow, on a 405
        return response

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        return render(request, 500, "internal_error",
                      "the server failed to handle this request; it has been logged")

    return {HubError: hub_error, HTTPException: http_error, Exception: server_error}
