"""The registry: every feature's mixin, wired to one home's settings, git repos and index."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..access.oidc import OidcClient
from ..access.principal import OPERATOR
from ..access.throttle import ACCOUNT_FAILURES, ADDRESS_FAILURES, SignInThrottle
from ..checks.pipeline import Options
from ..config import Settings
from ..learning.outcomes import RateLimiter
from ..learning.tasks import EMBED_BURST, EMBED_RATE
from ..search.embedder import Embedder
from ..search.engine import SearchEngine
from ..skill.bundle import Bundle
from ..store.backend import open_storage
from ..store.cache import ContentCache, FactCache, ImmutableFiles
from ..store.downloads import DownloadCounts
from ..store.gitstore import GitStore
from ..store.static_archives import StaticArchives
from .accounts import AccountsMixin
from .catalogue import Archive, CatalogueMixin, PinnedVersion
from .demands import DemandRecorder, DemandsMixin
from .evidence import EvidenceMixin
from .health import HealthMixin
from .moderation import ModerationMixin
from .outcomes import OutcomesMixin
from .proposals import ProposalsMixin
from .publishing import PublishingMixin
from .reconcile import ReconcileMixin, ReconcileReport
from .releases import ReleasesMixin
from .review import ReviewMixin
from .searching import SearchingMixin

log = logging.getLogger(__name__)

SEED_NAMESPACE = "examples"
STATIC_SYNC_SECONDS = 5.0


class Registry(PublishingMixin, CatalogueMixin, ReleasesMixin, OutcomesMixin, ProposalsMixin,
               ModerationMixin, SearchingMixin, AccountsMixin, ReviewMixin, ReconcileMixin,
               EvidenceMixin, DemandsMixin, HealthMixin):
    """One registry home: its namespaces' git repos and its index."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        """`embedder` may be shared between registries (tests load the model once)."""
        self.settings = settings
        self.store = open_storage(settings)
        self.git = GitStore(settings.repos_dir, write_lock=self.store.write_lock)
        self.embedder = embedder or Embedder(enabled=settings.semantic != "off")
        self.search_engine = SearchEngine(self.store, self.embedder)
        self._bundles: ContentCache[Bundle] = ContentCache(64 << 20, lambda b: b.total_bytes,
                                                          name="bundles")
        self._archives: ContentCache[Archive] = ContentCache(64 << 20, lambda a: len(a.data),
                                                            name="archives")
        self._archive_files = ImmutableFiles(settings.home / "cache" / "archives",
                                             name="archive_files")
        self._versions: FactCache[tuple[str, str, str], PinnedVersion] = \
            FactCache(self.store.generation, name="versions")
        self.downloads = DownloadCounts(self.store.catalogue)
        self.static_archives = StaticArchives(settings.repos_dir, settings.static_archives,
                                              settings.proxy_reload)
        self._static_sync: threading.Thread | None = None
        self._static_stop = threading.Event()
        self._since_maintenance: dict[str, int] = {}
        self._maintenance_guard = threading.Lock()
        self.check_options = Options(strict=settings.strict, sandbox=settings.sandbox)
        self._backfill: threading.Thread | None = None
        self.outcome_limiter = RateLimiter(settings.outcome_rate, settings.outcome_burst,
                                           self.store.buckets)
        self.task_limiter = RateLimiter(EMBED_RATE, EMBED_BURST, self.store.buckets,
                                        prefix="tasks:")
        self.demand_recorder = DemandRecorder(
            self.store, RateLimiter(settings.demand_rate, settings.demand_burst,
                                    self.store.buckets, prefix="gaps:"))
        self.signin_accounts = SignInThrottle(ACCOUNT_FAILURES, self.store.buckets,
                                              "signin-account:")
        self.signin_addresses = SignInThrottle(ADDRESS_FAILURES, self.store.buckets,
                                               "signin-address:")
        self._oidc: OidcClient | None = None
        self._oidc_guard = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, seed_dir: Path | None = None) -> ReconcileReport:
        """Migrate the index, reconcile it with git, and seed an empty registry."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.store.db.migrate()
        # Also undoes what a killed writer left in git (GitStore.recover): stale lock files,
        # a tag left one commit ahead of main, orphan tags; each is logged as it is fixed.
        report = self.reconcile()
        if report.locks or report.repaired or report.orphans:
            log.warning("recovered from an interrupted write: %d stale lock files removed, "
                        "main fast-forwarded to %s, orphan tags removed: %s",
                        len(report.locks), report.repaired or "none", report.orphans or "none")
        if seed_dir is not None and not self.git.namespaces():
            for outcome in self.publish_tree(SEED_NAMESPACE, seed_dir, principal=OPERATOR):
                log.info("seeded %s/%s %s", outcome.namespace, outcome.name, outcome.version)
        pending = self.store.reports.unchecked_versions()
        if pending:
            self._backfill = threading.Thread(target=self.backfill_reports, args=(pending,),
                                              daemon=True, name="backfill-reports")
            self._backfill.start()
        self.search_engine.start()
        if self.static_archives.enabled:
            self._sync_static_once()  # the maps exist before the first answer
            self._static_sync = threading.Thread(target=self._sync_static_archives,
                                                 daemon=True, name="static-archives")
            self._static_sync.start()
        return report

    def _sync_static_archives(self) -> None:
        """Every few seconds: count the proxy's downloads, refresh its maps
        (`store.static_archives`); one process of the node at a time."""
        while not self._static_stop.wait(STATIC_SYNC_SECONDS):
            self._sync_static_once()

    def _sync_static_once(self) -> None:
        try:
            self.static_archives.sync(self.store.catalogue)
        except Exception:  # a full disk, a lost database: log, retry next time
            log.exception("syncing the static archives failed")

    def readiness(self) -> dict[str, str]:
        """Whether this node may take traffic: each check's `ok` or what is wrong (the
        catalogue answers and its migrations are applied)."""
        return self.store.db.readiness()

    def close(self) -> None:
        self.stop_health_checks()
        if self._backfill is not None:
            self._backfill.join()
        self._static_stop.set()
        if self._static_sync is not None:
            self._static_sync.join()
        self.search_engine.close()
        self.demand_recorder.close()  # writes the gap answers still queued
        if self._oidc is not None:
            self._oidc.close()
        self.downloads.close()
        self.store.close()
