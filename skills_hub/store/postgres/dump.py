"""The PostgreSQL catalogue dumped with `pg_dump` and put back with `pg_restore`
(`store.dumps`).

The dump reads one exported snapshot: a REPEATABLE READ transaction exports it, `pg_dump
--snapshot` dumps exactly that state, and the counts, namespaces and versions the manifest
records are read in the same transaction, so they describe the dump and not a moment
later. Writers go on meanwhile (MVCC).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import IsolationLevel, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..dumps import Dump, DumpError
from .db import split_url

FILE = "catalogue.pgdump"
DEBIAN_BINS = Path("/usr/lib/postgresql")
TOOL_TIMEOUT_S = 6 * 3600
_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2
"""


class PostgresDumps:
    """The dumps of one PostgreSQL database (SKILLS_HUB_DATABASE_URL)."""

    backend = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = split_url(url)[0]

    def dump(self, folder: Path) -> Dump:
        """`pg_dump --format=custom --no-owner` of one exported snapshot into `folder`."""
        pg_dump = find_tool("pg_dump")
        tool = tool_version(pg_dump)
        with psycopg.connect(self.url) as conn:
            conn.isolation_level = IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            server = _server_version(conn)
            if tool[0] < server[0]:
                raise DumpError(
                    f"{pg_dump} is version {_dotted(tool)}, older than the server "
                    f"({_dotted(server)}): pg_dump must be at least the server's major "
                    f"version", extra={"hint": f"install postgresql-client-{server[0]} "
                                               "(its pg_dump is found in /usr/lib/postgresql)"})
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert snapshot is not None
            self._run([str(pg_dump), "--format=custom", "--no-owner",
                       f"--snapshot={snapshot[0]}", f"--file={folder / FILE}"], "pg_dump")
            dump = Dump(files=[FILE], counts=_counts(conn), namespaces=_namespaces(conn),
                        versions=_versions(conn),
                        details={"pg_dump": _dotted(tool), "server": _dotted(server)})
            conn.rollback()
        return dump

    def holds_data(self) -> str | None:
        """A restore needs a database without tables (pg_restore creates them)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            tables = [_key(schema, name) for schema, name in conn.execute(_TABLES)]
            name = conn.info.dbname
        if not tables:
            return None
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        return (f"database {name} has {len(tables)} tables ({shown}); a restore needs an "
                "empty database")

    def load(self, folder: Path, files: list[str]) -> None:
        """`pg_restore --no-owner` in one transaction: all or nothing."""
        if files != [FILE]:
            raise DumpError(f"a PostgreSQL backup holds {FILE}, not {', '.join(files)}")
        pg_restore = find_tool("pg_restore")
        self._run([str(pg_restore), "--no-owner", "--no-privileges", "--exit-on-error",
                   "--single-transaction", str(folder / FILE)], "pg_restore")

    def counts(self) -> dict[str, int]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return _counts(conn)

    def _run(self, argv: list[str], what: str) -> None:
        """A libpq tool on this database; the password goes by PGPASSWORD, not argv (which
        every user of the machine can read)."""
        params = conninfo_to_dict(self.url)
        password = params.pop("password", None)
        env = {**os.environ, "PGPASSWORD": str(password)} if password else None
        done = subprocess.run([*argv, f"--dbname={make_conninfo('', **params)}"],
                              capture_output=True, text=True, env=env, timeout=TOOL_TIMEOUT_S,
                              check=False)
        if done.returncode != 0:
            raise DumpError(f"{what} failed (exit {done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()[-2000:]}")


def find_tool(name: str) -> Path:
    """`pg_dump` or `pg_restore` of Debian's newest /usr/lib/postgresql/<major>, else on
    PATH."""
    versions = sorted(DEBIAN_BINS.glob(f"*/bin/{name}"),
                      key=lambda p: _numbers(p.parent.parent.name), reverse=True)
    if versions:
        return versions[0]
    found = shutil.which(name)
    if found is None:
        raise DumpError(f"{name} was not found (in {DEBIAN_BINS}/*/bin or on PATH)",
                        extra={"hint": "install the PostgreSQL client of the server's "
                                       "version: `apt-get install postgresql-client`"})
    return Path(found)


def tool_version(tool: Path) -> tuple[int, ...]:
    """(major, minor) of a PostgreSQL program, from `--version`."""
    done = subprocess.run([str(tool), "--version"], capture_output=True, text=True,
                          check=False, timeout=60)
    found = re.search(r"\)\s*(\d+)(?:\.(\d+))?", done.stdout)
    if done.returncode != 0 or found is None:
        raise DumpError(f"cannot tell the version of {tool}: {done.stdout or done.stderr}")
    return tuple(int(part) for part in found.groups() if part is not None)


def _server_version(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    number = int(row[0])  # 150018: major 15, minor 18 (10 and later)
    return number // 10000, number % 10000


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _numbers(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _key(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    counts = {}
    for schema, table in conn.execute(_TABLES).fetchall():
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table))).fetchone()
        assert row is not None
        counts[_key(schema, table)] = int(row[0])
    return counts


def _namespaces(conn: psycopg.Connection) -> frozenset[str]:
    rows = conn.execute("SELECT name FROM namespaces UNION SELECT namespace FROM skills")
    return frozenset(str(r[0]) for r in rows)


def _versions(conn: psycopg.Connection) -> dict[tuple[str, str, str], str]:
    rows = conn.execute("SELECT s.namespace, s.name, v.version, v.tag_sha FROM versions v "
                        "JOIN skills s ON s.id = v.skill_id")
    return {(str(r[0]), str(r[1]), str(r[2])): str(r[3]) for r in rows}
