"""The client side: HubClient over the native API, local installs, the lockfile, taps.

Imports httpx, the stdlib, skills_hub.skill and skills_hub.errors only: never the server
(starlette, dulwich, torch). tests/test_client.py holds that line.
"""

from __future__ import annotations

from .config import ClientConfig, Tap
from .errors import Ambiguous, ConfigError, GitFailed, IntegrityError, ServerError, Unreachable
from .hub import DEFAULT_SERVER, Download, HubClient
from .installer import Installed, install_from_hub, uninstall
from .lockfile import LockEntry, Lockfile

__all__ = [
    "DEFAULT_SERVER",
    "Ambiguous",
    "ClientConfig",
    "ConfigError",
    "Download",
    "GitFailed",
    "HubClient",
    "Installed",
    "IntegrityError",
    "LockEntry",
    "Lockfile",
    "ServerError",
    "Tap",
    "Unreachable",
    "install_from_hub",
    "uninstall",
]
