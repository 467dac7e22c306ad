"""Accounts over HTTP: sign-in (password, OpenID Connect, the device grant for the CLI),
tokens, orgs and members, invitations, namespace settings, the review queue of pending
releases, and the audit log. Views parse, call the service, render; the service asks
`access.policy`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..access.oidc import OidcClient, OidcError
from ..access.policy import SCOPES
from ..access.principal import Principal
from ..domain import MemberRow, NamespaceInfo, ReleaseRow, TokenRow
from ..errors import BadRequest, NotFound, Unauthorized
from ..services import Registry
from .api import parse_object, proposal_json, read_capped
from .auth import SESSION_COOKIE, request_principal
from .urls import invitation_url, public_base

BODY_CAP = 16 << 10


def routes(registry: Registry) -> list[Route]:
    v = Views(registry)
    b = "/api/v1"
    return [
        Route(b + "/auth/login", v.login, methods=["POST"]),
        Route(b + "/auth/session", v.session, methods=["POST"]),
        Route(b + "/auth/session", v.current_session, methods=["GET"]),
        Route(b + "/auth/logout", v.logout, methods=["POST"]),
        Route(b + "/auth/device", v.device_start, methods=["POST"]),
        Route(b + "/auth/device/token", v.device_token, methods=["POST"]),
        Route("/auth/oidc/login", v.oidc_login, methods=["GET"]),
        Route("/auth/oidc/callback", v.oidc_callback, methods=["GET"]),
        Route(b + "/users", v.users, methods=["GET"]),
        Route(b + "/users", v.add_user, methods=["POST"]),
        Route(b + "/tokens", v.tokens, methods=["GET"]),
        Route(b + "/tokens", v.create_token, methods=["POST"]),
        Route(b + "/tokens/{token_id:int}", v.revoke_token, methods=["DELETE"]),
        Route(b + "/orgs", v.create_org, methods=["POST"]),
        Route(b + "/orgs/{org}", v.delete_org, methods=["DELETE"]),
        Route(b + "/orgs/{org}/members", v.members, methods=["GET"]),
        Route(b + "/orgs/{org}/members/{username}", v.set_member, methods=["PUT"]),
        Route(b + "/orgs/{org}/members/{username}", v.remove_member, methods=["DELETE"]),
        Route(b + "/orgs/{org}/service-accounts", v.add_service_account, methods=["POST"]),
        Route(b + "/orgs/{org}/tokens", v.org_tokens, methods=["GET"]),
        Route(b + "/orgs/{org}/invitations", v.invite, methods=["POST"]),
        Route(b + "/invitations/{secret}/accept", v.accept, methods=["POST"]),
        Route(b + "/namespaces/{namespace}/settings", v.settings, methods=["GET"]),
        Route(b + "/namespaces/{namespace}/visibility", v.set_visibility, methods=["PUT"]),
        Route(b + "/namespaces/{namespace}/release-policy", v.set_release_policy,
              methods=["PUT"]),
        Route(b + "/namespaces/{namespace}/releases", v.releases, methods=["GET"]),
        Route(b + "/review", v.review_queue, methods=["GET"]),
        Route(b + "/releases/{release_id}", v.release, methods=["GET"]),
        Route(b + "/releases/{release_id}/approve", v.approve, methods=["POST"]),
        Route(b + "/releases/{release_id}/reject", v.reject, methods=["POST"]),
        Route(b + "/audit", v.audit, methods=["GET"]),
    ]


class Views:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def principal(self, request: Request) -> Principal:
        return request_principal(self.registry, request)

    def oidc(self) -> OidcClient:
        client = self.registry.oidc_client()
        if client is None:
            raise NotFound("OpenID Connect sign-in is not configured on this server",
                           extra={"hint": "the operator sets SKILLS_HUB_OIDC_ISSUER, "
                                          "_CLIENT_ID and _CLIENT_SECRET"})
        return client

    # -- sign-in --------------------------------------------------------------------------

    async def login(self, request: Request) -> JSONResponse:
        """
        summary: Sign in with a password and get a personal access token (the CLI's login).
        tags: [auth]
        requestBody: {schema: LoginRequest}
        responses:
          200: {description: "{token, token_info}", schema: NewToken}
          401: {description: wrong username or password}
          429: {description: too many failed sign-ins (Retry-After)}
        """
        body = await _object(request)
        row, secret = await run_in_threadpool(
            self.registry.login, _text(body, "username"), _text(body, "password"),
            self.principal(request), label=_opt_text(body, "label"),
            days=_opt_int(body, "days"), scopes=_opt_list(body, "scopes"))
        return JSONResponse({"token": secret, "token_info": token_json(row)})

    async def session(self, request: Request) -> JSONResponse:
        """
        summary: Sign in with a password and get a browser session (cookie) and its CSRF token.
        tags: [auth]
        requestBody: {schema: SessionRequest}
        responses:
          200: {description: "{username, csrf}", schema: Session}
        """
        body = await _object(request)
        who = self.principal(request)
        user = await run_in_threadpool(self.registry.sign_in, _text(body, "username"),
                                       _text(body, "password"), who)
        session_id, csrf = await run_in_threadpool(self.registry.start_session, user, who)
        response = JSONResponse({"username": user.username, "csrf": csrf})
        self._set_cookie(request, response, session_id)
        return response

    def current_session(self, request: Request) -> JSONResponse:
        """
        summary: The signed-in browser session - who, and the CSRF token its writes send.
        tags: [auth]
        responses:
          200: {description: "{username, csrf}", schema: Session}
          401: {description: no session}
        """
        session_id = request.cookies.get(SESSION_COOKIE)
        found = self.registry.session_info(session_id) if session_id else None
        if found is None:
            raise Unauthorized("no session: sign in first",
                               extra={"hint": "POST /api/v1/auth/session or /auth/oidc/login"})
        return JSONResponse({"username": found[0], "csrf": found[1]})

    async def logout(self, request: Request) -> JSONResponse:
        """
        summary: End the browser session.
        tags: [auth]
        responses:
          200:
            description: "{signed_out: true}"
            schema: SignedOut
        """
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            self.principal(request)  # a cross-site logout needs the CSRF token too
            await run_in_threadpool(self.registry.end_session, session_id)
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def oidc_login(self, request: Request) -> Response:
        """
        summary: Start signing in through the configured OpenID provider (browser redirect).
        tags: [auth]
        responses:
          302: {description: to the provider}
          404: {description: OpenID Connect is not configured}
        """
        client = self.oidc()
        auth = client.authorization_request(self._callback(request))
        target = local_path(request.query_params.get("next", "/"))
        self.registry.begin_flow(auth.state, "oidc", {"nonce": auth.nonce,
                                                       "verifier": auth.code_verifier,
                                                       "next": target})
        return RedirectResponse(auth.url, status_code=302)

    def oidc_callback(self, request: Request) -> Response:
        """
        summary: The provider's redirect back; signs in (an account is made at first sign-in).
        tags: [auth]
        responses:
          302: {description: signed in; to where the sign-in started}
          401: {description: "the sign-in failed (state, token, issuer); says why"}
        """
        params = dict(request.query_params)
        flow = self.registry.take_flow(params.get("state", ""), "oidc")
        if flow is None:
            raise OidcError("this sign-in is unknown or expired; start again",
                            extra={"hint": "open /auth/oidc/login again"})
        identity = self.oidc().finish_authorization(
            params, state=params.get("state", ""), nonce=flow["nonce"],
            code_verifier=flow["verifier"], redirect_uri=self._callback(request))
        who = self.principal(request)
        user = self.registry.user_for_identity(
            identity.issuer, identity.subject, preferred=identity.preferred_username,
            email=identity.email if identity.email_verified else None, name=identity.name,
            origin=who)
        session_id, _ = self.registry.start_session(user, who)
        response = RedirectResponse(flow["next"], status_code=302)
        self._set_cookie(request, response, session_id)
        return response

    def device_start(self, request: Request) -> JSONResponse:
        """
        summary: Start the device authorization grant at the OpenID provider (for the CLI).
        tags: [auth]
        responses:
          200:
            description: "{device_code, user_code, verification_uri,
              verification_uri_complete, interval, expires_in}"
            schema: DeviceGrant
          404: {description: OpenID Connect or its device grant is not configured}
        """
        client = self.oidc()
        if not client.supports_device_flow():
            raise NotFound("the OpenID provider does not offer the device grant",
                           extra={"hint": "use `skills-hub login --username U` or `--token T`"})
        grant = client.start_device()
        return JSONResponse({"device_code": grant.device_code, "user_code": grant.user_code,
                             "verification_uri": grant.verification_uri,
                             "verification_uri_complete": grant.verification_uri_complete,
                             "interval": grant.interval, "expires_in": grant.expires_in})

    async def device_token(self, request: Request) -> JSONResponse:
        """
        summary: Poll the device grant; when approved, a personal access token.
        tags: [auth]
        requestBody: {schema: DeviceTokenRequest}
        responses:
          200: {description: "{token, token_info}", schema: NewToken}
          202:
            description: "{status: pending|slow_down}: poll again after interval"
            schema: DevicePending
          401: {description: expired or denied}
        """
        body = await _object(request)
        device_code = _text(body, "device_code")
        label = _opt_text(body, "label") or "skills-hub login (device)"
        found = await run_in_threadpool(self.oidc().poll_device_status, device_code)
        if isinstance(found, str):
            return JSONResponse({"status": found}, status_code=202)
        who = self.principal(request)

        def finish() -> tuple[TokenRow, str]:
            user = self.registry.user_for_identity(
                found.issuer, found.subject, preferred=found.preferred_username,
                email=found.email if found.email_verified else None, name=found.name,
                origin=who)
            me = self.registry.signed_in(user, "oidc", who)
            return self.registry.create_user_token(
                me, label=label, scopes=_opt_list(body, "scopes") or list(SCOPES))

        row, secret = await run_in_threadpool(finish)
        return JSONResponse({"token": secret, "token_info": token_json(row)})

    def _callback(self, request: Request) -> str:
        return public_base(request, self.registry) + "/auth/oidc/callback"

    def _set_cookie(self, request: Request, response: Response, session_id: str) -> None:
        secure = public_base(request, self.registry).startswith("https://")
        response.set_cookie(SESSION_COOKIE, session_id, max_age=14 * 86400, path="/",
                            httponly=True, samesite="lax", secure=secure)

    # -- users and tokens -----------------------------------------------------------------

    def users(self, request: Request) -> JSONResponse:
        """
        summary: Every account (operator only).
        tags: [accounts]
        security: [{bearer: []}]
        responses:
          200: {description: "{users: [...]}", schema: UserList}
        """
        rows = self.registry.list_users(self.principal(request))
        return JSONResponse({"users": [
            {"username": u.username, "display_name": u.display_name, "email": u.email,
             "kind": u.kind, "org": u.org, "operator": u.is_operator,
             "created_at": u.created_at, "disabled": u.disabled_at is not None}
            for u in rows]})

    async def add_user(self, request: Request) -> JSONResponse:
        """
        summary: Add an account (operator only).
        tags: [accounts]
        requestBody: {schema: AddUserRequest}
        security: [{bearer: []}]
        responses:
          201:
            description: "{username}"
            schema: Username
        """
        body = await _object(request)
        who = await run_in_threadpool(self.principal, request)
        user = await run_in_threadpool(
            lambda: self.registry.add_user(
                _text(body, "username"), password=_opt_text(body, "password"),
                display_name=_opt_text(body, "display_name"), email=_opt_text(body, "email"),
                operator=bool(body.get("operator", False)), by=who))
        return JSONResponse({"username": user.username}, status_code=201)

    def tokens(self, request: Request) -> JSONResponse:
        """
        summary: The caller's tokens (never their secrets).
        tags: [accounts]
        security: [{bearer: []}]
        responses:
          200: {description: "{tokens: [...]}", schema: TokenList}
        """
        rows = self.registry.tokens(self.principal(request))
        return JSONResponse({"tokens": [token_json(r) for r in rows]})

    async def create_token(self, request: Request) -> JSONResponse:
        """
        summary: Create a personal access token (or, owners, one of a service account); shown once.
        tags: [accounts]
        requestBody: {schema: CreateTokenRequest}
        security: [{bearer: []}]
        responses:
          201: {description: "{token, token_info}", schema: NewToken}
        """
        body = await _object(request)
        who = await run_in_threadpool(self.principal, request)
        row, secret = await run_in_threadpool(
            lambda: self.registry.create_user_token(
                who, label=_opt_text(body, "label"), scopes=_opt_list(body, "scopes"),
                namespaces=_opt_list(body, "namespaces"), days=_opt_int(body, "days"),
                account=_opt_text(body, "account") or None))
        return JSONResponse({"token": secret, "token_info": token_json(row)}, status_code=201)

    def revoke_token(self, request: Request) -> JSONResponse:
        """
        summary: Revoke a token; its next request gets 401 saying so.
        tags: [accounts]
        security: [{bearer: []}]
        responses:
          200:
            description: "{token_info}"
            schema: RevokedToken
        """
        row = self.registry.revoke_token(self.principal(request),
                                         request.path_params["token_id"])
        return JSONResponse({"token_info": token_json(row)})

    # -- orgs -----------------------------------------------------------------------------

    async def create_org(self, request: Request) -> JSONResponse:
        """
        summary: Create an org (and its namespace of the same name); the caller owns it.
        tags: [orgs]
        requestBody: {schema: CreateOrgRequest}
        security: [{bearer: []}]
        responses:
          201:
            description: "{org, namespace}"
            schema: NewOrg
        """
        body = await _object(request)
        who = await run_in_threadpool(self.principal, request)
        name = _text(body, "name")
        await run_in_threadpool(self.registry.create_org, who, name,
                                _opt_text(body, "display_name"))
        return JSONResponse({"org": name, "namespace": name}, status_code=201)

    def delete_org(self, request: Request) -> JSONResponse:
        """
        summary: Delete an org (owners); its namespaces stay, private, for the operator.
        tags: [orgs]
        security: [{bearer: []}]
        responses:
          200:
            description: "{deleted}: the org's name"
            schema: DeletedOrg
        """
        org = request.path_params["org"]
        self.registry.delete_org(self.principal(request), org)
        return JSONResponse({"deleted": org})

    def members(self, request: Request) -> JSONResponse:
        """
        summary: An org's members and their roles (members only).
        tags: [orgs]
        security: [{bearer: []}]
        responses:
          200: {description: "{members: [...]}", schema: MemberList}
        """
        rows = self.registry.members(self.principal(request), request.path_params["org"])
        return JSONResponse({"members": [member_json(m) for m in rows]})

    async def set_member(self, request: Request) -> JSONResponse:
        """
        summary: Add a member or change their role (owners).
        tags: [orgs]
        requestBody: {schema: SetMemberRequest}
        security: [{bearer: []}]
        responses:
          200:
            description: "{member}"
            schema: MemberAnswer
        """
        body = await _object(request)
        who = await run_in_threadpool(self.principal, request)
        p = request.path_params
        row = await run_in_threadpool(self.registry.set_member, who, p["org"], p["username"],
                                      _text(body, "role"))
        return JSONResponse({"member": member_json(row)})

    def remove_member(self, request: Request) -> JSONResponse:
        """
        summary: Remove a member (owners), or leave an org; never its last owner.
        tags: [orgs]
        security: [{bearer: []}]
        responses:
          200:
            description: "{removed}: the username"
            schema: RemovedMember
        """
        p = request.path_params
        self.registry.remove_member(self.principal(request), p["org"], p["username"])
        return JSONResponse({"removed": p["username"]})

    async def add_service_account(self, request: Request) -> JSONResponse:
        """
        summary: Add a service account (`<org>.<name>`) for CI and agents (owners).
        tags: [orgs]
        requestBody: {schema: AddServiceAccountRequest}
        security: [{bearer: []}]
        responses:
          201:
            description: "{username, role}"
            schema: ServiceAccount
        """
        body = await _object(request)
        who = await run_in_threadpool(self.principal, request)
        role = _opt_text(body, "role") or "publisher"
        user = await run_in_threadpool(self.registry.add_service_account, who,
                                       request.path_params["org"], _text(body, "name"), role)
        return JSONResponse({"username": user.username, "role": role}, status_code=201)

    def org_tokens(self, request: Request) -> JSONResponse:
        """
        summary: The tokens of an org's service accounts (owners).
        tags: [orgs]
        security: [{bearer: []}]
        responses:
          200: {description: "{tokens: [...]}", schema: TokenList}
        """
        rows = self.registry.tokens(self.principal(request), request.path_params["org"])
        return JSONResponse({"tokens": [token_json(r) for r in rows]})

    async def invite(self, request: Request) -> JSONResponse:
        """
        summary: Make a one-use invitation link to join an org with a role (owners).
        tags: [orgs]
        requestBody: {schema: InviteRequest}
        security: [{bearer: []}]
        responses:
          201:
            description: "{secret, url (the page a browser opens), accept (this API's
              accept URL), role}"
            schema: Invitation
        """
        body = await _object(request)
        who = await run_in_threadpool(self.principal, request)
        role = _opt_text(body, "role") or "reader"
        secret = await run_in_threadpool(
            lambda: self.registry.invite(who, request.path_params["org"], role,
                                         _opt_text(body, "email"),
                                         _opt_int(body, "days") or 7))
        base = public_base(request, self.registry)
        return JSONResponse({"secret": secret, "url": invitation_url(base, secret),
                             "accept": f"{base}/api/v1/invitations/{secret}/accept",
                             "role": role}, status_code=201)

    async def accept(self, request: Request) -> JSONResponse:
        """
        summary: Accept an invitation, signed in or with a new account's username and password.
        tags: [orgs]
        requestBody: {schema: AcceptRequest, required: false}
        responses:
          200:
            description: "{username}: the account that joined"
            schema: Username
          409: {description: already used or expired}
        """
        body = await _object(request, empty_ok=True)
        who = await run_in_threadpool(self.principal, request)
        user = await run_in_threadpool(
            lambda: self.registry.accept_invitation(
                request.path_params["secret"], who, username=_opt_text(body, "username"),
                password=_opt_text(body, "password"),
                display_name=_opt_text(body, "display_name"),
                email=_opt_text(body, "email")))
        return JSONResponse({"username": user.username})

    # -- namespaces and review ------------------------------------------------------------

    def settings(self, request: Request) -> JSONResponse:
        """
        summary: A namespace's owner, visibility and policies.
        tags: [namespaces]
        responses:
          200: {description: "{name, visibility, owner, release_policy, two_person,
                review_policy}", schema: NamespaceSettings}
        """
        info = self.registry.namespace_settings(self.principal(request),
                                                request.path_params["namespace"])
        return JSONResponse(self._namespace_json(info))

    async def set_visibility(self, request: Request) -> JSONResponse:
        """
        summary: A namespace's visibility, `public`, `internal` or `private` (owners).
        tags: [namespaces]
        requestBody: {schema: SetVisibilityRequest}
        security: [{bearer: []}]
        responses:
          200: {description: "the namespace's settings", schema: NamespaceSettings}
        """
        body = await _object(request)
        who = await run_in_threadpool(self.principal, request)
        ns = request.path_params["namespace"]
        await run_in_threadpool(self.registry.set_visibility, ns, _text(body, "visibility"),
                                who)
        info = await run_in_threadpool(self.registry.namespace_settings, who, ns)
        return JSONResponse(self._namespace_json(info))

    async def set_release_policy(self, request: Request) -> JSONResponse:
        """
        summary: Required review of publishes (`direct`, `review`), two-person rule (owners).
        tags: [namespaces]
        requestBody: {schema: SetReleasePolicyRequest}
        security: [{bearer: []}]
        responses:
          200: {description: "the namespace's settings", schema: NamespaceSettings}
        """
        body = await _object(request)
        who = await run_in_threadpool(self.principal, request)
        two = body.get("two_person", False)
        if not isinstance(two, bool):
            raise BadRequest("two_person is true or false")
        info = await run_in_threadpool(self.registry.set_release_policy, who,
                                       request.path_params["namespace"],
                                       _text(body, "policy"), two)
        return JSONResponse(self._namespace_json(info))

    def _namespace_json(self, info: NamespaceInfo) -> dict[str, Any]:
        owner: dict[str, str | None] | None = None
        if info.owner_org:
            owner = {"org": info.owner_org}
        elif info.owner_user is not None:
            user = self.registry.store.users.user_by_id(info.owner_user)
            owner = {"user": user.username if user else None}
        return {"name": info.name, "visibility": info.visibility, "owner": owner,
                "release_policy": info.release_policy, "two_person": info.two_person,
                "review_policy": info.review_policy}

    def releases(self, request: Request) -> JSONResponse:
        """
        summary: A namespace's releases under review; `mine=1` for the caller's own, with decisions.
        tags: [review]
        security: [{bearer: []}]
        responses:
          200: {description: "{releases: [...]}", schema: ReleaseList}
        """
        q = request.query_params
        rows = self.registry.list_releases(self.principal(request),
                                           request.path_params["namespace"],
                                           state=q.get("state") or None,
                                           mine=q.get("mine") in ("1", "true"))
        return JSONResponse({"releases": [release_json(r) for r in rows]})

    def review_queue(self, request: Request) -> JSONResponse:
        """
        summary: What waits for the caller's review (pending releases, open proposals).
        description: Of every namespace the caller maintains, with diffs and checks.
        tags: [review]
        security: [{bearer: []}]
        responses:
          200: {description: "{releases: [...], proposals: [...]}", schema: ReviewQueue}
        """
        queue = self.registry.review_queue(self.principal(request),
                                           request.query_params.get("namespace") or None)
        return JSONResponse({
            "releases": [{**release_json(item.release), "diff": item.diff,
                          "current_version": item.current_version}
                         for item in queue.releases],
            "proposals": [{**proposal_json(item.row), "diff": item.diff}
                          for item in queue.proposals]})

    def release(self, request: Request) -> JSONResponse:
        """
        summary: One release under review, with its diff against the current version.
        tags: [review]
        security: [{bearer: []}]
        responses:
          200: {description: "the release, `diff`, `current_version` and `report`",
                schema: ReleaseDetail}
        """
        item = self.registry.release_view(self.principal(request),
                                          request.path_params["release_id"])
        return JSONResponse({**release_json(item.release), "diff": item.diff,
                             "current_version": item.current_version,
                             "report": item.release.report})

    async def approve(self, request: Request) -> JSONResponse:
        """
        summary: Approve a pending release (maintainers); it is released as a publish is.
        tags: [review]
        requestBody: {schema: ApproveRequest, required: false}
        security: [{bearer: []}]
        responses:
          200: {description: "{release}", schema: ReleaseDecision}
        """
        body = await _object(request, empty_ok=True)
        who = await run_in_threadpool(self.principal, request)
        row = await run_in_threadpool(self.registry.approve_release, who,
                                      request.path_params["release_id"],
                                      _opt_text(body, "comment"))
        return JSONResponse({"release": release_json(row)})

    async def reject(self, request: Request) -> JSONResponse:
        """
        summary: Reject a pending release with a comment its author reads (maintainers).
        tags: [review]
        requestBody: {schema: RejectRequest}
        security: [{bearer: []}]
        responses:
          200: {description: "{release}", schema: ReleaseDecision}
        """
        body = await _object(request)
        who = await run_in_threadpool(self.principal, request)
        row = await run_in_threadpool(self.registry.reject_release, who,
                                      request.path_params["release_id"],
                                      _opt_text(body, "comment"))
        return JSONResponse({"release": release_json(row)})

    # -- audit ----------------------------------------------------------------------------

    def audit(self, request: Request) -> Response:
        """
        summary: The audit log, newest first; `format=jsonl` exports.
        description: Org owners read their orgs' events; the operator reads all.
        tags: [audit]
        security: [{bearer: []}]
        responses:
          200:
            description: "{events: [...], next_cursor}; with `format=jsonl`, one event a line
              (the next cursor in X-Next-Cursor)"
            schema: AuditPage
            content: {application/jsonl: {}}
        """
        q = request.query_params
        rows, cursor = self.registry.audit_events(
            self.principal(request), org=q.get("org") or None, actor=q.get("actor") or None,
            action=q.get("action") or None, since=q.get("since") or None,
            cursor=q.get("cursor") or None, limit=_limit(q.get("limit")))
        if q.get("format") == "jsonl":
            lines = "".join(json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in rows)
            headers = {"X-Next-Cursor": cursor} if cursor else {}
            return Response(lines, media_type="application/jsonl", headers=headers)
        return JSONResponse({"events": [r.to_dict() for r in rows], "next_cursor": cursor})


def token_json(row: TokenRow) -> dict[str, Any]:
    return {"id": row.id, "account": row.username, "prefix": row.prefix, "label": row.label,
            "scopes": sorted(row.scopes),
            "namespaces": None if row.namespaces is None else sorted(row.namespaces),
            "created_at": row.created_at, "expires_at": row.expires_at,
            "last_used_at": row.last_used_at, "revoked_at": row.revoked_at}


def member_json(row: MemberRow) -> dict[str, Any]:
    return {"username": row.username, "display_name": row.display_name, "kind": row.kind,
            "role": row.role, "added_at": row.added_at}


def release_json(row: ReleaseRow) -> dict[str, Any]:
    return {"id": row.id, "namespace": row.namespace, "name": row.name,
            "version": row.version, "state": row.state, "author": row.author,
            "verdict": row.verdict, "content_sha256": row.content_sha256,
            "commit": row.commit_sha, "branch": f"refs/heads/releases/{row.name}/{row.id}",
            "created_at": row.created_at, "decided_at": row.decided_at,
            "decided_by": row.decided_by, "comment": row.comment,
            "url": f"/api/v1/releases/{row.id}"}


async def _object(request: Request, *, empty_ok: bool = False) -> dict[str, Any]:
    raw = await read_capped(request, BODY_CAP)
    if not raw.strip() and empty_ok:
        return {}
    return parse_object(raw)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key} is required (a string)")
    return value


def _opt_text(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{key} is a string")
    return value


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{key} is a whole number")
    return value


def _opt_list(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) \
            or len(value) > 100:
        raise BadRequest(f"{key} is a list of strings")
    return value


def _limit(text: str | None) -> int:
    if text is None:
        return 100
    if not text.isdigit():
        raise BadRequest("limit is a whole number 1-1000")
    return int(text)


def local_path(target: str) -> str:
    """Only a path on this site, never another origin (no open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or any(ord(c) < 32 or ord(c) == 127 for c in target):
        return "/"
    return target

