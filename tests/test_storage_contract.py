"""One contract for every implementation of the storage interfaces (`store.interfaces`).

Each test runs once per backend of SKILLS_HUB_TEST_BACKENDS (`[sqlite]`, `[postgresql]`), on
a store of its own: a new index.db, or a new PostgreSQL database copied from the session's
migrated template (tests/pgcluster.py). The stores are driven through their Protocols only,
never through SQL, so what passes here is what the services may rely on from any backend.
The account stores are covered lightly; tests/test_postgres_accounts.py holds them side by
side in depth.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from skills_hub.domain import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    CanaryRow,
    HealthCandidate,
    HealthCheckRow,
    KeepOwner,
    KeywordQuery,
    NewAudit,
    NewGapAsk,
    NewOutcome,
    NewReport,
    NewVersion,
    ProposalRow,
    ReleaseRow,
    SearchFilters,
    SkillRow,
    TaskVector,
)
from skills_hub.learning.demands import Clustering
from skills_hub.search.query import parse
from skills_hub.store.interfaces import Storage
from skills_hub.store.sqlite import open_sqlite

from .test_search_units import HOSTILE

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NONE = frozenset[str]()
ALL = SearchFilters()


@pytest.fixture
def storage(storage_backend: str, tmp_path: Path,
            new_database: Callable[[], str | None]) -> Iterator[Storage]:
    if storage_backend == "sqlite":
        store = open_sqlite(tmp_path / "index.db")
    else:
        from skills_hub.store.postgres import open_postgres
        url = new_database()
        assert url is not None
        store = open_postgres(url)
    store.db.migrate()
    yield store
    store.keyword.close()
    store.close()


# -- rows ------------------------------------------------------------------------------------

def at(minutes: float = 0) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def sha(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def new_version(namespace: str = "team", name: str = "alpha", version: str = "1.0.0", *,
                description: str = "Does alpha things.", tags: str = "testing, example",
                body: str = "Plain instructions.", latest: bool = True, minutes: float = 0,
                embed: str | None = None) -> NewVersion:
    return NewVersion(
        namespace=namespace, name=name, version=version, commit_sha=sha("c", namespace, name,
        version)[:40], tag_sha=sha("t", namespace, name, version)[:40],
        tree_sha=sha("r", namespace, name, version)[:40],
        content_sha256=sha("content", namespace, name, version, body),
        description=description, frontmatter={"name": name, "description": description,
                                              "metadata": {"tags": tags}},
        files=[{"path": "SKILL.md", "size": 10 + len(body), "mode": "100644"}],
        published_at=at(minutes), tags=tags, body=body, is_latest=latest, embed_sha256=embed)


def record(storage: Storage, namespace: str = "team", name: str = "alpha",
           version: str = "1.0.0", **kwargs: Any) -> int:
    return storage.catalogue.record_version(new_version(namespace, name, version, **kwargs))


def skill(storage: Storage, namespace: str = "team", name: str = "alpha") -> SkillRow:
    row = storage.catalogue.get_skill(namespace, name)
    assert row is not None, f"{namespace}/{name} is not in the catalogue"
    return row


def new_report(namespace: str = "team", name: str = "alpha", version: str = "1.0.0",
               verdict: str = "safe", *, content: str | None = None,
               reason: str = "publish") -> NewReport:
    digest = content or sha("content", namespace, name, version, "Plain instructions.")
    return NewReport(namespace, name, version, digest, verdict,
                     {"verdict": verdict, "findings": [{"rule": "R1", "line": 3}]},
                     "checks-1", reason)


def outcome(report_id: str, result: str = "success", *, version: str = "1.0.0",
            reporter: str = "reporter-1", client: str = "client-1",
            when: datetime = T0, score: float | None = None) -> NewOutcome:
    return NewOutcome(reporter=reporter, report_id=report_id, version=version, outcome=result,
                      failure_kind="wrong_result" if result == "failure" else None,
                      score=score, signals_json="{}", agent="agent-x", model="model-y",
                      client=client, at=when)


def ema(previous: float | None, success: bool) -> float:
    return 0.5 * (0.5 if previous is None else previous) + (0.5 if success else 0.0)


def no_decay(seconds: float) -> float:
    return 1.0


def hourly_half_life(seconds: float) -> float:
    return float(0.5 ** (seconds / 3600))


def send(storage: Storage, reports: list[NewOutcome], namespace: str = "team",
         name: str = "alpha", decay: Callable[[float], float] = no_decay) -> list[NewOutcome]:
    return storage.outcomes.record_outcomes(namespace, name, reports, decay=decay, ema=ema)


def names(rows: list[SkillRow]) -> list[str]:
    return [f"{r.namespace}/{r.name}" for r in rows]


# -- the database ----------------------------------------------------------------------------

def test_migrating_again_applies_nothing_and_the_store_is_ready(storage: Storage) -> None:
    assert storage.db.migrate() == []
    readiness = storage.db.readiness()
    assert readiness and set(readiness.values()) == {"ok"}, readiness


def test_the_generation_moves_when_access_facts_change(storage: Storage) -> None:
    storage.namespaces.ensure_namespace("team")
    # A backend may answer a new value to every read until it can tell changes (PostgreSQL
    # until its listener is up): caches then miss, which is safe; but it settles soon.
    deadline = time.monotonic() + 5
    while (before := storage.generation.current()) != storage.generation.current():
        assert time.monotonic() < deadline, "the generation never settles: caches never hit"
        time.sleep(0.01)
    storage.namespaces.set_visibility("team", "private")
    moved = storage.generation.current()
    assert moved != before
    storage.generation.bump()
    assert storage.generation.current() != moved


# -- namespaces ------------------------------------------------------------------------------

def test_ensure_namespace_is_idempotent_and_keeps_the_first_visibility(
        storage: Storage) -> None:
    first = storage.namespaces.ensure_namespace("team")
    assert (first.name, first.visibility) == ("team", "public")
    again = storage.namespaces.ensure_namespace("team", "private")
    assert again == first
    storage.namespaces.ensure_namespace("vault", "private")
    assert [n.name for n in storage.namespaces.list_namespaces()] == ["team", "vault"]
    vault = storage.namespaces.get_namespace("vault")
    assert vault is not None and vault.visibility == "private"
    assert storage.namespaces.get_namespace("nobody") is None
    assert storage.namespaces.namespace("nobody") is None


def test_a_new_namespace_has_the_default_policies(storage: Storage) -> None:
    storage.namespaces.ensure_namespace("team")
    info = storage.namespaces.namespace("team")
    assert info is not None
    assert (info.owner_user, info.owner_org, info.release_policy, info.two_person,
            info.review_policy) == (None, None, "direct", False, "review")
    assert storage.namespaces.review_policy("team") == "review"
    assert storage.namespaces.review_policy("nobody") == "review"


def test_visibility_and_hidden_namespaces(storage: Storage) -> None:
    for name in ("open", "inside", "vault"):
        storage.namespaces.ensure_namespace(name)
    storage.namespaces.set_visibility("inside", "internal")
    storage.namespaces.set_visibility("vault", "private")
    assert [(n.name, n.visibility) for n in storage.namespaces.hidden_namespaces()] == [
        ("inside", "internal"), ("vault", "private")]
    assert [n.name for n in storage.namespaces.namespaces()] == ["inside", "open", "vault"]


def test_owners_and_policies(storage: Storage) -> None:
    lead = storage.users.add_user("lead")
    storage.orgs.add_org("acme", lead.id)
    storage.namespaces.ensure_namespace("tools")
    storage.namespaces.set_namespace_owner("tools", org="acme")
    info = storage.namespaces.namespace("tools")
    assert info is not None and (info.owner_org, info.owner_user) == ("acme", None)
    storage.namespaces.set_namespace_owner("tools", user_id=lead.id)
    info = storage.namespaces.namespace("tools")
    assert info is not None and (info.owner_org, info.owner_user) == (None, lead.id)

    storage.namespaces.set_release_policy("tools", "review", True)
    storage.namespaces.set_review_policy("tools", "auto")
    info = storage.namespaces.namespace("tools")
    assert info is not None
    assert (info.release_policy, info.two_person, info.review_policy) == ("review", True, "auto")
    assert storage.namespaces.review_policy("tools") == "auto"
    storage.namespaces.set_release_policy("tools", "direct", False)
    info = storage.namespaces.namespace("tools")
    assert info is not None and (info.release_policy, info.two_person) == ("direct", False)


# -- the catalogue ---------------------------------------------------------------------------

def test_the_first_version_creates_the_skill_and_its_public_namespace(
        storage: Storage) -> None:
    skill_id = record(storage, minutes=5)
    row = skill(storage)
    assert row.id == skill_id
    assert (row.latest_version, row.description, row.tags, row.created_at, row.updated_at,
            row.downloads, row.trust, row.verdict) == (
        "1.0.0", "Does alpha things.", "testing, example", at(5), at(5), 0, "community",
        "unchecked")
    team = storage.namespaces.get_namespace("team")
    assert team is not None and team.visibility == "public"
    [version] = storage.catalogue.versions(skill_id)
    expected = new_version(minutes=5)
    assert (version.skill_id, version.version, version.commit_sha, version.tag_sha,
            version.tree_sha, version.content_sha256, version.description, version.frontmatter,
            version.files, version.published_at) == (
        skill_id, "1.0.0", expected.commit_sha, expected.tag_sha, expected.tree_sha,
        expected.content_sha256, expected.description, expected.frontmatter, expected.files,
        at(5))
    assert storage.catalogue.get_version(skill_id, "1.0.0") == version
    assert storage.catalogue.get_version(skill_id, "9.9.9") is None
    assert storage.catalogue.get_skill("team", "nobody") is None


def test_a_later_latest_version_refreshes_the_skill_and_an_older_one_does_not(
        storage: Storage) -> None:
    skill_id = record(storage, minutes=0)
    assert record(storage, version="2.0.0", description="Does more.", tags="new",
                  minutes=10) == skill_id
    row = skill(storage)
    assert (row.latest_version, row.description, row.tags, row.created_at, row.updated_at) == (
        "2.0.0", "Does more.", "new", at(0), at(10))
    record(storage, version="1.5.0", description="A backport.", latest=False, minutes=20)
    row = skill(storage)
    assert (row.latest_version, row.description, row.updated_at) == ("2.0.0", "Does more.",
                                                                      at(10))
    assert sorted(v.version for v in storage.catalogue.versions(skill_id)) == [
        "1.0.0", "1.5.0", "2.0.0"]


def test_a_version_is_recorded_with_its_report_and_vector_at_once(storage: Storage) -> None:
    new = new_version(embed="e" * 64)
    report = new_report(content=new.content_sha256, verdict="caution")
    storage.catalogue.record_version(new, report, ("model-a", b"\x00\x00\x80?" * 4))
    assert skill(storage).verdict == "caution"
    assert storage.reports.verdicts("team", "alpha") == {"1.0.0": "caution"}
    assert storage.vectors.get_vector("e" * 64) == b"\x00\x00\x80?" * 4
    assert storage.reports.unchecked_versions() == []


def test_record_versions_writes_a_batch(storage: Storage) -> None:
    storage.catalogue.record_versions(
        [new_version(name=f"skill-{i}", minutes=i) for i in range(5)]
        + [new_version(name="skill-0", version="2.0.0", minutes=9)])
    assert storage.catalogue.count_skills(readable=NONE, namespace=None) == 5
    assert skill(storage, name="skill-0").latest_version == "2.0.0"


def test_delete_version_and_delete_skill(storage: Storage) -> None:
    skill_id = record(storage)
    record(storage, version="2.0.0", minutes=1)
    record(storage, name="beta")
    storage.catalogue.delete_version("team", "alpha", "1.0.0")
    assert [v.version for v in storage.catalogue.versions(skill_id)] == ["2.0.0"]
    storage.catalogue.delete_skill("team", "alpha")
    assert storage.catalogue.get_skill("team", "alpha") is None
    assert storage.catalogue.versions(skill_id) == []
    assert names(storage.catalogue.list_skills(readable=NONE, namespace=None, after=None,
                                               limit=10)) == ["team/beta"]
    storage.catalogue.delete_skill("team", "nobody")  # nothing to delete: no error


def test_clear_catalogue_forgets_skills_but_keeps_namespaces(storage: Storage) -> None:
    record(storage)
    storage.namespaces.ensure_namespace("vault", "private")
    storage.catalogue.clear_catalogue()
    assert storage.catalogue.count_skills(readable=frozenset({"vault"}), namespace=None) == 0
    assert storage.catalogue.catalogue_tags() == {}
    assert [n.name for n in storage.namespaces.list_namespaces()] == ["team", "vault"]
    assert storage.keyword.search(KeywordQuery(("alpha",)), filters=ALL, readable=NONE,
                                  limit=10) == []
    # The same skill recorded again after a rebuild is a fresh row.
    record(storage)
    assert skill(storage).latest_version == "1.0.0"


def test_lookups_by_text_with_a_nul_byte_find_nothing(storage: Storage) -> None:
    """Names and versions come from URLs; PostgreSQL's text cannot hold NUL (psycopg raises
    DataError), SQLite's can: either way such a lookup is a miss, never an error."""
    skill_id = record(storage)
    storage.users.add_user("ada")
    nul = "alpha\x00"
    assert storage.catalogue.get_skill("team", nul) is None
    assert storage.catalogue.get_skill("team\x00", "alpha") is None
    assert storage.catalogue.get_version(skill_id, "1.0.0\x00") is None
    assert storage.catalogue.find_by_name(nul, filters=ALL, readable=NONE) == []
    assert storage.catalogue.list_skills(readable=frozenset({"x\x00"}), namespace="team\x00",
                                         after=None, limit=5) == []
    assert storage.namespaces.get_namespace("team\x00") is None
    assert storage.namespaces.namespace("team\x00") is None
    assert storage.reports.get_report("team", nul, "1.0.0") is None
    assert storage.reports.verdicts("team", nul) == {}
    assert storage.users.user("ada\x00") is None
    assert storage.tokens.token("\x00" * 64) is None


def test_downloads_are_counted_and_added(storage: Storage) -> None:
    skill_id = record(storage)
    record(storage, name="beta")
    storage.catalogue.count_download(skill_id)
    storage.catalogue.add_downloads({("team", "alpha"): 4, ("team", "beta"): 2,
                                     ("team", "nobody"): 7})
    assert (skill(storage).downloads, skill(storage, name="beta").downloads) == (5, 2)


def test_catalogue_tags_name_every_version(storage: Storage) -> None:
    record(storage)
    record(storage, version="2.0.0")
    record(storage, "other", "beta")
    assert storage.catalogue.catalogue_tags() == {
        (ns, name, version): new_version(ns, name, version).tag_sha
        for ns, name, version in [("team", "alpha", "1.0.0"), ("team", "alpha", "2.0.0"),
                                  ("other", "beta", "1.0.0")]}


def _private_world(storage: Storage) -> None:
    for name in ("echo", "alpha", "delta", "bravo", "charlie"):
        record(storage, "team", name)
    record(storage, "vault", "secret")
    storage.namespaces.set_visibility("vault", "private")


def test_list_skills_pages_by_cursor_and_hides_unreadable_namespaces(
        storage: Storage) -> None:
    _private_world(storage)
    seen: list[str] = []
    after: tuple[str, str] | None = None
    while True:
        page = storage.catalogue.list_skills(readable=NONE, namespace=None, after=after,
                                             limit=2)
        if not page:
            break
        assert len(page) <= 2
        seen += names(page)
        after = (page[-1].namespace, page[-1].name)
    assert seen == ["team/alpha", "team/bravo", "team/charlie", "team/delta", "team/echo"]
    member = frozenset({"vault"})
    assert names(storage.catalogue.list_skills(readable=member, namespace=None,
                                               after=("team", "echo"), limit=5)) == [
        "vault/secret"]
    assert storage.catalogue.list_skills(readable=NONE, namespace="vault", after=None,
                                         limit=5) == []
    assert names(storage.catalogue.list_skills(readable=member, namespace="vault", after=None,
                                               limit=5)) == ["vault/secret"]
    assert storage.catalogue.count_skills(readable=NONE, namespace=None) == 5
    assert storage.catalogue.count_skills(readable=member, namespace=None) == 6
    assert storage.catalogue.count_skills(readable=NONE, namespace="vault") == 0
    assert storage.catalogue.count_skills(readable=member, namespace="vault") == 1


def _filter_world(storage: Storage) -> dict[str, int]:
    ids = {
        "charts": record(storage, "team", "charts", tags="Data, Charts", minutes=0),
        "chart": record(storage, "team", "chart", tags="chart", minutes=10),
        "other": record(storage, "other", "reader", tags="reading", minutes=20),
        "secret": record(storage, "vault", "secret", tags="data", minutes=30),
        "blocked": record(storage, "team", "blocked", tags="data", minutes=40),
    }
    storage.namespaces.set_visibility("vault", "private")
    assert storage.outcomes.change_trust("team", "blocked", "community", "blocked", "malware",
                                         "operator")
    assert storage.outcomes.change_trust("team", "chart", "community", "verified", "tests",
                                         "operator")
    storage.reports.save_report(new_report("team", "charts", verdict="caution"))
    storage.reports.save_report(new_report("other", "reader", verdict="safe"))
    return ids


FILTERS = [
    (SearchFilters(), NONE, {"charts", "chart", "other"}),
    (SearchFilters(), frozenset({"vault"}), {"charts", "chart", "other", "secret"}),
    (SearchFilters(namespace="team"), NONE, {"charts", "chart"}),
    (SearchFilters(namespace="vault"), NONE, set()),
    (SearchFilters(tag="data"), frozenset({"vault"}), {"charts", "secret"}),
    (SearchFilters(tag="CHARTS"), NONE, {"charts"}),  # a whole tag, any case
    (SearchFilters(tag="chart"), NONE, {"chart"}),
    (SearchFilters(trust="verified"), NONE, {"chart"}),
    (SearchFilters(trust="blocked"), NONE, {"blocked"}),
    (SearchFilters(verdict="caution"), NONE, {"charts"}),
    (SearchFilters(verdict="unchecked"), frozenset({"vault"}), {"chart", "secret"}),
    (SearchFilters(updated_since=at(10)), NONE, {"chart", "other"}),
    (SearchFilters(namespace="team", tag="data", verdict="caution"), NONE, {"charts"}),
]


@pytest.mark.parametrize(("filters", "readable", "expected"), FILTERS)
def test_skills_by_id_and_filtered_skills_apply_each_filter(
        storage: Storage, filters: SearchFilters, readable: frozenset[str],
        expected: set[str]) -> None:
    ids = _filter_world(storage)
    by_id = {v: k for k, v in ids.items()}
    found = storage.catalogue.skills_by_id([*ids.values(), 9_999], filters=filters,
                                           readable=readable)
    assert {by_id[i] for i in found} == expected
    assert all(found[i].id == i for i in found)
    assert {by_id[r.id] for r in storage.catalogue.filtered_skills(
        filters=filters, readable=readable)} == expected
    assert {by_id[i] for i in storage.catalogue.filtered_ids(
        filters=filters, readable=readable)} == expected


def test_browse_orders_pages_and_filters(storage: Storage) -> None:
    for i, name in enumerate(["delta", "alpha", "charlie", "bravo"]):
        record(storage, "team", name, minutes=i)
    record(storage, "vault", "secret", minutes=9)
    storage.namespaces.set_visibility("vault", "private")
    storage.catalogue.add_downloads({("team", "charlie"): 5, ("team", "delta"): 5,
                                     ("team", "bravo"): 1})

    def browse(order: str, offset: int = 0, limit: int = 10,
               readable: frozenset[str] = NONE, filters: SearchFilters = ALL) -> list[str]:
        return [r.name for r in storage.catalogue.browse(
            filters=filters, readable=readable, order=order, offset=offset, limit=limit)]

    assert browse("recent") == ["bravo", "charlie", "alpha", "delta"]
    # Equal installs: the more recently updated first.
    assert browse("installs") == ["charlie", "delta", "bravo", "alpha"]
    assert browse("name") == ["alpha", "bravo", "charlie", "delta"]
    assert browse("name", offset=1, limit=2) == ["bravo", "charlie"]
    assert browse("name", offset=4) == []
    assert browse("recent", readable=frozenset({"vault"}), limit=2) == ["secret", "bravo"]
    assert browse("name", filters=SearchFilters(updated_since=at(2))) == ["bravo", "charlie"]


def test_rated_and_unrated_skills(storage: Storage) -> None:
    for name in ("alpha", "bravo", "charlie", "delta"):
        record(storage, "team", name)
    storage.catalogue.add_downloads({("team", "delta"): 50_000, ("team", "charlie"): 20_000,
                                     ("team", "bravo"): 3})
    send(storage, [outcome("r1")], name="alpha")
    send(storage, [outcome("r2", "infra_error")], name="bravo")  # not counted: no totals
    assert names(storage.catalogue.rated_skills(filters=ALL, readable=NONE)) == ["team/alpha"]
    # Installs count up to INSTALLS_CAP only: charlie and delta rank alike, by name.
    assert names(storage.catalogue.unrated_skills(filters=ALL, readable=NONE, limit=10)) == [
        "team/charlie", "team/delta", "team/bravo"]
    assert names(storage.catalogue.unrated_skills(filters=ALL, readable=NONE, limit=1)) == [
        "team/charlie"]
    assert storage.catalogue.rated_skills(filters=SearchFilters(namespace="other"),
                                          readable=NONE) == []


def test_find_by_name_across_readable_namespaces(storage: Storage) -> None:
    record(storage, "team", "pdf-merge")
    record(storage, "other", "pdf-merge")
    record(storage, "vault", "pdf-merge")
    record(storage, "team", "pdf-merger")
    storage.namespaces.set_visibility("vault", "private")
    storage.catalogue.add_downloads({("other", "pdf-merge"): 3})
    assert names(storage.catalogue.find_by_name("pdf-merge", filters=ALL, readable=NONE)) == [
        "other/pdf-merge", "team/pdf-merge"]
    assert names(storage.catalogue.find_by_name(
        "pdf-merge", filters=SearchFilters(namespace="vault"),
        readable=frozenset({"vault"}))) == ["vault/pdf-merge"]
    assert storage.catalogue.find_by_name("pdf", filters=ALL, readable=NONE) == []


def test_the_catalogue_mark_moves_on_every_write_and_not_on_reads(storage: Storage) -> None:
    marks = [storage.catalogue.catalogue_mark()]

    def moved() -> bool:
        marks.append(storage.catalogue.catalogue_mark())
        return marks[-1] != marks[-2]

    record(storage)
    assert moved()
    storage.catalogue.list_skills(readable=NONE, namespace=None, after=None, limit=5)
    assert not moved()
    record(storage, version="2.0.0")  # same second, same skill count: still moves
    assert moved()
    record(storage, name="beta")
    assert moved()
    storage.catalogue.delete_skill("team", "beta")
    assert moved()
    storage.catalogue.clear_catalogue()
    assert moved()
    assert len(set(marks)) == len(marks) - 1  # every write a new mark


# -- reports ---------------------------------------------------------------------------------

def test_save_report_returns_the_verdict_it_replaced_and_keeps_a_history(
        storage: Storage) -> None:
    record(storage)
    assert storage.reports.save_report(new_report(verdict="safe")) is None
    assert storage.reports.save_report(new_report(verdict="caution", reason="health")) == "safe"
    assert storage.reports.save_report(new_report(verdict="caution")) == "caution"
    history = storage.reports.report_history("team", "alpha")
    assert [(h.version, h.old_verdict, h.new_verdict, h.pipeline, h.reason)
            for h in history] == [("1.0.0", None, "safe", "checks-1", "publish"),
                                  ("1.0.0", "safe", "caution", "checks-1", "health")]
    report = storage.reports.get_report("team", "alpha", "1.0.0")
    assert report is not None
    assert (report.verdict, report.report, report.pipeline) == (
        "caution", {"verdict": "caution", "findings": [{"rule": "R1", "line": 3}]}, "checks-1")
    assert storage.reports.get_report("team", "alpha", "9.9.9") is None
    assert skill(storage).verdict == "caution"


def test_the_skill_verdict_is_its_latest_versions(storage: Storage) -> None:
    record(storage)
    storage.reports.save_report(new_report(verdict="dangerous"))
    record(storage, version="2.0.0")
    assert skill(storage).verdict == "unchecked"
    storage.reports.save_report(new_report(version="2.0.0", verdict="safe"))
    assert skill(storage).verdict == "safe"
    assert storage.reports.verdicts("team", "alpha") == {"1.0.0": "dangerous", "2.0.0": "safe"}


def test_unchecked_versions_have_no_report_for_their_content(storage: Storage) -> None:
    record(storage)
    record(storage, version="2.0.0")
    record(storage, "other", "beta")
    storage.reports.save_report(new_report())  # 1.0.0, its content
    storage.reports.save_report(new_report(version="2.0.0", content="0" * 64))  # stale content
    assert storage.reports.unchecked_versions() == [("other", "beta", "1.0.0"),
                                                    ("team", "alpha", "2.0.0")]


def test_rule_exceptions(storage: Storage) -> None:
    storage.reports.set_exception("team", "alpha", "R2", "reviewed")
    storage.reports.set_exception("team", "alpha", "R1", "first")
    storage.reports.set_exception("team", "alpha", "R1", "second")  # replaces
    assert [(e.rule, e.reason) for e in storage.reports.exceptions("team", "alpha")] == [
        ("R1", "second"), ("R2", "reviewed")]
    assert storage.reports.delete_exception("team", "alpha", "R1") is True
    assert storage.reports.delete_exception("team", "alpha", "R1") is False
    assert [e.rule for e in storage.reports.exceptions("team", "alpha")] == ["R2"]
    assert storage.reports.exceptions("team", "beta") == []


# -- keyword search --------------------------------------------------------------------------

def search(storage: Storage, *words: str, prefix: bool = False, limit: int = 10,
           filters: SearchFilters = ALL, readable: frozenset[str] = NONE) -> list[str]:
    hits = storage.keyword.search(KeywordQuery(words, prefix), filters=filters,
                                  readable=readable, limit=limit)
    assert all(h.snippet == "" for h in hits)
    return [h.skill.name for h in hits]


def filler(storage: Storage, count: int = 6) -> None:
    """Skills sharing no word with the tests' queries (so that a query's words are rare,
    as in a real catalogue, and relevance is not flattened)."""
    for i in range(count):
        record(storage, "misc", f"filler-{i}", description="Keeps the garden tidy.",
               tags="garden", body="Waters the plants every morning.")


def test_every_word_matches_before_any_word(storage: Storage) -> None:
    record(storage, name="invoice-tool", description="Invoice helper for invoices.",
           body="Reads an invoice.")
    record(storage, name="paperwork", description="Office helper.",
           body="Turns an invoice into a pdf.")
    record(storage, name="pdf-tools", description="PDF things.", body="")
    filler(storage)
    found = search(storage, "invoice", "pdf")
    assert found[0] == "paperwork" and sorted(found[1:]) == ["invoice-tool", "pdf-tools"]
    assert search(storage, "invoice", "pdf", limit=1) == ["paperwork"]


def test_the_name_outranks_the_description_and_the_body(storage: Storage) -> None:
    record(storage, name="books", description="Bookkeeping.", body="Reads the ledger.")
    record(storage, name="ledger-sync", description="Syncs accounts.", body="")
    record(storage, name="accounts", description="Keeps a ledger of accounts.", body="")
    filler(storage)
    assert search(storage, "ledger") == ["ledger-sync", "accounts", "books"]
    hits = storage.keyword.search(KeywordQuery(("ledger",)), filters=ALL, readable=NONE,
                                  limit=10)
    assert hits[0].score > hits[1].score > hits[2].score


def test_prefix_matching_for_search_as_you_type(storage: Storage) -> None:
    record(storage, name="spreadsheet-merge", description="Merges sheets.")
    record(storage, name="csv-trend-chart", description="Turns a sales CSV into a chart.")
    assert search(storage, "spreadsh", prefix=True) == ["spreadsheet-merge"]
    assert search(storage, "spreadsh") == []
    assert search(storage, "csv", "tre", prefix=True) == ["csv-trend-chart"]
    assert search(storage, "charts") == ["csv-trend-chart"]  # stems: charts -> chart


def test_operators_are_searched_as_words(storage: Storage) -> None:
    record(storage, name="near-or-and", description="NEAR OR AND NOT are words here.")
    record(storage, name="other", description="Something else.")
    filler(storage)
    assert search(storage, "near", "or", "and") == ["near-or-and"]
    assert search(storage, "near", "words") == ["near-or-and"]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_never_raises(storage: Storage, text: str) -> None:
    record(storage, name="csv-trend-chart", description="Turns a sales CSV into a chart.",
           body="Read the csv, group by month, plot.")
    record(storage, name="near-or-and", description="NEAR OR AND NOT are words here.")
    ids = [skill(storage, name=n).id for n in ("csv-trend-chart", "near-or-and")]
    for prefix in (False, True):
        query = parse(text, prefix=prefix)
        storage.keyword.search(query, filters=ALL, readable=NONE, limit=10)
        storage.keyword.snippets(query, ids)


# Words as a caller may build them without `parse`: each is still one word to the backend.
RAW_WORDS = ['"', "'", 'a"b', "it's", "near(", "(", ")", "*", "a*", ":*", "csv:*", "name:csv",
             "{name", "-csv", "+csv", "^a", "!", "&", "|", "<->", "a & b | !c", "a<2>b",
             "%_\\", "\\", "'; drop table skills; --", "日本語", "x" * 2_000, " ", ""]


@pytest.mark.parametrize("word", RAW_WORDS, ids=range(len(RAW_WORDS)))
def test_a_word_with_query_syntax_is_only_a_word(storage: Storage, word: str) -> None:
    record(storage, name="csv-trend-chart", description="Turns a sales CSV into a chart.")
    skill_id = skill(storage, name="csv-trend-chart").id
    for words in ((word,), ("csv", word), (word, "csv")):
        for prefix in (False, True):
            query = KeywordQuery(words, prefix)
            found = storage.keyword.search(query, filters=ALL, readable=NONE, limit=10)
            assert [h.skill.name for h in found] in ([], ["csv-trend-chart"])
            storage.keyword.snippets(query, [skill_id])


def test_snippets_highlight_the_matched_words_of_matching_skills_only(
        storage: Storage) -> None:
    hit = record(storage, name="csv-trend-chart", description="Turns a sales CSV into a chart.",
                 body="Read the csv, group by month, plot.")
    miss = record(storage, name="pdf-merge", description="Merges PDF files.")
    snippets = storage.keyword.snippets(KeywordQuery(("csv", "month")), [hit, miss, 9_999])
    assert set(snippets) == {hit}
    text = snippets[hit]
    assert f"{HIGHLIGHT_START}csv{HIGHLIGHT_END}" in text.lower()
    assert text.count(HIGHLIGHT_START) == text.count(HIGHLIGHT_END) >= 1
    prefixed = storage.keyword.snippets(KeywordQuery(("mon",), prefix=True), [hit])
    assert f"{HIGHLIGHT_START}month{HIGHLIGHT_END}" in prefixed[hit]
    assert storage.keyword.snippets(KeywordQuery(("csv",)), []) == {}
    assert storage.keyword.snippets(KeywordQuery(()), [hit]) == {}


def test_search_applies_filters_and_readable_namespaces(storage: Storage) -> None:
    record(storage, "team", "payroll-export", description="Exports payroll.")
    record(storage, "vault", "payroll-bank", description="Sends payroll to the bank.")
    record(storage, "team", "payroll-evil", description="Payroll stealer.")
    storage.namespaces.set_visibility("vault", "private")
    storage.outcomes.change_trust("team", "payroll-evil", "community", "blocked", "malware",
                                  "operator")
    assert search(storage, "payroll") == ["payroll-export"]
    assert sorted(search(storage, "payroll", readable=frozenset({"vault"}))) == [
        "payroll-bank", "payroll-export"]
    assert search(storage, "payroll", readable=frozenset({"vault"}),
                  filters=SearchFilters(namespace="vault")) == ["payroll-bank"]
    assert search(storage, "payroll", filters=SearchFilters(trust="blocked")) == [
        "payroll-evil"]
    assert search(storage, "payroll", filters=SearchFilters(verdict="safe")) == []


def test_search_limits_and_orders_many_matches(storage: Storage) -> None:
    for i in range(12):
        record(storage, name=f"report-{i:02d}", description="Builds a report." + " x" * i)
    hits = storage.keyword.search(KeywordQuery(("report",)), filters=ALL, readable=NONE,
                                  limit=5)
    assert len(hits) == 5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert search(storage) == []


def test_the_index_follows_the_latest_version_and_deletions(storage: Storage) -> None:
    record(storage, name="alpha", body="Mentions zebras.")
    assert search(storage, "zebra") == ["alpha"]
    record(storage, name="alpha", version="2.0.0", body="Mentions giraffes.", minutes=1)
    assert search(storage, "zebra") == []
    assert search(storage, "giraffe") == ["alpha"]
    record(storage, name="alpha", version="1.5.0", body="Mentions zebras.", latest=False)
    assert search(storage, "zebra") == []
    storage.catalogue.delete_skill("team", "alpha")
    assert search(storage, "giraffe") == []


def test_search_works_while_background_work_starts(storage: Storage) -> None:
    record(storage, name="alpha", description="An alpha skill.")
    storage.keyword.start()
    assert search(storage, "alpha") == ["alpha"]


# -- vectors ---------------------------------------------------------------------------------

def test_vectors_by_text_digest_keep_the_first(storage: Storage) -> None:
    assert storage.vectors.get_vector("a" * 64) is None
    storage.vectors.save_vectors([("a" * 64, "model-a", b"\x01" * 8),
                                  ("b" * 64, "model-a", b"\x02" * 8)])
    storage.vectors.save_vectors([("a" * 64, "model-b", b"\x09" * 8)])
    assert storage.vectors.get_vector("a" * 64) == b"\x01" * 8
    assert storage.vectors.get_vector("b" * 64) == b"\x02" * 8


def test_embed_jobs_are_skills_whose_text_has_no_vector(storage: Storage) -> None:
    alpha = record(storage, name="alpha", description="First.", tags="a, b",
                   body="Alpha body.", embed="a" * 64)
    beta = record(storage, name="beta", embed="b" * 64)
    record(storage, name="gamma")  # no embedding wanted
    jobs = storage.vectors.embed_jobs()
    assert [(j.skill_id, j.embed_sha256) for j in jobs] == [(alpha, "a" * 64), (beta, "b" * 64)]
    assert (jobs[0].name, jobs[0].description, jobs[0].tags, jobs[0].body) == (
        "alpha", "First.", "a, b", "Alpha body.")
    assert [j.skill_id for j in storage.vectors.embed_jobs(limit=1)] == [alpha]
    assert storage.vectors.skill_text(alpha) == jobs[0]
    assert storage.vectors.skill_text(9_999) is None
    assert list(storage.vectors.skill_vectors()) == []

    storage.vectors.save_vectors([("a" * 64, "m", b"\x01" * 8)])
    assert [j.skill_id for j in storage.vectors.embed_jobs()] == [beta]
    assert list(storage.vectors.skill_vectors()) == [(alpha, b"\x01" * 8)]
    # A new latest text needs a new vector; the old one stays for whoever has that text.
    record(storage, name="alpha", version="2.0.0", body="New body.", embed="c" * 64, minutes=1)
    assert [j.skill_id for j in storage.vectors.embed_jobs()] == [alpha, beta]
    assert list(storage.vectors.skill_vectors()) == []


def test_stale_vectors_are_found_and_restamped_at_once(storage: Storage) -> None:
    """Vectors another model (or text recipe) made are found; restamping stores the new
    vector and points the skill at it in one step, and moves the vectors mark."""
    alpha = record(storage, name="alpha", description="First.", embed="a" * 64)
    beta = record(storage, name="beta", embed="b" * 64)
    gamma = record(storage, name="gamma", embed="c" * 64)
    storage.vectors.save_vectors([("a" * 64, "old", b"\x01" * 8), ("b" * 64, "new", b"\x02" * 8)])
    stale = storage.vectors.stale_vectors("new")  # gamma has no vector: an embed job instead
    assert [(j.skill_id, j.name, j.description, j.embed_sha256) for j in stale] == [
        (alpha, "alpha", "First.", "a" * 64)]
    assert storage.vectors.stale_vectors("other", limit=1)[0].skill_id == alpha
    mark = storage.vectors.vectors_mark()
    storage.vectors.restamp_vectors([(alpha, "d" * 64, "new", b"\x03" * 8)])
    assert storage.vectors.stale_vectors("new") == []
    assert storage.vectors.get_vector("d" * 64) == b"\x03" * 8
    assert storage.vectors.get_vector("a" * 64) == b"\x01" * 8  # kept for its text
    job = storage.vectors.skill_text(alpha)
    assert job is not None and job.embed_sha256 == "d" * 64
    assert sorted(storage.vectors.skill_vectors()) == [(alpha, b"\x03" * 8), (beta, b"\x02" * 8)]
    assert storage.vectors.vectors_mark() != mark
    assert (alpha, b"\x03" * 8) in storage.vectors.vectors_since("~", mark[2])
    assert [j.skill_id for j in storage.vectors.embed_jobs()] == [gamma]
    storage.vectors.restamp_vectors([])


def test_vectors_since_and_the_vectors_mark(storage: Storage) -> None:
    alpha = record(storage, name="alpha", embed="a" * 64, minutes=0)
    beta = record(storage, name="beta", embed="b" * 64, minutes=10)
    marks = [storage.vectors.vectors_mark()]
    storage.vectors.save_vectors([("a" * 64, "m", b"\x01" * 8)])
    marks.append(storage.vectors.vectors_mark())
    assert marks[-1] != marks[-2]
    epoch, newest, rowid = marks[-1]
    assert newest == at(10)
    assert storage.vectors.vectors_since(at(11), rowid) == []
    storage.vectors.save_vectors([("b" * 64, "m", b"\x02" * 8)])
    assert storage.vectors.vectors_since(at(11), rowid) == [(beta, b"\x02" * 8)]
    assert sorted(storage.vectors.vectors_since(at(0), rowid)) == [(alpha, b"\x01" * 8),
                                                                   (beta, b"\x02" * 8)]
    marks.append(storage.vectors.vectors_mark())
    record(storage, name="alpha", version="2.0.0", embed="b" * 64, minutes=20)
    marks.append(storage.vectors.vectors_mark())
    assert marks[-1] != marks[-2] and marks[-1][1] == at(20)
    storage.catalogue.clear_catalogue()
    marks.append(storage.vectors.vectors_mark())
    assert marks[-1][0] != marks[-2][0]  # a rebuild moves the epoch
    assert storage.vectors.vectors_mark() == marks[-1]


# -- outcomes --------------------------------------------------------------------------------

def test_outcomes_are_recorded_once_per_reporter_and_id(storage: Storage) -> None:
    record(storage)
    batch = [outcome("r1"), outcome("r2", "failure"), outcome("r3", "infra_error")]
    assert send(storage, batch) == batch
    assert send(storage, batch) == []
    stats = storage.outcomes.version_stats("team", "alpha")["1.0.0"]
    assert (stats.successes, stats.failures, stats.infra_errors) == (1, 1, 1)
    other = outcome("r1", reporter="reporter-2")  # the same id from another reporter
    assert send(storage, [other, other]) == [other]
    stats = storage.outcomes.version_stats("team", "alpha")["1.0.0"]
    assert (stats.successes, stats.failures, stats.infra_errors) == (2, 1, 1)


def test_outcome_guards_discount_authors_repeated_tasks_and_capped_clients(
        storage: Storage) -> None:
    record(storage)
    storage.outcomes.add_authors("team", "alpha", "1.0.0", ["tok-a", "user:7", "tok-a"])
    storage.outcomes.add_authors("team", "alpha", "2.0.0", ["tok-b"])
    assert storage.outcomes.authors("team", "alpha") == {
        "1.0.0": frozenset({"tok-a", "user:7"}), "2.0.0": frozenset({"tok-b"})}
    assert storage.outcomes.authors("team", "nobody") == {}
    batch = [replace(outcome("a1"), discount="author"),
             replace(outcome("t1", client="c1"), task_key="k"),
             replace(outcome("t2", client="c2"), task_key="k"),             # repeated task
             replace(outcome("t3", reporter="reporter-2"), task_key="k"),   # another token
             replace(outcome("t4", version="2.0.0"), task_key="k"),         # another version
             *[outcome(f"c{i}", client="flood") for i in range(4)]]         # cap 3
    fresh = storage.outcomes.record_outcomes("team", "alpha", batch, decay=no_decay, ema=ema,
                                             client_cap=3)
    assert [r.discount for r in fresh] == [
        "author", None, "repeat_task", None, None, None, None, None, "client_cap"]
    one = storage.outcomes.version_stats("team", "alpha")["1.0.0"]
    assert (one.successes, one.discounted) == (5, 3)
    # Later batches see what came before; a resent id is not judged again.
    later = [replace(outcome("t5"), task_key="k"), outcome("c9", client="flood"),
             replace(outcome("t1", client="c1"), task_key="k")]
    fresh = storage.outcomes.record_outcomes("team", "alpha", later, decay=no_decay, ema=ema,
                                             client_cap=3)
    assert [(r.report_id, r.discount) for r in fresh] == [("t5", "repeat_task"),
                                                          ("c9", "client_cap")]
    one = storage.outcomes.version_stats("team", "alpha")["1.0.0"]
    assert (one.successes, one.discounted) == (5, 5)
    assert storage.outcomes.version_stats("team", "alpha")["2.0.0"].successes == 1
    # Discounted reports count nowhere: not in the totals ranking reads, nor the days.
    totals = storage.outcomes.outcome_totals([("team", "alpha")])[("team", "alpha")]
    assert sorted(s for s, _, _ in totals) == [1.0, 5.0]
    days = storage.outcomes.outcome_days("team", "alpha", "2000-01-01")
    assert sorted((v, s) for v, _, s, _ in days) == [("1.0.0", 5), ("2.0.0", 1)]


def test_a_batch_is_all_or_nothing(storage: Storage) -> None:
    record(storage)
    batch = [outcome(f"r{i}", version=v, client=f"c{i}")
             for i, v in enumerate(["1.0.0", "1.0.0", "2.0.0", "2.0.0"])]
    calls = 0

    def failing(previous: float | None, success: bool) -> float:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("the fold failed half way")
        return ema(previous, success)

    with pytest.raises(RuntimeError):
        storage.outcomes.record_outcomes("team", "alpha", batch, decay=no_decay, ema=failing)
    assert storage.outcomes.version_stats("team", "alpha") == {}
    assert storage.outcomes.outcome_days("team", "alpha", "2026-01-01") == []
    assert storage.outcomes.success_clients("team", "alpha") == 0
    assert storage.outcomes.outcome_totals([("team", "alpha")]) == {}
    assert send(storage, batch) == batch  # nothing of the failed batch was kept


def test_version_stats_fold_counts_scores_ema_and_the_last_report(storage: Storage) -> None:
    record(storage)
    send(storage, [outcome("r1", score=0.5, when=T0),
                   outcome("r2", "failure", score=1.0, when=T0 + timedelta(hours=2)),
                   outcome("r3", "infra_error", when=T0 + timedelta(hours=5)),
                   outcome("r4", version="2.0.0", when=T0 + timedelta(hours=1))])
    stats = storage.outcomes.version_stats("team", "alpha")
    assert set(stats) == {"1.0.0", "2.0.0"}
    one = stats["1.0.0"]
    assert (one.version, one.successes, one.failures, one.infra_errors) == ("1.0.0", 1, 1, 1)
    assert one.score_mean == pytest.approx(0.75)
    assert one.ema == pytest.approx(ema(ema(None, True), False))
    assert one.last_at == (T0 + timedelta(hours=2)).isoformat()  # infra errors do not count
    two = stats["2.0.0"]
    assert (two.successes, two.score_mean, two.ema) == (1, None, pytest.approx(ema(None, True)))
    assert storage.outcomes.version_stats("team", "nobody") == {}


def test_outcome_days_are_per_utc_day_and_version(storage: Storage) -> None:
    record(storage)
    late = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    send(storage, [outcome("r1", when=late), outcome("r2", "failure", when=late),
                   outcome("r3", when=late + timedelta(hours=1)),  # the next UTC day
                   outcome("r4", "infra_error", when=late),
                   outcome("r5", version="2.0.0", when=late)])
    assert sorted(storage.outcomes.outcome_days("team", "alpha", "2026-03-01")) == [
        ("1.0.0", "2026-03-01", 1, 1), ("1.0.0", "2026-03-02", 1, 0),
        ("2.0.0", "2026-03-01", 1, 0)]
    assert storage.outcomes.outcome_days("team", "alpha", "2026-03-02") == [
        ("1.0.0", "2026-03-02", 1, 0)]
    send(storage, [outcome("r6", when=late)])
    assert ("1.0.0", "2026-03-01", 2, 1) in storage.outcomes.outcome_days(
        "team", "alpha", "2026-03-01")


def test_success_clients_count_distinct_clients_with_a_success(storage: Storage) -> None:
    record(storage)
    send(storage, [outcome("r1", client="a"), outcome("r2", client="a"),
                   outcome("r3", "failure", client="b"), outcome("r4", "infra_error", client="c"),
                   outcome("r5", version="2.0.0", client="d")])
    assert storage.outcomes.success_clients("team", "alpha") == 2
    send(storage, [outcome("r6", client="b")])
    assert storage.outcomes.success_clients("team", "alpha") == 3
    assert storage.outcomes.success_clients("team", "nobody") == 0


def test_outcome_totals_decay_to_the_newest_report(storage: Storage) -> None:
    record(storage)
    record(storage, name="beta")
    send(storage, [outcome("r1", when=T0), outcome("r2", when=T0 + timedelta(hours=1)),
                   outcome("r3", "infra_error", when=T0 + timedelta(hours=9))],
         decay=hourly_half_life)
    [(s, f, as_of)] = storage.outcomes.outcome_totals([("team", "alpha")])[("team", "alpha")]
    assert (s, f, as_of) == (pytest.approx(1.5), pytest.approx(0.0),
                             (T0 + timedelta(hours=1)).isoformat())
    send(storage, [outcome("r4", "failure", when=T0 + timedelta(hours=2))],
         decay=hourly_half_life)
    send(storage, [outcome("r5", version="2.0.0", when=T0)], name="beta")
    totals = storage.outcomes.outcome_totals([("team", "alpha"), ("team", "beta"),
                                              ("team", "nobody")])
    assert set(totals) == {("team", "alpha"), ("team", "beta")}
    [(s, f, as_of)] = totals[("team", "alpha")]
    assert (s, f, as_of) == (pytest.approx(0.75), pytest.approx(1.0),
                             (T0 + timedelta(hours=2)).isoformat())
    assert totals[("team", "beta")] == [(pytest.approx(1.0), pytest.approx(0.0), T0.isoformat())]
    many = storage.outcomes.outcome_totals([("team", f"s{i}") for i in range(500)]
                                           + [("team", "alpha")])
    assert set(many) == {("team", "alpha")}


def test_task_stats_group_counted_reports_per_task_and_skip_the_rest(
        storage: Storage) -> None:
    record(storage)
    record(storage, name="beta")
    t1 = T0 + timedelta(hours=2)
    send(storage, [replace(outcome("a"), task_key="k1"),
                   replace(outcome("b", "failure", reporter="reporter-2", when=t1),
                           task_key="k1"),
                   replace(outcome("c", version="2.0.0"), task_key="k1"),  # another version
                   replace(outcome("d"), task_key="k2"),
                   replace(outcome("e"), task_key="k1"),                   # repeat: not counted
                   replace(outcome("f", "infra_error"), task_key="k3"),    # never counts
                   replace(outcome("g"), task_key="k4", discount="author"),
                   outcome("h")])                                          # no task
    send(storage, [replace(outcome("x"), task_key="k1")], name="beta")
    found = storage.outcomes.task_stats([("team", "alpha"), ("team", "beta"),
                                         ("team", "nobody")])
    assert set(found) == {("team", "alpha"), ("team", "beta")}
    alpha = {t.task_key: t for t in found[("team", "alpha")]}
    assert {k: (t.successes, t.failures, t.reporters) for k, t in alpha.items()} == {
        "k1": (2, 1, 2), "k2": (1, 0, 1)}
    mean = (T0.timestamp() * 2 + t1.timestamp()) / 3
    assert alpha["k1"].mean_at == pytest.approx(mean, abs=1.0)
    assert [(t.task_key, t.successes) for t in found[("team", "beta")]] == [("k1", 1)]
    many = storage.outcomes.task_stats([("team", f"s{i}") for i in range(450)]
                                       + [("team", "beta")])
    assert set(many) == {("team", "beta")}


def test_task_vectors_are_kept_per_model_and_never_replaced(storage: Storage) -> None:
    v1, v2 = struct.pack("<3f", 1, 0, 0), struct.pack("<3f", 0, 1, 0)
    assert storage.outcomes.task_vectors("m1", ["k1"]) == {}
    storage.outcomes.save_task_vectors("m1", [TaskVector("k1", v1, "a task"),
                                              TaskVector("k2", v2, None)])
    storage.outcomes.save_task_vectors("m1", [TaskVector("k1", v2, "changed")])  # kept
    storage.outcomes.save_task_vectors("m2", [TaskVector("k1", v2, "other model")])
    storage.outcomes.save_task_vectors("m1", [])
    assert storage.outcomes.task_vectors("m1", ["k1", "k2", "k3", "k1"]) == {
        "k1": TaskVector("k1", v1, "a task"), "k2": TaskVector("k2", v2, None)}
    assert storage.outcomes.task_vectors("m2", ["k1"])["k1"].label == "other model"
    assert storage.outcomes.task_vectors("m1", []) == {}


def test_trust_is_compare_and_set_with_events(storage: Storage) -> None:
    record(storage)
    assert storage.outcomes.trust_of("team", "alpha") == "community"
    assert storage.outcomes.change_trust("team", "alpha", "community", "verified", "tests",
                                         "operator") is True
    assert storage.outcomes.change_trust("team", "alpha", "community", "trusted", "late",
                                         "loop") is False
    assert storage.outcomes.change_trust("team", "alpha", "verified", "trusted", "outcomes",
                                         "loop") is True
    assert storage.outcomes.trust_of("team", "alpha") == "trusted"
    assert skill(storage).trust == "trusted"
    events = storage.outcomes.trust_events("team", "alpha")
    assert [(e.old, e.new, e.reason, e.actor) for e in events] == [
        ("verified", "trusted", "outcomes", "loop"), ("community", "verified", "tests",
                                                      "operator")]
    assert len(storage.outcomes.trust_events("team", "alpha", limit=1)) == 1
    with pytest.raises(ValueError):
        storage.outcomes.change_trust("team", "alpha", "trusted", "sainted", "x", "y")


def test_trust_outlives_a_rebuild_of_the_catalogue(storage: Storage) -> None:
    record(storage)
    storage.outcomes.change_trust("team", "alpha", "community", "quarantined", "x", "operator")
    storage.catalogue.clear_catalogue()
    record(storage)
    assert skill(storage).trust == "quarantined"


def test_health_is_recorded_when_it_changes(storage: Storage) -> None:
    record(storage)
    assert storage.outcomes.health("team", "alpha") == {}
    assert storage.outcomes.set_health("team", "alpha", "1.0.0", "healthy", "fine") is False
    assert storage.outcomes.set_health("team", "alpha", "1.0.0", "deprecated", "fails") is True
    assert storage.outcomes.set_health("team", "alpha", "1.0.0", "deprecated", "again") is False
    assert storage.outcomes.health("team", "alpha") == {"1.0.0": ("deprecated", "fails")}
    assert storage.outcomes.set_health("team", "alpha", "1.0.0", "healthy", "recovered") is True
    assert storage.outcomes.health("team", "alpha") == {"1.0.0": ("healthy", "recovered")}


# -- proposals and canaries ------------------------------------------------------------------

def proposal(pid: str, *, proposer: str = "p1", content: str = "c1", name: str = "alpha",
             minutes: float = 0) -> ProposalRow:
    return ProposalRow(
        id=pid, namespace="team", name=name, base_version="1.0.0", applies_to="1.0.0",
        status="open", proposer=proposer, proposer_namespace="agents",
        edits=[{"path": "SKILL.md", "old": "a", "new": "b"}], evidence={"runs": 3},
        reasoning="Clearer.", content_sha256=sha(content), commit_sha="c" * 40,
        tree_sha="d" * 40, verdict="safe", report={"verdict": "safe"}, support=1,
        created_at=at(minutes))


def test_proposals_are_added_supported_and_decided_once(storage: Storage) -> None:
    storage.proposals.add_proposal(proposal("p-1"))
    assert storage.proposals.get_proposal("p-1") == proposal("p-1")
    assert storage.proposals.get_proposal("nope") is None
    assert storage.proposals.add_support("p-1", "p1", {}) is False  # the proposer counted
    assert storage.proposals.add_support("p-1", "p2", {"runs": 1}) is True
    assert storage.proposals.add_support("p-1", "p2", {"runs": 2}) is False
    supported = storage.proposals.get_proposal("p-1")
    assert supported is not None and supported.support == 2
    like = storage.proposals.open_proposal_like("team", "alpha", sha("c1"))
    assert like is not None and like.id == "p-1"
    assert storage.proposals.open_proposal_like("team", "alpha", sha("c2")) is None
    assert storage.proposals.decide_proposal("p-1", "accepted", "lead", "thanks",
                                             "1.1.0") is True
    assert storage.proposals.decide_proposal("p-1", "rejected", "other", "no", None) is False
    decided = storage.proposals.get_proposal("p-1")
    assert decided is not None
    assert (decided.status, decided.decided_by, decided.comment, decided.version) == (
        "accepted", "lead", "thanks", "1.1.0")
    assert decided.decided_at is not None
    assert storage.proposals.open_proposal_like("team", "alpha", sha("c1")) is None


def test_proposals_are_listed_newest_first_with_filters(storage: Storage) -> None:
    storage.proposals.add_proposal(proposal("p-1", minutes=0))
    storage.proposals.add_proposal(proposal("p-2", proposer="p2", content="c2", minutes=1))
    storage.proposals.add_proposal(proposal("p-3", name="beta", content="c3", minutes=2))
    storage.proposals.decide_proposal("p-1", "rejected", "lead", "no", None)

    def ids(**kwargs: Any) -> list[str]:
        return [p.id for p in storage.proposals.proposals("team", **kwargs)]

    assert ids() == ["p-3", "p-2", "p-1"]
    assert ids(name="alpha") == ["p-2", "p-1"]
    assert ids(status="open") == ["p-3", "p-2"]
    assert ids(proposer="p2") == ["p-2"]
    assert ids(limit=1) == ["p-3"]
    assert storage.proposals.proposals("other") == []


def test_canaries_supersede_and_finish_once(storage: Storage) -> None:
    storage.proposals.start_canary("team", "alpha", "1.1.0", "1.0.0", 0.1)
    storage.proposals.start_canary("team", "alpha", "1.2.0", "1.0.0", 0.2)
    first, second = storage.proposals.canaries("team", "alpha")[::-1]
    assert isinstance(first, CanaryRow)
    assert (first.version, first.state) == ("1.1.0", "superseded")
    assert first.decided_at is not None
    assert (second.version, second.stable_version, second.share, second.state,
            second.decided_at, second.decision) == ("1.2.0", "1.0.0", pytest.approx(0.2),
                                                    "active", None, None)
    assert storage.proposals.finish_canary("team", "alpha", "1.2.0", "promoted",
                                           {"wins": 30}) is True
    assert storage.proposals.finish_canary("team", "alpha", "1.2.0", "rolled_back",
                                           {}) is False
    latest = storage.proposals.canaries("team", "alpha")[0]
    assert (latest.version, latest.state, latest.decision) == ("1.2.0", "promoted",
                                                               {"wins": 30})
    assert storage.proposals.canaries("team", "beta") == []


# -- accounts, lightly -----------------------------------------------------------------------

def test_users_share_one_space_of_names_with_orgs_and_namespaces(storage: Storage) -> None:
    ada = storage.users.add_user("ada", display_name="Ada", email="ada@example.org",
                                 oidc=("https://id.example", "sub-1"))
    assert storage.users.user("ada") == ada == storage.users.user_by_id(ada.id)
    assert storage.users.user_by_oidc("https://id.example", "sub-1") == ada
    info = storage.namespaces.namespace("ada")  # a person's own namespace
    assert info is not None and info.owner_user == ada.id
    storage.users.add_user("acme.ci", kind="service", personal_namespace=False)
    assert storage.namespaces.namespace("acme.ci") is None
    storage.orgs.add_org("acme", ada.id)
    storage.namespaces.ensure_namespace("loose")
    for name in ("ada", "acme", "loose"):
        assert storage.users.name_taken(name)
    assert not storage.users.name_taken("free")
    assert [u.username for u in storage.users.users("service")] == ["acme.ci"]
    storage.users.set_operator(ada.id, True)
    storage.users.set_password(ada.id, "hash")
    again = storage.users.user("ada")
    assert again is not None and (again.is_operator, again.password_hash) == (True, "hash")


def test_orgs_members_and_roles(storage: Storage) -> None:
    lead = storage.users.add_user("lead")
    bob = storage.users.add_user("bob")
    storage.orgs.add_org("acme", lead.id, "Acme Inc.")
    assert storage.orgs.org_exists("acme") and not storage.orgs.org_exists("nope")
    info = storage.namespaces.namespace("acme")
    assert info is not None and info.owner_org == "acme"
    assert storage.orgs.set_member("acme", bob.id, "publisher") is True
    assert [(m.username, m.role) for m in storage.orgs.members("acme")] == [
        ("bob", "publisher"), ("lead", "owner")]
    assert storage.orgs.member_role("acme", bob.id) == "publisher"
    assert storage.orgs.orgs_of(bob.id) == [("acme", "publisher")]
    assert storage.orgs.roles_of(bob.id) == {"acme": "publisher", "bob": "owner"}
    assert storage.orgs.roles_of(lead.id) == {"acme": "owner", "lead": "owner"}
    with pytest.raises(KeepOwner):
        storage.orgs.remove_member("acme", lead.id)
    assert storage.orgs.member_role("acme", lead.id) == "owner"  # rolled back
    assert storage.orgs.remove_member("acme", bob.id) is True
    assert storage.orgs.remove_member("acme", bob.id) is False
    storage.orgs.delete_org("acme")
    info = storage.namespaces.namespace("acme")
    assert info is not None and (info.owner_org, info.visibility) == (None, "private")


def test_tokens(storage: Storage) -> None:
    ada = storage.users.add_user("ada")
    token_id = storage.tokens.add_token(ada.id, "f" * 64, "shub_ab", "ci", ["write", "read"],
                                        ["ada"], "2027-01-01T00:00:00+00:00")
    row = storage.tokens.token("f" * 64)
    assert row is not None and row == storage.tokens.token_by_id(token_id)
    assert (row.user_id, row.username, row.prefix, row.label, row.scopes, row.namespaces,
            row.expires_at, row.revoked_at) == (
        ada.id, "ada", "shub_ab", "ci", frozenset({"read", "write"}), frozenset({"ada"}),
        "2027-01-01T00:00:00+00:00", None)
    storage.tokens.touch_token(token_id, at(3))
    touched = storage.tokens.token_by_id(token_id)
    assert touched is not None and touched.last_used_at == at(3)
    assert [t.id for t in storage.tokens.tokens([ada.id])] == [token_id]
    assert storage.tokens.revoke_token(token_id) is True
    assert storage.tokens.revoke_token(token_id) is False
    assert storage.tokens.token("0" * 64) is None


def test_sessions_and_flows(storage: Storage) -> None:
    ada = storage.users.add_user("ada")
    storage.sessions.add_session("s" * 64, ada.id, "csrf", "2099-01-01T00:00:00+00:00",
                                 "127.0.0.1", "agent")
    assert storage.sessions.session("s" * 64) == (ada.id, "csrf", "2099-01-01T00:00:00+00:00")
    storage.sessions.delete_session("s" * 64)
    assert storage.sessions.session("s" * 64) is None
    storage.sessions.add_flow("state-1", "oidc", {"nonce": "n"}, "2099-01-01T00:00:00+00:00")
    storage.sessions.add_flow("state-2", "oidc", {}, "2000-01-01T00:00:00+00:00")
    assert storage.sessions.take_flow("state-1", "signin") is None  # another kind
    storage.sessions.add_flow("state-3", "oidc", {"nonce": "m"}, "2099-01-01T00:00:00+00:00")
    assert storage.sessions.take_flow("state-3", "oidc") == {"nonce": "m"}
    assert storage.sessions.take_flow("state-3", "oidc") is None
    assert storage.sessions.take_flow("state-2", "oidc") is None  # expired


def test_releases_and_audit(storage: Storage) -> None:
    ada = storage.users.add_user("ada")
    row = ReleaseRow(id="rel-1", namespace="ada", name="alpha", version="1.0.0",
                     state="pending", author_id=ada.id, author="ada", commit_sha="c" * 40,
                     tree_sha="d" * 40, content_sha256="e" * 64, verdict="safe",
                     report={"verdict": "safe"}, created_at=at(0), decided_at=None,
                     decided_by=None, comment=None)
    storage.releases.add_release(row)
    assert storage.releases.release("rel-1") == row
    assert storage.releases.pending_release("ada", "alpha", "1.0.0") == row
    assert [r.id for r in storage.releases.releases(["ada"])] == ["rel-1"]
    assert storage.releases.releases([]) == []
    assert storage.releases.decide_release("rel-1", "approved", "lead", "ok") is True
    assert storage.releases.decide_release("rel-1", "rejected", "lead", "no") is False
    assert storage.releases.pending_release("ada", "alpha", "1.0.0") is None
    assert [r.state for r in storage.releases.releases(["ada"], state=None)] == ["approved"]

    for action in ("signin", "token.create", "signin"):
        storage.audit.audit(NewAudit(actor="ada", actor_id=ada.id, action=action, target="ada",
                                     org=None, namespace="ada", address="127.0.0.1",
                                     user_agent="agent", request_id="req", detail={"k": 1}))
    events = storage.audit.audit_events(orgs=None)
    assert [e.action for e in events] == ["signin", "token.create", "signin"]
    assert events[0].id > events[1].id > events[2].id
    assert events[0].detail == {"k": 1}
    assert len(storage.audit.audit_events(orgs=None, action="signin")) == 2
    assert [e.id for e in storage.audit.audit_events(orgs=None, before_id=events[0].id,
                                                     limit=1)] == [events[1].id]
    assert storage.audit.audit_events(orgs=["acme"]) == []


# -- evidence export pages -------------------------------------------------------------------

def test_outcome_pages_follow_the_keyset_order_with_each_filter(storage: Storage) -> None:
    record(storage)
    record(storage, name="beta")
    hour = timedelta(hours=1)
    send(storage, [outcome("r3", when=T0 + 2 * hour), outcome("r1", when=T0),
                   outcome("r2", "failure", when=T0 + hour),
                   outcome("r0", reporter="reporter-0", when=T0 + hour)])  # a tie on time
    send(storage, [outcome("b1", when=T0 + hour)], name="beta")
    send(storage, [outcome("o1", when=T0)], namespace="other")

    def page(**kwargs: Any) -> list[str]:
        query = {"name": None, "since": None, "until": None, "after": None, "limit": 100,
                 **kwargs}
        return [r.report_id for r in storage.outcomes.outcome_page("team", **query)]

    assert page() == ["r1", "r0", "b1", "r2", "r3"]  # (at, reporter, report_id)
    first = storage.outcomes.outcome_page("team", name=None, since=None, until=None,
                                          after=None, limit=2)
    assert [r.report_id for r in first] == ["r1", "r0"]
    assert page(after=first[-1].key, limit=2) == ["b1", "r2"]
    assert page(after=first[-1].key, limit=2, name="alpha") == ["r2", "r3"]
    assert page(since=(T0 + hour).isoformat(), until=(T0 + 2 * hour).isoformat()) == [
        "r0", "b1", "r2"]
    row = first[0]
    assert (row.namespace, row.name, row.version, row.outcome, row.failure_kind, row.score,
            row.signals_json, row.agent, row.model, row.reporter, row.at) == (
        "team", "alpha", "1.0.0", "success", None, None, "{}", "agent-x", "model-y",
        "reporter-1", T0.isoformat())
    assert storage.outcomes.outcome_page("nobody", name=None, since=None, until=None,
                                         after=None, limit=10) == []
    assert storage.outcomes.outcome_page("te\0am", name=None, since=None, until=None,
                                         after=None, limit=10) == []


def test_proposal_and_decided_release_pages(storage: Storage) -> None:
    for pid, name, minutes in (("p-2", "alpha", 1), ("p-1", "alpha", 0), ("p-3", "beta", 1)):
        storage.proposals.add_proposal(proposal(pid, name=name, content=pid, minutes=minutes))
    storage.proposals.decide_proposal("p-1", "accepted", "lead", "ok", "1.1.0")

    def proposals(**kwargs: Any) -> list[str]:
        query = {"name": None, "since": None, "until": None, "after": None, "limit": 100,
                 **kwargs}
        return [p.id for p in storage.proposals.proposal_page("team", **query)]

    assert proposals() == ["p-1", "p-2", "p-3"]  # (created_at, id), any status
    assert proposals(limit=2, after=(at(1), "p-2")) == ["p-3"]
    assert proposals(name="alpha", since=at(1)) == ["p-2"]
    assert proposals(until=at(1)) == ["p-1"]
    for version in ("1.0.0", "2.0.0", "3.0.0"):
        storage.releases.add_release(ReleaseRow(
            id=f"rel-{version}", namespace="team", name="alpha", version=version,
            state="pending", author_id=None, author="ada", commit_sha="c" * 40,
            tree_sha="d" * 40, content_sha256="e" * 64, verdict="safe", report={},
            created_at=at(0), decided_at=None, decided_by=None, comment=None))
    storage.releases.decide_release("rel-1.0.0", "rejected", "lead", "no")
    storage.releases.decide_release("rel-3.0.0", "approved", "lead", "ok")

    def decided(**kwargs: Any) -> list[str]:
        query = {"name": None, "since": None, "until": None, "after": None, "limit": 100,
                 **kwargs}
        return [r.id for r in storage.releases.decided_page("team", **query)]

    assert decided() == ["rel-1.0.0", "rel-3.0.0"]  # by decision; the pending one left out
    first = storage.releases.decided_page("team", name=None, since=None, until=None,
                                          after=None, limit=1)
    assert first[0].comment == "no" and first[0].decided_at is not None
    assert decided(after=(first[0].decided_at, first[0].id)) == ["rel-3.0.0"]
    assert decided(name="beta") == [] and decided(until="2000-01-01") == []


# -- rate buckets ---------------------------------------------------------------------------


def test_a_bucket_spends_what_it_holds_and_refills_at_its_rate(storage: Storage) -> None:
    buckets, rate, burst = storage.buckets, 2.0, 5.0
    assert buckets.level("k:a", rate=rate, burst=burst, now=100.0) == burst  # never seen
    assert buckets.take("k:a", 3, rate=rate, burst=burst, now=100.0) is None
    assert buckets.take("k:a", 3, rate=rate, burst=burst, now=100.0) == pytest.approx(2.0)
    assert buckets.level("k:a", rate=rate, burst=burst, now=100.0) == pytest.approx(2.0)
    assert buckets.take("k:a", 3, rate=rate, burst=burst, now=100.5) is None  # 2 + 0.5 x 2
    assert buckets.level("k:a", rate=rate, burst=burst, now=1000.0) == burst  # capped
    assert buckets.take("k:a", 6, rate=rate, burst=burst, now=1000.0) == pytest.approx(burst)
    assert buckets.level("k:b", rate=rate, burst=burst, now=100.0) == burst  # per key


def test_a_forced_take_goes_below_zero_and_full_buckets_are_swept(storage: Storage) -> None:
    buckets = storage.buckets
    for _ in range(3):
        assert buckets.take("f:x", 1, rate=0.5, burst=2, now=10.0, force=True) is None
    assert buckets.level("f:x", rate=0.5, burst=2, now=10.0) == pytest.approx(-1.0)
    buckets.take("f:y", 1, rate=0.5, burst=2, now=10.0)
    buckets.take("g:z", 1, rate=0.5, burst=2, now=10.0)
    # At 12 s `f:y` is full again (1 + 2 x 0.5), `f:x` is not (-1 + 1): only `f:y` goes,
    # and only keys with the prefix are looked at.
    assert buckets.sweep("f:", rate=0.5, burst=2, now=12.0) == 1
    assert buckets.level("f:x", rate=0.5, burst=2, now=12.0) == pytest.approx(0.0)
    assert buckets.level("g:z", rate=0.5, burst=2, now=10.0) == pytest.approx(1.0)


def test_the_health_lease_is_held_by_one_holder_until_it_expires(storage: Storage) -> None:
    health = storage.health
    assert health.lease() is None
    assert health.take_lease("a", now=100.0, ttl=60.0)
    assert not health.take_lease("b", now=150.0, ttl=60.0)
    assert health.take_lease("a", now=150.0, ttl=60.0)  # renewed until 210
    assert not health.take_lease("b", now=200.0, ttl=60.0)
    assert health.take_lease("b", now=211.0, ttl=60.0)  # expired: taken over
    assert health.lease() == ("b", 271.0)
    health.release_lease("a")  # not a's to give up
    assert health.lease() == ("b", 271.0)
    health.release_lease("b")
    assert health.lease() is None and health.take_lease("a", now=212.0, ttl=60.0)


def test_health_candidates_and_the_log_of_checks(storage: Storage) -> None:
    storage.catalogue.record_version(new_version("team", "alpha"))
    storage.catalogue.record_version(new_version("hidden", "beta"))
    storage.namespaces.set_visibility("hidden", "private")
    storage.catalogue.add_downloads({("team", "alpha"): 5})

    def candidates() -> dict[str, HealthCandidate]:
        return {c.name: c for c in storage.health.candidates(since_day="2000-01-01")}

    alpha = candidates()["alpha"]
    assert (alpha.is_latest, alpha.downloads, alpha.checked_at, alpha.verdict,
            alpha.recent_reports) == (True, 5, None, None, 0)
    assert candidates()["beta"].visibility == "private"
    beta = HealthCheckRow("hidden", "beta", "1.0.0", 50.0, "scheduled", "p", "f", 2.5,
                          "r1; r2", "safe", "caution", "deprecated", "why", 12.0, 3, 0.75)
    plain = HealthCheckRow("team", "alpha", "1.0.0", 60.0, "health", "p", "f", 0.0, "",
                           "safe", "safe", "", "", 8.0, 5, None)
    storage.health.record_check(beta)
    storage.health.record_check(plain)
    state = candidates()["beta"]
    assert (state.fingerprint, state.checked_at, state.downloads_at_check,
            state.ema_at_check) == ("f", 50.0, 3, 0.75)
    recent = storage.health.recent_checks
    assert recent(readable=None, changed=False, limit=10) == [plain, beta]
    assert recent(readable=NONE, changed=False, limit=10) == [plain]
    assert recent(readable=frozenset({"hidden"}), changed=True, limit=10) == [beta]
    assert recent(readable=None, changed=False, limit=10, namespace="team") == [plain]
    assert storage.health.checks_since(55.0) == 1 and storage.health.checks_since(0) == 2
    assert storage.health.prune_checks(55.0) == 1
    assert recent(readable=None, changed=False, limit=10) == [plain]
    assert candidates()["beta"].checked_at == 50.0  # its last check stays


def test_demands_cluster_asks_count_askers_and_close_once(storage: Storage) -> None:
    def vec(*hot: int) -> bytes:
        out = [0.0] * 8
        for i in hot:
            out[i] = 1.0
        norm = len(hot) ** 0.5
        return b"".join(struct.pack("<f", x / norm) for x in out)

    storage.namespaces.ensure_namespace("pub")
    storage.namespaces.ensure_namespace("priv", "private")
    demands, clustering = storage.demands, Clustering()

    def ask(query: str, vector: bytes, asker: str, scope: str | None, minute: int) -> int:
        return demands.record_ask(NewGapAsk(query, vector, "m", asker, scope, at(minute)),
                                  clustering)

    first = ask("make tea", vec(0), "user:1", None, 0)
    assert ask("brew tea", vec(0, 1), "user:2", None, 1) == first  # cos 0.71: joins
    assert ask("make tea", vec(0), "user:1", None, 2) == first  # the same asker again
    other = ask("fix a bike", vec(5), "user:3", None, 3)
    inside = ask("make tea", vec(0), "user:4", "priv", 4)  # another scope: its own demand
    assert len({first, other, inside}) == 3
    public = demands.demands(readable=NONE, status="open", scope=None, asker=None, offset=0,
                             limit=10)
    assert [(d.id, d.asks, d.askers, d.scope) for d in public] == \
        [(first, 3, 2, None), (other, 1, 1, None)]
    assert public[0].representative == "make tea" and public[0].last_asked == at(2)
    assert public[0].first_asked == at(0)
    both = demands.demands(readable=frozenset({"priv"}), status=None, scope=None, asker=None,
                           offset=1, limit=10)
    assert [d.id for d in both] == [inside, other]  # paged past the first
    assert demands.demand(inside, readable=NONE) is None
    assert demands.demand(inside, readable=frozenset({"priv"})) is not None
    assert [d.id for d in demands.demands(readable=NONE, status=None, scope=None,
                                          asker="user:2", offset=0, limit=10)] == [first]
    assert demands.demands(readable=NONE, status=None, scope="priv", asker=None, offset=0,
                           limit=10) == []
    assert demands.asked(first, "user:1") and not demands.asked(first, "user:3")
    assert demands.phrasings(first, 10) == [("make tea", 2), ("brew tea", 1)]
    assert {i for i, _, _ in demands.open_centroids("pub", registry=True)} == {first, other}
    assert {i for i, _, _ in demands.open_centroids("priv", registry=False)} == {inside}
    assert demands.close_demand(first, "pub", "tea", "1.0.0", 0.5, at(9))
    assert not demands.close_demand(first, "pub", "tea2", "1.0.0", 0.9, at(10))  # once
    closed = demands.demand(first, readable=NONE)
    assert closed is not None and (closed.status, closed.answer_name, closed.answer_similarity,
                                   closed.closed_at) == ("closed", "tea", 0.5, at(9))
    assert ask("make tea", vec(0), "user:5", None, 11) not in (first, other)  # closed: new
