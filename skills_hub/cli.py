"""The `skills-hub` command: operator commands (serve, token, reindex) and the client.

Only this module and config.py read the environment. Server imports happen inside the
operator commands so that the client commands never load starlette, dulwich or torch.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx

from . import __version__
from .client import git
from .client.config import ClientConfig, Tap
from .client.errors import Ambiguous, IntegrityError, ServerError, Unreachable
from .client.hub import DEFAULT_SERVER, HubClient, normalize_server
from .client.installer import Installed, install_from_hub, uninstall
from .client.lockfile import LockEntry, Lockfile
from .client.publisher import PublishResult, publish_folders, repo_skill_folders, skill_folders
from .client.taps import (
    add_git_tap,
    add_hub_tap,
    install_from_git_tap,
    looks_like_git,
    refresh_git_tap,
    remove_tap,
    resolve,
    same_server,
    tap_dir,
)
from .config import Settings
from .errors import ArchiveRejected, HubError, InvalidSkill, NotFound, Unauthorized

AGENT_DIRS = {"agents": ".agents/skills", "claude": ".claude/skills", "hermes": ".hermes/skills"}


class ExitCode(IntEnum):
    """Exit statuses of every command; the `main` help lists them."""

    OK = 0
    ERROR = 1  # anything else: local I/O, a server fault, a git failure
    USAGE = 2  # bad arguments, an invalid name, an ambiguous bare name
    NOT_FOUND = 3  # no such skill, version, namespace, tap or installed skill
    AUTH = 4  # missing, invalid or insufficient token
    INTEGRITY = 5  # a checksum or content hash did not match; nothing was installed
    UNREACHABLE = 6  # no answer from the server
    REFUSED = 7  # the skill was refused: invalid, version exists or too large


def exit_code(exc: HubError) -> ExitCode:
    """The exit status for an error; the one place that decides it."""
    if isinstance(exc, Unreachable):
        return ExitCode.UNREACHABLE
    if isinstance(exc, IntegrityError):
        return ExitCode.INTEGRITY
    if isinstance(exc, Ambiguous):
        return ExitCode.USAGE
    if isinstance(exc, (InvalidSkill, ArchiveRejected)) or exc.status in (409, 413, 422):
        return ExitCode.REFUSED
    return {400: ExitCode.USAGE, 401: ExitCode.AUTH, 403: ExitCode.AUTH,
            404: ExitCode.NOT_FOUND}.get(exc.status, ExitCode.ERROR)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def report_error(exc: HubError) -> None:
    """Print an error, every problem (field, message, hint) and the hint, on stderr."""
    click.echo(f"error: {exc.message}", err=True)
    for line in _problem_lines(exc.problems):
        click.echo(line, err=True)
    hint = exc.hint if isinstance(exc, ServerError) else exc.extra.get("hint")
    if hint:
        click.echo(f"hint: {hint}", err=True)


def _problem_lines(problems: list[Any], indent: str = "  ") -> list[str]:
    lines = []
    for problem in problems:
        hint = f" ({problem.hint})" if problem.hint else ""
        lines.append(f"{indent}- {problem.field}: {problem.message}{hint}")
    return lines


def _settings(home: Path | None) -> Settings:
    settings = Settings.from_env()
    return settings.with_home(home) if home else settings


class HubGroup(click.Group):
    """A group that turns domain errors into a message and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HubError as exc:
            report_error(exc)
            ctx.exit(exit_code(exc))
        except OSError as exc:  # local files: permission denied, disk full, ...
            click.echo(f"error: {exc}", err=True)
            ctx.exit(ExitCode.ERROR)


@dataclass
class Client:
    """What the client commands share: the server, tokens, config, paths, HTTP client."""

    server_option: str | None
    token_option: str | None
    config_path: Path
    cache_dir: Path
    home: Path
    skills_dir_env: str | None
    http: httpx.Client | None = None  # injected by tests: the in-process app
    # SKILLS_HUB_CLIENT_ID: this machine's stable id. Sending it opts in to canaries (the
    # server resolves `latest` per client id) and tags outcome reports.
    client_id: str | None = None
    _config: ClientConfig | None = None
    _hubs: dict[str, HubClient] = field(default_factory=dict)

    @property
    def config(self) -> ClientConfig:
        if self._config is None:
            self._config = ClientConfig.load(self.config_path)
        return self._config

    @property
    def server(self) -> str:
        """--server, else SKILLS_HUB_URL, else the config's server, else the default."""
        return normalize_server(self.server_option or self.config.server or DEFAULT_SERVER)

    def token_for(self, server: str) -> str | None:
        """--token / SKILLS_HUB_TOKEN for the chosen server, else the config's token."""
        if self.token_option and same_server(server, self.server):
            return self.token_option
        return self.config.tokens.get(normalize_server(server))

    def hub(self, server: str | None = None) -> HubClient:
        """A HubClient for `server` (default: the chosen one), with its token."""
        url = normalize_server(server or self.server)
        if url not in self._hubs:
            self._hubs[url] = HubClient(url, self.token_for(url), http=self.http)
        return self._hubs[url]

    def skills_dir(self, directory: Path | None, agent: str | None) -> Path:
        """--dir, else --agent's folder, else SKILLS_DIR, else ~/.agents/skills."""
        if directory is not None:
            return directory.expanduser().absolute()
        if agent is None and self.skills_dir_env:
            return Path(self.skills_dir_env).expanduser().absolute()
        return self.home / AGENT_DIRS[agent or "agents"]

    def close(self) -> None:
        for hub in self._hubs.values():
            hub.close()


pass_client = click.make_pass_decorator(Client)


def _client_from_env(server: str | None, token: str | None, http: httpx.Client | None) -> Client:
    home = Path.home()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    return Client(server, token, config_home / "skills-hub" / "config.json",
                  cache_home / "skills-hub", home, os.environ.get("SKILLS_DIR") or None, http,
                  os.environ.get("SKILLS_HUB_CLIENT_ID") or None)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print machine-readable JSON on stdout.")(func)


@click.group(cls=HubGroup)
@click.version_option(__version__, prog_name="skills-hub")
@click.option("--server", envvar="SKILLS_HUB_URL", metavar="URL",
              help="Registry URL (else SKILLS_HUB_URL, else the config's, else "
                   f"{DEFAULT_SERVER}).")
@click.option("--token", envvar="SKILLS_HUB_TOKEN", metavar="TOKEN",
              help="Bearer token (else SKILLS_HUB_TOKEN, else the config's for the server).")
@click.pass_context
def main(ctx: click.Context, server: str | None, token: str | None) -> None:
    """skills-hub: a self-hosted, git-backed registry for agent skills.

    \b
    Exit status:
      0  success
      1  error (local I/O, server fault, git failure)
      2  usage: bad arguments, invalid name, ambiguous bare name
      3  not found: skill, version, namespace, tap or installed skill
      4  authentication: missing, invalid or insufficient token
      5  integrity: a checksum or content hash did not match (nothing installed)
      6  cannot reach the server
      7  refused by the registry: invalid skill, existing version, too large

    \b
    Files:
      $XDG_CONFIG_HOME/skills-hub/config.json  server, tokens, taps (mode 0600)
      <skills dir>/.skills-hub-lock.json       what is installed, from where
    """
    injected = ctx.obj.get("http") if isinstance(ctx.obj, dict) else None
    client = _client_from_env(server, token, injected)
    ctx.obj = client
    ctx.call_on_close(client.close)


@main.command()
@click.argument("home", required=False, type=click.Path(path_type=Path))
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to bind (default 8000).")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
def serve(home: Path | None, host: str | None, port: int | None, workers: int) -> None:
    """Run the registry server on HOME (default: SKILLS_HUB_HOME, else ./registry)."""
    import os

    import uvicorn

    settings = _settings(home)
    os.environ["SKILLS_HUB_HOME"] = str(settings.home)  # for worker processes' factory
    click.echo(f"skills-hub {__version__}: data home {settings.home}", err=True)
    uvicorn.run("skills_hub.web.app:create_app", factory=True, host=host or settings.host,
                port=port or settings.port, workers=workers, log_level="info")


@main.group()
def token() -> None:
    """Manage publish tokens (operator)."""


@token.command("create")
@click.argument("namespace")
@click.option("--label", default="", help="A note to recognise the token by.")
@click.option("--private/--public", "private", default=None,
              help="Also set the namespace's visibility.")
@click.option("--home", type=click.Path(path_type=Path), default=None)
def token_create(namespace: str, label: str, private: bool | None, home: Path | None) -> None:
    """Create a token that publishes to NAMESPACE; the token is printed alone on the last line."""
    registry = _registry(home)
    try:
        value = registry.create_token(namespace, label, private)
    except HubError as exc:
        fail(exc.message)
    finally:
        registry.close()
    click.echo(f"Created a token for namespace {namespace!r}. It is shown once; keep it safe:",
               err=True)
    click.echo(value)


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None)
def reindex(home: Path | None) -> None:
    """Rebuild the catalogue and search index of index.db from the git repos."""
    registry = _registry(home, full=True)
    registry.close()


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--sandbox", type=click.Choice(["auto", "bubblewrap", "rlimits", "off"]),
              default=None, help="How to run the skill's tests (default: SKILLS_HUB_SANDBOX, "
                                 "else auto: bubblewrap, or a loud rlimits-only fallback).")
@click.option("--strict", is_flag=True, default=None,
              help="Unknown frontmatter keys are errors (as on a strict server).")
@click.option("--fail-on", type=click.Choice(["dangerous", "caution"]), default="dangerous",
              show_default=True, help="The verdict from which the exit status is 7.")
@click.option("--all", "show_all", is_flag=True,
              help="Also list info findings (low and above are listed by default).")
@json_option
def check(directory: Path, sandbox: str | None, strict: bool | None, fail_on: str,
          show_all: bool, as_json: bool) -> None:
    """Run the publish checks on DIR (a skill folder, or a folder of them), offline.

    The same pipeline as a publish: spec, syntax, bandit, threat rules and the skill's
    sandboxed tests. Exit status 0 when every skill would publish, 7 when one would be
    refused (or, with --fail-on caution, flagged).
    """
    from .checks.pipeline import Options, check_bundle
    from .skill.bundle import from_directory

    settings = Settings.from_env()
    options = Options(strict=settings.strict if strict is None else strict,
                      sandbox=sandbox or settings.sandbox)
    results = []
    for folder in skill_folders(directory):
        bundle = from_directory(folder, settings.limits)
        results.append((folder, check_bundle(bundle, options)))
    if as_json:
        emit_json([{"folder": str(folder), **report.to_dict()} for folder, report in results])
    else:
        for folder, report in results:
            for line in _report_lines(folder.name, report.to_dict(), show_all):
                click.echo(line)
    failing = {"dangerous"} | ({"caution"} if fail_on == "caution" else set())
    if any(r.verdict in failing or not r.valid for _, r in results):
        sys.exit(ExitCode.REFUSED)


def _report_lines(name: str, report: dict[str, Any], show_all: bool) -> list[str]:
    """A readable report: the verdict line, spec problems, then a table of findings."""
    counts = ", ".join(f"{n} {s}" for s, n in report["counts"].items() if n)
    verdict = report["verdict"].upper() if report.get("valid", True) else "INVALID"
    lines = [f"{name}: {verdict}" + (f"  ({counts})" if counts else "  (no findings)")]
    for problem in report.get("problems") or []:
        hint = f" ({problem['hint']})" if problem.get("hint") else ""
        lines.append(f"  SPEC     {problem['field']}: {problem['message']}{hint}")
    shown = [f for f in report["findings"] if show_all or f["severity"] != "info"]
    lines.extend(finding_lines(shown))
    box = report.get("sandbox") or {}
    if box and box.get("cases"):
        passed = sum(1 for c in box["cases"] if c.get("passed"))
        lines.append(f"  tests: {passed}/{len(box['cases'])} passed in the sandbox "
                     f"({box.get('isolation')})")
    elif box and box.get("isolation") == "skipped":
        lines.append("  tests: none declared (see docs/SKILL_TESTS.md)")
    return lines


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None)
@click.option("--namespace", "-n", default=None, help="Only this namespace.")
@json_option
def health(home: Path | None, namespace: str | None, as_json: bool) -> None:
    """Re-run the publish checks on every stored version and record changed verdicts.

    Run it after upgrading skills-hub or bandit (new rules). A version that now fails is
    deprecated: search, pages and installs say so.
    """
    registry = _registry(home)
    try:
        checked, changes = registry.health(namespace)
    finally:
        registry.close()
    if as_json:
        emit_json({"checked": checked, "changed": [
            {**asdict(c), "deprecated": c.deprecated} for c in changes]})
        return
    click.echo(f"checked {checked} versions; {len(changes)} changed verdict")
    for c in changes:
        mark = "  -> deprecated" if c.deprecated else ""
        click.echo(f"  {c.namespace}/{c.name} {c.version}: {c.old_verdict or 'unchecked'} -> "
                   f"{c.new_verdict}{mark}")


def _registry(home: Path | None, full: bool = False):  # type: ignore[no-untyped-def]
    from .services import Registry

    registry = Registry(_settings(home))
    registry.settings.home.mkdir(parents=True, exist_ok=True)
    registry.index.migrate()
    report = registry.reconcile(full=full)
    if full:
        click.echo(f"reindexed: {report.added} versions from git", err=True)
    return registry


# --- client commands -------------------------------------------------------------------------


def skills_dir_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --dir and --agent, and pass the resolved folder as `skills_dir`."""

    @click.option("--agent", type=click.Choice(sorted(AGENT_DIRS)), default=None,
                  help="Use that agent's skills folder (SKILLS_DIR applies when neither --dir "
                       "nor --agent is given): agents ~/.agents/skills (default), "
                       "claude ~/.claude/skills, hermes ~/.hermes/skills.")
    @click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
                  default=None, help="Skills folder (overrides --agent and SKILLS_DIR).")
    @functools.wraps(func)
    def wrapper(*args: Any, directory: Path | None, agent: str | None, **kwargs: Any) -> Any:
        client = click.get_current_context().find_object(Client)
        assert client is not None
        kwargs["skills_dir"] = client.skills_dir(directory, agent)
        return func(*args, **kwargs)

    return wrapper


def parse_ref(ref: str) -> tuple[str | None, str, str | None]:
    """`[NS/]NAME[@VERSION]` -> (namespace or None, name, version or None)."""
    body, at, version = ref.partition("@")
    if at and not version:
        raise click.BadParameter(f"{ref!r}: nothing after '@'; write NAME@VERSION")
    parts = body.split("/")
    if len(parts) > 2 or not all(parts):
        raise click.BadParameter(f"{ref!r}: write NAME, NAME@VERSION or NAMESPACE/NAME[@VERSION]")
    namespace, name = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    return namespace, name, version or None


@main.command()
@click.argument("query", default="")
@click.option("--mode", type=click.Choice(["auto", "hybrid", "keyword", "semantic"]),
              default="auto", show_default=True,
              help="How to match: words, meaning, or both (auto: hybrid once the model is "
                   "loaded).")
@click.option("--namespace", "-n", default=None, help="Only this namespace.")
@click.option("--tag", default=None, help="Only skills with this tag.")
@click.option("--trust", type=click.Choice(["community", "verified", "trusted", "quarantined",
                                            "blocked"]), default=None,
              help="Only skills at this trust level.")
@click.option("--verdict", type=click.Choice(["safe", "caution", "dangerous", "unchecked"]),
              default=None, help="Only skills whose latest checks verdict is this.")
@click.option("--since", "updated_since", default=None, metavar="DATE",
              help="Only skills updated since this ISO 8601 date or time.")
@click.option("--sort", type=click.Choice(["relevance", "installs", "rating", "recent"]),
              default="relevance", show_default=True)
@click.option("--limit", default=20, show_default=True, help="At most this many results.")
@click.option("--scores", is_flag=True, help="Show each result's score parts.")
@json_option
@pass_client
def search(client: Client, query: str, mode: str, namespace: str | None, tag: str | None,
           trust: str | None, verdict: str | None, updated_since: str | None, sort: str,
           limit: int, scores: bool, as_json: bool) -> None:
    """Search the registry for skills matching QUERY (empty: list, newest first)."""
    body = client.hub().search(query, mode=mode, namespace=namespace, tag=tag, trust=trust,
                               verdict=verdict, updated_since=updated_since, sort=sort,
                               limit=limit)
    if as_json:
        emit_json(body)
        return
    if not body["results"]:
        click.echo(f"no skills match {query!r}", err=True)
    for hit in body["results"]:
        flag = _flag(hit)
        click.echo(f"{hit['namespace']}/{hit['name']}@{hit['version']}{flag}  "
                   f"{_short(hit['description'])}")
        if scores:
            click.echo(f"    {_score_line(hit.get('score_parts') or {})}")
    note = f"({body['mode']} search"
    if body.get("mode") == "keyword" and body.get("semantic") == "loading":
        note += "; the semantic model is still loading"
    click.echo(note + ")", err=True)
    gap = body.get("gap")
    if gap and gap.get("gap"):
        click.echo(f"no skill is close to this task (best similarity "
                   f"{gap['best_similarity']:.2f} < {gap['threshold']}): a new skill could "
                   "fill the gap", err=True)


def _score_line(parts: dict[str, Any]) -> str:
    """score 0.93 = relevance 0.95 (keyword #1 bm25 7.2, semantic #2 cos 0.61) x quality."""
    found = []
    if parts.get("exact_name"):
        found.append("exact name")
    if parts.get("keyword"):
        found.append(f"keyword #{parts['keyword']['rank']} bm25 {parts['keyword']['bm25']:.2f}")
    if parts.get("semantic"):
        found.append(f"semantic #{parts['semantic']['rank']} "
                     f"cos {parts['semantic']['similarity']:.2f}")
    floor = ", new-skill floor" if parts.get("new_skill_floor") else ""
    return (f"score {parts.get('score', 0):.3f} = relevance {parts.get('relevance', 0):.3f} "
            f"({'; '.join(found) or 'listed'}) x quality {parts.get('quality', 0):.3f} "
            f"(wilson {parts.get('wilson', 0):.3f}{floor}, installs "
            f"{parts.get('installs', 0):.2f})")


@main.command()
@click.argument("query")
@click.option("--namespace", "-n", default=None, help="Only this namespace.")
@json_option
@pass_client
def gaps(client: Client, query: str, namespace: str | None, as_json: bool) -> None:
    """Say whether the registry lacks a skill for QUERY (best similarity below 0.3)."""
    body = client.hub().gaps(query, namespace=namespace)
    if as_json:
        emit_json(body)
    else:
        closest = body.get("closest") or {}
        near = f"{closest.get('namespace')}/{closest.get('name')}" if closest else "nothing"
        verdict = "gap" if body["gap"] else "covered"
        click.echo(f"{verdict}: closest is {near} (similarity {body['best_similarity']:.2f}, "
                   f"threshold {body['threshold']})")


def _flag(body: dict[str, Any]) -> str:
    """" [deprecated]" or " [caution]" after a skill's name when the checks flagged it."""
    if body.get("deprecated"):
        return " [deprecated]"
    return " [caution]" if body.get("verdict") == "caution" else ""


@main.command()
@click.argument("ref", metavar="NS/NAME[@VERSION]")
@json_option
@pass_client
def info(client: Client, ref: str, as_json: bool) -> None:
    """Show a skill: description, versions, and the files of the latest (or given) version."""
    namespace, name, version = parse_ref(ref)
    if namespace is None:
        raise click.BadParameter(f"{ref!r}: write NAMESPACE/NAME", param_hint="NS/NAME")
    hub = client.hub()
    skill = hub.skill(namespace, name)
    detail = hub.version(namespace, name, version or "latest")
    if as_json:
        emit_json({**skill, "version": detail})
        return
    click.echo(f"{namespace}/{name} {detail['version']}  (latest {skill['latest_version']})")
    click.echo(f"  {detail['description']}")
    click.echo("versions: " + ", ".join(v["version"] for v in skill["versions"]))
    click.echo(f"files of {detail['version']}:")
    for item in detail["files"]:
        mark = "  (executable)" if item.get("executable") else ""
        click.echo(f"  {item['path']}  {item['size']} B{mark}")
    click.echo(f"content sha256: {detail['content_sha256']}")
    click.echo(f"checks: {_verdict_text(detail)}  (skills-hub report {namespace}/{name}@"
               f"{detail['version']})")
    click.echo(f"install: {detail['install']}")


def _verdict_text(body: dict[str, Any]) -> str:
    verdict = str(body.get("verdict") or "unchecked")
    if body.get("deprecated"):
        return f"{verdict} (DEPRECATED: a re-check failed this version)"
    return verdict


@main.command()
@click.argument("ref", metavar="NS/NAME[@VERSION]")
@click.option("--all", "show_all", is_flag=True, help="Also list info findings.")
@json_option
@pass_client
def findings(client: Client, ref: str, show_all: bool, as_json: bool) -> None:
    """Show the checks report of a published version (latest by default)."""
    namespace, name, version = _qualified(ref)
    body = client.hub().report(namespace, name, version or "latest")
    if as_json:
        emit_json(body)
        return
    title = f"{namespace}/{name} {body['version']}"
    for line in _report_lines(title, body, show_all):
        click.echo(line)
    if body.get("deprecated"):
        click.echo("  DEPRECATED: a re-check failed this version; do not install it")


@main.command()
@click.argument("ref", metavar="NS/NAME[@VERSION]")
@click.argument("outcome", required=False,
                type=click.Choice(["success", "failure", "infra_error"]))
@click.option("--kind", "failure_kind", default=None,
              type=click.Choice(["wrong_result", "error", "timeout", "incomplete", "unsafe",
                                 "other"]), help="What kind of failure (needed with failure).")
@click.option("--accepted/--rejected", "task_accepted", default=None,
              help="Whether the user accepted the task's result.")
@click.option("--continued/--abandoned", "session_continued", default=None,
              help="Whether the session went on after the skill ran.")
@click.option("--retries", type=click.IntRange(0, 1000), default=None,
              help="How many times the agent retried.")
@click.option("--edit-ratio", type=click.FloatRange(0, 1), default=None,
              help="How much of the output a person rewrote (0-1).")
@click.option("--error-reported", is_flag=True, default=None, help="The user reported an error.")
@click.option("--agent-name", default=None, help="The reporting agent (e.g. hermes).")
@click.option("--model", default=None, help="The model the agent ran.")
@click.option("--client-id", default=None,
              help="This client's stable id (default SKILLS_HUB_CLIENT_ID).")
@click.option("--id", "report_id", default=None,
              help="The report's id (default: a new UUID); resending an id is not counted twice.")
@click.option("--file", "from_file", type=click.File("r"), default=None,
              help="Send the reports in this JSON file (a list, or {\"outcomes\": [...]}) "
                   "instead; '-' reads stdin.")
@skills_dir_options
@json_option
@pass_client
def report(client: Client, ref: str, outcome: str | None, from_file: Any,
           skills_dir: Path, as_json: bool, **fields: Any) -> None:
    """Report how a skill version did: OUTCOME is success, failure (with --kind) or
    infra_error (your tooling failed, not the skill; never counted against it).

    Without @VERSION, the version installed in the skills folder is reported.
    """
    namespace, name, version = _qualified(ref)
    if from_file is not None:
        reports = _reports_from_file(from_file)
    elif outcome is None:
        raise click.BadParameter("give an OUTCOME (success, failure, infra_error) or --file")
    else:
        fields["client_id"] = fields["client_id"] or client.client_id
        reports = [_report_from_options(outcome, version or _installed_version(
            skills_dir, namespace, name), fields)]
    body = client.hub().report_outcomes(namespace, name, reports)
    if as_json:
        emit_json(body)
        return
    repeated = f", {body['repeated']} already sent" if body["repeated"] else ""
    click.echo(f"recorded {body['recorded']} outcome(s) for {namespace}/{name}{repeated}; "
               f"trust: {body['trust']}")
    change = body.get("trust_change")
    if change:
        click.echo(f"  trust {change['old']} -> {change['new']}: {change['reason']}")


def _report_from_options(outcome: str, version: str, fields: dict[str, Any]) -> dict[str, Any]:
    signal_keys = ("task_accepted", "session_continued", "retries", "edit_ratio",
                   "error_reported")
    client_keys = {"agent_name": "agent", "model": "model", "client_id": "id"}
    report: dict[str, Any] = {"id": fields["report_id"] or str(uuid.uuid4()),
                              "version": version, "outcome": outcome}
    if fields["failure_kind"]:
        report["failure_kind"] = fields["failure_kind"]
    signals = {k: fields[k] for k in signal_keys if fields[k] is not None}
    if signals:
        report["signals"] = signals
    who = {v: fields[k] for k, v in client_keys.items() if fields[k]}
    if who:
        report["client"] = who
    return report


def _reports_from_file(handle: Any) -> list[dict[str, Any]]:
    data = _json_file(handle, "--file")
    reports = data.get("outcomes") if isinstance(data, dict) else data
    if not isinstance(reports, list):
        raise click.BadParameter('a JSON list of reports or {"outcomes": [...]}',
                                 param_hint="--file")
    return reports


def _installed_version(skills_dir: Path, namespace: str, name: str) -> str:
    entry = Lockfile(skills_dir).get(name)
    if entry is None or entry.namespace != namespace:
        raise click.BadParameter(f"{namespace}/{name} is not installed in {skills_dir}; name "
                                 "the version: NS/NAME@VERSION", param_hint="NS/NAME[@VERSION]")
    return entry.version


@main.command()
@click.argument("ref", metavar="NS/NAME")
@json_option
@pass_client
def outcomes(client: Client, ref: str, as_json: bool) -> None:
    """Show what agents reported about a skill: per-version counts, EMA, trust history."""
    namespace, name, _ = _qualified(ref)
    body = client.hub().outcomes(namespace, name)
    if as_json:
        emit_json(body)
        return
    click.echo(f"{namespace}/{name}: trust {body['trust']}, Wilson {body['wilson']:.3f} "
               f"({body['successes']:.1f} successes, {body['failures']:.1f} failures, decayed; "
               f"{body['clients']} clients)")
    for v in body["versions"]:
        ema = "-" if v["ema"] is None else f"{v['ema']:.2f}"
        click.echo(f"  {v['version']}: {v['successes']} ok, {v['failures']} failed, "
                   f"{v['infra_errors']} infra; EMA {ema}, Wilson {v['wilson']:.3f}")
    for event in body["events"]:
        click.echo(f"  {event['at'][:19]} {event['old']} -> {event['new']} ({event['actor']}): "
                   f"{event['reason']}")
    for canary in body.get("canaries", []):
        why = (canary.get("decision") or {}).get("reason", "waiting for outcomes")
        click.echo(f"  canary {canary['version']} over {canary['stable_version']} "
                   f"(share {canary['share']:g}): {canary['state']}; {why}")


@main.command()
@click.argument("ref", metavar="NS/NAME")
@click.option("--reason", required=True, help="Why (shown in the trust history).")
@click.option("--lift", is_flag=True, help="Lift the block (back to community).")
@pass_client
def block(client: Client, ref: str, reason: str, lift: bool) -> None:
    """Block a skill of your namespace (hidden from search, never moved by reports)."""
    namespace, name, _ = _qualified(ref)
    body = client.hub().set_trust(namespace, name, "community" if lift else "blocked", reason)
    click.echo(f"{namespace}/{name}: trust {body['trust']}")


@main.command()
@click.argument("ref", metavar="NS/NAME@BASE_VERSION")
@click.argument("edits_file", metavar="EDITS.json", type=click.File("r"))
@click.option("--reasoning", default="", help="Why the edits make the skill better.")
@click.option("--evidence", "evidence_file", type=click.File("r"), default=None,
              help="A JSON file of evidence: outcome counts, failure summary, excerpts.")
@json_option
@pass_client
def propose(client: Client, ref: str, edits_file: Any, reasoning: str, evidence_file: Any,
            as_json: bool) -> None:
    """Propose edits to a skill. EDITS.json is a list of {op, target, content, file} or
    Hermes-style {old_string, new_string, replace_all, file_path} ('-' reads stdin)."""
    namespace, name, version = _qualified(ref)
    if version is None:
        raise click.BadParameter("name the version the edits were written against: "
                                 "NS/NAME@VERSION", param_hint="NS/NAME@BASE_VERSION")
    edits = _json_file(edits_file, "EDITS.json")
    evidence = _json_file(evidence_file, "--evidence") if evidence_file else {}
    body = client.hub().propose(namespace, name, version, edits, evidence=evidence,
                                reasoning=reasoning)
    if as_json:
        emit_json(body)
        return
    verb = "opened" if body["created"] else "supported"
    click.echo(f"{verb} proposal {body['id']} for {namespace}/{name} (on {body['applies_to']}, "
               f"checks {body['verdict']}, support {body['support']}): {body['status']}")
    if body.get("policy"):
        click.echo(f"  policy: {body['policy']}")


def _json_file(handle: Any, hint: str) -> Any:
    try:
        return json.load(handle)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=hint) from None


@main.command()
@click.argument("ref", metavar="NS[/NAME]")
@click.option("--status", type=click.Choice(["open", "accepted", "rejected"]), default=None)
@click.option("--mine", is_flag=True, help="Only the proposals this token sent.")
@click.option("--show", "show_id", default=None, metavar="ID",
              help="Show one proposal with its diff.")
@json_option
@pass_client
def proposals(client: Client, ref: str, status: str | None, mine: bool, show_id: str | None,
              as_json: bool) -> None:
    """List proposals of a skill or a namespace (a review queue), or --show one."""
    namespace, _, name = ref.partition("/")
    hub = client.hub()
    if show_id:
        if not name:
            raise click.BadParameter("--show needs NS/NAME", param_hint="NS[/NAME]")
        one = hub.proposal(namespace, name, show_id)
        if as_json:
            emit_json(one)
            return
        click.echo(_proposal_line(one))
        click.echo(one["reasoning"] or "(no reasoning given)")
        click.echo(one["diff"], nl=False)
        return
    rows = hub.proposals(namespace, name or None, status=status, mine=mine)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(_proposal_line(row))
    if not rows:
        click.echo("no proposals")


def _proposal_line(row: dict[str, Any]) -> str:
    decided = ""
    if row["status"] != "open":
        became = f" -> {row['version']}" if row.get("version") else ""
        decided = f"{became} by {row['decided_by']}: {row.get('comment') or ''}"
    return (f"{row['id']}  {row['namespace']}/{row['name']}  {row['status']}{decided}  "
            f"(base {row['base_version']}, checks {row['verdict']}, support {row['support']})")


@main.command()
@click.argument("ref", metavar="NS/NAME")
@click.argument("proposal_id", metavar="ID")
@click.argument("decision", type=click.Choice(["accept", "reject"]))
@click.option("--comment", default="", help="Why (required to reject; the agent reads it).")
@click.option("--version", default=None, help="The version to publish (default: next patch).")
@click.option("--canary", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, help="Release to this share of clients first (e.g. 0.1).")
@pass_client
def review(client: Client, ref: str, proposal_id: str, decision: str, comment: str,
           version: str | None, canary: float | None) -> None:
    """Accept or reject a proposal (a maintainer's token)."""
    namespace, name, _ = _qualified(ref)
    body = client.hub().review(namespace, name, proposal_id, decision, comment,
                               version=version, canary=canary)
    click.echo(_proposal_line(body))


@main.command()
@click.argument("namespace")
@click.argument("policy", type=click.Choice(["review", "auto"]))
@pass_client
def policy(client: Client, namespace: str, policy: str) -> None:
    """Set how a namespace's proposals are gated: a maintainer reviews, or `auto`."""
    client.hub().set_policy(namespace, policy)
    click.echo(f"{namespace}: proposals are gated by {policy}")


@main.group()
def exception() -> None:
    """Reviewed exceptions: mark one rule on one skill as a checked false alarm."""


@exception.command("add")
@click.argument("ref", metavar="NS/NAME")
@click.argument("rule")
@click.option("--reason", required=True, help="Why the finding is fine on this skill.")
@pass_client
def exception_add(client: Client, ref: str, rule: str, reason: str) -> None:
    """Record that RULE is reviewed and fine on NS/NAME (needs the namespace's token)."""
    namespace, name, _ = _qualified(ref)
    body = client.hub().set_exception(namespace, name, rule, reason)
    click.echo(f"exception recorded: {rule} on {namespace}/{name}")
    _echo_changes(body)


@exception.command("remove")
@click.argument("ref", metavar="NS/NAME")
@click.argument("rule")
@pass_client
def exception_remove(client: Client, ref: str, rule: str) -> None:
    """Remove the exception for RULE on NS/NAME."""
    namespace, name, _ = _qualified(ref)
    body = client.hub().remove_exception(namespace, name, rule)
    click.echo(f"exception removed: {rule} on {namespace}/{name}")
    _echo_changes(body)


@exception.command("list")
@click.argument("ref", metavar="NS/NAME")
@json_option
@pass_client
def exception_list(client: Client, ref: str, as_json: bool) -> None:
    """List the reviewed exceptions of NS/NAME."""
    namespace, name, _ = _qualified(ref)
    rows = client.hub().exceptions(namespace, name)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"{namespace}/{name} has no exceptions", err=True)
    for row in rows:
        click.echo(f"{row['rule']}  {row['reason']}  ({row['created_at']})")


def _echo_changes(body: dict[str, Any]) -> None:
    for change in body.get("changes") or []:
        if change["old_verdict"] != change["new_verdict"]:
            click.echo(f"  {change['version']}: {change['old_verdict']} -> "
                       f"{change['new_verdict']}")


def _qualified(ref: str) -> tuple[str, str, str | None]:
    namespace, name, version = parse_ref(ref)
    if namespace is None:
        raise click.BadParameter(f"{ref!r}: write NAMESPACE/NAME", param_hint="NS/NAME")
    return namespace, name, version


@main.command()
@click.argument("ref", metavar="NS/NAME[@VERSION] | NAME[@VERSION]")
@click.option("--allow-deprecated", is_flag=True,
              help="Install even a version that a re-check of the registry failed.")
@skills_dir_options
@json_option
@pass_client
def install(client: Client, ref: str, allow_deprecated: bool, skills_dir: Path,
            as_json: bool) -> None:
    """Install a skill into the skills folder and record it in the lockfile.

    A bare NAME is looked up in every tap; NS/NAME names a namespace on the server (or a
    tap of that name). @VERSION pins the skill: `update` then leaves it alone.
    """
    namespace, name, version = parse_ref(ref)
    installed = _install(client, namespace, name, version, skills_dir, allow_deprecated)
    if as_json:
        emit_json(_installed_json(installed))
        return
    click.echo(_installed_line(installed))


def _install(client: Client, namespace: str | None, name: str, version: str | None,
             skills_dir: Path, allow_deprecated: bool = False) -> Installed:
    taps = client.config.taps
    if namespace is None:
        tap: Tap | None = resolve(name, taps, client.hub, client.cache_dir)
    else:
        tap = client.config.tap(namespace)
        if tap is not None and tap.kind == "git":
            refresh_git_tap(tap, client.cache_dir)
    if tap is None:
        return install_from_hub(client.hub(), str(namespace), name, version, skills_dir,
                                allow_deprecated=allow_deprecated, client_id=client.client_id)
    if tap.kind == "git":
        return install_from_git_tap(tap, name, version, client.cache_dir, skills_dir)
    return install_from_hub(client.hub(tap.server), str(tap.namespace), name, version,
                            skills_dir, allow_deprecated=allow_deprecated,
                            client_id=client.client_id)


def _installed_line(installed: Installed) -> str:
    entry, previous = installed.entry, installed.previous
    pin = " (pinned)" if entry.pinned else ""
    change = "installed"
    if previous is not None:
        change = (f"replaced {previous.version} with" if previous.version != entry.version
                  else "reinstalled")
    flag = "  [caution: flagged by the registry's checks]" if installed.verdict == "caution" \
        else ""
    return f"{change} {entry.ref} {entry.version}{pin} in {installed.path}{flag}"


def _installed_json(installed: Installed) -> dict[str, Any]:
    previous = installed.previous.version if installed.previous else None
    return {**_entry_json(installed.entry), "path": str(installed.path),
            "previous_version": previous, "verdict": installed.verdict or None}


def _entry_json(entry: LockEntry) -> dict[str, Any]:
    return asdict(entry)


@main.command("list")
@skills_dir_options
@json_option
def list_(skills_dir: Path, as_json: bool) -> None:
    """List the installed skills (from the skills folder's lockfile)."""
    entries = list(Lockfile(skills_dir).entries.values())
    if as_json:
        emit_json([_entry_json(e) for e in entries])
        return
    if not entries:
        click.echo(f"no skills installed in {skills_dir}", err=True)
    for entry in entries:
        pin = "  pinned" if entry.pinned else ""
        click.echo(f"{entry.name}  {entry.version}  {entry.ref}  {entry.source}{pin}")


@main.command()
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Also update pinned skills (and unpin them).")
@skills_dir_options
@json_option
@pass_client
def update(client: Client, names: tuple[str, ...], force: bool, skills_dir: Path,
           as_json: bool) -> None:
    """Update installed skills (all, or NAMES) to their newest version.

    Pinned skills (installed as NAME@VERSION) are reported and skipped unless --force.
    """
    lock = Lockfile(skills_dir)
    missing = [n for n in names if lock.get(n) is None]
    if missing:
        raise NotFound(f"not installed in {skills_dir}: {', '.join(missing)}")
    chosen = [lock.entries[n] for n in names] if names else list(lock.entries.values())
    outcomes = [_update_one(client, entry, force, skills_dir) for entry in chosen]
    if as_json:
        emit_json([{k: v for k, v in o.items() if k != "error"} for o in outcomes])
    else:
        for outcome in outcomes:
            click.echo(f"{outcome['name']}: {outcome['message']}")
        if not outcomes:
            click.echo(f"no skills installed in {skills_dir}", err=True)
    failures = [o["error"] for o in outcomes if o.get("error") is not None]
    if failures:
        sys.exit(exit_code(failures[0]))


def _update_one(client: Client, entry: LockEntry, force: bool,
                skills_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"name": entry.name, "from": entry.version, "to": entry.version}
    if entry.pinned and not force:
        return {**result, "status": "pinned",
                "message": f"pinned at {entry.version}, skipped (use --force to update)"}
    try:
        installed = _reinstall_latest(client, entry, skills_dir)
    except HubError as exc:
        return {**result, "status": "failed", "message": f"failed: {exc.message}",
                "error": exc}
    new = installed.entry if installed else entry
    result["to"] = new.version
    if new.content_sha256 == entry.content_sha256:
        return {**result, "status": "current", "message": f"up to date at {new.version}"}
    change = (f"-> {new.version}" if new.version != entry.version
              else f"(new content at commit {new.commit[:7]})")
    return {**result, "status": "updated", "message": f"updated {entry.version} {change}"}


def _reinstall_latest(client: Client, entry: LockEntry, skills_dir: Path) -> Installed | None:
    """Install the newest version of an entry's skill; None when it is already current."""
    if entry.kind == "git":
        tap = client.config.tap(entry.namespace) or Tap(entry.namespace, "git",
                                                        url=entry.source)
        refresh_git_tap(tap, client.cache_dir)
        if git.head(tap_dir(client.cache_dir, tap.name)) == entry.commit and not entry.pinned:
            return None
        return install_from_git_tap(tap, entry.name, None, client.cache_dir, skills_dir)
    hub = client.hub(entry.source)
    latest = hub.version(entry.namespace, entry.name, "latest", client_id=client.client_id)
    if latest["version"] == entry.version and not entry.pinned:
        return None
    return install_from_hub(hub, entry.namespace, entry.name, None, skills_dir,
                            client_id=client.client_id)


@main.command("uninstall")
@click.argument("name")
@skills_dir_options
def uninstall_(name: str, skills_dir: Path) -> None:
    """Remove an installed skill's folder and its lockfile entry."""
    entry = uninstall(skills_dir, name)
    click.echo(f"removed {entry.name} {entry.version} from {skills_dir}")


# --- publishing ------------------------------------------------------------------------------


@main.command()
@click.argument("directory", metavar="DIR",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--namespace", "-n", default=None,
              help="Namespace to publish to (default: the token's, via whoami).")
@click.option("--version", "version", default=None,
              help="Version to publish (default: metadata.version, else the next patch).")
@json_option
@pass_client
def publish(client: Client, directory: Path, namespace: str | None, version: str | None,
            as_json: bool) -> None:
    """Publish DIR: one skill folder, or a folder of skill folders."""
    _publish_all(client, skill_folders(directory), namespace, version, as_json)


@main.command("import")
@click.argument("source", metavar="GIT_URL_OR_PATH")
@click.option("--namespace", "-n", default=None,
              help="Namespace to publish to (default: the token's, via whoami).")
@json_option
@pass_client
def import_(client: Client, source: str, namespace: str | None, as_json: bool) -> None:
    """Publish every skill of a repo: skills/*/SKILL.md, else any */SKILL.md up to 3
    levels deep. A URL is cloned (shallow) into a temp folder; a local path is read as is."""
    local = Path(source).expanduser()
    if local.is_dir():
        _publish_all(client, repo_skill_folders(local), namespace, None, as_json)
        return
    with tempfile.TemporaryDirectory(prefix="skills-hub-import-") as tmp:
        click.echo(f"cloning {source} ...", err=True)
        git.clone(source, Path(tmp) / "repo", shallow=True)
        _publish_all(client, repo_skill_folders(Path(tmp) / "repo"), namespace, None, as_json)


def _publish_all(client: Client, folders: list[Path], namespace: str | None,
                 version: str | None, as_json: bool) -> None:
    hub = client.hub()
    if not hub.token:
        raise Unauthorized("publishing needs a token",
                           extra={"hint": "pass --token, set SKILLS_HUB_TOKEN or run "
                                          "`skills-hub login`"})
    namespace = namespace or hub.whoami()
    results = publish_folders(hub, namespace, folders, version=version,
                              progress=_show_progress)
    if as_json:
        emit_json(_summary_json(namespace, results))
    else:
        for line in _summary_lines(namespace, results):
            click.echo(line)
    if any(r.status == "refused" for r in results):
        sys.exit(ExitCode.REFUSED)


def _show_progress(index: int, total: int, result: PublishResult) -> None:
    if result.status == "refused":
        outcome = f"refused: {result.message}"
    else:
        outcome = f"{result.status} {result.version}"
    click.echo(f"[{index}/{total}] {result.name} ... {outcome}", err=True)


def _summary_json(namespace: str, results: list[PublishResult]) -> dict[str, Any]:
    body: dict[str, Any] = {"namespace": namespace}
    for status in ("published", "unchanged", "refused"):
        body[status] = [r.to_dict() for r in results if r.status == status]
    return body


def _summary_lines(namespace: str, results: list[PublishResult]) -> list[str]:
    by = {s: [r for r in results if r.status == s] for s in ("published", "unchanged", "refused")}
    lines = [f"{namespace}: published {len(by['published'])}, unchanged "
             f"{len(by['unchanged'])}, refused {len(by['refused'])}"]
    for result in by["published"]:
        flag = "  [caution: flagged by the checks]" if result.verdict == "caution" else ""
        lines.append(f"  published {result.name} {result.version}{flag}")
        lines.extend(finding_lines(result.findings, indent="    "))
        for dup in result.duplicates:
            lines.append(f"    near-duplicate of {dup['namespace']}/{dup['name']} "
                         f"(similarity {dup['similarity']:.2f}): consider proposing a patch "
                         "to it instead")
    for result in by["unchanged"]:
        lines.append(f"  unchanged {result.name} {result.version} (skipped, same content)")
    for result in by["refused"]:
        lines.append(f"  refused {result.name} ({result.folder}): {result.message}")
        lines.extend(_problem_lines(result.problems, indent="    "))
        lines.extend(finding_lines(result.findings, indent="    "))
    return lines


def finding_lines(findings: list[dict[str, Any]], indent: str = "  ") -> list[str]:
    """One line per finding: severity, rule, file:line, message; then its fix hint."""
    lines = []
    for f in findings:
        where = f.get("file") or ""
        if where and f.get("line"):
            where += f":{f['line']}"
        excepted = f"  [exception: {f['exception']}]" if f.get("exception") else ""
        lines.append(f"{indent}{f['severity'].upper():8} {f['rule']}  {where}  "
                     f"{f['message']}{excepted}")
        if f.get("hint"):
            lines.append(f"{indent}         fix: {f['hint']}")
    return lines


# --- taps and login --------------------------------------------------------------------------


@main.group()
def tap() -> None:
    """Manage taps: namespaces or git repos whose skills install by bare name."""


@tap.command("add")
@click.argument("source", metavar="NAMESPACE | GIT_URL_OR_PATH")
@click.option("--server", "tap_server", default=None, metavar="URL",
              help="The server of a namespace tap (default: the chosen server).")
@click.option("--name", default=None, help="Name the tap (default: the namespace or repo).")
@pass_client
def tap_add(client: Client, source: str, tap_server: str | None, name: str | None) -> None:
    """Add a tap: a NAMESPACE on a server, or a git repo with skills/*/SKILL.md."""
    if looks_like_git(source):
        added, skills = add_git_tap(client.config, source, client.cache_dir, name)
        click.echo(f"added tap {added.name}: {added.url} ({len(skills)} skills: "
                   f"{', '.join(skills)})")
        return
    hub_tap, total = add_hub_tap(client.config, client.hub(tap_server), source, name)
    click.echo(f"added tap {hub_tap.name}: {hub_tap.where} ({total} skills)")


@tap.command("list")
@json_option
@pass_client
def tap_list(client: Client, as_json: bool) -> None:
    """List the taps."""
    taps = client.config.taps
    if as_json:
        emit_json([{k: v for k, v in vars(t).items() if v is not None} for t in taps])
        return
    if not taps:
        click.echo("no taps; add one with `skills-hub tap add NAMESPACE`", err=True)
    for item in taps:
        click.echo(f"{item.name}  {item.kind}  {item.where}")


@tap.command("remove")
@click.argument("name")
@pass_client
def tap_remove(client: Client, name: str) -> None:
    """Remove a tap (installed skills stay installed)."""
    removed = remove_tap(client.config, name, client.cache_dir)
    click.echo(f"removed tap {removed.name} ({removed.where})")


@main.command()
@click.option("--server", "login_server", default=None, metavar="URL",
              help="The server to log in to (default: the chosen server).")
@click.option("--token", "login_token", default=None, metavar="TOKEN",
              help="The token (prompted for, hidden, when not given).")
@pass_client
def login(client: Client, login_server: str | None, login_token: str | None) -> None:
    """Check a token against the server (whoami) and save both in the config file."""
    server = normalize_server(login_server or client.server)
    token_value = login_token or click.prompt(f"Token for {server}", hide_input=True)
    with HubClient(server, token_value, http=client.http) as hub:
        namespace = hub.whoami()
    config = client.config
    config.server = server
    config.tokens[server] = token_value
    config.save()
    click.echo(f"logged in to {server}: the token publishes to {namespace!r}; saved in "
               f"{config.path}")


def _short(text: str, width: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    main()
