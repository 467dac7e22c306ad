"""The invitation page (issue 14): the link an org's owner sends, opened in a browser.

`/invite/{secret}` says which org and role the link is for and until when. A signed-in
person joins with one button (the session's CSRF token); anyone else signs in first
(`/login?next=`) or makes an account right there, and is then signed in. The service decides
everything (`Registry.invitation`, `Registry.accept_invitation`): an unknown, used or expired
link is a page saying so and what to do, and a refused form (a taken username, a weak
password) is shown again with the reason and changes nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..access.principal import ANONYMOUS
from ..errors import Forbidden, HubError
from ..services import Registry
from .auth import (
    FORM_CSRF_COOKIE,
    SESSION_COOKIE,
    form_csrf,
    form_csrf_ok,
    origin,
    page_reader,
    request_principal,
    set_form_csrf,
)
from .pages import page_viewer
from .urls import public_base

SHOWN_ERRORS = frozenset({400, 401, 403, 404, 409, 422})
FIELDS = ("username", "display_name", "email", "password", "csrf")
SESSION_SECONDS = 14 * 86400  # as the sign-in form's session cookie


def routes(registry: Registry, templates: Jinja2Templates) -> list[Route]:
    page = InvitationPage(registry, templates)
    return [
        Route("/invite/{secret}", page.show, methods=["GET"]),
        Route("/invite/{secret}", page.accept, methods=["POST"]),
    ]


class InvitationPage:
    def __init__(self, registry: Registry, templates: Jinja2Templates) -> None:
        self.registry = registry
        self.templates = templates

    def show(self, request: Request) -> Response:
        return self._page(request, None, {})

    async def accept(self, request: Request) -> Response:
        form = await request.form()
        fields = {key: str(form.get(key) or "") for key in FIELDS}
        return await run_in_threadpool(self._accept, request, fields)

    def _accept(self, request: Request, fields: dict[str, str]) -> Response:
        secret = request.path_params["secret"]
        signed_in = page_viewer(self.registry, request).signed_in
        try:
            if signed_in:
                # the session's CSRF token, or 403: another site cannot make you join
                who = request_principal(self.registry, request, csrf=fields["csrf"])
            else:
                if not form_csrf_ok(request, fields["csrf"]):
                    raise Forbidden("this form did not come from this page, or it is too old",
                                    extra={"hint": "open the invitation link again"})
                who = replace(ANONYMOUS, origin=origin(request))
            org = self.registry.invitation(secret).org
            user = self.registry.accept_invitation(
                secret, who, username=fields["username"].strip() or None,
                password=fields["password"] or None,
                display_name=fields["display_name"], email=fields["email"])
        except HubError as exc:
            if exc.status not in SHOWN_ERRORS:
                raise
            return self._page(request, exc, fields)
        response = RedirectResponse(f"/settings/orgs/{quote(org, safe='')}", status_code=303)
        if not signed_in:  # the new account is signed in, as after the sign-in form
            session_id, _ = self.registry.start_session(user, who)
            response.set_cookie(SESSION_COOKIE, session_id, max_age=SESSION_SECONDS, path="/",
                                httponly=True, samesite="lax", secure=self._secure(request))
            response.delete_cookie(FORM_CSRF_COOKIE, path="/invite")
        return response

    def _page(self, request: Request, error: HubError | None,
              fields: dict[str, str]) -> Response:
        secret = request.path_params["secret"]
        viewer = page_viewer(self.registry, request)
        invitation, gone = None, None
        try:
            invitation = self.registry.invitation(secret)
        except HubError as exc:
            if exc.status not in SHOWN_ERRORS:
                raise
            gone = exc
        csrf = viewer.csrf if viewer.csrf is not None else form_csrf(request)
        reader = page_reader(self.registry, request)
        context: dict[str, Any] = {
            "invitation": invitation, "gone": gone, "error": error, "csrf": csrf,
            "signed_in": viewer.signed_in, "who": viewer.name,
            "already": bool(invitation and invitation.org in reader.org_roles),
            "login_url": "/login?next=" + quote(request.url.path, safe=""),
            "form": {k: v for k, v in fields.items() if k not in ("password", "csrf")}}
        shown = gone or error
        status = shown.status if shown is not None else 200
        response = self.templates.TemplateResponse(request, "invitation.html", context,
                                                   status_code=status)
        response.headers["Cache-Control"] = "no-store"  # the page's URL holds the secret
        if not viewer.signed_in and invitation is not None:
            set_form_csrf(response, csrf, "/invite", secure=self._secure(request))
        return response

    def _secure(self, request: Request) -> bool:
        return public_base(request, self.registry).startswith("https://")
