"""Publishing: validate a bundle, choose its version, run the checks and the duplicate
check, and write it to git and then the index; repack namespaces now and then. A check
(`check_publish`) runs the very same steps up to the write and stops there.

Every write goes to git first (the source of truth) and then to the index; a rejected
request raises before anything is written."""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..access.policy import PUBLISH, RELEASE, allowed
from ..access.principal import Principal
from ..checks.findings import DANGEROUS
from ..checks.pipeline import Report, check_bundle
from ..domain import NamespaceInfo, NewVersion, VersionRow
from ..errors import DangerousSkill, HubError, InvalidSkill, Problem, VersionExists
from ..search.embedder import skill_text
from ..search.engine import Duplicate
from ..search.vectors import to_bytes
from ..skill import semver
from ..skill.bundle import Bundle, from_directory
from ..skill.manifest import Manifest, parse_manifest
from ..store.gitstore import StoreConflict, Unchanged
from .base import RegistryBase
from .common import _new_report, check_namespace, ref_of
from .outcomes import author_keys
from .releases import _active

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MAINTAIN_EVERY = 64  # publishes to a namespace between two repacks
# Publishes embed their text here while the checks and the git write go on. Measured on
# 2 cores (bench/README.md, issue 15): the encode of one text holds the GIL for most of its
# ~24 ms, so it hardly overlaps the checks (pure Python) but does overlap the git write's
# fsyncs, which wait without the GIL.
_EMBEDDING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="publish-embed")


@dataclass(frozen=True)
class PublishOutcome:
    # "published", "unchanged", "pending" (waits for review), or "checked": a check
    # (`check_publish`) found it publishable and stored nothing; `for_review` then says
    # whether a publish would be held for review ("pending") rather than published.
    status: str
    namespace: str
    name: str
    version: str
    commit_sha: str
    tag_sha: str
    content_sha256: str
    warnings: tuple[Problem, ...] = ()
    report: Report | None = None  # None when unchanged content skipped the checks
    verdict: str = "safe"
    # Readable skills whose text is at least 0.9 similar; None when the embedding model was
    # not loaded yet (the check did not run), () when it ran and found none.
    duplicates: tuple[Duplicate, ...] | None = None
    release: str | None = None  # the pending release's id when status is "pending"
    for_review: bool = False  # a publish of it waits for review ("pending", and "checked")


@dataclass(frozen=True)
class _Similar:
    """A candidate's text as search embeds it, its vector (None while the model is not
    loaded) and the readable skills nearly the same (None: not looked up)."""

    text: str
    vector: np.ndarray | None
    duplicates: tuple[Duplicate, ...] | None


@dataclass(frozen=True)
class _Candidate:
    """What a publish (or a check) knows before it stores: the manifest, the version chosen,
    the checks report, and its near-duplicate lookup, which was started before the checks
    and is waited for by calling `similar` (None: not asked for)."""

    manifest: Manifest
    version: str
    report: Report
    similar: Callable[[], _Similar] | None = None


class PublishingMixin(RegistryBase):
    """Publish a bundle (or a folder of them) as a new version."""

    def publish(self, namespace: str, bundle: Bundle, *, principal: Principal,
                version: str | None = None, canary_share: float | None = None
                ) -> PublishOutcome:
        """Validate `bundle` and store it as a new version of its skill in `namespace`.

        With `canary_share` the version goes out as a canary to that share of clients (by
        client id) and the stable version stays `latest` until the canary is decided; a
        plain publish supersedes any active canary of the skill. Under the namespace's
        `review` release policy a publisher's version is checked and stored as a pending
        release instead (status "pending"), which a maintainer approves or rejects; with
        the two-person rule on, every account's version waits for someone else."""
        try:
            check_namespace(namespace)
            if self._held_for_review(namespace, principal):
                outcome = self._submit(namespace, bundle, principal, version)
            else:
                outcome = self._release(namespace, bundle, author=principal, reviewer=None,
                                        version=version, canary_share=canary_share)
        except HubError as exc:
            metrics.observe_publish(exc.code)
            raise
        metrics.observe_publish(outcome.status)
        return outcome

    def check_publish(self, namespace: str, bundle: Bundle, *, principal: Principal,
                      version: str | None = None) -> PublishOutcome:
        """What `publish` would do with `bundle`, storing nothing: the same rights check,
        validation, version choice, checks pipeline and near-duplicate lookup, with the
        same errors (422 with the report when the checks refuse it, 409 for the version).
        Status "checked" (`for_review`: a publish would wait for review), or "unchanged"."""
        check_namespace(namespace)
        held = self._held_for_review(namespace, principal)
        candidate = self._candidate(namespace, bundle, version, held=held, reader=principal)
        if isinstance(candidate, PublishOutcome):
            return candidate
        manifest, chosen, report = candidate.manifest, candidate.version, candidate.report
        assert candidate.similar is not None
        similar = candidate.similar()
        return PublishOutcome("checked", namespace, manifest.name, chosen, "", "",
                              bundle.content_hash(), manifest.warnings, report, report.verdict,
                              similar.duplicates, for_review=held)

    def _held_for_review(self, namespace: str, principal: Principal) -> bool:
        """Whether `principal`'s version waits for review in `namespace` (its release
        policy); the access policy's error when `principal` may not publish there."""
        info = self._publish_rights(namespace, principal)
        return info is not None and info.release_policy == "review" \
            and principal.kind != "console" \
            and (info.two_person or not allowed(principal, RELEASE, ref_of(info)))

    def _publish_rights(self, namespace: str, principal: Principal) -> NamespaceInfo | None:
        """The namespace if `principal` may publish there. The operator's console may also
        publish into a namespace that does not exist yet (seeding, imports)."""
        if principal.kind == "console":
            return self.store.namespaces.namespace(namespace)
        return self.require(principal, PUBLISH, namespace)

    def _indexed(self, namespace: str, name: str, version: str) -> bool:
        skill = self.store.catalogue.get_skill(namespace, name)
        return skill is not None and self.store.catalogue.get_version(skill.id,
                                                                      version) is not None

    def publishable_namespaces(self, principal: Principal) -> list[NamespaceInfo]:
        """The namespaces `principal` may publish to, by name."""
        return [info for info in self.store.namespaces.namespaces()
                if allowed(principal, PUBLISH, ref_of(info))]

    def _submit(self, namespace: str, bundle: Bundle, principal: Principal,
                version: str | None) -> PublishOutcome:
        """A publish that waits for review: validated and checked like any, then held."""
        candidate = self._candidate(namespace, bundle, version, held=True)
        if isinstance(candidate, PublishOutcome):
            return candidate
        manifest, chosen, report = candidate.manifest, candidate.version, candidate.report
        held = self._hold(namespace, manifest, chosen, bundle, report, principal)
        return PublishOutcome("pending", namespace, manifest.name, chosen, held.commit_sha,
                              "", held.content_sha256, manifest.warnings, report,
                              report.verdict, release=held.id, for_review=True)

    def _candidate(self, namespace: str, bundle: Bundle, version: str | None, *,
                   held: bool = False, reader: Principal | None = None
                   ) -> _Candidate | PublishOutcome:
        """The manifest, the version chosen and the checks report of a new version; or the
        "unchanged" outcome when the content is the latest version's. Everything a publish
        (or a check) does before it stores; `held`: the version would wait for review.
        With `reader`, the near-duplicate lookup among what it may read runs beside the
        checks (`_Candidate.similar` waits for it)."""
        manifest = parse_manifest(bundle.skill_md(), dirname=bundle.root_name,
                                  strict=self.settings.strict)
        chosen = self._choose_version(namespace, manifest, version)
        latest = self._latest_row(namespace, manifest.name)
        if latest is not None and latest.content_sha256 == bundle.content_hash():
            return self._unchanged(namespace, manifest, latest)
        if held:  # before the checks run; review._hold asks again at the write (a race)
            self._not_waiting(namespace, manifest.name, chosen)
        similar = None if reader is None else self._similar(namespace, manifest, reader)
        return _Candidate(manifest, chosen, self._checked(namespace, manifest, bundle), similar)

    def _similar(self, namespace: str, manifest: Manifest,
                 principal: Principal) -> Callable[[], _Similar]:
        """Start the near-duplicate lookup of a candidate among what `principal` may read;
        the call returned waits for it. The text's encode runs on another thread
        meanwhile; while the model loads there is nothing to wait for (the embed worker
        fills the vector in later, as for any version recorded without one)."""
        text = _skill_text(manifest)
        engine = self.search_engine
        encoding: Future[np.ndarray | None] | None = \
            _EMBEDDING.submit(engine.embed_now, text) if self.embedder.ready else None

        def finish() -> _Similar:
            vector = None if encoding is None else encoding.result()
            duplicates = None if vector is None else tuple(engine.duplicates(
                vector, readable=principal.readable | {namespace},
                exclude=(namespace, manifest.name)))
            return _Similar(text, vector, duplicates)

        return finish

    def _checked(self, namespace: str, manifest: Manifest, bundle: Bundle) -> Report:
        """The publish pipeline's report; 422 with it when the verdict is dangerous."""
        report = check_bundle(bundle, self.check_options,
                              exceptions=self._exception_map(namespace, manifest.name))
        metrics.observe_verdict(report.verdict, "publish")
        if report.verdict == DANGEROUS:
            flagged = report.flagged()
            rules = ", ".join(sorted({f.rule for f in flagged}))
            raise DangerousSkill(
                f"{manifest.name} was refused by the publish checks ({rules})",
                extra={"report": report.to_dict(),
                       "hint": "fix the findings listed in the report; a namespace owner can "
                               "record a reviewed exception for a rule that is a false alarm"})
        return report

    def _release(self, namespace: str, bundle: Bundle, *, author: Principal,
                 reviewer: Principal | None, version: str | None,
                 canary_share: float | None = None, _again: bool = False) -> PublishOutcome:
        """Write a version: git (commit authored by `author`, `Reviewed-by:` the reviewer),
        then the index. Rights were checked by the caller."""
        candidate = self._candidate(namespace, bundle, version, reader=author)
        if isinstance(candidate, PublishOutcome):
            return candidate
        manifest, chosen, report = candidate.manifest, candidate.version, candidate.report
        assert candidate.similar is not None
        engine = self.search_engine
        try:
            published = self.git.publish(
                namespace, manifest.name, chosen, bundle,
                message=_commit_message(manifest, chosen, bundle, reviewer),
                author=author.git_identity)
        except Unchanged:
            return self._unchanged(namespace, manifest)
        except VersionExists:
            if _again or self._indexed(namespace, manifest.name, chosen):
                raise
            # Git has the version and the catalogue not: a publish cut off between its git
            # write and its catalogue write (a node killed, here or elsewhere), or one that
            # is just finishing on another node. Reconcile the namespace (git wins, as at a
            # node's start: it finishes a cut-off tag or records it) and judge this
            # publish again against what is there now.
            self.reconcile(only=namespace)
            return self._release(namespace, bundle, author=author, reviewer=reviewer,
                                 version=version, canary_share=canary_share, _again=True)
        # The version is in git: wait for its text's vector (encoded meanwhile) and the
        # near-duplicates (the publish answer warns of them).
        similar = candidate.similar()
        text, vector = similar.text, similar.vector
        stable = self.store.catalogue.get_skill(namespace, manifest.name)
        canary = canary_share is not None and stable is not None
        new = _new_version(namespace, manifest, chosen, bundle, published.commit_sha,
                           published.tag_sha, published.tree_sha, published.tagged_at,
                           is_latest=not canary, embed_sha256=self.embedder.text_digest(text))
        # One transaction: the version row, its report, its text's vector and (first time)
        # the namespace.
        skill_id = self.store.catalogue.record_version(
            new, _new_report(new.namespace, new.name, new.version, new.content_sha256, report,
                             "publish"),
            vector=None if vector is None else (self.embedder.skill_model_id, to_bytes(vector)))
        # Its author's own outcome reports on it will not count (docs/LEARNING.md).
        self.store.outcomes.add_authors(namespace, new.name, chosen, author_keys(author))
        if canary and stable is not None and canary_share is not None:
            self.store.proposals.start_canary(namespace, new.name, chosen, stable.latest_version,
                                              canary_share)
        else:
            engine.indexed(skill_id, new.embed_sha256, vector)
            # Git refuses a version below the newest tag, but two publishes of one skill
            # (two nodes, two threads) may write the catalogue in the other order: when a
            # newer version's row is already there, `latest` is chosen again from them all.
            newest = semver.latest([v.version for v in self.store.catalogue.versions(skill_id)])
            if newest is not None and newest != chosen:
                self._refresh_latest(namespace, new.name)
            elif vector is not None:
                self._close_demands(namespace, new.name, chosen, vector)
            active = _active(self.store.proposals.canaries(namespace, new.name))
            if active is not None:
                self.store.proposals.finish_canary(namespace, new.name, active.version,
                                                   "superseded",
                                         {"reason": f"{chosen} was published"})
        self._count_publish(namespace)
        self.audit(author, "publish", f"{namespace}/{manifest.name}@{chosen}",
                   namespace=namespace, detail={
                       "verdict": report.verdict, "commit": published.commit_sha,
                       "reviewed_by": None if reviewer is None else reviewer.actor,
                       "canary_share": canary_share})
        return PublishOutcome("published", namespace, manifest.name, chosen,
                              published.commit_sha, published.tag_sha, new.content_sha256,
                              manifest.warnings, report, report.verdict, similar.duplicates)

    def _close_demands(self, namespace: str, name: str, version: str,
                       vector: np.ndarray) -> None:
        """Close the open demands the new `latest` answers (services.demands). The version
        is stored by now: a failure here is logged, never the publish's."""
        try:
            self._answer_demands(namespace, name, version, vector)
        except Exception:
            log.exception("closing demands answered by %s/%s %s failed", namespace, name,
                          version)

    def _count_publish(self, namespace: str) -> None:
        """Repack a namespace in the background every MAINTAIN_EVERY publishes."""
        with self._maintenance_guard:
            count = self._since_maintenance.get(namespace, 0) + 1
            self._since_maintenance[namespace] = 0 if count >= MAINTAIN_EVERY else count
        if count >= MAINTAIN_EVERY:
            threading.Thread(target=self._maintain, args=(namespace,), daemon=True,
                             name=f"maintain-{namespace}").start()

    def _maintain(self, namespace: str) -> None:
        try:
            log.info("maintained %s: %s", namespace, self.git.maintain(namespace))
        except (OSError, subprocess.SubprocessError):
            log.exception("maintenance of %s failed; the repo is intact, only unpacked",
                          namespace)

    def publish_tree(self, namespace: str, folder: Path, *,
                     principal: Principal) -> Iterator[PublishOutcome]:
        """Publish every skill folder directly below `folder` (operator use: seed)."""
        for skill_dir in sorted(p for p in folder.iterdir() if (p / "SKILL.md").is_file()):
            bundle = from_directory(skill_dir, self.settings.limits)
            yield self.publish(namespace, bundle, principal=principal)

    def _choose_version(self, namespace: str, manifest: Manifest, asked: str | None) -> str:
        skill = self.store.catalogue.get_skill(namespace, manifest.name)
        existing = [v.version for v in self.store.catalogue.versions(skill.id)] if skill else []
        # The newest version, which is not `latest` while a canary or deprecation holds
        # `latest` back: versions only ever increase.
        newest = semver.latest(existing)
        latest = semver.parse(newest) if newest else None
        field_name, text = ("version", asked) if asked else ("metadata.version", manifest.version)
        if text is None:
            return str(latest.next_patch()) if latest else "0.1.0"
        parsed = semver.parse(text)
        if parsed is None:
            raise InvalidSkill("the version is not valid", problems=[semver.problem(field_name,
                                                                                    text)])
        if latest is not None and parsed.sort_key() < latest.sort_key():
            raise VersionExists(
                f"{manifest.name} {text} is older than the latest version {latest}",
                extra={"hint": f"publish a version above {latest}", "latest": str(latest)})
        # Build metadata (+...) has no precedence: 1.0.0+b2 is not newer than 1.0.0. The very
        # same version string goes on (unchanged content is a no-op; the tag refuses the rest).
        equal = semver.same_precedence(parsed, existing)
        if equal and str(parsed) not in equal:
            raise VersionExists(
                f"{manifest.name} {text} equals the existing version {equal[0]} in precedence "
                "(build metadata after '+' does not count)",
                extra={"hint": f"publish a version above {latest}, e.g. {latest.next_patch()}"
                       if latest is not None else "publish a higher version",
                       "existing": equal[0], "latest": str(latest)})
        return str(parsed)

    def _unchanged(self, namespace: str, manifest: Manifest,
                   row: VersionRow | None = None) -> PublishOutcome:
        row = row or self._latest_row(namespace, manifest.name)
        if row is None:  # git has it but the index lags (a crash between the writes)
            self.reconcile()
            row = self._latest_row(namespace, manifest.name)
        if row is None:
            raise StoreConflict(f"{namespace}/{manifest.name} is on main but has no version tag")
        verdict = self.store.reports.verdicts(namespace, manifest.name).get(row.version,
                                                                            "unchecked")
        return PublishOutcome("unchanged", namespace, manifest.name, row.version,
                              row.commit_sha, row.tag_sha, row.content_sha256, manifest.warnings,
                              verdict=verdict)

    def _latest_row(self, namespace: str, name: str) -> VersionRow | None:
        skill = self.store.catalogue.get_skill(namespace, name)
        return self.store.catalogue.get_version(skill.id, skill.latest_version) if skill else None


def _new_version(namespace: str, manifest: Manifest, version: str, bundle: Bundle,
                 commit_sha: str, tag_sha: str, tree_sha: str, tagged_at: int, *,
                 is_latest: bool, embed_sha256: str | None = None) -> NewVersion:
    files = file_list(bundle)
    return NewVersion(
        namespace=namespace, name=manifest.name, version=version, commit_sha=commit_sha,
        tag_sha=tag_sha, tree_sha=tree_sha, content_sha256=bundle.content_hash(),
        description=manifest.description, frontmatter=manifest.frontmatter, files=files,
        published_at=datetime.fromtimestamp(tagged_at, UTC).isoformat(timespec="seconds"),
        tags=", ".join(manifest.tags), body=manifest.body, is_latest=is_latest,
        embed_sha256=embed_sha256)


def file_list(bundle: Bundle) -> list[dict[str, Any]]:
    """A version's files as the index records them."""
    hashes = bundle.file_hashes()
    return [{"path": p, "size": len(bundle.files[p]), "sha256": hashes[p],
             "executable": p in bundle.executables} for p in sorted(bundle.files)]


def _skill_text(manifest: Manifest) -> str:
    """What search embeds for a version (see search.embedder.skill_text)."""
    return skill_text(manifest.name, manifest.description, ", ".join(manifest.tags),
                      manifest.body)


def _commit_message(manifest: Manifest, version: str, bundle: Bundle,
                    reviewer: Principal | None = None) -> str:
    reviewed = "" if reviewer is None or reviewer.git_identity is None else \
        f"Reviewed-by: {reviewer.git_identity}\n"
    return (f"Publish {manifest.name} {version}\n\n"
            f"Skill-Name: {manifest.name}\nSkill-Version: {version}\n"
            f"Content-Sha256: {bundle.content_hash()}\n{reviewed}")
