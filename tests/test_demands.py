"""The demand list (issue 17): gap answers recorded and clustered by meaning with the real
MiniLM model, closed by a publish that answers them, found again by the agents that asked,
private to the namespace they were asked in, rate limited per token; and bad input."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from skills_hub.access.principal import OPERATOR, Principal
from skills_hub.cli import main
from skills_hub.config import Settings
from skills_hub.domain import NewGapAsk, now_iso
from skills_hub.learning.demands import JOIN_SIMILARITY, Clustering
from skills_hub.search.embedder import Embedder
from skills_hub.services import Registry
from skills_hub.skill.bundle import Bundle
from skills_hub.web.app import create_app

from .conftest import skill_md

API = "/api/v1"
INVOICES = ("convert a pdf invoice into a spreadsheet", "turn PDF invoices into Excel sheets",
            "parse invoice PDFs into spreadsheet rows")
HAIKU = "write a haiku about the ocean"
PAGER = "rotate the on-call pager schedule every week"
ANSWER = ("pdf-invoice-to-spreadsheet",
          "Converts PDF invoices into spreadsheet rows. It reads each invoice PDF and writes "
          "its lines to Excel or CSV.")
PAGER_SKILL = ("pager-rotation", "Rotates the on-call pager schedule each week and tells "
               "the next person on call.")


@dataclasses.dataclass
class Hub:
    registry: Registry
    http: TestClient
    tokens: dict[str, str]

    def principal(self, who: str) -> Principal:
        return self.registry.authenticate(self.tokens[who])

    def get(self, path: str, who: str | None = None, **params: str) -> dict[str, object]:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        answer = self.http.get(API + path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def cli(self, who: str, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["--server", "http://testserver", "--token",
                                           self.tokens[who], *args],
                                    obj={"http": self.http})
        return result.exit_code, result.output


def publish(registry: Registry, namespace: str, name: str, description: str) -> None:
    registry.publish(namespace, Bundle({"SKILL.md": skill_md(name, description=description,
                                                             body="Follow the steps.")}),
                     principal=OPERATOR)


@pytest.fixture
def make_hub(tmp_path: Path, embedder: Embedder,
             new_database: Callable[[], str | None]) -> Iterator[Callable[..., Hub]]:
    """A registry with the real model, two unrelated public skills (so searches run
    semantically and the tasks below are gaps), and tokens of distinct accounts: alice,
    bob, carol (public namespaces) and acme (a member of the private namespace acme)."""
    made: list[Registry] = []

    def make(**settings: float) -> Hub:
        registry = Registry(Settings(home=tmp_path / f"hub{len(made)}", seed=False,
                                     sandbox="off", database_url=new_database(), **settings),
                            embedder=embedder)
        made.append(registry)
        registry.start()
        publish(registry, "tools", "csv-columns", "Summarises the columns of a CSV file.")
        publish(registry, "tools", "branch-cleanup", "Deletes git branches already merged.")
        tokens = {who: registry.create_token(who) for who in ("alice", "bob", "carol")}
        tokens["acme"] = registry.create_token("acme", private=True)
        return Hub(registry, TestClient(create_app(registry.settings, registry)), tokens)

    yield make
    for registry in made:
        registry.close()


def test_paraphrased_gaps_cluster_into_one_demand_that_a_publish_answers(
        make_hub: Callable[..., Hub]) -> None:
    hub = make_hub()
    assert hub.get("/search", "alice", q=INVOICES[0])["gap"]["gap"]  # type: ignore[index]
    hub.get("/gaps", "bob", q=INVOICES[1])
    hub.get("/search", "carol", q=INVOICES[2])
    hub.get("/gaps", "alice", q=INVOICES[0])  # the same asker again: one more ask
    hub.get("/search", "bob", q=HAIKU)
    hub.get("/search", "carol", q="extract invoice tables from pdfs", tag="finance")  # a filter
    hub.registry.flush_demands()

    listed = hub.get("/demands")["demands"]
    assert [(d["askers"], d["asks"], d["namespace"]) for d in listed] == \
        [(3, 4, None), (1, 1, None)]  # type: ignore[index]
    invoices, haiku = listed  # type: ignore[misc]
    assert invoices["representative"] in INVOICES and haiku["representative"] == HAIKU
    detail = hub.get(f"/demands/{invoices['id']}", "alice")
    assert {p["query"] for p in detail["phrasings"]} == set(INVOICES)  # type: ignore[attr-defined]
    assert detail["asked_by_you"] and detail["status"] == "open" and detail["answer"] is None
    assert not hub.get(f"/demands/{invoices['id']}", "acme")["asked_by_you"]

    publish(hub.registry, "tools", *ANSWER)
    mine = hub.get("/demands", "alice", mine="true", status="all")["demands"]
    assert [d["id"] for d in mine] == [invoices["id"]]  # type: ignore[index]
    answer = hub.get(f"/demands/{invoices['id']}", "carol")["answer"]
    assert answer["namespace"] == "tools" and answer["name"] == ANSWER[0]  # type: ignore[index]
    assert answer["version"] == "0.1.0" and answer["similarity"] >= 0.3  # type: ignore[index]
    assert answer["install"] == f"skills-hub install tools/{ANSWER[0]}@0.1.0"  # type: ignore[index]
    assert [d["id"] for d in hub.get("/demands")["demands"]] == [haiku["id"]]  # type: ignore[index]
    code, out = hub.cli("alice", "demands", "show", str(invoices["id"]))
    assert code == 0 and "answered" in out and f"tools/{ANSWER[0]}@0.1.0" in out, out
    code, out = hub.cli("alice", "demands", "--mine", "--status", "closed")
    assert code == 0 and f"#{invoices['id']}" in out and "3 askers" in out, out


def test_a_private_namespaces_demands_stay_private(make_hub: Callable[..., Hub]) -> None:
    hub = make_hub()
    hub.get("/search", "acme", q=PAGER, namespace="acme")  # a member, inside acme
    hub.get("/search", "alice", q="a sneaky question", namespace="acme")  # an outsider
    hub.get("/gaps", "alice", q=PAGER)  # the whole registry
    hub.registry.flush_demands()

    ours = hub.get("/demands", "acme", namespace="acme")["demands"]
    assert [(d["representative"], d["namespace"]) for d in ours] == [(PAGER, "acme")]  # type: ignore[index]
    private_id = ours[0]["id"]  # type: ignore[index]
    assert len(hub.get("/demands", "acme")["demands"]) == 2  # type: ignore[arg-type]
    for who in ("alice", None):  # an outsider, and anonymous
        shown = hub.get("/demands", who, status="all")["demands"]
        assert [d["namespace"] for d in shown] == [None], who  # type: ignore[index]
        headers = {"Authorization": f"Bearer {hub.tokens[who]}"} if who else {}
        assert hub.http.get(f"{API}/demands/{private_id}", headers=headers).status_code == 404
        assert hub.http.get(f"{API}/demands", params={"namespace": "acme"},
                            headers=headers).status_code == 404
    page = hub.http.get("/demands", params={"status": "all"})
    assert page.status_code == 200 and PAGER in page.text  # the registry-wide one
    assert f'href="/demands/{private_id}"' not in page.text and "sneaky" not in page.text
    assert hub.http.get(f"/demands/{private_id}").status_code == 404
    code, out = hub.cli("alice", "demands", "--status", "all")
    assert code == 0 and "acme" not in out and f"#{private_id} " not in out, out
    code, out = hub.cli("alice", "demands", "show", str(private_id))
    assert code != 0 and "does not exist" in out, out

    publish(hub.registry, "tools", "pager-tips", PAGER_SKILL[1])  # public: not acme's answer
    assert hub.get(f"/demands/{private_id}", "acme")["status"] == "open"
    registry_wide = hub.get("/demands", "alice", status="all")["demands"]
    assert registry_wide[0]["status"] == "closed"  # type: ignore[index]
    hub.get("/gaps", "alice", q=PAGER.replace("every week", "weekly"), namespace="bob")
    hub.registry.flush_demands()  # bob's namespace is public: alice's question is public
    publish(hub.registry, "acme", *PAGER_SKILL)
    closed = hub.get(f"/demands/{private_id}", "acme")
    assert closed["status"] == "closed" and closed["answer"]["namespace"] == "acme"  # type: ignore[index]
    assert hub.get("/demands", "bob", namespace="bob")["demands"][0]["status"] == "open"  # type: ignore[index]


def test_gap_answers_are_rate_limited_per_token(make_hub: Callable[..., Hub]) -> None:
    hub = make_hub(demand_rate=0.0001, demand_burst=2)
    alice, bob = hub.principal("alice"), hub.principal("bob")
    for query in (HAIKU, PAGER, INVOICES[0], "teach a parrot to say hello"):
        gap = hub.registry.gap(query, principal=alice, record=True)
        assert gap is not None and gap.detected
    hub.registry.gap(HAIKU, principal=bob, record=True)
    hub.registry.flush_demands()
    recorder = hub.registry.demand_recorder
    assert (recorder.recorded, recorder.limited) == (3, 2)
    rows = hub.registry.demands(OPERATOR, status="all").demands
    assert sorted((d.representative, d.askers) for d in rows) == \
        sorted([(HAIKU, 2), (PAGER, 1)])


BAD = [
    ("/demands/abc", 400), ("/demands/0", 400), ("/demands/-3", 400),
    ("/demands/99999999999999999999", 400), ("/demands/7", 404),
    ("/demands?limit=0", 400), ("/demands?limit=101", 400), ("/demands?offset=-1", 400),
    ("/demands?offset=x", 400), ("/demands?status=pending", 400), ("/demands?mine=maybe", 400),
    ("/demands?mine=true", 401), ("/demands?namespace=nobody", 404),
]


@pytest.mark.parametrize(("path", "status"), BAD)
def test_bad_input_is_a_clear_error(client: TestClient, path: str, status: int) -> None:
    answer = client.get(API + path)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["message"] and body["code"], body
    assert client.get(API + "/demands", params={"status": "all"}).json()["demands"] == []


def test_bad_page_input_is_an_error_page(client: TestClient) -> None:
    assert client.get("/demands/abc").status_code == 400
    assert client.get("/demands?status=nope").status_code == 400
    assert client.get("/demands/5").status_code == 404
    assert "No open demands" in client.get("/demands").text


def unit(seed: int, near: np.ndarray | None = None, noise: float = 0.0) -> bytes:
    rng = np.random.default_rng(seed)
    vec = rng.normal(size=384) if near is None else near + noise * rng.normal(size=384)
    return (vec / np.linalg.norm(vec)).astype(np.float32).tobytes()


def test_clustering_joins_near_vectors_and_keeps_far_ones_apart() -> None:
    base = np.frombuffer(unit(1), dtype=np.float32)
    clustering = Clustering()
    near, far = unit(2, base, 0.03), unit(3)
    assert clustering.nearest(near, [(7, unit(1)), (8, far)]) == 7
    assert clustering.nearest(far, [(7, unit(1))]) is None
    assert clustering.nearest(near, []) is None
    centroid = clustering.fold(unit(1), near)
    assert clustering.representative(centroid, [("a", unit(1)), ("b", far)]) == "a"
    assert JOIN_SIMILARITY > 0.3


def plant_demands(registry: Registry, private: str,
                  answer: tuple[str, str, str] = ("examples", "csv-analysis", "1.0.0")
                  ) -> tuple[int, int]:
    """Two demands written as the gap path writes them (for pages whose registry runs
    without the model): one of the whole registry, answered by `answer` (namespace, name,
    version), and one asked inside `private`. Returns their ids."""
    def ask(query: str, seed: int, asker: str, scope: str | None) -> int:
        return registry.store.demands.record_ask(NewGapAsk(
            query, unit(seed), "test-model", asker, scope, now_iso()), Clustering())

    public = ask("summarise a spreadsheet of survey answers", 11, "user:1", None)
    ask("summarise a spreadsheet of survey answers", 11, "user:2", None)
    registry.store.demands.close_demand(public, *answer, 0.52, now_iso())
    inside = ask("post the weekly report to the team channel", 12, "user:3", private)
    return public, inside
