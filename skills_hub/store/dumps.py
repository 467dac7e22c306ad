"""Consistent copies of the catalogue database, for `skills-hub backup` and `restore`.

One implementation per backend: `store.sqlite.dump` (SQLite's online backup API into a
copy of index.db) and `store.postgres.dump` (`pg_dump` of one exported snapshot). Each also
reads, from exactly the state it copied, what the backup's manifest records of it: the rows
of every table, the namespaces and the versions. The git repos are copied separately
(`GitStore.copy_to`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..config import Settings
from ..errors import HubError


class DumpError(HubError):
    """The catalogue could not be copied or put back (a tool missing or failing)."""

    status = 500
    code = "dump_failed"


@dataclass(frozen=True)
class Dump:
    """What `CatalogueDumps.dump` wrote and read from the state it copied."""

    files: list[str]  # written into the folder given, relative to it
    counts: dict[str, int]  # table -> rows
    namespaces: frozenset[str]  # with a row, or with a version
    versions: dict[tuple[str, str, str], str]  # (namespace, name, version) -> tag sha
    details: dict[str, str] = field(default_factory=dict)  # tool and server versions


class CatalogueDumps(Protocol):
    """Copies one home's catalogue out, and puts a copy back into an empty one."""

    backend: str  # "sqlite" or "postgresql", as the manifest names it

    def dump(self, folder: Path) -> Dump:
        """Copy the catalogue into `folder` as of one moment, while writers go on."""
        ...

    def holds_data(self) -> str | None:
        """None when the catalogue is empty (a restore may fill it), else what it holds."""
        ...

    def load(self, folder: Path, files: list[str]) -> None:
        """Put the copy `dump` wrote into `folder` back into this (empty) catalogue."""
        ...

    def counts(self) -> dict[str, int]:
        """Table -> rows of the catalogue as it is now (compared with a dump's)."""
        ...


def open_dumps(settings: Settings) -> CatalogueDumps:
    """The dumps of the backend the settings choose (as `store.backend.open_storage`)."""
    if settings.database_url:
        from .postgres.dump import PostgresDumps
        return PostgresDumps(settings.database_url)
    from .sqlite.dump import SqliteDumps
    return SqliteDumps(settings.index_path)
