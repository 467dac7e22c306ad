"""Agent-skills discovery over well-known URIs, for clients that know no registry API.

Two index formats, each in three scopes:

- `/.well-known/agent-skills/index.json`: the discovery index v0.2.0 (`$schema`; per skill
  `name`, `description`, `type`, `url`, `digest`), which `npx skills` reads first. A skill
  that is only SKILL.md is served as that file, any other as a zip with its files at the
  root; `digest` is the sha256 of exactly the bytes at `url`, and `url` names the version,
  so an index and a download never disagree across a publish.
- `/.well-known/skills/index.json`: the legacy index (`skills[]` with `name`,
  `description`, `files`, SKILL.md first), each file at `/.well-known/skills/<name>/<path>`;
  Hermes Agent reads this one.

Scopes, as the prefix before `/.well-known/`: none (every readable skill reachable by its
bare name; a name held by several namespaces is left out, and fetching it is a 409
`ambiguous_name`), `/<namespace>`, or `/<namespace>@<name>` (that one skill: the form
`npx skills find` prints, see `skillssh.py`). The latest version is listed; file and
archive URLs take `?version=` to pin one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..access.principal import Principal
from ..domain import SkillRow, VersionRow
from ..errors import BadRequest, NotFound
from ..services import Registry, installable
from ..skill.bundle import SKILL_MD
from ..store.cache import ContentCache
from .api import IMMUTABLE, file_type
from .auth import request_principal
from .urls import public_base

SCHEMA = "https://schemas.agentskills.io/discovery/0.2.0/schema.json"
DISCOVERY = ".well-known/agent-skills"
LEGACY = ".well-known/skills"
ARCHIVE_FORMAT = "zip"


def routes(registry: Registry) -> list[BaseRoute]:
    views = WellKnown(registry)
    out: list[BaseRoute] = []
    for root in ("", "/{scope}"):
        out += [
            Route(f"{root}/{LEGACY}/index.json", views.legacy_index, methods=["GET"]),
            Route(f"{root}/{DISCOVERY}/index.json", views.index, methods=["GET"]),
            Route(f"{root}/{DISCOVERY}/{{name}}.{ARCHIVE_FORMAT}", views.archive,
                  methods=["GET"]),
            Route(f"{root}/{LEGACY}/{{name}}/{{path:path}}", views.file, methods=["GET"]),
            Route(f"{root}/{DISCOVERY}/{{name}}/{{path:path}}", views.file, methods=["GET"]),
        ]
    return out


@dataclass(frozen=True)
class Scope:
    """What a well-known root covers: the server (no namespace), a namespace, or one skill."""

    namespace: str | None = None
    name: str | None = None
    prefix: str = ""  # the URL path before /.well-known/

    @classmethod
    def of(cls, request: Request) -> Scope:
        raw = request.path_params.get("scope")
        if raw is None:
            return cls()
        namespace, sep, name = raw.partition("@")
        if not namespace or (sep and not name):
            raise NotFound(f"{raw!r} is not a namespace or <namespace>@<skill>")
        return cls(namespace, name or None, "/" + raw)


@dataclass(frozen=True)
class Listed:
    """A skill of an index with its latest version."""

    skill: SkillRow
    row: VersionRow

    def paths(self) -> list[str]:
        """Every file of the version, SKILL.md first (clients look for it there)."""
        paths = sorted(f["path"] for f in self.row.files)
        return sorted(paths, key=lambda p: p != SKILL_MD)


class WellKnown:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        # sha256 of a version's well-known zip, by (namespace, tree sha): an index lists
        # every skill, and building each archive again per request would be wasteful.
        self._digests: ContentCache[str] = ContentCache(8 << 20, lambda _: 160)

    def principal(self, request: Request) -> Principal:
        return request_principal(self.registry, request)

    def legacy_index(self, request: Request) -> JSONResponse:
        """
        summary: The legacy well-known skills index (what Hermes Agent reads).
        description: >
          `{"skills": [{name, description, files}]}`: the latest version of every skill
          in the scope, `files` listing all its files with SKILL.md first, each served at
          `<scope>/.well-known/skills/<name>/<path>`. Scopes: `/.well-known/skills/` (every
          readable skill reachable by its bare name; names held by several namespaces are
          left out), `/<namespace>/.well-known/skills/`, `/<namespace>@<name>/.well-known/
          skills/`. Private namespaces need a bearer token.
        tags: [well-known]
        responses:
          200: {description: "{skills: [{name, description, files}]}"}
          404: {description: no such namespace or skill (or a private namespace)}
        """
        principal = self.principal(request)
        # A client rejects the whole legacy index for one path with ".." in it (even
        # inside a file name), so such a skill is left out of this index only.
        listed = [item for item in self._listed(Scope.of(request), principal)
                  if not any(".." in path for path in item.paths())]
        return JSONResponse({"skills": [
            {"name": item.skill.name, "description": item.row.description,
             "files": item.paths()} for item in listed]}, headers={"Cache-Control": "no-cache"})

    def index(self, request: Request) -> JSONResponse:
        """
        summary: The agent-skills discovery index v0.2.0 (what `npx skills add` reads).
        description: >
          `{$schema, skills: [{name, description, type, url, digest}]}`: the latest version
          of every skill in the scope (as for the legacy index). `type` is `skill-md` for a
          skill that is only SKILL.md, else `archive` (a zip with the files at its root,
          byte-identical to the ClawHub download); `digest` is `sha256:<hex>` of exactly
          the bytes at `url`, which pins the version.
        tags: [well-known]
        responses:
          200: {description: "{$schema, skills: [{name, description, type, url, digest}]}"}
          404: {description: no such namespace or skill (or a private namespace)}
        """
        scope, principal = Scope.of(request), self.principal(request)
        base = f"{public_base(request, self.registry)}{scope.prefix}/{DISCOVERY}"
        skills = [self._entry(base, item, principal) for item in self._listed(scope, principal)]
        return JSONResponse({"$schema": SCHEMA, "skills": skills},
                            headers={"Cache-Control": "no-cache"})

    def archive(self, request: Request) -> Response:
        """
        summary: A skill version as a deterministic zip with its files at the root.
        description: Not counted as a download (clients fetch every artifact of an index).
        tags: [well-known]
        parameters:
          - {name: name, in: path, required: true, schema: {type: string}}
          - {name: version, in: query, required: false,
             schema: {type: string, default: latest}}
        responses:
          200: {description: the zip; ETag and X-Checksum-Sha256 carry its sha256}
          404: {description: no such skill or version}
          409: {description: "server-wide scope only: several namespaces have the name
                (code ambiguous_name, `candidates` lists them)"}
        """
        scope, principal = Scope.of(request), self.principal(request)
        skill = self._skill(scope, request.path_params["name"], principal)
        version = request.query_params.get("version") or "latest"
        # Not counted as an install: `npx skills add` downloads every artifact of an index
        # even to install one skill, so each add would count every skill in the scope.
        row, archive = self.registry.archive(skill.namespace, skill.name, version,
                                             ARCHIVE_FORMAT, principal, count=False,
                                             at_root=True)
        return Response(archive.data, media_type=archive.media_type, headers={
            "ETag": f'"sha256:{archive.sha256}"', "X-Checksum-Sha256": archive.sha256,
            "X-Skill-Version": row.version,
            "Content-Disposition": f'attachment; filename="{archive.filename}"',
            "Cache-Control": "no-cache" if version == "latest" else IMMUTABLE})

    def file(self, request: Request) -> Response:
        """
        summary: One file of a skill version, raw. Served sandboxed (CSP) and never as HTML.
        tags: [well-known]
        parameters:
          - {name: name, in: path, required: true, schema: {type: string}}
          - {name: path, in: path, required: true, schema: {type: string}}
          - {name: version, in: query, required: false,
             schema: {type: string, default: latest}}
        responses:
          200: {description: the file's bytes}
          400: {description: "a path that leaves the skill folder ('..', '.', '//')"}
          404: {description: "no such skill, version or file"}
          409: {description: "server-wide scope only: several namespaces have the name
                (code ambiguous_name, `candidates` lists them)"}
        """
        path = request.path_params["path"]
        _check_path(path)
        scope, principal = Scope.of(request), self.principal(request)
        skill = self._skill(scope, request.path_params["name"], principal)
        version = request.query_params.get("version") or "latest"
        row, data = self.registry.read_file(skill.namespace, skill.name, version, path,
                                            principal)
        return Response(data, media_type=file_type(path, data), headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "X-Skill-Version": row.version,
            "Cache-Control": "no-cache" if version == "latest" else IMMUTABLE})

    def _listed(self, scope: Scope, principal: Principal) -> list[Listed]:
        """The scope's installable skills: a deprecated latest version (a re-check failed
        it) or a blocked skill is left out, as the native client refuses them and these
        clients cannot be warned."""
        if scope.namespace is not None and scope.name is not None:
            skills = [self.registry.get_skill(scope.namespace, scope.name, principal).skill]
        else:
            skills = self.registry.flat_catalogue(principal, scope.namespace).skills
        return [Listed(skill, self.registry.get_version(
            skill.namespace, skill.name, skill.latest_version, principal)[1])
            for skill in skills if installable(skill)]

    def _skill(self, scope: Scope, name: str, principal: Principal) -> SkillRow:
        """The skill `name` means in the scope; 409 when it is ambiguous server-wide."""
        if scope.name is not None and name != scope.name:
            raise NotFound(f"{scope.prefix[1:]} serves only {scope.name!r}, not {name!r}")
        return self.registry.flat_skill(name, principal, scope.namespace)

    def _entry(self, base: str, item: Listed, principal: Principal) -> dict[str, Any]:
        skill, row = item.skill, item.row
        pin = "?" + urlencode({"version": row.version})
        if item.paths() == [SKILL_MD]:
            kind, url = "skill-md", f"{base}/{skill.name}/{SKILL_MD}{pin}"
            digest = row.files[0]["sha256"]
        else:
            kind, url = "archive", f"{base}/{skill.name}.{ARCHIVE_FORMAT}{pin}"
            digest = self._archive_digest(skill, row, principal)
        return {"name": skill.name, "type": kind, "description": row.description,
                "url": url, "digest": f"sha256:{digest}"}

    def _archive_digest(self, skill: SkillRow, row: VersionRow, principal: Principal) -> str:
        def make() -> str:
            _, archive = self.registry.archive(skill.namespace, skill.name, row.version,
                                               ARCHIVE_FORMAT, principal, count=False,
                                               at_root=True)
            return archive.sha256

        return self._digests.get_or_make((skill.namespace, row.tree_sha), make)


def _check_path(path: str) -> None:
    """Refuse a file path that is not plainly inside the skill folder."""
    parts = path.split("/")
    if "\\" in path or "\x00" in path or any(part in ("", ".", "..") for part in parts):
        raise BadRequest(f"{path!r} is not a path inside a skill folder",
                         extra={"hint": "use the paths listed in the index"})
