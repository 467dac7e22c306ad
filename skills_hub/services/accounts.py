"""Tokens and namespaces: who a bearer token is, and a namespace's visibility."""

from __future__ import annotations

import secrets

from ..access.principal import ANONYMOUS, Principal
from ..errors import BadRequest, Unauthorized
from .base import RegistryBase
from .common import _sha256, check_namespace

TOKEN_PREFIX = "shub_"


class AccountsMixin(RegistryBase):
    """Tokens, authentication and namespace visibility."""

    def create_token(self, namespace: str, label: str = "", private: bool | None = None) -> str:
        """A new token that publishes to (and reads) `namespace`, creating it if needed."""
        check_namespace(namespace)
        self.git.ensure(namespace)
        self.index.ensure_namespace(namespace, "private" if private else "public")
        if private is not None:
            self.index.set_visibility(namespace, "private" if private else "public")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.index.add_token(namespace, _sha256(token.encode()), label)
        return token

    def authenticate(self, token: str | None) -> Principal:
        """The principal for a bearer token; anonymous without one; 401 for a bad one."""
        if not token:
            return ANONYMOUS
        token_id = _sha256(token.encode())
        namespace = self.index.token_namespace(token_id)
        if namespace is None:
            raise Unauthorized("the token is not valid for this registry",
                               extra={"hint": "create one with `skills-hub token create NS`"})
        return Principal(namespace, token_id=token_id)

    def set_visibility(self, namespace: str, visibility: str) -> None:
        if visibility not in ("public", "private"):
            raise BadRequest("visibility is 'public' or 'private'")
        check_namespace(namespace)
        self.git.ensure(namespace)
        self.index.ensure_namespace(namespace, visibility)
        self.index.set_visibility(namespace, visibility)

    def _reporter(self, principal: Principal, what: str) -> str:
        if principal.operator:
            return "operator"
        if principal.token_id is None:
            raise Unauthorized(f"{what} need a bearer token (any token of this registry)",
                               extra={"hint": "create one with `skills-hub token create NS`"})
        return principal.token_id
