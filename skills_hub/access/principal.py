"""Who is calling: the principal a request acts as."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token scoped to one namespace, or the operator (seed, import)."""

    namespace: str | None
    operator: bool = False
    token_id: str | None = None  # sha256 of the bearer token (rate limits, reporter identity)

    @property
    def readable(self) -> frozenset[str]:
        return frozenset({self.namespace}) if self.namespace else frozenset()

    def can_write(self, namespace: str) -> bool:
        return self.operator or self.namespace == namespace


ANONYMOUS = Principal(None)
OPERATOR = Principal(None, operator=True)
