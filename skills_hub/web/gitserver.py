"""Read-only git smart HTTP at /git/<namespace>.git, as an ASGI app.

Access control and the push refusal happen here, before the request reaches dulwich's
WSGI app (which the store builds; a2wsgi bridges it, Starlette's own adapter does not).
"""

from __future__ import annotations

import re

from a2wsgi import WSGIMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from ..errors import HubError
from ..services import Registry
from .auth import request_principal

_REPO = re.compile(r"^/([a-z0-9][a-z0-9-]*)\.git(/.*)?$")

PUSH_REFUSED = (
    "skills-hub: git push is not accepted; this repository is a read-only view of the "
    "registry.\nPublish a new version through the API instead: `skills-hub publish DIR "
    "--namespace {ns}` or POST /api/v1/namespaces/{ns}/skills.\n"
)


class GitApp:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.wsgi = WSGIMiddleware(
            registry.git.smart_http_app(registry.settings.git_backend), workers=8)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        match = _REPO.match(scope.get("path_info") or request.url.path.removeprefix("/git"))
        if not match:
            await PlainTextResponse("no such repository\n", 404)(scope, receive, send)
            return
        namespace = match.group(1)
        rest = match.group(2) or ""
        if rest.endswith("git-receive-pack") or \
                request.query_params.get("service") == "git-receive-pack":
            await PlainTextResponse(PUSH_REFUSED.format(ns=namespace), 403)(scope, receive, send)
            return
        try:
            principal = request_principal(self.registry, request)
            self.registry.check_readable(namespace, principal)
        except HubError as exc:
            headers = {"WWW-Authenticate": 'Basic realm="skills-hub"'} if exc.status in (
                401, 404) and not request.headers.get("authorization") else {}
            status = 401 if headers else exc.status
            await PlainTextResponse(exc.message + "\n", status, headers)(scope, receive, send)
            return
        await self.wsgi(scope, receive, send)  # type: ignore[arg-type]
