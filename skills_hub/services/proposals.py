"""Proposals, the learning loop's gate: agents' refinements, their review (or the `auto`
policy), and accepting one as a new version."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import metrics
from ..access.policy import ADMIN, PROPOSE, REVIEW
from ..access.principal import OPERATOR, Principal
from ..checks.findings import DANGEROUS
from ..checks.pipeline import Report, check_bundle
from ..domain import ProposalRow
from ..errors import (
    BadRequest,
    Conflict,
    DangerousSkill,
    Forbidden,
    InvalidSkill,
    NotFound,
    Problem,
)
from ..learning import gate
from ..learning.edits import apply_edits, parse_edits
from ..learning.merge import rebase, unified_diff
from ..skill import semver
from ..skill.bundle import Bundle
from ..skill.manifest import parse_manifest
from .base import RegistryBase
from .catalogue import version_of
from .common import MAX_EXCEPTION_REASON, _check_choice

MAX_EVIDENCE_BYTES = 64 * 1024
MAX_REASONING = 10_000
PROPOSAL_STATES = ("open", "accepted", "rejected")
REVIEW_POLICIES = ("review", "auto")


@dataclass(frozen=True)
class ProposalOutcome:
    proposal: ProposalRow
    created: bool      # False: the edits agreed with an open proposal, which gained support
    supported: bool    # the caller's support was counted (False: it already was)
    policy_note: str | None  # the `auto` policy's reason to accept or to leave for review


@dataclass(frozen=True)
class ProposalView:
    proposal: ProposalRow
    diff: str  # unified diff against the version it applies to


@dataclass(frozen=True)
class ProposalFields:
    base_version: str
    edits: list[Any]
    evidence: dict[str, Any]
    reasoning: str


class ProposalsMixin(RegistryBase):
    """Propose, list, review and accept refinements."""

    def propose(self, namespace: str, name: str, payload: object,
                principal: Principal) -> ProposalOutcome:
        """An agent's refinement: apply its edits to `base_version`, rebase them onto the
        latest version when the base is stale, run the whole publish pipeline, and store
        the result on `refs/heads/proposals/<name>/<id>`. Edits whose result matches an
        open proposal add their support to it instead. Nothing is stored on any error."""
        self.require(principal, PROPOSE, namespace)
        reporter = self._reporter(principal, "proposals")
        fields = _proposal_fields(payload)
        detail = self.get_skill(namespace, name, principal)
        base = version_of(detail, fields.base_version)
        edits = parse_edits(fields.edits, skill_name=name)
        base_bundle = self.bundle(namespace, base)
        proposed = apply_edits(base_bundle.files, edits)
        target = self._newest_row(detail)
        if target.version != base.version:
            proposed = rebase(base_bundle.files, proposed, self.bundle(namespace, target).files)
        bundle = Bundle(proposed, executables=frozenset(
            p for p in self.bundle(namespace, target).executables | base_bundle.executables
            if p in proposed))
        if bundle.content_hash() == target.content_sha256:
            raise InvalidSkill(f"the edits leave {namespace}/{name} {target.version} unchanged",
                               extra={"hint": "propose edits that change the skill"})
        report = self._judge(namespace, name, bundle)
        existing = self.store.proposals.open_proposal_like(namespace, name, bundle.content_hash())
        if existing is not None:
            counted = self.store.proposals.add_support(existing.id, reporter, fields.evidence)
            return self._after_proposal(self._proposal(existing.id), created=False,
                                        supported=counted)
        proposal_id = secrets.token_hex(6)
        stored = self.git.propose(namespace, name, f"proposals/{name}/{proposal_id}",
                                  target.commit_sha, bundle,
                                  message=f"proposal {proposal_id} for {name} "
                                          f"{target.version}\n\n{fields.reasoning}\n")
        row = ProposalRow(
            proposal_id, namespace, name, base.version, target.version, "open", reporter,
            principal.actor, fields.edits, fields.evidence, fields.reasoning,
            bundle.content_hash(), stored.commit_sha, stored.tree_sha, report.verdict,
            report.to_dict(), 1, datetime.now(UTC).isoformat())
        self.store.proposals.add_proposal(row)
        self.audit(principal, "proposal.create", f"{namespace}/{name}#{proposal_id}",
                   namespace=namespace, detail={"verdict": report.verdict})
        return self._after_proposal(row, created=True, supported=True)

    def _after_proposal(self, row: ProposalRow, *, created: bool,
                        supported: bool) -> ProposalOutcome:
        """Apply the namespace's policy: `auto` may accept (always as a canary)."""
        note = None
        if row.status == "open" and self.store.namespaces.review_policy(row.namespace) == "auto":
            stats = self.store.outcomes.version_stats(row.namespace, row.name).get(row.base_version)
            counted = stats.successes + stats.failures if stats else 0
            accept, note = gate.auto_accept(row.verdict, row.support, counted,
                                            stats.ema if stats else None)
            if accept:
                row = self._accept(row, by="policy:auto", comment=note, version=None,
                                   canary_share=gate.AUTO_CANARY_SHARE)
        return ProposalOutcome(row, created, supported, note)

    def proposal(self, namespace: str, name: str, proposal_id: str,
                 principal: Principal) -> ProposalView:
        """One proposal with its diff against the version it applies to."""
        self.check_readable(namespace, principal)
        row = self._proposal(proposal_id)
        if (row.namespace, row.name) != (namespace, name):
            raise _no_proposal(proposal_id)
        detail = self.get_skill(namespace, name, principal)
        before = self.bundle(namespace, version_of(detail, row.applies_to)).files
        after = self.git.read_tree(namespace, row.tree_sha).files
        return ProposalView(row, unified_diff(before, after))

    def proposals(self, namespace: str, name: str | None, principal: Principal, *,
                  status: str | None = None, mine: bool = False) -> list[ProposalRow]:
        """A skill's (or a namespace's) proposals; `mine`: those the caller's token sent,
        so a proposing agent learns what became of them and why."""
        self.check_readable(namespace, principal)
        if status is not None:
            _check_choice("status", status, PROPOSAL_STATES)
        proposer = self._reporter(principal, "your proposals") if mine else None
        return self.store.proposals.proposals(namespace, name, status, proposer)

    def review(self, namespace: str, name: str, proposal_id: str, decision: str,
               comment: str, principal: Principal, *, version: str | None = None,
               canary_share: float | None = None) -> ProposalRow:
        """A maintainer accepts (a new version, optionally as a canary) or rejects."""
        info = self.require(principal, REVIEW, namespace)
        _check_choice("decision", decision, ("accept", "reject"))
        if version is not None and not isinstance(version, str):
            raise BadRequest("version is a string such as 1.2.0")
        if canary_share is not None and not 0 < canary_share < 1:
            raise BadRequest("canary is a share of clients between 0 and 1, e.g. 0.1")
        row = self._proposal(proposal_id)
        if (row.namespace, row.name) != (namespace, name):
            raise _no_proposal(proposal_id)
        if row.status != "open":
            raise Conflict(f"proposal {proposal_id} is already {row.status}")
        if info.two_person and row.proposer_namespace == principal.actor:
            raise Forbidden("the two-person rule is on: someone other than the proposer "
                            "decides a proposal", extra={"hint": "ask another maintainer"})
        by = principal.actor
        comment = comment.strip()[:MAX_EXCEPTION_REASON]
        if decision == "reject":
            if not comment:
                raise BadRequest("say why the proposal is rejected (comment); the proposing "
                                 "agent reads it")
            if not self.store.proposals.decide_proposal(proposal_id, "rejected", by, comment, None):
                raise Conflict(f"proposal {proposal_id} was decided meanwhile")
            self.audit(principal, "proposal.reject", f"{namespace}/{name}#{proposal_id}",
                       namespace=namespace, detail={"comment": comment})
            return self._proposal(proposal_id)
        accepted = self._accept(row, by=by, comment=comment, version=version,
                                canary_share=canary_share, reviewer=principal)
        self.audit(principal, "proposal.accept", f"{namespace}/{name}#{proposal_id}",
                   namespace=namespace, detail={"version": accepted.version})
        return accepted

    def _accept(self, row: ProposalRow, *, by: str, comment: str, version: str | None,
                canary_share: float | None, reviewer: Principal | None = None) -> ProposalRow:
        """Publish the proposal's content as the next version (rebased again if the skill
        moved since), through the whole pipeline; then close the proposal."""
        detail = self.get_skill(row.namespace, row.name, OPERATOR)
        proposed = self.git.read_tree(row.namespace, row.tree_sha)
        newest = self._newest_row(detail)
        files = dict(proposed.files)
        if newest.version != row.applies_to:
            applied = self.bundle(row.namespace, version_of(detail, row.applies_to)).files
            files = rebase(applied, files, self.bundle(row.namespace, newest).files)
        chosen = version or str(semver.parse(newest.version).next_patch())  # type: ignore[union-attr]
        outcome = self._release(row.namespace, Bundle(files, proposed.executables),
                                author=self.account_principal(row.proposer_namespace),
                                reviewer=reviewer, version=chosen, canary_share=canary_share)
        # The proposer's reports on the version its edit made are its own work's rating.
        self.store.outcomes.add_authors(row.namespace, row.name, outcome.version,
                                        [row.proposer])
        if not self.store.proposals.decide_proposal(row.id, "accepted", by, comment,
                                                    outcome.version):
            raise Conflict(f"proposal {row.id} was decided meanwhile")
        return self._proposal(row.id)

    def set_review_policy(self, namespace: str, policy: str, principal: Principal) -> None:
        self.require(principal, ADMIN, namespace)
        _check_choice("policy", policy, REVIEW_POLICIES)
        self.store.namespaces.set_review_policy(namespace, policy)
        self.audit(principal, "namespace.review_policy", namespace, namespace=namespace,
                   detail={"review_policy": policy})

    def _proposal(self, proposal_id: str) -> ProposalRow:
        row = self.store.proposals.get_proposal(proposal_id)
        if row is None:
            raise _no_proposal(proposal_id)
        return row

    def _judge(self, namespace: str, name: str, bundle: Bundle) -> Report:
        """The publish pipeline on content that is not stored yet; refuse `dangerous`."""
        manifest = parse_manifest(bundle.skill_md(), dirname=name, strict=self.settings.strict)
        if manifest.name != name:
            raise InvalidSkill(f"a proposal cannot rename {name} to {manifest.name}")
        report = check_bundle(bundle, self.check_options,
                              exceptions=self._exception_map(namespace, name))
        metrics.observe_verdict(report.verdict, "proposal")
        if report.verdict == DANGEROUS:
            rules = ", ".join(sorted({f.rule for f in report.flagged()}))
            raise DangerousSkill(f"the proposed {name} was refused by the checks ({rules})",
                                 extra={"report": report.to_dict()})
        return report


def _no_proposal(proposal_id: str) -> NotFound:
    """The one 404 for a proposal id: unknown, or another skill's (indistinguishable, so ids
    cannot be probed across skills and namespaces)."""
    return NotFound(f"no proposal {proposal_id!r}")


def _proposal_fields(payload: object) -> ProposalFields:
    """The proposal body's fields, every problem reported at once."""
    if not isinstance(payload, dict):
        raise BadRequest('send {"base_version", "edits", "evidence", "reasoning"}')
    problems = []
    base = payload.get("base_version")
    if not isinstance(base, str) or not base:
        problems.append(Problem("base_version", "missing",
                                "the version the edits were written against, e.g. 1.2.0"))
    edits = payload.get("edits")
    if not isinstance(edits, list) or not edits:
        problems.append(Problem("edits", "missing or empty",
                                "a list of {op, target, content} or {old_string, new_string}"))
    evidence = payload.get("evidence", {})
    if not isinstance(evidence, dict) or len(json.dumps(evidence)) > MAX_EVIDENCE_BYTES:
        problems.append(Problem("evidence", f"not an object under {MAX_EVIDENCE_BYTES} bytes",
                                "outcome counts, a failure summary, trajectory excerpts"))
    reasoning = payload.get("reasoning", "")
    if not isinstance(reasoning, str) or len(reasoning) > MAX_REASONING:
        problems.append(Problem("reasoning", f"not a text under {MAX_REASONING} characters",
                                "why the edits make the skill better"))
    if problems:
        raise BadRequest("the proposal is incomplete", problems=problems)
    assert isinstance(base, str) and isinstance(edits, list) and isinstance(evidence, dict)
    return ProposalFields(base, edits, evidence, str(reasoning))
