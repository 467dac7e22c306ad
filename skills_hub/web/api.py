"""The native JSON API under /api/v1. Each view parses the request, calls the service,
renders. Each docstring's YAML part is its OpenAPI operation (served at /openapi.json)."""

from __future__ import annotations

import base64
import functools
import itertools
import json
import operator
import re
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..access.principal import Principal
from ..config import Limits
from ..domain import CanaryRow, DemandRow, ProposalRow, SkillRow, VersionRow, VersionStats
from ..errors import BadRequest, PayloadTooLarge, Problem, SemanticUnavailable
from ..search.engine import Duplicate, Gap, Result
from ..services import (
    HealthChange,
    PublishOutcome,
    Registry,
    SkillDetail,
    install_command,
    version_of,
)
from ..services.evidence import evidence_jsonl, parse_evidence_filters
from ..skill.bundle import Bundle, from_archive, from_files
from .auth import request_principal
from .markdown import highlighted, plain_snippet
from .middleware import counts_as_install

ARCHIVE_TYPES = {"application/zip", "application/gzip", "application/x-gzip",
                 "application/x-tar+gzip", "application/octet-stream"}
IMMUTABLE = "public, max-age=31536000, immutable"


def routes(registry: Registry) -> list[Route]:
    api = Api(registry)
    base = "/api/v1"
    skill = base + "/skills/{namespace}/{name}"
    version = skill + "/versions/{version}"
    return [
        Route(base + "/namespaces", api.namespaces, methods=["GET"]),
        Route(base + "/namespaces/{namespace}/skills", api.publish, methods=["POST"]),
        Route(base + "/whoami", api.whoami, methods=["GET"]),
        Route(base + "/skills", api.list_skills, methods=["GET"]),
        Route(base + "/search", api.search, methods=["GET"]),
        Route(base + "/gaps", api.gaps, methods=["GET"]),
        Route(base + "/demands", api.demands, methods=["GET"]),
        Route(base + "/demands/{demand_id}", api.demand, methods=["GET"]),
        Route(skill, api.skill, methods=["GET"]),
        Route(version, api.version, methods=["GET"]),
        Route(version + "/archive.{fmt}", api.archive, methods=["GET", "HEAD"]),
        Route(version + "/files/{path:path}", api.file, methods=["GET"]),
        Route(version + "/report", api.report, methods=["GET"]),
        Route(skill + "/exceptions", api.exceptions, methods=["GET"]),
        Route(skill + "/exceptions/{rule}", api.set_exception, methods=["PUT", "DELETE"]),
        Route(skill + "/outcomes", api.report_outcomes, methods=["POST"]),
        Route(skill + "/outcomes", api.outcomes, methods=["GET"]),
        Route(skill + "/trust", api.set_trust, methods=["PUT"]),
        Route(skill + "/resolve", api.resolve, methods=["GET"]),
        Route(skill + "/proposals", api.propose, methods=["POST"]),
        Route(skill + "/proposals", api.list_proposals, methods=["GET"]),
        Route(skill + "/proposals/{proposal_id}", api.get_proposal, methods=["GET"]),
        Route(skill + "/proposals/{proposal_id}/review", api.review, methods=["POST"]),
        Route(base + "/namespaces/{namespace}/proposals", api.namespace_proposals,
              methods=["GET"]),
        Route(base + "/namespaces/{namespace}/policy", api.set_policy, methods=["PUT"]),
        Route(base + "/evidence", api.evidence, methods=["GET"]),
    ]


class Api:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def principal(self, request: Request) -> Principal:
        return request_principal(self.registry, request)

    def namespaces(self, request: Request) -> JSONResponse:
        """
        summary: List the namespaces the caller may read, with their skill counts.
        tags: [catalogue]
        responses:
          200: {description: "{namespaces: [{name, visibility, skills, git}]}",
                schema: NamespaceList}
        """
        rows = self.registry.namespaces(self.principal(request))
        return JSONResponse({"namespaces": [
            {"name": n, "visibility": v, "skills": c, "git": f"/git/{n}.git"}
            for n, v, c in rows]})

    def whoami(self, request: Request) -> JSONResponse:
        """
        summary: Who the caller is (account, scopes, roles, default namespace).
        tags: [auth]
        security: [{bearer: []}]
        responses:
          200:
            description: "{username, kind, operator, scopes, namespaces, orgs, roles,
              namespace}"
            schema: Whoami
          401: {description: missing or invalid token}
        """
        return JSONResponse(self.registry.whoami(self.principal(request)))

    async def publish(self, request: Request) -> JSONResponse:
        """
        summary: Publish a skill version (multipart files, a zip, or a tar.gz), or check it.
        description: >
          Multipart form: `files` parts whose filename is the path inside the skill
          (SKILL.md at the root), optional `executable` fields naming executable paths;
          or one `archive` part (zip or tar.gz); or the archive as the raw body
          (Content-Type application/zip or application/gzip). The version comes from the
          `version` field or query parameter, else `metadata.version` of SKILL.md, else the
          next patch version. Identical content to the latest version is not a new version
          (200, status "unchanged"). With `dry_run=true` nothing is stored: the upload goes
          through the same rights check, validation, version choice, checks and duplicate
          lookup, with the same errors, and a publishable one answers 200 with status
          "checked", `dry_run` true and `for_review` (whether a publish would wait for
          review); `commit` and `tag` are empty.
        tags: [publish]
        security: [{bearer: []}]
        parameters:
          - {name: namespace, in: path, required: true, schema: {type: string}}
          - {name: version, in: query, required: false, schema: {type: string}}
          - {name: dry_run, in: query, required: false,
             schema: {type: boolean, default: false}}
        responses:
          201: {description: published, schema: Published}
          200: {description: "unchanged content (the existing version is returned), or a
                dry run's answer (status checked)", schema: Published}
          202: {description: "held for review (status pending; `release` names it)",
                schema: Published}
          400: {description: the upload was refused while unpacking (code names why)}
          401: {description: missing or invalid token}
          403: {description: the token is for another namespace}
          409: {description: the version exists or is older than the latest}
          413: {description: the upload is too large}
          422: {description: "the skill is invalid (code invalid_skill; `problems` lists every
                error) or the checks refused it (code dangerous_skill; `report` is the full
                checks report). Nothing is stored in either case."}
        """
        namespace = request.path_params["namespace"]
        dry_run = bool_param(request.query_params.get("dry_run"), name="dry_run")
        principal = await run_in_threadpool(self.principal, request)
        upload = await read_upload(request, self.registry.settings.limits)
        bundle = await run_in_threadpool(upload.bundle, self.registry.settings.limits)
        act = self.registry.check_publish if dry_run else self.registry.publish
        outcome = await run_in_threadpool(act, namespace, bundle, principal=principal,
                                          version=upload.version)
        body = outcome_json(outcome)
        if dry_run:
            body.update(dry_run=True, for_review=outcome.for_review)
        return JSONResponse(body, {"published": 201, "pending": 202}.get(outcome.status, 200))

    def list_skills(self, request: Request) -> JSONResponse:
        """
        summary: Browse skills, ordered by namespace and name, with cursor paging.
        tags: [catalogue]
        parameters:
          - {name: namespace, in: query, required: false, schema: {type: string}}
          - {name: limit, in: query, required: false, schema: {type: integer, default: 50}}
          - {name: cursor, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{skills, total, next_cursor}", schema: SkillPage}
        """
        params = request.query_params
        page = self.registry.list_skills(
            principal=self.principal(request), namespace=params.get("namespace"),
            cursor=params.get("cursor"), limit=int_param(params.get("limit"), 50, low=1, high=200))
        return JSONResponse({"skills": [skill_json(s) for s in page.skills],
                             "total": page.total, "next_cursor": page.next_cursor})

    def search(self, request: Request) -> JSONResponse:
        """
        summary: Search skills by keyword, meaning, or both (hybrid, the default).
        description: |
          `mode=auto` (default) is hybrid once the embedding model is loaded and keyword
          before; `mode` in the response says which served, `semantic` the model's state.
          Each result's `score_parts` holds the terms of its score: keyword rank and bm25,
          semantic rank and cosine similarity, relevance (weighted reciprocal rank fusion),
          the Wilson lower bound of decayed outcome counts, the new-skill floor, installs
          and quality (formula in docs/SEARCH.md). An exact name match comes first. `gap`
          says whether the best semantic similarity is below 0.3. An empty `q` lists the
          filtered catalogue. Sorted by relevance, a share of pages explore: the outcome
          evidence of near-equally relevant results is a draw from its posterior, and
          `score_parts.explore` shows the draw and the result's place without it; the same
          query, `client_id` (else the token) and hour give the same page (docs/SEARCH.md).
        tags: [search]
        parameters:
          - {name: q, in: query, required: false, schema: {type: string, maxLength: 1000}}
          - {name: mode, in: query, required: false,
             schema: {type: string, enum: [auto, hybrid, keyword, semantic], default: auto}}
          - {name: namespace, in: query, required: false, schema: {type: string}}
          - {name: tag, in: query, required: false, schema: {type: string}}
          - {name: trust, in: query, required: false,
             schema: {type: string,
                      enum: [community, verified, trusted, quarantined, blocked]}}
          - {name: verdict, in: query, required: false,
             schema: {type: string, enum: [safe, caution, dangerous, unchecked]}}
          - {name: updated_since, in: query, required: false,
             schema: {type: string, format: date-time}}
          - {name: sort, in: query, required: false,
             schema: {type: string, enum: [relevance, installs, rating, recent],
                      default: relevance}}
          - {name: limit, in: query, required: false,
             schema: {type: integer, default: 20, maximum: 100}}
          - {name: cursor, in: query, required: false, schema: {type: string}}
          - {name: client_id, in: query, required: false,
             schema: {type: string, maxLength: 200}}
        responses:
          200: {description: "{query, mode, requested_mode, semantic, results, next_cursor,
                gap}", schema: SearchResults}
          400: {description: "a bad parameter, a cursor from another search, a query too
                long"}
        """
        params = request.query_params
        query = params.get("q", "")
        page = self.registry.search(
            query, principal=self.principal(request), mode=params.get("mode", "auto"),
            namespace=params.get("namespace") or None, tag=params.get("tag") or None,
            trust=params.get("trust") or None, verdict=params.get("verdict") or None,
            updated_since=params.get("updated_since") or None,
            sort=params.get("sort", "relevance"),
            limit=int_param(params.get("limit"), 20, low=1, high=100),
            cursor=params.get("cursor") or None, client_id=params.get("client_id") or None,
            record=True)
        found = page.results
        return JSONResponse({
            "query": query, "mode": found.mode, "requested_mode": found.requested,
            "semantic": found.semantic, "results": [result_json(r) for r in found.results],
            "next_cursor": page.next_cursor,
            "gap": gap_json(found.gap) if found.gap else None})

    def gaps(self, request: Request) -> JSONResponse:
        """
        summary: Whether the registry lacks a skill for a task (best similarity below 0.3).
        description: |
          For agents' learning loops: `gap: true` means no readable skill is semantically
          close to `q`, so a client may synthesise one and publish it. 503 while the
          embedding model loads (retry after the number of seconds in Retry-After).
        tags: [search]
        parameters:
          - {name: q, in: query, required: true, schema: {type: string, maxLength: 1000}}
          - {name: namespace, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{query, gap, best_similarity, threshold, closest}",
                schema: GapAnswer}
          400: {description: "no query, or too long"}
          503: {description: the embedding model is not loaded}
        """
        params = request.query_params
        query = params.get("q", "")
        if not query.strip():
            raise BadRequest("q is required: the task to look for")
        gap = self.registry.gap(query, principal=self.principal(request),
                                namespace=params.get("namespace") or None, record=True)
        if gap is None:
            state = self.registry.embedder.state
            raise SemanticUnavailable(
                f"gap detection needs the embedding model, which is {state}",
                extra={"semantic": state, "retry_after": 10 if state == "loading" else None})
        return JSONResponse({"query": query, **gap_json(gap)})

    def demands(self, request: Request) -> JSONResponse:
        """
        summary: The demand list, most distinct askers first.
        description: |
          Searches and gap checks through this API that found no close skill (`gap: true`)
          are recorded and clustered by meaning into demands (method in docs/LEARNING.md,
          Demands). A demand asked in a namespace shows only to that namespace's readers;
          one asked of the whole registry (`namespace` null) to everyone. A closed demand
          names the skill version whose publish answered it.
        tags: [learning]
        parameters:
          - {name: status, in: query, required: false,
             schema: {type: string, enum: [open, closed, all], default: open}}
          - {name: namespace, in: query, required: false, schema: {type: string}}
          - {name: mine, in: query, required: false,
             schema: {type: boolean, default: false}}
          - {name: limit, in: query, required: false,
             schema: {type: integer, default: 20, minimum: 1, maximum: 100}}
          - {name: offset, in: query, required: false,
             schema: {type: integer, default: 0, minimum: 0, maximum: 10000}}
        responses:
          200: {description: "{demands, next_offset}", schema: DemandList}
          400: {description: a bad parameter}
          401: {description: "`mine` without signing in"}
          404: {description: the namespace does not exist or is not readable}
        """
        params = request.query_params
        page = self.registry.demands(
            self.principal(request), status=params.get("status") or "open",
            namespace=params.get("namespace") or None,
            mine=bool_param(params.get("mine"), name="mine"),
            limit=int_param(params.get("limit"), 20, low=1, high=100),
            offset=int_param(params.get("offset"), 0, name="offset", low=0, high=10_000))
        return JSONResponse({"demands": [demand_json(d) for d in page.demands],
                             "next_offset": page.next_offset})

    def demand(self, request: Request) -> JSONResponse:
        """
        summary: One demand, and the skill version that answered it once closed.
        description: |
          For a learning loop that asked: once `status` is closed, `answer` names the
          skill version to install instead of synthesising one. `asked_by_you` says whether
          the caller's account asked it.
        tags: [learning]
        parameters:
          - {name: demand_id, in: path, required: true, schema: {type: integer, minimum: 1}}
        responses:
          200: {description: the demand, schema: DemandDetail}
          400: {description: the id is not a whole number}
          404: {description: "no such demand, or not visible to the caller"}
        """
        view = self.registry.demand(demand_id(request.path_params["demand_id"]),
                                    self.principal(request))
        return JSONResponse({**demand_json(view.demand, answered=view.answered),
                             "phrasings": [{"query": q, "asks": n} for q, n in view.phrasings],
                             "asked_by_you": view.asked_by_you})

    def skill(self, request: Request) -> JSONResponse:
        """
        summary: A skill with all its versions, newest first.
        tags: [catalogue]
        responses:
          200: {description: the skill, schema: Skill}
          404: {description: no such skill (or a private namespace)}
        """
        p = request.path_params
        detail = self.registry.get_skill(p["namespace"], p["name"], self.principal(request))
        return JSONResponse(detail_json(detail))

    def version(self, request: Request) -> JSONResponse:
        """
        summary: One version (or `latest`) with its files, frontmatter and archive digests.
        description: >
          For `latest`, a `client_id` query parameter lets the server place the client in
          an active canary (deterministically by id); `channel` then says `canary` or
          `stable`. Without it, `latest` is the stable version.
        tags: [catalogue]
        parameters:
          - {name: client_id, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: the version, schema: VersionDetail}
          404: {description: no such version}
        """
        p = request.path_params
        principal = self.principal(request)
        detail = self.registry.get_skill(p["namespace"], p["name"], principal)
        skill, row, channel = detail.skill, version_of(detail, p["version"]), None
        if p["version"] == "latest":  # a canary reaches the clients in its share
            resolution = self.registry.resolve(p["namespace"], p["name"], principal,
                                               request.query_params.get("client_id"))
            row, channel = resolution.row, resolution.channel
        archives = {}
        for fmt in ("tar.gz", "zip"):
            _, archive = self.registry.archive(skill.namespace, skill.name, row.version, fmt,
                                               principal, count=False)
            archives[fmt] = {"url": _version_url(skill, row.version) + f"/archive.{fmt}",
                             "sha256": archive.sha256, "size": len(archive.data)}
        body = version_json(detail, row)
        body.update(files=row.files, frontmatter=row.frontmatter, archives=archives,
                    install=install_command(skill.namespace, skill.name, row.version))
        if channel is not None:
            body["channel"] = channel
        return JSONResponse(body)

    def archive(self, request: Request) -> Response:
        """
        summary: The version as a deterministic tar.gz or zip; the ETag is its sha256.
        tags: [install]
        parameters:
          - {name: fmt, in: path, required: true, schema: {type: string, enum: [tar.gz, zip]}}
        responses:
          200:
            description: the archive; headers ETag and X-Checksum-Sha256 carry the sha256
            content:
              application/gzip: {schema: {type: string, format: binary}}
              application/zip: {schema: {type: string, format: binary}}
          304: {description: If-None-Match matched}
          404: {description: no such version or format}
        """
        p = request.path_params
        row, archive = self.registry.archive(p["namespace"], p["name"], p["version"],
                                             p["fmt"], self.principal(request),
                                             count=counts_as_install(request))
        etag = f'"sha256:{archive.sha256}"'
        headers = {
            "ETag": etag,
            "X-Checksum-Sha256": archive.sha256,
            "Digest": "sha-256=" + base64.b64encode(bytes.fromhex(archive.sha256)).decode(),
            "X-Skill-Version": row.version,
            "Content-Disposition": f'attachment; filename="{archive.filename}"',
            "Cache-Control": "no-cache" if p["version"] == "latest" else IMMUTABLE,
        }
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        settings = self.registry.settings
        if settings.accel_redirect or settings.x_sendfile:  # the proxy sends the file
            path = self.registry.archive_file(archive)
            headers.update({"X-Accel-Redirect": f"{settings.accel_redirect}{path.name}"}
                           if settings.accel_redirect else {"X-Sendfile": str(path)})
            return Response(b"", media_type=archive.media_type, headers=headers)
        return Response(archive.data, media_type=archive.media_type, headers=headers)

    def file(self, request: Request) -> Response:
        """
        summary: One file of a version, raw. Served sandboxed (CSP) and never as HTML.
        tags: [catalogue]
        responses:
          200:
            description: "the file's bytes: a text type by its suffix (utf-8), else
              application/octet-stream"
            content:
              text/*: {schema: {type: string}}
              application/json: {}
              application/octet-stream: {schema: {type: string, format: binary}}
          404: {description: no such file; `files` lists the version's files}
        """
        p = request.path_params
        row, data = self.registry.read_file(p["namespace"], p["name"], p["version"],
                                            p["path"], self.principal(request))
        return Response(data, media_type=file_type(p["path"], data), headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "X-Skill-Version": row.version,
            "Cache-Control": "no-cache" if p["version"] == "latest" else IMMUTABLE,
        })


    def report(self, request: Request) -> JSONResponse:
        """
        summary: The public checks report of a version, every finding with its rule id.
        description: >
          `verdict` is safe, caution (published, flagged) or dangerous (refused at publish;
          a stored version only becomes dangerous when a health re-check fails it, and is
          then deprecated). Each finding names its rule, family, severity, source (syntax,
          bandit, threat, sandbox), file, line, message and fix hint; a finding covered by
          a reviewed exception carries the owner's reason in `exception`. `history` lists
          the verdict changes of the skill's versions.
        tags: [checks]
        responses:
          200: {description: the report, schema: VersionReport}
          404: {description: no such version}
          409: {description: the version has not been checked yet (code not_checked)}
        """
        p = request.path_params
        principal = self.principal(request)
        row, stored = self.registry.report(p["namespace"], p["name"], p["version"], principal)
        if stored is None:
            return JSONResponse({"code": "not_checked",
                                 "message": f"{p['name']} {row.version} has not been "
                                            "checked yet; try again shortly"}, 409)
        body = dict(stored.report)
        history = self.registry.report_history(p["namespace"], p["name"], principal)
        body.update(namespace=p["namespace"], name=p["name"], version=row.version,
                    deprecated=stored.verdict == "dangerous",
                    history=[vars(h) for h in history if h.version == row.version])
        return JSONResponse(body)

    def exceptions(self, request: Request) -> JSONResponse:
        """
        summary: The reviewed exceptions of a skill (rule id and the owner's reason).
        tags: [checks]
        responses:
          200: {description: "{exceptions: [{rule, reason, created_at}]}",
                schema: ExceptionList}
        """
        p = request.path_params
        rows = self.registry.exceptions(p["namespace"], p["name"], self.principal(request))
        return JSONResponse({"exceptions": [vars(r) for r in rows]})

    async def set_exception(self, request: Request) -> JSONResponse:
        """
        summary: Record (PUT) or remove (DELETE) a reviewed exception for one rule on a skill.
        description: >
          PUT body `{"reason": "..."}`. The finding stays in the report, marked with the
          reason, and no longer weighs on the verdict. Stored versions are re-judged at
          once; `changes` lists the verdicts that moved.
        tags: [checks]
        security: [{bearer: []}]
        responses:
          200: {description: "{rule, reason (PUT) or removed (DELETE), changes}",
                schema: ExceptionChange}
          400: {description: "not a rule id, or no reason"}
          403: {description: the token is for another namespace}
          404: {description: DELETE of an exception that does not exist}
        """
        p = request.path_params
        principal = await run_in_threadpool(self.principal, request)
        if request.method == "DELETE":
            changes = await run_in_threadpool(self.registry.remove_exception, p["namespace"],
                                              p["name"], p["rule"], principal)
            return JSONResponse({"rule": p["rule"], "removed": True,
                                 "changes": [_change(c) for c in changes]})
        payload = await _json_body(request, 64 << 10)
        reason = payload.get("reason") if isinstance(payload, dict) else None
        if not isinstance(reason, str):
            raise BadRequest("send a JSON body {\"reason\": \"...\"}")
        changes = await run_in_threadpool(self.registry.set_exception, p["namespace"],
                                          p["name"], p["rule"], reason, principal)
        return JSONResponse({"rule": p["rule"], "reason": reason.strip(),
                             "changes": [_change(c) for c in changes]})


    async def report_outcomes(self, request: Request) -> JSONResponse:
        """
        summary: Report how skill versions did for an agent (one report or a batch).
        description: >
          Body: one report, or `{"outcomes": [...]}` with up to 1000. A report has a
          client-supplied `id` (a repeat from the same token is acknowledged, not counted
          again), `version`, `outcome` (`success`, `failure` with `failure_kind`, or
          `infra_error`, which never counts against the skill), optional `signals`
          (`task_accepted`, `retries`, `edit_ratio`, `session_continued`,
          `error_reported`), `client` (`agent`, `model`, `id`), `at` and `task` (the task
          it served). All or nothing: one bad report refuses the batch with every problem
          listed. Rate limited per token (429 with Retry-After). A report from an author of
          the version, a repeat of a task the token already reported on it, or past a
          client's cap is stored and not counted (`discounted` per version).
        tags: [outcomes]
        security: [{bearer: []}]
        requestBody: {schema: OutcomesRequest}
        responses:
          200: {description: "{recorded, repeated, trust, trust_change, versions}",
                schema: OutcomeReceipt}
          401: {description: no token}
          404: {description: no such skill}
          422: {description: "invalid reports (code invalid_report; `problems` lists each)"}
          429: {description: too many reports for this token; retry after Retry-After}
        """
        p = request.path_params
        principal = await run_in_threadpool(self.principal, request)
        payload = await _json_body(request, 4 << 20)
        receipt = await run_in_threadpool(self.registry.report_outcomes, p["namespace"],
                                          p["name"], payload, principal)
        return JSONResponse({
            "recorded": receipt.recorded, "repeated": receipt.repeated,
            "trust": receipt.trust,
            "trust_change": vars(receipt.trust_change) if receipt.trust_change else None,
            "versions": {v: stats_json(s) for v, s in receipt.versions.items()}})

    def outcomes(self, request: Request) -> JSONResponse:
        """
        summary: A skill's evidence from outcome reports, per version, and its trust history.
        tags: [outcomes]
        responses:
          200: {description: "{trust, successes, failures, wilson, clients, versions, events,
                canaries, deprecated, tasks}", schema: Outcomes}
        """
        p = request.path_params
        principal = self.principal(request)
        summary = self.registry.outcome_summary(p["namespace"], p["name"], principal)
        return JSONResponse({
            "namespace": summary.skill.namespace, "name": summary.skill.name,
            "trust": summary.trust, "successes": round(summary.successes, 4),
            "failures": round(summary.failures, 4), "wilson": round(summary.wilson, 6),
            "clients": summary.clients,
            "versions": [{**stats_json(stats), "wilson": round(wilson, 6)}
                         for stats, wilson in summary.versions],
            "events": [vars(e) for e in summary.events],
            "canaries": [canary_json(c) for c in summary.canaries],
            "deprecated": summary.deprecated,
            "tasks": [{**vars(g), "wilson": round(g.wilson, 6)}
                      for g in self.registry.task_neighbourhoods(p["namespace"], p["name"],
                                                                 principal)]})

    def evidence(self, request: Request) -> StreamingResponse:
        """
        summary: Export evidence for training as JSON lines (owners and the operator).
        description: >
          Outcome reports (with their signal score), proposals (edits, diff, evidence,
          reasoning, checks verdict, review decision) and review decisions of the
          namespaces the caller owns (the operator: all), one JSON object a line, each with
          its `kind`, quality `tier` and `redactions` (secrets the checks' rules find are
          replaced by `[REDACTED:<rule id>]`). Streamed: any size, read in pages. The tiers'
          thresholds are in docs/LEARNING.md. `tier` and `kind` may repeat or hold a
          comma-separated list.
        tags: [outcomes]
        security: [{bearer: []}]
        parameters:
          - {name: namespace, in: query, required: false, schema: {type: string}}
          - {name: skill, in: query, required: false, schema: {type: string}}
          - {name: since, in: query, required: false, schema: {type: string}}
          - {name: until, in: query, required: false, schema: {type: string}}
          - {name: tier, in: query, required: false, schema: {type: string}}
          - {name: kind, in: query, required: false, schema: {type: string}}
        responses:
          200:
            description: one EvidenceLine a line
            content:
              application/x-ndjson: {schema: {$ref: "#/components/schemas/EvidenceLine"}}
          400: {description: "bad filters (every problem listed)"}
          401: {description: missing or invalid token}
          403: {description: "the caller owns no namespace, or not this one"}
          404: {description: no such namespace or skill}
        """
        q = request.query_params
        filters = parse_evidence_filters(
            namespace=q.get("namespace"), skill=q.get("skill"), since=q.get("since"),
            until=q.get("until"), tiers=q.getlist("tier"), kinds=q.getlist("kind"))
        lines = self.registry.export_evidence(self.principal(request), filters)
        return StreamingResponse(evidence_jsonl(lines), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store"})

    async def set_trust(self, request: Request) -> JSONResponse:
        """
        summary: Block a skill, or lift a block (owner or operator).
        description: >
          Body `{"trust": "blocked" | "community", "reason": "..."}`. A blocked skill is
          hidden from search and never moved by outcome reports; lifting the block returns
          it to community, and the evidence is judged again at once.
        tags: [outcomes]
        security: [{bearer: []}]
        requestBody: {schema: TrustRequest}
        responses:
          200: {description: "{trust, event}", schema: TrustAnswer}
          400: {description: "not blocked/community, or no reason"}
          403: {description: the token is for another namespace}
        """
        p = request.path_params
        principal = await run_in_threadpool(self.principal, request)
        payload = await _json_body(request, 64 << 10)
        if not isinstance(payload, dict) or not isinstance(payload.get("trust"), str):
            raise BadRequest('send {"trust": "blocked" | "community", "reason": "..."}')
        trust, event = await run_in_threadpool(
            self.registry.set_trust, p["namespace"], p["name"], payload["trust"],
            str(payload.get("reason") or ""), principal)
        return JSONResponse({"trust": trust, "event": vars(event) if event else None})


    def resolve(self, request: Request) -> JSONResponse:
        """
        summary: The version `latest` means for this client (stable, or an active canary).
        tags: [outcomes]
        parameters:
          - {name: client_id, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{version, channel, content_sha256, canary}",
                schema: Resolution}
        """
        p = request.path_params
        found = self.registry.resolve(p["namespace"], p["name"], self.principal(request),
                                      request.query_params.get("client_id"))
        return JSONResponse({"version": found.row.version, "channel": found.channel,
                             "content_sha256": found.row.content_sha256,
                             "canary": canary_json(found.canary) if found.canary else None})

    async def propose(self, request: Request) -> JSONResponse:
        """
        summary: Propose a refinement of a skill (an agent's patch).
        description: >
          Body `{"base_version", "edits", "evidence", "reasoning"}`. `edits` mixes
          `{op: replace|insert_after|append|delete, target, content, file}` and Hermes's
          `{old_string, new_string, replace_all, file_path}`. Targets match exactly, then
          with whitespace and line endings normalised; a missing or ambiguous target is a
          422 `edit_failed` naming the edit and the nearest text. A stale base is rebased
          onto the latest version by a three-way merge (409 `merge_conflict` when it does
          not apply cleanly). The result goes through the whole publish pipeline and is
          stored as a commit on `refs/heads/proposals/<name>/<id>`. Edits whose result
          matches an open proposal add support to it (201 only for a new proposal).
        tags: [proposals]
        security: [{bearer: []}]
        requestBody: {schema: ProposalRequest}
        responses:
          201: {description: a new proposal, schema: ProposalOutcome}
          200: {description: "an agreeing open proposal gained support (`created` false)",
                schema: ProposalOutcome}
          401: {description: no token}
          409: {description: the rebase onto the latest version conflicts}
          422: {description: "edit_failed, invalid_skill, or dangerous_skill (with the report)"}
        """
        p = request.path_params
        principal = await run_in_threadpool(self.principal, request)
        payload = await _json_body(request, 2 << 20)
        outcome = await run_in_threadpool(self.registry.propose, p["namespace"], p["name"],
                                          payload, principal)
        body = {**proposal_json(outcome.proposal), "created": outcome.created,
                "supported": outcome.supported, "policy": outcome.policy_note}
        return JSONResponse(body, status_code=201 if outcome.created else 200)

    def list_proposals(self, request: Request) -> JSONResponse:
        """
        summary: A skill's proposals (`?status=open|accepted|rejected`, `?mine=1`).
        description: >
          `mine=1` lists the proposals the caller's token sent, with each decision and
          the reviewer's comment: how a proposing agent learns why it was rejected.
        tags: [proposals]
        responses:
          200: {description: "{proposals: [...]}", schema: ProposalList}
        """
        p = request.path_params
        rows = self.registry.proposals(p["namespace"], p["name"], self.principal(request),
                                       status=request.query_params.get("status"),
                                       mine=request.query_params.get("mine") in ("1", "true"))
        return JSONResponse({"proposals": [proposal_json(r) for r in rows]})

    def namespace_proposals(self, request: Request) -> JSONResponse:
        """
        summary: Every proposal in a namespace (a maintainer's review queue).
        tags: [proposals]
        responses:
          200: {description: "{proposals: [...]}", schema: ProposalList}
        """
        rows = self.registry.proposals(request.path_params["namespace"], None,
                                       self.principal(request),
                                       status=request.query_params.get("status"),
                                       mine=request.query_params.get("mine") in ("1", "true"))
        return JSONResponse({"proposals": [proposal_json(r) for r in rows]})

    def get_proposal(self, request: Request) -> JSONResponse:
        """
        summary: One proposal with its unified diff and checks report.
        tags: [proposals]
        responses:
          200: {description: "the proposal, `diff` and `report`", schema: ProposalDetail}
          404: {description: no such proposal}
        """
        p = request.path_params
        view = self.registry.proposal(p["namespace"], p["name"], p["proposal_id"],
                                      self.principal(request))
        return JSONResponse({**proposal_json(view.proposal), "diff": view.diff,
                             "report": view.proposal.report})

    async def review(self, request: Request) -> JSONResponse:
        """
        summary: Accept or reject a proposal (a maintainer of the namespace).
        description: >
          Body `{"decision": "accept" | "reject", "comment": "...", "version": optional,
          "canary": optional share 0-1}`. Accepting publishes the next patch version (or
          `version`) through the whole pipeline, rebased again if the skill moved; with
          `canary` it goes out to that share of clients first and is promoted or rolled
          back on their outcome reports. Rejecting needs a comment.
        tags: [proposals]
        security: [{bearer: []}]
        requestBody: {schema: ReviewRequest}
        responses:
          200: {description: the decided proposal, schema: Proposal}
          403: {description: not a token of this namespace}
          409: {description: "already decided, or the rebase conflicts"}
        """
        p = request.path_params
        principal = await run_in_threadpool(self.principal, request)
        payload = await _json_body(request, 64 << 10)
        if not isinstance(payload, dict) or not isinstance(payload.get("decision"), str):
            raise BadRequest('send {"decision": "accept" | "reject", "comment": "..."}')
        canary = payload.get("canary")
        if canary is not None and (isinstance(canary, bool)
                                   or not isinstance(canary, (int, float))):
            raise BadRequest("canary is a number between 0 and 1")
        row = await run_in_threadpool(
            functools.partial(self.registry.review, p["namespace"], p["name"],
                              p["proposal_id"], payload["decision"],
                              str(payload.get("comment") or ""), principal,
                              version=payload.get("version"), canary_share=canary))
        return JSONResponse(proposal_json(row))

    async def set_policy(self, request: Request) -> JSONResponse:
        """
        summary: A namespace's review policy for proposals (`review` or `auto`).
        tags: [proposals]
        security: [{bearer: []}]
        requestBody: {schema: PolicyRequest}
        responses:
          200: {description: "{namespace, policy}", schema: ReviewPolicy}
        """
        namespace = request.path_params["namespace"]
        principal = await run_in_threadpool(self.principal, request)
        payload = await _json_body(request, 4 << 10)
        policy = payload.get("policy") if isinstance(payload, dict) else None
        if not isinstance(policy, str):
            raise BadRequest('send {"policy": "review" | "auto"}')
        await run_in_threadpool(self.registry.set_review_policy, namespace, policy, principal)
        return JSONResponse({"namespace": namespace, "policy": policy})


def proposal_json(row: ProposalRow) -> dict[str, Any]:
    return {"id": row.id, "namespace": row.namespace, "name": row.name,
            "status": row.status, "author": row.proposer_namespace,
            "base_version": row.base_version,
            "applies_to": row.applies_to, "verdict": row.verdict, "support": row.support,
            "content_sha256": row.content_sha256, "commit": row.commit_sha,
            "branch": f"refs/heads/proposals/{row.name}/{row.id}",
            "edits": row.edits, "evidence": row.evidence, "reasoning": row.reasoning,
            "created_at": row.created_at, "decided_at": row.decided_at,
            "decided_by": row.decided_by, "comment": row.comment, "version": row.version,
            "url": f"/api/v1/skills/{row.namespace}/{row.name}/proposals/{row.id}"}


def canary_json(row: CanaryRow) -> dict[str, Any]:
    return {"version": row.version, "stable_version": row.stable_version,
            "share": row.share, "state": row.state, "started_at": row.started_at,
            "decided_at": row.decided_at, "decision": row.decision}


def stats_json(stats: VersionStats) -> dict[str, Any]:
    return {"version": stats.version, "successes": stats.successes,
            "failures": stats.failures, "infra_errors": stats.infra_errors,
            "ema": None if stats.ema is None else round(stats.ema, 6),
            "score_mean": None if stats.score_mean is None else round(stats.score_mean, 6),
            "last_at": stats.last_at, "discounted": stats.discounted}


MAX_JSON_DEPTH = 64  # nesting of arrays and objects in a request body
# A string literal, or an unterminated one running to the end; possessive, so linear time.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]++")
_OPEN_CLOSE = str.maketrans("[{]}", "\x02\x02\x00\x00")  # an opener +2, a closer 0
_JSON_HINT = "send a JSON object, e.g. {\"key\": \"value\"}, with Content-Type application/json"


class BodyRejected(BadRequest):
    """A JSON body refused before or while parsing; `code` names the reason."""

    def __init__(self, code: str, message: str, hint: str = _JSON_HINT) -> None:
        super().__init__(message, extra={"hint": hint})
        self.code = code


def _json_text(raw: bytes | str) -> str:
    """The body as text, decoded as json.loads would (UTF-8, -16 or -32)."""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode(json.detect_encoding(raw), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        raise BodyRejected("bad_request", "the body is not JSON (not UTF-8 text)") from None


def json_depth_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects nest deeper than `limit`, counted without parsing:
    brackets inside strings are skipped. A cheap linear guard run before json.loads, whose
    recursion a deeply nested body would exhaust."""
    brackets = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text))
    weights = brackets.translate(_OPEN_CLOSE).encode("latin-1")
    # After k brackets the depth is (2 x openers so far) - k; all in C, no Python loop.
    depths = map(operator.sub, itertools.accumulate(weights), itertools.count(1))
    return any(map(operator.lt, itertools.repeat(limit), depths))


def parse_json(raw: bytes | str) -> Any:
    """A JSON request body, its nesting checked before parsing; 400 when it is not JSON or
    nests deeper than MAX_JSON_DEPTH (byte caps are the reader's: read_capped)."""
    text = _json_text(raw)
    if json_depth_exceeds(text):
        raise BodyRejected("json_too_deep", "the body is not JSON this server accepts: it "
                           f"nests more than {MAX_JSON_DEPTH} levels deep",
                           hint=f"nest arrays and objects at most {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise BodyRejected("bad_request", "the body is not JSON") from None


def parse_object(raw: bytes | str) -> dict[str, Any]:
    """A request body that must be a JSON object; 400 when it is not JSON, nests too deep
    or is not an object."""
    value = parse_json(raw)
    if not isinstance(value, dict):
        raise BodyRejected("bad_request", "the body is not a JSON object")
    return value


async def _json_body(request: Request, cap: int) -> Any:
    """The request's JSON body, read with a size cap (413) and parsed by parse_json (400)."""
    return parse_json(await read_capped(request, cap))


def _change(change: HealthChange) -> dict[str, Any]:
    return {"version": change.version, "old_verdict": change.old_verdict,
            "new_verdict": change.new_verdict}


def skill_json(skill: SkillRow) -> dict[str, Any]:
    return {
        "namespace": skill.namespace, "name": skill.name, "description": skill.description,
        "latest_version": skill.latest_version,
        "tags": [t.strip() for t in skill.tags.split(",") if t.strip()],
        "downloads": skill.downloads, "created_at": skill.created_at,
        "updated_at": skill.updated_at, "url": f"/api/v1/skills/{skill.namespace}/{skill.name}",
        "install": install_command(skill.namespace, skill.name),
        "verdict": skill.verdict, "deprecated": skill.verdict == "dangerous",
        "trust": skill.trust,
    }


def version_json(detail: SkillDetail, row: VersionRow) -> dict[str, Any]:
    skill, verdict = detail.skill, detail.verdict(row.version)
    return {
        "namespace": skill.namespace, "name": skill.name, "version": row.version,
        "description": row.description, "published_at": row.published_at,
        "commit": row.commit_sha, "tag": f"{skill.name}/v{row.version}",
        "tag_sha": row.tag_sha, "content_sha256": row.content_sha256,
        "url": _version_url(skill, row.version),
        "verdict": verdict, "deprecated": row.version in detail.deprecated,
        "deprecated_reason": detail.deprecated.get(row.version),
        "report": _version_url(skill, row.version) + "/report",
    }


def detail_json(detail: SkillDetail) -> dict[str, Any]:
    body = skill_json(detail.skill)
    body["visibility"] = detail.visibility
    body["git"] = f"/git/{detail.skill.namespace}.git"
    body["versions"] = [version_json(detail, v) for v in detail.versions]
    return body


def result_json(result: Result) -> dict[str, Any]:
    body = skill_json(result.skill)
    body.update(version=result.skill.latest_version, score=round(result.score, 6),
                score_parts=result.parts, snippet=plain_snippet(result.snippet),
                snippet_html=str(highlighted(result.snippet)))
    return body


def gap_json(gap: Gap) -> dict[str, Any]:
    closest = None
    if gap.best is not None:
        namespace, name = gap.best
        closest = {"namespace": namespace, "name": name,
                   "url": f"/api/v1/skills/{namespace}/{name}"}
    return {"gap": gap.detected, "best_similarity": gap.best_similarity,
            "threshold": gap.threshold, "closest": closest}


def demand_id(raw: str) -> int:
    """A demand id from a URL; 400 for anything but a positive whole number."""
    if not raw.isascii() or not raw.isdigit() or not 0 < len(raw) <= 18 or int(raw) == 0:
        raise BadRequest(f"{raw[:40]!r} is not a demand id",
                         problems=[Problem("demand_id", "not a positive whole number",
                                           "use an id from the demand list")])
    return int(raw)


def demand_json(row: DemandRow, *, answered: bool = True) -> dict[str, Any]:
    """A demand; its answer only when closed and `answered` (readable by the caller)."""
    answer = None
    if answered and row.status == "closed" and row.answer_namespace and row.answer_name \
            and row.answer_version:
        ns, name, version = row.answer_namespace, row.answer_name, row.answer_version
        answer = {"namespace": ns, "name": name, "version": version,
                  "similarity": row.answer_similarity or 0.0,
                  "url": f"/api/v1/skills/{ns}/{name}/versions/{version}",
                  "install": install_command(ns, name, version)}
    return {"id": row.id, "status": row.status, "namespace": row.scope,
            "representative": row.representative, "asks": row.asks, "askers": row.askers,
            "first_asked": row.first_asked, "last_asked": row.last_asked,
            "closed_at": row.closed_at, "answer": answer, "url": f"/api/v1/demands/{row.id}"}


def duplicate_json(duplicate: Duplicate) -> dict[str, Any]:
    skill = duplicate.skill
    return {"namespace": skill.namespace, "name": skill.name,
            "similarity": round(duplicate.similarity, 4),
            "url": f"/api/v1/skills/{skill.namespace}/{skill.name}",
            "hint": f"{skill.namespace}/{skill.name} covers nearly the same ground: consider "
                    "proposing a patch to it instead of keeping a second skill"}


def outcome_json(outcome: PublishOutcome) -> dict[str, Any]:
    """A publish's (or a check's) answer: the `Published` shape."""
    body = {
        "status": outcome.status, "namespace": outcome.namespace, "name": outcome.name,
        "version": outcome.version, "commit": outcome.commit_sha, "tag": outcome.tag_sha,
        "content_sha256": outcome.content_sha256,
        "warnings": [w.to_dict() for w in outcome.warnings],
        "url": f"/api/v1/skills/{outcome.namespace}/{outcome.name}/versions/{outcome.version}",
        "install": install_command(outcome.namespace, outcome.name, outcome.version),
        "verdict": outcome.verdict,
        "report": outcome.report.to_dict() if outcome.report else None,
        "duplicates_checked": outcome.duplicates is not None,
        "duplicates": [duplicate_json(d) for d in outcome.duplicates or ()],
    }
    if outcome.release is not None:
        body["release"] = {"id": outcome.release, "state": "pending",
                           "url": f"/api/v1/releases/{outcome.release}"}
        body["hint"] = ("the namespace requires review: a maintainer approves the release "
                        "(`skills-hub review`) before it is installable")
    return body


@dataclass(frozen=True)
class Upload:
    """A publish request's upload, read but not unpacked: an archive's bytes or the
    (path, data, executable) of each `files` part, and the form's other text fields."""

    fields: dict[str, str]
    archive: bytes | None = None
    files: tuple[tuple[str, bytes, bool], ...] = ()

    @property
    def version(self) -> str | None:
        return self.fields.get("version") or None

    def bundle(self, limits: Limits) -> Bundle:
        """Unpack it (the caps of `limits`; ArchiveRejected says why not)."""
        if self.archive is not None:
            return from_archive(self.archive, limits)
        if not self.files:
            raise BadRequest("no files in the upload",
                             extra={"hint": "send `files` parts or one `archive` part"})
        return from_files(self.files, limits)


async def read_upload(request: Request, limits: Limits) -> Upload:
    """A publish request's body: multipart `files` parts (and `executable` fields) or one
    `archive` part, or a raw zip or tar.gz; 413 past `limits.max_upload_bytes`, 400 for
    another Content-Type. The `version` query parameter is the default of the field."""
    body = await read_capped(request, limits.max_upload_bytes)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    query = {"version": request.query_params.get("version") or ""}
    if content_type in ARCHIVE_TYPES:
        return Upload(query, archive=body)
    if content_type != "multipart/form-data":
        raise BadRequest(f"unsupported Content-Type {content_type or '(none)'!r}",
                         extra={"hint": "send multipart/form-data, application/zip or "
                                        "application/gzip"})

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(
        max_files=limits.max_files + 1, max_fields=limits.max_files + 10)
    try:
        fields = {**query, **{key: value for key, value in form.multi_items()
                              if isinstance(value, str) and key != "executable"}}
        fields["version"] = fields["version"] or query["version"]
        archives = [f for f in form.getlist("archive") if isinstance(f, UploadFile)]
        if archives:
            return Upload(fields, archive=await archives[0].read())
        executables = {str(e) for e in form.getlist("executable")}
        files = [(f.filename or "", await f.read(), (f.filename or "") in executables)
                 for f in form.getlist("files") if isinstance(f, UploadFile)]
        return Upload(fields, files=tuple(files))
    finally:
        await form.close()


def _version_url(skill: SkillRow, version: str) -> str:
    return f"/api/v1/skills/{skill.namespace}/{skill.name}/versions/{version}"


async def read_capped(request: Request, cap: int) -> bytes:
    """The request body, refused with 413 once it passes `cap` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise _too_large(cap)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise _too_large(cap)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(cap: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the upload is larger than {cap} bytes", extra={
        "hint": f"send at most {cap} bytes here; split a batch or leave out what is not needed"})


def bool_param(value: str | None, *, name: str) -> bool:
    """A true/false query parameter (absent: false); 400 for anything else."""
    text = (value or "false").strip().lower()
    if text not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name} is true or false, not {value!r}",
                         problems=[Problem(name, "not a boolean", "use true or false")])
    return text in ("true", "1")


def int_param(value: str | None, default: int, *, name: str = "limit",
              low: int | None = None, high: int | None = None) -> int:
    """A whole-number query parameter; 400 when it is not one or out of [low, high]."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise BadRequest(f"{value!r} is not a whole number") from exc
    if (low is not None and number < low) or (high is not None and number > high):
        raise BadRequest(f"{name} is {low}-{high}, not {number}",
                         problems=[Problem(name, "out of range", f"use {low} to {high}")])
    return number


_TEXT_TYPES = {".md": "text/markdown", ".json": "application/json", ".yaml": "text/yaml",
               ".yml": "text/yaml", ".toml": "text/plain", ".py": "text/x-python",
               ".sh": "text/x-shellscript", ".txt": "text/plain", ".csv": "text/csv"}


def file_type(path: str, data: bytes) -> str:
    """A safe media type: known text types with utf-8, anything else text or octet-stream."""
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return _TEXT_TYPES.get(suffix, "text/plain") + "; charset=utf-8"
