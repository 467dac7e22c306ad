"""Prometheus metrics: every metric of the server and the small functions that count them.
The one doorway to prometheus-client; the rest of the code calls the functions here.

No label carries a namespace, a skill name, a raw path or anything else a request chooses:
routes are Starlette route templates (`/api/v1/skills/{namespace}/{name}`, `unmatched` for
none), methods and results come from short fixed sets, so /metrics never names a private
skill and its size stays bounded (`_Bounded`).

With `skills-hub serve --workers N` each worker is a process of its own: `serve` sets
PROMETHEUS_MULTIPROC_DIR to a fresh folder before the workers start, prometheus-client then
keeps every value in a memory-mapped file there (it reads that variable when it is imported;
this module reads it too, as the library's own switch), and `exposition` sums the files of
every worker, dead ones' included, so counters never go back. Gauges that are live per
process (requests in progress) drop a dead worker's file at the next scrape (`_bury_dead`);
uvicorn's supervisor has no hook for a worker's exit. What is read at scrape time from the
catalogue (the embed queue) is a `Live` collector of the scraping process: the catalogue is
the same for every worker.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# From a health check (well under a millisecond) to a publish whose tests run in a sandbox.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)

# No `_created` series beside each counter and histogram: half the lines, and Prometheus
# does not need them (the multiprocess collector never has them).
disable_created_metrics()

REQUESTS = Counter("skills_hub_http_requests", "HTTP requests answered, by route template, "
                   "method and status.", ["route", "method", "status"])
LATENCY = Histogram("skills_hub_http_request_duration_seconds", "Time from a request's "
                    "arrival to its last byte, by route template.", ["route"],
                    buckets=LATENCY_BUCKETS)
IN_PROGRESS = Gauge("skills_hub_http_requests_in_progress", "Requests being answered.",
                    multiprocess_mode="livesum")
PUBLISHES = Counter("skills_hub_publishes", "Publish attempts, by result: the outcome's "
                    "status (published, pending, unchanged) or the refusal's error code.",
                    ["result"])
VERDICTS = Counter("skills_hub_check_verdicts", "Verdicts of the checks pipeline, by verdict "
                   "and by what ran it (publish, recheck, proposal).", ["verdict", "source"])
OUTCOMES_RECEIVED = Counter("skills_hub_outcome_reports_received", "Outcome reports in "
                            "accepted batches.")
OUTCOMES_RECORDED = Counter("skills_hub_outcome_reports_recorded", "Outcome reports stored "
                            "(received less the ones already seen).")
CACHE_HITS = Counter("skills_hub_cache_hits", "Lookups a cache answered.", ["cache"])
CACHE_MISSES = Counter("skills_hub_cache_misses", "Lookups a cache had to make.", ["cache"])


class _Bounded:
    """Label values from the code (results, verdicts, cache names): at most `cap` distinct
    ones, then `other`, so a caller passing something unexpected cannot grow /metrics."""

    def __init__(self, cap: int = 64) -> None:
        self.cap = cap
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.cap or not _LABEL.fullmatch(value):
            return "other"
        self.seen.add(value)
        return value


_LABEL = re.compile(r"[a-z][a-z0-9_]{0,39}")
_results, _verdicts, _sources, _caches = _Bounded(), _Bounded(8), _Bounded(8), _Bounded()
# Label children by their values: a dict lookup per request instead of `labels()`'s lock.
_request_children: dict[tuple[str, str, int], tuple[Callable[[], None],
                                                    Callable[[float], None]]] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request under its route template (not its path)."""
    if method not in METHODS:  # a client's own verb: the key must stay bounded too
        method = "other"
    key = (route, method, status)
    children = _request_children.get(key)
    if children is None:
        counter = REQUESTS.labels(route, method, str(status))
        children = _request_children[key] = (counter.inc, LATENCY.labels(route).observe)
    count, observe = children
    count()
    observe(seconds)


def observe_publish(result: str) -> None:
    """One publish: its outcome's status, or the error code it was refused with."""
    PUBLISHES.labels(_results(result)).inc()


def observe_verdict(verdict: str, source: str = "publish") -> None:
    """One run of the checks pipeline and its verdict (safe, caution, dangerous)."""
    VERDICTS.labels(_verdicts(verdict), _sources(source)).inc()


def observe_outcomes(received: int, recorded: int) -> None:
    """One accepted batch of outcome reports: how many came, how many were new."""
    OUTCOMES_RECEIVED.inc(received)
    OUTCOMES_RECORDED.inc(recorded)


def cache_counters(cache: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """(hit, miss): what a cache named `cache` calls on each lookup."""
    name = _caches(cache)
    return CACHE_HITS.labels(name).inc, CACHE_MISSES.labels(name).inc


class Live:
    """Gauges read when /metrics is scraped, each from a function of the app (a custom
    collector: in multiprocess mode `Gauge.set_function` is not supported). A function
    returning None leaves its gauge out."""

    def __init__(self) -> None:
        self._gauges: list[tuple[str, str, Callable[[], float | None]]] = []
        self._states: list[tuple[str, str, tuple[str, ...], Callable[[], str]]] = []

    def gauge(self, name: str, documentation: str, read: Callable[[], float | None]) -> None:
        self._gauges.append((name, documentation, read))

    def state(self, name: str, documentation: str, states: tuple[str, ...],
              read: Callable[[], str]) -> None:
        """A gauge per state, 1 for the current one (what `Enum` does in one process)."""
        self._states.append((name, documentation, states, read))

    def collect(self) -> Iterator[Metric]:
        for name, documentation, read in self._gauges:
            value = read()
            if value is not None:
                yield GaugeMetricFamily(name, documentation, value=value)
        for name, documentation, states, read_state in self._states:
            family = GaugeMetricFamily(name, documentation, labels=["state"])
            current = read_state()
            for state in states:
                family.add_metric([state], 1.0 if state == current else 0.0)
            yield family


def multiprocess_dir() -> Path | None:
    """The folder of every worker's values when several processes serve, else None."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def exposition(accept: str, *extra: Collector) -> tuple[bytes, str]:
    """(body, content type) of every metric in the format `accept` asks for (Prometheus
    text unless it asks for OpenMetrics): this process's, or all workers' summed in
    multiprocess mode, then `extra`'s."""
    registry = CollectorRegistry()
    folder = multiprocess_dir()
    if folder is None:
        registry.register(REGISTRY)  # ours, and the process and platform collectors
    else:
        _bury_dead(folder)
        MultiProcessCollector(registry, path=str(folder))
    for collector in extra:
        registry.register(collector)
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def _bury_dead(folder: Path) -> None:
    """Drop the live gauges of workers that are gone (killed, or replaced by uvicorn)."""
    for path in folder.glob("gauge_live*.db"):
        match = _LIVE_FILE.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            try:
                mark_process_dead(int(match.group(1)), str(folder))
            except FileNotFoundError:  # another scrape buried it first
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
