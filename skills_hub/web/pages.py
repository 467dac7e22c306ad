"""HTML pages. A request with the HX-Request header gets the `_fragment.html` partial."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..access.policy import can_read
from ..access.principal import Principal
from ..errors import BadRequest, HubError
from ..services import OutcomeSummary, ProposalView, Registry, install_command, version_of
from ..skill.manifest import split_frontmatter
from . import markdown
from .auth import request_principal
from .urls import public_base

# Review errors shown inside the form (the proposal page's htmx config swaps exactly these
# statuses); anything else, a 404 above all, is a whole error page.
REVIEW_ERRORS = frozenset({400, 401, 403, 409, 422})
REVIEW_FIELDS = ("decision", "comment", "version", "canary")


def routes(registry: Registry, templates: Jinja2Templates) -> list[Route]:
    pages = Pages(registry, templates)
    return [
        Route("/", pages.home, methods=["GET"]),
        Route("/search", pages.search, methods=["GET"]),
        Route("/{namespace}", pages.namespace, methods=["GET"]),
        Route("/{namespace}/{name}", pages.skill, methods=["GET"]),
        Route("/{namespace}/{name}/v/{version}", pages.skill, methods=["GET"]),
        Route("/{namespace}/{name}/proposals/{proposal_id}", pages.proposal, methods=["GET"]),
        Route("/{namespace}/{name}/proposals/{proposal_id}/review", pages.review,
              methods=["POST"]),
    ]


class Pages:
    def __init__(self, registry: Registry, templates: Jinja2Templates) -> None:
        self.registry = registry
        self.templates = templates

    def _principal(self, request: Request):  # type: ignore[no-untyped-def]
        return request_principal(self.registry, request)

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
            "namespace": namespace, "skills": page.skills, "total": page.total,
            "base": public_base(request, self.registry)})

    def skill(self, request: Request) -> Response:
        p = request.path_params
        principal = self._principal(request)
        detail = self.registry.get_skill(p["namespace"], p["name"], principal)
        skill, row = detail.skill, version_of(detail, p.get("version", "latest"))
        bundle = self.registry.bundle(skill.namespace, row)
        body = split_frontmatter(bundle.skill_md())[1]
        base = public_base(request, self.registry)
        stored = self.registry.stored_report(skill.namespace, skill.name, row)
        exceptions = self.registry.exceptions(skill.namespace, skill.name, principal)
        duplicates = self.registry.near_duplicates(skill, principal)
        return self.templates.TemplateResponse(request, "skill.html", {
            "skill": skill, "row": row, "versions": detail.versions,
            "visibility": detail.visibility, "body_html": markdown.render(body),
            "files": row.files, "verdicts": detail.verdicts,
            "verdict": detail.verdict(row.version),
            "report": stored.report if stored else None, "exceptions": exceptions,
            "duplicates": duplicates, "deprecated": detail.deprecated,
            **self._learning(skill.namespace, skill.name, principal),
            "commands": {
                "skills-hub": install_command(skill.namespace, skill.name, row.version),
                "git": f"git clone {base}/git/{skill.namespace}.git",
                "curl": f"curl -LO {base}/api/v1/skills/{skill.namespace}/{skill.name}"
                        f"/versions/{row.version}/archive.tar.gz",
            }})

    def _learning(self, namespace: str, name: str, principal: Principal) -> dict[str, Any]:
        """The skill page's evidence (outcomes, trust, canaries) and proposals."""
        outcomes = self.registry.outcome_summary(namespace, name, principal)
        proposals = self.registry.proposals(namespace, name, principal)
        open_ones = [p for p in proposals if p.status == "open"]
        return {"outcomes": outcomes, "live_canary": live_canary(outcomes),
                "open_proposals": open_ones, "decided": len(proposals) - len(open_ones)}

    def proposal(self, request: Request) -> Response:
        p, principal = request.path_params, self._principal(request)
        view = self.registry.proposal(p["namespace"], p["name"], p["proposal_id"], principal)
        return self._proposal_response(request, "proposal.html", view, principal)

    async def review(self, request: Request) -> Response:
        """The review form's POST. The maintainer's token comes in the form; it is used for
        this one call and never stored or sent back."""
        form = await request.form()
        fields = {key: str(form.get(key) or "") for key in (*REVIEW_FIELDS, "token")}
        return await run_in_threadpool(self._review, request, fields)

    def _review(self, request: Request, fields: dict[str, str]) -> Response:
        p, reader = request.path_params, self._principal(request)
        token, error = fields.pop("token").strip(), None
        try:
            reviewer = self.registry.authenticate(token or None)
            ref = self.registry.namespace_ref(p["namespace"])
            if ref is not None and can_read(reviewer, ref):
                reader = reviewer  # it may read a private namespace the visitor cannot
            self.registry.review(p["namespace"], p["name"], p["proposal_id"],
                                 fields["decision"], fields["comment"], reviewer,
                                 version=fields["version"].strip() or None,
                                 canary_share=canary_share(fields["canary"]))
        except HubError as exc:
            if exc.status not in REVIEW_ERRORS:
                raise
            error = exc
        view = self.registry.proposal(p["namespace"], p["name"], p["proposal_id"], reader)
        template = "_proposal_status.html" if request.headers.get("hx-request") \
            else "proposal.html"
        return self._proposal_response(request, template, view, reader, error=error,
                                       form=fields)

    def _proposal_response(self, request: Request, template: str, view: ProposalView,
                           principal: Principal, *, error: HubError | None = None,
                           form: dict[str, str] | None = None) -> Response:
        row = view.proposal
        canaries = self.registry.outcome_summary(row.namespace, row.name, principal).canaries
        return self.templates.TemplateResponse(request, template, {
            "p": row, "diff": diff_lines(view.diff), "evidence": evidence_rows(row.evidence),
            "report": row.report, "report_url": f"/api/v1/skills/{row.namespace}/{row.name}"
                                                f"/proposals/{row.id}",
            "exceptions": self.registry.exceptions(row.namespace, row.name, principal),
            "canary": next((c for c in canaries if c.version == row.version), None),
            "error": error, "form": form or {}}, status_code=error.status if error else 200)


def canary_share(text: str) -> float | None:
    """The review form's optional canary share, a number between 0 and 1."""
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise BadRequest(f"canary share {text!r} is not a number; give a share of clients "
                         "between 0 and 1, e.g. 0.1") from None


def live_canary(outcomes: OutcomeSummary) -> dict[str, Any] | None:
    """The active canary with its numbers now, in the shape of a stored decision."""
    active = next((c for c in outcomes.canaries if c.state == "active"), None)
    if active is None or outcomes.live is None:
        return None
    return {"row": active, "decision": outcomes.live.to_dict()}


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff as (kind, line) for colouring; the template escapes the text. A file's
    header runs from `diff --git` to its first hunk (a removed line may start with `---`)."""
    out, header = [], False
    lines = diff.split("\n")  # not splitlines(): a form feed in a skill is not a line break
    for line in lines[:-1] if lines[-1] == "" else lines:
        if line.startswith("diff --git "):
            header = True
        if line.startswith("@@"):
            header, kind = False, "hunk"
        elif header:
            kind = "file"
        else:
            kind = {"+": "add", "-": "del", "\\": "note"}.get(line[:1], "context")
        out.append((kind, line))
    return out


def evidence_rows(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """An agent's evidence as (key, text): strings as they are, anything else as JSON."""
    def shown(value: Any) -> str:
        if isinstance(value, str):
            return value
        nested = isinstance(value, (dict, list))
        return json.dumps(value, indent=2 if nested else None, ensure_ascii=False)

    return [(str(key), shown(value)) for key, value in evidence.items()]
