"""The demand list in the browser: `/demands` (open demands by distinct askers, filters,
paging) and `/demands/{id}` (one demand, its phrasings and the skill that answered it).

Both ask the service as the session's principal, so they show exactly what
`GET /api/v1/demands` shows the same caller: a private namespace's demands only to its
readers, and a 404 page for a demand one may not see."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..services import Registry, install_command
from .api import demand_id, int_param
from .auth import request_principal

PAGE_SIZE = 20
STATUS_LABELS = (("open", "Open"), ("closed", "Answered"), ("all", "All"))


def routes(registry: Registry, templates: Jinja2Templates) -> list[Route]:
    page = DemandsPage(registry, templates)
    return [
        Route("/demands", page.list, methods=["GET"]),
        Route("/demands/{demand_id}", page.show, methods=["GET"]),
    ]


class DemandsPage:
    def __init__(self, registry: Registry, templates: Jinja2Templates) -> None:
        self.registry = registry
        self.templates = templates

    def list(self, request: Request) -> Response:
        params = request.query_params
        principal = request_principal(self.registry, request)
        form = {"status": params.get("status") or "open",
                "namespace": params.get("namespace") or ""}
        offset = int_param(params.get("offset"), 0, name="offset", low=0, high=10_000)
        found = self.registry.demands(principal, status=form["status"],
                                      namespace=form["namespace"] or None,
                                      limit=PAGE_SIZE, offset=offset)
        return self.templates.TemplateResponse(request, "demands.html", {
            "demands": found.demands, "form": form, "offset": offset,
            "next_offset": found.next_offset,
            "prev_offset": max(0, offset - PAGE_SIZE) if offset else None,
            "statuses": STATUS_LABELS,
            "namespaces": [name for name, _, _ in self.registry.namespaces(principal)]})

    def show(self, request: Request) -> Response:
        view = self.registry.demand(demand_id(request.path_params["demand_id"]),
                                    request_principal(self.registry, request))
        row = view.demand
        install = install_command(row.answer_namespace or "", row.answer_name or "",
                                  row.answer_version) if view.answered else None
        return self.templates.TemplateResponse(request, "demand.html", {
            "d": row, "view": view, "install": install})
