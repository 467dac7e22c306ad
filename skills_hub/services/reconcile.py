"""Reconcile: bring the index in line with git (git wins)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidSkill
from ..skill.manifest import Manifest, parse_manifest
from ..store.gitstore import TagInfo
from ..store.index import NewVersion
from .base import RegistryBase
from .publishing import _new_version, _skill_text


@dataclass
class ReconcileReport:
    added: int = 0
    removed: int = 0
    repaired: list[str] = field(default_factory=list)


class ReconcileMixin(RegistryBase):
    """Rebuild or repair the index from the namespaces' git repos."""

    def reconcile(self, full: bool = False) -> ReconcileReport:
        """Bring the index in line with git (git wins); `full` rebuilds the catalogue."""
        report = ReconcileReport()
        if full:
            self.index.clear_catalogue()
        known = self.index.catalogue_tags()
        seen: set[tuple[str, str, str]] = set()
        for namespace in self.git.namespaces():
            report.repaired += [f"{namespace}/{t}" for t in self.git.repair(namespace)]
            self.index.ensure_namespace(namespace)
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
                self.index.record_versions(
                    self._from_git(namespace, i, i.version == latest) for i in todo.values())
                report.added += len(missing)
        for key in set(known) - seen:
            self.index.delete_version(*key)
            report.removed += 1
        self._drop_empty_skills(known.keys() - seen)
        if full or report.added or report.removed:
            self.search_engine.reload()
        return report

    def _drop_empty_skills(self, removed: set[tuple[str, str, str]]) -> None:
        for namespace, name in {(ns, n) for ns, n, _ in removed}:
            skill = self.index.get_skill(namespace, name)
            if skill and not self.index.versions(skill.id):
                self.index.delete_skill(namespace, name)

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
