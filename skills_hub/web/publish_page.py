"""Publishing from the browser (issue 14): a signed-in person picks a namespace they may
publish to, drops a skill folder or an archive on /publish, reads the full checks report of
`Registry.check_publish` (nothing stored yet), then publishes the very files that were
checked: the publish carries the checked `content_sha256` and other content is refused.

static/publish.js reads dropped folders and sends `files` parts; without it the page is a
plain multipart form posting one `archive`. The upload is parsed as the API parses it
(`api.read_upload`); every action goes through the service as the session, with its CSRF
token (`auth.request_principal`). A refusal is shown in the page with its status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..access.policy import PUBLISH
from ..access.principal import Principal
from ..domain import NamespaceInfo
from ..errors import BadRequest, Conflict, HubError, Unauthorized
from ..services import PublishOutcome, Registry
from ..skill.bundle import Bundle
from .api import Upload, read_upload
from .auth import page_reader, request_principal
from .pages import page_viewer

# Refusals shown inside the page (with their status); anything else is the error page.
SHOWN_ERRORS = frozenset({400, 401, 403, 404, 409, 413, 422})
SIGN_IN = "/login?next=%2Fpublish"
Act = Callable[[Principal, Upload], PublishOutcome]


def routes(registry: Registry, templates: Jinja2Templates) -> list[Route]:
    p = PublishPage(registry, templates)
    return [
        Route("/publish", p.page, methods=["GET"]),
        Route("/publish/check", p.check, methods=["POST"]),
        Route("/publish", p.publish, methods=["POST"]),
    ]


class PublishPage:
    def __init__(self, registry: Registry, templates: Jinja2Templates) -> None:
        self.registry = registry
        self.templates = templates

    def page(self, request: Request) -> Response:
        """The form; `?namespace=X` chooses X (the policy's 404 or 403 when one may not
        publish there)."""
        principal = request_principal(self.registry, request)
        asked = request.query_params.get("namespace") or ""
        error: HubError | None = None
        if principal.signed_in and asked:
            try:
                self.registry.require(principal, PUBLISH, asked)
            except HubError as exc:
                if exc.status not in SHOWN_ERRORS:
                    raise
                error, asked = exc, ""
        return self._render(request, principal, {"namespace": asked}, error=error)

    async def check(self, request: Request) -> Response:
        """Check an upload with nothing stored: the report, and a form to publish it."""
        return await self._act(request, self._check)

    async def publish(self, request: Request) -> Response:
        """Publish an upload whose content is the checked one (`content_sha256`)."""
        return await self._act(request, self._publish)

    # -- plumbing -------------------------------------------------------------------------

    def _check(self, actor: Principal, upload: Upload) -> PublishOutcome:
        bundle = self._bundle(upload)
        return self.registry.check_publish(upload.fields.get("namespace", ""), bundle,
                                           principal=actor, version=upload.version)

    def _publish(self, actor: Principal, upload: Upload) -> PublishOutcome:
        checked = upload.fields.get("content_sha256", "").strip()
        if not checked:
            raise BadRequest("check the files before publishing them",
                             extra={"hint": "choose the files and press Check; publish "
                                            "from the report"})
        bundle = self._bundle(upload)
        if bundle.content_hash() != checked:
            raise Conflict("these files are not the ones that were checked: nothing was "
                           "published", extra={"hint": "check the files again, then publish "
                                                       "from the new report",
                                               "checked": checked,
                                               "sent": bundle.content_hash()})
        return self.registry.publish(upload.fields.get("namespace", ""), bundle,
                                     principal=actor, version=upload.version)

    def _bundle(self, upload: Upload) -> Bundle:
        """The upload unpacked; the form sent with nothing chosen (an empty `archive` part,
        no `files`) is told so, not "neither a zip nor a tar.gz"."""
        if not upload.archive and not upload.files:
            raise BadRequest("nothing was uploaded: choose a skill folder or an archive",
                             extra={"hint": "drop the folder that holds SKILL.md, or a .zip "
                                            "or .tar.gz of it"})
        return upload.bundle(self.registry.settings.limits)

    async def _act(self, request: Request, act: Act) -> Response:
        """Read the upload, then act as the session (with its CSRF token); the outcome or
        the refusal is rendered, as a fragment for publish.js or as the whole page."""
        stage = "publish" if request.url.path == "/publish" else "check"
        try:
            upload = await read_upload(request, self.registry.settings.limits)
        except HubError as exc:  # too large, not multipart: refused before it is read
            if exc.status not in SHOWN_ERRORS:
                raise
            return await run_in_threadpool(self._result, request, stage, {}, error=exc)

        def run() -> Response:
            fields = upload.fields
            if not page_reader(self.registry, request).signed_in:
                return self._result(request, stage, fields, error=Unauthorized(
                    "sign in to publish", extra={"hint": "nothing was stored"}))
            try:
                actor = request_principal(self.registry, request, csrf=fields.get("csrf"))
                outcome = act(actor, upload)
            except HubError as exc:
                if exc.status not in SHOWN_ERRORS:
                    raise
                return self._result(request, stage, fields, error=exc)
            return self._result(request, stage, fields, outcome=outcome)

        return await run_in_threadpool(run)

    def _result(self, request: Request, stage: str, fields: dict[str, str], *,
                outcome: PublishOutcome | None = None,
                error: HubError | None = None) -> Response:
        """What came of a check or a publish: the fragment publish.js asks for (HX-Request),
        else the page with it."""
        context = {"stage": stage, "outcome": outcome, "error": error,
                   "report": _report(outcome, error), "namespace": fields.get("namespace", ""),
                   "version": fields.get("version", "")}
        status = error.status if error else 200
        if not request.headers.get("hx-request"):
            reader = page_reader(self.registry, request)
            return self._render(request, reader, context, error=None, status=status)
        return self.templates.TemplateResponse(request, "_publish_result.html", {
            **context, "csrf": page_viewer(self.registry, request).csrf, "sign_in": SIGN_IN},
            status_code=status)

    def _render(self, request: Request, principal: Principal, context: dict[str, Any], *,
                error: HubError | None, status: int | None = None) -> Response:
        namespaces: list[NamespaceInfo] = []
        if principal.signed_in:
            namespaces = self.registry.publishable_namespaces(principal)
        chosen = context.get("namespace") or ""
        if chosen not in {n.name for n in namespaces}:
            home = principal.home_namespace
            chosen = home if home in {n.name for n in namespaces} else \
                (namespaces[0].name if namespaces else "")
        limits = self.registry.settings.limits
        return self.templates.TemplateResponse(request, "publish.html", {
            "outcome": None, "stage": None, "report": None, "version": "", **context,
            "namespace": chosen, "namespaces": namespaces, "page_error": error,
            "signed_in": principal.signed_in, "sign_in": SIGN_IN, "limits": limits,
            "csrf": page_viewer(self.registry, request).csrf},
            status_code=status or (error.status if error else 200))


def _report(outcome: PublishOutcome | None, error: HubError | None) -> dict[str, Any] | None:
    """The checks report to show: the outcome's, or the one a refusal carries."""
    if outcome is not None and outcome.report is not None:
        return outcome.report.to_dict()
    report = error.extra.get("report") if error is not None else None
    return report if isinstance(report, dict) else None
