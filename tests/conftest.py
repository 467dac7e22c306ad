"""Shared fixtures. Every test is hermetic: its own HOME, SKILLS_HUB_HOME, no GIT_* leaks."""

from __future__ import annotations

import os
import uuid
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from skills_hub.access.principal import Principal
from skills_hub.config import Settings
from skills_hub.search.embedder import Embedder
from skills_hub.services import Registry
from skills_hub.web.app import create_app

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED_DIR = REPO_ROOT / "registry" / "seed"

SKILL_MD = """---
name: {name}
description: {description}
license: Apache-2.0
metadata:
  tags: "testing, example"
---
# {name}

{body}
"""


@pytest.fixture(autouse=True)
def hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("GIT_", "SKILLS_HUB_", "XDG_")) or key in ("SKILLS_DIR",):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SKILLS_HUB_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    # Servers started by tests search by keyword unless a test turns the model on.
    monkeypatch.setenv("SKILLS_HUB_SEMANTIC", "off")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "data", seed=False, semantic="off")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once per test session and shared."""
    model = Embedder()
    assert model.wait(300), f"the embedding model did not load: {model.error}"
    return model


@pytest.fixture
def semantic_registry(tmp_path: Path, embedder: Embedder) -> Iterator[Registry]:
    """A registry with semantic search on (the shared model, already loaded)."""
    reg = Registry(Settings(home=tmp_path / "semantic", seed=False), embedder=embedder)
    reg.start()
    yield reg
    reg.close()


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    reg = Registry(settings)
    reg.start()
    yield reg
    reg.close()


@pytest.fixture
def app(settings: Settings, registry: Registry):  # type: ignore[no-untyped-def]
    return create_app(settings, registry)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def token(registry: Registry) -> str:
    return registry.create_token("team")


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send_outcomes(registry: Registry, namespace: str, name: str, outcomes: list[str], *,
                  version: str = "0.1.0", at: datetime | None = None,
                  clients: int = 1, token_namespace: str = "reporters") -> dict[str, Any]:
    """Report outcomes through the service, as agents do (`clients` distinct client ids)."""
    principal = token_principal(registry, token_namespace)
    stamp = (at or datetime.now(UTC)).isoformat()
    batch = [{"id": uuid.uuid4().hex, "version": version, "outcome": outcome,
              **({"failure_kind": "wrong_result"} if outcome == "failure" else {}),
              "client": {"id": f"client-{i % clients}"}, "at": stamp}
             for i, outcome in enumerate(outcomes)]
    receipt = registry.report_outcomes(namespace, name, {"outcomes": batch}, principal)
    return {"recorded": receipt.recorded, "trust": receipt.trust}


_TOKENS: weakref.WeakKeyDictionary[Registry, dict[str, str]] = weakref.WeakKeyDictionary()


def token_principal(registry: Registry, namespace: str) -> Principal:
    """The principal of a namespace token (an owner's token of `namespace`), as a client
    holding one is: one token per registry and namespace, so reports from it are one
    reporter's."""
    tokens = _TOKENS.setdefault(registry, {})
    if namespace not in tokens:
        tokens[namespace] = registry.create_token(namespace)
    return registry.authenticate(tokens[namespace])


def skill_md(name: str = "hello-world",
             description: str = "Greets the user by name when asked to say hello.",
             body: str = "Say hello.") -> bytes:
    return SKILL_MD.format(name=name, description=description, body=body).encode()


def write_skill(parent: Path, name: str = "hello-world", **kwargs: str) -> Path:
    folder = parent / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_bytes(skill_md(name, **kwargs))
    return folder
