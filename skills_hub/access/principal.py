"""Who is calling. Built once per request (`services.accounts.authenticate`) and handed to
every service call; `access.policy` decides what it may do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ALL_SCOPES = frozenset({"read", "publish", "review", "admin"})


@dataclass(frozen=True)
class Origin:
    """Where a request came from, for the audit log."""

    address: str = ""
    user_agent: str = ""
    request_id: str = ""


@dataclass(frozen=True)
class Principal:
    """Nobody (anonymous), an account through a token or a session, or the operator's own
    console (seeding, imports, commands run on the server)."""

    username: str | None = None
    user_id: int | None = None
    kind: str = "anonymous"   # anonymous, user, service (an org's account), console
    display_name: str = ""
    email: str = ""
    operator: bool = False    # the site admin: every role everywhere
    roles: Mapping[str, str] = field(default_factory=dict)  # namespace -> role
    org_roles: Mapping[str, str] = field(default_factory=dict)  # org -> role
    scopes: frozenset[str] = frozenset()  # a token's scopes; sessions and the console: all
    limit: frozenset[str] | None = None   # the namespaces a token is limited to
    token_id: str | None = None  # sha256 of the bearer token (rate limits, reporter identity)
    readable: frozenset[str] = frozenset()  # every non-public namespace it may read
    via: str = "none"         # token, session, console
    origin: Origin = Origin()

    @property
    def signed_in(self) -> bool:
        return self.kind != "anonymous"

    @property
    def home_namespace(self) -> str | None:
        """Where this principal publishes when it names no namespace: the one namespace its
        token is limited to, a person's own namespace, or its only writable namespace."""
        if self.limit is not None and len(self.limit) == 1:
            return next(iter(self.limit))
        if self.kind == "user":
            return self.username
        writable = sorted(ns for ns, role in self.roles.items() if role != "reader")
        return writable[0] if len(writable) == 1 else None

    @property
    def reporter(self) -> str | None:
        """Who outcome reports and proposals are from (resends are told apart by it)."""
        if self.kind == "console":
            return "operator"
        if self.token_id is not None:
            return self.token_id
        return f"user:{self.user_id}" if self.user_id is not None else None

    @property
    def actor(self) -> str:
        """How the audit log and review decisions name this principal."""
        if self.kind == "console":
            return "operator"
        return self.username or "anonymous"

    @property
    def git_identity(self) -> str | None:
        """`Name <email>` for commits and tags this principal authors; None: the registry's."""
        if self.username is None:
            return None
        email = self.email or f"{self.username}@users.skills-hub.invalid"
        name = (self.display_name or self.username).replace("<", "").replace(">", "")
        return f"{name} <{email.replace('<', '').replace('>', '')}>"


ANONYMOUS = Principal()
OPERATOR = Principal(kind="console", operator=True, scopes=ALL_SCOPES, via="console")
