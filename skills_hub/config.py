"""Settings, built once from the environment and passed down. Only this module and cli.py
read os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

# The checkout's own `registry/` folder is the embedded default data home.
PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parent


@dataclass(frozen=True)
class Limits:
    """Caps applied to every upload before anything is stored."""

    max_files: int = 100
    max_file_bytes: int = 5 * 1024 * 1024
    max_total_bytes: int = 20 * 1024 * 1024
    max_ratio: float = 100.0
    max_upload_bytes: int = 25 * 1024 * 1024  # the compressed request body


@dataclass(frozen=True)
class Settings:
    home: Path
    strict: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    seed: bool = True
    git_backend: str = "auto"  # "git" (C git upload-pack), "dulwich", or "auto"
    # How skills' tests are run at publish: "auto" (bubblewrap, else a loud rlimits-only
    # fallback), "bubblewrap" (refuse to run tests without it), "rlimits", or "off".
    sandbox: str = "auto"
    # Semantic search: "auto" loads the embedding model in the background at start (keyword
    # search serves until it is ready, or for good without the `semantic` extra); "off".
    semantic: str = "auto"
    # The address clients reach the server at (behind a proxy, say), used where a client
    # needs absolute URLs (well-known indexes, clawhub.json, marketplaces); None: each
    # request's own base URL.
    public_url: str | None = None
    # The Host names requests may carry besides the loopback ones and public_url's (names,
    # or `*.example.org` for subdomains); any other Host gets 400, so no absolute URL is
    # ever built from a name a client made up. Empty with no public_url: loopback only.
    allowed_hosts: tuple[str, ...] = ()
    # Outcome reports each token may send: a sustained rate per second and a burst.
    outcome_rate: float = 500.0
    outcome_burst: float = 5000.0
    # Gap answers recorded into the demand list, per asker (services.demands).
    demand_rate: float = 0.2
    demand_burst: float = 30.0
    # Scheduled health checks (services.health): stored versions re-checked an hour, most
    # important first, by one process of the deployment; 0 turns the scheduler off.
    health_budget: int = 120
    # OpenID Connect sign-in, on when an issuer is set (discovery at its well-known URL).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    # Personal access tokens: the expiry when none is asked for, and the longest allowed.
    token_default_days: int = 90
    token_max_days: int = 365
    # Archive downloads sent by the reverse proxy in front (README, "Running it"): the app
    # answers with the headers only and the proxy sends `<home>/cache/archives/<file>`.
    # accel_redirect: nginx's `X-Accel-Redirect: <prefix><file>`, the prefix of an
    # `internal` location; x_sendfile: `X-Sendfile: <absolute path>` (Apache's
    # mod_xsendfile, lighttpd). At most one of them.
    accel_redirect: str | None = None
    x_sendfile: bool = False
    # Public archives nginx sends by itself, without asking the app (store.static_archives;
    # README, "Running it"): this node's folder for nginx's maps and download log, and the
    # command that reloads nginx when the maps change. Off (None) by default.
    static_archives: Path | None = None
    proxy_reload: str | None = None
    # The catalogue's database: None is the embedded SQLite file `<home>/index.db`;
    # `postgresql://...` (SKILLS_HUB_DATABASE_URL) is a PostgreSQL server shared by nodes.
    database_url: str | None = None
    # The namespaces' git repos: `<home>/repos` unless SKILLS_HUB_REPOS_DIR names a folder
    # several nodes share (NFS, CephFS, EFS: docs/ARCHITECTURE.md, "Deployment").
    repos: Path | None = None
    # Log lines: "json" (one object a line, with the request id) or "text"; "auto" is json
    # unless stderr is a terminal.
    log_format: str = "auto"
    limits: Limits = field(default_factory=Limits)

    @property
    def repos_dir(self) -> Path:
        return self.repos or self.home / "repos"

    @property
    def uploads_dir(self) -> Path:
        """Files uploaded ahead of a publish (ClawHub's two-step upload), beside the repos
        so that every node sharing them sees every upload."""
        return self.repos_dir / ".uploads"

    @property
    def index_path(self) -> Path:
        return self.home / "index.db"

    def with_home(self, home: Path) -> Settings:
        return replace(self, home=home)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("SKILLS_HUB_HOME") or default_home()).expanduser()
        return cls(
            home=home,
            strict=_flag(env.get("SKILLS_HUB_STRICT")),
            host=env.get("SKILLS_HUB_HOST", "127.0.0.1"),
            port=int(env.get("SKILLS_HUB_PORT", "8000")),
            seed=not _flag(env.get("SKILLS_HUB_NO_SEED")),
            git_backend=env.get("SKILLS_HUB_GIT_BACKEND", "auto"),
            sandbox=env.get("SKILLS_HUB_SANDBOX", "auto"),
            semantic="off" if env.get("SKILLS_HUB_SEMANTIC", "auto").strip().lower()
            in {"off", "0", "false", "no"} else "auto",
            public_url=(env.get("SKILLS_HUB_PUBLIC_URL") or "").rstrip("/") or None,
            allowed_hosts=tuple(name.strip().lower() for name in
                                env.get("SKILLS_HUB_ALLOWED_HOSTS", "").split(",")
                                if name.strip()),
            outcome_rate=float(env.get("SKILLS_HUB_OUTCOME_RATE", "500")),
            outcome_burst=float(env.get("SKILLS_HUB_OUTCOME_BURST", "5000")),
            demand_rate=float(env.get("SKILLS_HUB_DEMAND_RATE", "0.2")),
            demand_burst=float(env.get("SKILLS_HUB_DEMAND_BURST", "30")),
            health_budget=int(env.get("SKILLS_HUB_HEALTH_BUDGET", "120")),
            oidc_issuer=env.get("SKILLS_HUB_OIDC_ISSUER") or None,  # exact: issuers compare as is
            oidc_client_id=env.get("SKILLS_HUB_OIDC_CLIENT_ID") or None,
            oidc_client_secret=env.get("SKILLS_HUB_OIDC_CLIENT_SECRET") or None,
            token_default_days=int(env.get("SKILLS_HUB_TOKEN_DAYS", "90")),
            token_max_days=int(env.get("SKILLS_HUB_TOKEN_MAX_DAYS", "365")),
            accel_redirect=_accel_prefix(env.get("SKILLS_HUB_ACCEL_REDIRECT")),
            x_sendfile=_flag(env.get("SKILLS_HUB_X_SENDFILE")),
            static_archives=Path(env["SKILLS_HUB_STATIC_ARCHIVES"]).expanduser().absolute()
            if env.get("SKILLS_HUB_STATIC_ARCHIVES") else None,
            proxy_reload=(env.get("SKILLS_HUB_PROXY_RELOAD") or "").strip() or None,
            database_url=(env.get("SKILLS_HUB_DATABASE_URL") or "").strip() or None,
            repos=Path(env["SKILLS_HUB_REPOS_DIR"]).expanduser()
            if env.get("SKILLS_HUB_REPOS_DIR") else None,
            log_format=(env.get("SKILLS_HUB_LOG_FORMAT") or "auto").strip().lower(),
        )

    def __post_init__(self) -> None:
        if self.accel_redirect and self.x_sendfile:
            raise ValueError("set SKILLS_HUB_ACCEL_REDIRECT (nginx) or SKILLS_HUB_X_SENDFILE "
                             "(Apache, lighttpd), not both: one proxy sends the archives")
        if self.database_url and not self.database_url.startswith(
                ("postgresql://", "postgres://")):
            raise ValueError("SKILLS_HUB_DATABASE_URL must be a postgresql:// URL (leave it "
                             "unset for the embedded SQLite catalogue in the home folder)")
        if self.health_budget < 0:
            raise ValueError("SKILLS_HUB_HEALTH_BUDGET must be a whole number of versions an "
                             "hour, 0 or more (0 turns the scheduled health checks off)")
        if self.log_format not in ("auto", "json", "text"):
            raise ValueError("SKILLS_HUB_LOG_FORMAT must be json, text or auto")


def default_home() -> Path:
    """`registry/` of the checkout when running from one, else ~/.local/share/skills-hub."""
    if (CHECKOUT_DIR / "pyproject.toml").exists() and (CHECKOUT_DIR / "registry").is_dir():
        return CHECKOUT_DIR / "registry"
    return Path.home() / ".local" / "share" / "skills-hub"


def _accel_prefix(value: str | None) -> str | None:
    """`/internal/archives/` from `internal/archives` or `/internal/archives/`."""
    value = (value or "").strip().strip("/")
    return f"/{value}/" if value else None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}
