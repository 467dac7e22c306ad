""""Propose a change" from the browser (issue 14): `/{namespace}/{name}/propose` shows a text
file of the skill's newest version in a textarea; the edited text goes to
`Registry.propose` as one whole-file `replace` edit (learning.edits), from the signed-in
person's session with its CSRF token, so the proposal is checked, stored and reviewed as an
agent's is. A refusal (no change, an invalid skill, the checks' findings) re-shows the form
with what was typed and the message; nothing is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from ..access.policy import PROPOSE
from ..access.principal import Principal
from ..errors import BadRequest, HubError, InvalidSkill, NotFound
from ..learning.edits import MAX_TEXT_CHARS
from ..learning.text import decode, line_ending, with_line_ending
from ..services import Registry, version_of
from ..skill import semver
from ..skill.bundle import SKILL_MD
from .auth import page_reader, request_principal
from .pages import page_viewer
from .settings import to_login

# Refusals shown in the form; a 404 (or anything else) is the whole error page.
SHOWN_ERRORS = frozenset({400, 403, 409, 413, 422, 429})
FIELDS = ("text", "note", "file", "base_version", "csrf")


@dataclass(frozen=True)
class Draft:
    """The file the form edits: one text file of one version of the skill."""

    namespace: str
    name: str
    version: str
    path: str
    text: str
    paths: list[str]  # every file of the version the form can edit, SKILL.md first


def routes(registry: Registry, templates: Jinja2Templates) -> list[Route]:
    pages = ProposePages(registry, templates)
    path = "/{namespace:namespace}/{name}/propose"
    return [Route(path, pages.form, methods=["GET"]),
            Route(path, pages.submit, methods=["POST"])]


class ProposePages:
    def __init__(self, registry: Registry, templates: Jinja2Templates) -> None:
        self.registry = registry
        self.templates = templates

    # -- the page -------------------------------------------------------------------------

    def form(self, request: Request) -> Response:
        reader = page_reader(self.registry, request)
        if not reader.signed_in:
            return to_login(request)
        p = request.path_params
        self.registry.require(reader, PROPOSE, p["namespace"])
        draft = self._draft(p["namespace"], p["name"], reader,
                            request.query_params.get("file") or SKILL_MD, None)
        return self._render(request, draft, draft.text, "")

    async def submit(self, request: Request) -> Response:
        form = await request.form()
        fields = {key: str(form.get(key) or "") for key in FIELDS}
        return await run_in_threadpool(self._submit, request, fields, "text" in form)

    def _submit(self, request: Request, fields: dict[str, str], has_text: bool) -> Response:
        reader = page_reader(self.registry, request)
        if not reader.signed_in:
            return to_login(request)
        p = request.path_params
        namespace, name = p["namespace"], p["name"]
        path, base = fields["file"] or SKILL_MD, fields["base_version"] or None
        self.registry.require(reader, PROPOSE, namespace)  # else the policy's error page
        try:
            proposer = request_principal(self.registry, request, csrf=fields["csrf"])
            draft = self._draft(namespace, name, proposer, path, base)
            if not has_text:  # not "empty the file": a form that lost its textarea
                raise BadRequest("the form sent no text", extra={"hint": "edit the text in "
                                                                         "this form and send it"})
            outcome = self.registry.propose(namespace, name,
                                            payload(draft, fields["text"], fields["note"]),
                                            proposer)
        except HubError as exc:
            if exc.status not in SHOWN_ERRORS:
                raise
            draft = self._draft(namespace, name, reader, path, base)
            return self._render(request, draft, fields["text"], fields["note"], exc)
        row = outcome.proposal
        return RedirectResponse(f"/{quote(row.namespace)}/{quote(row.name)}/proposals/{row.id}",
                                status_code=303)

    def _draft(self, namespace: str, name: str, principal: Principal, path: str,
               version: str | None) -> Draft:
        """`path` of `version` (default: the newest, which proposals apply to)."""
        detail = self.registry.get_skill(namespace, name, principal)
        newest = semver.latest([v.version for v in detail.versions]) or "latest"
        row = version_of(detail, version or newest)
        files = self.registry.bundle(namespace, row).files
        texts = {key: text for key, data in files.items()
                 if (text := decode(data)) is not None and len(text) <= MAX_TEXT_CHARS}
        paths = sorted(texts, key=lambda key: (key != SKILL_MD, key))
        if path not in files:
            raise NotFound(f"{namespace}/{name} {row.version} has no file {path!r}")
        if path not in texts:
            raise BadRequest(f"{path} is not a text file of at most {MAX_TEXT_CHARS:,} "
                             "characters, which is what this page edits",
                             extra={"hint": "propose a change to it through the API "
                                            "(POST .../proposals with edits)"})
        return Draft(namespace, name, row.version, path, texts[path], paths)

    def _render(self, request: Request, draft: Draft, text: str, note: str,
                error: HubError | None = None) -> Response:
        report = error.extra.get("report") if error is not None else None
        return self.templates.TemplateResponse(request, "propose.html", {
            "draft": draft, "text": text, "note": note, "error": error,
            "findings": report.get("findings", []) if isinstance(report, dict) else [],
            "csrf": page_viewer(self.registry, request).csrf,
            "skill_url": f"/{draft.namespace}/{draft.name}"},
            status_code=error.status if error else 200)


def payload(draft: Draft, text: str, note: str) -> dict[str, Any]:
    """The body `Registry.propose` takes for the edited text: one edit replacing the whole
    file (an `append` to an empty one). A browser sends a textarea's line breaks as CRLF;
    they become the file's own."""
    if len(text) > MAX_TEXT_CHARS:
        raise BadRequest(f"the edited {draft.path} has {len(text):,} characters; this page "
                         f"sends at most {MAX_TEXT_CHARS:,}")
    content = with_line_ending(text, line_ending(draft.text))
    if content == draft.text:
        raise InvalidSkill(f"the text leaves {draft.path} of {draft.namespace}/{draft.name} "
                           f"{draft.version} unchanged",
                           extra={"hint": "change the text, then propose it"})
    edit: dict[str, Any] = ({"op": "replace", "target": draft.text} if draft.text
                            else {"op": "append"})
    edit.update(content=content, file=draft.path)
    return {"base_version": draft.version, "edits": [edit], "reasoning": note.strip(),
            "evidence": {}}
