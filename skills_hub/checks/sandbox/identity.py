"""Who the sandboxed processes run as on the host."""

from __future__ import annotations

import functools
import os
import pwd
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class _Identity:
    """Who the sandboxed processes run as on the host; drop = the server is root."""

    uid: int
    gid: int
    drop: bool

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.drop:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


@functools.cache
def _identity() -> _Identity:
    if os.geteuid() != 0:
        return _Identity(os.getuid(), os.getgid(), drop=False)
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return _Identity(65534, 65534, drop=True)
    return _Identity(nobody.pw_uid, nobody.pw_gid, drop=True)

