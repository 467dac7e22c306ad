"""The state every feature of the registry shares, declared once so the type checker can
check each feature's mixin on its own. `registry.Registry` sets it up."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..access.oidc import OidcClient
from ..access.throttle import SignInThrottle
from ..checks.pipeline import Options
from ..config import Settings
from ..domain import NamespaceInfo
from ..learning.outcomes import RateLimiter
from ..search.embedder import Embedder
from ..search.engine import SearchEngine
from ..skill.bundle import Bundle
from ..store.cache import ContentCache, FactCache, ImmutableFiles
from ..store.downloads import DownloadCounts
from ..store.gitstore import GitStore
from ..store.interfaces import Storage
from ..store.static_archives import StaticArchives

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    import numpy as np

    from ..access.policy import NamespaceRef
    from ..access.principal import Principal
    from ..checks.pipeline import Report
    from ..domain import (
        HealthCandidate,
        HealthCheckRow,
        NewVersion,
        ReleaseRow,
        SkillRow,
        VersionRow,
    )
    from ..search.engine import Gap
    from ..skill.manifest import Manifest
    from ..store.gitstore import TagInfo
    from .catalogue import Archive, PinnedVersion, SkillDetail
    from .demands import DemandRecorder
    from .moderation import HealthChange
    from .proposals import ProposalView
    from .publishing import PublishOutcome
    from .reconcile import ReconcileReport


class RegistryBase:
    """One registry home's shared state; the feature mixins hold the behaviour."""

    settings: Settings
    git: GitStore
    store: Storage
    embedder: Embedder
    search_engine: SearchEngine
    check_options: Options
    outcome_limiter: RateLimiter
    task_limiter: RateLimiter  # reported tasks embedded, per token (learning.tasks)
    demand_recorder: DemandRecorder
    signin_accounts: SignInThrottle
    signin_addresses: SignInThrottle
    _oidc: OidcClient | None
    _oidc_guard: threading.Lock
    _bundles: ContentCache[Bundle]
    _archives: ContentCache[Archive]
    _archive_files: ImmutableFiles
    _versions: FactCache[tuple[str, str, str], PinnedVersion]
    downloads: DownloadCounts
    static_archives: StaticArchives
    _since_maintenance: dict[str, int]
    _maintenance_guard: threading.Lock
    _backfill: threading.Thread | None

    if TYPE_CHECKING:
        # What one feature calls on another. Each is defined in its feature's mixin
        # (named below); it is only declared here, for the type checker.

        # accounts.AccountsMixin
        def check_readable(self, namespace: str, principal: Principal) -> None: ...

        def require(self, principal: Principal, action: str, namespace: str
                    ) -> NamespaceInfo: ...

        def namespace_ref(self, namespace: str) -> NamespaceRef | None: ...

        def account_principal(self, username: str | None) -> Principal: ...

        def audit(self, principal: Principal, action: str, target: str, *,
                  org: str | None = None, namespace: str | None = None,
                  detail: dict[str, Any] | None = None) -> None: ...

        # catalogue.CatalogueMixin

        def get_skill(self, namespace: str, name: str, principal: Principal
                      ) -> SkillDetail: ...

        def get_version(self, namespace: str, name: str, version: str,
                        principal: Principal) -> tuple[SkillRow, VersionRow]: ...

        def bundle(self, namespace: str, row: VersionRow) -> Bundle: ...

        # publishing.PublishingMixin
        def publish(self, namespace: str, bundle: Bundle, *, principal: Principal,
                    version: str | None = None, canary_share: float | None = None
                    ) -> PublishOutcome: ...

        def _release(self, namespace: str, bundle: Bundle, *, author: Principal,
                     reviewer: Principal | None, version: str | None,
                     canary_share: float | None = None) -> PublishOutcome: ...

        def _latest_row(self, namespace: str, name: str) -> VersionRow | None: ...

        # review.ReviewMixin
        def _pending_pin(self, skill: SkillRow, version: str,
                         principal: Principal) -> VersionRow | None: ...

        def _hold(self, namespace: str, manifest: Manifest, version: str, bundle: Bundle,
                  report: Report, principal: Principal) -> ReleaseRow: ...

        def _not_waiting(self, namespace: str, name: str, version: str) -> None: ...

        # proposals.ProposalsMixin
        def proposal(self, namespace: str, name: str, proposal_id: str,
                     principal: Principal) -> ProposalView: ...

        # releases.ReleasesMixin
        def deprecated_versions(self, namespace: str, name: str,
                                verdicts: dict[str, str] | None = None) -> dict[str, str]: ...

        def _judge_canary(self, namespace: str, name: str) -> None: ...

        def _judge_health(self, namespace: str, name: str, versions: Iterable[str]) -> None: ...

        def _latest_choice(self, namespace: str, name: str,
                           versions: list[str]) -> str | None: ...

        def _refresh_latest(self, namespace: str, name: str) -> None: ...

        def _newest_row(self, detail: SkillDetail) -> VersionRow: ...

        # demands.DemandsMixin
        def _note_gap(self, query: str, gap: Gap | None, principal: Principal,
                      namespace: str | None) -> None: ...

        def _answer_demands(self, namespace: str, name: str, version: str,
                            vector: np.ndarray) -> list[int]: ...

        # moderation.ModerationMixin
        def _exception_map(self, namespace: str, name: str) -> dict[str, str]: ...

        def _recheck(self, namespace: str, name: str, row: VersionRow,
                     reason: str) -> tuple[HealthChange, Report]: ...

        # health.HealthMixin
        def check_health(self, namespace: str, name: str, row: VersionRow, *, kind: str,
                         holder: str | None = None, priority: float = 0.0,
                         reasons: Sequence[str] = (),
                         candidate: HealthCandidate | None = None,
                         at: float | None = None
                         ) -> tuple[HealthChange, HealthCheckRow]: ...

        # accounts.AccountsMixin
        def _reporter(self, principal: Principal, what: str) -> str: ...

        # reconcile.ReconcileMixin
        def reconcile(self, full: bool = False, *, only: str | None = None
                      ) -> ReconcileReport: ...

        def _from_git(self, namespace: str, info: TagInfo, is_latest: bool) -> NewVersion: ...
