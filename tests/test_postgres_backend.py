"""The PostgreSQL backend's own concerns (`store.postgres`): migrations when nodes start at
once, tsquery building from hostile input, prefix matching and field weights, changes
travelling between nodes by LISTEN/NOTIFY, the advisory write lock, outcome batches
(idempotent, all-or-nothing, no lost update between nodes).

A throwaway cluster of Debian's PostgreSQL 15 runs for the session (initdb as the
`postgres` user when we are root, fsync off, loopback port, socket in its folder), one
fresh database per test. Skipped where PostgreSQL is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from skills_hub.domain import KeywordQuery, NewOutcome, NewVersion, SearchFilters
from skills_hub.errors import Busy
from skills_hub.search.query import parse
from skills_hub.store.interfaces import Storage
from skills_hub.store.postgres import open_postgres
from skills_hub.store.postgres.db import Database, WriteLock
from skills_hub.store.postgres.migrations import MIGRATIONS

from .test_search import HOSTILE

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ALL = SearchFilters()
NOBODY: frozenset[str] = frozenset()


# -- the cluster ------------------------------------------------------------------------------


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A server for the session; its URL without a database name."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed ({PG_BIN}): `make test` installs it "
                    "(apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="skills-hub-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    subprocess.run(_as_server_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                                    "-A", "trust", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    options = (f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
               f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c max_connections=200")
    subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                                    str(root / "log"), "-o", options, "-w", "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m",
                                        "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(server + "/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database."""
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture
def node(pg_url: str) -> Iterator[Storage]:
    """One node's storage over the fresh database, migrated."""
    storage = open_postgres(pg_url)
    storage.db.migrate()
    yield storage
    storage.close()


@pytest.fixture
def other_node(pg_url: str, node: Storage) -> Iterator[Storage]:
    """A second node over the same database (its own pool and listener)."""
    storage = open_postgres(pg_url)
    wait_for(lambda: storage.db.listening)  # type: ignore[attr-defined]
    yield storage
    storage.close()


def wait_for(condition: Callable[[], bool], seconds: float = 1.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def version(name: str, description: str = "", *, body: str = "", tags: str = "",
            number: str = "1.0.0", namespace: str = "team",
            embed: str | None = None) -> NewVersion:
    return NewVersion(namespace, name, number, "c" * 40, "t" * 40, "r" * 40, "s" * 64,
                      description, {"name": name}, [{"path": "SKILL.md"}],
                      datetime.now(UTC).isoformat(timespec="seconds"), tags, body, True, embed)


def names(storage: Storage, query: KeywordQuery) -> list[str]:
    return [h.skill.name for h in storage.keyword.search(query, filters=ALL, readable=NOBODY,
                                                         limit=20)]


# -- migrations -------------------------------------------------------------------------------


def test_migrations_apply_once_when_four_nodes_start_together(pg_url: str) -> None:
    nodes = [Database(pg_url) for _ in range(4)]
    start = threading.Barrier(4)
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def run(db: Database) -> None:
        start.wait()
        try:
            applied.append(db.migrate())
        except BaseException as exc:  # reported below, with the thread's result
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(db,)) for db in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors
        names = [name for name, _ in MIGRATIONS]
        # Every migration applied exactly once, by whichever node got to it first.
        assert sorted(n for one in applied for n in one) == sorted(names)
        with nodes[0].connection() as conn:
            rows = conn.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()
        assert rows == [(name,) for name in sorted(names)]
        assert all(db.readiness() == {"database": "ok", "migrations": "ok"} for db in nodes)
    finally:
        for db in nodes:
            db.close()


def test_readiness_names_the_migrations_not_applied(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        waiting = ", ".join(name for name, _ in MIGRATIONS)
        assert db.readiness() == {"database": "ok", "migrations": f"not applied: {waiting}"}
        db.migrate()
        assert db.readiness()["migrations"] == "ok"
    finally:
        db.close()


# -- keyword search ---------------------------------------------------------------------------


def fill(node: Storage) -> Storage:
    node.catalogue.record_version(version("near-words", "NEAR and OR are plain words here."))
    node.catalogue.record_version(version(
        "csv-trend-chart", "Charts monthly trends", tags="csv, charts",
        body="Reads the exported CSV."))
    node.catalogue.record_version(version("report-exporter", "Exports spreadsheet reports",
                                          body="Writes a csv file."))
    node.catalogue.record_version(version("the-who", "What is this", body="How to do it."))
    return node


@pytest.fixture
def searchable(node: Storage) -> Storage:
    return fill(node)


@pytest.fixture(scope="module")
def shared_searchable(pg_server: str) -> Iterator[Storage]:
    """`searchable` for the tests that only read it, made once."""
    with fresh_database(pg_server) as url:
        storage = open_postgres(url)
        storage.db.migrate()
        yield fill(storage)
        storage.close()


@pytest.mark.parametrize("text", HOSTILE, ids=lambda text: repr(text)[:24])
def test_hostile_input_gets_results_or_nothing_never_an_error(shared_searchable: Storage,
                                                              text: str) -> None:
    for prefix in (True, False):
        query = parse(text, prefix=prefix)
        hits = shared_searchable.keyword.search(query, filters=ALL, readable=NOBODY, limit=10)
        assert isinstance(hits, list)
        shared_searchable.keyword.snippets(query, [h.skill.id for h in hits] + [1, 2, 3])


@pytest.mark.parametrize("words", [
    ("a'b",), ("x:*",), ("\\",), ("'",), ("a & b", "c | d"), ("!x", "<->"), ("\x00",),
    ("near(", "csv"), ("'csv'",),
])
def test_words_past_the_parser_still_never_reach_tsquery_syntax(
        shared_searchable: Storage, words: tuple[str, ...]) -> None:
    """KeywordQuery's words are \\w+ from `parse`; a caller passing anything else still
    cannot make a syntax error (the prefix form quotes the word)."""
    for prefix in (True, False):
        query = KeywordQuery(words, prefix)
        hits = shared_searchable.keyword.search(query, filters=ALL, readable=NOBODY, limit=10)
        shared_searchable.keyword.snippets(query, [h.skill.id for h in hits])


def test_the_last_word_matches_as_a_prefix_only_while_typed(searchable: Storage) -> None:
    assert names(searchable, parse("spread", prefix=False)) == []
    assert names(searchable, parse("spread", prefix=True)) == ["report-exporter"]
    assert names(searchable, parse("spread ", prefix=True)) == []  # a finished word
    assert names(searchable, parse("expo", prefix=True)) == ["report-exporter",
                                                             "csv-trend-chart"]


def test_a_name_match_outranks_a_description_tag_or_body_match(node: Storage) -> None:
    node.catalogue.record_version(version("helper", "Nothing special", body="invoice " * 3))
    node.catalogue.record_version(version("tagged", "Nothing special", tags="invoice"))
    node.catalogue.record_version(version("described", "Parses an invoice"))
    node.catalogue.record_version(version("invoice", "Nothing special"))
    hits = node.keyword.search(parse("invoice"), filters=ALL, readable=NOBODY, limit=10)
    assert [h.skill.name for h in hits] == ["invoice", "described", "tagged", "helper"]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[-1].score > 0


def test_every_word_before_any_word(searchable: Storage) -> None:
    hits = names(searchable, parse("csv spreadsheet"))
    assert hits[0] == "report-exporter"  # the only one with both words
    assert set(hits[1:]) == {"csv-trend-chart"}


def test_common_words_alone_still_find_and_beside_others_do_not_empty(
        searchable: Storage) -> None:
    assert names(searchable, KeywordQuery(("the", "who")))[0] == "the-who"
    assert names(searchable, parse("what is this"))[0] == "the-who"
    assert "report-exporter" in names(searchable, KeywordQuery(("the", "spreadsheet")))
    assert names(searchable, KeywordQuery(("zzzz", "spreadsheet"))) == ["report-exporter"]


def test_text_splits_into_words_as_fts5_splits_it(node: Storage) -> None:
    """PostgreSQL's parser would skip what follows `<script>` and keep URLs, paths and
    versions whole; the index reads the text with its punctuation as spaces."""
    node.catalogue.record_version(version(
        "html-escape", "Escapes <script> tags in exported reports.",
        body="See https://docs.example.com/guide/v1.2.3 or mail help@example.org; "
             "run /usr/bin/tool --fast."))
    for words in (("exported",), ("docs", "guide"), ("help", "org"), ("usr", "tool", "fast"),
                  ("html", "escape"), ("script", "tags")):
        assert names(node, KeywordQuery(words)) == ["html-escape"], words
    skill = node.catalogue.get_skill("team", "html-escape")
    assert skill is not None
    assert node.keyword.snippets(parse("exported"), [skill.id]) == {
        skill.id: "Escapes <script> tags in \x02exported\x03 reports."}
    cut = node.keyword.snippets(KeywordQuery(("guide",)), [skill.id])[skill.id]
    assert "\x02guide\x03/v1.2.3" in cut  # the punctuation back as it was


def test_counted_terms_rank_a_rare_word_above_a_common_one(node: Storage) -> None:
    for i in range(5):
        node.catalogue.record_version(version(f"widget-{i}", "Makes widgets"))
    node.catalogue.record_version(version("other", "Something else", body="zephyr"))
    query = KeywordQuery(("widget", "zephyr"))  # no skill has both: the any-word tier
    assert names(node, query)[0].startswith("widget-")  # every idf 1: the name wins
    node.keyword.start()
    try:
        assert wait_for(lambda: node.keyword.terms is not None, 5)  # type: ignore[attr-defined]
        assert names(node, query)[0] == "other"  # zephyr is in 1 skill of 6, widget in 5
    finally:
        node.keyword.close()


def test_very_common_words_leave_the_any_word_tier_while_a_rarer_one_remains(
        node: Storage) -> None:
    node.catalogue.record_versions(version(f"tool-{i}", "A common helper")
                                   for i in range(1_000))
    node.catalogue.record_version(version("needle", "Finds a rare thing"))
    node.keyword.start()
    try:
        assert wait_for(lambda: node.keyword.terms is not None, 10)  # type: ignore[attr-defined]
        assert names(node, KeywordQuery(("common", "rare"))) == ["needle"]
        assert len(names(node, KeywordQuery(("common", "unheard")))) == 20  # nothing rarer
    finally:
        node.keyword.close()


def test_search_applies_visibility_and_filters(node: Storage) -> None:
    node.namespaces.ensure_namespace("secret", "private")
    node.catalogue.record_version(version("ledger", "Private ledger", namespace="secret"))
    node.catalogue.record_version(version("ledger-public", "Public ledger"))
    assert names(node, parse("ledger")) == ["ledger-public"]
    found = node.keyword.search(parse("ledger"), filters=ALL, readable=frozenset({"secret"}),
                                limit=10)
    assert {h.skill.name for h in found} == {"ledger", "ledger-public"}
    only = node.keyword.search(parse("ledger"), filters=SearchFilters(namespace="secret"),
                               readable=frozenset({"secret"}), limit=10)
    assert [h.skill.name for h in only] == ["ledger"]


def test_a_nul_in_a_filter_or_name_finds_nothing_instead_of_raising(searchable: Storage) -> None:
    """PostgreSQL's text cannot hold NUL (psycopg raises); names and filters come from URLs."""
    nul = SearchFilters(namespace="team\x00")
    assert searchable.keyword.search(parse("csv"), filters=nul, readable=NOBODY, limit=5) == []
    assert searchable.catalogue.browse(filters=SearchFilters(tag="\x00"), readable=NOBODY,
                                       order="recent", offset=0, limit=5) == []
    assert searchable.catalogue.count_skills(readable=frozenset({"x\x00"}),
                                             namespace=None) == 4  # the public ones
    assert searchable.outcomes.trust_of("team", "csv\x00") == "community"
    with pytest.raises(psycopg.DataError):  # a write is refused, not silently dropped
        searchable.reports.set_exception("team", "csv\x00", "rule", "reason")


def test_snippets_mark_the_matches_of_the_best_field(searchable: Storage) -> None:
    skill = searchable.catalogue.get_skill("team", "report-exporter")
    assert skill is not None
    found = searchable.keyword.snippets(parse("spreadsheet"), [skill.id, 999])
    assert found == {skill.id: "Exports \x02spreadsheet\x03 reports"}
    body = searchable.catalogue.get_skill("team", "csv-trend-chart")
    assert body is not None
    long_body = "word " * 40 + "needle " + "word " * 40
    searchable.catalogue.record_version(version("csv-trend-chart", "Charts", body=long_body,
                                                number="1.1.0"))
    cut = searchable.keyword.snippets(parse("needle"), [body.id])[body.id]
    assert "\x02needle\x03" in cut and cut.startswith("…") and cut.endswith("…")
    assert searchable.keyword.snippets(parse("nothing-matches"), [body.id]) == {}


# -- changes between nodes --------------------------------------------------------------------


def test_another_nodes_writes_move_the_marks_and_generation_within_a_second(
        node: Storage, other_node: Storage) -> None:
    assert other_node.generation.current() == other_node.generation.current()  # a local read
    seen = (other_node.generation.current(), other_node.catalogue.catalogue_mark(),
            other_node.vectors.vectors_mark())
    node.catalogue.record_version(version("fresh", "New here", embed="e" * 64),
                                  vector=("fake", b"\0" * 16))
    assert wait_for(lambda: other_node.catalogue.catalogue_mark() != seen[1])
    assert wait_for(lambda: other_node.vectors.vectors_mark() != seen[2])
    assert other_node.vectors.vectors_since(seen[2][1], seen[2][2])  # the new vector
    node.generation.bump()
    assert wait_for(lambda: other_node.generation.current() != seen[0])


def test_marks_cost_no_query_while_nothing_changes(node: Storage) -> None:
    assert wait_for(lambda: node.db.listening)  # type: ignore[attr-defined]
    node.catalogue.catalogue_mark()
    node.vectors.vectors_mark()
    node.db.pool.close()  # type: ignore[attr-defined]  # any query would fail now
    assert node.catalogue.catalogue_mark() == node.catalogue.catalogue_mark()
    node.vectors.vectors_mark()


def test_our_own_commit_moves_the_marks_at_once(node: Storage) -> None:
    assert wait_for(lambda: node.db.listening)  # type: ignore[attr-defined]
    before = node.catalogue.catalogue_mark(), node.vectors.vectors_mark()
    node.catalogue.record_version(version("mine", "Written here"))
    assert node.catalogue.catalogue_mark() != before[0]  # no wait for the notification
    assert node.vectors.vectors_mark() != before[1]
    node.catalogue.delete_skill("team", "mine")
    assert node.catalogue.catalogue_mark()[0] == before[0][0] + 1  # the epoch


def test_a_lost_listener_reconnects_and_counts_everything_as_changed(
        node: Storage, other_node: Storage, pg_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("skills_hub.store.postgres.db.RECONNECT_S", (0.5, 0.5))
    db: Any = other_node.db
    mark = other_node.catalogue.catalogue_mark()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE query LIKE 'LISTEN%' AND pid != pg_backend_pid()")
        assert wait_for(lambda: not db.listening, 12)
        # Written while the listener is away: its notification is lost, the mark is not.
        node.catalogue.record_version(version("meanwhile", "Written while away"))
        assert other_node.catalogue.catalogue_mark() != mark  # read afresh meanwhile
        assert other_node.generation.current() != other_node.generation.current()
    assert wait_for(lambda: db.listening, 5)
    assert other_node.catalogue.catalogue_mark()[1] == 1


def test_the_write_lock_holds_across_nodes(node: Storage, other_node: Storage) -> None:
    assert isinstance(node.write_lock, WriteLock) and other_node.write_lock is not None
    events: list[str] = []
    with node.write_lock.hold("team"):
        def second() -> None:
            assert other_node.write_lock is not None
            with other_node.write_lock.hold("team"):
                events.append("second holds")

        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.3)
        with other_node.write_lock.hold("other-namespace"):  # another namespace: no wait
            events.append("other namespace")
        events.append("first releases")
    waiter.join(5)
    assert events == ["other namespace", "first releases", "second holds"]


def test_a_lock_held_too_long_elsewhere_is_a_clear_503_not_a_hang(
        node: Storage, other_node: Storage) -> None:
    """A node frozen while holding a namespace's lock must not stop the others' writers for
    ever: past the deadline the write is refused (503 Busy, Retry-After), and the same
    lock is taken at once when it is free again."""
    assert isinstance(other_node.write_lock, WriteLock) and node.write_lock is not None
    other_node.write_lock.wait_s = 0.3
    with node.write_lock.hold("team"):
        started = time.monotonic()
        with pytest.raises(Busy) as refused, other_node.write_lock.hold("team"):
            pass
        assert 0.25 < time.monotonic() - started < 3
        assert refused.value.status == 503 and refused.value.extra["retry_after"] >= 1
    with other_node.write_lock.hold("team"):  # the refused wait left nothing behind
        pass


# -- outcomes ---------------------------------------------------------------------------------


def outcome(i: int, *, outcome_: str = "success", client: str = "c1",
            at: datetime | None = None, reporter: str = "r1") -> NewOutcome:
    return NewOutcome(reporter, f"id-{i}", "1.0.0", outcome_, None, 0.5, "{}", None, None,
                      client, at or datetime(2026, 1, 5, 12, tzinfo=UTC))


def no_decay(seconds: float) -> float:
    return 1.0


def count_ema(level: float | None, success: bool) -> float:
    return (level or 0.0) + 1.0


def test_outcome_batches_are_idempotent(node: Storage) -> None:
    node.catalogue.record_version(version("tool", "A tool"))
    batch = [outcome(i, outcome_="success" if i % 4 else "failure", client=f"c{i % 3}")
             for i in range(100)]
    batch.append(batch[0])  # the same report twice in one batch counts once
    fresh = node.outcomes.record_outcomes("team", "tool", batch, decay=no_decay, ema=count_ema)
    assert fresh == batch[:100]
    again = node.outcomes.record_outcomes("team", "tool", batch, decay=no_decay, ema=count_ema)
    assert again == []
    stats = node.outcomes.version_stats("team", "tool")["1.0.0"]
    assert (stats.successes, stats.failures, stats.ema) == (75, 25, 100.0)
    assert node.outcomes.success_clients("team", "tool") == 3
    assert node.outcomes.outcome_days("team", "tool", "2026-01-01") == [
        ("1.0.0", "2026-01-05", 75, 25)]
    assert node.outcomes.outcome_totals([("team", "tool")]) == {
        ("team", "tool"): [(75.0, 25.0, "2026-01-05T12:00:00+00:00")]}


def test_a_failing_batch_leaves_nothing_behind(node: Storage) -> None:
    batch = [outcome(i) for i in range(50)]

    def fail_late(level: float | None, success: bool) -> float:
        if (level or 0) >= 40:
            raise RuntimeError("the fold failed after the reports were inserted")
        return (level or 0.0) + 1.0

    with pytest.raises(RuntimeError):
        node.outcomes.record_outcomes("team", "tool", batch, decay=no_decay, ema=fail_late)
    bad = [*batch[:10], NewOutcome("r1", "id-nul", "1.0.0", "success", None, None,
                                   "{\"x\": \"\x00\"}", None, None, "c1", batch[0].at)]
    with pytest.raises(psycopg.DataError):
        node.outcomes.record_outcomes("team", "tool", bad, decay=no_decay, ema=count_ema)
    assert node.outcomes.version_stats("team", "tool") == {}
    assert node.outcomes.success_clients("team", "tool") == 0
    assert node.outcomes.outcome_days("team", "tool", "2026-01-01") == []
    fresh = node.outcomes.record_outcomes("team", "tool", batch, decay=no_decay, ema=count_ema)
    assert len(fresh) == 50  # none was kept by the failed attempts


def test_two_nodes_recording_one_skill_at_once_lose_no_count(node: Storage,
                                                             other_node: Storage) -> None:
    start = threading.Barrier(2)

    def send(storage: Storage, reporter: str) -> None:
        start.wait()
        for batch in range(10):
            reports = [outcome(batch * 10 + i, reporter=reporter, client=f"{reporter}-{i}",
                               at=datetime(2026, 1, 5, tzinfo=UTC) + timedelta(minutes=i))
                       for i in range(10)]
            storage.outcomes.record_outcomes("team", "tool", reports, decay=no_decay,
                                             ema=count_ema)

    threads = [threading.Thread(target=send, args=(s, r))
               for s, r in ((node, "a"), (other_node, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = node.outcomes.version_stats("team", "tool")["1.0.0"]
    assert (stats.successes, stats.ema) == (200, 200.0)
    assert node.outcomes.success_clients("team", "tool") == 20
    assert node.outcomes.outcome_totals([("team", "tool")])[("team", "tool")][0][0] == 200.0


def test_downloads_are_added_in_one_statement(node: Storage) -> None:
    node.catalogue.record_version(version("one", "First"))
    node.catalogue.record_version(version("two", "Second"))
    node.catalogue.add_downloads({("team", "one"): 3, ("team", "two"): 1, ("team", "gone"): 5})
    node.catalogue.add_downloads({("team", "one"): 2})
    installs = node.catalogue.browse(filters=ALL, readable=NOBODY, order="installs", offset=0,
                                     limit=10)
    assert [(s.name, s.downloads) for s in installs] == [("one", 5), ("two", 1)]
