"""The `skills-hub` command: operator commands (serve, token, reindex) and the client.

Only this module and config.py read the environment. Server imports happen inside the
operator commands so that the client commands never load starlette, dulwich or torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from . import __version__
from .config import Settings
from .errors import HubError


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings(home: Path | None) -> Settings:
    settings = Settings.from_env()
    return settings.with_home(home) if home else settings


@click.group()
@click.version_option(__version__, prog_name="skills-hub")
def main() -> None:
    """skills-hub: a self-hosted, git-backed registry for agent skills."""


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


def _registry(home: Path | None, full: bool = False):  # type: ignore[no-untyped-def]
    from .service import Registry

    registry = Registry(_settings(home))
    registry.settings.home.mkdir(parents=True, exist_ok=True)
    registry.index.migrate()
    report = registry.reconcile(full=full)
    if full:
        click.echo(f"reindexed: {report.added} versions from git", err=True)
    return registry


if __name__ == "__main__":
    main()
