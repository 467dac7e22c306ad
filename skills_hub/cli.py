"""The `skills-hub` command: operator commands (serve, token, reindex) and the client.

Only this module and config.py read the environment. Server imports happen inside the
operator commands so that the client commands never load starlette, dulwich or torch.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
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
from .learning.outcomes import FAILURE_KINDS, OUTCOMES

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
    click.echo(terminal_safe(f"error: {exc.message}"), err=True)
    for line in _problem_lines(exc.problems):
        click.echo(terminal_safe(line), err=True)
    hint = exc.hint if isinstance(exc, ServerError) else exc.extra.get("hint")
    if hint:
        click.echo(terminal_safe(f"hint: {hint}"), err=True)


# Terminal control sequences: CSI (ESC [ or 0x9B ... final byte); OSC, DCS, SOS, PM and APC up
# to their terminator (BEL, ESC \ or ST) or the end; any other ESC sequence.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?")
# What is left that a terminal would not show as itself: C0 controls but tab and newline, DEL,
# C1 controls, and the bidi and invisible formatting characters (Trojan Source).
_UNSHOWN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e"
                      "\u2060-\u2069\ufeff]")


def terminal_safe(text: object) -> str:
    """Server-provided text made safe to print: escape sequences (colours, OSC 8 links, title
    changes, clipboard writes) and other control or bidi characters removed. Validation
    refuses them on the way in; this is the defence for old data and hostile servers."""
    return _UNSHOWN.sub("", _ESCAPE_SEQUENCE.sub("", str(text)))


def _problem_lines(problems: list[Any], indent: str = "  ") -> list[str]:
    lines = []
    for problem in problems:
        hint = f" ({problem.hint})" if problem.hint else ""
        lines.append(f"{indent}- {problem.field}: {problem.message}{hint}")
    return lines


def _settings(home: Path | None) -> Settings:
    settings = Settings.from_env()
    return settings.with_home(home) if home else settings


def _late_option(name: str) -> click.Option:
    """A hidden `--server`/`--token` for a subcommand: the global option, given after the
    subcommand's name (`skills-hub publish DIR --token T`). It overrides the global one."""

    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        client = ctx.find_object(Client)
        if value is not None and client is not None:
            setattr(client, f"{name}_option", value)

    return click.Option([f"--{name}"], hidden=True, expose_value=False, callback=remember,
                        metavar=name.upper())


def _add_late_options(command: click.Command) -> None:
    """Give a command the hidden global options it does not already define itself."""
    taken = {opt for param in command.params for opt in param.opts}
    for name in ("server", "token"):
        if f"--{name}" not in taken:
            command.params.append(_late_option(name))


class HubCommand(click.Command):
    """A command that also takes the global --server and --token after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _add_late_options(self)


class HubGroup(click.Group):
    """A group that turns domain errors into a message and an exit status; its commands
    and sub-groups also take the global --server and --token after their names."""

    command_class = HubCommand
    group_class = type

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _add_late_options(self)

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


SERVER_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


@main.command()
@click.argument("home", required=False, type=click.Path(path_type=Path))
@click.option("--host", default=None, help="Interface to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to bind (default 8000).")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
def serve(home: Path | None, host: str | None, port: int | None, workers: int) -> None:
    """Run the registry server on HOME (default: SKILLS_HUB_HOME, else ./registry).

    \b
    Logs go to stderr, one JSON object a line (SKILLS_HUB_LOG_FORMAT=text for plain lines;
    the default `auto` is text on a terminal), with one access line per request. The server
    answers /livez, /readyz and /metrics (Prometheus) for probes and scrapers.
    """
    import logging
    import os
    import shutil

    import uvicorn

    from . import logs
    from .web.workers import supervise

    settings = _settings(home)
    os.environ["SKILLS_HUB_HOME"] = str(settings.home)  # for worker processes' factory
    # Thread pools, read when numpy and torch load, so here, before uvicorn imports the app
    # (worker processes inherit them); an operator's own values win. Figures: bench/README.md
    # "concurrency_bench.py". The query-time matrix product is too small to share out, and
    # OpenBLAS's idle workers spin: one BLAS thread. torch's OpenMP pool (one thread a core)
    # serves one batched query encode at a time; PASSIVE puts its workers to sleep after it
    # instead of spinning beside the request threads.
    for name, value in SERVER_THREADS.items():
        os.environ.setdefault(name, value)
    if workers > 1:  # each worker's torch pool gets its share of the cores, not all of them
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    # Worker processes keep their metrics in files there, which /metrics sums
    # (skills_hub/metrics.py); prometheus-client reads the variable when a worker imports it.
    metrics_dir = _metrics_dir(settings.home) if workers > 1 else None
    if metrics_dir is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    logs.configure(settings)  # from the first line: every stderr line is a log record
    logging.getLogger("skills_hub.serve").info(
        "skills-hub %s: data home %s", __version__, settings.home)
    # uvicorn applies the logging config in every worker. Our middleware writes the access
    # line (with the request id and route); uvicorn's own costs ~250 us a request: off.
    # Several workers: a socket each (SO_REUSEPORT), so the kernel spreads the connections
    # evenly (web/workers.py), instead of uvicorn's one shared socket.
    try:
        if workers > 1:
            status = supervise(host or settings.host, port or settings.port, workers,
                               logs.dict_config(settings))
            if status:
                raise SystemExit(status)
        else:
            uvicorn.run("skills_hub.web.app:create_app", factory=True,
                        host=host or settings.host, port=port or settings.port,
                        log_level="info", log_config=logs.dict_config(settings),
                        access_log=False)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _metrics_dir(home: Path) -> Path:
    """A fresh `<home>/run/metrics-<pid>` for this server's workers' metric files; the
    folders of servers that are gone (killed before they could clear theirs) go too."""
    import shutil

    run = home / "run"
    for old in run.glob("metrics-*"):
        pid = old.name.removeprefix("metrics-")
        if not pid.isdigit() or int(pid) == os.getpid() or not _running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    folder = run / f"metrics-{os.getpid()}"
    folder.mkdir(parents=True)
    return folder


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


SCOPES = ("read", "publish", "review", "admin")
ROLES = ("reader", "publisher", "maintainer", "owner")


@main.group()
def token() -> None:
    """Manage API tokens: yours and your orgs' service accounts' (or, operator, offline:
    `token create NAMESPACE` makes a namespace token in the data home)."""


@token.command("create")
@click.argument("namespace", required=False)
@click.option("--label", default="", help="A note to recognise the token by.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES),
              help="What the token may do (repeatable; default: what the server grants).")
@click.option("--namespace", "-n", "only_namespaces", multiple=True, metavar="NS",
              help="Only these namespaces (repeatable; default: all the account's).")
@click.option("--days", type=click.IntRange(1), default=None,
              help="Expire after this many days (default: the server's).")
@click.option("--account", default=None, metavar="ORG.NAME",
              help="A token for this service account of an org you own.")
@click.option("--private/--public", "private", default=None,
              help="Offline, with NAMESPACE: also set the namespace's visibility.")
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="Offline, with NAMESPACE: the server's data home.")
@json_option
@pass_client
def token_create(client: Client, namespace: str | None, label: str, scopes: tuple[str, ...],
                 only_namespaces: tuple[str, ...], days: int | None, account: str | None,
                 private: bool | None, home: Path | None, as_json: bool) -> None:
    """Create a token through the server's API; the secret is printed alone on the last line.

    \b
    With NAMESPACE (operator, offline): create a namespace token directly in the data home
    (HOME: --home, else SKILLS_HUB_HOME, else ./registry).
    """
    if namespace is not None or home is not None:
        online = [flag for flag, value in (("--scope", scopes), ("--namespace", only_namespaces),
                                           ("--days", days), ("--account", account),
                                           ("--json", as_json)) if value]
        if online:
            raise click.UsageError(f"{', '.join(online)}: only for an API token; drop "
                                   "NAMESPACE and --home")
        if namespace is None:
            raise click.UsageError("--home needs the NAMESPACE the token publishes to")
        _create_namespace_token(namespace, label, private, home)
        return
    if private is not None:
        raise click.UsageError("--private/--public needs NAMESPACE (offline); else use "
                               "`skills-hub namespace visibility NS private`")
    body = client.hub().create_token(label=label or None, scopes=list(scopes),
                                     namespaces=list(only_namespaces), days=days,
                                     account=account)
    if as_json:
        emit_json(body)
        return
    info = body.get("token_info") or {}
    click.echo(f"Created token {info.get('id')} for {info.get('account')} "
               f"({_token_scope_text(info)}). It is shown once; keep it safe:", err=True)
    click.echo(body["token"])


def _create_namespace_token(namespace: str, label: str, private: bool | None,
                            home: Path | None) -> None:
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


@token.command("list")
@click.option("--org", default=None, help="The tokens of this org's service accounts (owner).")
@json_option
@pass_client
def token_list(client: Client, org: str | None, as_json: bool) -> None:
    """List your tokens (or an org's service-account tokens); secrets are never shown."""
    rows = client.hub().tokens(org)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no tokens", err=True)
    for row in rows:
        click.echo(_token_line(row))


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@pass_client
def token_revoke(client: Client, token_id: str) -> None:
    """Revoke a token by its ID (`skills-hub token list` shows them); it stops working now."""
    body = client.hub().revoke_token(token_id)
    info = body.get("token_info") or {}
    click.echo(f"revoked token {info.get('id', token_id)} ({info.get('prefix', '')}…"
               f"{_label_text(info)}) of {info.get('account', '?')}")


def _token_line(info: dict[str, Any]) -> str:
    state = ""
    if info.get("revoked_at"):
        state = f"  REVOKED {str(info['revoked_at'])[:19]}"
    used = str(info.get("last_used_at") or "never")[:19]
    expires = str(info.get("expires_at") or "never")[:19]
    return (f"{info.get('id')}  {info.get('prefix', '')}…  {info.get('account')}"
            f"{_label_text(info)}  {_token_scope_text(info)}  expires {expires}  "
            f"last used {used}{state}")


def _label_text(info: dict[str, Any]) -> str:
    return f" {info['label']!r}" if info.get("label") else ""


def _token_scope_text(info: dict[str, Any]) -> str:
    scopes = ",".join(info.get("scopes") or []) or "no scopes"
    namespaces = info.get("namespaces")
    where = ",".join(namespaces) if namespaces else "all namespaces"
    return f"{scopes} on {where}"


@main.group()
def user() -> None:
    """Accounts (operator): add and list them offline, in the data home."""


@user.command("add")
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of stdin (else a hidden prompt; "
                   "empty: no password, the account signs in through OIDC).")
@click.option("--display-name", default="", help="The name shown for the account.")
@click.option("--email", default="", help="The account's email address.")
@click.option("--operator", is_flag=True, help="Make the account an operator (all rights).")
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="The server's data home (default SKILLS_HUB_HOME, else ./registry).")
@click.option("--api", is_flag=True,
              help="Add it through the server's API (an operator's token) instead.")
@pass_client
def user_add(client: Client, username: str, password_stdin: bool, display_name: str,
             email: str, operator: bool, home: Path | None, api: bool) -> None:
    """Add the account USERNAME (it also gets the personal namespace USERNAME)."""
    password = _read_password(password_stdin, confirm=True, optional=True)
    if api:
        body = client.hub().add_user(username, password=password or None,
                                     display_name=display_name or None, email=email or None,
                                     operator=operator)
        added = str(body.get("username") or username)
    else:
        registry = _registry(home)
        try:
            row = registry.add_user(username, password=password or None,
                                    display_name=display_name, email=email, operator=operator)
        finally:
            registry.close()
        added = row.username
    role = " (operator)" if operator else ""
    login_hint = (f"; log in with `skills-hub login --username {added}`" if password
                  else "; it has no password (OIDC sign-in only)")
    click.echo(f"added user {added}{role}{login_hint}")


@user.command("list")
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="The server's data home (default SKILLS_HUB_HOME, else ./registry).")
@click.option("--api", is_flag=True,
              help="List them through the server's API (an operator's token) instead.")
@json_option
@pass_client
def user_list(client: Client, home: Path | None, api: bool, as_json: bool) -> None:
    """List the accounts: people and service accounts."""
    if api:
        rows = client.hub().users()
    else:
        registry = _registry(home)
        try:
            rows = [{"username": u.username, "display_name": u.display_name, "email": u.email,
                     "kind": u.kind, "org": u.org, "operator": u.is_operator,
                     "created_at": u.created_at, "disabled": u.disabled_at is not None}
                    for u in registry.store.users.users()]
        finally:
            registry.close()
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no accounts", err=True)
    for row in rows:
        flags = "".join(f"  {flag}" for flag in ("operator", "disabled") if row.get(flag))
        name = f"  {row['display_name']}" if row.get("display_name") else ""
        mail = f"  <{row['email']}>" if row.get("email") else ""
        click.echo(f"{row['username']}  {row['kind']}{name}{mail}{flags}")


def _read_password(from_stdin: bool, *, confirm: bool = False, optional: bool = False) -> str:
    """The first line of stdin (--password-stdin), else a hidden prompt."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value and not optional:
            raise click.UsageError("--password-stdin: stdin has no password")
        return value
    text = "Password (empty: none)" if optional else "Password"
    return str(click.prompt(text, hide_input=True, confirmation_prompt=confirm,
                            default="" if optional else None, show_default=False))


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None)
def reindex(home: Path | None) -> None:
    """Rebuild the catalogue and search index (SQLite or PostgreSQL) from the git repos."""
    registry = _registry(home, full=True)
    registry.close()


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None)
@click.option("--repair", is_flag=True, help="Fix what is safe to fix (see below).")
@json_option
def fsck(home: Path | None, repair: bool, as_json: bool) -> None:
    """Check the git repos against the index; exit 0 when clean, 1 when problems were found.

    Checks: stale lock files a killed writer left, tags main does not reach, every tag's
    version in the index and every indexed version tagged, and `git fsck --strict` (with C
    git installed). --repair removes stale locks, fast-forwards main to a tag left one
    commit ahead, removes orphan tags (publishes never acknowledged) and brings the index
    in line with git. Safe while the server runs on the same home.
    """
    from .services import Registry

    registry = Registry(_settings(home))
    try:
        registry.store.db.migrate()
        report = registry.fsck(repair=repair)
    finally:
        registry.close()
    if as_json:
        emit_json({"clean": report.clean, "namespaces": report.namespaces,
                   "tags": report.tags, "indexed": report.indexed,
                   "git_fsck": report.git_fsck,
                   "problems": [asdict(f) for f in report.findings]})
    else:
        for f in report.findings:
            click.echo(f"{'FIXED' if f.fixed else 'NOT FIXED':9}  {f.kind:15}  {f.where}: "
                       f"{f.detail}")
        fixed = sum(1 for f in report.findings if f.fixed)
        click.echo(f"{report.namespaces} namespaces, {report.tags} tags, {report.indexed} "
                   f"indexed versions, git fsck: {report.git_fsck}; "
                   + (f"{len(report.findings)} problems, {fixed} fixed" if report.findings
                      else "clean"))
    if not report.clean:
        sys.exit(ExitCode.ERROR)


@main.command("proxy-config")
@click.option("--home", type=click.Path(path_type=Path), default=None)
@click.option("--upstream", default="http://127.0.0.1:8000", show_default=True,
              metavar="URL", help="The app's address as nginx's proxy_pass takes it.")
def proxy_config(home: Path | None, upstream: str) -> None:
    """Print the nginx configuration that sends public archives without asking the app.

    Needs SKILLS_HUB_STATIC_ARCHIVES (this node's folder for nginx's maps and download
    log); makes the folder and empty maps, so nginx starts before the server has run.
    """
    from .web.proxy import nginx_http, nginx_server

    settings = _settings(home)
    folder = settings.static_archives
    if folder is None:
        fail("set SKILLS_HUB_STATIC_ARCHIVES to this node's folder for nginx's maps and "
             "download log (README, \"Running it\"), then run this again", 2)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("sha256.map", "digest.map"):
        (folder / name).touch()
    click.echo("# in the http {} block\n" + nginx_http(folder))
    click.echo("# in the server {} block\n"
               + nginx_server(folder, settings.repos_dir.absolute(), upstream))


@main.command("migrate-db")
@click.option("--to", "url", required=True, metavar="URL",
              help="The PostgreSQL database: postgresql://user:password@host:port/name.")
@click.option("--home", type=click.Path(path_type=Path), default=None)
@click.option("--copy-repos", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Also copy the git repos into DIR (new or empty), for "
                                  "SKILLS_HUB_REPOS_DIR (a shared volume, say).")
@json_option
def migrate_db(url: str, home: Path | None, copy_repos: Path | None, as_json: bool) -> None:
    """Copy the home's embedded catalogue (index.db) into PostgreSQL, then verify it.

    Stop the server on the home first (a running one is refused where it can be seen).
    The target is migrated, then every table is copied in one transaction (all or
    nothing) and compared: row counts, a sha256 of every table, and every version's
    commit, tag, tree and content digest. Run it again on a target that holds exactly
    this data: "already migrated, nothing copied". A target holding other data is
    refused. Then run the home with SKILLS_HUB_DATABASE_URL set to URL (and
    SKILLS_HUB_REPOS_DIR to DIR, with --copy-repos).
    """
    from .store.migrate_db import migrate

    try:
        result = migrate(_settings(home), url, copy_repos=copy_repos)
    except HubError as exc:
        report_error(exc)
        sys.exit(exit_code(exc))
    checked = result.verification
    if as_json:
        emit_json(_migrate_json(result))
        return
    click.echo(f"{'copied' if result.copied else 'compared'} {result.source} -> "
               f"{result.target}")
    for check in checked.tables:
        click.echo(f"  {check.table.label:26} {check.table.how.value:15} "
                   f"{check.target_rows:>9} rows  sha256 {check.target_sha256[:16]}  equal")
    click.echo(f"verified: row counts and sha256 of {len(checked.tables)} tables, commit, "
               f"tag, tree and content sha256 of {checked.versions} versions, "
               f"{len(checked.sequences)} id sequences past their largest id")
    click.echo("not copied, each backend's own: SQLite "
               + ", ".join(m.label for m in result.not_copied if m.postgres is None)
               + "; PostgreSQL "
               + ", ".join(m.label for m in result.not_copied if m.sqlite is None))
    if result.repos is not None:
        click.echo(f"repos: {len(result.repos.copied)} namespaces copied, "
                   f"{len(result.repos.present)} already there, into {result.repos.folder}; "
                   f"{result.repos.versions} versions' tags checked")
    for note in result.notes:
        click.echo(note)
    if result.copied:
        click.echo(f"copied {result.rows} rows in {result.seconds:.2f} s; now run the home "
                   "with SKILLS_HUB_DATABASE_URL set to that URL"
                   + (f" and SKILLS_HUB_REPOS_DIR={result.repos.folder}" if result.repos
                      else ""))


def _migrate_json(result: Any) -> dict[str, Any]:
    checked = result.verification
    return {
        "status": "copied" if result.copied else "already migrated",
        "source": str(result.source), "target": result.target, "rows": result.rows,
        "seconds": round(result.seconds, 3),
        "tables": [{"sqlite": c.table.sqlite, "postgresql": c.table.postgres,
                    "how": c.table.how.value, "rows": c.target_rows,
                    "sha256": c.target_sha256} for c in checked.tables],
        "versions": checked.versions, "sequences": checked.sequences,
        "not_copied": [{"sqlite": m.sqlite, "postgresql": m.postgres, "why": m.why}
                       for m in result.not_copied],
        "repos": None if result.repos is None else {
            "folder": str(result.repos.folder), "copied": result.repos.copied,
            "present": result.repos.present, "versions": result.repos.versions},
        "notes": result.notes,
    }


@main.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--home", type=click.Path(path_type=Path), default=None)
@json_option
def backup(directory: Path, home: Path | None, as_json: bool) -> None:
    """Take a consistent backup of the home into DIRECTORY (new or empty), online.

    The server keeps running: the catalogue is copied first (SQLite's backup API, or
    pg_dump with SKILLS_HUB_DATABASE_URL), then each namespace's git repo under its write
    lock (publishes to that namespace wait for its copy), then manifest.json with every
    ref, version and file digest. A folder without manifest.json is an unfinished backup.
    """
    from .backup import backup as take_backup

    try:
        result = take_backup(_settings(home), directory)
    except HubError as exc:
        report_error(exc)
        sys.exit(exit_code(exc))
    if as_json:
        emit_json({"folder": str(result.folder), "backend": result.backend,
                   "counts": result.counts, "versions": result.versions,
                   "in_catalogue": result.in_catalogue, "skipped": result.skipped,
                   "files": result.files, "seconds": round(result.seconds, 3),
                   "catalogue_seconds": round(result.catalogue_seconds, 3),
                   "namespaces": {r.namespace: {"refs": len(r.refs),
                                                "locked_ms": round(r.seconds * 1000, 1)}
                                  for r in result.repos}})
        return
    longest = max(result.repos, key=lambda r: r.seconds, default=None)
    click.echo(f"backed up {result.backend} catalogue ({result.counts.get('versions', 0)} "
               f"versions, {result.counts.get('users', 0)} users, "
               f"{result.counts.get('tokens', 0)} tokens) in {result.catalogue_seconds:.2f} s")
    click.echo(f"backed up {len(result.repos)} namespaces, {result.versions} versions "
               f"({result.versions - result.in_catalogue} published during the backup)"
               + (f"; longest lock {longest.seconds * 1000:.0f} ms ({longest.namespace})"
                  if longest else ""))
    for namespace in result.skipped:
        click.echo(f"skipped namespace {namespace}: created after the catalogue was copied")
    click.echo(f"{result.files} files in {result.folder}, manifest.json written; "
               f"{result.seconds:.2f} s in all")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--home", type=click.Path(path_type=Path), default=None)
@json_option
def restore(directory: Path, home: Path | None, as_json: bool) -> None:
    """Restore the backup in DIRECTORY into a fresh home (no repos, an empty catalogue).

    Every file is checked against manifest.json first (nothing is changed if one differs);
    then the catalogue and the repos are put back, the registry starts (migrations, and
    the versions published during the backup recorded from git) and every version of the
    manifest is compared, with fsck. Do not run a server on the home meanwhile.
    """
    from .backup import BackupCorrupt
    from .backup import restore as restore_backup

    try:
        result = restore_backup(_settings(home), directory)
    except BackupCorrupt as exc:
        report_error(exc)
        sys.exit(ExitCode.INTEGRITY)
    except HubError as exc:
        report_error(exc)
        sys.exit(exit_code(exc))
    if as_json:
        emit_json({"home": str(result.home), "backend": result.backend,
                   "namespaces": result.namespaces, "versions": result.versions,
                   "counts": result.counts, "reconciled": result.reconciled,
                   "git_fsck": result.git_fsck, "seconds": round(result.seconds, 3)})
        return
    click.echo(f"restored {result.namespaces} namespaces and {result.versions} versions into "
               f"{result.home} ({result.backend}); {result.counts.get('users', 0)} users, "
               f"{result.counts.get('tokens', 0)} tokens")
    for note in result.notes:
        click.echo(note)
    click.echo(f"every version matches the manifest; fsck clean (git fsck: "
               f"{result.git_fsck}); {result.seconds:.2f} s")


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
    return [terminal_safe(line) for line in lines]


@main.command()
@click.option("--home", type=click.Path(path_type=Path), default=None)
@click.option("--namespace", "-n", default=None, help="Only this namespace.")
@click.option("--status", "show_status", is_flag=True,
              help="Check nothing: show the server's scheduled health checks (the queue "
                   "with priorities and reasons, the last check, recent changes).")
@json_option
def health(home: Path | None, namespace: str | None, show_status: bool,
           as_json: bool) -> None:
    """Re-run the publish checks on every stored version and record changed verdicts.

    The server does this by itself, a budget an hour, most important first
    (SKILLS_HUB_HEALTH_BUDGET; --status shows it); run this for a one-off pass, after
    upgrading skills-hub or bandit (new rules) say. A version that now fails is
    deprecated: search, pages and installs say so.
    """
    registry = _registry(home)
    try:
        if show_status:
            _health_status(registry, namespace, as_json)
            return
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


def _health_status(registry: Any, namespace: str | None, as_json: bool) -> None:
    """`health --status`: the operator's view of the schedule (what the API route shows)."""
    from .access.principal import OPERATOR
    from .web.health import schedule_json

    data = schedule_json(registry.health_status(OPERATOR, namespace=namespace))
    if as_json:
        emit_json(data)
        return
    state = "on" if data["enabled"] else "off (SKILLS_HUB_HEALTH_BUDGET=0)"
    click.echo(f"scheduled health checks: {state}, budget {data['budget_per_hour']} versions "
               f"an hour, {data['checked_last_hour']} checked in the last hour")
    click.echo(f"checks: {data['checks']}")
    click.echo(f"lease: held by {data['holder']} until {data['lease_expires_at']}"
               if data["holder"] else "lease: not held (no server is checking)")
    last = data["last_check"]
    click.echo(f"last check: {last['at']} {last['namespace']}/{last['name']} "
               f"{last['version']} ({last['kind']}): {last['new_verdict']}"
               if last else "last check: none yet")
    if not data["queue"]:
        click.echo("queue: nothing due")
    else:
        click.echo(f"queue ({data['due']} due, the first {len(data['queue'])}):")
    for item in data["queue"]:
        click.echo(terminal_safe(f"  {item['priority']:7.2f}  {item['namespace']}/"
                                 f"{item['name']} {item['version']}: "
                                 + "; ".join(item["reasons"])))
    click.echo("recent changes:" if data["changes"] else "recent changes: none")
    for c in data["changes"]:
        moved = f"  {c['health']}" + (f": {c['note']}" if c["note"] else "") \
            if c["health"] else ""
        click.echo(terminal_safe(f"  {c['at']} {c['namespace']}/{c['name']} {c['version']}: "
                                 f"{c['old_verdict'] or 'unchecked'} -> {c['new_verdict']}"
                                 f"{moved}"))


def _registry(home: Path | None, full: bool = False):  # type: ignore[no-untyped-def]
    from .services import Registry

    registry = Registry(_settings(home))
    registry.settings.home.mkdir(parents=True, exist_ok=True)
    registry.store.db.migrate()
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
        click.echo(terminal_safe(f"{hit['namespace']}/{hit['name']}@{hit['version']}{flag}  "
                                 f"{_short(hit['description'])}"))
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


@main.group(cls=HubGroup, invoke_without_command=True)
@click.option("--status", type=click.Choice(["open", "closed", "all"]), default="open",
              show_default=True, help="Which demands.")
@click.option("--namespace", "-n", default=None, help="Only those asked in this namespace.")
@click.option("--mine", is_flag=True, help="Only those you asked.")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0, 10_000), default=0)
@json_option
@pass_client
@click.pass_context
def demands(ctx: click.Context, client: Client, status: str, namespace: str | None,
            mine: bool, limit: int, offset: int, as_json: bool) -> None:
    """The demand list: searches no skill answered, clustered, most askers first.

    \b
    skills-hub demands                  open demands, one line each
    skills-hub demands --mine           the ones you asked (closed ones name the answer)
    skills-hub demands show ID          one demand, its phrasings and its answer
    """
    if ctx.invoked_subcommand is not None:
        return
    body = client.hub().demands(status=status, namespace=namespace, mine=mine, limit=limit,
                                offset=offset)
    if as_json:
        emit_json(body)
        return
    for row in body["demands"]:
        click.echo(_demand_line(row))
    if not body["demands"]:
        click.echo(f"no {'' if status == 'all' else status + ' '}demands", err=True)
    elif body.get("next_offset") is not None:
        click.echo(f"more: --offset {body['next_offset']}", err=True)


@demands.command("show")
@click.argument("demand_id")
@json_option
@pass_client
def demands_show(client: Client, demand_id: str, as_json: bool) -> None:
    """Show demand DEMAND_ID: its phrasings and, once closed, the skill that answered it."""
    body = client.hub().demand(demand_id)
    if as_json:
        emit_json(body)
        return
    click.echo(_demand_line(body))
    click.echo(f"asked {body['asks']} times by {body['askers']} askers, "
               f"{body['first_asked']} to {body['last_asked']}"
               + ("; you asked it" if body.get("asked_by_you") else ""))
    for phrasing in body.get("phrasings") or []:
        click.echo(terminal_safe(f"  {phrasing['asks']:>4}  {phrasing['query']}"))
    answer = body.get("answer")
    if answer:
        click.echo(terminal_safe(
            f"answered {body['closed_at']} by {answer['namespace']}/{answer['name']}@"
            f"{answer['version']} (similarity {answer['similarity']:.2f}): "
            f"{answer['install']}"))


def _demand_line(row: dict[str, Any]) -> str:
    scope = row.get("namespace") or "registry"
    answer = row.get("answer")
    state = f"answered by {answer['namespace']}/{answer['name']}@{answer['version']}" \
        if answer else row["status"]
    return terminal_safe(f"#{row['id']}  {row['askers']} askers  {scope}  {state}  "
                         f"{_short(row['representative'])}")


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
    lines = [f"{namespace}/{name} {detail['version']}  (latest {skill['latest_version']})",
             f"  {detail['description']}",
             "versions: " + ", ".join(v["version"] for v in skill["versions"]),
             f"files of {detail['version']}:"]
    for item in detail["files"]:
        mark = "  (executable)" if item.get("executable") else ""
        lines.append(f"  {item['path']}  {item['size']} B{mark}")
    lines += [f"content sha256: {detail['content_sha256']}",
              f"checks: {_verdict_text(detail)}  (skills-hub findings {namespace}/{name}@"
              f"{detail['version']})",
              f"install: {detail['install']}"]
    for line in lines:
        click.echo(terminal_safe(line))


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
@click.argument("outcome", required=False, type=click.Choice(OUTCOMES))
@click.option("--kind", "failure_kind", default=None, type=click.Choice(FAILURE_KINDS),
              help="What kind of failure (needed with failure).")
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
    elif outcome == "failure" and not fields["failure_kind"]:
        raise click.UsageError("a failure needs --kind, one of: " + ", ".join(FAILURE_KINDS)
                               + f" (e.g. skills-hub report {ref} failure --kind "
                               "wrong_result)")
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
    """List proposals of a skill or a namespace (a review queue), or --show one (NS or
    NS/NAME, and the proposal's ID)."""
    namespace, _, name = ref.partition("/")
    hub = client.hub()
    if show_id:
        name = name or _proposal_skill(hub, namespace, show_id)
        one = hub.proposal(namespace, name, show_id)
        if as_json:
            emit_json(one)
            return
        click.echo(_proposal_line(one))
        click.echo(terminal_safe(one["reasoning"] or "(no reasoning given)"))
        click.echo(terminal_safe(one["diff"]), nl=False)
        return
    rows = hub.proposals(namespace, name or None, status=status, mine=mine)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(_proposal_line(row))
    if not rows:
        click.echo("no proposals")


def _proposal_skill(hub: HubClient, namespace: str, proposal_id: str) -> str:
    """The skill of proposal `proposal_id`, found in `namespace`'s proposals."""
    for row in hub.proposals(namespace):
        if str(row.get("id")) == proposal_id:
            return str(row["name"])
    raise NotFound(f"no proposal {proposal_id} among the recent proposals of {namespace}",
                   extra={"hint": f"name its skill: skills-hub proposals {namespace}/NAME "
                                  f"--show {proposal_id}"})


def _proposal_line(row: dict[str, Any]) -> str:
    decided = ""
    if row["status"] != "open":
        became = f" -> {row['version']}" if row.get("version") else ""
        by = f" by {_decider(row['decided_by'])}" if row.get("decided_by") else ""
        comment = f": {row['comment']}" if row.get("comment") else ""
        decided = f"{became}{by}{comment}"
    return terminal_safe(
        f"{row['id']}  {row['namespace']}/{row['name']}  {row['status']}{decided}  "
        f"(base {row['base_version']}, checks {row['verdict']}, support {row['support']})")


def _decider(decided_by: Any) -> str:
    """Who decided, readably: an account name (now), `maintainer:NS` (before accounts, a
    namespace token's maintainer), `policy:auto` (the auto policy) or `operator`."""
    text = str(decided_by)
    kind, _, rest = text.partition(":")
    if kind == "maintainer" and rest:
        return f"a maintainer of {rest}"
    if kind == "policy" and rest:
        return f"the {rest} policy"
    return text


@click.command("proposal", cls=HubCommand)
@click.argument("ref", metavar="NS/NAME")
@click.argument("proposal_id", metavar="ID")
@click.argument("decision", type=click.Choice(["accept", "reject"]))
@click.option("--comment", default="", help="Why (required to reject; the agent reads it).")
@click.option("--version", default=None, help="The version to publish (default: next patch).")
@click.option("--canary", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, help="Release to this share of clients first (e.g. 0.1).")
@pass_client
def review_proposal(client: Client, ref: str, proposal_id: str, decision: str, comment: str,
                    version: str | None, canary: float | None) -> None:
    """Accept or reject a proposal (a maintainer's token); also `review NS/NAME ID ...`."""
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
@click.option("--dry-run", is_flag=True,
              help="Only check: validate and run every publish check, store nothing.")
@json_option
@pass_client
def publish(client: Client, directory: Path, namespace: str | None, version: str | None,
            dry_run: bool, as_json: bool) -> None:
    """Publish DIR: one skill folder, or a folder of skill folders.

    Content identical to the latest version is not published again: it is reported as
    unchanged (exit 0). With --version V, V must then be that latest version; otherwise V
    was not published, which is reported as refused (exit 7): change a file to publish V.
    With --dry-run the server runs the whole publish path (rights, validation, version,
    checks, near-duplicates) and stores nothing; a refusal still exits 7.
    """
    _publish_all(client, skill_folders(directory), namespace, version, as_json, dry_run)


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
                 version: str | None, as_json: bool, dry_run: bool = False) -> None:
    hub = client.hub()
    if not hub.token:
        raise Unauthorized("publishing needs a token",
                           extra={"hint": "pass --token, set SKILLS_HUB_TOKEN or run "
                                          "`skills-hub login`"})
    namespace = namespace or hub.whoami()
    results = publish_folders(hub, namespace, folders, version=version,
                              progress=_show_progress, dry_run=dry_run)
    releases = _pending_releases(hub, namespace, results)
    if as_json:
        emit_json(_summary_json(namespace, results, releases))
    else:
        for line in _summary_lines(namespace, results, releases):
            click.echo(line)
    if any(r.status == "refused" for r in results):
        sys.exit(ExitCode.REFUSED)


def _pending_releases(hub: HubClient, namespace: str,
                      results: list[PublishResult]) -> dict[tuple[str, str], dict[str, Any]]:
    """The pending releases of the versions that wait for review, by (name, version)."""
    if not any(r.status == "pending" for r in results):
        return {}
    try:
        rows = hub.releases(namespace, state="pending", mine=True)
    except HubError:
        return {}  # the summary then goes without release ids
    return {(str(r["name"]), str(r["version"])): r for r in rows}


def _show_progress(index: int, total: int, result: PublishResult) -> None:
    if result.status == "refused":
        outcome = f"refused: {result.message}"
    elif result.status == "pending":
        outcome = f"{result.version} waits for review"
    else:
        outcome = f"{result.status} {result.version}"
    click.echo(f"[{index}/{total}] {result.name} ... {outcome}", err=True)


def _summary_json(namespace: str, results: list[PublishResult],
                  releases: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"namespace": namespace}
    for status in ("published", "unchanged", "refused"):
        body[status] = [r.to_dict() for r in results if r.status == status]
    body["pending"] = [{**r.to_dict(), "release": releases.get((r.name, str(r.version)))}
                       for r in results if r.status == "pending"]
    checked = [r for r in results if r.status.startswith("checked")]
    if checked:  # --dry-run: what would be published, and whether it would wait for review
        body["checked"] = [{**r.to_dict(), "for_review": r.status == "checked-for-review"}
                           for r in checked]
    return body


def _summary_lines(namespace: str, results: list[PublishResult],
                   releases: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    by = {s: [r for r in results if r.status == s]
          for s in ("published", "unchanged", "refused", "pending", "checked",
                    "checked-for-review")}
    checked = by["checked"] + by["checked-for-review"]
    waiting = f", waiting for review {len(by['pending'])}" if by["pending"] else ""
    head = (f"passed the checks {len(checked)} (nothing stored)" if checked
            else f"published {len(by['published'])}")
    lines = [f"{namespace}: {head}, unchanged "
             f"{len(by['unchanged'])}, refused {len(by['refused'])}{waiting}"]
    for result in checked:
        then = ("it would wait for a maintainer's review" if result.status ==
                "checked-for-review" else "publishing it stores it at once")
        flag = "  [caution: flagged by the checks]" if result.verdict == "caution" else ""
        lines.append(f"  {result.name} {result.version} would be published: {then}{flag}")
        lines.extend(finding_lines(result.findings, indent="    "))
        lines.extend(_duplicate_lines(result.duplicates))
    for result in by["pending"]:
        release = releases.get((result.name, str(result.version))) or {}
        ident = f" (release {release['id']})" if release.get("id") else ""
        lines.append(f"  {result.name} {result.version} waits for review{ident}: it is not "
                     f"published until a maintainer approves it (`skills-hub review`)")
        lines.extend(finding_lines(result.findings, indent="    "))
    for result in by["published"]:
        flag = "  [caution: flagged by the checks]" if result.verdict == "caution" else ""
        lines.append(f"  published {result.name} {result.version}{flag}")
        lines.extend(finding_lines(result.findings, indent="    "))
        lines.extend(_duplicate_lines(result.duplicates))
    for result in by["unchanged"]:
        lines.append(f"  unchanged {result.name} {result.version} (skipped, same content)")
    for result in by["refused"]:
        lines.append(f"  refused {result.name} ({result.folder}): {result.message}")
        lines.extend(_problem_lines(result.problems, indent="    "))
        lines.extend(finding_lines(result.findings, indent="    "))
    return lines


def _duplicate_lines(duplicates: list[dict[str, Any]]) -> list[str]:
    return [f"    near-duplicate of {dup['namespace']}/{dup['name']} (similarity "
            f"{dup['similarity']:.2f}): consider proposing a patch to it instead"
            for dup in duplicates]


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
    return [terminal_safe(line) for line in lines]


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
              help="Save this token (checked with whoami first).")
@click.option("--username", "-u", default=None,
              help="Log in with this account's password; a new token is made for this machine.")
@click.option("--password-stdin", is_flag=True,
              help="With --username: read the password from stdin (else a hidden prompt).")
@click.option("--device", is_flag=True,
              help="Sign in in a browser (the server's OIDC device grant).")
@click.option("--label", default=None,
              help="With --username or --device: the new token's label (default: this host).")
@click.option("--days", type=click.IntRange(1), default=None,
              help="With --username: the new token expires after this many days.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES),
              help="With --username or --device: the new token's scopes (repeatable; default: "
                   "the server's, read and publish; org owners and reviewers add admin and "
                   "review).")
@pass_client
def login(client: Client, login_server: str | None, login_token: str | None,
          username: str | None, password_stdin: bool, device: bool, label: str | None,
          days: int | None, scopes: tuple[str, ...]) -> None:
    """Log in and save the server and token in the config file (mode 0600); later commands
    use them when neither --token nor SKILLS_HUB_TOKEN is given.

    \b
    --username U  password (prompted, or --password-stdin): a new token for this machine
    --device      sign in in a browser, then the new token is fetched
    --token T     save an existing token
    Without any of them, a token is prompted for (hidden).
    """
    ways = [flag for flag, given in (("--token", login_token), ("--username", username),
                                     ("--device", device)) if given]
    if len(ways) > 1:
        raise click.UsageError(f"choose one of {', '.join(ways)}")
    if (scopes or label) and not (username or device):
        raise click.UsageError("--scope and --label make a new token: use them with "
                               "--username or --device")
    if (password_stdin or days) and not username:
        raise click.UsageError("--password-stdin and --days need --username")
    server = normalize_server(login_server or client.server)
    label = label or f"skills-hub CLI on {socket.gethostname()}"
    session: str | None = None
    with HubClient(server, None, http=client.http) as hub:
        if username:
            body = hub.login(username, _read_password(password_stdin), label=label, days=days,
                             scopes=list(scopes))
        elif device:
            body = _device_login(hub, label, list(scopes))
        else:
            body = {"token": login_token or click.prompt(f"Token for {server}",
                                                         hide_input=True)}
        token_value = str(body["token"])
        if "token_info" in body:
            session = str(body["token_info"]["id"])
        hub.token = token_value
        who = hub.whoami_info()
    config = client.config
    config.server = server
    config.tokens[server] = token_value
    if session is not None:
        config.sessions[server] = session
    else:
        config.sessions.pop(server, None)
    config.save()
    account = f" as {who['username']}" if who.get("username") else ""
    publishes = f": the token publishes to {who['namespace']!r}" if who.get("namespace") else ""
    click.echo(f"logged in to {server}{account}{publishes}; saved in {config.path}")


def _device_login(hub: HubClient, label: str, scopes: list[str]) -> dict[str, Any]:
    """The device grant: show the URL and code, then poll until approved (or expired)."""
    try:
        start = hub.device_start()
    except ServerError as exc:
        if exc.status == 404:
            raise NotFound(f"{hub.server} does not offer browser sign-in (no OIDC device "
                           "grant configured)",
                           extra={"hint": "use `skills-hub login --username U` or --token"}
                           ) from None
        raise
    click.echo(f"To sign in, open {start['verification_uri']} and enter the code "
               f"{start['user_code']}", err=True)
    if start.get("verification_uri_complete"):
        click.echo(f"  (or open {start['verification_uri_complete']})", err=True)
    interval = float(start.get("interval") or 5)
    deadline = time.monotonic() + float(start.get("expires_in") or 600)
    click.echo("waiting for the sign-in to be approved ...", err=True)
    while True:
        time.sleep(interval)
        body = hub.device_token(str(start["device_code"]), label, scopes)
        if "token" in body:
            return body
        if body.get("status") == "slow_down":
            interval += 5
        if time.monotonic() > deadline:
            raise Unauthorized("the sign-in code expired before it was approved",
                               extra={"hint": "run `skills-hub login --device` again"})


@main.command()
@click.option("--server", "logout_server", default=None, metavar="URL",
              help="The server to log out of (default: the chosen server).")
@pass_client
def logout(client: Client, logout_server: str | None) -> None:
    """Remove the server's saved token from the config file; a token that `login` made is
    also revoked on the server."""
    server = normalize_server(logout_server or client.server)
    config = client.config
    token_value = config.tokens.pop(server, None)
    session = config.sessions.pop(server, None)
    if token_value is None:
        click.echo(f"not logged in to {server}: no token saved in {config.path}")
        return
    note = ""
    if session is not None:
        try:
            with HubClient(server, token_value, http=client.http) as hub:
                hub.revoke_token(session)
            note = "; it was revoked on the server"
        except HubError as exc:
            note = f"; it could not be revoked on the server ({exc.message})"
    config.save()
    click.echo(f"logged out of {server}: removed its token from {config.path}{note}")


@main.command()
@json_option
@pass_client
def whoami(client: Client, as_json: bool) -> None:
    """Show who the token is: account, kind, operator, scopes, org roles."""
    who = client.hub().whoami_info()
    if as_json:
        emit_json(who)
        return
    kind = who.get("kind") or "token"
    operator = ", operator" if who.get("operator") else ""
    name = who.get("username") or f"namespace token of {who.get('namespace')!r}"
    click.echo(f"{name} ({kind}{operator}) on {client.hub().server}")
    details = [f"{who['display_name']}" if who.get("display_name") else "",
               f"<{who['email']}>" if who.get("email") else ""]
    if any(details):
        click.echo("  " + " ".join(d for d in details if d))
    if who.get("via"):
        click.echo(f"  authenticated by: {who['via']}")
    click.echo(f"  scopes: {', '.join(who.get('scopes') or []) or 'none'}")
    if who.get("namespaces"):
        click.echo(f"  limited to namespaces: {', '.join(who['namespaces'])}")
    orgs = who.get("orgs") or []
    click.echo("  orgs: " + (", ".join(f"{o['org']} ({o['role']})" for o in orgs) or "none"))
    roles = who.get("roles") or {}
    if roles:
        click.echo("  namespace roles: " + ", ".join(f"{ns} ({role})"
                                                    for ns, role in sorted(roles.items())))
    if who.get("namespace"):
        click.echo(f"  publishes to: {who['namespace']}")


# --- orgs, members, namespaces ---------------------------------------------------------------


@main.group()
def org() -> None:
    """Organisations: a namespace with members, roles, invitations and service accounts."""


@org.command("create")
@click.argument("name")
@click.option("--display-name", default=None, help="The org's name for people.")
@pass_client
def org_create(client: Client, name: str, display_name: str | None) -> None:
    """Create the org NAME (and its namespace NAME); you are its owner."""
    body = client.hub().create_org(name, display_name)
    click.echo(f"created org {body.get('org', name)} with namespace "
               f"{body.get('namespace', name)}; you are its owner")


@org.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_client
def org_delete(client: Client, name: str, yes: bool) -> None:
    """Delete the org NAME (an owner)."""
    if not yes:
        click.confirm(f"Delete the org {name!r}?", abort=True, err=True)
    client.hub().delete_org(name)
    click.echo(f"deleted org {name}")


@org.command("invite")
@click.argument("org_name", metavar="ORG")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="The role the invitee gets (default: the server's, reader).")
@click.option("--email", default=None, help="Only for this email address.")
@click.option("--days", type=click.IntRange(1), default=None,
              help="The invitation expires after this many days.")
@json_option
@pass_client
def org_invite(client: Client, org_name: str, role: str | None, email: str | None,
               days: int | None, as_json: bool) -> None:
    """Invite someone to ORG; the accept URL is printed alone on the last line."""
    hub = client.hub()
    body = hub.invite(org_name, role=role, email=email, days=days)
    url = str(body.get("url") or "")
    if url.startswith("/"):
        body["url"] = url = hub.server + url
    if as_json:
        emit_json(body)
        return
    click.echo(f"Invitation to {org_name} as {body.get('role') or role or 'reader'}; send "
               "this URL (it works once; they run `skills-hub org join URL` or open it):",
               err=True)
    click.echo(url or str(body["secret"]))


@org.command("join")
@click.argument("invitation", metavar="SECRET_OR_URL")
@click.option("--username", "-u", default=None,
              help="Create this new account (else: join as the token's account).")
@click.option("--password-stdin", is_flag=True,
              help="With --username: read the password from stdin (else a hidden prompt).")
@click.option("--display-name", default=None, help="With --username: the name shown.")
@click.option("--email", default=None, help="With --username: the email address.")
@pass_client
def org_join(client: Client, invitation: str, username: str | None, password_stdin: bool,
             display_name: str | None, email: str | None) -> None:
    """Accept an invitation: as your account (your token), or as a new account (--username)."""
    if (password_stdin or display_name or email) and not username:
        raise click.UsageError("--password-stdin, --display-name and --email need --username")
    password = _read_password(password_stdin, confirm=True) if username else None
    body = client.hub().accept_invitation(_invitation_secret(invitation), username=username,
                                          password=password, display_name=display_name,
                                          email=email)
    joined = body.get("username") or username
    click.echo(f"accepted the invitation: {joined} is now a member")
    if username:
        click.echo(f"log in with `skills-hub login --username {joined}`")


def _invitation_secret(value: str) -> str:
    """The secret of an invitation URL (its last path segment), or the value itself."""
    if "://" not in value and "/" not in value:
        return value
    path = httpx.URL(value).path if "://" in value else value
    parts = [p for p in path.split("/") if p]
    if parts and parts[-1] == "accept":
        parts.pop()
    if not parts:
        raise click.BadParameter(f"{value!r} has no invitation secret",
                                 param_hint="SECRET_OR_URL")
    return parts[-1]


@org.command("service-account")
@click.argument("org_name", metavar="ORG")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), default=None,
              help="Its role in the org (default: the server's, publisher).")
@pass_client
def org_service_account(client: Client, org_name: str, name: str, role: str | None) -> None:
    """Create a service account ORG.NAME for automation (it has tokens, no password)."""
    body = client.hub().add_service_account(org_name, name, role)
    account = body.get("username") or f"{org_name}.{name}"
    click.echo(f"created service account {account} ({body.get('role') or role}); "
               f"give it a token: skills-hub token create --account {account}")


@main.group()
def member() -> None:
    """Members of an org and their roles: reader, publisher, maintainer, owner."""


@member.command("list")
@click.argument("org_name", metavar="ORG")
@json_option
@pass_client
def member_list(client: Client, org_name: str, as_json: bool) -> None:
    """List ORG's members with their roles."""
    rows = client.hub().members(org_name)
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        name = f"  {row['display_name']}" if row.get("display_name") else ""
        service = "  (service account)" if row.get("kind") == "service" else ""
        click.echo(f"{row['username']}  {row['role']}{name}{service}")


@member.command("add")
@click.argument("org_name", metavar="ORG")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="reader", show_default=True)
@pass_client
def member_add(client: Client, org_name: str, username: str, role: str) -> None:
    """Add USERNAME to ORG (an owner)."""
    _echo_member(client.hub().set_member(org_name, username, role), org_name, username, role)


@member.command("role")
@click.argument("org_name", metavar="ORG")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@pass_client
def member_role(client: Client, org_name: str, username: str, role: str) -> None:
    """Change USERNAME's role in ORG (an owner)."""
    _echo_member(client.hub().set_member(org_name, username, role), org_name, username, role)


def _echo_member(body: dict[str, Any], org_name: str, username: str, role: str) -> None:
    row = body.get("member") or {}
    click.echo(f"{row.get('username', username)} is {row.get('role', role)} in {org_name}")


@member.command("remove")
@click.argument("org_name", metavar="ORG")
@click.argument("username")
@pass_client
def member_remove(client: Client, org_name: str, username: str) -> None:
    """Remove USERNAME from ORG (an owner; or yourself, to leave)."""
    client.hub().remove_member(org_name, username)
    click.echo(f"removed {username} from {org_name}")


@main.group("namespace")
def namespace_group() -> None:
    """A namespace's settings: who can see it and whether releases need review."""


@namespace_group.command("show")
@click.argument("namespace")
@json_option
@pass_client
def namespace_show(client: Client, namespace: str, as_json: bool) -> None:
    """Show NAMESPACE's owner, visibility, release policy and proposal policy."""
    body = client.hub().namespace_settings(namespace)
    if as_json:
        emit_json(body)
        return
    click.echo(f"{body.get('name', namespace)}: owner {_owner_text(body.get('owner'))}, "
               f"visibility {body.get('visibility')}")
    two = " (two people: the author cannot approve)" if body.get("two_person") else ""
    click.echo(f"  releases: {body.get('release_policy')}{two}")
    click.echo(f"  proposals: {body.get('review_policy')}")


def _owner_text(owner: Any) -> str:
    """A namespace's owner: {"org": ...} or {"user": ...}."""
    if isinstance(owner, dict):
        for key, label in (("org", "org "), ("user", "")):
            if owner.get(key) is not None:
                return f"{label}{owner[key]}"
        return "-"
    return str(owner or "-")


@namespace_group.command("visibility")
@click.argument("namespace")
@click.argument("visibility", type=click.Choice(["public", "internal", "private"]))
@pass_client
def namespace_visibility(client: Client, namespace: str, visibility: str) -> None:
    """Set who sees NAMESPACE: everyone, signed-in accounts (internal), or members."""
    client.hub().set_visibility(namespace, visibility)
    click.echo(f"{namespace}: visibility {visibility}")


@namespace_group.command("policy")
@click.argument("namespace")
@click.argument("policy_name", metavar="direct|review",
                type=click.Choice(["direct", "review"]))
@click.option("--two-person/--no-two-person", default=False, show_default=True,
              help="With review: the approver must not be the author.")
@pass_client
def namespace_policy(client: Client, namespace: str, policy_name: str,
                     two_person: bool) -> None:
    """Set NAMESPACE's release policy: publish at once (direct) or hold each new version
    until a maintainer approves it (review)."""
    client.hub().set_release_policy(namespace, policy_name, two_person)
    two = ", two-person" if two_person and policy_name == "review" else ""
    click.echo(f"{namespace}: releases {policy_name}{two}")


# --- review and audit ------------------------------------------------------------------------


class ReviewGroup(HubGroup):
    """`review` lists the queue; `review NS/NAME ID accept|reject` still reviews a proposal."""

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and "/" in args[0]:
            return "proposal", self.commands["proposal"], args
        return super().resolve_command(ctx, args)


@main.group(cls=ReviewGroup, invoke_without_command=True)
@click.option("--namespace", "-n", default=None, help="Only this namespace's queue.")
@json_option
@pass_client
@click.pass_context
def review(ctx: click.Context, client: Client, namespace: str | None, as_json: bool) -> None:
    """Review what waits for you: pending releases and open proposals.

    \b
    skills-hub review                       the queue, one line each
    skills-hub review show ID               a release's diff and checks
    skills-hub review approve ID            publish a pending release
    skills-hub review reject ID --comment   refuse it, saying why
    skills-hub review NS/NAME ID accept     a proposal (also: approve/reject NS/NAME ID)
    """
    if ctx.invoked_subcommand is not None:
        return
    body = client.hub().review_queue(namespace)
    if as_json:
        emit_json(body)
        return
    releases, proposals_ = body.get("releases") or [], body.get("proposals") or []
    for row in releases:
        click.echo(_release_line(row))
    for row in proposals_:
        click.echo(terminal_safe(
            f"{row['id']}  proposal  {row['namespace']}/{row['name']}@"
            f"{row.get('applies_to') or row.get('base_version')}  by "
            f"{row.get('author') or 'an agent'}  checks {row.get('verdict')}  "
            f"support {row.get('support')}"))
    if not releases and not proposals_:
        click.echo("nothing waits for review", err=True)


review.add_command(review_proposal)


def _release_line(row: dict[str, Any]) -> str:
    state = "" if row.get("state") == "pending" else f"  {row.get('state')}"
    decided = f" by {_decider(row['decided_by'])}" if row.get("decided_by") else ""
    comment = f": {row['comment']}" if row.get("comment") else ""
    return terminal_safe(
        f"{row['id']}  release  {row['namespace']}/{row['name']}@{row['version']}  by "
        f"{row.get('author')}  checks {row.get('verdict')}"
        + (f"{state}{decided}{comment}" if state else ""))


@review.command("show")
@click.argument("ids", nargs=-1, required=True, metavar="ID | NS/NAME ID")
@json_option
@pass_client
def review_show(client: Client, ids: tuple[str, ...], as_json: bool) -> None:
    """Show a release (or a proposal: NS/NAME ID) with its diff and checks verdict."""
    hub = client.hub()
    if len(ids) == 2:
        namespace, name, _ = _qualified(ids[0])
        one = hub.proposal(namespace, name, ids[1])
        if as_json:
            emit_json(one)
            return
        click.echo(_proposal_line(one))
        click.echo(terminal_safe(one.get("reasoning") or "(no reasoning given)"))
        click.echo(terminal_safe(one.get("diff") or ""), nl=False)
        return
    if len(ids) != 1:
        raise click.UsageError("give a release ID, or NS/NAME and a proposal ID")
    body = hub.release(ids[0])
    if as_json:
        emit_json(body)
        return
    click.echo(_release_line(body))
    current = body.get("current_version")
    click.echo(f"  replaces {current}" if current else "  a new skill (no current version)")
    report_ = body.get("report")
    if isinstance(report_, dict) and report_.get("findings") is not None:
        for line in _report_lines("  checks", {"counts": {}, **report_}, False):
            click.echo(line)
    click.echo(terminal_safe(body.get("diff") or "(no diff)"),
               nl=not str(body.get("diff") or "").endswith("\n"))


@review.command("approve")
@click.argument("ids", nargs=-1, required=True, metavar="ID | NS/NAME ID")
@click.option("--comment", default="", help="A note for the author.")
@click.option("--version", default=None,
              help="A proposal: the version to publish (default: next patch).")
@click.option("--canary", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, help="A proposal: release to this share of clients first.")
@pass_client
def review_approve(client: Client, ids: tuple[str, ...], comment: str, version: str | None,
                   canary: float | None) -> None:
    """Approve a pending release (publishes it), or a proposal (NS/NAME ID)."""
    _decide(client, ids, "accept", comment, version, canary)


@review.command("reject")
@click.argument("ids", nargs=-1, required=True, metavar="ID | NS/NAME ID")
@click.option("--comment", required=True, help="Why (the author reads it).")
@pass_client
def review_reject(client: Client, ids: tuple[str, ...], comment: str) -> None:
    """Reject a pending release, or a proposal (NS/NAME ID), saying why."""
    _decide(client, ids, "reject", comment, None, None)


def _decide(client: Client, ids: tuple[str, ...], decision: str, comment: str,
            version: str | None, canary: float | None) -> None:
    hub = client.hub()
    if len(ids) == 2:
        namespace, name, _ = _qualified(ids[0])
        body = hub.review(namespace, name, ids[1], decision, comment, version=version,
                          canary=canary)
        click.echo(_proposal_line(body))
        return
    if len(ids) != 1:
        raise click.UsageError("give a release ID, or NS/NAME and a proposal ID")
    if version or canary is not None:
        raise click.UsageError("--version and --canary are for proposals (NS/NAME ID)")
    if decision == "accept":
        row = hub.approve_release(ids[0], comment)
        click.echo(terminal_safe(
            f"approved: {row['namespace']}/{row['name']} {row['version']} is published"))
    else:
        row = hub.reject_release(ids[0], comment)
        click.echo(terminal_safe(f"rejected: {row['namespace']}/{row['name']} {row['version']} "
                                 f"({comment})"))


@main.command()
@click.argument("namespace")
@click.option("--state", type=click.Choice(["pending", "approved", "rejected"]), default=None,
              help="Only releases in this state.")
@click.option("--mine", is_flag=True, help="Only the releases you submitted.")
@json_option
@pass_client
def releases(client: Client, namespace: str, state: str | None, mine: bool,
             as_json: bool) -> None:
    """List NAMESPACE's releases under review, and the decisions (with comments)."""
    rows = client.hub().releases(namespace, state=state, mine=mine)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no releases", err=True)
    for row in rows:
        click.echo(_release_line(row))


@main.command()
@click.option("--org", default=None, help="Only this org's events (an owner).")
@click.option("--actor", default=None, help="Only this account's actions.")
@click.option("--action", default=None, help="Only this action (e.g. token.create).")
@click.option("--since", default=None, metavar="DATE", help="Only since this ISO 8601 date.")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="At most this many events per page (default: the server's).")
@click.option("--cursor", default=None, help="Continue after a previous page.")
@click.option("--all", "every_page", is_flag=True, help="Follow the pages to the end.")
@click.option("--jsonl", is_flag=True, help="Print the events as JSON lines (for a SIEM).")
@json_option
@pass_client
def audit(client: Client, org: str | None, actor: str | None, action: str | None,
          since: str | None, limit: int | None, cursor: str | None, every_page: bool,
          jsonl: bool, as_json: bool) -> None:
    """List audit events, newest first: who did what, when, from where."""
    hub = client.hub()
    query: dict[str, Any] = {"org": org, "actor": actor, "action": action, "since": since,
                             "limit": limit}
    events: list[dict[str, Any]] = []
    while True:
        if jsonl:
            text, cursor = hub.audit_jsonl(cursor=cursor, **query)
            if text:
                click.echo(terminal_safe(text), nl=not text.endswith("\n"))
        else:
            page = hub.audit(cursor=cursor, **query)
            cursor = page.get("next_cursor") or None
            events.extend(page.get("events") or [])
            if not as_json:
                for event in page.get("events") or []:
                    click.echo(_audit_line(event))
        if not cursor or not every_page:
            break
    if as_json:
        emit_json({"events": events, "next_cursor": cursor})
    elif not jsonl and not events:
        click.echo("no events", err=True)
    if cursor and not as_json:
        click.echo(f"more: --cursor {cursor} (or --all)", err=True)


@main.command("export-evidence")
@click.option("--namespace", "-n", default=None,
              help="Only this namespace (default: every namespace you own).")
@click.option("--skill", default=None, metavar="NAME", help="Only this skill (with -n).")
@click.option("--since", default=None, metavar="TIME", help="From this ISO 8601 date or time.")
@click.option("--until", default=None, metavar="TIME", help="Before this ISO 8601 date or time.")
@click.option("--tier", "tiers", multiple=True,
              help="Only this tier: gold, silver, bronze or rejected (repeatable).")
@click.option("--kind", "kinds", multiple=True,
              help="Only this kind: outcome, proposal or review (repeatable).")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the lines to this file (default: stdout).")
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="Offline, as the operator: export from this data home instead of the "
                   "server.")
@pass_client
def export_evidence(client: Client, namespace: str | None, skill: str | None,
                    since: str | None, until: str | None, tiers: tuple[str, ...],
                    kinds: tuple[str, ...], out: Path | None, home: Path | None) -> None:
    """Export evidence for training as JSON lines: outcome reports with their signal score,
    proposals with edits, diff, evidence, reasoning and review, and review decisions, each
    with a quality tier, secrets redacted (docs/LEARNING.md, "Evidence export").

    \b
    Through the server with your token: the namespaces you own (the operator: all).
    With --home (operator, offline): straight from the data home.
    """
    query: dict[str, Any] = {"namespace": namespace, "skill": skill, "since": since,
                             "until": until, "tiers": list(tiers), "kinds": list(kinds)}
    if home is None:
        _write_lines(client.hub().export_evidence(**query), out)
        return
    from .access.principal import OPERATOR
    from .services.evidence import evidence_jsonl, parse_evidence_filters

    registry = _registry(home)
    try:
        lines = registry.export_evidence(OPERATOR, parse_evidence_filters(**query))
        _write_lines(evidence_jsonl(lines), out)
    finally:
        registry.close()


def _write_lines(chunks: Iterator[str], out: Path | None) -> None:
    """Write JSON lines text as it arrives; the file is made once the first chunk (or the
    end) arrived, so a refused export leaves none. Says how many lines on stderr."""
    first = next(chunks, "")  # an error raises here, before anything is written
    count = 0
    if out is None:
        for chunk in itertools.chain([first], chunks):
            click.echo(terminal_safe(chunk), nl=False)
            count += chunk.count("\n")
    else:
        with out.open("w", encoding="utf-8") as handle:
            for chunk in itertools.chain([first], chunks):
                handle.write(chunk)
                count += chunk.count("\n")
    click.echo(f"exported {count} lines" + (f" to {out}" if out else ""), err=True)


def _audit_line(event: dict[str, Any]) -> str:
    where = event.get("namespace") or event.get("org")
    scope = f"  [{where}]" if where else ""
    target = f"  {event['target']}" if event.get("target") else ""
    address = f"  from {event['address']}" if event.get("address") else ""
    return terminal_safe(f"{str(event.get('at', ''))[:19]}  {event.get('actor') or '-'}  "
                         f"{event.get('action')}{target}{scope}{address}")


def _short(text: str, width: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    main()
