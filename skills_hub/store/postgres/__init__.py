"""The PostgreSQL backend: SKILLS_HUB_DATABASE_URL=postgresql://... (see `db`)."""

from __future__ import annotations

from ..interfaces import Storage
from .accounts import Audit, Orgs, Releases, Sessions, Tokens, Users
from .catalogue import Catalogue, Namespaces, Reports
from .db import Database, WriteLock
from .demands import Demands
from .health import HealthChecks
from .limits import RateBuckets
from .outcomes import Outcomes, Proposals
from .search import KeywordIndex, Vectors


def open_postgres(url: str, *, pool_max: int | None = None) -> Storage:
    """The stores over the database at `url` (its schema made by `migrate`); `pool_max`
    overrides the URL's `?pool_max=`."""
    db = Database(url, pool_max=pool_max)
    catalogue = Catalogue(db)
    return Storage(
        db=db, namespaces=Namespaces(db), catalogue=catalogue, reports=Reports(db),
        health=HealthChecks(db),
        keyword=KeywordIndex(db, catalogue), vectors=Vectors(db), outcomes=Outcomes(db),
        proposals=Proposals(db), users=Users(db), orgs=Orgs(db), tokens=Tokens(db),
        sessions=Sessions(db), releases=Releases(db), audit=Audit(db),
        buckets=RateBuckets(db), demands=Demands(db), write_lock=WriteLock(db))
