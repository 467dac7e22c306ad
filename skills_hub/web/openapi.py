"""The OpenAPI document: each view's docstring YAML (Starlette's generator) completed with
what tools need and a docstring should not repeat: every path parameter, typed from the
route's converter, the JSON error body of every 4xx/5xx answer of the JSON APIs, and the
named schemas of the JSON bodies (SCHEMAS, components/schemas).

A docstring names a success body's schema with `schema:` in the response, which becomes
`content: {application/json: {schema: ...}}`: a name (`schema: Skill`) is a reference to
SCHEMAS (an unknown name is an error when the document is built), a mapping an inline schema.
Schemas follow the `*_json` renderers of web/api.py and web/accounts.py: `required` lists what
is always present, `nullable` marks what may be null, and extra properties stay allowed (a
field added later breaks no client). Docstrings quote a description that holds a comma
(YAML flow mappings split at commas)."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import BaseRoute, Route
from starlette.schemas import SchemaGenerator

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "description": "ISO 8601 date-time, UTC"}
SHA256: Schema = {"type": "string", "description": "hex sha256"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    """`schema` or null (a reference is wrapped: OpenAPI 3.0 ignores a $ref's siblings)."""
    if "$ref" in schema:
        return {"allOf": [schema], "nullable": True}
    return {**schema, "nullable": True}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(properties: dict[str, Schema], optional: tuple[str, ...] = (),
        description: str | None = None) -> Schema:
    """An object whose properties are all required but the `optional` ones; extra properties
    are allowed."""
    required = [k for k in properties if k not in optional]
    schema: Schema = {"type": "object", "properties": properties}
    if required:  # OpenAPI 3.0: `required` has at least one name
        schema["required"] = required
    if description:
        schema["description"] = description
    return schema


def extend(base: str, properties: dict[str, Schema], optional: tuple[str, ...] = (),
           description: str | None = None) -> Schema:
    """The `base` component with more properties."""
    schema: Schema = {"allOf": [ref(base), obj(properties, optional)]}
    if description:
        schema["description"] = description
    return schema


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


SKILL_VERDICT = enum("safe", "caution", "dangerous", "unchecked")
TRUST = enum("community", "verified", "trusted", "quarantined", "blocked")
NAME_URL = obj({"namespace": STRING, "name": STRING, "url": STRING})

SCHEMAS: dict[str, Schema] = {
    "Error": obj({
        "code": {"type": "string", "description": "stable, machine-readable"},
        "message": {"type": "string", "description": "what is wrong and how to fix it"},
        "hint": STRING,
        "problems": array(ref("Problem")),
    }, optional=("hint", "problems")),
    "Problem": obj({"field": STRING, "message": STRING, "hint": STRING,
                    "severity": {"type": "string", "description": "error or warning"}},
                   optional=("hint", "severity"),
                   description="one finding about the input: which field, what, how to fix"),
    # -- catalogue ----------------------------------------------------------------------------
    "Namespace": obj({"name": STRING, "visibility": STRING, "skills": INTEGER,
                      "git": {"type": "string", "description": "the namespace's git path"}}),
    "NamespaceList": obj({"namespaces": array(ref("Namespace"))}),
    "SkillSummary": obj({
        "namespace": STRING, "name": STRING, "description": STRING,
        "latest_version": STRING, "tags": array(STRING), "downloads": INTEGER,
        "created_at": TIME, "updated_at": TIME, "url": STRING,
        "install": {"type": "string", "description": "the CLI command that installs it"},
        "verdict": SKILL_VERDICT,
        "deprecated": {"type": "boolean", "description": "the latest version is dangerous"},
        "trust": TRUST,
    }, description="a skill as listed (its latest version)"),
    "SkillPage": obj({"skills": array(ref("SkillSummary")), "total": INTEGER,
                      "next_cursor": nullable(STRING)}),
    "Skill": extend("SkillSummary", {
        "visibility": STRING, "git": STRING, "versions": array(ref("Version"))},
        description="a skill with every version, newest first"),
    "Version": obj({
        "namespace": STRING, "name": STRING, "version": STRING, "description": STRING,
        "published_at": TIME, "commit": STRING,
        "tag": {"type": "string", "description": "<name>/v<version>"},
        "tag_sha": STRING, "content_sha256": SHA256, "url": STRING,
        "verdict": SKILL_VERDICT, "deprecated": BOOLEAN,
        "deprecated_reason": nullable(STRING),
        "report": {"type": "string", "description": "the URL of the checks report"},
    }),
    "File": obj({"path": STRING, "size": INTEGER, "sha256": SHA256, "executable": BOOLEAN}),
    "Archive": obj({"url": STRING, "sha256": SHA256, "size": INTEGER}),
    "VersionDetail": extend("Version", {
        "files": array(ref("File")),
        "frontmatter": {"type": "object", "description": "SKILL.md's YAML frontmatter"},
        "archives": obj({"tar.gz": ref("Archive"), "zip": ref("Archive")}),
        "install": STRING,
        "channel": {**enum("stable", "canary"),
                    "description": "for `latest` with a client_id: the channel it came from"},
    }, optional=("channel",)),
    # -- search -------------------------------------------------------------------------------
    "ScoreParts": obj({
        "keyword": nullable(obj({"rank": INTEGER, "bm25": NUMBER})),
        "semantic": nullable(obj({"rank": INTEGER, "similarity": NUMBER})),
        "exact_name": BOOLEAN, "relevance": NUMBER, "successes": NUMBER, "failures": NUMBER,
        "wilson": NUMBER, "new_skill_floor": BOOLEAN, "installs": NUMBER, "quality": NUMBER,
        "score": NUMBER,
    }, description="the terms of a result's score (docs/SEARCH.md)"),
    "SearchResult": extend("SkillSummary", {
        "version": STRING, "score": NUMBER, "score_parts": ref("ScoreParts"),
        "snippet": STRING,
        "snippet_html": {"type": "string", "description": "escaped, matches in <mark>"},
    }),
    "Gap": obj({"gap": BOOLEAN, "best_similarity": NUMBER, "threshold": NUMBER,
                "closest": nullable(NAME_URL)}),
    "SearchResults": obj({
        "query": STRING,
        "mode": {"type": "string", "description": "the mode that served"},
        "requested_mode": STRING,
        "semantic": {"type": "string", "description": "the embedding model's state"},
        "results": array(ref("SearchResult")), "next_cursor": nullable(STRING),
        "gap": nullable(ref("Gap")),
    }),
    "GapAnswer": extend("Gap", {"query": STRING}),
    # -- checks -------------------------------------------------------------------------------
    "Finding": obj({
        "rule": STRING, "family": STRING,
        "severity": enum("info", "low", "medium", "high", "critical"),
        "source": STRING, "file": nullable(STRING), "line": nullable(INTEGER),
        "message": STRING, "hint": STRING, "excerpt": STRING,
        "confidence": nullable(STRING),
        "exception": {**nullable(STRING), "description": "a reviewed exception's reason"},
    }),
    "Report": obj({
        "verdict": enum("safe", "caution", "dangerous"), "valid": BOOLEAN,
        "counts": {"type": "object", "additionalProperties": INTEGER,
                   "description": "findings weighing on the verdict, by severity"},
        "findings": array(ref("Finding")), "problems": array(ref("Problem")),
        "warnings": array(ref("Problem")), "sandbox": nullable({"type": "object"}),
        "timings_ms": {"type": "object", "additionalProperties": NUMBER},
        "pipeline": STRING, "checked_at": NUMBER,
    }, description="the checks report of one version"),
    "VerdictChange": obj({"version": STRING, "old_verdict": nullable(STRING),
                          "new_verdict": STRING, "pipeline": STRING, "reason": STRING,
                          "changed_at": TIME}),
    "VersionReport": extend("Report", {
        "namespace": STRING, "name": STRING, "version": STRING, "deprecated": BOOLEAN,
        "history": array(ref("VerdictChange"))}),
    "CheckException": obj({"rule": STRING, "reason": STRING, "created_at": TIME}),
    "ExceptionList": obj({"exceptions": array(ref("CheckException"))}),
    "ExceptionChange": obj({
        "rule": STRING,
        "reason": {"type": "string", "description": "PUT: the recorded reason"},
        "removed": {"type": "boolean", "description": "DELETE: true"},
        "changes": array(obj({"version": STRING, "old_verdict": nullable(STRING),
                              "new_verdict": STRING})),
    }, optional=("reason", "removed")),
    # -- outcomes -----------------------------------------------------------------------------
    "VersionStats": obj({
        "version": STRING, "successes": INTEGER, "failures": INTEGER,
        "infra_errors": INTEGER, "ema": nullable(NUMBER), "score_mean": nullable(NUMBER),
        "last_at": nullable(TIME)}),
    "TrustEvent": obj({"old": STRING, "new": STRING, "reason": STRING, "actor": STRING,
                       "at": TIME}),
    "Canary": obj({
        "version": STRING, "stable_version": STRING, "share": NUMBER,
        "state": {"type": "string",
                  "description": "active, promoted, rolled_back or superseded"},
        "started_at": TIME, "decided_at": nullable(TIME),
        "decision": nullable({"type": "object"})}),
    "OutcomeReceipt": obj({
        "recorded": INTEGER, "repeated": INTEGER, "trust": TRUST,
        "trust_change": nullable(ref("TrustEvent")),
        "versions": {"type": "object", "additionalProperties": ref("VersionStats"),
                     "description": "version -> its statistics after the reports"}}),
    "Outcomes": obj({
        "namespace": STRING, "name": STRING, "trust": TRUST, "successes": NUMBER,
        "failures": NUMBER, "wilson": NUMBER, "clients": INTEGER,
        "versions": array(extend("VersionStats", {"wilson": NUMBER})),
        "events": array(ref("TrustEvent")), "canaries": array(ref("Canary")),
        "deprecated": {"type": "object", "additionalProperties": STRING,
                       "description": "version -> why it is deprecated"}}),
    "TrustAnswer": obj({"trust": TRUST, "event": nullable(ref("TrustEvent"))}),
    "Resolution": obj({"version": STRING, "channel": enum("stable", "canary"),
                       "content_sha256": SHA256, "canary": nullable(ref("Canary"))}),
    # -- proposals ----------------------------------------------------------------------------
    "Proposal": obj({
        "id": STRING, "namespace": STRING, "name": STRING,
        "status": enum("open", "accepted", "rejected"),
        "author": {**nullable(STRING), "description": "the proposer's namespace"},
        "base_version": STRING, "applies_to": STRING, "verdict": STRING,
        "support": INTEGER, "content_sha256": SHA256, "commit": STRING, "branch": STRING,
        "edits": array({}), "evidence": {"type": "object"}, "reasoning": STRING,
        "created_at": TIME, "decided_at": nullable(TIME), "decided_by": nullable(STRING),
        "comment": nullable(STRING),
        "version": {**nullable(STRING), "description": "the version an accepted one became"},
        "url": STRING}),
    "ProposalList": obj({"proposals": array(ref("Proposal"))}),
    "ProposalOutcome": extend("Proposal", {
        "created": BOOLEAN,
        "supported": {"type": "boolean", "description": "the caller's support was counted"},
        "policy": nullable(STRING)}),
    "ProposalDetail": extend("Proposal", {"diff": STRING, "report": ref("Report")}),
    "ReviewPolicy": obj({"namespace": STRING, "policy": STRING}),
    # -- publishing ---------------------------------------------------------------------------
    "Duplicate": obj({"namespace": STRING, "name": STRING, "similarity": NUMBER,
                      "url": STRING, "hint": STRING}),
    "Published": obj({
        "status": enum("published", "unchanged", "pending"),
        "namespace": STRING, "name": STRING, "version": STRING, "commit": STRING,
        "tag": {"type": "string", "description": "the tag's sha (empty while pending)"},
        "content_sha256": SHA256, "warnings": array(ref("Problem")), "url": STRING,
        "install": STRING, "verdict": STRING,
        "report": {**nullable(ref("Report")),
                   "description": "null when unchanged content skipped the checks"},
        "duplicates_checked": BOOLEAN, "duplicates": array(ref("Duplicate")),
        "release": obj({"id": STRING, "state": STRING, "url": STRING},
                       description="pending only: the release under review"),
        "hint": STRING,
    }, optional=("release", "hint")),
    # -- accounts -----------------------------------------------------------------------------
    "Whoami": obj({
        "username": STRING, "kind": STRING, "display_name": STRING, "email": STRING,
        "operator": BOOLEAN, "via": STRING, "scopes": array(STRING),
        "namespaces": {**nullable(array(STRING)),
                       "description": "the namespaces the token is limited to"},
        "orgs": array(obj({"org": STRING, "role": STRING})),
        "roles": {"type": "object", "additionalProperties": STRING,
                  "description": "namespace -> role"},
        "namespace": {**nullable(STRING), "description": "where it publishes by default"},
    }),
    "Session": obj({"username": STRING, "csrf": STRING}),
    "DeviceGrant": obj({
        "device_code": STRING, "user_code": STRING, "verification_uri": STRING,
        "verification_uri_complete": nullable(STRING), "interval": INTEGER,
        "expires_in": INTEGER}),
    "User": obj({"username": STRING, "display_name": STRING, "email": STRING,
                 "kind": STRING, "org": nullable(STRING), "operator": BOOLEAN,
                 "created_at": TIME, "disabled": BOOLEAN}),
    "UserList": obj({"users": array(ref("User"))}),
    "Token": obj({
        "id": INTEGER, "account": STRING, "prefix": STRING, "label": STRING,
        "scopes": array(STRING), "namespaces": nullable(array(STRING)),
        "created_at": TIME, "expires_at": nullable(TIME), "last_used_at": nullable(TIME),
        "revoked_at": nullable(TIME)}, description="a token (never its secret)"),
    "TokenList": obj({"tokens": array(ref("Token"))}),
    "NewToken": obj({"token": {"type": "string", "description": "the secret, shown once"},
                     "token_info": ref("Token")}),
    "Member": obj({"username": STRING, "display_name": STRING, "kind": STRING,
                   "role": STRING, "added_at": TIME}),
    "MemberList": obj({"members": array(ref("Member"))}),
    "NamespaceSettings": obj({
        "name": STRING, "visibility": STRING,
        "owner": {**nullable(obj({"org": STRING, "user": nullable(STRING)},
                                 optional=("org", "user"))),
                  "description": "{org} or {user}"},
        "release_policy": STRING, "two_person": BOOLEAN, "review_policy": STRING}),
    "Release": obj({
        "id": STRING, "namespace": STRING, "name": STRING, "version": STRING,
        "state": enum("pending", "approved", "rejected", "withdrawn"), "author": STRING,
        "verdict": STRING, "content_sha256": SHA256, "commit": STRING, "branch": STRING,
        "created_at": TIME, "decided_at": nullable(TIME), "decided_by": nullable(STRING),
        "comment": nullable(STRING), "url": STRING}, description="a release under review"),
    "ReleaseList": obj({"releases": array(ref("Release"))}),
    "ReleaseDecision": obj({"release": ref("Release")}),
    "ReleaseDetail": extend("Release", {"diff": STRING, "current_version": nullable(STRING),
                                        "report": ref("Report")}),
    "ReviewQueue": obj({
        "releases": array(extend("Release", {"diff": STRING,
                                             "current_version": nullable(STRING)})),
        "proposals": array(extend("Proposal", {"diff": STRING}))}),
    "AuditEvent": obj({
        "id": INTEGER, "at": TIME, "actor": STRING, "action": STRING, "target": STRING,
        "org": nullable(STRING), "namespace": nullable(STRING), "address": STRING,
        "user_agent": STRING, "request_id": STRING, "detail": {"type": "object"}}),
    "AuditPage": obj({"events": array(ref("AuditEvent")), "next_cursor": nullable(STRING)}),
    # request bodies (the accounts routes), named by their view
    "LoginRequest": obj(
        {"username": STRING, "password": STRING, "label": STRING, "days": INTEGER,
         "scopes": array(STRING)}, optional=("label", "days", "scopes")),
    "SessionRequest": obj({"username": STRING, "password": STRING}),
    "DeviceTokenRequest": obj({"device_code": STRING, "label": STRING}, optional=("label",)),
    "AddUserRequest": obj(
        {"username": STRING, "password": STRING, "display_name": STRING, "email": STRING,
         "operator": BOOLEAN}, optional=("password", "display_name", "email", "operator")),
    "CreateTokenRequest": obj(
        {"label": STRING, "days": INTEGER, "account": STRING, "scopes": array(STRING),
         "namespaces": array(STRING)},
        optional=("label", "days", "account", "scopes", "namespaces")),
    "CreateOrgRequest": obj({"name": STRING, "display_name": STRING}, optional=("display_name",)),
    "SetMemberRequest": obj({"role": STRING}),
    "AddServiceAccountRequest": obj({"name": STRING, "role": STRING}, optional=("role",)),
    "InviteRequest": obj(
        {"role": STRING, "email": STRING, "days": INTEGER}, optional=("role", "email", "days")),
    "AcceptRequest": obj(
        {"username": STRING, "password": STRING, "display_name": STRING, "email": STRING},
        optional=("username", "password", "display_name", "email")),
    "SetVisibilityRequest": obj({"visibility": STRING}),
    "SetReleasePolicyRequest": obj(
        {"policy": STRING, "two_person": BOOLEAN}, optional=("two_person",)),
    "ApproveRequest": obj({"comment": STRING}, optional=("comment",)),
    "RejectRequest": obj({"comment": STRING}),
}
ERROR_REF = ref("Error")
JSON_PREFIXES = ("/api/",)
CONVERTOR_TYPES = {"IntegerConvertor": {"type": "integer"},
                   "FloatConvertor": {"type": "number"}}


def _expand_request_body(operation: dict[str, Any], label: str) -> None:
    """A request body's `schema:` shorthand (a component's name or an inline schema) as its
    JSON content."""
    body = operation.get("requestBody")
    if isinstance(body, dict) and "schema" in body:
        schema = body.pop("schema")
        if isinstance(schema, str):
            if schema not in SCHEMAS:
                raise KeyError(f"{label}: no component schema {schema!r} in web/openapi.py")
            schema = ref(schema)
        body.setdefault("required", True)
        body["content"] = {"application/json": {"schema": schema}}


class OpenApi(SchemaGenerator):
    """Starlette's docstring generator, completed (see the module docstring)."""

    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        schema = super().get_schema(routes)
        types = _path_parameter_types(routes)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                _add_path_parameters(operation, path, types.get(path, {}))
                _expand_responses(operation, f"{method.upper()} {path}")
                _expand_request_body(operation, f"{method.upper()} {path}")
                if path.startswith(JSON_PREFIXES):
                    _add_error_bodies(operation)
        return schema


def _path_parameter_types(routes: list[BaseRoute]) -> dict[str, dict[str, dict[str, str]]]:
    """OpenAPI path -> parameter name -> JSON schema, from each route's converters."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        path = re.sub(r":\w+}", "}", route.path)
        out[path] = {name: CONVERTOR_TYPES.get(type(convertor).__name__, {"type": "string"})
                     for name, convertor in route.param_convertors.items()}
    return out


def _add_path_parameters(operation: dict[str, Any], path: str,
                         types: dict[str, dict[str, str]]) -> None:
    declared = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "path"}
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    missing = [{"name": name, "in": "path", "required": True,
                "schema": types.get(name, {"type": "string"})}
               for name in names if name not in declared]
    if missing:
        operation["parameters"] = [*operation.get("parameters", []), *missing]


def _add_error_bodies(operation: dict[str, Any]) -> None:
    for status, response in operation.get("responses", {}).items():
        if str(status)[0] in "45" and isinstance(response, dict) \
                and "content" not in response:
            response["content"] = {"application/json": {"schema": ERROR_REF}}


def _expand_responses(operation: dict[str, Any], label: str) -> None:
    """Each response's `schema:` shorthand as its JSON content (see the module docstring),
    and a description a flow mapping split at an unquoted comma joined again."""
    for response in operation.get("responses", {}).values():
        if not isinstance(response, dict):
            continue
        if "schema" not in response:
            continue
        body = response.pop("schema")
        if isinstance(body, str):
            if body not in SCHEMAS:
                raise KeyError(f"{label}: no component schema {body!r} in web/openapi.py")
            body = ref(body)
        response.setdefault("content", {})["application/json"] = {"schema": body}
