"""HTML pages. A request with the HX-Request header gets the `_fragment.html` partial."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..service import Registry, install_command, version_of
from ..skill.manifest import split_frontmatter
from . import markdown
from .auth import request_token


def routes(registry: Registry, templates: Jinja2Templates) -> list[Route]:
    pages = Pages(registry, templates)
    return [
        Route("/", pages.home, methods=["GET"]),
        Route("/search", pages.search, methods=["GET"]),
        Route("/{namespace}", pages.namespace, methods=["GET"]),
        Route("/{namespace}/{name}", pages.skill, methods=["GET"]),
        Route("/{namespace}/{name}/v/{version}", pages.skill, methods=["GET"]),
    ]


class Pages:
    def __init__(self, registry: Registry, templates: Jinja2Templates) -> None:
        self.registry = registry
        self.templates = templates

    def _principal(self, request: Request):  # type: ignore[no-untyped-def]
        return self.registry.authenticate(request_token(request.headers))

    def home(self, request: Request) -> Response:
        principal = self._principal(request)
        page = self.registry.list_skills(principal=principal, limit=100)
        return self.templates.TemplateResponse(request, "home.html", {
            "skills": page.skills, "total": page.total,
            "namespaces": self.registry.namespaces(principal)})

    def search(self, request: Request) -> Response:
        params = request.query_params
        query = params.get("q", "")
        form = {key: params.get(key, "") for key in ("namespace", "tag", "verdict", "sort")}
        page = self.registry.search(
            query, principal=self._principal(request), namespace=form["namespace"] or None,
            tag=form["tag"] or None, verdict=form["verdict"] or None,
            sort=form["sort"] or "relevance", limit=50, cursor=params.get("cursor") or None)
        template = "_results.html" if request.headers.get("hx-request") else "search.html"
        return self.templates.TemplateResponse(request, template, {
            "q": query, "found": page.results, "hits": page.results.results,
            "next_cursor": page.next_cursor, "form": form,
            "namespaces": self.registry.namespaces(self._principal(request))})

    def namespace(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]
        page = self.registry.list_skills(principal=self._principal(request),
                                         namespace=namespace, limit=200)
        return self.templates.TemplateResponse(request, "namespace.html", {
            "namespace": namespace, "skills": page.skills, "total": page.total})

    def skill(self, request: Request) -> Response:
        p = request.path_params
        principal = self._principal(request)
        detail = self.registry.get_skill(p["namespace"], p["name"], principal)
        skill, row = detail.skill, version_of(detail, p.get("version", "latest"))
        bundle = self.registry.bundle(skill.namespace, row)
        body = split_frontmatter(bundle.skill_md())[1]
        base = str(request.base_url).rstrip("/")
        stored = self.registry.stored_report(skill.namespace, skill.name, row)
        exceptions = self.registry.exceptions(skill.namespace, skill.name, principal)
        duplicates = self.registry.near_duplicates(skill, principal)
        return self.templates.TemplateResponse(request, "skill.html", {
            "skill": skill, "row": row, "versions": detail.versions,
            "visibility": detail.visibility, "body_html": markdown.render(body),
            "files": row.files, "verdicts": detail.verdicts,
            "verdict": detail.verdict(row.version),
            "report": stored.report if stored else None, "exceptions": exceptions,
            "duplicates": duplicates,
            "commands": {
                "skills-hub": install_command(skill.namespace, skill.name, row.version),
                "git": f"git clone {base}/git/{skill.namespace}.git",
                "curl": f"curl -LO {base}/api/v1/skills/{skill.namespace}/{skill.name}"
                        f"/versions/{row.version}/archive.tar.gz",
            }})
