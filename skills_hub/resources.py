"""Finds the files shipped beside the code (templates, static, seed skills) in both an
editable checkout and an installed wheel, where they sit under skills_hub/_resources/."""

from __future__ import annotations

from pathlib import Path

from .config import CHECKOUT_DIR, PACKAGE_DIR

_CHECKOUT_PATHS = {"templates": "templates", "static": "static", "seed": "registry/seed"}


def resource_dir(kind: str) -> Path:
    packaged = PACKAGE_DIR / "_resources" / kind
    if packaged.is_dir():
        return packaged
    return CHECKOUT_DIR / _CHECKOUT_PATHS[kind]
