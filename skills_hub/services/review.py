"""Required review of publishes: under a namespace's `review` release policy a publisher's
version is a pending release (stored on `refs/heads/releases/<name>/<id>`, checked and
reported, not `latest`, not in any index); a maintainer approves it, which releases it
exactly as a publish does with a `Reviewed-by:` trailer, or rejects it with a comment the
author reads. The review queue lists these and open proposals with their diffs."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from .. import metrics
from ..access.policy import PUBLISH, READ, REVIEW, allowed, role_on
from ..access.principal import Principal
from ..checks.pipeline import Report
from ..domain import ProposalRow, ReleaseRow, SkillRow, VersionRow
from ..errors import BadRequest, Conflict, Forbidden, NotFound, VersionExists
from ..learning.merge import unified_diff
from ..skill.bundle import Bundle
from ..skill.manifest import Manifest, parse_manifest
from .base import RegistryBase
from .common import MAX_EXCEPTION_REASON, _check_choice, ref_of
from .publishing import file_list

RELEASE_STATES = ("pending", "approved", "rejected", "withdrawn")


@dataclass(frozen=True)
class ReleaseView:
    release: ReleaseRow
    current_version: str | None
    diff: str


@dataclass(frozen=True)
class ProposalItem:
    row: ProposalRow
    diff: str


@dataclass(frozen=True)
class ReviewQueue:
    releases: list[ReleaseView]
    proposals: list[ProposalItem]


class ReviewMixin(RegistryBase):
    """Pending releases and the review queue."""

    def _not_waiting(self, namespace: str, name: str, version: str) -> None:
        """409 when `version` of the skill already waits for review."""
        if self.store.releases.pending_release(namespace, name, version) is not None:
            raise VersionExists(f"{name} {version} already waits for review",
                                extra={"hint": "wait for the decision, or publish a higher "
                                               "version"})

    def _hold(self, namespace: str, manifest: Manifest, version: str, bundle: Bundle,
              report: Report, principal: Principal) -> ReleaseRow:
        """Store a publisher's version as a pending release; nothing becomes `latest`."""
        self._not_waiting(namespace, manifest.name, version)
        release_id = secrets.token_hex(6)
        stored = self.git.propose(
            namespace, manifest.name, f"releases/{manifest.name}/{release_id}", None, bundle,
            message=_release_message(manifest.name, version, bundle),
            author=principal.git_identity)
        row = ReleaseRow(release_id, namespace, manifest.name, version, "pending",
                         principal.user_id, principal.actor, stored.commit_sha,
                         stored.tree_sha, bundle.content_hash(), report.verdict,
                         report.to_dict(), datetime.now(UTC).isoformat(timespec="seconds"),
                         None, None, None)
        self.store.releases.add_release(row)
        self.audit(principal, "release.submit", f"{namespace}/{manifest.name}@{version}",
                   namespace=namespace, detail={"release": release_id,
                                                "verdict": report.verdict})
        return row

    def approve_release(self, principal: Principal, release_id: str,
                        comment: str = "") -> ReleaseRow:
        """Release it as a publish would (re-checked now), authored by its publisher, with
        the approver in a `Reviewed-by:` trailer. Under the two-person rule the approver
        is not the author."""
        row = self._pending(principal, release_id)
        info = self.store.namespaces.namespace(row.namespace)
        if info is not None and info.two_person and row.author_id == principal.user_id:
            raise Forbidden("the two-person rule is on: someone other than the author "
                            "approves a release", extra={"hint": "ask another maintainer"})
        bundle = self.git.read_tree(row.namespace, row.tree_sha)
        author = self.account_principal(row.author)
        outcome = self._release(row.namespace, bundle, author=author, reviewer=principal,
                                version=row.version)
        metrics.observe_publish("approved")
        if not self.store.releases.decide_release(row.id, "approved", principal.actor,
                                                  comment.strip()[:MAX_EXCEPTION_REASON]):
            raise Conflict(f"release {row.id} was decided meanwhile")
        self.audit(principal, "release.approve", f"{row.namespace}/{row.name}@{row.version}",
                   namespace=row.namespace, detail={"release": row.id,
                                                    "commit": outcome.commit_sha})
        return self._release_row(row.id)

    def reject_release(self, principal: Principal, release_id: str,
                       comment: str) -> ReleaseRow:
        row = self._pending(principal, release_id)
        comment = comment.strip()[:MAX_EXCEPTION_REASON]
        if not comment:
            raise BadRequest("say why the release is rejected (comment); its author reads it")
        if not self.store.releases.decide_release(row.id, "rejected", principal.actor, comment):
            raise Conflict(f"release {row.id} was decided meanwhile")
        self.audit(principal, "release.reject", f"{row.namespace}/{row.name}@{row.version}",
                   namespace=row.namespace, detail={"release": row.id, "comment": comment})
        return self._release_row(row.id)

    def list_releases(self, principal: Principal, namespace: str, *,
                      state: str | None = None, mine: bool = False) -> list[ReleaseRow]:
        """Releases of a namespace: reviewers see all; publishers see their own."""
        if state is not None:
            _check_choice("state", state, RELEASE_STATES)
        if mine:
            self.require(principal, PUBLISH, namespace)
            return [r for r in self.store.releases.releases([namespace], state)
                    if r.author_id is not None and r.author_id == principal.user_id]
        self.require(principal, REVIEW, namespace)
        return self.store.releases.releases([namespace], state)

    def release_view(self, principal: Principal, release_id: str) -> ReleaseView:
        row = self._release_row(release_id)
        info = self.store.namespaces.namespace(row.namespace)
        ref = None if info is None else ref_of(info)
        if ref is None or not (allowed(principal, REVIEW, ref) or (
                row.author_id is not None and row.author_id == principal.user_id)):
            self.require(principal, READ, row.namespace)
            raise NotFound(f"no release {release_id!r}")
        return self._view(row)

    def review_queue(self, principal: Principal, namespace: str | None = None) -> ReviewQueue:
        """Pending releases and open proposals of every namespace the caller reviews."""
        if namespace is not None:
            self.require(principal, REVIEW, namespace)
            names = [namespace]
        else:
            names = self.reviewed_namespaces(principal)
        releases = [self._view(r) for r in self.store.releases.releases(names, "pending")]
        proposals = []
        for ns in names:
            for row in self.store.proposals.proposals(ns, None, "open", None):
                proposals.append(ProposalItem(row, self.proposal(ns, row.name, row.id,
                                                                 principal).diff))
        return ReviewQueue(releases, proposals)

    def _pending_pin(self, skill: SkillRow, version: str,
                     principal: Principal) -> VersionRow | None:
        """A release waiting for review, as a version row, for members of its namespace who
        pin it explicitly (to try it before approving); None for anyone else."""
        ref = self.namespace_ref(skill.namespace)
        row = None if version == "latest" else self.store.releases.pending_release(
            skill.namespace, skill.name, version)
        if row is None or ref is None or role_on(principal, ref) is None:
            return None
        bundle = self.git.read_tree(skill.namespace, row.tree_sha)
        manifest = parse_manifest(bundle.skill_md(), dirname=skill.name)
        return VersionRow(skill.id, row.version, row.commit_sha, "", row.tree_sha,
                          row.content_sha256, manifest.description, manifest.frontmatter,
                          file_list(bundle), row.created_at)

    def reviewed_namespaces(self, principal: Principal) -> list[str]:
        """Every namespace whose releases and proposals `principal` may decide."""
        return [ns.name for ns in self.store.namespaces.namespaces()
                if allowed(principal, REVIEW, ref_of(ns))]

    def waiting_count(self, names: list[str]) -> int:
        """Pending releases and open proposals in `names` (the review queue's length)."""
        return len(self.store.releases.releases(names, "pending")) + sum(
            len(self.store.proposals.proposals(ns, None, "open", None)) for ns in names)

    def _view(self, row: ReleaseRow) -> ReleaseView:
        current = self._latest_row(row.namespace, row.name)
        before = {} if current is None else self.bundle(row.namespace, current).files
        after = self.git.read_tree(row.namespace, row.tree_sha).files
        return ReleaseView(row, None if current is None else current.version,
                           unified_diff(before, after))

    def _pending(self, principal: Principal, release_id: str) -> ReleaseRow:
        row = self.store.releases.release(release_id)
        if row is None:
            raise NotFound(f"no release {release_id!r}")
        self.require(principal, REVIEW, row.namespace)
        if row.state != "pending":
            raise Conflict(f"release {release_id} is already {row.state}")
        return row

    def _release_row(self, release_id: str) -> ReleaseRow:
        row = self.store.releases.release(release_id)
        if row is None:
            raise NotFound(f"no release {release_id!r}")
        return row



def _release_message(name: str, version: str, bundle: Bundle) -> str:
    return (f"Release {name} {version} (waiting for review)\n\n"
            f"Skill-Name: {name}\nSkill-Version: {version}\n"
            f"Content-Sha256: {bundle.content_hash()}\n")

