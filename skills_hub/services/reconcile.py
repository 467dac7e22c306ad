"""Reconcile: bring the index in line with git (git wins)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..domain import NewVersion
from ..errors import InvalidSkill
from ..skill.manifest import Manifest, parse_manifest
from ..store.gitstore import TagInfo, tag_name
from .base import RegistryBase
from .publishing import _new_version, _skill_text


@dataclass
class ReconcileReport:
    added: int = 0
    removed: int = 0
    repaired: list[str] = field(default_factory=list)  # ns/tag main was fast-forwarded to
    orphans: list[str] = field(default_factory=list)  # ns/tag removed: never acknowledged
    locks: list[str] = field(default_factory=list)  # ns.git/path of stale lock files removed


@dataclass(frozen=True)
class Finding:
    """One problem `fsck` found: what, where, and whether it was fixed."""

    namespace: str
    kind: str  # stale-lock, tag-ahead, orphan-tag, tag-not-on-main, not-indexed,
    #            index-only, tag-mismatch, git-fsck
    where: str
    detail: str
    fixed: bool


@dataclass
class FsckReport:
    namespaces: int = 0
    tags: int = 0
    indexed: int = 0
    git_fsck: str = "not run: no namespaces"  # clean, problems, or skipped: no git binary
    findings: list[Finding] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings


class ReconcileMixin(RegistryBase):
    """Rebuild or repair the index from the namespaces' git repos."""

    def reconcile(self, full: bool = False, *, only: str | None = None) -> ReconcileReport:
        """Bring the index in line with git (git wins); `full` rebuilds the catalogue;
        `only` limits the work to that namespace (not with `full`)."""
        assert not (full and only), "a full rebuild is of every namespace"
        report = ReconcileReport()
        # What the index knew before any rebuild: a tag main does not reach is removed only
        # when the index does not know its version (GitStore.recover).
        known = {key: tag for key, tag in self.store.catalogue.catalogue_tags().items()
                 if only is None or key[0] == only}
        indexed = _by_namespace(known)
        if full:
            self.store.catalogue.clear_catalogue()
            known = {}
        seen: set[tuple[str, str, str]] = set()
        for namespace in self.git.namespaces() if only is None else [only]:
            recovery = self.git.recover(namespace, indexed.get(namespace, set()))
            report.repaired += [f"{namespace}/{t}" for t in recovery.forwarded]
            report.orphans += [f"{namespace}/{t}" for t in recovery.removed]
            report.locks += [f"{namespace}.git/{lock.path}" for lock in recovery.locks]
            self.store.namespaces.ensure_namespace(namespace)
            by_skill: dict[str, list[TagInfo]] = {}
            for info in self.git.tags(namespace):
                by_skill.setdefault(info.name, []).append(info)
            for name, infos in by_skill.items():
                missing = [i for i in infos
                           if known.get((namespace, name, i.version)) != i.tag_sha]
                seen.update((namespace, name, i.version) for i in infos)
                if not missing:
                    continue
                latest = self._latest_choice(namespace, name, [i.version for i in infos])
                # Re-record the latest too, so the skill row and FTS follow it.
                todo = {i.version: i for i in missing}
                todo.update({i.version: i for i in infos if i.version == latest})
                self.store.catalogue.record_versions(
                    self._from_git(namespace, i, i.version == latest) for i in todo.values())
                report.added += len(missing)
        for key in set(known) - seen:
            self.store.catalogue.delete_version(*key)
            self.static_archives.remove_version(*key)  # nginx must not send it either
            report.removed += 1
        self._drop_empty_skills(known.keys() - seen)
        if full or report.added or report.removed:
            self.search_engine.reload()
        return report

    def fsck(self, repair: bool = False) -> FsckReport:
        """Check git against the index: stale lock files, tags main does not reach, every
        tag's version in the index and every indexed version tagged, and `git fsck --strict`
        (when C git is installed). With `repair`, fix what is safe: remove stale locks,
        fast-forward main to a tag left one commit ahead, remove orphan tags (never
        acknowledged), then reconcile the index with git (git wins).

        Safe while a server runs on the same home (all git work is under the namespace
        lock); a publish racing the check can show up as `not-indexed`.
        """
        report = FsckReport()
        indexed = self.store.catalogue.catalogue_tags()
        by_namespace = _by_namespace(indexed)
        in_git: dict[tuple[str, str, str], str] = {}
        namespaces = self.git.namespaces()
        report.namespaces = len(namespaces)
        for namespace in namespaces:
            recovery = self.git.recover(namespace, by_namespace.get(namespace, set()),
                                        repair=repair, every_tag=True)
            where = f"{namespace}.git"
            for lock in recovery.locks:
                report.findings.append(Finding(
                    namespace, "stale-lock", f"{where}/{lock.path}",
                    f"no writer owns it (age {lock.age:.0f} s): "
                    + ("removed" if lock.removed else "would remove"), lock.removed))
            orphans = {t.tag for t in recovery.tags if t.kind == "orphan-tag"}
            for tag in recovery.tags:
                report.findings.append(Finding(
                    namespace, tag.kind, f"{where}/refs/tags/{tag.tag}",
                    f"commit {tag.commit[:12]} {tag.action}", tag.fixed))
            for info in self.git.tags(namespace):
                if tag_name(info.name, info.version) not in orphans:  # reported above
                    in_git[(namespace, info.name, info.version)] = info.tag_sha
            checked = self.git.git_fsck(namespace)
            if checked is None:
                report.git_fsck = "skipped: no git binary"
            else:
                ok, output = checked
                if report.git_fsck != "problems":
                    report.git_fsck = "clean" if ok else "problems"
                if not ok:
                    report.findings.append(Finding(namespace, "git-fsck", where,
                                                   output or "git fsck --strict failed", False))
        report.tags, report.indexed = len(in_git), len(indexed)
        index_findings: list[Finding] = []
        for key in sorted(in_git.keys() - indexed.keys()):
            index_findings.append(Finding(key[0], "not-indexed", _ref(key),
                                          "tagged in git, missing from the index", repair))
        for key in sorted(indexed.keys() - in_git.keys()):
            index_findings.append(Finding(key[0], "index-only", _ref(key),
                                          "in the index, no tag in git", repair))
        for key in sorted(k for k in in_git.keys() & indexed.keys() if in_git[k] != indexed[k]):
            index_findings.append(Finding(
                key[0], "tag-mismatch", _ref(key),
                f"index has tag {indexed[key][:12]}, git has {in_git[key][:12]}", repair))
        if repair and index_findings:
            self.reconcile()  # git wins: adds, re-records and drops index rows
        report.findings += index_findings
        return report

    def _drop_empty_skills(self, removed: set[tuple[str, str, str]]) -> None:
        for namespace, name in {(ns, n) for ns, n, _ in removed}:
            skill = self.store.catalogue.get_skill(namespace, name)
            if skill and not self.store.catalogue.versions(skill.id):
                self.store.catalogue.delete_skill(namespace, name)

    def _from_git(self, namespace: str, info: TagInfo, is_latest: bool) -> NewVersion:
        bundle = self.git.read_tree(namespace, info.tree_sha)
        try:
            manifest = parse_manifest(bundle.skill_md(), dirname=info.name, strict=False)
        except InvalidSkill:
            # Stored before a rule changed: keep the version, with what can be read.
            manifest = Manifest(name=info.name, description="", body="", frontmatter={},
                                license=None, compatibility=None, metadata={},
                                allowed_tools=None, tags=[], version=info.version, warnings=())
        return _new_version(namespace, manifest, info.version, bundle, info.commit_sha,
                            info.tag_sha, info.tree_sha, info.tagged_at, is_latest=is_latest,
                            embed_sha256=self.embedder.text_digest(_skill_text(manifest)))


def _by_namespace(tags: dict[tuple[str, str, str], str]) -> dict[str, set[tuple[str, str]]]:
    """(name, version) pairs per namespace."""
    out: dict[str, set[tuple[str, str]]] = {}
    for namespace, name, version in tags:
        out.setdefault(namespace, set()).add((name, version))
    return out


def _ref(key: tuple[str, str, str]) -> str:
    return f"{key[0]}/{key[1]}@{key[2]}"
