"""The demand list: gap answers recorded, clustered into demands, closed by publishes.

A search (`/api/v1/search`, first page, no filter but a namespace) or a gap check
(`/api/v1/gaps`) whose best semantic match among what the asker may read is below the gap
threshold is a *gap answer*. It is recorded with the query's embedding (the one the search
made), an opaque key of who asked, when, and its scope: the namespace the search was
limited to, or None for a search of the whole registry.

Recording costs the search a queue put: `DemandRecorder` writes in a background thread
(rate limit per token, then one transaction that stores the ask and folds it into its
demand: `learning.demands`). What is queued and not yet written when the process is
killed is lost (a few milliseconds of gap answers, never a catalogue change); `close`
writes everything queued first.

Privacy: a demand is visible where its scope is: a namespace's demands to the readers of
that namespace (the one policy, `principal.readable`), the registry's to everyone. A
search limited to a namespace the asker may not read records nothing. A demand of a
namespace is answered only by a skill published in it; a registry-wide demand only by a
skill in a public namespace, so the answer shown never names a skill its readers cannot
read.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..access.policy import can_read
from ..access.principal import Principal
from ..domain import DemandRow, NewGapAsk, now_iso
from ..errors import BadRequest, NotFound, Problem, RateLimited, Unauthorized
from ..learning.demands import CLOSE_SIMILARITY, Clustering, similarity
from .base import RegistryBase
from .common import ref_of

if TYPE_CHECKING:
    import numpy as np

    from ..learning.outcomes import RateLimiter
    from ..search.engine import Gap
    from ..store.interfaces import Storage

log = logging.getLogger(__name__)

STATUSES = ("open", "closed", "all")
MAX_QUEUED = 10_000     # gap answers waiting for the writer; beyond it new ones are dropped
MAX_LIMIT = 100
MAX_OFFSET = 10_000
PHRASINGS_SHOWN = 10


def asker_key(principal: Principal) -> str:
    """Who asked, as the demand list counts distinct askers: the account (all its tokens
    are one asker), the operator's console, or an anonymous caller's address, hashed (the
    list never stores an address); one shared key when even that is unknown."""
    if principal.kind == "console":
        return "operator"
    if principal.user_id is not None:
        return f"user:{principal.user_id}"
    if principal.token_id is not None:
        return f"token:{principal.token_id[:16]}"
    address = principal.origin.address
    if not address:
        return "anonymous"
    return "address:" + hashlib.sha256(address.encode()).hexdigest()[:16]


def rate_key(principal: Principal) -> str:
    """The rate limit's bucket: per token (a session or the console: per account)."""
    return principal.token_id or asker_key(principal)


@dataclass(frozen=True)
class _Noted:
    """A gap answer as the search path queued it (converted by the writer)."""

    query: str
    vector: np.ndarray
    model: str
    principal: Principal
    scope: str | None
    at: float


class DemandRecorder:
    """The background writer of gap answers: a bounded queue and one thread per registry
    (started by the first gap). `note` is all the search pays."""

    def __init__(self, store: Storage, limiter: RateLimiter,
                 clustering: Clustering | None = None) -> None:
        self.store, self.limiter = store, limiter
        self.clustering = clustering or Clustering()
        self._queue: queue.Queue[_Noted | None] = queue.Queue(MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.dropped = 0   # queue full
        self.limited = 0   # over the asker's rate
        self.recorded = 0

    def note(self, noted: _Noted) -> None:
        """Queue a gap answer; never blocks (a full queue drops it and counts it)."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(noted)
        except queue.Full:
            self.dropped += 1

    def flush(self) -> None:
        """Wait until everything queued so far is written (tests, benchmarks, `close`)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout=60)
        self._thread = None

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, daemon=True, name="demands")
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            noted = self._queue.get()
            try:
                if noted is None:
                    return
                self._write(noted)
            except Exception:  # one bad write must not stop the writer
                log.exception("recording a gap answer failed")
            finally:
                self._queue.task_done()

    def _write(self, noted: _Noted) -> None:
        if noted.scope is not None:  # as of the search: may the asker read it at all?
            info = self.store.namespaces.namespace(noted.scope)
            if info is None or not can_read(noted.principal, ref_of(info)):
                return
        try:
            self.limiter.take(rate_key(noted.principal))
        except RateLimited:
            self.limited += 1
            return
        at = datetime.fromtimestamp(noted.at, UTC).isoformat(timespec="seconds")
        self.store.demands.record_ask(NewGapAsk(
            noted.query, noted.vector.astype("float32").tobytes(), noted.model,
            asker_key(noted.principal), noted.scope, at), self.clustering)
        self.recorded += 1


@dataclass(frozen=True)
class DemandPage:
    demands: list[DemandRow]
    next_offset: int | None


@dataclass(frozen=True)
class DemandView:
    """One demand as its reader sees it."""

    demand: DemandRow
    phrasings: list[tuple[str, int]]  # (query, times asked), most asked first
    asked_by_you: bool
    answered: bool  # closed, and the answer's namespace is readable by the caller


class DemandsMixin(RegistryBase):
    """The demand list: record gap answers, list and show demands, close them."""

    def _note_gap(self, query: str, gap: Gap | None, principal: Principal,
                  namespace: str | None) -> None:
        """Queue a gap answer for the demand list (a no-op when it was no gap)."""
        if gap is None or not gap.detected or gap.vector is None:
            return
        self.demand_recorder.note(_Noted(query.strip(), gap.vector, self.embedder.model_id,
                                         principal, namespace, time.time()))

    def flush_demands(self) -> None:
        """Wait until every queued gap answer is recorded."""
        self.demand_recorder.flush()

    def demands(self, principal: Principal, *, status: str = "open",
                namespace: str | None = None, mine: bool = False, limit: int = 20,
                offset: int = 0) -> DemandPage:
        """Visible demands, most distinct askers first. `namespace`: only those asked in it
        (404 like any unreadable namespace); `mine`: only those the caller asked."""
        problems = []
        if status not in STATUSES:
            problems.append(Problem("status", f"{status!r} is not a status",
                                    f"use one of {', '.join(STATUSES)}"))
        if not 1 <= limit <= MAX_LIMIT:
            problems.append(Problem("limit", "out of range", f"use 1 to {MAX_LIMIT}"))
        if not 0 <= offset <= MAX_OFFSET:
            problems.append(Problem("offset", "out of range", f"use 0 to {MAX_OFFSET}"))
        if problems:
            raise BadRequest("the demand list's parameters are not valid", problems=problems)
        if namespace is not None:
            self.check_readable(namespace, principal)
        if mine and not principal.signed_in:
            raise Unauthorized("`mine` needs you to sign in: an anonymous caller has no "
                               "demands of its own", extra={"hint": "send a token"})
        rows = self.store.demands.demands(
            readable=principal.readable, status=None if status == "all" else status,
            scope=namespace, asker=asker_key(principal) if mine else None, offset=offset,
            limit=limit + 1)
        more = len(rows) > limit
        return DemandPage(rows[:limit], offset + limit if more else None)

    def demand(self, demand_id: int, principal: Principal) -> DemandView:
        """One visible demand; 404 for one that does not exist or the caller may not see."""
        row = self.store.demands.demand(demand_id, readable=principal.readable)
        if row is None:
            raise NotFound(f"demand {demand_id} does not exist",
                           extra={"hint": "list the demands with GET /api/v1/demands"})
        answered = row.status == "closed" and row.answer_namespace is not None
        if answered:
            ref = self.namespace_ref(row.answer_namespace or "")
            answered = ref is not None and can_read(principal, ref)
        return DemandView(row, self.store.demands.phrasings(row.id, PHRASINGS_SHOWN),
                          principal.signed_in and
                          self.store.demands.asked(row.id, asker_key(principal)),
                          answered)

    def _answer_demands(self, namespace: str, name: str, version: str,
                        vector: np.ndarray) -> list[int]:
        """Close the open demands a newly published `latest` version answers: those of its
        namespace, and the registry's when the namespace is public, whose centroid is at
        least CLOSE_SIMILARITY to the version's text. Returns the ids closed."""
        info = self.store.namespaces.namespace(namespace)
        public = info is not None and info.visibility == "public"
        model = self.embedder.model_id
        closed = []
        at = now_iso()
        for demand_id, demand_model, centroid in self.store.demands.open_centroids(
                namespace, registry=public):
            if demand_model != model:
                continue
            sim = similarity(centroid, vector)
            if sim >= CLOSE_SIMILARITY and self.store.demands.close_demand(
                    demand_id, namespace, name, version, round(sim, 6), at):
                closed.append(demand_id)
        if closed:
            log.info("%s/%s %s answered demands %s", namespace, name, version, closed)
        return closed
