"""The domain API: publish, read, archive, search, tokens, reindex. No HTTP, no CLI.

Every write goes to git first (the source of truth) and then to the index; a rejected
request raises before anything is written.

One module per feature, each a mixin of `registry.Registry` over the shared state declared
in `base.RegistryBase`; names more than one feature uses live in `common`.
"""

from .catalogue import Archive, FlatCatalogue, SkillDetail, SkillPage, install_command, version_of
from .common import check_namespace
from .moderation import HealthChange, installable
from .outcomes import OutcomeReceipt, OutcomeSummary
from .proposals import ProposalOutcome, ProposalView
from .publishing import PublishOutcome
from .reconcile import ReconcileReport
from .registry import Registry
from .releases import Resolution
from .searching import MAX_QUERY_CHARS, SearchPage

__all__ = [
    "MAX_QUERY_CHARS",
    "Archive",
    "FlatCatalogue",
    "HealthChange",
    "OutcomeReceipt",
    "OutcomeSummary",
    "ProposalOutcome",
    "ProposalView",
    "PublishOutcome",
    "ReconcileReport",
    "Registry",
    "Resolution",
    "SearchPage",
    "SkillDetail",
    "SkillPage",
    "check_namespace",
    "install_command",
    "installable",
    "version_of",
]
