"""Scheduled health checks (services.health, learning.schedule): the priority order, the
hourly budget across ticks and restarts, a version broken by a change of the checks
deprecated with `latest` moving, two registries on one database never checking a version
twice, the lease, and who sees what of the status (API and CLI)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from skills_hub.access.principal import OPERATOR
from skills_hub.checks.sandbox import sandbox_available
from skills_hub.cli import main
from skills_hub.config import Settings
from skills_hub.domain import HealthCandidate, HealthCheckRow
from skills_hub.learning import schedule
from skills_hub.services import Registry
from skills_hub.services.health import LEASE_S, fingerprint
from skills_hub.skill.bundle import Bundle
from skills_hub.web.app import create_app

from .conftest import send_outcomes, skill_md

DAY = 86_400.0
PASSES = b"tests:\n  - name: adds up\n    run: python3 -c 'assert 1 + 1 == 2'\n"
FAILS = b"tests:\n  - name: adds up\n    run: python3 -c 'assert 1 + 1 == 3'\n"


def publish(registry: Registry, name: str, version: str = "1.0.0", *,
            namespace: str = "team", tests: bytes | None = None) -> None:
    files = {"SKILL.md": skill_md(name, description=f"Does the {name} task for the tests.",
                                  body=f"Do {name}, version {version}.")}
    if tests is not None:
        files["tests/tests.yaml"] = tests
    registry.publish(namespace, Bundle(files), principal=OPERATOR, version=version)


def logged(registry: Registry) -> list[HealthCheckRow]:
    return registry.store.health.recent_checks(readable=None, changed=False, limit=1000)


@pytest.fixture
def quiet(settings: Settings) -> Settings:
    """The test settings without sandboxed tests (most tests here need no test runs)."""
    return replace(settings, sandbox="off")


@pytest.fixture
def hub(quiet: Settings) -> Iterator[Registry]:
    registry = Registry(quiet)
    registry.start()
    yield registry
    registry.close()


# -- the priority ------------------------------------------------------------------------


def candidate(version: str, **kw: object) -> HealthCandidate:
    base: dict[str, object] = dict(
        namespace="ns", name="s", version=version, visibility="public",
        published_at="2026-01-01T00:00:00+00:00", is_latest=False, downloads=0,
        verdict="safe", report_pipeline="p", report_checked_at="2026-01-01T00:00:00+00:00",
        fingerprint="f", checked_at=0.0, downloads_at_check=0, ema_at_check=None, ema=None,
        recent_reports=0)
    return HealthCandidate(**{**base, **kw})  # type: ignore[arg-type]


def test_the_formula_weighs_staleness_use_a_falling_ema_and_age() -> None:
    now = 1_780_000_000.0  # May 2026
    rows = [
        candidate("quiet", checked_at=now - 10 * DAY),
        candidate("stale", checked_at=now - 10 * DAY, fingerprint="old"),
        candidate("used", checked_at=now - 10 * DAY, is_latest=True, downloads=40,
                  downloads_at_check=9, recent_reports=32),
        candidate("falling", checked_at=now - 10 * DAY, ema_at_check=0.9, ema=0.45),
        candidate("fresh", checked_at=now - 3600, is_latest=True, downloads=10**6),
        candidate("fresh-but-stale", checked_at=now - 3600, fingerprint="old"),
        candidate("publish-checked-by-old-rules", fingerprint=None, checked_at=None,
                  report_pipeline="older"),
    ]
    due = schedule.queue(rows, now=now, fingerprint="f", pipeline="p")
    scores = {p.candidate.version: p.score for p in due}
    age = 2 * 10 / 30
    assert scores == pytest.approx({
        "used": 6 + age,                       # log2(1 + 31 installs + 32 reports)
        "falling": 10 * 0.45 + age,
        "stale": 4 + age,
        "fresh-but-stale": 4 + 2 * (1 / 24) / 30,
        # checked at publish, 2026-01-01, by another pipeline: stale, and past the age cap
        "publish-checked-by-old-rules": 4 + 2,
        "quiet": age,
    }, abs=1e-3)
    assert [p.candidate.version for p in due] == [
        "used", "publish-checked-by-old-rules", "falling", "stale", "fresh-but-stale", "quiet"]
    reasons = {p.candidate.version: p.reasons for p in due}
    assert reasons["used"][:2] == ("31 installs since its last check",
                                   "32 outcome reports in 7 days")
    assert reasons["falling"][0] == "success EMA fell from 0.90 to 0.45"
    assert reasons["stale"][0] == "the checks changed since its last check (old)"


def test_priority_order_on_a_registry(hub: Registry) -> None:
    for name in ("busy", "reported", "slipping", "stale", "idle"):
        publish(hub, name)
    send_outcomes(hub, "team", "slipping", ["success"] * 10, version="1.0.0")
    t1 = time.time() + 2 * DAY  # past the cool-down after the publish checks
    first = hub.health_tick(now=t1, batch=100)
    assert first.leader and len(first.checks) == 5
    # Since then: installs of one, reports on another, failures of a third; and the checks
    # changed for a fourth (its last check recorded another fingerprint).
    hub.store.catalogue.add_downloads({("team", "busy"): 30})
    send_outcomes(hub, "team", "reported", ["success"] * 3, version="1.0.0")
    send_outcomes(hub, "team", "slipping", ["failure"] * 6, version="1.0.0")
    stale = next(c for c in first.checks if c.name == "stale")
    hub.store.health.record_check(replace(stale, fingerprint="checks-1+bandit-0+rules-x"))
    status = hub.health_status(OPERATOR, now=t1 + 2 * DAY)
    assert [p.candidate.name for p in status.queue] == [
        "slipping", "busy", "stale", "reported", "idle"]
    reasons = {p.candidate.name: p.reasons for p in status.queue}
    assert reasons["slipping"][:2] == ("16 outcome reports in 7 days",
                                       "success EMA fell from 1.00 to 0.53")
    assert reasons["busy"][0] == "30 installs since its last check"
    assert reasons["stale"][0] == \
        "the checks changed since its last check (checks-1+bandit-0+rules-x)"
    assert reasons["reported"][0] == "3 outcome reports in 7 days"
    assert reasons["idle"] == ("last checked 2.0 days ago",)
    assert status.due == 5 and status.checked_last_hour is not None


# -- the budget --------------------------------------------------------------------------


def test_the_hourly_budget_holds_across_ticks_and_restarts(quiet: Settings) -> None:
    settings = replace(quiet, health_budget=3)
    registry = Registry(settings)
    registry.start()
    for i in range(5):
        publish(registry, f"skill-{i}")
    t = time.time() + 2 * DAY
    assert len(registry.health_tick(now=t, batch=10).checks) == 3
    again = registry.health_tick(now=t + 60, batch=10)
    assert again.leader and again.used == 3 and again.checks == []
    registry.close()  # gives the lease up
    restarted = Registry(settings)
    restarted.start()
    try:
        tick = restarted.health_tick(now=t + 120, batch=10)
        assert tick.leader and tick.used == 3 and tick.checks == []
        # Without `batch`, a tick checks the hour's budget spread: 3 an hour is 1 a minute.
        later = restarted.health_tick(now=t + 3700)
        assert [len(later.checks), later.used] == [1, 0]
        checked = {c.name for c in logged(restarted)}
        assert len(checked) == 4  # the fourth is one not checked in the first hour
    finally:
        restarted.close()


def test_a_budget_of_zero_turns_the_scheduler_off(quiet: Settings) -> None:
    registry = Registry(replace(quiet, health_budget=0))
    registry.start()
    try:
        publish(registry, "skill")
        tick = registry.health_tick(now=time.time() + 2 * DAY, batch=10)
        assert not tick.leader and tick.checks == [] and registry.store.health.lease() is None
        registry.start_health_checks()
        assert registry._health_scheduler is None
        assert registry.health_status(OPERATOR).enabled is False
    finally:
        registry.close()


# -- a version broken by a change of the checks ------------------------------------------


@pytest.mark.skipif(sandbox_available() not in ("bubblewrap", "rlimits"),
                    reason="needs a sandbox to run the skills' tests")
def test_a_version_whose_tests_now_fail_is_deprecated_and_latest_moves(
        settings: Settings) -> None:
    # Published while the server ran no tests; each version declares one.
    before = Registry(replace(settings, sandbox="off"))
    before.start()
    publish(before, "csv-tool", "1.0.0", tests=PASSES)
    publish(before, "csv-tool", "1.1.0", tests=PASSES)
    publish(before, "csv-tool", "1.2.0", tests=FAILS)
    assert before.store.catalogue.get_skill("team", "csv-tool").latest_version == "1.2.0"  # type: ignore[union-attr]
    before.close()
    # The operator turns the sandbox on: the checks' fingerprint changes.
    after = Registry(replace(settings, sandbox="auto"))
    after.start()
    try:
        assert fingerprint(after.check_options).endswith("+tests-on")
        tick = after.health_tick(now=time.time() + 2 * DAY, batch=10)
        assert sorted(c.version for c in tick.checks) == ["1.0.0", "1.1.0", "1.2.0"]
        broken = next(c for c in tick.checks if c.version == "1.2.0")
        assert (broken.old_verdict, broken.new_verdict, broken.health) == \
            ("safe", "caution", "deprecated")
        assert broken.note.startswith("re-check failed: sandbox.test-failed")
        detail = after.get_skill("team", "csv-tool", OPERATOR)
        assert detail.skill.latest_version == "1.1.0"
        assert detail.deprecated["1.2.0"] == broken.note
        history = after.store.reports.report_history("team", "csv-tool")
        assert ("1.2.0", "safe", "caution", "scheduled") in {
            (h.version, h.old_verdict, h.new_verdict, h.reason) for h in history}
        # Good outcome reports do not lift it; only a check that passes would.
        send_outcomes(after, "team", "csv-tool", ["success"] * 25, version="1.2.0")
        assert "1.2.0" in after.deprecated_versions("team", "csv-tool")
        status = after.health_status(OPERATOR)
        assert [(c.version, c.health) for c in status.changes] == [("1.2.0", "deprecated")]
    finally:
        after.close()
    # Checks that run no tests cannot say the tests pass again: it stays deprecated.
    untested = Registry(replace(settings, sandbox="off"))
    untested.start()
    try:
        tick = untested.health_tick(now=time.time() + 4 * DAY, batch=10)
        assert len(tick.checks) == 3 and not any(c.health for c in tick.checks)
        assert untested.get_skill("team", "csv-tool", OPERATOR).skill.latest_version == "1.1.0"
    finally:
        untested.close()


# -- several processes -------------------------------------------------------------------


def test_two_registries_on_one_database_never_check_a_version_twice(quiet: Settings) -> None:
    one, two = Registry(quiet), Registry(quiet)
    one.start()
    two.start()
    try:
        for i in range(8):
            publish(one, f"skill-{i}")
        t = time.time() + 2 * DAY
        results = {}
        barrier = threading.Barrier(2)

        def tick(registry: Registry) -> None:
            barrier.wait()
            results[registry.health_holder] = registry.health_tick(now=t, batch=100)

        run_both(tick, one, two)
        assert sorted(r.leader for r in results.values()) == [False, True]
        assert len(next(r for r in results.values() if r.leader).checks) == 8
        # The lease's holder died without a word (no release): the other takes over once
        # it expired, not before.
        leader = next(r.holder for r in results.values() if r.leader)
        other = one if two.health_holder == leader else two
        assert not other.health_tick(now=t + LEASE_S - 60, batch=100).leader
        assert other.health_tick(now=t + LEASE_S + 60, batch=100).leader
        # Both checking at once (the overlap of an expired lease): claims keep them apart.
        later = t + 3 * DAY

        def batch(registry: Registry) -> None:
            barrier.wait()
            registry.health_batch(registry.health_holder, 100, lambda: later)

        run_both(batch, one, two)
        second_round = [c for c in logged(one) if c.at >= later]
        assert Counter((c.name, c.version) for c in second_round) == \
            {(f"skill-{i}", "1.0.0"): 1 for i in range(8)}
    finally:
        one.close()
        two.close()


def run_both(target: object, *registries: Registry) -> None:
    threads = [threading.Thread(target=target, args=(r,)) for r in registries]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_a_claim_is_a_compare_and_set_on_the_last_check(hub: Registry) -> None:
    health = hub.store.health
    assert health.claim("team", "a", "1.0.0", "p1", now=10.0, until=20.0, checked_at=None)
    assert not health.claim("team", "a", "1.0.0", "p2", now=15.0, until=25.0, checked_at=None)
    assert health.claim("team", "a", "1.0.0", "p2", now=21.0, until=30.0, checked_at=None)
    health.record_check(HealthCheckRow("team", "a", "1.0.0", 22.0, "scheduled", "p2", "f",
                                       1.0, "", "safe", "safe", "", "", 5.0, 0, None))
    # p1 looked at the queue before p2's check: its view is out of date.
    assert not health.claim("team", "a", "1.0.0", "p1", now=23.0, until=40.0, checked_at=None)
    assert health.claim("team", "a", "1.0.0", "p1", now=23.0, until=40.0, checked_at=22.0)
    assert health.checks_since(22.0) == 1 and health.checks_since(22.5) == 0


# -- the status: API and command line -----------------------------------------------------


def test_the_status_route_shows_outsiders_no_private_namespace(quiet: Settings) -> None:
    registry = Registry(quiet)
    registry.start()
    secret = registry.create_token("secret", private=True)
    publish(registry, "open-skill")
    publish(registry, "hidden-skill", namespace="secret")
    # Both were last checked by other checks than today's, so both are due; the private
    # one's check changed its verdict.
    for namespace, name, new in (("team", "open-skill", "safe"),
                                 ("secret", "hidden-skill", "caution")):
        registry.store.health.record_check(HealthCheckRow(
            namespace, name, "1.0.0", time.time(), "scheduled", "elsewhere", "checks-0+old",
            1.0, "a reason", "safe", new, "", "", 3.0, 0, None))
    registry.health_tick(batch=0)  # takes the lease, checks nothing
    registry.add_user("root", password="correct horse battery staple", operator=True)
    with TestClient(create_app(quiet, registry)) as client:
        scheduler = registry._health_scheduler  # the app's start-up started the thread
        assert scheduler is not None and scheduler._thread.is_alive()
        token = client.post("/api/v1/auth/login", json={
            "username": "root", "password": "correct horse battery staple"}).json()["token"]

        def seen(headers: dict[str, str] | None = None) -> dict[str, object]:
            answer = client.get("/api/v1/health/schedule", headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            return {"queue": sorted(q["namespace"] for q in body["queue"]),
                    "last": body["last_check"]["namespace"],
                    "changes": [c["namespace"] for c in body["changes"]],
                    "hour": body["checked_last_hour"], "holder": body["holder"]}

        assert seen() == {"queue": ["team"], "last": "team", "changes": [], "hour": None,
                          "holder": None}
        assert seen({"Authorization": f"Bearer {secret}"}) == {
            "queue": ["secret", "team"], "last": "secret", "changes": ["secret"],
            "hour": None, "holder": None}
        assert seen({"Authorization": f"Bearer {token}"}) == {
            "queue": ["secret", "team"], "last": "secret", "changes": ["secret"],
            "hour": 2, "holder": registry.health_holder}
        item = client.get("/api/v1/health/schedule", params={"namespace": "team"}).json()
        assert item["queue"][0]["reasons"][0] == \
            "the checks changed since its last check (checks-0+old)"
        hidden = client.get("/api/v1/health/schedule", params={"namespace": "secret"})
        missing = client.get("/api/v1/health/schedule", params={"namespace": "nowhere"})
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["message"].replace("secret", "X") == \
            missing.json()["message"].replace("nowhere", "X")
        for bad in ("0", "x", "201", "\0"):
            answer = client.get("/api/v1/health/schedule", params={"limit": bad})
            assert answer.status_code == 400, bad
        assert client.get("/api/v1/health/schedule",
                          params={"namespace": "a\0b"}).status_code in (400, 404)
    assert registry._health_scheduler is None and not scheduler._thread.is_alive()
    registry.close()


def test_health_status_command(quiet: Settings) -> None:
    registry = Registry(quiet)
    registry.start()
    publish(registry, "hello")
    registry.close()
    result = CliRunner().invoke(main, ["health", "--home", str(quiet.home), "--status"])
    assert result.exit_code == 0, result.output
    assert "budget 120 versions an hour" in result.output
    assert "queue: nothing due" in result.output
    result = CliRunner().invoke(main, ["health", "--home", str(quiet.home), "--json"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["health", "--home", str(quiet.home), "--status",
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert '"kind": "health"' in result.output and '"queue": []' in result.output
