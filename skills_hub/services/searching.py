"""Search: keyword, semantic or hybrid search with filters, sorts and cursors; gaps and
near-duplicates."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from ..access.principal import Principal
from ..domain import TRUST_LEVELS, SearchFilters, SkillRow
from ..errors import BadRequest
from ..ranking import explore
from ..search.engine import MAX_RESULTS, MODES, SORTS, Duplicate, Gap, SearchRequest, SearchResults
from .base import RegistryBase
from .common import _check_choice

MAX_QUERY_CHARS = 1000
VERDICTS = ("safe", "caution", "dangerous", "unchecked")


@dataclass(frozen=True)
class SearchPage:
    results: SearchResults
    next_cursor: str | None
    offset: int = 0                  # of the first result shown
    prev_cursor: str | None = None   # None on the first two pages (the first has none)


class SearchingMixin(RegistryBase):
    """Search, gaps and near-duplicates."""

    def search(self, query: str, *, principal: Principal, mode: str = "auto",
               namespace: str | None = None, tag: str | None = None,
               trust: str | None = None, verdict: str | None = None,
               updated_since: str | None = None, sort: str = "relevance", limit: int = 20,
               cursor: str | None = None, facets: bool = False,
               record: bool = False, client_id: str | None = None) -> SearchPage:
        """Keyword, semantic or hybrid search with filters, a sort and cursor paging.

        An empty query lists the filtered catalogue (newest first unless `sort` says).
        With `facets` the results also carry their total and the facet counts (namespace,
        tag, verdict, trust) over every result the caller may read, and every page of the
        query is cut from one ranking of all the results paging can reach.
        With `record` (agents' searches through the API), a gap on the first page of a
        search filtered by at most a namespace goes to the demand list (`DemandsMixin`);
        other filters make a gap of the filter, not of the registry.
        Sorted by relevance, a share of an agent's pages explore (`ranking.explore`),
        seeded by the query, the client (`client_id`, else the token) and the hour, so a
        page is stable; a search with neither (a person browsing, whose picks report no
        outcomes to learn from) gets the plain order.
        """
        _check_query(query)
        _check_choice("mode", mode, MODES)
        _check_choice("sort", sort, SORTS)
        if trust is not None:
            _check_choice("trust", trust, TRUST_LEVELS)
        if verdict is not None:
            _check_choice("verdict", verdict, VERDICTS)
        if tag is not None and (not tag.strip() or len(tag) > 64 or "," in tag):
            raise BadRequest("the tag filter is one tag of at most 64 characters")
        filters = SearchFilters(namespace=namespace, tag=tag.strip() if tag else None,
                                trust=trust, verdict=verdict,
                                updated_since=_since(updated_since))
        limit = max(1, min(limit, 100))
        key = _search_key(query, mode, filters, sort)
        offset = _decode_search_cursor(cursor, key)
        if client_id is not None and not 0 < len(client_id) <= 200:
            raise BadRequest("client_id is 1-200 characters")
        client = client_id or principal.token_id
        seed = None if client is None else explore.page_seed(query, client, datetime.now(UTC))
        results = self.search_engine.search(SearchRequest(
            query, principal.readable, mode, filters, sort, limit, offset, facets, seed))
        if record and offset == 0 and filters == SearchFilters(namespace=namespace):
            self._note_gap(query, results.gap, principal, namespace)
        more = results.more and offset + limit < MAX_RESULTS
        back = max(0, offset - limit)
        return SearchPage(results, _encode_search_cursor(offset + limit, key) if more else None,
                          offset, _encode_search_cursor(back, key) if back else None)

    def gap(self, query: str, *, principal: Principal, namespace: str | None = None,
            record: bool = False) -> Gap | None:
        """Whether no readable skill is close to `query` (None until the model is loaded);
        with `record`, a gap goes to the demand list."""
        _check_query(query)
        gap = self.search_engine.gap(query, readable=principal.readable,
                                     filters=SearchFilters(namespace=namespace))
        if record:
            self._note_gap(query, gap, principal, namespace)
        return gap

    def near_duplicates(self, skill: SkillRow, principal: Principal) -> list[Duplicate]:
        """Readable skills at least 0.9 similar to `skill` (already readable by the caller)."""
        return self.search_engine.similar_to(skill.id, readable=principal.readable)


def _check_query(query: str) -> None:
    if len(query) > MAX_QUERY_CHARS:
        raise BadRequest(f"the query is longer than {MAX_QUERY_CHARS} characters",
                         extra={"hint": "shorten the query"})


def _since(text: str | None) -> str | None:
    """An ISO 8601 date or time, as the UTC timestamp text `updated_at` is compared with."""
    if text is None or not text.strip():
        return None
    try:
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest("updated_since is not an ISO 8601 date or time",
                         extra={"hint": "e.g. 2026-11-01 or 2026-11-01T12:00:00Z"}) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).isoformat(timespec="seconds")


def _search_key(query: str, mode: str, filters: SearchFilters, sort: str) -> str:
    """A digest of what a cursor belongs to, so it cannot be replayed on another search."""
    text = json.dumps([query.strip(), mode, sort, filters.namespace, filters.tag,
                       filters.trust, filters.verdict, filters.updated_since])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_search_cursor(offset: int, key: str) -> str:
    raw = json.dumps({"o": offset, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_search_cursor(cursor: str | None, key: str) -> int:
    if not cursor:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, owner = int(data["o"]), str(data["k"])
    except (ValueError, KeyError, TypeError):
        raise BadRequest("the cursor is not valid",
                         extra={"hint": "pass next_cursor as given"}) from None
    if owner != key or not 0 <= offset < MAX_RESULTS:
        raise BadRequest("the cursor belongs to another search",
                         extra={"hint": "repeat the same query, filters and sort with it"})
    return offset
