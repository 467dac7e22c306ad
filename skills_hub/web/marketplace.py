"""A Claude Code plugin marketplace per namespace, so Claude Code installs our skills.

`claude plugin marketplace add <server>/<namespace>/marketplace.json` registers it (the
`.claude-plugin/marketplace.json` path serves the same document). A marketplace added by URL
is only that JSON file: Claude Code downloads no other file from its server, so relative
plugin sources (`"./plugins/x"`) cannot work. Each plugin is therefore one skill with a
`git-subdir` source: Claude Code clones `<server>/git/<namespace>.git` at the version's tag
and keeps only `skills/<name>/`, a folder whose SKILL.md it loads as the plugin's skill.
One plugin per skill (rather than one for the whole namespace repo) lets a user install a
single skill, and maps plugin versions and updates onto our immutable per-skill tags.

The marketplace is named after the namespace, so plugin ids read `<skill>@<namespace>`.
Skills whose latest version is deprecated (the checks found it dangerous after it was
published) are left out, because Claude Code has no way to warn before installing;
`caution` ones are listed with the warning at the start of their description.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ..access.principal import Principal
from ..checks.findings import CAUTION
from ..domain import SkillRow, VersionRow
from ..services import Registry, installable
from ..store.gitstore import tag_name
from .auth import request_principal
from .urls import public_base

CAUTION_NOTE = "[caution: flagged by the registry's publish checks] "


def routes(registry: Registry) -> list[BaseRoute]:
    view = Marketplace(registry)
    return [
        Route("/{namespace}/marketplace.json", view.marketplace, methods=["GET"]),
        Route("/{namespace}/.claude-plugin/marketplace.json", view.marketplace,
              methods=["GET"]),
    ]


class Marketplace:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def principal(self, request: Request) -> Principal:
        return request_principal(self.registry, request)

    def marketplace(self, request: Request) -> JSONResponse:
        """
        summary: The namespace as a Claude Code plugin marketplace (one plugin per skill).
        description: >
          A `.claude-plugin/marketplace.json` document for
          `claude plugin marketplace add <server>/<namespace>/marketplace.json`. Each
          plugin is the latest version of one skill, fetched by Claude Code from this
          server's git endpoint with a `git-subdir` source (`url`
          `<server>/git/<namespace>.git`, `path` `skills/<name>`, `ref` the version's tag
          `<name>/v<version>`, `sha` its commit), so `version` changes exactly when the
          skill does. Deprecated skills are left out; `caution` skills say so at the
          start of their description. Private namespaces need a token (Bearer, or Basic
          with the token as password, which is also what git needs to clone them).
        tags: [claude]
        parameters:
          - {name: namespace, in: path, required: true, schema: {type: string}}
        responses:
          200: {description: "{name, owner, metadata, plugins: [{name, description, version,
                source, homepage, ...}]}"}
          401: {description: a token that is not valid here}
          404: {description: no such namespace (or a private one without its token)}
        """
        namespace = request.path_params["namespace"]
        principal = self.principal(request)
        skills = self.registry.flat_catalogue(principal, namespace).skills
        base = public_base(request, self.registry)
        plugins = [plugin_entry(base, skill, row) for skill, row in
                   self._latest(skills, principal) if installable(skill)]
        return JSONResponse({
            "name": namespace,
            "owner": {"name": namespace, "url": f"{base}/{namespace}"},
            "metadata": {"description": f"Agent skills of the {namespace} namespace, from "
                                        f"the skills-hub registry at {base}"},
            "plugins": plugins,
        }, headers={"Cache-Control": "no-cache"})

    def _latest(self, skills: list[SkillRow],
                principal: Principal) -> list[tuple[SkillRow, VersionRow]]:
        return [self.registry.get_version(s.namespace, s.name, s.latest_version, principal)
                for s in skills]


def plugin_entry(base: str, skill: SkillRow, row: VersionRow) -> dict[str, Any]:
    """One skill version as a marketplace plugin entry."""
    description = (CAUTION_NOTE if skill.verdict == CAUTION else "") + row.description
    entry: dict[str, Any] = {
        "name": skill.name,
        "description": description,
        "version": row.version,
        "source": {"source": "git-subdir", "url": f"{base}/git/{skill.namespace}.git",
                   "path": f"skills/{skill.name}", "ref": tag_name(skill.name, row.version),
                   "sha": row.commit_sha},
        "homepage": f"{base}/{skill.namespace}/{skill.name}",
        "author": {"name": skill.namespace},
    }
    license_name = row.frontmatter.get("license")
    if isinstance(license_name, str) and license_name:
        entry["license"] = license_name
    keywords = [tag.strip() for tag in skill.tags.split(",") if tag.strip()]
    if keywords:
        entry["keywords"] = keywords
    return entry
