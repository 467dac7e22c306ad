"""What an operator watches: /metrics, the request id, the JSON log lines, /livez and
/readyz; in process, then on real servers (`skills-hub serve`, one worker and two)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from starlette.routing import Route
from starlette.testclient import TestClient

from skills_hub import logs, metrics
from skills_hub.config import Settings
from skills_hub.search.embedder import Embedder
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.store.cache import ContentCache, FactCache, ImmutableFiles
from skills_hub.web.app import create_app
from skills_hub.web.observability import request_id
from tests.conftest import skill_md, token_principal
from tests.live import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
REQUESTS = "skills_hub_http_requests_total"
SKILL_ROUTE = "/api/v1/skills/{namespace}/{name}"


def parse(text: str) -> Samples:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client: TestClient | httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# -- /metrics ---------------------------------------------------------------------------


def test_a_request_is_counted_under_its_route_template(client: TestClient) -> None:
    before = scrape(client)
    assert client.get("/api/v1/skills/team/no-such-skill").status_code == 404
    after = scrape(client)
    labels = {"route": SKILL_ROUTE, "method": "GET", "status": "404"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 1
    count = "skills_hub_http_request_duration_seconds_count"
    assert value(after, count, route=SKILL_ROUTE) - value(before, count, route=SKILL_ROUTE) == 1
    assert value(after, "skills_hub_http_requests_in_progress") >= 1  # the scrape itself


def test_no_label_is_a_path_or_a_skill_name(app: Any, client: TestClient,
                                            registry: Registry) -> None:
    secret = registry.create_token("secretns", private=True)
    private = {"Authorization": f"Bearer {secret}"}
    md = skill_md("hidden-ledger", description="A private helper about quarterly numbers.")
    assert client.post("/api/v1/namespaces/secretns/skills",
                       files=[("files", ("SKILL.md", md))], headers=private).status_code == 201
    for path in ("/api/v1/skills/secretns/hidden-ledger",  # 404 without its token
                 "/api/v1/skills/secretns/hidden-ledger/versions/0.1.0/files/SKILL.md",
                 "/secretns/hidden-ledger", "/git/secretns/hidden-ledger.git/info/refs",
                 "/no/such/route/zz-unknown-qx", "/zz-unknown-qx"):
        assert client.get(path).status_code in (401, 404), path
    assert client.request("BREW", "/zz-unknown-qx").status_code in (404, 405)
    text = client.get("/metrics").text
    for word in ("secretns", "hidden-ledger", "zz-unknown-qx", "BREW"):
        assert word not in text
    templates = {getattr(route, "path_format", None) for route in app.routes}
    routes = {dict(labels).get("route") for _, labels in parse(text)} - {None}
    assert routes <= templates | {"unmatched"}, routes - templates
    assert {SKILL_ROUTE, "/git/{path}", "unmatched"} <= routes


def test_scrapers_asking_for_openmetrics_get_it(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_publishes_verdicts_and_outcomes_are_counted() -> None:
    before = parse(metrics.exposition("")[0].decode())
    metrics.observe_publish("published")
    metrics.observe_publish("dangerous_skill")
    metrics.observe_publish("Not A Code")  # anything unexpected is `other`, never a label
    metrics.observe_verdict("caution", "publish")
    metrics.observe_outcomes(received=5, recorded=3)
    after = parse(metrics.exposition("")[0].decode())

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("skills_hub_publishes_total", result="published") == 1
    assert grew("skills_hub_publishes_total", result="dangerous_skill") == 1
    assert grew("skills_hub_publishes_total", result="other") == 1
    assert grew("skills_hub_check_verdicts_total", verdict="caution", source="publish") == 1
    assert grew("skills_hub_outcome_reports_received_total") == 5
    assert grew("skills_hub_outcome_reports_recorded_total") == 3


def test_caches_count_hits_and_misses(tmp_path: Path, registry: Registry) -> None:
    before = parse(metrics.exposition("")[0].decode())
    content: ContentCache[bytes] = ContentCache(1 << 20, len, name="test_content")
    for _ in range(3):
        content.get_or_make("k", lambda: b"made")
    facts: FactCache[str, str] = FactCache(registry.store.generation, name="test_facts")
    facts.get_or_make("k", lambda: "fact")
    facts.get_or_make("k", lambda: "fact")
    files = ImmutableFiles(tmp_path / "files", name="test_files")
    files.ensure("ab" * 32, "txt", b"x")
    files.ensure("ab" * 32, "txt", b"x")
    after = parse(metrics.exposition("")[0].decode())
    for cache, hits, misses in (("test_content", 2, 1), ("test_facts", 1, 1),
                                ("test_files", 1, 1)):
        assert value(after, "skills_hub_cache_hits_total", cache=cache) \
            - value(before, "skills_hub_cache_hits_total", cache=cache) == hits
        assert value(after, "skills_hub_cache_misses_total", cache=cache) \
            - value(before, "skills_hub_cache_misses_total", cache=cache) == misses


def test_the_embed_queue_and_model_state_are_read_at_scrape(client: TestClient) -> None:
    samples = scrape(client)
    # Semantic search is off in tests: no queue to show, and the state says so.
    assert ("skills_hub_embed_queue", ()) not in samples
    assert value(samples, "skills_hub_embedder_state", state="off") == 1
    assert value(samples, "skills_hub_embedder_state", state="ready") == 0


def test_the_embed_queue_counts_skills_waiting_for_a_vector(
        registry: Registry, settings: Settings, embedder: Embedder) -> None:
    # Published while semantic search was off: the skill has no vector yet.
    registry.publish("team", Bundle({"SKILL.md": skill_md("weekly-report")}),
                     principal=token_principal(registry, "team"))
    # The same home with the model loaded; not started, so its worker does not embed yet.
    semantic = Registry(replace(settings, semantic="auto"), embedder=embedder)
    try:
        with TestClient(create_app(semantic.settings, semantic)) as client:
            waiting = scrape(client)
            assert semantic.search_engine.embed_pending() == 1
            done = scrape(client)
    finally:
        semantic.close()
    assert value(waiting, "skills_hub_embed_queue") == 1
    assert value(waiting, "skills_hub_embedder_state", state="ready") == 1
    assert value(done, "skills_hub_embed_queue") == 0


def test_a_publish_and_an_outcome_batch_through_the_api(
        client: TestClient, auth: dict[str, str]) -> None:
    """End to end through the HTTP API: the requests under their templates, and the publish,
    its checks verdict and the outcome report counted by the services."""
    before = scrape(client)
    md = skill_md("weekly-report")
    published = client.post("/api/v1/namespaces/team/skills",
                            files=[("files", ("SKILL.md", md))], headers=auth)
    assert published.status_code == 201, published.text
    batch = {"outcomes": [{"id": uuid.uuid4().hex, "version": "0.1.0", "outcome": "success"}]}
    reported = client.post("/api/v1/skills/team/weekly-report/outcomes", json=batch,
                           headers=auth)
    assert reported.status_code == 200, reported.text
    after = scrape(client)
    for route, status in (("/api/v1/namespaces/{namespace}/skills", "201"),
                          (SKILL_ROUTE + "/outcomes", "200")):
        labels = {"route": route, "method": "POST", "status": status}
        assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 1
    for name, labels in (("skills_hub_publishes_total", {"result": "published"}),
                         ("skills_hub_check_verdicts_total",
                          {"verdict": "safe", "source": "publish"}),
                         ("skills_hub_outcome_reports_received_total", {}),
                         ("skills_hub_outcome_reports_recorded_total", {})):
        assert value(after, name, **labels) - value(before, name, **labels) == 1, name


# -- the request id ----------------------------------------------------------------------


def test_every_answer_has_a_request_id(client: TestClient, auth: dict[str, str]) -> None:
    answers = {
        "ok": client.get("/livez"),
        "not found": client.get("/no/such/route"),
        "refused": client.post("/api/v1/namespaces/team/skills",
                               files=[("files", ("SKILL.md", b"not a skill"))], headers=auth),
        "bad host": client.get("/livez", headers={"Host": "evil.example"}),
        "git": client.get("/git/team/none.git/info/refs?service=git-upload-pack"),
    }
    assert [a.status_code for a in answers.values()][:4] == [200, 404, 422, 400]
    ids = [a.headers["x-request-id"] for a in answers.values()]
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in ids), ids
    assert len(set(ids)) == len(ids)


def test_an_unhandled_error_has_its_request_id_and_logs_it(app: Any) -> None:
    def boom(request: Any) -> None:
        raise RuntimeError("the disk caught fire")

    app.router.routes.insert(0, Route("/boom", boom))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            answer = client.get("/boom", headers={"X-Request-ID": "boom-1"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "boom-1"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "boom-1"]
    error = next(line for line in mine if line["logger"] == "skills_hub.web.errors")
    assert error["level"] == "ERROR" and "the disk caught fire" in error["exception"]
    access = next(line for line in mine if line["logger"] == "skills_hub.access")
    assert (access["route"], access["status"], access["path"]) == ("/boom", 500, "/boom")


@pytest.mark.parametrize("given", [
    "abc", "req-1.2:3_X", "a" * 128, "0123456789abcdef0123456789abcdef"])
def test_a_valid_incoming_id_is_echoed(client: TestClient, given: str) -> None:
    assert client.get("/livez", headers={"X-Request-ID": given}).headers["x-request-id"] \
        == given


@pytest.mark.parametrize("given", [
    "a" * 129, "has space", "quote\"d", "semi;colon", "slash/ed", "", "tab\there"])
def test_an_invalid_incoming_id_is_replaced(client: TestClient, given: str) -> None:
    returned = client.get("/livez", headers={"X-Request-ID": given}).headers["x-request-id"]
    assert returned != given and len(returned) == 32


@pytest.mark.parametrize("raw", [b"new\nline", b"cr\rlf", b"nul\x00", "é".encode(), b"a" * 4096])
def test_ids_no_http_client_would_send_are_replaced(app: Any, raw: bytes) -> None:
    """Straight through ASGI: what a broken proxy might pass on."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/livez", "raw_path": b"/livez",
             "root_path": "", "query_string": b"", "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1"), (b"x-request-id", raw)]}
    assert request_id(scope) != raw.decode("latin-1")
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    assert start["status"] == 200
    returned = dict(start["headers"])[b"x-request-id"]
    assert returned != raw and len(returned) == 32


def test_the_access_line_carries_the_request_id(client: TestClient,
                                                caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="skills_hub.access"):
        client.get("/api/v1/skills/team/nothing", headers={"X-Request-ID": "trace-42"})
    [record] = [r for r in caplog.records if getattr(r, "request_id", None) == "trace-42"]
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["request_id"] == "trace-42" and line["logger"] == "skills_hub.access"
    assert (line["method"], line["route"], line["path"], line["status"]) == (
        "GET", SKILL_ROUTE, "/api/v1/skills/team/nothing", 404)
    assert line["duration_ms"] > 0 and line["client"] == "testclient" and line["bytes"] > 0
    assert line["time"].endswith("Z") and line["level"] == "INFO"
    assert line["message"].startswith("GET /api/v1/skills/team/nothing 404 ")


def test_a_message_cannot_forge_a_second_line() -> None:
    record = logging.LogRecord("skills_hub.x", logging.WARNING, __file__, 1,
                               'name "%s"', ('evil\n{"level": "ERROR"}',), None)
    text = logs.JsonFormatter().format(record)
    assert "\n" not in text and json.loads(text)["message"].startswith('name "evil\n')


def test_a_text_line_cannot_be_forged_either() -> None:
    record = logging.LogRecord("skills_hub.access", logging.INFO, __file__, 1, "GET %s 404",
                               ("/x\r\n2030-01-01 00:00:00 ERROR forged: y",), None)
    text = logs.TextFormatter().format(record)
    assert "\n" not in text and "\r" not in text and text.endswith("forged: y 404")


def test_auto_is_json_unless_stderr_is_a_terminal(tmp_path: Path) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    auto = Settings(home=tmp_path)
    assert logs.resolved_format(auto, io.StringIO()) == "json"
    assert logs.resolved_format(auto, Tty()) == "text"
    assert logs.resolved_format(Settings(home=tmp_path, log_format="json"), Tty()) == "json"


# -- liveness and readiness ---------------------------------------------------------------


@pytest.mark.sqlite_only  # a test's PostgreSQL database comes migrated
def test_ready_only_once_migrations_are_applied(settings: Settings) -> None:
    settings.home.mkdir(parents=True)
    registry = Registry(settings)
    try:
        with TestClient(create_app(settings, registry)) as client:
            assert client.get("/livez").json() == {"status": "ok"}
            waiting = client.get("/readyz")
            assert waiting.status_code == 503
            body = waiting.json()
            assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
            assert body["checks"]["migrations"].startswith("not applied: m001")
            registry.start()
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"status": "ok",
                                    "checks": {"database": "ok", "migrations": "ok"}}
    finally:
        registry.close()


def test_probes_and_metrics_stay_out_of_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not {"/livez", "/readyz", "/metrics", "/api/v1/health"} & set(paths)


# -- real servers --------------------------------------------------------------------------


def serve(home: Path, stderr: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """`skills-hub serve` on a free port with its stderr in a file, once it answers."""
    port = free_port()
    env = {**os.environ, "SKILLS_HUB_HOME": str(home), "SKILLS_HUB_NO_SEED": "1",
           "SKILLS_HUB_LOG_FORMAT": "json"}
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "skills_hub.cli", "serve", "--port", str(port), *args],
            env=env, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the server did not start: " + stderr.read_text()[-2000:])


@pytest.fixture
def stopping() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)


@pytest.mark.slow
def test_a_real_server_logs_one_json_object_a_line(
        tmp_path: Path, stopping: list[subprocess.Popen[bytes]]) -> None:
    stderr = tmp_path / "stderr.log"
    process, url = serve(tmp_path / "data", stderr)
    stopping.append(process)
    with httpx.Client(base_url=url) as http:
        ok = http.get("/livez", headers={"X-Request-ID": "live-1"})
        missing = http.get("/api/v1/skills/team/zz-missing")
        refused = http.get("/livez", headers={"Host": "evil.example"})
    assert ok.headers["x-request-id"] == "live-1"
    assert missing.status_code == 404 and len(missing.headers["x-request-id"]) == 32
    assert refused.status_code == 400 and len(refused.headers["x-request-id"]) == 32
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    lines = [json.loads(line) for line in stderr.read_text().splitlines() if line.strip()]
    assert lines[0]["message"].startswith("skills-hub ") and lines[0]["logger"] == \
        "skills_hub.serve"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    access = {line["request_id"]: line for line in lines if line["logger"] == "skills_hub.access"}
    assert access["live-1"]["route"] == "/livez" and access["live-1"]["status"] == 200
    assert access[missing.headers["x-request-id"]]["route"] == SKILL_ROUTE
    assert access[refused.headers["x-request-id"]]["status"] == 400
    assert access["live-1"]["client"] == "127.0.0.1"


@pytest.mark.slow
def test_two_workers_metrics_add_up(tmp_path: Path,
                                    stopping: list[subprocess.Popen[bytes]]) -> None:
    home = tmp_path / "data"
    process, url = serve(home, tmp_path / "stderr.log", "--workers", "2")
    stopping.append(process)
    [folder] = (home / "run").glob("metrics-*")
    assert folder.name == f"metrics-{process.pid}"
    # Each request on a new connection: each worker listens on a socket of its own and the
    # kernel spreads new connections over them by their addresses, so both answer a fair
    # share (all 40 to one worker: 2 in 2^40).
    sent = 40
    for _ in range(sent):
        assert httpx.get(url + "/livez").status_code == 200
    # A request is counted as its answer ends, which the client may see first: on a busy
    # machine the last count can land a moment after the last answer.
    deadline = time.monotonic() + 10
    while sum((workers := per_worker(folder, tmp_path)).values()) < sent \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(workers) == 2 and min(workers.values()) >= 8, workers
    assert sum(workers.values()) == sent
    for _ in range(4):  # whichever worker answers the scrape, it counts them all
        with httpx.Client(base_url=url) as fresh:
            samples = scrape(fresh)
        assert value(samples, REQUESTS, route="/livez", method="GET", status="200") == sent
    # A worker killed outright: the supervisor starts another; its counts stay in the sum, its
    # live gauge (requests in progress) goes at the next scrape.
    victim = int(next(folder.glob("gauge_livesum_*.db")).stem.rsplit("_", 1)[1])
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while len(list(folder.glob("gauge_livesum_*.db"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the new worker's file
    with httpx.Client(base_url=url) as fresh:
        samples = scrape(fresh)
    assert value(samples, REQUESTS, route="/livez", method="GET", status="200") == sent
    assert not (folder / f"gauge_livesum_{victim}.db").exists()
    assert (folder / f"counter_{victim}.db").exists()
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    assert not folder.exists()


def per_worker(folder: Path, tmp_path: Path) -> dict[str, float]:
    """/livez answers counted by each worker, read from its own counter file."""
    counts = {}
    for path in folder.glob("counter_*.db"):
        alone = tmp_path / "alone" / path.stem
        alone.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        for family in registry.collect():
            for s in family.samples:
                if s.name == REQUESTS and s.labels.get("route") == "/livez" and s.value:
                    counts[path.stem] = s.value
    return counts
