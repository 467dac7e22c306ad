"""Settings pages (issue 14): your account and tokens, an org's members, invitations,
namespaces and service accounts, and its audit log. For signed-in people only (others are
sent to /login?next=...); every change goes through the service, whose access policy decides,
and every form carries the session's CSRF token (checked by `auth.request_principal`). A
refusal (400/401/403/404/409/422) is shown in the page with the service's message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..access.policy import ROLES, SCOPES, VISIBILITIES, org_role
from ..access.principal import Principal
from ..errors import BadRequest, HubError
from ..services import Registry
from ..services.accounts import RELEASE_POLICIES
from .accounts import local_path
from .auth import page_reader, request_principal
from .pages import page_viewer
from .urls import invitation_url, public_base

SHOWN_ERRORS = frozenset({400, 401, 403, 404, 409, 422})
AUDIT_PAGE = 50


def routes(registry: Registry, templates: Jinja2Templates) -> list[Route]:
    s = SettingsPages(registry, templates)
    org = "/settings/orgs/{org}"
    return [
        Route("/settings", s.account, methods=["GET"]),
        Route("/settings/tokens", s.tokens, methods=["GET"]),
        Route("/settings/tokens", s.create_token, methods=["POST"]),
        Route("/settings/tokens/{token_id:int}/revoke", s.revoke_token, methods=["POST"]),
        Route(org, s.org, methods=["GET"]),
        Route(org + "/members", s.add_member, methods=["POST"]),
        Route(org + "/members/{username}", s.set_member, methods=["POST"]),
        Route(org + "/members/{username}/remove", s.remove_member, methods=["POST"]),
        Route(org + "/invitations", s.invite, methods=["POST"]),
        Route(org + "/namespaces/{namespace}", s.set_namespace, methods=["POST"]),
        Route(org + "/service-accounts", s.add_service_account, methods=["POST"]),
        Route(org + "/tokens/{token_id:int}/revoke", s.revoke_org_token, methods=["POST"]),
        Route(org + "/audit", s.audit, methods=["GET"]),
    ]


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": local_path(target)}),
                            status_code=303)


class SettingsPages:
    def __init__(self, registry: Registry, templates: Jinja2Templates) -> None:
        self.registry = registry
        self.templates = templates

    # -- plumbing -------------------------------------------------------------------------

    def _render(self, request: Request, template: str, context: dict[str, Any],
                error: HubError | None = None) -> Response:
        return self.templates.TemplateResponse(request, template, {
            **context, "csrf": page_viewer(self.registry, request).csrf, "error": error},
            status_code=error.status if error else 200)

    async def _post(self, request: Request, fields: tuple[str, ...],
                    act: Callable[[Principal, dict[str, Any]], Any],
                    show: Callable[[Request, Principal, HubError | None, Any], Response],
                    back: str) -> Response:
        """A form's POST: the service acts as the session (with its CSRF token); on success
        `show` renders a result that is shown once (a secret) or, without one, the browser
        goes back to `back`; a refusal is rendered in the page with its status."""
        form = await request.form()
        values: dict[str, Any] = {key: str(form.get(key) or "") for key in (*fields, "csrf")}
        values["scopes"] = [str(v) for v in form.getlist("scopes")]

        def run() -> Response:
            reader = page_reader(self.registry, request)
            if not reader.signed_in:
                return to_login(request)
            try:
                actor = request_principal(self.registry, request, csrf=values["csrf"])
                if not actor.signed_in:
                    return to_login(request)
                result = act(actor, values)
            except HubError as exc:
                if exc.status not in SHOWN_ERRORS:
                    raise
                # read again: a refused change changed nothing, the page shows it as it is
                return show(request, page_reader(self.registry, request), exc, None)
            if result is None:
                return RedirectResponse(back, status_code=303)
            return show(request, page_reader(self.registry, request), None, result)

        return await run_in_threadpool(run)

    def _signed_in(self, request: Request) -> Principal | None:
        principal = request_principal(self.registry, request)
        return principal if principal.signed_in else None

    # -- your account ---------------------------------------------------------------------

    def account(self, request: Request) -> Response:
        principal = self._signed_in(request)
        if principal is None:
            return to_login(request)
        return self._render(request, "settings_account.html",
                            {"account": self.registry.whoami(principal)})

    # -- your tokens ----------------------------------------------------------------------

    def tokens(self, request: Request) -> Response:
        principal = self._signed_in(request)
        if principal is None:
            return to_login(request)
        return self._tokens_page(request, principal, None, None)

    def _tokens_page(self, request: Request, principal: Principal, error: HubError | None,
                     created: Any, form: dict[str, Any] | None = None) -> Response:
        return self._render(request, "settings_tokens.html", {
            "tokens": self.registry.tokens(principal), "created": created,
            "scopes": SCOPES, "default_days": self.registry.settings.token_default_days,
            "max_days": self.registry.settings.token_max_days, "form": form or {}},
            error)

    async def create_token(self, request: Request) -> Response:
        kept: dict[str, Any] = {}

        def act(actor: Principal, f: dict[str, Any]) -> Any:
            kept.update(f)
            days = f["days"].strip()
            if days and not days.isdigit():
                raise BadRequest(f"days {days!r} is not a whole number")
            row, secret = self.registry.create_user_token(
                actor, label=f["label"], scopes=f["scopes"] or None,
                namespaces=f["namespaces"].replace(",", " ").split() or None,
                days=int(days) if days else None)
            return {"row": row, "secret": secret}

        return await self._post(
            request, ("label", "days", "namespaces"), act,
            lambda req, who, err, made: self._tokens_page(req, who, err, made,
                                                          kept if err else None),
            "/settings/tokens")

    async def revoke_token(self, request: Request) -> Response:
        token_id = int(request.path_params["token_id"])
        return await self._post(
            request, (), lambda actor, f: self.registry.revoke_token(actor, token_id) and None,
            lambda req, who, err, _: self._tokens_page(req, who, err, None),
            "/settings/tokens")

    # -- an org ---------------------------------------------------------------------------

    def org(self, request: Request) -> Response:
        principal = self._signed_in(request)
        if principal is None:
            return to_login(request)
        return self._org_page(request, principal, None, None)

    def _org_page(self, request: Request, principal: Principal, error: HubError | None,
                  result: Any) -> Response:
        name = request.path_params["org"]
        members = self.registry.members(principal, name)  # 404 for a non-member
        owner = org_role(principal, name) == "owner"
        namespaces = []
        for info in self.registry.store.namespaces.namespaces():
            if info.owner_org == name:
                try:
                    namespaces.append(self.registry.namespace_settings(principal, info.name))
                except HubError:
                    continue  # one the caller may not read is not listed
        tokens = self.registry.tokens(principal, name) if owner else []
        return self._render(request, "settings_org.html", {
            "org": name, "members": [m for m in members if m.kind != "service"],
            "services": [m for m in members if m.kind == "service"],
            "tokens": tokens, "owner": owner, "my_role": org_role(principal, name),
            "myself": principal.username, "namespaces": namespaces, "roles": ROLES,
            "visibilities": VISIBILITIES, "policies": RELEASE_POLICIES,
            "invitation": result}, error)

    def _org_post(self, request: Request, fields: tuple[str, ...],
                  act: Callable[[Principal, dict[str, Any]], Any]) -> Any:
        return self._post(request, fields, act, self._org_page,
                          "/settings/orgs/" + quote(request.path_params["org"]))

    async def add_member(self, request: Request) -> Response:
        org = request.path_params["org"]
        return await self._org_post(request, ("username", "role"), lambda actor, f: (
            self.registry.set_member(actor, org, f["username"].strip(), f["role"]) and None))

    async def set_member(self, request: Request) -> Response:
        p = request.path_params
        return await self._org_post(request, ("role",), lambda actor, f: (
            self.registry.set_member(actor, p["org"], p["username"], f["role"]) and None))

    async def remove_member(self, request: Request) -> Response:
        p = request.path_params
        return await self._org_post(request, (), lambda actor, f: (
            self.registry.remove_member(actor, p["org"], p["username"])))

    async def invite(self, request: Request) -> Response:
        org = request.path_params["org"]

        def act(actor: Principal, f: dict[str, Any]) -> Any:
            days = f["days"].strip() or "7"
            if not days.isdigit():
                raise BadRequest(f"days {days!r} is not a whole number")
            secret = self.registry.invite(actor, org, f["role"] or "reader", f["email"],
                                          int(days))
            return {"role": f["role"] or "reader",
                    "url": invitation_url(public_base(request, self.registry), secret)}

        return await self._org_post(request, ("role", "email", "days"), act)

    async def set_namespace(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]

        def act(actor: Principal, f: dict[str, Any]) -> None:
            info = self.registry.namespace_settings(actor, namespace)
            if info.owner_org != request.path_params["org"]:
                raise BadRequest(f"namespace {namespace!r} is not one of this org's")
            two_person = f["two_person"] == "on"
            if f["visibility"] and f["visibility"] != info.visibility:
                self.registry.set_visibility(namespace, f["visibility"], actor)
            policy = f["release_policy"] or info.release_policy
            if (policy, two_person) != (info.release_policy, info.two_person):
                self.registry.set_release_policy(actor, namespace, policy, two_person)

        return await self._org_post(request, ("visibility", "release_policy", "two_person"),
                                    act)

    async def add_service_account(self, request: Request) -> Response:
        org = request.path_params["org"]
        return await self._org_post(request, ("name", "role"), lambda actor, f: (
            self.registry.add_service_account(actor, org, f["name"].strip(),
                                              f["role"] or "publisher") and None))

    async def revoke_org_token(self, request: Request) -> Response:
        token_id = int(request.path_params["token_id"])
        return await self._org_post(request, (), lambda actor, f: (
            self.registry.revoke_token(actor, token_id) and None))

    # -- the audit log --------------------------------------------------------------------

    def audit(self, request: Request) -> Response:
        principal = self._signed_in(request)
        if principal is None:
            return to_login(request)
        org, q = request.path_params["org"], request.query_params
        filters = {key: (q.get(key) or "").strip() for key in ("actor", "action", "since")}
        rows, cursor = self.registry.audit_events(
            principal, org=org, actor=filters["actor"] or None,
            action=filters["action"] or None, since=filters["since"] or None,
            cursor=q.get("cursor") or None, limit=AUDIT_PAGE)
        older = None
        if cursor:
            older = "?" + urlencode({**{k: v for k, v in filters.items() if v},
                                     "cursor": cursor})
        return self._render(request, "settings_audit.html", {
            "org": org, "events": rows, "filters": filters, "older": older,
            "first": not q.get("cursor")})
