"""The client's config file: default server, tokens per server, taps. Kept mode 0600."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .lockfile import write_atomic


@dataclass(frozen=True)
class Tap:
    """A source of installable skills.

    kind "hub": `namespace` on `server`; kind "git": the repo at `url` (a URL or an
    absolute local path) with skills at `skills/<name>/SKILL.md`.
    """

    name: str
    kind: str
    server: str | None = None
    namespace: str | None = None
    url: str | None = None

    @property
    def where(self) -> str:
        """Where the tap's skills come from, for people."""
        if self.kind == "hub":
            return f"{self.server} namespace {self.namespace}"
        return str(self.url)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Tap:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


@dataclass
class ClientConfig:
    """`config.json`: {"server": URL, "tokens": {URL: token}, "taps": [Tap, ...]}, and
    "sessions": {URL: token id} for the tokens `login` created (so `logout` revokes them)."""

    path: Path
    server: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    taps: list[Tap] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ClientConfig:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the config file {path}: {exc}",
                              extra={"hint": "fix the JSON or delete the file"}) from exc
        try:
            return cls(path, raw.get("server"), dict(raw.get("tokens") or {}),
                       [Tap.from_dict(t) for t in raw.get("taps") or []],
                       {str(k): str(v) for k, v in (raw.get("sessions") or {}).items()})
        except (AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"the config file {path} has an unexpected shape: {exc}",
                              extra={"hint": "fix the file or delete it"}) from exc

    def save(self) -> None:
        """Write atomically with mode 0600 (it holds tokens), in a 0700 folder."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        body: dict[str, Any] = {
            "server": self.server, "tokens": dict(sorted(self.tokens.items())),
            "taps": [{k: v for k, v in asdict(t).items() if v is not None} for t in self.taps]}
        if self.sessions:
            body["sessions"] = dict(sorted(self.sessions.items()))
        write_atomic(self.path, (json.dumps(body, indent=2) + "\n").encode("utf-8"), 0o600)

    def tap(self, name: str) -> Tap | None:
        return next((t for t in self.taps if t.name == name), None)
