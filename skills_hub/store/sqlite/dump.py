"""index.db copied with SQLite's online backup API, and put back (`store.dumps`)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ..dumps import Dump, DumpError

FILE = "index.db"
# Rows a fresh migration writes: a catalogue holding only these holds no data.
BOOKKEEPING = frozenset({"migrations", "catalogue_epoch"})
# Beside index.db: the WAL, its index, and the generation every process maps.
COMPANIONS = ("-wal", "-shm", "-generation")


class SqliteDumps:
    """The dumps of one index.db."""

    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def dump(self, folder: Path) -> Dump:
        """One read transaction copies every page (`Connection.backup` in a single step);
        in WAL mode writers go on meanwhile. The copy is switched out of WAL mode, so it is
        one self-contained file, and read for the manifest."""
        if not self.path.is_file():
            raise DumpError(f"{self.path} does not exist: there is no catalogue to back up")
        target = folder / FILE
        source = sqlite3.connect(self.path, timeout=30)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")
            return Dump(files=[FILE], counts=_counts(copy), namespaces=_namespaces(copy),
                        versions=_versions(copy), details={"sqlite": sqlite3.sqlite_version})
        finally:
            copy.close()
            source.close()

    def holds_data(self) -> str | None:
        if not self.path.exists():
            return None
        conn = sqlite3.connect(f"{self.path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            held = {t: n for t, n in _counts(conn).items() if n and t not in BOOKKEEPING}
        except sqlite3.DatabaseError as exc:
            return f"{self.path} is not an empty catalogue ({exc})"
        finally:
            conn.close()
        if not held:
            return None
        return f"{self.path} holds " + ", ".join(f"{n} {t}" for t, n in sorted(held.items()))

    def load(self, folder: Path, files: list[str]) -> None:
        """index.db is copied beside its place, fsynced and renamed in; an empty one there
        (and its WAL) is replaced."""
        if files != [FILE]:
            raise DumpError(f"an SQLite backup holds {FILE}, not {', '.join(files)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".restoring")
        source = sqlite3.connect(f"{(folder / FILE).absolute().as_uri()}?mode=ro", uri=True)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        _fsync(partial)
        for suffix in COMPANIONS:
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        os.replace(partial, self.path)
        _fsync(self.path.parent)

    def counts(self) -> dict[str, int]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            return _counts(conn)
        finally:
            conn.close()


def _tables(conn: sqlite3.Connection) -> list[str]:
    """The ordinary tables (not FTS5's virtual tables or their shadow tables)."""
    rows = conn.execute("PRAGMA table_list").fetchall()
    return sorted(name for schema, name, kind, *_ in rows
                  if schema == "main" and kind == "table" and not name.startswith("sqlite_"))


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            for table in _tables(conn)}


def _namespaces(conn: sqlite3.Connection) -> frozenset[str]:
    rows = conn.execute("SELECT name FROM namespaces UNION "
                        "SELECT namespace FROM skills").fetchall()
    return frozenset(r[0] for r in rows)


def _versions(conn: sqlite3.Connection) -> dict[tuple[str, str, str], str]:
    rows = conn.execute("SELECT s.namespace, s.name, v.version, v.tag_sha FROM versions v "
                        "JOIN skills s ON s.id = v.skill_id").fetchall()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
