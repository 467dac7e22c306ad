"""The ClawHub registry API, so the `clawhub` CLI installs, updates and publishes here.

Two roots over the same registry: `/clawhub` sees every namespace the caller may read, and
`/clawhub/<namespace>` sees one (reserved names such as `api` are never namespaces, so
`/clawhub/api/v1/...` is always the server-wide root). A ClawHub slug is a skill name and an
owner handle is a namespace; a slug that several namespaces hold is refused in the
server-wide root (409) with the candidates, never silently picked (`Registry.flat_skill`).

Errors are plain text, as ClawHub's own server sends them, because the CLI prints the
response body as it is; the stable code is in the `X-Skills-Hub-Error` header. An
ambiguous slug is the CLI's structured `AMBIGUOUS_SKILL_SLUG` body, which it prints as a
list of candidates with the command that installs each.

Publishing is ClawHub's two-step upload: `skills/-/upload-url` hands out one URL per file,
the CLI posts each file's bytes there, then `POST skills` names the uploaded files. Uploads
wait in a content-addressed folder per namespace beside the repos (`store.uploads`), so
every worker and node sees them; the publish itself is `Registry.publish`, with every check.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import mimetypes
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Route

from ..access.policy import PUBLISH
from ..access.principal import Principal
from ..domain import ReportRow, SkillRow, VersionRow
from ..errors import (
    AmbiguousName,
    BadRequest,
    Forbidden,
    HubError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    VersionExists,
)
from ..services import PublishOutcome, Registry, SkillDetail, check_namespace, version_of
from ..skill.bundle import from_files
from ..store.interfaces import Uploads
from ..store.uploads import FileUploads
from .api import IMMUTABLE, int_param, parse_object, read_capped
from .auth import request_principal
from .middleware import counts_as_install
from .urls import public_base

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# ClawHub's `explore --sort` values, as the search engine's browse orders. The catalogue
# keeps when a skill last changed, not when it was created: "newest" lists the recently
# published (new skills and new versions alike).
LIST_SORTS = {
    "updated": "recent", "createdAt": "recent", "newest": "recent",
    "downloads": "installs", "installs": "installs", "installsCurrent": "installs",
    "installsAllTime": "installs", "trending": "installs",
    "stars": "rating", "rating": "rating",
}

View = Callable[[Request], Any]


def routes(registry: Registry) -> list[BaseRoute]:
    hub = ClawHub(registry)
    found: list[BaseRoute] = [
        Route("/.well-known/clawhub.json", hub.discovery, methods=["GET"]),
        # The CLI also tries the name it had before a rename.
        Route("/.well-known/clawdhub.json", hub.discovery, methods=["GET"],
              include_in_schema=False),
    ]
    for root in ("/clawhub", "/clawhub/{namespace}"):
        api, skill = root + "/api/v1", root + "/api/v1/skills/{slug}"
        views: list[tuple[str, View, list[str]]] = [
            (api + "/whoami", hub.whoami, ["GET"]),
            (api + "/search", hub.search, ["GET"]),
            (api + "/skills", hub.list_skills, ["GET"]),
            (api + "/skills", hub.publish, ["POST"]),
            (api + "/skills/-/upload-url", hub.upload_url, ["POST"]),
            (api + "/skills/-/uploads/{sha256}", hub.upload, ["POST"]),
            (skill, hub.skill, ["GET"]),
            (skill + "/versions", hub.versions, ["GET"]),
            (skill + "/versions/{version}", hub.version, ["GET"]),
            (skill + "/moderation", hub.moderation, ["GET"]),
            (skill + "/file", hub.file, ["GET"]),
            (api + "/resolve", hub.resolve, ["GET"]),
            (api + "/download", hub.download, ["GET", "HEAD"]),
        ]
        found += [Route(path, _guard(view, registry), methods=methods)
                  for path, view, methods in views]
    # The rest of ClawHub (stars, transfers, device login, packages...) is not served: say so
    # in words the CLI prints, rather than with the HTML 404 page.
    found.append(Route("/clawhub/{rest:path}", _guard(hub.unsupported, registry),
                       methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
                       include_in_schema=False))
    return found


def _guard(view: View, registry: Registry) -> View:
    """The view, with domain errors rendered the way the CLI shows them (`error_response`)."""
    if inspect.iscoroutinefunction(view):
        @functools.wraps(view)
        async def guarded_async(request: Request) -> Response:
            try:
                return await view(request)  # type: ignore[no-any-return]
            except HubError as exc:
                return error_response(request, exc, registry)
        return guarded_async

    @functools.wraps(view)
    def guarded(request: Request) -> Response:
        try:
            return view(request)  # type: ignore[no-any-return]
        except HubError as exc:
            return error_response(request, exc, registry)
    return guarded


class ClawHub:
    """The views. Each parses the request, calls the registry, renders ClawHub's shapes."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.staging: Uploads = FileUploads(registry.settings.uploads_dir)

    # -- what every view needs ------------------------------------------------------------

    def principal(self, request: Request) -> Principal:
        return request_principal(self.registry, request)

    def scope(self, request: Request, principal: Principal) -> str | None:
        """The root's namespace (404 unless the caller may read it), or None: server-wide."""
        namespace = request.path_params.get("namespace")
        if namespace is None:
            return None
        check_namespace(namespace)
        self.registry.check_readable(namespace, principal)
        return str(namespace)

    def find_skill(self, request: Request, principal: Principal) -> SkillRow:
        """The skill the slug (and the optional `ownerHandle`) names in the root's scope."""
        slug = request.path_params.get("slug") or request.query_params.get("slug") or ""
        if not slug:
            raise BadRequest("slug is required")
        scope = self.scope(request, principal)
        owner = _owner_handle(request)
        if scope is not None and owner not in (None, scope):
            raise NotFound(f"Skill not found: this registry root serves the namespace "
                           f"{scope!r} only, not {owner!r}",
                           extra={"hint": "use the server-wide root /clawhub, or "
                                          f"/clawhub/{owner}"})
        try:
            return self.registry.flat_skill(slug, principal, scope or owner)
        except NotFound as exc:
            # The CLI's publish treats "skill not found" as "a new skill".
            raise NotFound(f"Skill not found: {exc.message}", extra=exc.extra) from exc

    def detail(self, request: Request) -> tuple[Principal, SkillDetail]:
        principal = self.principal(request)
        skill = self.find_skill(request, principal)
        return principal, self.registry.get_skill(skill.namespace, skill.name, principal)

    def root_url(self, request: Request) -> str:
        namespace = request.path_params.get("namespace")
        base = public_base(request, self.registry) + "/clawhub"
        return f"{base}/{namespace}" if namespace else base

    def moderation_of(self, detail: SkillDetail, row: VersionRow) -> Moderation:
        stored = self.registry.stored_report(detail.skill.namespace, detail.skill.name, row)
        return Moderation(detail.verdict(row.version), detail.skill.trust, stored)

    def unsupported(self, request: Request) -> Response:
        allowed = sorted({method for route in request.app.router.routes
                          if isinstance(route, Route) and route.methods
                          and route.path != "/clawhub/{rest:path}"
                          and route.matches(request.scope)[0] is Match.PARTIAL
                          for method in route.methods})
        if allowed:
            raise MethodNotAllowed(f"{request.url.path} answers {', '.join(allowed)}, not "
                                   f"{request.method}", extra={"allow": ", ".join(allowed)})
        raise NotFound(
            f"skills-hub's ClawHub API has no {request.method} {request.url.path}",
            extra={"hint": "it serves search, explore, inspect, install, update, publish "
                           "and `clawhub login --token <token>`"})

    # -- discovery and auth ---------------------------------------------------------------

    def discovery(self, request: Request) -> JSONResponse:
        """
        summary: Where this server's ClawHub API is, for `CLAWHUB_SITE=<this server>`.
        description: >
          The CLI reads this when no registry is set and uses `apiBase` as its registry:
          the server-wide root. A namespace's own root, `/clawhub/<namespace>`, is set with
          `CLAWHUB_REGISTRY` or `--registry`.
        tags: [clawhub]
        responses:
          200: {description: "{apiBase}"}
        """
        return JSONResponse({"apiBase": public_base(request, self.registry) + "/clawhub"})

    def whoami(self, request: Request) -> JSONResponse:
        """
        summary: The token's user for `clawhub login --token`; the handle is its namespace.
        tags: [clawhub]
        security: [{bearer: []}]
        responses:
          200: {description: "{user: {handle, displayName, image, role}}"}
          401: {description: "no token, or not a token of this registry"}
        """
        namespace = _writer(self.principal(request))
        return JSONResponse({"user": {"handle": namespace, "displayName": namespace,
                                      "image": None, "role": "user"}})

    # -- catalogue ------------------------------------------------------------------------

    def search(self, request: Request) -> JSONResponse:
        """
        summary: Search skills (`clawhub search`); each result names its namespace.
        description: >
          The registry's own search (hybrid once the embedding model is loaded, keyword
          before). `mode=exact` (`clawhub search --exact`) keeps the skills called exactly
          `q`. In the server-wide root a name may appear once per namespace; `ownerHandle`
          says which, and `clawhub install <ownerHandle>/<slug>` installs that one.
        tags: [clawhub]
        parameters:
          - {name: q, in: query, required: true, schema: {type: string, maxLength: 1000}}
          - {name: limit, in: query, required: false,
             schema: {type: integer, default: 25, maximum: 100}}
          - {name: mode, in: query, required: false, schema: {type: string, enum: [exact]}}
        responses:
          200: {description: "{results: [{slug, ownerHandle, displayName, summary, version,
                score, downloads, updatedAt, owner, verdict, trustLevel}]}"}
          400: {description: "no query, or a query too long"}
          404: {description: the root's namespace does not exist (or is private)}
        """
        params = request.query_params
        principal = self.principal(request)
        scope = self.scope(request, principal)
        query = params.get("q", "").strip()
        if not query:
            raise BadRequest("q is required: what to search for")
        exact = params.get("mode") == "exact"
        page = self.registry.search(query, principal=principal, namespace=scope,
                                    mode="keyword" if exact else "auto",
                                    limit=int_param(params.get("limit"), 25))
        results = [r for r in page.results.results if not exact or r.skill.name == query]
        return JSONResponse({"results": [
            {**summary_json(r.skill), "score": round(r.score, 6)} for r in results]})

    def list_skills(self, request: Request) -> JSONResponse:
        """
        summary: Browse skills (`clawhub explore`, `clawhub search --prefix`), cursor paging.
        description: >
          `sort`: updated (the default), createdAt or newest (both: most recently
          published, new skills and new versions alike; the catalogue keeps when a skill
          last changed), downloads, installs or trending (by downloads), stars or rating
          (the registry's rating: outcomes reported by agents). `prefix` lists the skills
          whose name starts with it, by namespace and name. Pass `nextCursor` back as
          `cursor` with the same parameters.
        tags: [clawhub]
        parameters:
          - {name: sort, in: query, required: false, schema: {type: string}}
          - {name: prefix, in: query, required: false, schema: {type: string}}
          - {name: limit, in: query, required: false,
             schema: {type: integer, default: 25, maximum: 100}}
          - {name: cursor, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{items: [{slug, displayName, summary, tags, stats, createdAt,
                updatedAt, latestVersion, ownerHandle}], nextCursor}"}
          400: {description: "an unknown sort, or a cursor from another listing"}
        """
        params = request.query_params
        principal = self.principal(request)
        scope = self.scope(request, principal)
        limit, cursor = int_param(params.get("limit"), 25), params.get("cursor") or None
        prefix = (params.get("prefix") or "").strip()
        if prefix:
            rows, next_cursor = self._by_prefix(principal, scope, prefix, cursor, limit)
        else:
            page = self.registry.search("", principal=principal, namespace=scope,
                                        sort=_list_sort(params.get("sort")), limit=limit,
                                        cursor=cursor)
            rows, next_cursor = [r.skill for r in page.results.results], page.next_cursor
        return JSONResponse({"items": [listed_json(s) for s in rows],
                             "nextCursor": next_cursor})

    def _by_prefix(self, principal: Principal, scope: str | None, prefix: str,
                   cursor: str | None, limit: int) -> tuple[list[SkillRow], str | None]:
        """Skills whose name starts with `prefix`, by (namespace, name), and the next cursor."""
        limit = max(1, min(limit, 100))
        found: list[SkillRow] = []
        while True:
            page = self.registry.list_skills(principal=principal, namespace=scope,
                                             cursor=cursor, limit=200)
            for row in page.skills:
                if not row.name.startswith(prefix) or row.trust == "blocked":
                    continue
                if len(found) == limit:
                    return found, f"{found[-1].namespace}/{found[-1].name}"
                found.append(row)
            if page.next_cursor is None:
                return found, None
            cursor = page.next_cursor

    def skill(self, request: Request) -> JSONResponse:
        """
        summary: A skill with its owner, latest version and moderation (`clawhub install`).
        description: >
          The CLI reads `moderation` before installing or updating: `isMalwareBlocked`
          (the version's checks verdict is dangerous, or the skill's trust is blocked)
          refuses the install; `isSuspicious` (verdict caution, or trust quarantined)
          needs `--force`. `ownerHandle` (a namespace) picks among the namespaces that
          have the slug; without it, a slug held by several is a 409 naming them.
        tags: [clawhub]
        parameters:
          - {name: slug, in: path, required: true, schema: {type: string}}
          - {name: ownerHandle, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{skill, latestVersion, owner, moderation, metadata}"}
          404: {description: no such skill in this root (or a private namespace)}
          409: {description: "several namespaces have the slug (code AMBIGUOUS_SKILL_SLUG,
                `matches` and `candidates` name them)"}
        """
        _, detail = self.detail(request)
        latest = version_of(detail, "latest")
        moderation = self.moderation_of(detail, latest)
        return JSONResponse({
            "skill": skill_json(detail), "latestVersion": version_json(latest),
            "owner": owner_json(detail.skill.namespace), "metadata": None,
            "moderation": moderation.to_json()})

    def versions(self, request: Request) -> JSONResponse:
        """
        summary: A skill's versions, newest first (`clawhub inspect --versions`).
        tags: [clawhub]
        parameters:
          - {name: slug, in: path, required: true, schema: {type: string}}
          - {name: ownerHandle, in: query, required: false, schema: {type: string}}
          - {name: limit, in: query, required: false,
             schema: {type: integer, default: 25, maximum: 200}}
          - {name: cursor, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{items: [{version, createdAt, changelog, fingerprint}],
                nextCursor}"}
          404: {description: no such skill}
        """
        params = request.query_params
        _, detail = self.detail(request)
        start = _offset(params.get("cursor"))
        end = start + max(1, min(int_param(params.get("limit"), 25), 200))
        more = end < len(detail.versions)
        return JSONResponse({"items": [version_json(r) for r in detail.versions[start:end]],
                             "nextCursor": str(end) if more else None})

    def version(self, request: Request) -> JSONResponse:
        """
        summary: One version (or `latest`) with its files and its checks verdict.
        tags: [clawhub]
        parameters:
          - {name: slug, in: path, required: true, schema: {type: string}}
          - {name: version, in: path, required: true, schema: {type: string}}
          - {name: ownerHandle, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{version: {version, createdAt, changelog, fingerprint, files,
                security}, skill: {slug, displayName}, moderation}"}
          404: {description: no such skill or version}
        """
        _, detail = self.detail(request)
        row = version_of(detail, request.path_params["version"])
        moderation = self.moderation_of(detail, row)
        body = {**version_json(row), "files": files_json(row.files),
                "security": moderation.security_json()}
        return JSONResponse({"version": body, "moderation": moderation.to_json(),
                             "skill": {"slug": detail.skill.name,
                                       "displayName": detail.skill.name}})

    def moderation(self, request: Request) -> JSONResponse:
        """
        summary: The latest version's moderation with its evidence (`clawhub inspect`).
        description: >
          Evidence lists the checks findings that weigh on the verdict (not covered by a
          reviewed exception): rule, severity, file, line, message and excerpt. `null`
          while the version waits for its first check.
        tags: [clawhub]
        parameters:
          - {name: slug, in: path, required: true, schema: {type: string}}
          - {name: ownerHandle, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{moderation: {isSuspicious, isMalwareBlocked, verdict,
                reasonCodes, evidence, ...} | null}"}
          404: {description: no such skill}
        """
        _, detail = self.detail(request)
        moderation = self.moderation_of(detail, version_of(detail, "latest"))
        body = moderation.to_json()
        if "verdict" not in body:
            return JSONResponse({"moderation": None})
        return JSONResponse({"moderation": {**body, "evidence": moderation.evidence()}})

    def file(self, request: Request) -> Response:
        """
        summary: One file of a version, raw (`clawhub inspect --file`).
        description: Served as bytes, sandboxed (CSP) and never as HTML.
        tags: [clawhub]
        parameters:
          - {name: slug, in: path, required: true, schema: {type: string}}
          - {name: path, in: query, required: true, schema: {type: string}}
          - {name: version, in: query, required: false, schema: {type: string}}
          - {name: ownerHandle, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: the file's bytes}
          404: {description: "no such skill, version or file"}
        """
        principal, detail = self.detail(request)
        path = request.query_params.get("path") or ""
        if not path:
            raise BadRequest("path is required: the file inside the skill")
        skill = detail.skill
        row, data = self.registry.read_file(skill.namespace, skill.name,
                                            _asked_version(request), path, principal)
        return Response(data, media_type="application/octet-stream", headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "X-Skill-Version": row.version})

    def resolve(self, request: Request) -> JSONResponse:
        """
        summary: Which version a local folder is, from its fingerprint (`clawhub update`).
        description: >
          `hash` is ClawHub's fingerprint: sha256 over the sorted `path:sha256` lines of
          the files. It matches a version's `fingerprint` (paths in code-point order, the
          native API's content_sha256) or the same lines in the order the CLI sorts them
          (`localeCompare`, dot-folders left out as the CLI leaves them out); `match` is
          the newest such version, or null. `latestVersion` is the skill's latest.
        tags: [clawhub]
        parameters:
          - {name: slug, in: query, required: true, schema: {type: string}}
          - {name: hash, in: query, required: true, schema: {type: string}}
          - {name: ownerHandle, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{match: {version, fingerprint} | null, latestVersion: {version}}"}
          400: {description: hash is not a sha256}
          404: {description: no such skill (the CLI's publish reads it as a new skill)}
        """
        fingerprint = request.query_params.get("hash", "").strip().lower()
        if not SHA256_RE.match(fingerprint):
            raise BadRequest("hash must be the skill's sha256 fingerprint (64 hex digits)")
        _, detail = self.detail(request)
        match = next((row for row in detail.versions
                      if fingerprint in (row.content_sha256, client_fingerprint(row.files))),
                     None)
        return JSONResponse({
            "match": {"version": match.version, "fingerprint": match.content_sha256}
            if match else None,
            "latestVersion": {"version": detail.skill.latest_version}})

    def download(self, request: Request) -> Response:
        """
        summary: A version as a zip with the files at its root (`clawhub install`).
        description: >
          The zip is deterministic (sorted entries, fixed times and modes), so a version
          always has the same bytes; the ETag is their sha256. The files are the native
          API's files of the same version. A version the moderation reports as malware-
          blocked (checks verdict dangerous, or the skill's trust blocked) is refused with
          403, as the CLI refuses to install it; the native API still serves it to
          `skills-hub install --allow-deprecated`.
        tags: [clawhub]
        parameters:
          - {name: slug, in: query, required: true, schema: {type: string}}
          - {name: version, in: query, required: false, schema: {type: string}}
          - {name: tag, in: query, required: false, schema: {type: string, enum: [latest]}}
          - {name: ownerHandle, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: the zip; headers ETag and X-Checksum-Sha256 carry its sha256}
          304: {description: If-None-Match matched}
          403: {description: the version is malware-blocked (code blocked)}
          404: {description: no such skill or version}
        """
        principal, detail = self.detail(request)
        asked = _asked_version(request)
        skill, row = detail.skill, version_of(detail, asked)
        moderation = self.moderation_of(detail, row)
        if moderation.blocked:
            raise Blocked(f"{skill.namespace}/{skill.name} {row.version} is blocked: "
                          f"{moderation.summary()}", extra={"reasons": moderation.reasons()})
        row, archive = self.registry.archive(skill.namespace, skill.name, row.version, "zip",
                                             principal, count=counts_as_install(request),
                                             at_root=True)
        etag = f'"sha256:{archive.sha256}"'
        headers = {"ETag": etag, "X-Checksum-Sha256": archive.sha256,
                   "X-Skill-Version": row.version,
                   "Cache-Control": "no-cache" if asked == "latest" else IMMUTABLE,
                   "Content-Disposition": f'attachment; filename="{archive.filename}"'}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(archive.data, media_type=archive.media_type, headers=headers)

    # -- publish --------------------------------------------------------------------------

    async def upload_url(self, request: Request) -> JSONResponse:
        """
        summary: Where to upload one file of a coming publish (`clawhub publish`, step 1).
        description: >
          Body `{path, size, sha256, contentType}`. The answer's `uploadUrl` takes the
          file's bytes (POST, the same token); uploads are kept per namespace for a day.
        tags: [clawhub]
        security: [{bearer: []}]
        responses:
          200: {description: "{uploadUrl, uploadTicket}"}
          400: {description: "not a sha256, or no size"}
          401: {description: "no token, or not a token of this registry"}
          403: {description: the token cannot publish to this root's namespace}
          413: {description: the file is larger than a skill's file may be}
        """
        principal = await run_in_threadpool(self.principal, request)
        writer = _writer(principal)
        scope = await run_in_threadpool(self.scope, request, principal)
        if scope is not None:
            await run_in_threadpool(self.registry.require, principal, PUBLISH, scope)
        body = await _json_object(request, 64 << 10)
        sha256 = _sha256_field(body.get("sha256"), "sha256")
        size, cap = body.get("size"), self.registry.settings.limits.max_file_bytes
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest("size must be the file's size in bytes")
        if size > cap:
            raise PayloadTooLarge(f"{body.get('path')} is {size} bytes; a skill's file may "
                                  f"have at most {cap}")
        await run_in_threadpool(self.staging.sweep, writer)
        url = f"{self.root_url(request)}/api/v1/skills/-/uploads/{sha256}"
        return JSONResponse({"uploadUrl": url, "uploadTicket": sha256})

    async def upload(self, request: Request) -> JSONResponse:
        """
        summary: The bytes of one file of a coming publish (`clawhub publish`, step 2).
        tags: [clawhub]
        security: [{bearer: []}]
        parameters:
          - {name: sha256, in: path, required: true, schema: {type: string}}
        responses:
          200: {description: "{storageId}: name the file by it in the publish"}
          400: {description: the bytes do not have the sha256 of the URL}
          401: {description: "no token, or not a token of this registry"}
          413: {description: the file is larger than a skill's file may be}
        """
        principal = await run_in_threadpool(self.principal, request)
        writer = _writer(principal)
        sha256 = _sha256_field(request.path_params["sha256"], "the upload URL")
        data = await read_capped(request, self.registry.settings.limits.max_file_bytes)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BadRequest("the uploaded bytes do not have the sha256 the upload URL names",
                             extra={"hint": "ask for an upload URL with the file's sha256"})
        await run_in_threadpool(self.staging.put, writer, sha256, data)
        return JSONResponse({"storageId": sha256})

    async def publish(self, request: Request) -> JSONResponse:
        """
        summary: Publish a version (`clawhub publish`, step 3) into the token's namespace.
        description: |
          JSON `{slug, version, ownerHandle, files: [{path, sha256, storageId}], ...}`
          naming uploaded files (the CLI's way), or multipart with a `payload` JSON field
          and `files` parts whose filename is the path (ClawHub's older upload). The slug
          must be the SKILL.md name. The version goes through `Registry.publish`: the
          manifest, the version rules and every publish check, exactly as the native
          publish. `ownerHandle`, when sent, must be the namespace the version goes to:
          this root's namespace, else the token's. `displayName`, `changelog` and `tags`
          (ClawHub's version labels) are not stored. Content identical to a published
          version under another version number is a 409 naming it.
        tags: [clawhub]
        security: [{bearer: []}]
        responses:
          201: {description: "{ok, skillId, versionId, slug, version, ownerHandle,
                fingerprint, verdict, publicationStatus}"}
          200: {description: this very version with this very content was already published}
          400: {description: "a file was not uploaded (or its upload expired), a bad body"}
          401: {description: "no token, or not a token of this registry"}
          403: {description: the token cannot publish to that namespace}
          409: {description: "the version exists, is older than the latest, or the content is
                already published as another version"}
          422: {description: "the skill is invalid, or the checks refused it; nothing stored"}
        """
        principal = await run_in_threadpool(self.principal, request)
        writer = _writer(principal)
        payload, items = await self._read_publish(request, writer)
        slug, version = _text_field(payload, "slug"), _version_field(payload)
        namespace = await run_in_threadpool(self._target, request, principal, payload)
        bundle = await run_in_threadpool(from_files, items, self.registry.settings.limits)
        outcome = await run_in_threadpool(
            self.registry.publish, namespace, replace(bundle, root_name=slug),
            principal=principal, version=version)
        if outcome.status == "unchanged" and version not in (None, outcome.version):
            raise VersionExists(
                f"this content is already published as {outcome.namespace}/{outcome.name} "
                f"{outcome.version}; nothing was published",
                extra={"version": outcome.version,
                       "hint": "change a file to publish a new version"})
        await run_in_threadpool(self.staging.drop, writer, _hashes(payload.get("files")))
        return JSONResponse(publish_json(outcome),
                            201 if outcome.status == "published" else 200)

    async def _read_publish(self, request: Request, writer: str
                            ) -> tuple[dict[str, Any], list[tuple[str, bytes, bool]]]:
        """The publish's payload and its files as (path, bytes, executable)."""
        if _content_type(request) == "multipart/form-data":
            return await self._multipart(request)
        payload = await _json_object(request, 1 << 20)
        return payload, await run_in_threadpool(self._staged, writer, payload.get("files"))

    def _target(self, request: Request, principal: Principal, payload: dict[str, Any]) -> str:
        """The namespace a publish goes to: the root's, else `ownerHandle`, else the token's."""
        owner = payload.get("ownerHandle")
        owner = owner.strip().lstrip("@").lower() if isinstance(owner, str) else None
        namespace = self.scope(request, principal) or owner or _writer(principal)
        if owner and owner != namespace:
            raise Forbidden(f"this registry root publishes to {namespace!r}, not {owner!r}",
                            extra={"hint": f"use the root /clawhub/{owner}"})
        self.registry.require(principal, PUBLISH, namespace)
        return namespace

    def _staged(self, writer: str, files: Any) -> list[tuple[str, bytes, bool]]:
        """The uploaded files a JSON publish names, as (path, bytes, executable)."""
        if not isinstance(files, list) or not files:
            raise BadRequest("files must list the uploaded files",
                             extra={"hint": "upload each file through skills/-/upload-url"})
        items = []
        for entry in files:
            if not isinstance(entry, dict):
                raise BadRequest("each entry of files is {path, sha256, storageId}")
            path = _text_field(entry, "path")
            sha256 = _sha256_field(entry.get("storageId") or entry.get("sha256"), path)
            data = self.staging.get(writer, sha256)
            if data is None:
                raise BadRequest(f"{path} was not uploaded, or its upload expired",
                                 extra={"hint": "run the publish again"})
            items.append((path, data, False))
        return items

    async def _multipart(self, request: Request
                         ) -> tuple[dict[str, Any], list[tuple[str, bytes, bool]]]:
        """ClawHub's older publish: a `payload` JSON field and `files` parts."""
        limits = self.registry.settings.limits
        body = await read_capped(request, limits.max_upload_bytes)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, replay).form(
            max_files=limits.max_files + 1, max_fields=limits.max_files + 10)
        try:
            payload = parse_object(str(form.get("payload") or ""))
            items = [(f.filename or "", await f.read(), False)
                     for f in form.getlist("files") if isinstance(f, UploadFile)]
        finally:
            await form.close()
        if not items:
            raise BadRequest("no files in the upload", extra={"hint": "send `files` parts"})
        return payload, items


# -- ClawHub's shapes ---------------------------------------------------------------------

def owner_json(namespace: str) -> dict[str, Any]:
    return {"handle": namespace, "displayName": namespace, "image": None}


def summary_json(skill: SkillRow) -> dict[str, Any]:
    """A skill as search and listings show it; `ownerHandle` is its namespace."""
    return {
        "slug": skill.name, "ownerHandle": skill.namespace, "displayName": skill.name,
        "summary": skill.description, "version": skill.latest_version,
        "downloads": skill.downloads, "updatedAt": _ms(skill.updated_at),
        # Not `trust`: ClawHub's search results use that key for an object of its own.
        "owner": owner_json(skill.namespace), "verdict": skill.verdict,
        "trustLevel": skill.trust,
    }


def _skill_fields(skill: SkillRow) -> dict[str, Any]:
    return {
        "slug": skill.name, "displayName": skill.name, "summary": skill.description,
        "description": skill.description,
        "topics": [t.strip() for t in skill.tags.split(",") if t.strip()],
        # ClawHub's tags label versions; the only label here is `latest`.
        "tags": {"latest": skill.latest_version},
        "createdAt": _ms(skill.created_at), "updatedAt": _ms(skill.updated_at),
        "ownerHandle": skill.namespace,
    }


def listed_json(skill: SkillRow) -> dict[str, Any]:
    """A skill in a listing. Its latest version's time is when the skill last changed."""
    return {**_skill_fields(skill), "stats": {"downloads": skill.downloads},
            "latestVersion": {"version": skill.latest_version,
                              "createdAt": _ms(skill.updated_at), "changelog": ""},
            "owner": owner_json(skill.namespace), "verdict": skill.verdict,
            "trustLevel": skill.trust}


def skill_json(detail: SkillDetail) -> dict[str, Any]:
    return {**_skill_fields(detail.skill),
            "stats": {"downloads": detail.skill.downloads, "versions": len(detail.versions)},
            "visibility": detail.visibility}


def version_json(row: VersionRow) -> dict[str, Any]:
    """A version; `fingerprint` is the native API's content_sha256. No changelogs are kept."""
    return {"version": row.version, "createdAt": _ms(row.published_at), "changelog": "",
            "changelogSource": None, "fingerprint": row.content_sha256,
            "commit": row.commit_sha}


def files_json(files: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"path": f["path"], "size": f["size"], "sha256": f["sha256"],
             "contentType": mimetypes.guess_type(f["path"])[0] or "application/octet-stream"}
            for f in files]


def publish_json(outcome: PublishOutcome) -> dict[str, Any]:
    skill_id = f"{outcome.namespace}/{outcome.name}"
    return {
        "ok": True, "skillId": skill_id, "versionId": f"{skill_id}@{outcome.version}",
        "slug": outcome.name, "version": outcome.version, "ownerHandle": outcome.namespace,
        "status": "published", "publicationStatus": "published",
        "fingerprint": outcome.content_sha256, "verdict": outcome.verdict,
        "warnings": [w.to_dict() for w in outcome.warnings],
    }


@dataclass(frozen=True)
class Moderation:
    """ClawHub's moderation of a version, from its checks verdict and the skill's trust."""

    verdict: str  # the checks verdict: safe, caution, dangerous or unchecked
    trust: str    # community, verified, trusted, quarantined or blocked
    report: ReportRow | None

    @property
    def blocked(self) -> bool:
        return self.verdict == "dangerous" or self.trust == "blocked"

    @property
    def suspicious(self) -> bool:
        return self.verdict == "caution" or self.trust == "quarantined"

    def label(self) -> str | None:
        if self.blocked:
            return "malicious"
        if self.suspicious:
            return "suspicious"
        return "clean" if self.verdict == "safe" else None

    def findings(self) -> list[dict[str, Any]]:
        return flagged_findings(self.report.report) if self.report else []

    def reasons(self) -> list[str]:
        rules = sorted({f["rule"] for f in self.findings()})
        if self.trust in ("blocked", "quarantined"):
            rules.append(f"trust.{self.trust}")
        return rules

    def summary(self) -> str:
        if self.verdict == "dangerous":
            return f"the publish checks judge it dangerous ({', '.join(self.reasons())})"
        if self.trust == "blocked":
            return "the registry's operator blocked this skill"
        if self.suspicious:
            reasons = ", ".join(self.reasons())
            return f"flagged (checks verdict {self.verdict}, trust {self.trust}): {reasons}"
        if self.verdict == "unchecked":
            return "not checked yet"
        return f"checks verdict {self.verdict}"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "isSuspicious": self.suspicious, "isMalwareBlocked": self.blocked,
            "reasonCodes": self.reasons(), "summary": self.summary(),
            "updatedAt": _ms(self.report.checked_at) if self.report else None,
            "engineVersion": self.report.pipeline if self.report else None}
        label = self.label()
        if label is not None:  # none while the version waits for its first check
            body["verdict"] = label
        return body

    def evidence(self) -> list[dict[str, Any]]:
        return [{"code": f["rule"], "severity": "critical" if f["severity"] == "critical"
                 else "warn", "file": f.get("file") or "", "line": f.get("line") or 0,
                 "message": f.get("message", ""), "evidence": f.get("excerpt", "")}
                for f in self.findings()]

    def security_json(self) -> dict[str, Any]:
        """A version's scan state as `clawhub inspect` prints it."""
        status = self.label() or "pending"
        return {"status": status, "hasWarnings": bool(self.findings()),
                "checkedAt": _ms(self.report.checked_at) if self.report else None,
                "model": self.report.pipeline if self.report else None}


# -- errors -------------------------------------------------------------------------------

class Blocked(Forbidden):
    """A version the moderation reports as malware-blocked; the CLI refuses it too."""

    code = "blocked"


def error_response(request: Request, exc: HubError, registry: Registry) -> Response:
    """Plain text, which the CLI prints as it is; an ambiguous slug in the CLI's own
    structured form, which it prints as the list of candidates."""
    headers = {"X-Skills-Hub-Error": exc.code}
    if exc.extra.get("allow"):
        headers["Allow"] = str(exc.extra["allow"])
    if isinstance(exc, AmbiguousName):
        return JSONResponse(ambiguous_json(exc, public_base(request, registry)), exc.status,
                            headers=headers)
    return PlainTextResponse(error_text(exc), exc.status, headers=headers)


def error_text(exc: HubError) -> str:
    lines = [exc.message]
    lines += [f"  {p.field}: {p.message}" + (f" ({p.hint})" if p.hint else "")
              for p in exc.problems if p.severity == "error"]
    report = exc.extra.get("report")
    if isinstance(report, dict):
        lines += [f"  {f['rule']} at {f.get('file') or '-'}:{f.get('line') or '-'}: "
                  f"{f.get('message', '')}" for f in flagged_findings(report)]
    if exc.extra.get("hint"):
        lines.append(f"hint: {exc.extra['hint']}")
    return "\n".join(lines)


def flagged_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored report's findings that set its verdict: high or critical, not excepted."""
    return [f for f in report.get("findings", [])
            if f.get("exception") is None and f.get("severity") in ("high", "critical")]


def ambiguous_json(exc: AmbiguousName, base: str) -> dict[str, Any]:
    candidates = [str(c) for c in exc.extra.get("candidates", [])]
    matches = []
    for candidate in candidates:
        namespace, _, name = candidate.partition("/")
        matches.append({"ownerHandle": namespace, "slug": name, "ref": candidate,
                        "url": f"{base}/{namespace}/{name}"})
    return {"code": "AMBIGUOUS_SKILL_SLUG", "error": exc.code,
            "message": f"{exc.message}. Name the namespace as the owner, or use a "
                       "namespace's own registry root, <server>/clawhub/<namespace>.",
            "matches": matches, "candidates": candidates, "hint": exc.extra.get("hint")}


# -- uploads waiting for their publish ----------------------------------------------------

# -- the CLI's fingerprint ----------------------------------------------------------------

# ICU's root collation of printable ASCII (what JavaScript's localeCompare uses), case
# folded: punctuation, then symbols, then digits, then letters.
_COLLATION = " _-,;:!?.'\"()[]{}@*/\\&#%`^+<=>|~$0123456789abcdefghijklmnopqrstuvwxyz"
_RANK = {ch: rank for rank, ch in enumerate(_COLLATION)}


def _collation_key(path: str) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """localeCompare's order: letters compared case-blind first, lower case first on a tie.
    Exact for ASCII paths; other characters sort after them by code point."""
    primary = tuple(_RANK.get(ch.lower(), len(_COLLATION) + ord(ch.lower()[0])) for ch in path)
    return primary, tuple(ch.isupper() for ch in path)


def client_fingerprint(files: Iterable[dict[str, Any]]) -> str:
    """The fingerprint the ClawHub CLI computes for an installed folder of these files:
    the `path:sha256` lines sorted with localeCompare, without the paths it never reads
    (a segment starting with a dot). `Bundle.content_hash` sorts by code point instead,
    which differs as soon as upper and lower case names mix (SKILL.md and scripts/)."""
    kept = [f for f in files if not any(p.startswith(".") for p in f["path"].split("/"))]
    kept.sort(key=lambda f: _collation_key(f["path"]))
    lines = "\n".join(f"{f['path']}:{f['sha256']}" for f in kept)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


# -- request parsing ----------------------------------------------------------------------

def _owner_handle(request: Request) -> str | None:
    handle = (request.query_params.get("ownerHandle") or "").strip().lstrip("@").lower()
    return handle or None


def _asked_version(request: Request) -> str:
    """`version`, else `tag` (only `latest` exists), else the latest."""
    params = request.query_params
    if params.get("version"):
        return params["version"]
    tag = params.get("tag") or "latest"
    if tag != "latest":
        raise NotFound(f"no tag {tag!r}: the only tag is latest")
    return "latest"


def _list_sort(value: str | None) -> str:
    if not value:
        return "recent"
    if value not in LIST_SORTS:
        raise BadRequest(f"sort {value!r} is not known; use one of {', '.join(LIST_SORTS)}")
    return LIST_SORTS[value]


def _writer(principal: Principal) -> str:
    """The namespace the caller publishes to by default (its handle); 401 without a token."""
    if not principal.signed_in or principal.username is None:
        raise Unauthorized("this needs a token: run `clawhub login --token <token>`",
                           extra={"hint": "create one with `skills-hub token create`"})
    return principal.home_namespace or principal.username


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _json_object(request: Request, cap: int) -> dict[str, Any]:
    return parse_object((await read_capped(request, cap)).decode("utf-8", "replace"))


def _text_field(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} is required")
    return value.strip()


def _version_field(payload: dict[str, Any]) -> str | None:
    version = payload.get("version") or None
    if version is not None and not isinstance(version, str):
        raise BadRequest("version must be text, such as 1.0.0")
    return version


def _sha256_field(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value.lower()):
        raise BadRequest(f"{what}: not a sha256 (64 hex digits)")
    return value.lower()


def _hashes(files: Any) -> list[str]:
    """The valid storage ids a JSON publish named (nothing for a multipart one)."""
    if not isinstance(files, list):
        return []
    ids = [f.get("storageId") or f.get("sha256") for f in files if isinstance(f, dict)]
    return [i.lower() for i in ids if isinstance(i, str) and SHA256_RE.match(i.lower())]


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not cursor.isdigit():
        raise BadRequest("the cursor is not valid", extra={"hint": "pass nextCursor as given"})
    return int(cursor)


def _ms(stamp: str) -> int | None:
    """An ISO 8601 time as milliseconds since the epoch, ClawHub's timestamps."""
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except (TypeError, ValueError):
        return None
