"""The skills.sh search API, so `SKILLS_API_URL=<server> npx skills find <query>` searches us.

`npx skills find` prints `<source>@<name>` as the thing to install. A result's `source` is
the namespace's well-known root, `<server>/<namespace>`, so that line is
`<server>/<namespace>@<name>`, which `npx skills add` reads as a well-known root serving
that one skill (see `wellknown.py`); the interactive picker runs
`npx skills add <server>/<namespace> --skill <name>`, which works too.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ..errors import BadRequest
from ..search.engine import Result
from ..services import Registry
from .auth import request_principal
from .urls import public_base

DEFAULT_LIMIT = 20


def routes(registry: Registry) -> list[BaseRoute]:
    return [Route("/api/search", SkillsSh(registry).search, methods=["GET"])]


class SkillsSh:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def search(self, request: Request) -> JSONResponse:
        """
        summary: skills.sh-compatible search (what `npx skills find` calls).
        description: >
          Backed by the native search (hybrid when the model is loaded). `id` is
          `<namespace>/<name>`, `source` the namespace's well-known root, so the
          `<source>@<name>` that `npx skills find` prints installs the skill with
          `npx skills add`; `installs` is the download count. `owner` keeps one namespace.
          A bearer token adds its private namespace.
        tags: [skills-sh]
        parameters:
          - {name: q, in: query, required: false, schema: {type: string, maxLength: 1000}}
          - {name: limit, in: query, required: false,
             schema: {type: integer, default: 20, maximum: 100}}
          - {name: owner, in: query, required: false, schema: {type: string}}
        responses:
          200: {description: "{skills: [{id, name, source, installs}]}"}
          400: {description: "a bad limit, or a query too long"}
        """
        params = request.query_params
        principal = request_principal(self.registry, request)
        page = self.registry.search(
            params.get("q", ""), principal=principal,
            namespace=params.get("owner") or None, limit=_limit(params.get("limit")))
        base = public_base(request, self.registry)
        return JSONResponse({"skills": [_hit(base, r) for r in page.results.results]})


def _hit(base: str, result: Result) -> dict[str, object]:
    skill = result.skill
    return {"id": f"{skill.namespace}/{skill.name}", "name": skill.name,
            "source": f"{base}/{skill.namespace}", "installs": skill.downloads}


def _limit(value: str | None) -> int:
    if not value:
        return DEFAULT_LIMIT
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"limit {value!r} is not a whole number") from None
