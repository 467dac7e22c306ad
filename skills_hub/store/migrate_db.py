"""`skills-hub migrate-db --to postgresql://...`: an embedded home's catalogue (its
`index.db`) copied into PostgreSQL, verified, so that the same home then runs with
SKILLS_HUB_DATABASE_URL set. The git repos stay where they are, or are copied into a new
repos folder (`copy_repos`, for SKILLS_HUB_REPOS_DIR: a shared volume, say).

In order:
1. Nothing else may have the home's index.db open (a server: stop it first). Found on
   Linux through /proc (the processes of users we may inspect) and, anywhere, through the
   `run/metrics-<pid>` folders a `serve --workers N` keeps; where neither tells, the
   read below is still one consistent snapshot, but writes made after it are not copied.
2. index.db is brought to the current schema (as every command does) and the target is
   migrated (`open_postgres(url).db.migrate()`).
3. Both schemas are checked against `TABLES`, the mapping of every table of either
   backend: a table or column it does not name stops the run before anything is copied.
4. One read transaction on index.db and one transaction on the target, whose catalogue
   tables are locked against writers (EXCLUSIVE; readers go on). A target that holds
   catalogue rows is compared with the source (5): the same data is "already migrated,
   nothing copied"; other data is refused. An empty one gets every table in foreign-key
   order by COPY (which writes identity columns as given, as INSERT's `OVERRIDING SYSTEM
   VALUE` does), its identity sequences moved past the largest id (and past SQLite's
   AUTOINCREMENT high-water mark), then the comparison, and commits only if it holds: a
   failure or a kill at any point leaves the target as it was.
5. The comparison: per table the row count and a sha256 over its rows in key order (each
   value tagged with its type: NULL, integer, float by its exact hex, text, bytes; the
   schemas keep booleans as 0/1 integers on both sides); per version (namespace, name,
   version) its commit, tag, tree and content sha256; per identity column that its
   sequence is past the largest id. A table whose digest differs is read again by key to
   name the rows that differ.

This module reads both schemas directly: it is a tool over the two stores' tables (the
one place above `store/` that speaks their SQL), as `store/*/dump.py` is for backups.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ..config import Settings
from ..errors import BadRequest, HubError, Problem
from .gitstore import GitStore
from .postgres import open_postgres
from .postgres.db import CHANNEL, KINDS, split_url
from .sqlite import open_sqlite

BATCH = 5_000  # rows read from SQLite (and from PostgreSQL for the digests) at a time
LOCK_TIMEOUT = "30s"  # waiting for the target's tables: a server writing to it holds them
SHOWN_DIFFERENCES = 5  # rows named per table whose digest differs
APPLICATION = "skills-hub migrate-db"  # the target's pg_stat_activity shows the run


class How(StrEnum):
    """What `migrate` does with a table."""

    COPY = "copy"  # column for column
    IDS = "copy, ids kept"  # ...with its `id` identity by value; the sequence moved past it
    ROWID = "rowid as id"  # SQLite's rowid into the `id` identity (GENERATED ALWAYS)
    TEXT = "keyword text"  # FTS5's skills_fts (rowid: the skill's id) into skill_text
    SINGLETON = "one row, set"  # the row the target's migration made takes the source's values
    SQLITE_ONLY = "not copied: SQLite's own"
    POSTGRES_ONLY = "not copied: PostgreSQL's own"


@dataclass(frozen=True)
class TableMap:
    """One table of either backend and what `migrate` does with it."""

    sqlite: str | None
    postgres: str | None
    how: How
    columns: tuple[str, ...] = ()  # the PostgreSQL columns written (generated ones are not)
    key: tuple[str, ...] = ()  # unique: the order rows are digested in
    why: str = ""
    sometimes: bool = False  # a SQLite table that exists only after something made it

    @property
    def copied(self) -> bool:
        return self.how not in (How.SQLITE_ONLY, How.POSTGRES_ONLY)

    @property
    def label(self) -> str:
        if self.sqlite == self.postgres or self.postgres is None:
            return str(self.sqlite)
        return f"{self.postgres}" if self.sqlite is None else f"{self.sqlite} -> {self.postgres}"

    def source_column(self, column: str) -> str:
        """The SQLite column (or rowid) a PostgreSQL column is read from."""
        if (self.how is How.ROWID and column == "id") or \
                (self.how is How.TEXT and column == "skill_id"):
            return "rowid"
        return column


def _table(name: str, how: How, columns: str, key: str = "id") -> TableMap:
    return TableMap(name, name, how, tuple(columns.split()), tuple(key.split()))


_VERSION_KEY = "namespace name version"

# Every table of both schemas, the copied ones in foreign-key order (a table after those it
# references). `tests/test_migrate_db.py` fails when either schema has a table or column
# this does not name.
TABLES: tuple[TableMap, ...] = (
    _table("users", How.IDS, "id username display_name email kind org password_hash "
           "is_operator oidc_issuer oidc_subject created_at disabled_at"),
    _table("orgs", How.COPY, "name display_name created_at", "name"),
    _table("org_members", How.COPY, "org user_id role added_at", "org user_id"),
    _table("namespaces", How.COPY, "name visibility created_at review_policy owner_user "
           "owner_org release_policy two_person", "name"),
    _table("skills", How.IDS, "id namespace name latest_version description tags created_at "
           "updated_at downloads embed_sha256 trust"),
    TableMap("skills_fts", "skill_text", How.TEXT,
             ("skill_id", "name", "description", "tags", "body"), ("skill_id",),
             why="the keyword text of each skill's latest version; PostgreSQL computes its "
                 "`document` tsvector (a generated column) from it"),
    _table("versions", How.IDS, "id skill_id version commit_sha tag_sha tree_sha "
           "content_sha256 description frontmatter_json files_json published_at"),
    _table("reports", How.COPY, "namespace name version content_sha256 verdict report_json "
           "pipeline checked_at", _VERSION_KEY),
    _table("report_history", How.IDS, "id namespace name version old_verdict new_verdict "
           "pipeline reason changed_at"),
    _table("rule_exceptions", How.COPY, "namespace name rule reason created_at",
           "namespace name rule"),
    TableMap("embeddings", "embeddings", How.ROWID,
             ("id", "text_sha256", "model", "vector", "created_at"), ("id",),
             why="the order vectors were stored in (SQLite's rowid) is PostgreSQL's `id`"),
    _table("catalogue_epoch", How.SINGLETON, "id epoch"),
    _table("outcome_totals", How.COPY, "namespace name version successes failures as_of",
           _VERSION_KEY),
    _table("outcome_reports", How.COPY, "reporter report_id namespace name version outcome "
           "failure_kind score signals_json agent model client at received_at task_key "
           "discount", "reporter report_id"),
    _table("version_stats", How.COPY, "namespace name version successes failures "
           "infra_errors score_sum scored ema last_at discounted", _VERSION_KEY),
    _table("version_clients", How.COPY, "namespace name version client counted",
           "namespace name version client"),
    _table("version_authors", How.COPY, "namespace name version author",
           "namespace name version author"),
    _table("skill_clients", How.COPY, "namespace name client successes failures",
           "namespace name client"),
    _table("skill_client_counts", How.COPY, "namespace name clients", "namespace name"),
    _table("outcome_days", How.COPY, "namespace name day version successes failures",
           "namespace name day version"),
    _table("skill_trust", How.COPY, "namespace name trust", "namespace name"),
    _table("trust_events", How.IDS, "id namespace name old new reason actor at"),
    _table("proposals", How.COPY, "id namespace name base_version applies_to status proposer "
           "proposer_namespace edits_json evidence_json reasoning content_sha256 commit_sha "
           "tree_sha verdict report_json support created_at decided_at decided_by comment "
           "version"),
    _table("proposal_support", How.COPY, "proposal_id proposer evidence_json at",
           "proposal_id proposer"),
    _table("canaries", How.COPY, "namespace name version stable_version share state "
           "started_at decided_at decision_json", _VERSION_KEY),
    _table("version_health", How.COPY, "namespace name version status reason at",
           _VERSION_KEY),
    _table("tokens", How.IDS, "id user_id token_sha256 prefix label scopes namespaces_json "
           "created_at expires_at last_used_at revoked_at"),
    _table("sessions", How.COPY, "id_sha256 user_id csrf created_at expires_at address "
           "user_agent", "id_sha256"),
    _table("invitations", How.COPY, "id_sha256 org role email created_by created_at "
           "expires_at accepted_at accepted_by", "id_sha256"),
    _table("auth_flows", How.COPY, "state kind data_json created_at expires_at", "state"),
    _table("audit_log", How.IDS, "id at actor actor_id action target org namespace address "
           "user_agent request_id detail_json"),
    _table("releases", How.COPY, "id namespace name version state author_id author "
           "commit_sha tree_sha content_sha256 verdict report_json created_at decided_at "
           "decided_by comment"),
    _table("rate_buckets", How.COPY, "key level since", "key"),
    _table("health_lease", How.COPY, "name holder expires_at taken_at", "name"),
    _table("health_state", How.COPY, "namespace name version fingerprint checked_at downloads "
           "ema claimed_by claimed_until", _VERSION_KEY),
    _table("health_checks", How.IDS, "id namespace name version at kind holder fingerprint "
           "priority reasons old_verdict new_verdict health note ms downloads ema"),
    _table("demands", How.IDS, "id scope status representative model centroid asks askers "
           "first_asked last_asked closed_at answer_namespace answer_name answer_version "
           "answer_similarity"),
    _table("demand_asks", How.IDS, "id demand_id query vector model asker scope asked_at"),
    _table("task_vectors", How.COPY, "task_key model vector label created_at", "task_key model"),
    TableMap("migrations", None, How.SQLITE_ONLY,
             why="SQLite's applied migrations; the target's own are in schema_migrations"),
    TableMap("sqlite_sequence", None, How.SQLITE_ONLY,
             why="AUTOINCREMENT's high-water marks (audit_log): read, and the table's "
                 "identity sequence moved past it, so no id is ever reused"),
    *(TableMap(f"skills_fts_{part}", None, How.SQLITE_ONLY,
               why="FTS5's index of skills_fts; PostgreSQL's is skill_text.document")
      for part in ("data", "idx", "content", "docsize", "config")),
    TableMap("skills_fts_terms", None, How.SQLITE_ONLY, sometimes=True,
             why="the fts5vocab view of skills_fts, made in each connection's temp schema "
                 "(never in index.db); PostgreSQL reads ts_stat instead"),
    *(TableMap(f"sqlite_stat{n}", None, How.SQLITE_ONLY, sometimes=True,
               why="ANALYZE's statistics, if it ever ran") for n in (1, 4)),
    TableMap(None, "schema_migrations", How.POSTGRES_ONLY,
             why="the target's applied migrations, written by its migrate()"),
    TableMap(None, "generation", How.POSTGRES_ONLY,
             why="the nodes' cache counter: moved on at the commit, with a notification, so "
                 "a node already running drops what it cached"),
)

COPIED = tuple(m for m in TABLES if m.copied)
_IDENTITY = (How.IDS, How.ROWID)
_TEXT_TYPES = ("text", "character varying", "character")
_VERSIONS = ("SELECT s.namespace, s.name, v.version, v.commit_sha, v.tag_sha, v.tree_sha, "
             "v.content_sha256 FROM versions v JOIN skills s ON s.id = v.skill_id")


class MigrateRefused(HubError):
    """`migrate` would overwrite or lose something (the target holds other data, the home
    is in use, the repos folder is not empty): nothing was changed."""

    status = 409
    code = "migrate_refused"


class MigrateFailed(HubError):
    """The copy failed or did not verify: rolled back, the target is as it was."""

    status = 500
    code = "migrate_failed"


@dataclass(frozen=True)
class TableCheck:
    """What the comparison found for one copied table."""

    table: TableMap
    source_rows: int
    target_rows: int
    source_sha256: str
    target_sha256: str
    differences: tuple[str, ...] = ()  # rows by key, when the digests differ

    @property
    def equal(self) -> bool:
        return (self.source_rows, self.source_sha256) == (self.target_rows, self.target_sha256)


@dataclass(frozen=True)
class Verification:
    tables: list[TableCheck]
    versions: int  # versions compared (those of the source)
    sequences: dict[str, int]  # table -> the next id its identity gives
    problems: list[str]

    @property
    def equal(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ReposCopy:
    folder: Path
    copied: list[str]  # namespaces copied by this run
    present: list[str]  # already there, with the same main and tags
    versions: int  # catalogue versions whose tag, commit and tree the copies hold


@dataclass
class MigrateResult:
    copied: bool  # False: the target already held exactly this data
    rows: int  # copied by this run
    verification: Verification
    repos: ReposCopy | None = None
    notes: list[str] = field(default_factory=list)
    source: Path = Path()
    target: str = ""  # the URL without its password
    seconds: float = 0.0
    # The tables of one backend only that the source and target hold (FTS5's shadow
    # tables, bookkeeping): what was deliberately left alone.
    not_copied: list[TableMap] = field(default_factory=list)


# -- the run -------------------------------------------------------------------------------


def migrate(settings: Settings, url: str, *, copy_repos: Path | None = None) -> MigrateResult:
    """Copy the catalogue of the home of `settings` (its index.db) into the PostgreSQL
    database at `url`, and verify it; see the module's docstring."""
    started = time.perf_counter()
    if not url.startswith(("postgresql://", "postgres://")):
        raise BadRequest(f"--to must be a postgresql:// URL, not {redact(url)!r}")
    path = settings.index_path
    if not path.is_file():
        raise MigrateRefused(f"{path} does not exist: the home {settings.home} has no "
                             "embedded catalogue to migrate",
                             extra={"hint": "name the home with --home or SKILLS_HUB_HOME"})
    _refuse_if_open(settings.home, path)
    with _connect(url) as target, closing(_read_only(path)) as source:
        _migrate_schemas(path, url)
        lite, pg = sqlite_schema(source), postgres_schema(target)
        problems = schema_problems(lite, pg)
        if problems:
            raise MigrateFailed("the schemas and migrate_db.TABLES disagree: nothing copied",
                                problems=[Problem("schema", p) for p in problems],
                                extra={"hint": "a migration added a table or column that "
                                               "migrate_db.TABLES does not map yet"})
        run = _Run(source, target, settings, copy_repos)
        source.execute("BEGIN")  # one snapshot for every read, in WAL mode
        try:
            result = run.go()
        finally:
            source.execute("ROLLBACK")
        if result.copied:
            # The planner's statistics for the copied tables (autovacuum would gather them
            # later): without them keyword search plans about twice as slowly at first.
            target.execute("ANALYZE")
    result.source, result.target = path, redact(url)
    result.not_copied = [m for m in TABLES if not m.copied
                         and (m.sqlite in lite or m.postgres in pg)]
    result.seconds = time.perf_counter() - started
    return result


class _Run:
    """One migration: the source's read transaction and the target's transaction open."""

    def __init__(self, source: sqlite3.Connection, target: psycopg.Connection[Any],
                 settings: Settings, copy_repos: Path | None) -> None:
        self.source = source
        self.target = target
        self.settings = settings
        self.copy_repos = copy_repos
        self.made: list[Path] = []  # repo copies made by this run, removed if it fails
        self.doing = "reading the target"  # for the message of a failure

    def go(self) -> MigrateResult:
        try:
            with self.target.transaction():
                self._lock()
                held = [m.postgres for m in COPIED if m.how is not How.SINGLETON
                        and _has_rows(self.target, m)]
                result = self._compare(held) if held else self._copy()
                if not result.copied:
                    raise psycopg.Rollback()  # the result is kept; nothing was written
        except (psycopg.Error, sqlite3.Error) as exc:
            remove_copies(self.made)
            raise MigrateFailed(f"{self.doing} failed: {exc}; rolled back, the target is "
                                "as it was") from exc
        except BaseException:
            remove_copies(self.made)
            raise
        return result

    def _lock(self) -> None:
        """Writers to the target's catalogue wait until the commit; readers do not."""
        tables = sql.SQL(", ").join(sql.Identifier(str(m.postgres)) for m in COPIED)
        self.target.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
            sql.Literal(LOCK_TIMEOUT)))
        try:
            self.target.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(tables))
        except psycopg.errors.LockNotAvailable as exc:
            raise MigrateRefused(
                f"the target's tables stayed locked for {LOCK_TIMEOUT}: something is "
                "writing to that database", extra={"hint": "stop the servers using it"}) from exc
        self.target.execute("SET LOCAL lock_timeout = 0")

    def _compare(self, held: list[str | None]) -> MigrateResult:
        """A target that holds catalogue rows: the same data is already migrated, other
        data is refused."""
        sources = {m: _source_digest(self.source, m) for m in COPIED}
        checked = verify(self.source, self.target, sources)
        if not checked.equal:
            raise MigrateRefused(
                f"the target already holds data ({len(held)} tables have rows) that differs "
                "from this home's catalogue: nothing copied", problems=_problems(checked),
                extra={"hint": "migrate into a new, empty database"})
        repos = self._repos() if self.copy_repos else None
        return MigrateResult(False, 0, checked, repos, ["already migrated, nothing copied"])

    def _copy(self) -> MigrateResult:
        repos = self._repos() if self.copy_repos else None
        sources: dict[TableMap, Digest] = {}
        rows = 0
        for table in COPIED:
            self.doing = f"copying {table.label}"
            sources[table] = self._copy_table(table)
            rows += sources[table].rows
        self.doing = "verifying the copy"
        high = _high_water(self.source)
        for table in COPIED:
            if table.how in _IDENTITY:
                _advance(self.target, table, high.get(str(table.sqlite), 0))
        checked = verify(self.source, self.target, sources)
        if not checked.equal:
            raise MigrateFailed("the copy does not verify: rolled back, nothing changed",
                                problems=_problems(checked))
        # Any node already running on the target drops its caches and re-reads.
        self.target.execute("UPDATE generation SET value = value + 1")
        self.target.execute("SELECT pg_notify(%s, kind) FROM unnest(%s::text[]) AS kind",
                            (CHANNEL, list(KINDS)))
        notes = []
        orphans = _orphan_text(self.source)
        if orphans:
            notes.append(f"{orphans} rows of skills_fts belong to no skill (left by an old "
                         "delete): not copied")
        return MigrateResult(True, rows, checked, repos, notes)

    def _copy_table(self, table: TableMap) -> Digest:
        """The table's rows from SQLite into PostgreSQL by COPY; their digest, as read."""
        digest = Digest()
        if table.how is How.SINGLETON:
            for row in self.source.execute(_source_select(table)):
                digest.add(row)
                _upsert(self.target, table, row)
            return digest
        copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(str(table.postgres)),
            sql.SQL(", ").join(map(sql.Identifier, table.columns)))
        reader = self.source.execute(_source_select(table))
        with self.target.cursor() as cur, cur.copy(copy_sql) as copy:
            while batch := reader.fetchmany(BATCH):
                for row in batch:
                    digest.add(row)
                    copy.write_row(row)
        return digest

    def _repos(self) -> ReposCopy:
        assert self.copy_repos is not None
        versions = _versions(self.source)
        return copy_repos(self.settings, self.copy_repos, versions, self.made)


def redact(url: str) -> str:
    """`url` without its password (printed and kept in results)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


# -- the source and the target -----------------------------------------------------------


def _refuse_if_open(home: Path, path: Path) -> None:
    """Refuse while another process has the home's index.db open (a server)."""
    users = sorted(set(_openers(path)) | set(_metrics_servers(home)))
    if users:
        raise MigrateRefused(
            f"{path} is in use by {', '.join(users)}: a server running on the home would "
            "go on writing to it after the copy",
            extra={"hint": "stop the server (every worker) first, then run migrate-db again"})


def _openers(path: Path) -> Iterator[str]:
    """Other processes with `path` open, as "pid N (command)": Linux's /proc, only the
    processes we may inspect; nothing where there is no /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return
    wanted = str(path.resolve())
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:  # gone, or another user's
            continue
        if wanted in links:
            yield f"pid {entry.name} ({_command(entry)})"


def _command(entry: Path) -> str:
    try:
        words = (entry / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return " ".join(w.decode(errors="replace") for w in words if w)[:120] or "?"


def _metrics_servers(home: Path) -> Iterator[str]:
    """Servers run with --workers N that are still alive: each keeps `run/metrics-<pid>`."""
    for folder in (home / "run").glob("metrics-*"):
        pid = folder.name.removeprefix("metrics-")
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            yield f"pid {pid} (skills-hub serve --workers)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _migrate_schemas(path: Path, url: str) -> None:
    source = open_sqlite(path)
    try:
        source.db.migrate()
    finally:
        source.close()
    target = open_postgres(url)
    try:
        target.db.migrate()
    finally:
        target.close()


def _read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA query_only = ON")
    return conn


@contextmanager
def _connect(url: str) -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = psycopg.connect(split_url(url)[0], autocommit=True, connect_timeout=10,
                               application_name=APPLICATION)
    except psycopg.Error as exc:
        raise MigrateFailed(f"cannot reach the target {redact(url)}: {exc}",
                            extra={"hint": "the database must exist (createdb NAME) and the "
                                           "role may create tables in it"}) from exc
    with conn:
        yield conn


def _has_rows(conn: psycopg.Connection[Any], table: TableMap) -> bool:
    row = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
        sql.Identifier(str(table.postgres)))).fetchone()
    return bool(row and row[0])


def _source_select(table: TableMap) -> str:
    # Text compares as bytes here (BINARY: no column declares another collation) and in
    # PostgreSQL ("C", which `schema_problems` checks of every key): one order for both.
    columns = ", ".join(table.source_column(c) for c in table.columns)
    order = ", ".join(table.source_column(c) for c in table.key)
    where = " WHERE rowid IN (SELECT id FROM skills)" if table.how is How.TEXT else ""
    return f"SELECT {columns} FROM {table.sqlite}{where} ORDER BY {order}"


def _target_select(table: TableMap) -> sql.Composed:
    return sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(map(sql.Identifier, table.columns)),
        sql.Identifier(str(table.postgres)), sql.SQL(", ").join(map(sql.Identifier, table.key)))


def _upsert(conn: psycopg.Connection[Any], table: TableMap, row: Sequence[Any]) -> None:
    rest = [c for c in table.columns if c not in table.key]
    conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}")
                 .format(sql.Identifier(str(table.postgres)),
                         sql.SQL(", ").join(map(sql.Identifier, table.columns)),
                         sql.SQL(", ").join(sql.Placeholder() * len(table.columns)),
                         sql.SQL(", ").join(map(sql.Identifier, table.key)),
                         sql.SQL(", ").join(sql.SQL("{0} = excluded.{0}").format(
                             sql.Identifier(c)) for c in rest)), tuple(row))


def _high_water(source: sqlite3.Connection) -> dict[str, int]:
    """AUTOINCREMENT's largest id ever given, per table (`sqlite_sequence`)."""
    try:
        return {str(name): int(seq) for name, seq in
                source.execute("SELECT name, seq FROM sqlite_sequence")}
    except sqlite3.OperationalError:  # no AUTOINCREMENT table was ever made
        return {}


def _advance(conn: psycopg.Connection[Any], table: TableMap, floor: int) -> None:
    """Move the table's identity sequence past its largest id (and `floor`)."""
    name = str(table.postgres)
    row = conn.execute(sql.SQL("SELECT max(id) FROM {}").format(sql.Identifier(name))).fetchone()
    top = max(int(row[0]) if row and row[0] is not None else 0, floor)
    if top:
        conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (name, top))


def _orphan_text(source: sqlite3.Connection) -> int:
    row = source.execute("SELECT count(*) FROM skills_fts "
                         "WHERE rowid NOT IN (SELECT id FROM skills)").fetchone()
    return int(row[0])


# -- the schemas ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    identity: bool = False
    generated: bool = False
    bytewise: bool = True  # compares as bytes (not text, or text in the "C" collation)


def sqlite_schema(conn: sqlite3.Connection) -> dict[str, list[Column]]:
    """Table -> columns of an index.db (virtual and shadow tables included)."""
    names = [str(r[0]) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {name: [Column(str(r[1])) for r in conn.execute(f'PRAGMA table_info("{name}")')]
            for name in names}


def postgres_schema(conn: psycopg.Connection[Any]) -> dict[str, list[Column]]:
    """Table -> columns of the target's schema."""
    tables: dict[str, list[Column]] = {}
    for table, column, identity, generated, kind, collation in conn.execute(
            "SELECT c.table_name, c.column_name, c.is_identity, c.is_generated, "
            "c.data_type, c.collation_name "
            "FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
            "ORDER BY c.table_name, c.ordinal_position"):
        tables.setdefault(str(table), []).append(
            Column(str(column), identity == "YES", generated == "ALWAYS",
                   kind not in _TEXT_TYPES or collation in ("C", "POSIX")))
    return tables


def schema_problems(sqlite_tables: dict[str, list[Column]],
                    postgres_tables: dict[str, list[Column]]) -> list[str]:
    """Where the two schemas and `TABLES` disagree: a table or column of either that the
    mapping does not name, or one it names that is not there."""
    problems = []
    for backend, tables, attr in (("SQLite", sqlite_tables, "sqlite"),
                                  ("PostgreSQL", postgres_tables, "postgres")):
        mapped = {getattr(m, attr): m for m in TABLES if getattr(m, attr)}
        problems += [f"{backend} table {name} is not in migrate_db.TABLES"
                     for name in sorted(set(tables) - set(mapped))]
        problems += [f"{backend} has no table {name}, which migrate_db.TABLES maps"
                     for name, m in mapped.items() if name not in tables and not m.sometimes]
    for m in COPIED:
        if m.sqlite not in sqlite_tables or m.postgres not in postgres_tables:
            continue
        problems += _column_problems("SQLite", str(m.sqlite),
                                     {c.name for c in sqlite_tables[m.sqlite]},
                                     {m.source_column(c) for c in m.columns} - {"rowid"})
        target = postgres_tables[m.postgres]
        problems += _column_problems("PostgreSQL", str(m.postgres),
                                     {c.name for c in target if not c.generated}, set(m.columns))
        problems += [f"PostgreSQL column {m.postgres}.{c.name}, a key, does not compare as "
                     "bytes (collation C), as SQLite does" for c in target
                     if c.name in m.key and not c.bytewise]
        identity = {c.name for c in target if c.identity}
        if identity != ({"id"} if m.how in _IDENTITY else set()):
            problems.append(f"PostgreSQL table {m.postgres} has identity columns "
                            f"{sorted(identity) or 'none'}; migrate_db.TABLES copies it as "
                            f"{m.how.value!r}")
    return problems


def _column_problems(backend: str, table: str, have: set[str], mapped: set[str]) -> list[str]:
    return ([f"{backend} column {table}.{c} is not in migrate_db.TABLES" for c in
             sorted(have - mapped)]
            + [f"{backend} table {table} has no column {c}, which migrate_db.TABLES maps"
               for c in sorted(mapped - have)])


# -- the comparison ------------------------------------------------------------------------


class Digest:
    """A sha256 over rows, each value tagged with its type and length (None, 1, 1.0, "1"
    and b"1" all differ; floats by their exact hex form)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.rows = 0

    def add(self, row: Iterable[Any]) -> None:
        self._sha.update(encode_row(row))
        self.rows += 1

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def encode_row(row: Iterable[Any]) -> bytes:
    parts = []
    for value in row:
        data = _encode(value)
        parts.append(len(data).to_bytes(8, "big") + data)
    return b"".join(parts) + b"\n"


def _encode(value: Any) -> bytes:
    if value is None:
        return b"N"
    if isinstance(value, bool):  # never from these schemas (0/1 integers); the same if so
        value = int(value)
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if isinstance(value, float):
        return b"f" + value.hex().encode()
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"b" + bytes(value)
    raise TypeError(f"no canonical form for a {type(value).__name__} value")


def _source_digest(source: sqlite3.Connection, table: TableMap) -> Digest:
    digest = Digest()
    reader = source.execute(_source_select(table))
    while batch := reader.fetchmany(BATCH):
        for row in batch:
            digest.add(row)
    return digest


def _target_rows(conn: psycopg.Connection[Any], table: TableMap) -> Iterator[tuple[Any, ...]]:
    """The table's rows in key order, through a server-side cursor (in the transaction)."""
    with conn.cursor(name=f"migrate_db_{table.postgres}") as cur:
        cur.itersize = BATCH
        cur.execute(_target_select(table))
        yield from cur


def verify(source: sqlite3.Connection, target: psycopg.Connection[Any],
           sources: dict[TableMap, Digest]) -> Verification:
    """Compare every copied table, every version and every identity sequence (`sources`:
    each table's digest as read from the source in this transaction)."""
    tables = []
    for table in COPIED:
        mine = Digest()
        for row in _target_rows(target, table):
            mine.add(row)
        check = TableCheck(table, sources[table].rows, mine.rows,
                           sources[table].hexdigest(), mine.hexdigest())
        if not check.equal:
            check = TableCheck(check.table, check.source_rows, check.target_rows,
                               check.source_sha256, check.target_sha256,
                               tuple(_row_differences(source, target, table)))
        tables.append(check)
    problems = [f"{c.table.label}: {c.source_rows} rows in SQLite, {c.target_rows} in "
                f"PostgreSQL; sha256 {c.source_sha256[:12]} against {c.target_sha256[:12]}"
                + "".join(f"\n      {d}" for d in c.differences)
                for c in tables if not c.equal]
    versions = _versions(source)
    problems += _version_problems(versions, _versions(target))
    sequences, behind = _sequences(target, _high_water(source))
    problems += behind
    return Verification(tables, len(versions), sequences, problems)


def _row_differences(source: sqlite3.Connection, target: psycopg.Connection[Any],
                     table: TableMap) -> Iterator[str]:
    """The first rows only in one side or different, walking both sides in key order
    (the same order on both: see `_source_select`)."""
    where = [table.columns.index(c) for c in table.key]
    mine = iter(source.execute(_source_select(table)))
    theirs = _target_rows(target, table)
    a, b = next(mine, None), next(theirs, None)
    shown = 0
    while (a is not None or b is not None) and shown < SHOWN_DIFFERENCES:
        ka = None if a is None else _sort_key(tuple(a[i] for i in where))
        kb = None if b is None else _sort_key(tuple(b[i] for i in where))
        if kb is None or (ka is not None and ka < kb):
            assert a is not None
            yield f"{table.postgres} row {_named(table, a, where)}: only in SQLite"
            a = next(mine, None)
        elif ka is None or kb < ka:
            assert b is not None
            yield f"{table.postgres} row {_named(table, b, where)}: only in PostgreSQL"
            b = next(theirs, None)
        else:
            assert a is not None and b is not None
            changed = [c for c, x, y in zip(table.columns, a, b, strict=True)
                       if _encode(x) != _encode(y)]
            if changed:
                yield (f"{table.postgres} row {_named(table, a, where)}: "
                       f"{', '.join(changed)} differ{'s' if len(changed) == 1 else ''}")
            else:
                shown -= 1
            a, b = next(mine, None), next(theirs, None)
        shown += 1


def _named(table: TableMap, row: Sequence[Any], where: list[int]) -> str:
    return ", ".join(f"{table.columns[i]}={row[i]!r}" for i in where)


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]:
    """A key as SQLite orders values of mixed types: numbers, then text, then bytes."""
    return tuple((0, v) if isinstance(v, (int, float)) else (1, v) if isinstance(v, str)
                 else (2, bytes(v)) for v in key)


Versions = dict[tuple[str, str, str], tuple[str, str, str, str]]


def _versions(conn: sqlite3.Connection | psycopg.Connection[Any]) -> Versions:
    """(namespace, name, version) -> (commit, tag, tree, content sha256)."""
    return {(str(r[0]), str(r[1]), str(r[2])): (str(r[3]), str(r[4]), str(r[5]), str(r[6]))
            for r in conn.execute(_VERSIONS).fetchall()}


def _version_problems(mine: Versions, theirs: Versions) -> list[str]:
    problems = []
    for key in sorted(mine.keys() | theirs.keys()):
        ref = f"version {key[0]}/{key[1]}@{key[2]}"
        if key not in theirs or key not in mine:
            problems.append(f"{ref}: only in {'SQLite' if key in mine else 'PostgreSQL'}")
            continue
        for what, a, b in zip(("commit", "tag", "tree", "content sha256"), mine[key],
                              theirs[key], strict=True):
            if a != b:
                problems.append(f"{ref}: {what} {a[:12]} in SQLite, {b[:12]} in PostgreSQL")
    return problems


def _sequences(conn: psycopg.Connection[Any], high: dict[str, int]
               ) -> tuple[dict[str, int], list[str]]:
    """Per identity table, the next id its sequence gives, and a problem where that is not
    past the largest id (or SQLite's high-water mark)."""
    nexts, problems = {}, []
    for table in COPIED:
        if table.how not in _IDENTITY:
            continue
        name = str(table.postgres)
        row = conn.execute(sql.SQL(
            "SELECT (SELECT max(id) FROM {}), s.last_value, s.start_value, s.increment_by "
            "FROM pg_sequences s WHERE format('%%I.%%I', s.schemaname, s.sequencename) = "
            "pg_get_serial_sequence(%s, 'id')").format(sql.Identifier(name)),
            (name,)).fetchone()
        assert row is not None, f"{name}.id has no sequence"
        top, last, start, step = row
        following = start if last is None else last + step
        nexts[name] = int(following)
        floor = max(int(top or 0), high.get(str(table.sqlite), 0))
        if following <= floor:
            problems.append(f"{name}: its id sequence gives {following} next, but ids up "
                            f"to {floor} are taken")
    return nexts, problems


def _problems(checked: Verification) -> list[Problem]:
    return [Problem("verification", p) for p in checked.problems]


# -- the repos -----------------------------------------------------------------------------


def copy_repos(settings: Settings, folder: Path, versions: Versions,
               made: list[Path]) -> ReposCopy:
    """Copy every namespace's repo into `folder` (new or empty, or holding copies this
    command made before) under its write lock, and check that the copies hold every
    catalogued version's tag, commit and tree. Each copy made is appended to `made`."""
    source = GitStore(settings.repos_dir)
    copies = GitStore(folder)
    namespaces = source.namespaces()
    if folder.exists() and not folder.is_dir():
        raise MigrateRefused(f"--copy-repos {folder} is a file, not a folder")
    if folder.exists() and folder.resolve() == settings.repos_dir.resolve():
        raise MigrateRefused(f"--copy-repos {folder} is the home's repos folder itself")
    present = _present_copies(source, copies, folder, namespaces)
    for namespace in namespaces:
        if namespace not in present:
            # Copied beside its place and renamed into it: a run killed half-way leaves a
            # dot-folder (replaced by the next run), never a partial `<ns>.git`.
            partial = folder / f".{namespace}.git.copying"
            shutil.rmtree(partial, ignore_errors=True)
            made.append(partial)
            source.copy_to(namespace, partial)
            made.append(copies.path(namespace))
            os.rename(partial, copies.path(namespace))
    problems = []
    tags = {ns: {(t.name, t.version): (t.commit_sha, t.tag_sha, t.tree_sha)
                 for t in copies.tags(ns)} for ns in namespaces}
    for (namespace, name, version), (commit, tag, tree, _) in sorted(versions.items()):
        found = tags.get(namespace, {}).get((name, version))
        if found != (commit, tag, tree):
            problems.append(f"{namespace}/{name}@{version}: "
                            + ("no tag" if found is None else "another tag or commit")
                            + f" in the copy {copies.path(namespace)}")
    if problems:
        raise MigrateFailed("the copied repos do not hold the catalogue's versions",
                            problems=[Problem("repos", p) for p in problems[:50]],
                            extra={"hint": "run `skills-hub fsck` on the home"})
    return ReposCopy(folder, [ns for ns in namespaces if ns not in present], sorted(present),
                     len(versions))


def _present_copies(source: GitStore, copies: GitStore, folder: Path,
                    namespaces: list[str]) -> set[str]:
    """The namespaces `folder` holds a copy of already (the same main and tags); refuses
    anything else in it (dot-files, the lock files and staged uploads, are let be)."""
    if not folder.exists():
        return set()
    wanted = {f"{ns}.git": ns for ns in namespaces}
    strangers = sorted(p.name for p in folder.iterdir()
                       if not p.name.startswith(".") and p.name not in wanted)
    if strangers:
        raise MigrateRefused(f"--copy-repos {folder} is not empty ({', '.join(strangers[:5])}"
                             f"{', ...' if len(strangers) > 5 else ''}): nothing copied",
                             extra={"hint": "name a new or empty folder"})
    present = set()
    for namespace in (wanted[p.name] for p in folder.iterdir() if p.name in wanted):
        same = (copies.exists(namespace) and copies.head(namespace) == source.head(namespace)
                and _tag_set(copies, namespace) == _tag_set(source, namespace))
        if not same:
            raise MigrateRefused(f"--copy-repos {folder} holds another {namespace}.git (its "
                                 "main or tags differ): nothing copied",
                                 extra={"hint": "name a new or empty folder"})
        present.add(namespace)
    return present


def _tag_set(git: GitStore, namespace: str) -> set[tuple[str, str, str]]:
    return {(t.name, t.version, t.tag_sha) for t in git.tags(namespace)}


def remove_copies(made: Iterable[Path]) -> None:
    """Remove repo copies (a failed run's)."""
    for path in made:
        with suppress(FileNotFoundError):
            shutil.rmtree(path)
