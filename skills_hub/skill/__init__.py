"""The SKILL.md format: parse and validate manifests, unpack uploads safely, hash content."""

from __future__ import annotations

from skills_hub.skill.bundle import (
    Bundle,
    from_archive,
    from_directory,
    from_files,
    from_targz,
    from_zip,
    to_targz,
    to_zip,
)
from skills_hub.skill.manifest import (
    DOCUMENTED_DIFFERENCES,
    Manifest,
    parse_manifest,
    split_frontmatter,
)

__all__ = [
    "DOCUMENTED_DIFFERENCES",
    "Bundle",
    "Manifest",
    "from_archive",
    "from_directory",
    "from_files",
    "from_targz",
    "from_zip",
    "parse_manifest",
    "split_frontmatter",
    "to_targz",
    "to_zip",
]
