"""Accounts: users, sign-in, sessions, tokens, orgs and members, invitations, namespace
settings, and the audit log. Who a request is (`authenticate`) is decided here; what it may
do is `access.policy`'s."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ..access import passwords
from ..access.oidc import OidcClient, client_from_settings
from ..access.policy import (
    ADMIN,
    READ,
    ROLES,
    SCOPES,
    VISIBILITIES,
    NamespaceRef,
    can_read,
    require,
    require_org,
)
from ..access.principal import ALL_SCOPES, ANONYMOUS, OPERATOR, Principal
from ..domain import (
    AuditRow,
    InvitationRow,
    KeepOwner,
    MemberRow,
    NamespaceInfo,
    NewAudit,
    TokenRow,
    UserRow,
)
from ..errors import BadRequest, Conflict, Forbidden, NotFound, Problem, Unauthorized
from .base import RegistryBase
from .common import (
    NAME_RE,
    RESERVED_NAMESPACES,
    _check_choice,
    _sha256,
    check_namespace,
    ref_of,
)

TOKEN_PREFIX = "shub_"
SESSION_DAYS = 14
INVITATION_DAYS = 7
MAX_LABEL = 100
MAX_DISPLAY = 100
EMAIL_RE_HINT = "an address like name@example.com"
TOUCH_EVERY = timedelta(seconds=60)  # last-used times are kept to the minute, not per request
RELEASE_POLICIES = ("direct", "review")


class AccountsMixin(RegistryBase):
    """Accounts, credentials, orgs, namespace settings and the audit log."""

    # -- who is calling ------------------------------------------------------------------

    def authenticate(self, token: str | None) -> Principal:
        """The principal for a bearer token; anonymous without one; 401 for a bad one,
        saying whether it expired, was revoked, or was never a token here."""
        if not token:
            return ANONYMOUS
        token_id = _sha256(token.encode())
        row = self.store.tokens.token(token_id)
        if row is None:
            raise Unauthorized("the token is not valid for this registry",
                               extra={"hint": "create one with `skills-hub login` or "
                                              "`skills-hub token create`"})
        now = _now()
        if row.revoked_at is not None:
            raise Unauthorized(f"this token was revoked on {row.revoked_at}",
                               extra={"code_detail": "token_revoked",
                                      "hint": "create a new token with `skills-hub token "
                                              "create` or `skills-hub login`"})
        if row.expires_at is not None and row.expires_at <= now.isoformat(timespec="seconds"):
            raise Unauthorized(f"this token expired on {row.expires_at}",
                               extra={"code_detail": "token_expired",
                                      "hint": "create a new token with `skills-hub token "
                                              "create` or `skills-hub login`"})
        user = self.store.users.user_by_id(row.user_id)
        if user is None or user.disabled_at is not None:
            raise Unauthorized("the account of this token is disabled",
                               extra={"hint": "ask an owner or the operator"})
        if row.last_used_at is None or row.last_used_at < (now - TOUCH_EVERY).isoformat(
                timespec="seconds"):
            self.store.tokens.touch_token(row.id, now.isoformat(timespec="seconds"))
        return self._principal_for(user, scopes=row.scopes, limit=row.namespaces,
                                   token_id=token_id, via="token")

    def authenticate_session(self, session_id: str) -> Principal | None:
        """The principal of a browser session; None when it is unknown or expired."""
        found = self.store.sessions.session(_sha256(session_id.encode()))
        if found is None or found[2] <= _now().isoformat(timespec="seconds"):
            return None
        user = self.store.users.user_by_id(found[0])
        if user is None or user.disabled_at is not None:
            return None
        return self._principal_for(user, scopes=ALL_SCOPES, limit=None, token_id=None,
                                   via="session")

    def session_info(self, session_id: str) -> tuple[str, str] | None:
        """(username, CSRF token) of a live session."""
        principal = self.authenticate_session(session_id)
        found = self.store.sessions.session(_sha256(session_id.encode()))
        if principal is None or found is None or principal.username is None:
            return None
        return principal.username, found[1]

    def session_csrf_ok(self, session_id: str, sent: str | None) -> bool:
        found = self.store.sessions.session(_sha256(session_id.encode()))
        return bool(found and sent and secrets.compare_digest(found[1], sent))

    def _principal_for(self, user: UserRow, *, scopes: frozenset[str],
                       limit: frozenset[str] | None, token_id: str | None,
                       via: str) -> Principal:
        principal = Principal(
            username=user.username, user_id=user.id, kind=user.kind,
            display_name=user.display_name, email=user.email, operator=user.is_operator,
            roles=self.store.orgs.roles_of(user.id),
            org_roles=dict(self.store.orgs.orgs_of(user.id)),
            scopes=scopes, limit=limit, token_id=token_id, via=via)
        readable = frozenset(ns.name for ns in self.store.namespaces.hidden_namespaces()
                             if can_read(principal, ref_of(ns)))
        return replace(principal, readable=readable)

    def signed_in(self, user: UserRow, via: str, origin: Principal) -> Principal:
        """`user` as just signed in (every scope), from `origin`'s address."""
        return replace(self._principal_for(user, scopes=ALL_SCOPES, limit=None, token_id=None,
                                           via=via), origin=origin.origin)

    def account_principal(self, username: str | None) -> Principal:
        """An account as the author of what it published (no request of its own: every
        scope, no origin); the operator's console when there is no such account."""
        user = None if username is None else self.store.users.user(username)
        if user is None:
            return OPERATOR
        return self._principal_for(user, scopes=ALL_SCOPES, limit=None, token_id=None,
                                   via="author")

    def namespace_ref(self, namespace: str) -> NamespaceRef | None:
        info = self.store.namespaces.namespace(namespace)
        return None if info is None else ref_of(info)

    def require(self, principal: Principal, action: str, namespace: str) -> NamespaceInfo:
        """The namespace if `principal` may do `action` there; else the policy's error."""
        info = self.store.namespaces.namespace(namespace)
        require(principal, action, None if info is None else ref_of(info), namespace)
        assert info is not None
        return info

    def require_org(self, principal: Principal, action: str, org: str) -> None:
        """The org exists and `principal` may do `action` to it; else the policy's error
        (404 for an org one is not a member of, whether or not it exists)."""
        if not self.store.orgs.org_exists(org):
            if not principal.signed_in:
                require_org(principal, action, org)  # 401: sign in first
            raise NotFound(f"org {org!r} does not exist, or you are not a member")
        require_org(principal, action, org)

    def check_readable(self, namespace: str, principal: Principal) -> None:
        """404 (not 403, to keep private names private) unless the caller may read it."""
        self.require(principal, READ, namespace)

    # -- users and sign-in ---------------------------------------------------------------

    def add_user(self, username: str, *, password: str | None = None, display_name: str = "",
                 email: str = "", operator: bool = False,
                 by: Principal = OPERATOR) -> UserRow:
        """A person's account (the operator's, or through an invitation or OIDC)."""
        if not by.operator:
            raise Forbidden("only the operator adds accounts directly",
                            extra={"hint": "org owners invite people: `skills-hub org invite`"})
        self._check_new_name(username, "username")
        _check_profile(display_name, email)
        if password is not None:
            passwords.check_strength(password, username=username)
        user = self.store.users.add_user(
            username, display_name=display_name.strip(), email=email.strip(),
            password_hash=None if password is None else passwords.hash_password(password),
            operator=operator)
        self.audit(by, "user.create", username, detail={"operator": operator})
        return user

    def set_password(self, username: str, password: str, by: Principal) -> None:
        user = self._user(username)
        if not (by.operator or by.user_id == user.id):
            raise Forbidden("only the account itself or the operator sets its password")
        passwords.check_strength(password, username=username)
        self.store.users.set_password(user.id, passwords.hash_password(password))
        self.audit(by, "user.password", username)

    def sign_in(self, username: str, password: str, origin: Principal) -> UserRow:
        """Check a password, rate limited per account and per address (429 and when to
        retry); every failure is audited and says nothing about which part was wrong."""
        address = origin.origin.address or "unknown"
        self.signin_accounts.check(username.lower(), "this account")
        self.signin_addresses.check(address, "this address")
        user = self.store.users.user(username)
        ok = passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled_at is not None or user.kind != "user":
            self.signin_accounts.fail(username.lower())
            self.signin_addresses.fail(address)
            self.audit(origin, "signin.failed", username[:64])
            raise Unauthorized("the username or password is wrong",
                               extra={"hint": "check both; after several failures you must "
                                              "wait before trying again"})
        if user.password_hash and passwords.needs_rehash(user.password_hash):
            self.store.users.set_password(user.id, passwords.hash_password(password))
        self.audit(self.signed_in(user, "password", origin), "signin", user.username)
        return user

    def login(self, username: str, password: str, origin: Principal, *, label: str = "",
              days: int | None = None, scopes: list[str] | None = None
              ) -> tuple[TokenRow, str]:
        """Sign in with a password and get a personal access token (what the CLI does)."""
        user = self.sign_in(username, password, origin)
        me = self.signed_in(user, "password", origin)
        return self.create_user_token(me, label=label or "skills-hub login",
                                      scopes=scopes or list(SCOPES), days=days)

    def start_session(self, user: UserRow, origin: Principal) -> tuple[str, str]:
        """A browser session for `user`: (session id for the cookie, CSRF token)."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        expires = (_now() + timedelta(days=SESSION_DAYS)).isoformat(timespec="seconds")
        self.store.sessions.add_session(_sha256(session_id.encode()), user.id, csrf, expires,
                                        origin.origin.address, origin.origin.user_agent)
        return session_id, csrf

    def end_session(self, session_id: str) -> None:
        self.store.sessions.delete_session(_sha256(session_id.encode()))

    def user_for_identity(self, issuer: str, subject: str, *, preferred: str | None,
                          email: str | None, name: str | None, origin: Principal) -> UserRow:
        """The account of an OpenID Connect identity, made at its first sign-in."""
        user = self.store.users.user_by_oidc(issuer, subject)
        if user is None:
            username = self._free_username(preferred or (email or "").partition("@")[0]
                                           or "user")
            user = self.store.users.add_user(username, display_name=(name or "")[:MAX_DISPLAY],
                                             email=(email or "")[:200], oidc=(issuer, subject))
            self.audit(origin, "user.create", username, detail={"via": "oidc",
                                                                 "issuer": issuer})
        if user.disabled_at is not None:
            raise Unauthorized("this account is disabled")
        self.audit(self.signed_in(user, "oidc", origin), "signin", user.username,
                   detail={"via": "oidc"})
        return user

    def _free_username(self, wanted: str) -> str:
        base = "-".join(filter(None, "".join(c if c.isalnum() else "-"
                                             for c in wanted.lower()).split("-")))[:50] or "user"
        base = base if NAME_RE.match(base) else "user"
        for n in range(1000):
            name = base if n == 0 else f"{base}-{n}"
            if name not in RESERVED_NAMESPACES and not self.store.users.name_taken(name):
                return name
        raise Conflict("no free username; ask the operator to create the account")

    def oidc_client(self) -> OidcClient | None:
        """The OpenID provider's client when an issuer is configured (made at first use)."""
        with self._oidc_guard:
            if self._oidc is None and self.settings.oidc_issuer:
                self._oidc = client_from_settings(self.settings)
            return self._oidc

    def list_users(self, principal: Principal) -> list[UserRow]:
        if not (principal.operator and "admin" in principal.scopes):
            raise Forbidden("only the operator lists accounts")
        return self.store.users.users()

    def begin_flow(self, state: str, kind: str, data: dict[str, Any]) -> None:
        """Keep a sign-in's secrets (nonce, PKCE verifier) until the provider redirects back."""
        expires = (_now() + timedelta(minutes=10)).isoformat(timespec="seconds")
        self.store.sessions.add_flow(state, kind, data, expires)

    def take_flow(self, state: str, kind: str) -> dict[str, Any] | None:
        return self.store.sessions.take_flow(state, kind) if state else None

    def whoami(self, principal: Principal) -> dict[str, Any]:
        if not principal.signed_in:
            raise Unauthorized("send a bearer token or sign in",
                               extra={"hint": "`skills-hub login`"})
        return {"username": principal.username, "kind": principal.kind,
                "display_name": principal.display_name, "email": principal.email,
                "operator": principal.operator, "via": principal.via,
                "scopes": sorted(principal.scopes),
                "namespaces": None if principal.limit is None else sorted(principal.limit),
                "orgs": [{"org": o, "role": r} for o, r in sorted(principal.org_roles.items())],
                "roles": dict(sorted(principal.roles.items())),
                # the namespace a token publishes to by default (clients with one namespace)
                "namespace": principal.home_namespace}

    # -- tokens ---------------------------------------------------------------------------

    def create_token(self, namespace: str, label: str = "", private: bool | None = None) -> str:
        """(Operator console.) A token that owns `namespace`, as namespace tokens did before
        accounts: the namespace (and an org of the same name owning it) are made if needed,
        and the token belongs to the org's service account `<ns>.ci`."""
        check_namespace(namespace)
        self.git.ensure(namespace)
        self.store.namespaces.ensure_namespace(namespace, "private" if private else "public")
        if private is not None:
            self._set_visibility(namespace, "private" if private else "public")
        info = self.store.namespaces.namespace(namespace)
        assert info is not None
        if info.owner_org is None:
            if not self.store.orgs.org_exists(namespace):
                self.store.orgs.add_org(namespace, None, namespace=False)
            self.store.namespaces.set_namespace_owner(namespace, org=namespace)
            info = self.store.namespaces.namespace(namespace)
            assert info is not None
        org = info.owner_org or namespace
        account = self.store.users.user(f"{org}.ci")
        if account is None:
            account = self.add_service_account(OPERATOR, org, "ci", "owner")
        _, secret = self._issue(account, label=label, scopes=ALL_SCOPES,
                                namespaces=frozenset({namespace}), expires_at=None,
                                by=OPERATOR)
        return secret

    def create_user_token(self, principal: Principal, *, label: str = "",
                          scopes: list[str] | None = None,
                          namespaces: list[str] | None = None, days: int | None = None,
                          account: str | None = None) -> tuple[TokenRow, str]:
        """A personal access token of the caller, or (owners) of one of their org's service
        accounts. Shown once; stored as its sha256."""
        if not principal.signed_in:
            raise Unauthorized("sign in to create a token", extra={"hint": "`skills-hub login`"})
        if principal.via == "token" and "admin" not in principal.scopes \
                and account is not None:
            raise Forbidden("this token lacks the 'admin' scope needed for service tokens")
        owner = self._token_owner(principal, account)
        wanted = frozenset(scopes) if scopes else frozenset({"read", "publish"})
        bad = sorted(wanted - set(SCOPES))
        if bad:
            raise BadRequest(f"unknown scope {bad[0]!r}", problems=[Problem(
                "scopes", f"{bad[0]!r} is not a scope", f"use {', '.join(SCOPES)}")])
        if principal.via == "token" and account is None and not wanted <= principal.scopes:
            raise Forbidden("a token cannot make a token with more scopes than its own",
                            extra={"hint": "sign in with a password or a broader token"})
        limit = None
        if namespaces:
            limit = frozenset(namespaces)
            for ns in sorted(limit):
                self.require(principal if account is None else OPERATOR, READ, ns)
        if principal.via == "token" and principal.limit is not None:
            limit = principal.limit if limit is None else limit & principal.limit
        days = self.settings.token_default_days if days is None else days
        if not 1 <= days <= self.settings.token_max_days:
            raise BadRequest(f"a token lives 1-{self.settings.token_max_days} days",
                             problems=[Problem("days", f"{days} is out of range",
                                               "the operator sets the maximum "
                                               "(SKILLS_HUB_TOKEN_MAX_DAYS)")])
        expires = (_now() + timedelta(days=days)).isoformat(timespec="seconds")
        return self._issue(owner, label=label, scopes=wanted, namespaces=limit,
                           expires_at=expires, by=principal)

    def _issue(self, owner: UserRow, *, label: str, scopes: frozenset[str],
               namespaces: frozenset[str] | None, expires_at: str | None,
               by: Principal) -> tuple[TokenRow, str]:
        label = label.strip()[:MAX_LABEL]
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = self.store.tokens.add_token(owner.id, _sha256(secret.encode()),
                                               secret[:len(TOKEN_PREFIX) + 6], label, scopes,
                                               namespaces, expires_at)
        row = self.store.tokens.token_by_id(token_id)
        assert row is not None
        self.audit(by, "token.create", f"{owner.username}#{token_id}", org=owner.org,
                   detail={"scopes": sorted(scopes), "label": label,
                           "namespaces": None if namespaces is None else sorted(namespaces),
                           "expires_at": expires_at})
        return row, secret

    def _token_owner(self, principal: Principal, account: str | None) -> UserRow:
        if account is None:
            assert principal.user_id is not None
            user = self.store.users.user_by_id(principal.user_id)
            assert user is not None
            return user
        user = self.store.users.user(account)
        if user is None or user.kind != "service" or user.org is None:
            raise NotFound(f"no service account {account!r}")
        self.require_org(principal, ADMIN, user.org)
        return user

    def tokens(self, principal: Principal, org: str | None = None) -> list[TokenRow]:
        """The caller's own tokens, or (owners) those of an org's service accounts."""
        if not principal.signed_in:
            raise Unauthorized("sign in to list tokens")
        if org is None:
            assert principal.user_id is not None
            return self.store.tokens.tokens([principal.user_id])
        self.require_org(principal, ADMIN, org)
        return self.store.tokens.tokens(m.user_id for m in self.store.orgs.members(org)
                                        if m.kind == "service")

    def revoke_token(self, principal: Principal, token_id: int) -> TokenRow:
        """Revoke one token: one's own, or (owners) a service account's; the operator: any.
        Its next request gets 401 saying it was revoked."""
        row = self.store.tokens.token_by_id(token_id)
        owner = None if row is None else self.store.users.user_by_id(row.user_id)
        mine = row is not None and row.user_id == principal.user_id
        if row is None or owner is None or not (mine or principal.operator or (
                owner.org is not None and principal.org_roles.get(owner.org) == "owner")):
            raise NotFound(f"no token {token_id} of yours")
        if not mine and not principal.operator:
            self.require_org(principal, ADMIN, owner.org or "")
        if not self.store.tokens.revoke_token(token_id):
            raise Conflict(f"token {token_id} is already revoked")
        self.audit(principal, "token.revoke", f"{owner.username}#{token_id}", org=owner.org)
        revoked = self.store.tokens.token_by_id(token_id)
        assert revoked is not None
        return revoked

    # -- orgs and members -----------------------------------------------------------------

    def create_org(self, principal: Principal, name: str, display_name: str = "") -> None:
        """An org, its namespace of the same name, and the caller as its owner."""
        if not principal.signed_in or principal.kind == "service":
            raise Unauthorized("sign in with a person's account to create an org")
        if principal.via == "token" and "admin" not in principal.scopes:
            raise Forbidden("this token lacks the 'admin' scope needed to create an org",
                            extra={"needed_scope": "admin"})
        self._check_new_name(name, "org")
        _check_profile(display_name, "")
        self.git.ensure(name)
        self.store.orgs.add_org(name, principal.user_id, display_name.strip())
        self.audit(principal, "org.create", name, org=name, namespace=name)

    def delete_org(self, principal: Principal, org: str) -> None:
        self.require_org(principal, ADMIN, org)
        self.store.orgs.delete_org(org)
        self.audit(principal, "org.delete", org, org=org)

    def members(self, principal: Principal, org: str) -> list[MemberRow]:
        self.require_org(principal, READ, org)
        return self.store.orgs.members(org)

    def set_member(self, principal: Principal, org: str, username: str, role: str) -> MemberRow:
        """Add a member or change a role (owners only; nobody raises their own role)."""
        self.require_org(principal, ADMIN, org)
        _check_choice("role", role, ROLES)
        user = self._user(username)
        if user.kind == "service" and user.org != org:
            raise BadRequest(f"{username} is a service account of another org")
        old = self.store.orgs.member_role(org, user.id)
        try:
            self.store.orgs.set_member(org, user.id, role)
        except KeepOwner as exc:
            raise Conflict(f"{org} would be left without an owner",
                           extra={"hint": "make someone else an owner first"}) from exc
        self.audit(principal, "member.role" if old else "member.add", username, org=org,
                   detail={"role": role, "old_role": old})
        return next(m for m in self.store.orgs.members(org) if m.user_id == user.id)

    def remove_member(self, principal: Principal, org: str, username: str) -> None:
        """Owners remove anyone; a member may leave. The last owner cannot leave."""
        user = self._user(username)
        if principal.user_id != user.id:
            self.require_org(principal, ADMIN, org)
        else:
            self.require_org(principal, READ, org)
        try:
            removed = self.store.orgs.remove_member(org, user.id)
        except KeepOwner as exc:
            raise Conflict(f"{username} is the last owner of {org}",
                           extra={"hint": "make someone else an owner first, or delete the "
                                          "org"}) from exc
        if not removed:
            raise NotFound(f"{username} is not a member of {org}")
        self.audit(principal, "member.remove", username, org=org)

    def add_service_account(self, principal: Principal, org: str, name: str,
                            role: str) -> UserRow:
        """An org's account for CI and agents (`<org>.<name>`), holding tokens, not
        passwords."""
        self.require_org(principal, ADMIN, org)
        _check_choice("role", role, ROLES)
        if not NAME_RE.match(name) or len(name) > 40:
            raise BadRequest(f"{name!r} is not a valid service account name",
                             extra={"hint": "lowercase letters, digits and hyphens"})
        username = f"{org}.{name}"
        if self.store.users.user(username) is not None:
            raise Conflict(f"{username} exists")
        user = self.store.users.add_user(username, display_name=f"{name} ({org})",
                                         kind="service", org=org, personal_namespace=False)
        self.store.orgs.set_member(org, user.id, role, keep_an_owner=False)
        self.audit(principal, "service_account.create", username, org=org,
                   detail={"role": role})
        return user

    def invite(self, principal: Principal, org: str, role: str, email: str = "",
               days: int = INVITATION_DAYS) -> str:
        """A one-use invitation link's secret; whoever opens it joins with `role`."""
        self.require_org(principal, ADMIN, org)
        _check_choice("role", role, ROLES)
        _check_profile("", email)
        if not 1 <= days <= 30:
            raise BadRequest("an invitation lives 1-30 days")
        secret = "shinv_" + secrets.token_urlsafe(24)
        expires = (_now() + timedelta(days=days)).isoformat(timespec="seconds")
        self.store.sessions.add_invitation(_sha256(secret.encode()), org, role, email.strip(),
                                           principal.user_id, expires)
        self.audit(principal, "invitation.create", org, org=org,
                   detail={"role": role, "email": email.strip()})
        return secret

    def invitation(self, secret: str) -> InvitationRow:
        """An invitation that can still be accepted (which org, which role, until when);
        whoever holds the link may read this much. 404 unknown, 409 used or expired."""
        row = self.store.sessions.invitation(_sha256(secret.encode()))
        if row is None:
            raise NotFound("this invitation does not exist",
                           extra={"hint": "ask the org's owner for a new link"})
        if row.accepted_at is not None:
            raise Conflict("this invitation was already used",
                           extra={"hint": "ask the org's owner for a new link"})
        if row.expires_at <= _now().isoformat(timespec="seconds"):
            raise Conflict(f"this invitation expired on {row.expires_at}",
                           extra={"code_detail": "invitation_expired",
                                  "hint": "ask the org's owner for a new link"})
        return row

    def accept_invitation(self, secret: str, principal: Principal, *,
                          username: str | None = None, password: str | None = None,
                          display_name: str = "", email: str = "") -> UserRow:
        """Join the org: the signed-in caller, or a new account made with the invitation."""
        row = self.invitation(secret)
        if principal.signed_in and principal.kind == "user":
            user = self._user(principal.username or "")
        else:
            if not username or not password:
                raise BadRequest("sign in, or choose a username and password for a new account",
                                 problems=[Problem("username", "required", "a new username"),
                                           Problem("password", "required",
                                                   "at least 10 characters")])
            self._check_new_name(username, "username")
            _check_profile(display_name, email)
            passwords.check_strength(password, username=username)
            user = self.store.users.add_user(username, display_name=display_name.strip(),
                                             email=email.strip() or row.email,
                                             password_hash=passwords.hash_password(password))
            self.audit(principal, "user.create", username, org=row.org,
                       detail={"via": "invitation"})
        if not self.store.sessions.accept_invitation(row.id_sha256, user.id):
            raise Conflict("this invitation was already used")
        actor = principal if principal.signed_in else self.signed_in(user, "invitation",
                                                                      principal)
        self.audit(actor, "invitation.accept", user.username, org=row.org,
                   detail={"role": row.role})
        return user

    # -- namespace settings ---------------------------------------------------------------

    def set_visibility(self, namespace: str, visibility: str,
                       principal: Principal = OPERATOR) -> None:
        if visibility not in VISIBILITIES:
            raise BadRequest(f"visibility is one of {', '.join(VISIBILITIES)}")
        if principal.kind == "console":
            check_namespace(namespace)
            self.git.ensure(namespace)
            self.store.namespaces.ensure_namespace(namespace, visibility)
        else:
            self.require(principal, ADMIN, namespace)
        self._set_visibility(namespace, visibility)
        self.audit(principal, "namespace.visibility", namespace, namespace=namespace,
                   detail={"visibility": visibility})

    def _set_visibility(self, namespace: str, visibility: str) -> None:
        """Set it under the namespace's lock; a namespace that stops being public loses its
        static archives first, so the proxy sends none of them once this returns."""
        with self.git.locked(namespace):
            if visibility != "public":
                self.static_archives.remove_namespace(namespace)
            self.store.namespaces.set_visibility(namespace, visibility)

    def set_release_policy(self, principal: Principal, namespace: str, policy: str,
                           two_person: bool) -> NamespaceInfo:
        info = self.require(principal, ADMIN, namespace)
        _check_choice("release_policy", policy, RELEASE_POLICIES)
        self.store.namespaces.set_release_policy(namespace, policy, bool(two_person))
        self.audit(principal, "namespace.release_policy", namespace, namespace=namespace,
                   org=info.owner_org,
                   detail={"release_policy": policy, "two_person": bool(two_person)})
        updated = self.store.namespaces.namespace(namespace)
        assert updated is not None
        return updated

    def namespace_settings(self, principal: Principal, namespace: str) -> NamespaceInfo:
        return self.require(principal, READ, namespace)

    # -- audit ----------------------------------------------------------------------------

    def audit(self, principal: Principal, action: str, target: str, *,
              org: str | None = None, namespace: str | None = None,
              detail: dict[str, Any] | None = None) -> None:
        """Append one event to the audit log (it has no update or delete)."""
        if org is None and namespace is not None:
            info = self.store.namespaces.namespace(namespace)
            org = info.owner_org if info else None
        o = principal.origin
        self.store.audit.audit(NewAudit(principal.actor, principal.user_id, action, target, org,
                                        namespace, o.address, o.user_agent, o.request_id,
                                        detail or {}))

    def audit_events(self, principal: Principal, *, org: str | None = None,
                     actor: str | None = None, action: str | None = None,
                     since: str | None = None, cursor: str | None = None,
                     limit: int = 100) -> tuple[list[AuditRow], str | None]:
        """Newest first. Owners read their orgs' events; the operator reads all."""
        if not principal.signed_in:
            raise Unauthorized("sign in to read the audit log")
        if org is not None:
            self.require_org(principal, ADMIN, org)
            orgs: list[str] | None = [org]
        elif principal.operator and "admin" in principal.scopes:
            orgs = None
        else:
            orgs = [o for o, r in principal.org_roles.items() if r == "owner"]
            if not orgs:
                raise Forbidden("only org owners and the operator read the audit log")
        if not 1 <= limit <= 1000:
            raise BadRequest("limit is 1-1000")
        before = None
        if cursor:
            if not cursor.isdigit():
                raise BadRequest("cursor is the next_cursor of the previous page")
            before = int(cursor)
        rows = self.store.audit.audit_events(orgs=orgs, actor=actor, action=action,
                                             since=since, before_id=before, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, str(rows[-1].id) if more and rows else None

    # -- helpers --------------------------------------------------------------------------

    def _user(self, username: str) -> UserRow:
        user = self.store.users.user(username)
        if user is None:
            raise NotFound(f"no account {username!r}",
                           extra={"hint": "check the username; `skills-hub user list` "
                                          "(operator) lists them"})
        return user

    def _check_new_name(self, name: str, what: str) -> None:
        if len(name) > 39 or not NAME_RE.match(name) or name in RESERVED_NAMESPACES:
            raise BadRequest(f"{name!r} is not a valid {what}", problems=[Problem(
                what, "not a valid name", "use 1-39 lowercase letters, digits and single "
                                          "hyphens, not a reserved word")])
        if self.store.users.name_taken(name):
            raise Conflict(f"the name {name!r} is taken (by an account, org or namespace)",
                           extra={"code_detail": "name_taken", "hint": "choose another"})

    def _reporter(self, principal: Principal, what: str) -> str:
        reporter = principal.reporter
        if reporter is None:
            raise Unauthorized(f"{what} need a bearer token (any token of this registry)",
                               extra={"hint": "create one with `skills-hub token create`"})
        return reporter


def _check_profile(display_name: str, email: str) -> None:
    problems = []
    if len(display_name) > MAX_DISPLAY or any(ord(c) < 32 for c in display_name):
        problems.append(Problem("display_name", "too long or has control characters",
                                f"at most {MAX_DISPLAY} printable characters"))
    email = email.strip()
    if email and (len(email) > 200 or email.count("@") != 1 or any(
            c.isspace() or ord(c) < 32 or c in "<>" for c in email)):
        problems.append(Problem("email", "not an email address", EMAIL_RE_HINT))
    if problems:
        raise BadRequest("the profile is not valid", problems=problems)


def _now() -> datetime:
    return datetime.now(UTC)
