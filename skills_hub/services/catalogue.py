"""Reads: the catalogue, a skill and its versions, files, archives, and the flat-name
scopes of the compatibility routes; who may read a namespace."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..access.policy import READ, NamespaceRef, require
from ..access.principal import Principal
from ..domain import SearchFilters, SkillRow, VersionRow
from ..errors import AmbiguousName, BadRequest, NotFound
from ..skill.bundle import Bundle, to_targz, to_zip
from .base import RegistryBase
from .common import _check_skill_name, _sha256, _version_key

ARCHIVE_FORMATS = ("tar.gz", "zip")


@dataclass(frozen=True)
class Archive:
    data: bytes
    sha256: str
    filename: str
    media_type: str
    fmt: str  # one of ARCHIVE_FORMATS


@dataclass(frozen=True)
class PinnedVersion:
    """What reading an exact version needs, kept per process (`Registry._versions`) until
    the home's generation moves: the namespace's access facts and the version's row."""

    namespace: NamespaceRef
    row: VersionRow


@dataclass(frozen=True)
class FlatCatalogue:
    """The skills reachable by a bare name in one scope (a namespace, or every namespace
    the caller may read). A name held by several namespaces is not reachable by its bare
    name in the server-wide scope: it is listed in `ambiguous` instead."""

    skills: list[SkillRow]  # by name
    ambiguous: dict[str, list[str]]  # name -> ["ns/name", ...]


@dataclass(frozen=True)
class SkillPage:
    skills: list[SkillRow]
    total: int
    next_cursor: str | None


@dataclass(frozen=True)
class SkillDetail:
    skill: SkillRow
    versions: list[VersionRow]  # newest first
    visibility: str
    verdicts: dict[str, str] = field(default_factory=dict)  # version -> checks verdict
    deprecated: dict[str, str] = field(default_factory=dict)  # version -> why

    def verdict(self, version: str) -> str:
        return self.verdicts.get(version, "unchecked")


class CatalogueMixin(RegistryBase):
    """Read what is published (each read checks the caller may read the namespace)."""

    def list_skills(self, *, principal: Principal, namespace: str | None = None,
                    cursor: str | None = None, limit: int = 50) -> SkillPage:
        if namespace is not None:
            self.check_readable(namespace, principal)
        limit = max(1, min(limit, 200))
        after = _decode_cursor(cursor)
        rows = self.store.catalogue.list_skills(readable=principal.readable, namespace=namespace,
                                                after=after, limit=limit + 1)
        total = self.store.catalogue.count_skills(readable=principal.readable, namespace=namespace)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = f"{rows[-1].namespace}/{rows[-1].name}" if more and rows else None
        return SkillPage(rows, total, next_cursor)

    def namespaces(self, principal: Principal) -> list[tuple[str, str, int]]:
        """(name, visibility, skill count) of every namespace the caller may read."""
        out = []
        for row in self.store.namespaces.list_namespaces():
            if row.visibility != "public" and row.name not in principal.readable:
                continue
            count = self.store.catalogue.count_skills(readable=principal.readable,
                                                      namespace=row.name)
            out.append((row.name, row.visibility, count))
        return out

    def get_skill(self, namespace: str, name: str, principal: Principal) -> SkillDetail:
        self.check_readable(namespace, principal)
        skill = self.store.catalogue.get_skill(namespace, name)
        if skill is None:
            raise NotFound(f"skill {namespace}/{name} does not exist")
        versions = sorted(self.store.catalogue.versions(skill.id), reverse=True,
                          key=lambda v: _version_key(v.version))
        ns = self.store.namespaces.get_namespace(namespace)
        verdicts = self.store.reports.verdicts(namespace, name)
        return SkillDetail(skill, versions, ns.visibility if ns else "public", verdicts,
                           self.deprecated_versions(namespace, name, verdicts))

    def get_version(self, namespace: str, name: str, version: str,
                    principal: Principal) -> tuple[SkillRow, VersionRow]:
        """`version` may be "latest". A member may also pin a version waiting for review."""
        self.check_readable(namespace, principal)
        skill = self.store.catalogue.get_skill(namespace, name)
        if skill is not None:
            wanted = skill.latest_version if version == "latest" else version
            row = self.store.catalogue.get_version(skill.id, wanted)
            if row is not None:
                return skill, row
        detail = self.get_skill(namespace, name, principal)  # its errors, a pending pin
        try:
            return detail.skill, version_of(detail, version)
        except NotFound:
            pending = self._pending_pin(detail.skill, version, principal)
            if pending is None:
                raise
            return detail.skill, pending

    def bundle(self, namespace: str, row: VersionRow) -> Bundle:
        return self._bundles.get_or_make((namespace, row.tree_sha),
                                         lambda: self.git.read_tree(namespace, row.tree_sha))

    def pinned_version(self, namespace: str, name: str, version: str,
                       principal: Principal) -> VersionRow:
        """`get_version`'s row; for an exact version, from the per-process cache of its
        facts, the access policy still asked on every call."""
        if version == "latest":
            return self.get_version(namespace, name, version, principal)[1]
        pinned = self._versions.get_or_make((namespace, name, version),
                                            lambda: self._pin(namespace, name, version))
        if pinned is None:  # not published (or only waiting for review): the full path
            return self.get_version(namespace, name, version, principal)[1]
        require(principal, READ, pinned.namespace, namespace)
        return pinned.row

    def _pin(self, namespace: str, name: str, version: str) -> PinnedVersion | None:
        ref = self.namespace_ref(namespace)
        skill = self.store.catalogue.get_skill(namespace, name) if ref is not None else None
        row = self.store.catalogue.get_version(skill.id, version) if skill is not None else None
        return None if ref is None or row is None else PinnedVersion(ref, row)

    def read_file(self, namespace: str, name: str, version: str, path: str,
                  principal: Principal) -> tuple[VersionRow, bytes]:
        row = self.pinned_version(namespace, name, version, principal)
        files = self.bundle(namespace, row).files
        if path not in files:
            raise NotFound(f"{namespace}/{name} {row.version} has no file {path!r}",
                           extra={"files": sorted(files)})
        return row, files[path]

    def archive(self, namespace: str, name: str, version: str, fmt: str,
                principal: Principal, count: bool = True,
                at_root: bool = False) -> tuple[VersionRow, Archive]:
        """The version as a deterministic archive (same bytes every time) and its sha256.

        The files sit under a `<name>/` folder, or at the archive's root with `at_root`
        (the layout ClawHub downloads and well-known archives use)."""
        if fmt not in ARCHIVE_FORMATS:
            raise NotFound(f"no archive format {fmt!r}; use one of {', '.join(ARCHIVE_FORMATS)}")
        row = self.pinned_version(namespace, name, version, principal)
        prefix = None if at_root else name

        def make() -> Archive:
            bundle = self.bundle(namespace, row)
            if fmt == "zip":
                data, media = to_zip(bundle, prefix), "application/zip"
            else:
                data, media = to_targz(bundle, prefix), "application/gzip"
            return Archive(data, _sha256(data), f"{name}-{row.version}.{fmt}", media, fmt)

        archive = self._archives.get_or_make((namespace, row.tree_sha, fmt, prefix), make)
        if count:
            self.downloads.add(namespace, name)
        if self.static_archives.enabled and version != "latest" and not at_root:
            self._offer_static(namespace, name, row, archive)
        return row, archive

    def _offer_static(self, namespace: str, name: str, row: VersionRow,
                      archive: Archive) -> None:
        """Give the proxy the archive of a public namespace's version, so that it sends
        the next downloads itself (`store.static_archives`): once per version and format,
        under the namespace's lock with the visibility read again, so that no file is
        written after the namespace went private (`set_visibility` removes them under the
        same lock)."""
        pinned = self._versions.get_or_make((namespace, name, row.version),
                                            lambda: self._pin(namespace, name, row.version))
        static = self.static_archives
        if pinned is None or pinned.namespace.visibility != "public" or \
                static.has(namespace, name, row.version, archive.sha256, archive.fmt):
            return
        with self.git.locked(namespace):
            ref = self.namespace_ref(namespace)
            if ref is not None and ref.visibility == "public":
                static.put(namespace, name, row.version, archive.sha256, archive.fmt,
                           archive.data)

    def archive_file(self, archive: Archive) -> Path:
        """The archive as an immutable file, `<home>/cache/archives/<sha256>.<fmt>`, for a
        reverse proxy to send (written once, by an atomic rename)."""
        return self._archive_files.ensure(archive.sha256, archive.fmt, archive.data)

    # -- flat names (ClawHub slugs, well-known names) ------------------------------------

    def flat_skill(self, name: str, principal: Principal,
                   namespace: str | None = None) -> SkillRow:
        """The skill a bare `name` means: in `namespace` when the client's root names one,
        else the one readable skill of that name on the server; 409 `ambiguous_name` when
        several namespaces have it (never a silent pick)."""
        if namespace is not None:
            return self.get_skill(namespace, name, principal).skill
        _check_skill_name(name)
        rows = self.store.catalogue.find_by_name(name, filters=SearchFilters(),
                                                 readable=principal.readable)
        if not rows:
            raise NotFound(f"no skill is called {name!r}")
        if len(rows) > 1:
            candidates = sorted(f"{row.namespace}/{row.name}" for row in rows)
            raise AmbiguousName(
                f"{len(rows)} namespaces have a skill called {name!r}: "
                f"{', '.join(candidates)}",
                extra={"candidates": candidates,
                       "hint": "use a namespace's own root: /<namespace>/.well-known/skills/ "
                               "for well-known clients, /clawhub/<namespace> as the ClawHub "
                               "registry, or the native API's <namespace>/<name>"})
        return rows[0]

    def flat_catalogue(self, principal: Principal,
                       namespace: str | None = None) -> FlatCatalogue:
        """Every skill a bare name reaches in the scope (see `FlatCatalogue`)."""
        if namespace is not None:
            self.check_readable(namespace, principal)
        rows: list[SkillRow] = []
        after: tuple[str, str] | None = None
        while True:
            page = self.store.catalogue.list_skills(readable=principal.readable,
                                                    namespace=namespace,
                                          after=after, limit=500)
            rows.extend(page)
            if len(page) < 500:
                break
            after = (page[-1].namespace, page[-1].name)
        by_name: dict[str, list[SkillRow]] = {}
        for row in rows:
            by_name.setdefault(row.name, []).append(row)
        unique = [group[0] for name, group in sorted(by_name.items()) if len(group) == 1]
        ambiguous = {name: sorted(f"{r.namespace}/{r.name}" for r in group)
                     for name, group in sorted(by_name.items()) if len(group) > 1}
        return FlatCatalogue(unique, ambiguous)


def version_of(detail: SkillDetail, version: str) -> VersionRow:
    """The row of `version` (or "latest") among the skill's versions; 404 if absent."""
    wanted = detail.skill.latest_version if version == "latest" else version
    for row in detail.versions:
        if row.version == wanted:
            return row
    raise NotFound(f"{detail.skill.namespace}/{detail.skill.name} has no version {version!r}",
                   extra={"versions": [v.version for v in detail.versions]})


def install_command(namespace: str, name: str, version: str | None = None) -> str:
    return f"skills-hub install {namespace}/{name}" + (f"@{version}" if version else "")


def _decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    namespace, sep, name = cursor.partition("/")
    if not sep:
        raise BadRequest("the cursor is not valid", extra={"hint": "pass next_cursor as given"})
    return namespace, name
