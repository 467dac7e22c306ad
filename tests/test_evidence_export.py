"""The evidence export (`GET /api/v1/evidence`, `skills-hub export-evidence`): tiers, each
filter, redaction of planted secrets, who may export what, bad filters, and a 100,000-report
export streamed in bounded memory. Real storage on both backends; rows that would take a
publish each (decided releases, bulk reports) are written through the storage interfaces."""

from __future__ import annotations

import gc
import json
import resource
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from skills_hub.access.principal import ANONYMOUS, OPERATOR, Principal
from skills_hub.cli import main
from skills_hub.domain import NewOutcome, OutcomeRecord, ProposalRow, ReleaseRow, VersionStats
from skills_hub.errors import BadRequest, Forbidden, NotFound, Unauthorized
from skills_hub.learning import evidence
from skills_hub.ranking.quality import decay_factor
from skills_hub.ranking.trust import ema_update
from skills_hub.services import Registry
from skills_hub.services.evidence import evidence_jsonl, parse_evidence_filters
from skills_hub.skill.bundle import Bundle
from tests.conftest import skill_md, token_principal

API = "/api/v1/evidence"
SERVER = "http://testserver"
NOW = datetime.now(UTC).replace(microsecond=0)
# Secrets of shapes the checks' `secret` rules know, assembled here so that no whole one
# sits in the source.
AWS_KEY = "AK" + "IAZ7QW4RT9MN2KXB8P"
SLACK = "xo" + "xb-2871530946-R7tYq2Lm9ZwK4pVn8sXc"
PEM = ("-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq4Rk2Vj9Lw3Pz8Nc1Hs5Gt6Ym0Qa\n"
       "Zr4Kf8Wd2Jv9Tn3Lp7Bx5Mc1Gh6Sy0Ue4Io8Aw2Es\n-----END RSA " + "PRIVATE KEY-----")


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def publish(registry: Registry, namespace: str, name: str, version: str, body: str) -> None:
    registry.publish(namespace, Bundle({"SKILL.md": skill_md(name=name, body=body)}),
                     principal=OPERATOR, version=version)


def report(registry: Registry, namespace: str, name: str, items: list[dict[str, Any]],
           reporter: str = "reporters") -> None:
    """Reports as agents send them (through the service: parsed, scored, folded)."""
    batch = [{"id": uuid.uuid4().hex, **item} for item in items]
    registry.report_outcomes(namespace, name, {"outcomes": batch},
                             token_principal(registry, reporter))


@dataclass
class World:
    registry: Registry
    owner: Principal       # acme's owner (its service account's token)
    other: Principal       # beta's owner
    reader: Principal      # a reader of acme (an org's service account)
    publisher: Principal   # a publisher of acme (a person)
    headers: dict[str, dict[str, str]]
    accepted: str          # proposal ids
    rejected: str
    open: str


@pytest.fixture
def world(registry: Registry) -> World:
    tokens = {ns: registry.create_token(ns) for ns in ("acme", "beta")}
    publish(registry, "acme", "greet", "1.0.0", "Say hello.")
    publish(registry, "acme", "parse", "1.0.0", "Parse the CSV.")
    publish(registry, "beta", "hidden", "1.0.0", "Beta's own.")
    registry.add_service_account(OPERATOR, "acme", "bot", "reader")  # no namespace of its own
    _, bot = registry.create_user_token(OPERATOR, account="acme.bot")
    people = {"bot": bot}
    pete = registry.add_user("pete")  # a person: owns the (empty) namespace `pete`
    registry.set_member(OPERATOR, "acme", "pete", "publisher")
    _, people["pete"] = registry.create_user_token(registry.signed_in(pete, "session", ANONYMOUS))
    root = registry.add_user("root", operator=True)
    _, people["root"] = registry.create_user_token(registry.signed_in(root, "session", ANONYMOUS))
    report(registry, "acme", "greet", [
        {"version": "1.0.0", "outcome": "success", "at": ago(9),
         "signals": {"task_accepted": True, "session_continued": True},  # 0.8: gold
         "client": {"agent": f"bot {AWS_KEY}", "model": "m-1"}},
        {"version": "1.0.0", "outcome": "success", "at": ago(8)},  # 0.5: silver
        {"version": "1.0.0", "outcome": "success", "at": ago(7),  # 0.2: bronze
         "signals": {"edit_ratio": 1.0, "retries": 3}},
        {"version": "1.0.0", "outcome": "infra_error", "at": ago(6)},  # bronze
        {"version": "1.0.0", "outcome": "failure", "failure_kind": "error", "at": ago(5)},
    ])
    report(registry, "acme", "parse", [{"version": "1.0.0", "outcome": "success", "at": ago(1)}])
    report(registry, "beta", "hidden", [{"version": "1.0.0", "outcome": "success", "at": ago(1)}])
    registry.set_visibility("beta", "private", OPERATOR)
    agent = token_principal(registry, "reporters")
    owner = registry.authenticate(tokens["acme"])

    def propose(text: str, **extra: Any) -> str:
        payload = {"base_version": "1.0.0", "reasoning": extra.pop("reasoning", "clearer"),
                   "evidence": extra.pop("evidence", {"failures": 3}),
                   "edits": [{"op": "append", "content": f"\n{text}\n"}]}
        return registry.propose("acme", "greet", payload, agent).proposal.id

    accepted = propose("Say it politely.", reasoning=f"the deploy key leaked:\n{PEM}\n",
                       evidence={"trajectory": f"export AWS_KEY={AWS_KEY}", "failures": 7})
    rejected = propose("Shout it.")
    opened = propose("Wave as well.")
    registry.review("acme", "greet", accepted, "accept", "good", owner)
    report(registry, "acme", "greet", [  # other agents than the proposer: these count
        {"version": "1.0.1", "outcome": "success", "at": ago(0.5), "client": {"id": f"c{i}"}}
        for i in range(10)], reporter="users")
    registry.review("acme", "greet", rejected, "reject", f"no; and rotate {SLACK}", owner)
    for version, state in (("2.0.0", "approved"), ("2.1.0", "rejected"),
                           ("2.2.0", "pending")):
        row = ReleaseRow(f"rel-{version}", "acme", "parse", version, "pending", None, "pete",
                         "c" * 40, "d" * 40, "e" * 64, "safe", {}, ago(3), None, None, None)
        registry.store.releases.add_release(row)
        if state != "pending":
            registry.store.releases.decide_release(row.id, state, "ann", f"{state} it")
    return World(registry, owner, registry.authenticate(tokens["beta"]),
                 registry.authenticate(people["bot"]), registry.authenticate(people["pete"]),
                 {name: {"Authorization": f"Bearer {t}"} for name, t in
                  {**tokens, **people}.items()}, accepted, rejected, opened)


def export(world: World, who: Principal | None = None, **filters: Any) -> list[dict[str, Any]]:
    parsed = parse_evidence_filters(**filters)
    return list(world.registry.export_evidence(who or world.owner, parsed))


def test_tiers_of_constructed_reports_proposals_and_reviews() -> None:
    def stats(successes: int, failures: int) -> VersionStats:
        return VersionStats("1.0.1", successes, failures, 0, 0.5, 0.5, None)

    assert [evidence.outcome_tier(o, s) for o, s in (
        ("success", 0.8), ("success", 0.6), ("success", 0.59), ("success", 0.3),
        ("success", 0.29), ("infra_error", None), ("failure", -0.2), ("failure", -1.0))] == [
        "gold", "gold", "silver", "silver", "bronze", "bronze", "rejected", "rejected"]
    # a report the registry did not count (an author's own, a repeat) is bronze at most
    assert [evidence.outcome_tier(o, 0.8, "author") for o in ("success", "failure")] == [
        "bronze", "rejected"]
    assert [evidence.decision_tier(d, s) for d, s in (
        ("accepted", stats(8, 2)),     # 10 counted, 0.8: did well
        ("approved", stats(40, 2)),
        ("accepted", stats(8, 1)),     # too few outcomes to judge
        ("accepted", None),
        ("accepted", stats(6, 4)),     # middling
        ("approved", stats(4, 6)),     # did badly: a negative example
        ("rejected", stats(10, 0)),
        ("open", None), ("withdrawn", None))] == [
        "gold", "gold", "silver", "silver", "silver", "rejected", "rejected", "bronze",
        "bronze"]
    record = OutcomeRecord("a", "s", "1.0.0", "success", None, 0.7, "{}", None, None, "r", "1",
                           "2026-01-01T00:00:00+00:00")
    assert evidence.outcome_line(record)["tier"] == "gold"
    assert evidence.outcome_line(replace(record, discount="repeat_task"))["tier"] == "bronze"
    row = ProposalRow("p", "a", "s", "1.0.0", "1.0.0", "accepted", "x", None, [], {}, "", "h",
                      "c", "t", "safe", {}, 1, "2026-01-01T00:00:00+00:00", version="1.0.1")
    assert evidence.proposal_line(row, None, stats(8, 2))["tier"] == "gold"
    release = ReleaseRow("r", "a", "s", "1.0.0", "rejected", None, "x", "c", "t", "h", "safe",
                         {}, "2026-01-01T00:00:00+00:00", None, None, None)
    assert evidence.review_line(release, None)["tier"] == "rejected"


def test_the_export_holds_every_kind_with_its_tier_and_fields(world: World) -> None:
    lines = export(world, namespace="acme")
    outcomes = [line for line in lines if line["kind"] == "outcome"]
    greet = [line for line in outcomes if line["skill"] == "greet" and line["version"] == "1.0.0"]
    assert [(line["outcome"], line["score"], line["tier"]) for line in greet] == [
        ("success", 0.8, "gold"), ("success", 0.5, "silver"), ("success", 0.2, "bronze"),
        ("infra_error", None, "bronze"), ("failure", -0.5, "rejected")]
    assert greet[4]["failure_kind"] == "error" and greet[0]["signals"] == {
        "task_accepted": True, "session_continued": True}
    proposals = {line["id"]: line for line in lines if line["kind"] == "proposal"}
    assert {i: p["tier"] for i, p in proposals.items()} == {
        world.accepted: "gold", world.rejected: "rejected", world.open: "bronze"}
    accepted = proposals[world.accepted]
    assert accepted["version"] == "1.0.1" and accepted["review"]["decision"] == "accepted"
    assert accepted["version_outcomes"] == {"successes": 10, "failures": 0,
                                            "success_rate": 1.0, "mean_score": 0.5}
    assert "+Say it politely." in accepted["diff"] and accepted["verdict"] == "safe"
    assert accepted["edits"] == [{"op": "append", "content": "\nSay it politely.\n"}]
    reviews = [line for line in lines if line["kind"] == "review"]
    assert [(r["version"], r["decision"], r["tier"]) for r in reviews] == [
        ("2.0.0", "approved", "silver"), ("2.1.0", "rejected", "rejected")]  # not pending
    leaked = json.dumps(lines)
    for private in ("pete", "ann", "reporters", "hidden"):  # no account names, nothing of beta
        assert f'"{private}"' not in leaked
    assert {line["namespace"] for line in lines} == {"acme"}


def test_planted_secrets_are_redacted_and_counted(world: World) -> None:
    lines = export(world, namespace="acme")
    text = json.dumps(lines)
    for secret in (AWS_KEY, SLACK, "MIIEowIBAAKCAQEA7bq4Rk2Vj9Lw3Pz8Nc1Hs5Gt6Ym0Qa", "PRIVATE KEY"):
        assert secret not in text
    gold = next(line for line in lines if line["kind"] == "outcome" and line["tier"] == "gold")
    assert gold["client"] == {"agent": "bot [REDACTED:secret.aws-access-key]", "model": "m-1"}
    assert gold["redactions"] == 1
    accepted = next(line for line in lines if line.get("id") == world.accepted)
    assert accepted["reasoning"] == ("the deploy key leaked:\n[REDACTED:secret.private-key]\n")
    assert accepted["evidence"] == {"trajectory": "export AWS_KEY=[REDACTED:secret.aws-access-key]",
                                    "failures": 7}
    assert accepted["redactions"] == 2
    rejected = next(line for line in lines if line.get("id") == world.rejected)
    assert rejected["review"]["comment"] == "no; and rotate [REDACTED:secret.slack-token]"
    assert rejected["redactions"] == 1
    quiet = [line for line in lines if line["kind"] == "review"]
    assert all(line["redactions"] == 0 for line in quiet)
    # a placeholder the checks let pass is left alone, as they leave it
    assert evidence.redact_text("key AKIAIOSFODNN7EXAMPLE") == ("key AKIAIOSFODNN7EXAMPLE", 0)


def test_each_filter_narrows_the_export(world: World) -> None:
    def kinds(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [(line["kind"], line["skill"]) for line in lines]

    everything = export(world, OPERATOR)
    assert {line["namespace"] for line in everything} == {"acme", "beta"}
    assert {line["namespace"] for line in export(world, OPERATOR, namespace="beta")} == {"beta"}
    parse = export(world, namespace="acme", skill="parse")
    assert kinds(parse) == [("outcome", "parse"), ("review", "parse"), ("review", "parse")]
    assert all(line["kind"] == "proposal" for line in export(world, kinds=["proposal"]))
    assert len(export(world, kinds=["proposal,review"])) == 5
    gold = export(world, tiers=["gold"])
    assert [(line["kind"], line["tier"]) for line in gold] == [("outcome", "gold"),
                                                              ("proposal", "gold")]
    assert {line["tier"] for line in export(world, tiers=["bronze", "rejected"])} == {
        "bronze", "rejected"}
    window = export(world, kinds=["outcome"], skill="greet", namespace="acme",
                    since=ago(8.5), until=ago(5.5))
    assert [line["score"] for line in window] == [0.5, 0.2, None]
    yesterday = (NOW - timedelta(days=1)).date().isoformat()
    since_date = export(world, kinds=["outcome"], since=yesterday)
    assert {line["skill"] for line in since_date} == {"greet", "parse"}
    assert export(world, until="2020-01-01") == []


def test_who_may_export_what(world: World) -> None:
    assert {line["namespace"] for line in export(world)} == {"acme"}  # its own, not beta's
    assert {line["namespace"] for line in export(world, world.other)} == {"beta"}
    with pytest.raises(NotFound):  # beta is private: acme's owner is not told it exists
        export(world, namespace="beta")
    with pytest.raises(Forbidden):  # acme is public: beta's owner reads it, does not own it
        export(world, world.other, namespace="acme")
    for who in (world.reader, world.publisher):
        with pytest.raises(Forbidden, match="owner"):
            export(world, who, namespace="acme")
    with pytest.raises(Forbidden, match="owns none"):
        export(world, world.reader)
    assert export(world, world.publisher) == []  # its own namespace, empty: nothing of acme
    with pytest.raises(Unauthorized):
        export(world, ANONYMOUS)
    with pytest.raises(Unauthorized):
        export(world, ANONYMOUS, namespace="acme")
    with pytest.raises(NotFound):
        export(world, namespace="acme", skill="nope")
    assert len(export(world, OPERATOR)) > len(export(world))


def test_the_api_streams_json_lines_and_refuses_before_the_first_byte(
        world: World, client: TestClient) -> None:
    h = world.headers
    answer = client.get(API, headers=h["acme"], params={"kind": "review"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert answer.headers["cache-control"] == "no-store"
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert [line["version"] for line in lines] == ["2.0.0", "2.1.0"]
    every = client.get(API, headers=h["root"]).text.splitlines()
    assert {json.loads(line)["namespace"] for line in every} == {"acme", "beta"}
    audited = world.registry.store.audit.audit_events(orgs=None, action="evidence.export")
    assert [(e.actor, e.target, e.detail["kinds"]) for e in audited] == [
        ("root", "*", ["outcome", "proposal", "review"]), ("acme.ci", "*", ["review"])]
    refusals = {
        401: [client.get(API), client.get(API, params={"namespace": "acme"})],
        403: [client.get(API, headers=h["bot"], params={"namespace": "acme"}),
              client.get(API, headers=h["bot"]),
              client.get(API, headers=h["beta"], params={"namespace": "acme"})],
        404: [client.get(API, headers=h["acme"], params={"namespace": "beta"}),
              client.get(API, headers=h["bot"], params={"namespace": "beta"})],
    }
    for status, answers in refusals.items():
        for refused in answers:
            assert refused.status_code == status, refused.text
            assert refused.headers["content-type"] == "application/json"
            assert "kind" not in refused.json()


@pytest.mark.parametrize(("params", "fields"), [
    ({"since": "last tuesday"}, ["since"]),
    ({"until": "2026-13-01"}, ["until"]),
    ({"since": "2026-11-02", "until": "2026-11-01"}, ["until"]),
    ({"tier": "platinum"}, ["tier"]),
    ({"tier": "gold,tin"}, ["tier"]),
    ({"kind": "download"}, ["kind"]),
    ({"skill": "greet"}, ["skill"]),
    ({"namespace": "Not_A_Name"}, ["namespace"]),
    ({"since": "x", "tier": "y", "kind": "z"}, ["since", "tier", "kind"]),
])
@pytest.mark.sqlite_only
def test_bad_filters_are_a_400_listing_every_problem(client: TestClient, auth: dict[str, str],
                                                     params: dict[str, str],
                                                     fields: list[str]) -> None:
    answer = client.get(API, headers=auth, params=params)  # an owner's token (of `team`)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["code"] == "bad_request" and "nothing was exported" in body["message"]
    assert [p["field"] for p in body["problems"]] == fields
    assert all(p["hint"] for p in body["problems"])
    with pytest.raises(BadRequest) as refused:  # the CLI's offline path: the same problems
        parse_evidence_filters(
            namespace=params.get("namespace"), skill=params.get("skill"),
            since=params.get("since"), until=params.get("until"),
            tiers=[params["tier"]] if "tier" in params else [],
            kinds=[params["kind"]] if "kind" in params else [])
    assert [p.field for p in refused.value.problems] == fields


def test_the_cli_exports_through_the_server_and_offline(world: World, client: TestClient,
                                                        tmp_path: Path) -> None:
    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["--server", SERVER, *args], obj={"http": client},
                                  catch_exceptions=False)

    out = tmp_path / "acme.jsonl"
    token = world.headers["acme"]["Authorization"].split()[1]
    done = run("--token", token, "export-evidence", "--kind", "outcome", "--tier", "gold",
               "--out", str(out))
    assert done.exit_code == 0, done.output
    assert "exported 1 lines" in done.stderr
    assert [json.loads(line)["tier"] for line in out.read_text().splitlines()] == ["gold"]
    printed = run("--token", token, "export-evidence", "-n", "acme", "--kind", "review")
    assert [json.loads(line)["decision"] for line in printed.stdout.splitlines()] == [
        "approved", "rejected"]
    refused = run("--token", token, "export-evidence", "-n", "beta", "--out",
                  str(tmp_path / "no.jsonl"))
    assert refused.exit_code == 3 and not (tmp_path / "no.jsonl").exists()
    bad = run("--token", token, "export-evidence", "--tier", "tin")
    assert bad.exit_code != 0 and "tier" in bad.stderr
    offline = run("export-evidence", "--home", str(world.registry.settings.home),
                  "--kind", "proposal")
    assert offline.exit_code == 0, offline.output
    assert len(offline.stdout.splitlines()) == 3


REPORTS = 100_000


@pytest.mark.sqlite_only
def test_a_100k_report_export_streams_in_bounded_memory(registry: Registry) -> None:
    """On SQLite alone: what it tests is the service's streaming, the same over any backend
    (the keyset pages' SQL is the storage contract's, on both), and filling PostgreSQL with
    100,000 reports would double its time."""
    registry.create_token("bulk")
    publish(registry, "bulk", "csv", "1.0.0", "Read the CSV.")
    start = NOW - timedelta(days=30)
    for first in range(0, REPORTS, 20_000):
        rows = [NewOutcome("r" * 64, f"{i:08d}", "1.0.0", "success" if i % 4 else "failure",
                           None if i % 4 else "error", 0.5 if i % 4 else -0.5,
                           '{"retries": 1}', "agent-x", "model-y", "c",
                           start + timedelta(seconds=i * 20))
                for i in range(first, first + 20_000)]
        registry.store.outcomes.record_outcomes("bulk", "csv", rows, decay=decay_factor,
                                                ema=ema_update)
        del rows
    gc.collect()
    before = rss()
    lines = registry.export_evidence(OPERATOR, parse_evidence_filters(namespace="bulk"))
    began = time.perf_counter()
    count = written = peak = 0
    last = ""
    for chunk in evidence_jsonl(lines):  # as the route and the CLI write it: then dropped
        count += chunk.count("\n")
        written += len(chunk)
        last = chunk
        peak = max(peak, rss() - before)
    seconds = time.perf_counter() - began
    assert count == REPORTS
    assert json.loads(last.splitlines()[-1])["at"] == (
        start + timedelta(seconds=(REPORTS - 1) * 20)).isoformat()  # in time order, all
    # One page (1000 rows) and one chunk (200 lines) at a time: the resident size grows by
    # a few MiB whatever the export's size; holding the lines (or only their text, ~35 MiB)
    # would grow it past the bound.
    assert peak < 16 << 20, f"grew {peak / 2**20:.1f} MiB for {written / 2**20:.1f} MiB out"
    assert peak * 2 < written
    print(f"exported {REPORTS} reports in {seconds:.1f} s, resident size grew "
          f"{peak / 2**20:.1f} MiB for {written / 2**20:.1f} MiB of lines")


def rss() -> int:
    """This process's resident size now, in bytes (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()
