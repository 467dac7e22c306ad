"""The one access rule: `allowed(principal, action, namespace)`, and `require`, which turns a
refusal into the right error. Every route of every interface asks it, through the services.

A right is the meet of three things:
- the namespace's visibility (`public`, `internal`: any signed-in account, `private`: members);
- the principal's role on the namespace (the owner of a personal namespace is `owner`; an
  org's members have the role the org gave them), each role a superset of the one before;
- the token's scopes (a session or the operator's own console has every scope) and the
  namespaces a token is limited to: it reads private and internal namespaces and changes
  anything only there, while outcome reports and proposals (agents' evidence) go wherever
  the caller may read.
The operator (site admin) has every role everywhere, still capped by the token's scopes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Forbidden, NotFound, Unauthorized
from .principal import Principal

ROLES = ("reader", "publisher", "maintainer", "owner")
SCOPES = ("read", "publish", "review", "admin")
VISIBILITIES = ("public", "internal", "private")

# action -> (the least role it needs, the token scope it needs)
READ = "read"            # see the namespace's skills, files, archives, reports; clone it
REPORT = "report"        # send outcome reports on its skills (any signed-in reader)
PROPOSE = "propose"      # propose a refinement (members: publisher; others where they read)
PUBLISH = "publish"      # publish a version (under review: a pending release)
RELEASE = "release"      # publish straight to `latest` under required review
REVIEW = "review"        # approve or reject releases and proposals
MODERATE = "moderate"    # reviewed rule exceptions, blocks
ADMIN = "admin"          # members, roles, visibility, policies, service accounts
EXPORT = "export"        # export its evidence (outcome reports, proposals, reviews) to train on
RULES: dict[str, tuple[str | None, str]] = {
    READ: (None, "read"),
    REPORT: (None, "read"),
    PROPOSE: ("publisher", "publish"),
    PUBLISH: ("publisher", "publish"),
    RELEASE: ("maintainer", "publish"),
    REVIEW: ("maintainer", "review"),
    MODERATE: ("maintainer", "review"),
    ADMIN: ("owner", "admin"),
    # Owners only (the evidence is every client's and reviewer's words), with a token that
    # may read: an export changes nothing, so a read-only token for a training job suffices.
    EXPORT: ("owner", "read"),
}
ACTIONS = tuple(RULES)


@dataclass(frozen=True)
class NamespaceRef:
    """What the rule needs to know of a namespace."""

    name: str
    visibility: str = "public"
    owner_org: str | None = None
    owner_user: int | None = None


def role_rank(role: str | None) -> int:
    """0 for no role, then 1 (reader) to 4 (owner)."""
    return ROLES.index(role) + 1 if role in ROLES else 0


def role_on(principal: Principal, namespace: NamespaceRef) -> str | None:
    """The principal's role on the namespace, before token scopes."""
    if principal.operator:
        return "owner"
    return principal.roles.get(namespace.name)


def can_read(principal: Principal, namespace: NamespaceRef) -> bool:
    if not _within_limit(principal, namespace) and namespace.visibility != "public":
        return False
    if namespace.visibility == "public":
        return True
    if principal.operator or namespace.name in principal.roles:
        return True
    return namespace.visibility == "internal" and principal.signed_in


def allowed(principal: Principal, action: str, namespace: NamespaceRef) -> bool:
    """May `principal` do `action` on `namespace`? The one rule; see the module docstring."""
    least, scope = RULES[action]
    if not can_read(principal, namespace):
        return False
    if action == READ:
        return True
    if not principal.signed_in or not has_scope(principal, scope):
        return False
    if action == REPORT:
        return True  # evidence goes wherever the caller reads, whatever the token's limit
    if action == PROPOSE and namespace.visibility != "private":
        return True  # anyone signed in who reads a public or internal skill may propose
    if not _within_limit(principal, namespace):
        return False
    return role_rank(role_on(principal, namespace)) >= role_rank(least)


def require(principal: Principal, action: str, namespace: NamespaceRef | None,
            name: str | None = None) -> NamespaceRef:
    """`namespace` if allowed; else 404 where the caller may not know it exists, 401 when
    signing in could help, 403 naming the role or scope that is missing."""
    shown = name or (namespace.name if namespace else "")
    if action != READ and not principal.signed_in:  # the same answer whether it exists
        raise Unauthorized(f"{_doing(action)} in {shown!r} needs you to sign in",
                           extra={"hint": "send `Authorization: Bearer <token>`; create a "
                                          "token with `skills-hub login` or `skills-hub token "
                                          "create`"})
    if namespace is None or not can_read(principal, namespace):
        raise NotFound(f"namespace {shown!r} does not exist")
    if allowed(principal, action, namespace):
        return namespace
    least, scope = RULES[action]
    if not has_scope(principal, scope):
        raise Forbidden(f"this token lacks the {scope!r} scope needed for {_doing(action)}",
                        extra={"hint": f"create a token with `--scope {scope}`",
                               "needed_scope": scope})
    if not _within_limit(principal, namespace):
        raise Forbidden(f"this token is limited to other namespaces than {shown!r}",
                        extra={"hint": f"create a token for {shown!r} or without a limit"})
    raise Forbidden(f"{_doing(action)} in {shown!r} needs the {least!r} role",
                    extra={"hint": "ask an owner of the namespace for the role",
                           "needed_role": least,
                           "your_role": role_on(principal, namespace)})


def has_scope(principal: Principal, scope: str) -> bool:
    """Any scope includes reading what the principal may read."""
    return scope in principal.scopes or (scope == "read" and bool(principal.scopes))


def _within_limit(principal: Principal, namespace: NamespaceRef) -> bool:
    return principal.limit is None or namespace.name in principal.limit


def _doing(action: str) -> str:
    return {
        READ: "reading", REPORT: "reporting outcomes", PROPOSE: "proposing",
        PUBLISH: "publishing", RELEASE: "releasing without review",
        REVIEW: "reviewing", MODERATE: "moderating", ADMIN: "administering",
        EXPORT: "exporting evidence",
    }[action]


def org_role(principal: Principal, org: str) -> str | None:
    return "owner" if principal.operator else principal.org_roles.get(org)


def require_org(principal: Principal, action: str, org: str) -> None:
    """An org's members may read it (`READ`); owners administer it (`ADMIN`). Others are
    told it does not exist; an org is not public the way a namespace can be."""
    role = org_role(principal, org)
    if role is None:
        if not principal.signed_in:
            raise Unauthorized(f"org {org!r}: sign in first",
                               extra={"hint": "`skills-hub login`"})
        raise NotFound(f"org {org!r} does not exist, or you are not a member")
    least, scope = RULES[action]
    if not has_scope(principal, scope):
        raise Forbidden(f"this token lacks the {scope!r} scope needed for {_doing(action)}",
                        extra={"hint": f"create a token with `--scope {scope}`",
                               "needed_scope": scope})
    if role_rank(role) < role_rank(least):
        raise Forbidden(f"{_doing(action)} org {org!r} needs the {least!r} role",
                        extra={"hint": "ask an owner of the org", "needed_role": least,
                               "your_role": role})
