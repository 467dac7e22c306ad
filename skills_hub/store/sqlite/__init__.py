"""The embedded backend: one SQLite file, `<home>/index.db` (see `db`)."""

from __future__ import annotations

from pathlib import Path

from ..interfaces import Storage
from .accounts import Audit, Orgs, Releases, Sessions, Tokens, Users
from .catalogue import Catalogue, Namespaces, Reports
from .db import Database
from .demands import Demands
from .health import HealthChecks
from .limits import RateBuckets
from .outcomes import Outcomes, Proposals
from .search import KeywordIndex, Vectors


def open_sqlite(path: Path) -> Storage:
    """The stores over the index.db at `path` (created, with its schema, by `migrate`)."""
    db = Database(path)
    catalogue = Catalogue(db)
    return Storage(
        db=db, namespaces=Namespaces(db), catalogue=catalogue, reports=Reports(db),
        health=HealthChecks(db),
        keyword=KeywordIndex(db, catalogue), vectors=Vectors(db), outcomes=Outcomes(db),
        proposals=Proposals(db), users=Users(db), orgs=Orgs(db), tokens=Tokens(db),
        sessions=Sessions(db), releases=Releases(db), audit=Audit(db),
        buckets=RateBuckets(db), demands=Demands(db))
