"""HTML pages. A request with the HX-Request header gets the `_fragment.html` partial.

People sign in here with a form (`/login`, a double-submit CSRF cookie) and get the same
session cookie the JSON API gives; every form that changes state carries the session's CSRF
token in a hidden `csrf` field, checked by `auth.request_principal`. No page ever asks for a
token."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..access.policy import PROPOSE, REVIEW, allowed
from ..access.principal import ANONYMOUS, Principal
from ..errors import BadRequest, Forbidden, HubError, NotFound, RateLimited, Unauthorized
from ..search.engine import FACET_DEPTH
from ..services import OutcomeSummary, ProposalView, Registry, install_command, version_of
from ..services.common import RESERVED_NAMESPACES
from ..services.review import ReleaseView
from ..skill.manifest import _tags as manifest_tags
from ..skill.manifest import split_frontmatter
from . import charts, highlight, markdown
from .accounts import local_path
from .auth import (
    FORM_CSRF_COOKIE,
    SESSION_COOKIE,
    form_csrf,
    form_csrf_ok,
    origin,
    page_reader,
    request_principal,
    set_form_csrf,
)
from .urls import public_base

log = logging.getLogger(__name__)

# Review errors shown inside the form (the proposal page's htmx config swaps exactly these
# statuses); anything else, a 404 above all, is a whole error page.
REVIEW_ERRORS = frozenset({400, 401, 403, 409, 422})
REVIEW_FIELDS = ("decision", "comment", "version", "canary")


@dataclass(frozen=True)
class Viewer:
    """Who looks at a page through their browser session, for the header and the forms."""

    principal: Principal = ANONYMOUS
    csrf: str | None = None
    reviews: bool = False   # reviews at least one namespace
    waiting: int = 0        # pending releases and open proposals there

    @property
    def signed_in(self) -> bool:
        return self.csrf is not None

    @property
    def name(self) -> str:
        return self.principal.display_name or self.principal.username or ""


NOBODY = Viewer()


class NamespaceConvertor(StringConvertor):
    """A path segment that may name a namespace: never a reserved word, so /docs/x or
    /admin is "nothing here", not "namespace 'admin' does not exist"."""

    regex = ("(?!(?:" + "|".join(re.escape(w) for w in sorted(RESERVED_NAMESPACES))
             + ")(?:/|$))[^/]+")


register_url_convertor("namespace", NamespaceConvertor())


def routes(registry: Registry, templates: Jinja2Templates) -> list[Route]:
    pages = Pages(registry, templates)
    ns = "/{namespace:namespace}"
    return [
        Route("/", pages.home, methods=["GET"]),
        Route("/search", pages.search, methods=["GET"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/review", pages.review_queue, methods=["GET"]),
        Route("/review/releases/{release_id}", pages.decide_release, methods=["POST"]),
        Route(ns, pages.namespace, methods=["GET"]),
        Route(ns + "/{name}", pages.skill, methods=["GET"]),
        Route(ns + "/{name}/v/{version}", pages.skill, methods=["GET"]),
        Route(ns + "/{name}/v/{version}/files/{path:path}", pages.file, methods=["GET"]),
        Route(ns + "/{name}/proposals/{proposal_id}", pages.proposal, methods=["GET"]),
        Route(ns + "/{name}/proposals/{proposal_id}/review", pages.review,
              methods=["POST"]),
    ]


class Pages:
    def __init__(self, registry: Registry, templates: Jinja2Templates) -> None:
        self.registry = registry
        self.templates = templates
        # base.html's header asks who is signed in on every page, error pages included.
        templates.env.globals["viewer"] = self.viewer

    def _principal(self, request: Request) -> Principal:
        return request_principal(self.registry, request)

    def _reader(self, request: Request) -> Principal:
        return page_reader(self.registry, request)

    def viewer(self, request: Request) -> Viewer:
        return page_viewer(self.registry, request)

    def may_review(self, principal: Principal, namespace: str) -> bool:
        ref = self.registry.namespace_ref(namespace)
        return ref is not None and allowed(principal, REVIEW, ref)

    # -- signing in and out ---------------------------------------------------------------

    def login_form(self, request: Request) -> Response:
        target = local_path(request.query_params.get("next") or "/")
        return self._login_page(request, target)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        fields = {key: str(form.get(key) or "")
                  for key in ("username", "password", "csrf", "next")}
        return await run_in_threadpool(self._login, request, fields)

    def _login(self, request: Request, fields: dict[str, str]) -> Response:
        target = local_path(fields["next"] or "/")
        username = fields["username"].strip()
        if not form_csrf_ok(request, fields["csrf"]):
            refused = Forbidden("this sign-in form did not come from this page, or it is too "
                                "old", extra={"hint": "sign in again with this form"})
            return self._login_page(request, target, username=username, error=refused)
        who = replace(ANONYMOUS, origin=origin(request))
        try:
            user = self.registry.sign_in(username, fields["password"], who)
        except (Unauthorized, RateLimited) as exc:
            return self._login_page(request, target, username=username, error=exc)
        previous = request.cookies.get(SESSION_COOKIE)
        if previous:
            self.registry.end_session(previous)
        session_id, _ = self.registry.start_session(user, who)
        response = RedirectResponse(target, status_code=303)
        # As web/accounts.py's _set_cookie does for the JSON sign-in.
        response.set_cookie(SESSION_COOKIE, session_id, max_age=14 * 86400, path="/",
                            httponly=True, samesite="lax", secure=self._secure(request))
        response.delete_cookie(FORM_CSRF_COOKIE, path="/login")
        return response

    def _login_page(self, request: Request, target: str, *, username: str = "",
                    error: HubError | None = None) -> Response:
        """The sign-in form; never given the password back."""
        csrf = form_csrf(request)
        response = self.templates.TemplateResponse(request, "login.html", {
            "csrf": csrf, "next": target, "username": username, "error": error,
            "oidc": bool(self.registry.settings.oidc_issuer)},
            status_code=error.status if error else 200)
        set_form_csrf(response, csrf, "/login", secure=self._secure(request))
        if error is not None and error.extra.get("retry_after"):
            response.headers["Retry-After"] = str(error.extra["retry_after"])
        return response

    def _secure(self, request: Request) -> bool:
        return public_base(request, self.registry).startswith("https://")

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        csrf = str(form.get("csrf") or "")
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            # Raises 403 without the session's CSRF token: another site cannot sign you out.
            await run_in_threadpool(request_principal, self.registry, request, csrf)
            await run_in_threadpool(self.registry.end_session, session_id)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- the review queue -----------------------------------------------------------------

    def review_queue(self, request: Request) -> Response:
        principal = self._principal(request)
        if not principal.signed_in:
            return RedirectResponse("/login?next=/review", status_code=303)
        return self._queue_response(request, principal)

    async def decide_release(self, request: Request) -> Response:
        form = await request.form()
        fields = {key: str(form.get(key) or "") for key in ("decision", "comment", "csrf")}
        return await run_in_threadpool(self._decide_release, request, fields)

    def _decide_release(self, request: Request, fields: dict[str, str]) -> Response:
        release_id = request.path_params["release_id"]
        reader, error = self._reader(request), None
        if not reader.signed_in:
            return RedirectResponse("/login?next=/review", status_code=303)
        try:
            reviewer = request_principal(self.registry, request, csrf=fields["csrf"])
            if fields["decision"] == "approve":
                self.registry.approve_release(reviewer, release_id, fields["comment"])
            elif fields["decision"] == "reject":
                self.registry.reject_release(reviewer, release_id, fields["comment"])
            else:
                raise BadRequest("decision is approve or reject")
        except HubError as exc:
            if exc.status not in REVIEW_ERRORS:
                raise
            error = exc
        item = self._release_item(self.registry.release_view(reader, release_id), reader)
        if request.headers.get("hx-request"):
            return self.templates.TemplateResponse(request, "_review_item.html", {
                "item": item, "item_error": error,
                "item_comment": fields["comment"] if error else "",
                "csrf": self.viewer(request).csrf, "oob": True},
                status_code=error.status if error else 200)
        return self._queue_response(request, reader, decided=item, error=error,
                                    comment=fields["comment"])

    def _queue_response(self, request: Request, principal: Principal, *,
                        decided: dict[str, Any] | None = None, error: HubError | None = None,
                        comment: str = "") -> Response:
        queue = self.registry.review_queue(principal)
        return self.templates.TemplateResponse(request, "review.html", {
            "releases": [self._release_item(view, principal) for view in queue.releases],
            "proposals": [{"p": item.row, "diff": diff_lines(item.diff)}
                          for item in queue.proposals],
            "decided": decided, "error": error, "comment": comment,
            "csrf": self.viewer(request).csrf}, status_code=error.status if error else 200)

    def _release_item(self, view: ReleaseView, principal: Principal) -> dict[str, Any]:
        row = view.release
        info = self.registry.store.namespaces.namespace(row.namespace)
        two_person = bool(info and info.two_person)
        return {"r": row, "current": view.current_version, "diff": diff_lines(view.diff),
                "report": row.report, "two_person": two_person,
                "own": row.author_id is not None and row.author_id == principal.user_id}

    def home(self, request: Request) -> Response:
        principal = self._principal(request)
        cursor = request.query_params.get("cursor") or None
        page = self.registry.list_skills(principal=principal, cursor=cursor, limit=50)
        # Three short browse lists on the first page only; "more" pages through /search.
        sorts = (("recent", "Recently updated"), ("installs", "Most installed"),
                 ("rating", "Best rated"))
        lists = [] if cursor else [
            (sort, title, [hit.skill for hit in self.registry.search(
                "", principal=principal, sort=sort, limit=10).results.results])
            for sort, title in sorts]
        viewer = self.viewer(request)
        orgs = sorted(viewer.principal.org_roles.items()) if viewer.signed_in else []
        return self.templates.TemplateResponse(request, "home.html", {
            "skills": page.skills, "total": page.total, "next_cursor": page.next_cursor,
            "cursor": cursor, "lists": [entry for entry in lists if entry[2]], "orgs": orgs,
            # a namespace with nothing the caller can read is not worth a link
            "namespaces": [row for row in self.registry.namespaces(principal) if row[2]]})

    def search(self, request: Request) -> Response:
        """The search page: results with the facets, the pager, the mode and each score.

        With HX-Request (typing, a facet, a page) only the `_results.html` part is sent; a
        history restore (back/forward after htmx pushed the URL) gets the whole page."""
        form = search_form(request.query_params)
        principal = self._principal(request)
        page = self.registry.search(
            form["q"], principal=principal, mode=form["mode"] or "auto",
            namespace=form["namespace"] or None, tag=form["tag"] or None,
            trust=form["trust"] or None, verdict=form["verdict"] or None,
            sort=form["sort"] or "relevance", limit=SEARCH_PAGE_SIZE,
            cursor=request.query_params.get("cursor") or None, facets=True)
        fragment = (request.headers.get("hx-request") == "true"
                    and request.headers.get("hx-history-restore-request") != "true")
        shown = page.results.results
        response = self.templates.TemplateResponse(
            request, "_results.html" if fragment else "search.html", {
                "q": form["q"], "form": form, "found": page.results, "hits": shown,
                "page": page, "next_cursor": page.next_cursor, "url": SearchUrl(form),
                "first": page.offset + 1, "last": page.offset + len(shown),
                "reach": FACET_DEPTH, "facet_names": SEARCH_FACETS,
                "chosen": [(key, name) for key, name in SEARCH_FACETS if form[key]],
                "namespaces": [name for name, _, count in self.registry.namespaces(principal)
                               if count]})
        # The same URL answers a fragment or a page: caches must keep them apart.
        response.headers["Vary"] = "HX-Request, HX-History-Restore-Request"
        return response

    def namespace(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]
        cursor = request.query_params.get("cursor") or None
        page = self.registry.list_skills(principal=self._principal(request),
                                         namespace=namespace, cursor=cursor, limit=50)
        return self.templates.TemplateResponse(request, "namespace.html", {
            "namespace": namespace, "skills": page.skills, "total": page.total,
            "cursor": cursor, "next_cursor": page.next_cursor,
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
            "facts": skill_facts(row.frontmatter),
            "files_url": f"/{skill.namespace}/{skill.name}/v/{row.version}/files",
            "raw_url": f"/api/v1/skills/{skill.namespace}/{skill.name}/versions/{row.version}"
                       "/files",
            "commands": install_commands(base, skill.namespace, skill.name, row.version)})

    def file(self, request: Request) -> Response:
        """One file of a version inside the site: markdown rendered (sanitised), text
        highlighted by Pygments, a binary file's size and a download link. Read through
        `registry.read_file`, so a file the caller may not read is a 404."""
        p = request.path_params
        namespace, name, path = p["namespace"], p["name"], p["path"]
        if any(part in ("", ".", "..") for part in path.split("/")) or "\\" in path:
            raise NotFound(f"{namespace}/{name} has no file {path!r}")
        row, data = self.registry.read_file(namespace, name, p["version"], path,
                                            self._principal(request))
        entry = next((f for f in row.files if f.get("path") == path), {})
        shown = file_view(path, data, source=request.query_params.get("view") == "source")
        return self.templates.TemplateResponse(request, "file.html", {
            "namespace": namespace, "name": name, "row": row, "path": path,
            "size": len(data), "executable": bool(entry.get("executable")), **shown,
            "files": row.files,
            "skill_url": f"/{namespace}/{name}/v/{row.version}",
            "page_url": f"/{namespace}/{name}/v/{row.version}/files/{path}",
            "raw_url": f"/api/v1/skills/{namespace}/{name}/versions/{row.version}/files/{path}"})

    def _learning(self, namespace: str, name: str, principal: Principal) -> dict[str, Any]:
        """The skill page's evidence (outcomes, trust, canaries, the chart of outcomes over
        time) and proposals, with whether the reader may propose a change."""
        outcomes = self.registry.outcome_summary(namespace, name, principal)
        proposals = self.registry.proposals(namespace, name, principal)
        open_ones = [p for p in proposals if p.status == "open"]
        ref = self.registry.namespace_ref(namespace)
        return {"outcomes": outcomes, "live_canary": live_canary(outcomes),
                "task_groups": self.registry.task_neighbourhoods(namespace, name, principal),
                "chart": charts.evidence_chart(
                    self.registry.outcome_timeline(namespace, name, principal)),
                "may_propose": principal.signed_in and ref is not None
                and allowed(principal, PROPOSE, ref),
                "open_proposals": open_ones, "decided": len(proposals) - len(open_ones)}

    def proposal(self, request: Request) -> Response:
        p, principal = request.path_params, self._principal(request)
        view = self.registry.proposal(p["namespace"], p["name"], p["proposal_id"], principal)
        return self._proposal_response(request, "proposal.html", view, principal)

    async def review(self, request: Request) -> Response:
        """The review form's POST, from a signed-in maintainer's session (with its CSRF
        token in the form)."""
        form = await request.form()
        fields = {key: str(form.get(key) or "") for key in (*REVIEW_FIELDS, "csrf")}
        return await run_in_threadpool(self._review, request, fields)

    def _review(self, request: Request, fields: dict[str, str]) -> Response:
        p, reader = request.path_params, self._reader(request)
        csrf, error = fields.pop("csrf"), None
        try:
            reviewer = request_principal(self.registry, request, csrf=csrf)
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
            "may_review": self.may_review(principal, row.namespace),
            "csrf": self.viewer(request).csrf, "signed_in": principal.signed_in,
            "p": row, "diff": diff_lines(view.diff), "evidence": evidence_rows(row.evidence),
            "report": row.report, "report_url": f"/api/v1/skills/{row.namespace}/{row.name}"
                                                f"/proposals/{row.id}",
            "exceptions": self.registry.exceptions(row.namespace, row.name, principal),
            "canary": next((c for c in canaries if c.version == row.version), None),
            "error": error, "form": form or {},
            "oob": template == "_proposal_status.html"},  # the header's count, out of band
            status_code=error.status if error else 200)


def page_viewer(registry: Registry, request: Request) -> Viewer:
    """The browser session's person, CSRF token and review count (once per request); every
    page's header and forms read it."""
    cached = getattr(request.state, "viewer", None)
    if isinstance(cached, Viewer):
        return cached
    found = NOBODY
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        try:
            found = _session_viewer(registry, session_id)
        except HubError:
            log.exception("the session of a page's viewer could not be read")
    request.state.viewer = found
    return found


def _session_viewer(registry: Registry, session_id: str) -> Viewer:
    principal = registry.authenticate_session(session_id)
    info = registry.session_info(session_id)
    if principal is None or info is None:
        return NOBODY
    names = registry.reviewed_namespaces(principal)
    return Viewer(principal, info[1], bool(names), registry.waiting_count(names))


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


# -- the skill page's facts, install commands and file view --------------------------------

# Frontmatter keys the facts sidebar shows by name (in this order); the rest follow as is.
_NAMED_FACTS = ("license", "author", "compatibility", "allowed-tools", "tags")
_NOT_FACTS = frozenset({"name", "description", "metadata"})
_FACT_CHARS = 500  # a longer value is cut (the file view shows SKILL.md whole)


def _fact_text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= _FACT_CHARS else text[:_FACT_CHARS] + "…"


def skill_facts(frontmatter: dict[str, Any]) -> list[tuple[str, str | list[str]]]:
    """(label, value) for the facts sidebar: license, author (or metadata.author),
    compatibility, allowed-tools, tags (a list), then every other frontmatter and metadata
    key. The template escapes every value."""
    raw_meta = frontmatter.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    found: dict[str, Any] = {
        "license": frontmatter.get("license"),
        "author": frontmatter.get("author") or meta.get("author"),
        "compatibility": frontmatter.get("compatibility"),
        "allowed-tools": frontmatter.get("allowed-tools"),
    }
    facts: list[tuple[str, str | list[str]]] = [
        (key, _fact_text(value)) for key, value in found.items()
        if value not in (None, "", [])]
    tags = manifest_tags(meta.get("tags") if isinstance(meta.get("tags"), str) else None,
                         frontmatter.get("tags"))
    if tags:
        facts.append(("tags", tags))
    others = [(str(k), v) for k, v in frontmatter.items()
              if k not in _NAMED_FACTS and k not in _NOT_FACTS]
    others += [(str(k), v) for k, v in meta.items() if k not in ("author", "tags")]
    facts += [(key, _fact_text(value)) for key, value in others if value not in (None, "")]
    return facts


@dataclass(frozen=True)
class InstallMethod:
    key: str      # an id fragment: `cmd-<key>`
    label: str    # shown above the command and in the copy button's aria-label
    command: str


def install_commands(base: str, namespace: str, name: str, version: str) -> list[InstallMethod]:
    """One command per client, as README "Client set-up" gives them (absolute URLs)."""
    return [
        InstallMethod("skills-hub", "skills-hub", install_command(namespace, name, version)),
        InstallMethod("npx", "npx skills", f"npx skills add {base}/{namespace}@{name}"),
        InstallMethod("clawhub", "clawhub",
                      f"CLAWHUB_REGISTRY={base}/clawhub/{namespace} clawhub install {name}"),
        InstallMethod("hermes", "Hermes",
                      f"hermes skills install well-known:{base}/{namespace}/.well-known/skills"
                      f"/{name} --yes"),
        InstallMethod("claude", "Claude Code",
                      f"claude plugin marketplace add {base}/{namespace}/marketplace.json && "
                      f"claude plugin install {name}@{namespace}"),
        InstallMethod("git", "git", f"git clone {base}/git/{namespace}.git"),
        InstallMethod("curl", "curl",
                      f"curl -LO {base}/api/v1/skills/{namespace}/{name}/versions/{version}"
                      "/archive.tar.gz"),
    ]


MARKDOWN_SUFFIXES = (".md", ".markdown")


def file_view(path: str, data: bytes, *, source: bool = False) -> dict[str, Any]:
    """How the file page shows a file: `kind` is binary, markdown (rendered; `source`
    asks for the highlighted text instead), large (plain text, not highlighted) or code;
    `html` is safe HTML."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        return {"kind": "binary", "html": "", "language": ""}
    is_markdown = path.lower().endswith(MARKDOWN_SUFFIXES)
    if len(data) > highlight.MAX_HIGHLIGHT_BYTES:
        return {"kind": "large", "html": highlight.highlighted(path, text), "language": "",
                "is_markdown": is_markdown}
    if is_markdown and not source:
        front = ""
        if text.lstrip("\ufeff").startswith("---"):
            try:
                yaml_text, text = split_frontmatter(text)
                front = highlight.highlighted("frontmatter.yaml", yaml_text)
            except HubError:
                pass  # no closed frontmatter: the whole file is markdown
        return {"kind": "markdown", "html": markdown.render(text), "frontmatter": front,
                "language": "Markdown", "is_markdown": True}
    return {"kind": "code", "html": highlight.highlighted(path, text),
            "language": highlight.language(path, text), "is_markdown": is_markdown}


# -- the search page ---------------------------------------------------------------------

SEARCH_PAGE_SIZE = 50
SEARCH_FIELDS = ("q", "namespace", "tag", "verdict", "trust", "sort", "mode")
SEARCH_DEFAULTS = {"sort": "relevance", "mode": "auto"}
# Facets shown on the search page: (filter, heading), in the order shown.
SEARCH_FACETS = (("namespace", "Namespace"), ("tag", "Tag"), ("verdict", "Checks"),
                 ("trust", "Trust"))


def search_form(params: Mapping[str, str]) -> dict[str, str]:
    """The search page's fields from the query string ("" when absent); the service
    checks their values."""
    return {key: params.get(key, "").strip() if key != "q" else params.get(key, "")
            for key in SEARCH_FIELDS}


class SearchUrl:
    """Links of the search page that keep the query, the filters, the sort and the mode:
    `url(tag="csv")` sets a filter (back to the first page), `url(tag="")` clears it."""

    def __init__(self, form: dict[str, str]) -> None:
        self.form = form

    def __call__(self, cursor: str | None = None, **changes: str) -> str:
        fields = {**self.form, **changes}
        pairs = [(key, fields[key]) for key in SEARCH_FIELDS
                 if fields[key] and fields[key] != SEARCH_DEFAULTS.get(key)]
        if cursor:
            pairs.append(("cursor", cursor))
        return "/search" + ("?" + urlencode(pairs) if pairs else "")

    def set(self, key: str, value: str) -> str:
        """With one field changed (a facet chosen or cleared), on the first page."""
        return self(**{key: value})
