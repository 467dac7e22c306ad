"""The OpenAPI document: valid OpenAPI 3.0, every reference resolves, every success answer
of the native JSON API declares its body, and real answers of every native operation (a
walk through publish, catalogue, checks, outcomes, proposals, accounts, review and audit)
match what the document declares, schema and media type."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.core import media_types
from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR
from starlette.testclient import TestClient

from skills_hub.config import Settings
from skills_hub.search.engine import Gap
from skills_hub.services import Registry
from skills_hub.web.app import create_app

from .conftest import skill_md

PASSWORD = "correct horse battery staple"
API = "/api/v1"
SKILL = API + "/skills/{namespace}/{name}"
VERSION = SKILL + "/versions/{version}"
RAW = {f"{VERSION}/archive.{{fmt}}", f"{VERSION}/files/{{path}}"}  # bytes, not JSON
FLAGGED = "Say hello.\n\nFetch the names with `curl -k https://example.com/names.json`.\n"
FLAGGED_RULE = "insecure-tls.verification-off"
NEEDS_OIDC = {("POST", API + "/auth/device"), ("POST", API + "/auth/device/token")}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(home=tmp_path / "data", seed=False, semantic="off", sandbox="off")
    registry = Registry(settings)
    registry.start()
    registry.add_user("root", password=PASSWORD, operator=True)
    with TestClient(create_app(settings, registry)) as test_client:
        yield test_client
    registry.close()


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def native(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in doc["paths"].items():
        if path.startswith(API + "/"):
            for method, operation in operations.items():
                yield method.upper(), path, operation


def test_the_document_is_valid_openapi_3_0_and_every_reference_resolves(
        doc: dict[str, Any]) -> None:
    OPENAPI_30_VALIDATOR.validate(doc)
    components = doc["components"]["schemas"]

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = set(refs(doc))
    assert found, "no references at all"
    for target in found:
        assert target.startswith("#/components/schemas/"), target
        assert target.rsplit("/", 1)[1] in components, f"{target} does not resolve"
    unused = set(components) - {t.rsplit("/", 1)[1] for t in found}
    assert not unused, f"components no operation uses: {sorted(unused)}"
    schemathesis.openapi.from_dict(doc)  # and schemathesis loads it


def test_every_json_success_answer_of_the_native_api_declares_its_schema(
        doc: dict[str, Any]) -> None:
    gets = 0
    for method, path, operation in native(doc):
        for status, response in operation["responses"].items():
            if not str(status).startswith("2"):
                continue
            content = response.get("content")
            assert content, f"{method} {path} {status} declares no media type"
            if path in RAW:
                assert "application/json" not in content or \
                    "schema" not in content["application/json"], (method, path)
                continue
            assert "schema" in content.get("application/json", {}), \
                f"{method} {path} {status} declares no JSON schema"
            gets += method == "GET" and status == "200"
    assert gets >= 20


def test_no_docstring_names_an_unknown_schema() -> None:
    from skills_hub.web.openapi import _expand_responses

    with pytest.raises(KeyError, match="NoSuchThing"):
        _expand_responses({"responses": {"200": {"description": "x",
                                                 "schema": "NoSuchThing"}}}, "GET /x")


class Walk:
    """Calls the API and checks each answer against the document; records which operations
    answered with a success."""

    def __init__(self, client: TestClient, doc: dict[str, Any]) -> None:
        self.client = client
        self.schema = schemathesis.openapi.from_dict(doc)
        self.doc = doc
        self.succeeded: set[tuple[str, str]] = set()

    def __call__(self, method: str, template: str, status: int = 200, *,
                 client: TestClient | None = None, **kwargs: Any) -> httpx.Response:
        params = {k: kwargs.pop(k) for k in list(kwargs) if "{" + k + "}" in template}
        response = (client or self.client).request(method, template.format(**params),
                                                   **kwargs)
        assert response.status_code == status, (method, template, response.text)
        self.check(method, template, response)
        if 200 <= status < 300:
            self.succeeded.add((method, template))
        return response

    def check(self, method: str, template: str, response: httpx.Response) -> None:
        responses = self.doc["paths"][template][method.lower()]["responses"]
        declared = responses.get(str(response.status_code))
        assert declared is not None, f"{method} {template}: {response.status_code} undeclared"
        received = media_types.parse(response.headers["content-type"].split(";")[0])
        assert any(media_types.matches_parts(media_types.parse(option), received)
                   for option in declared.get("content", {})), \
            (method, template, response.headers["content-type"])
        self.schema[template][method].validate_response(response)


def test_real_answers_of_every_native_operation_match_the_document(
        client: TestClient, doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    call = Walk(client, doc)
    s = {"namespace": "acme", "name": "hello-world"}
    # accounts, sessions, orgs, tokens
    root = {"Authorization": "Bearer " + call(
        "POST", API + "/auth/login", json={"username": "root", "password": PASSWORD}
    ).json()["token"]}
    call("POST", API + "/users", 201, headers=root,
         json={"username": "bob", "password": PASSWORD})
    call("GET", API + "/users", headers=root)
    bob = {"Authorization": "Bearer " + call(
        "POST", API + "/auth/login", json={"username": "bob", "password": PASSWORD}
    ).json()["token"]}
    with TestClient(client.app) as browser:
        csrf = call("POST", API + "/auth/session", client=browser,
                    json={"username": "bob", "password": PASSWORD}).json()["csrf"]
        call("GET", API + "/auth/session", client=browser)
        call("POST", API + "/auth/logout", client=browser, headers={"X-CSRF-Token": csrf})
    call("POST", API + "/orgs", 201, headers=root, json={"name": "acme"})
    call("PUT", API + "/orgs/{org}/members/{username}", org="acme", username="bob",
         headers=root, json={"role": "publisher"})
    call("GET", API + "/orgs/{org}/members", org="acme", headers=root)
    call("POST", API + "/orgs/{org}/service-accounts", 201, org="acme", headers=root,
         json={"name": "ci"})
    call("POST", API + "/tokens", 201, headers=root, json={"account": "acme.ci"})
    call("GET", API + "/orgs/{org}/tokens", org="acme", headers=root)
    secret = call("POST", API + "/orgs/{org}/invitations", 201, org="acme", headers=root,
                  json={"role": "reader"}).json()["secret"]
    call("POST", API + "/invitations/{secret}/accept", secret=secret,
         json={"username": "cara", "password": PASSWORD})
    made = call("POST", API + "/tokens", 201, headers=root, json={"label": "spare"}).json()
    call("GET", API + "/tokens", headers=root)
    call("DELETE", API + "/tokens/{token_id}", token_id=made["token_info"]["id"],
         headers=root)
    call("GET", API + "/whoami", headers=root)
    # publishing and the catalogue
    files = [("files", ("SKILL.md", skill_md(body=FLAGGED)))]  # a finding, still safe
    call("POST", API + "/namespaces/{namespace}/skills", 201, namespace="acme",
         headers=root, files=files, params={"version": "1.0.0"})
    call("POST", API + "/namespaces/{namespace}/skills", 200, namespace="acme",
         headers=root, files=files)
    call("GET", API + "/namespaces")
    call("GET", API + "/skills")
    call("GET", API + "/search", params={"q": "hello"})
    call("GET", API + "/search", params={"q": ""})
    call("GET", API + "/gaps", 503, params={"q": "hello"})  # the model is off
    closest = Gap(True, 0.12, 0.3, ("acme", "hello-world"))  # as the loaded model would say
    monkeypatch.setattr(client.app.state.registry, "gap", lambda *a, **k: closest)
    call("GET", API + "/gaps", params={"q": "hello"})
    call("GET", SKILL, **s)
    call("GET", VERSION, version="1.0.0", **s)
    call("GET", VERSION, version="latest", params={"client_id": "c1"}, **s)
    for fmt in ("tar.gz", "zip"):
        call("GET", VERSION + "/archive.{fmt}", version="1.0.0", fmt=fmt, **s)
    call("GET", VERSION + "/files/{path}", version="1.0.0", path="SKILL.md", **s)
    # checks, outcomes, trust
    rule = SKILL + "/exceptions/{rule}"
    call("PUT", rule, rule=FLAGGED_RULE, headers=root, json={"reason": "a test server"}, **s)
    report = call("GET", VERSION + "/report", version="1.0.0", **s).json()
    assert [f["exception"] for f in report["findings"]] == ["a test server"]
    call("GET", SKILL + "/exceptions", **s)
    call("DELETE", rule, rule=FLAGGED_RULE, headers=root, **s)
    call("POST", SKILL + "/outcomes", headers=root, json={
        "id": "r1", "version": "1.0.0", "outcome": "success", "client": {"id": "c1"}}, **s)
    call("GET", SKILL + "/outcomes", **s)
    call("PUT", SKILL + "/trust", headers=root,
         json={"trust": "blocked", "reason": "checking"}, **s)
    call("PUT", SKILL + "/trust", headers=root,
         json={"trust": "community", "reason": "checked"}, **s)
    call("GET", SKILL + "/resolve", params={"client_id": "c1"}, **s)
    # proposals
    proposal = call("POST", SKILL + "/proposals", 201, headers=root, json={
        "base_version": "1.0.0", "reasoning": "greet politely",
        "edits": [{"op": "append", "content": "\nSay it politely.\n"}],
        "evidence": {"failures": 2}}, **s).json()
    call("GET", SKILL + "/proposals", **s)
    call("GET", API + "/namespaces/{namespace}/proposals", namespace="acme")
    call("GET", SKILL + "/proposals/{proposal_id}", proposal_id=proposal["id"], **s)
    call("GET", API + "/review", headers=root)
    call("POST", SKILL + "/proposals/{proposal_id}/review", proposal_id=proposal["id"],
         headers=root, json={"decision": "reject", "comment": "not now"}, **s)
    call("PUT", API + "/namespaces/{namespace}/policy", namespace="acme", headers=root,
         json={"policy": "review"})
    # namespace settings and required review
    call("GET", API + "/namespaces/{namespace}/settings", namespace="acme", headers=root)
    call("PUT", API + "/namespaces/{namespace}/visibility", namespace="acme",
         headers=root, json={"visibility": "public"})
    call("PUT", API + "/namespaces/{namespace}/release-policy", namespace="acme",
         headers=root, json={"policy": "review"})
    held = []
    for version, body in (("1.1.0", "Say hello twice."), ("1.2.0", "Say hello thrice.")):
        held.append(call("POST", API + "/namespaces/{namespace}/skills", 202,
                         namespace="acme", headers=bob, params={"version": version},
                         files=[("files", ("SKILL.md", skill_md(body=body)))]
                         ).json()["release"]["id"])
    call("GET", API + "/namespaces/{namespace}/releases", namespace="acme", headers=root)
    call("GET", API + "/review", headers=root)
    call("GET", API + "/releases/{release_id}", release_id=held[0], headers=root)
    call("POST", API + "/releases/{release_id}/approve", release_id=held[0], headers=root,
         json={"comment": "fine"})
    call("POST", API + "/releases/{release_id}/reject", release_id=held[1], headers=root,
         json={"comment": "not yet"})
    # audit, and leaving
    call("GET", API + "/audit", headers=root)
    call("GET", API + "/audit", headers=root, params={"format": "jsonl"})
    call("DELETE", API + "/orgs/{org}/members/{username}", org="acme", username="cara",
         headers=root)
    call("DELETE", API + "/orgs/{org}", org="acme", headers=root)
    call("POST", API + "/auth/device", 404)  # OpenID Connect is not configured

    everything = {(method, path) for method, path, _ in native(doc)}
    missing = everything - call.succeeded - NEEDS_OIDC
    assert not missing, f"operations the walk never answered with a success: {missing}"
