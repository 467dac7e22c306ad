"""A throwaway PostgreSQL server for a test session, and a fresh database per test.

`Cluster.start()` runs Debian's `initdb` into a temporary folder and starts the server on a
free loopback port, tuned for speed rather than durability (fsync off; `durable=True`, for
benchmarks, keeps PostgreSQL's durable defaults): nothing in it outlives the session. As
root, initdb refuses to run, so the cluster belongs to the `postgres` system user (created
by Debian's `postgresql` package) and its commands run through `runuser`; as anyone else
they run directly. A watchdog process stops the server and deletes the folder when the
test process ends, however it ends (even `kill -9`).

`Databases` makes one template database, migrated once, and gives each test a copy of it
(`CREATE DATABASE ... TEMPLATE`), dropped after the test; a worker thread makes the copies
ahead and drops them behind, off the tests' path.

Developers with a PostgreSQL of their own set SKILLS_HUB_TEST_DATABASE_URL to a URL of a role
that may create databases; no cluster is started then.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

SERVER_USER = "postgres"
# Tuned for a test run: nothing needs to survive a crash, and the suite opens many pools.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
    "timezone": "'UTC'",
}
START_TIMEOUT = 60.0
# `Cluster(durable=True)` (benchmarks): PostgreSQL's own defaults for these instead, so a
# commit waits for its WAL flush as in production (fsync, synchronous_commit and
# full_page_writes on, wal_level replica).
FAST_ONLY = ("fsync", "synchronous_commit", "full_page_writes", "wal_level", "max_wal_senders")


class ClusterError(RuntimeError):
    """The test cluster could not be set up (the message says why and what to do)."""


def find_bin(name: str) -> Path:
    """A PostgreSQL program: under $PG_BIN, else Debian's newest /usr/lib/postgresql/*/bin,
    else on PATH."""
    places: list[Path] = []
    if os.environ.get("PG_BIN"):
        places.append(Path(os.environ["PG_BIN"]))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: _version_key(p.parent.name), reverse=True)
    places.extend(versions)
    for place in places:
        if (place / name).is_file():
            return place / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ClusterError(f"PostgreSQL's {name} was not found (looked in $PG_BIN, "
                       "/usr/lib/postgresql/*/bin and PATH): run `make system-deps` or "
                       "`sudo apt-get install postgresql`, set SKILLS_HUB_TEST_DATABASE_URL "
                       "to a server of your own, or leave PostgreSQL out with "
                       "SKILLS_HUB_TEST_BACKENDS=sqlite")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """One PostgreSQL server in a temporary folder, for one test session."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.folder: Path | None = None
        self.port = 0
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0

    @property
    def data(self) -> Path:
        assert self.folder is not None
        return self.folder / "data"

    @property
    def log(self) -> Path:
        assert self.folder is not None
        return self.folder / "server.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        """initdb, start the server, wait until it answers; returns the admin URL."""
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        self.folder = Path(tempfile.mkdtemp(prefix="skills-hub-pg-"))
        if self._as_root:
            self._hand_to_server_user(self.folder)
        self._watch(pg_ctl)
        self._run([str(initdb), "-D", str(self.data), "-U", SERVER_USER, "--auth=trust",
                   "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"], "initdb")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"unix_socket_directories = '{self.folder}'\n")
            conf.writelines(f"{key} = {value}\n" for key, value in SERVER_SETTINGS.items()
                            if not (self.durable and key in FAST_ONLY))
        for attempt in range(3):  # a free port can be taken before the server binds it
            self.port = free_port()
            try:
                self._run([str(pg_ctl), "-D", str(self.data), "-l", str(self.log), "-w",
                           "-t", str(int(START_TIMEOUT)), "-o", f"-p {self.port}", "start"],
                          "pg_ctl start")
                break
            except ClusterError:
                if attempt == 2 or "already in use" not in self.log_tail():
                    raise
        wait_until_ready(self.admin_url, START_TIMEOUT, self.log_tail)
        return self.admin_url

    def stop(self) -> None:
        """Stop the server at once and delete its folder (the watchdog's job, done now)."""
        if self._watchdog is not None and self._watchdog.stdin is not None:
            self._watchdog.stdin.close()  # EOF: the watchdog stops the server, deletes all
            try:
                self._watchdog.wait(60)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def _command(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--", *argv] if self._as_root else argv

    def _run(self, argv: list[str], what: str) -> None:
        # A session of its own: Ctrl-C in the terminal reaches pytest, not the server
        # (whose SIGINT is a fast shutdown in the middle of the session's teardown).
        done = subprocess.run(self._command(argv), capture_output=True, text=True,
                              cwd=self.folder, start_new_session=True, check=False)
        if done.returncode != 0:
            raise ClusterError(f"{what} failed ({done.returncode}):\n{done.stdout}"
                               f"{done.stderr}\nserver log:\n{self.log_tail()}")

    def _hand_to_server_user(self, folder: Path) -> None:
        import pwd
        try:
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise ClusterError(
                f"running as root, the test cluster runs as the `{SERVER_USER}` user, which "
                "does not exist: install Debian's postgresql package (`make system-deps`), "
                "or run the tests as an unprivileged user") from None
        os.chown(folder, entry.pw_uid, entry.pw_gid)

    def _watch(self, pg_ctl: Path) -> None:
        """Start the watchdog: it waits for EOF on its stdin (this process ending, or
        `stop`), then stops the server and deletes the folder."""
        assert self.folder is not None
        stop = shlex.join(self._command([str(pg_ctl), "-D", str(self.data), "-m", "immediate",
                                         "stop"]))
        pid_file = shlex.quote(str(self.data / "postmaster.pid"))
        script = (f"cat >/dev/null; [ -f {pid_file} ] && {stop} >/dev/null 2>&1; "
                  f"rm -rf {shlex.quote(str(self.folder))}")
        self._watchdog = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True)


def wait_until_ready(url: str, timeout: float, log_tail: Callable[[], str]) -> None:
    """Connect until the server answers; on timeout fail with the last error and the log."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ClusterError(f"the test PostgreSQL at {url} did not accept connections "
                                   f"within {timeout:.0f} s: {exc}\nserver log:\n"
                                   f"{log_tail()}") from exc
            time.sleep(0.1)


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class Databases:
    """A migrated template database and one fresh copy of it per test, on an admin URL.

    Copying and dropping take ~165 ms a test on 2 cores (CREATE DATABASE checkpoints; a
    DROP waits for the test's connections to end), so a worker thread does both off the
    tests' path: it keeps SPARES copies ready and drops used ones behind the tests.
    """

    SPARES = 2

    def __init__(self, admin_url: str, migrate: Callable[[str], None]) -> None:
        self.admin_url = admin_url
        self._migrate = migrate
        self.session = uuid.uuid4().hex[:8]
        self.template = f"skills_hub_tpl_{self.session}"
        self._made = False
        self._failed: str | None = None
        self._strategy = sql.SQL("")
        self._state = threading.Condition()
        self._spares: list[str] = []
        self._doomed: list[str] = []
        self._stopping = False
        self._worker: threading.Thread | None = None
        self.server_seconds = 0.0  # the cluster: initdb and start (none for a server of one's own)
        self.setup_seconds = 0.0  # the template: created and migrated once
        self.waits: list[float] = []  # seconds each test waited for its database
        self.work: list[float] = []  # seconds of the worker's CREATE and DROP statements

    def create(self) -> tuple[str, str]:
        """A new database copied from the template: (its name, its URL)."""
        if self._failed is None and not self._made:
            self._make_template()
        started = time.perf_counter()
        with self._state:
            while not self._spares and self._failed is None:
                self._state.wait()
            if self._failed is not None:  # fail each test at once, not by trying again
                raise ClusterError(self._failed)
            name = self._spares.pop(0)
            self._state.notify_all()
        self.waits.append(time.perf_counter() - started)
        return name, with_database(self.admin_url, name)

    def drop(self, name: str) -> None:
        """Drop a test's database (soon, in the worker), ending the connections it left."""
        with self._state:
            self._doomed.append(name)
            self._state.notify_all()

    def close(self) -> None:
        """Stop the worker, then drop the template and every copy of this session (on a
        server of the developer's own, these would stay)."""
        with self._state:
            self._stopping = True
            self._state.notify_all()
        if self._worker is not None:
            self._worker.join(60)
        if not self._made:
            return
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            left = [str(row[0]) for row in admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                (f"t\\_{self.session}\\_%",))]
            for name in [*left, self.template]:
                admin.execute(_drop(name))

    def summary(self) -> str:
        if not self.waits:
            return ""
        return (f"PostgreSQL for the tests: server started in {self.server_seconds:.2f} s, "
                f"template migrated in {self.setup_seconds:.2f} s; {len(self.waits)} test "
                f"databases, {sum(self.waits):.1f} s waited for in all "
                f"({1000 * sum(self.waits) / len(self.waits):.0f} ms a test); the worker's "
                f"CREATE and DROP took {sum(self.work):.1f} s beside the tests")

    def _make_template(self) -> None:
        started = time.perf_counter()
        try:
            with psycopg.connect(self.admin_url, autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(
                    sql.Identifier(self.template)))
                self._made = True
                self._migrate(with_database(self.admin_url, self.template))
                # Nothing may stay connected to a template while it is copied.
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = %s AND pid <> pg_backend_pid()",
                              (self.template,))
                # Copying the files is faster than PostgreSQL 15's default, copying
                # through the WAL (~35 against ~200 ms for the schema of 2026-03).
                if admin.info.server_version >= 150000:
                    self._strategy = sql.SQL(" STRATEGY FILE_COPY")
        except Exception as exc:
            self._failed = f"making the migrated PostgreSQL template database failed: {exc!r}"
            raise
        self.setup_seconds = time.perf_counter() - started
        self._worker = threading.Thread(target=self._work, name="pg-test-databases",
                                        daemon=True)
        self._worker.start()

    def _work(self) -> None:
        """Keep SPARES copies ready; drop the used ones when no test waits for a copy."""
        try:
            with psycopg.connect(self.admin_url, autocommit=True) as admin:
                while True:
                    with self._state:
                        while not self._stopping and not self._doomed and \
                                len(self._spares) >= self.SPARES:
                            self._state.wait()
                        if self._stopping:
                            return
                        doomed = self._doomed.pop(0) if self._doomed and self._spares \
                            else None
                    started = time.perf_counter()
                    if doomed is not None:
                        admin.execute(_drop(doomed))
                    else:
                        name = f"t_{self.session}_{uuid.uuid4().hex[:12]}"
                        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                            sql.Identifier(name), sql.Identifier(self.template),
                            self._strategy))
                        with self._state:
                            self._spares.append(name)
                            self._state.notify_all()
                    self.work.append(time.perf_counter() - started)
        except Exception as exc:
            with self._state:
                self._failed = f"copying or dropping a PostgreSQL test database failed: {exc!r}"
                self._state.notify_all()


def _drop(name: str) -> sql.Composed:
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


def _main() -> None:
    """`python tests/pgcluster.py`: start a cluster, time per-test databases, stop."""
    cluster = Cluster()
    started = time.perf_counter()
    url = cluster.start()
    server_seconds = time.perf_counter() - started

    def migrate(db_url: str) -> None:
        from skills_hub.store.postgres import open_postgres
        storage = open_postgres(db_url)
        try:
            storage.db.migrate()
        finally:
            storage.close()

    databases = Databases(url, migrate)
    databases.server_seconds = server_seconds
    try:
        for _ in range(20):
            name, _url = databases.create()
            databases.drop(name)
        print(databases.summary(), file=sys.stderr)
    finally:
        databases.close()
        cluster.stop()


if __name__ == "__main__":
    _main()
