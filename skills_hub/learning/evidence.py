"""Evidence for training: the registry's outcome reports, proposals and review decisions as
JSON lines, each with a quality tier, and every secret the checks know redacted. Pure: rows
in, dicts out; `services.evidence` reads the rows page by page and decides who may export.

Tiers (the thresholds below; docs/LEARNING.md, "Evidence export"):

    outcome   gold      success with signal score >= GOLD_SCORE (0.6): the user accepted it
                        or carried on, without heavy edits or retries
              silver    success with score >= SILVER_SCORE (0.3): a plain success
              bronze    success with a lower score (heavily edited, retried), and infra
                        errors (the agent's tooling failed: nothing said about the skill)
              rejected  failure: a negative example
              a report the registry stored but did not count (`discount`: sent by an
              author of the version, a task reported again, a client past its cap) is
              bronze at most
    proposal  gold      accepted, and the version it became did well: >= PROVEN_OUTCOMES (10)
    review              counted outcomes with a success rate >= PROVEN_RATE (0.8)
              silver    accepted (approved), the version not yet judged either way
              bronze    still open (a proposal), or withdrawn (a release)
              rejected  rejected by the reviewer, or accepted and the version then did badly
                        (>= 10 counted outcomes, success rate < FAILED_RATE, 0.5)

Redaction: every text an agent or a reviewer wrote (evidence, reasoning, edits, diffs,
comments, client agent and model names) passes through the checks' `secret` rules
(`checks.threats.find_secrets`, placeholders left alone as the checks leave them); each hit
becomes `[REDACTED:<rule id>]` (a private key from its header to its END line) and the line's
`redactions` counts them. No token digest, client id, account name or report id leaves: an
outcome line's `id` is a digest of the reporter and the report's id, stable across exports.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..checks.threats import find_secrets
from ..domain import OutcomeRecord, ProposalRow, ReleaseRow, VersionStats

KINDS = ("outcome", "proposal", "review")
TIERS = ("gold", "silver", "bronze", "rejected")
GOLD_SCORE = 0.6
SILVER_SCORE = 0.3
PROVEN_OUTCOMES = 10
PROVEN_RATE = 0.8
FAILED_RATE = 0.5
PRIVATE_KEY = "secret.private-key"
KEY_END = "-----END"
CACHED_TEXT = 200  # texts up to this long (agent and model names) are redacted once each


def outcome_tier(outcome: str, score: float | None, discount: str | None = None) -> str:
    """An outcome report's tier by its outcome and signal score; a discounted report (not
    counted by the registry) is bronze at most."""
    if outcome == "failure":
        return "rejected"
    if outcome != "success" or score is None or discount is not None:
        return "bronze"
    if score >= GOLD_SCORE:
        return "gold"
    return "silver" if score >= SILVER_SCORE else "bronze"


def decision_tier(decision: str, stats: VersionStats | None) -> str:
    """The tier of a proposal (open, accepted, rejected) or a decided release (approved,
    rejected, withdrawn), by the decision and how its version did since."""
    if decision == "rejected":
        return "rejected"
    if decision not in ("accepted", "approved"):
        return "bronze"
    judged = version_judgement(stats)
    return {"well": "gold", "badly": "rejected"}.get(judged or "", "silver")


def version_judgement(stats: VersionStats | None) -> str | None:
    """`well`, `badly`, or None while a version has fewer than PROVEN_OUTCOMES counted
    outcomes (or a middling success rate)."""
    if stats is None or stats.successes + stats.failures < PROVEN_OUTCOMES:
        return None
    rate = stats.successes / (stats.successes + stats.failures)
    if rate >= PROVEN_RATE:
        return "well"
    return "badly" if rate < FAILED_RATE else None


@functools.lru_cache(maxsize=4096)
def _redact_short(text: str) -> tuple[str, int]:
    return _redact(text)


def redact_text(text: str) -> tuple[str, int]:
    """`text` with each secret replaced by `[REDACTED:<rule id>]`, and how many were."""
    return _redact_short(text) if len(text) <= CACHED_TEXT else _redact(text)


def _redact(text: str) -> tuple[str, int]:
    spans: list[tuple[int, int, str]] = []
    for start, end, rule_id in find_secrets(text):
        if rule_id == PRIVATE_KEY:  # the header is what the rule sees; the key follows it
            close = text.find(KEY_END, end)
            tail = text.find("-----", close + len(KEY_END)) if close >= 0 else -1
            end = tail + 5 if tail >= 0 else len(text)
        if spans and start < spans[-1][1]:  # overlapping hits are one redaction
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]), spans[-1][2])
        else:
            spans.append((start, end, rule_id))
    if not spans:
        return text, 0
    parts, last = [], 0
    for start, end, rule_id in spans:
        parts += [text[last:start], f"[REDACTED:{rule_id}]"]
        last = end
    parts.append(text[last:])
    return "".join(parts), len(spans)


@dataclass
class Redactor:
    """Redacts the texts of one line and counts what it redacted."""

    count: int = 0

    def text(self, value: str | None) -> str | None:
        if not value:
            return value
        clean, hits = redact_text(value)
        self.count += hits
        return clean

    def value(self, value: Any) -> Any:
        """Every string inside a JSON value (keys included) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def outcome_line(row: OutcomeRecord) -> dict[str, Any]:
    """One outcome report as an export line."""
    redactor = Redactor()
    digest = hashlib.sha256(f"{row.reporter}\0{row.report_id}".encode()).hexdigest()[:24]
    return {"kind": "outcome", "tier": outcome_tier(row.outcome, row.score, row.discount),
            "id": digest,
            "namespace": row.namespace, "skill": row.name, "version": row.version,
            "outcome": row.outcome, "failure_kind": row.failure_kind,
            "signals": _signals(row.signals_json), "score": row.score,
            "client": {"agent": redactor.text(row.agent), "model": redactor.text(row.model)},
            "discount": row.discount, "at": row.at, "redactions": redactor.count}


def proposal_line(row: ProposalRow, diff: str | None,
                  stats: VersionStats | None) -> dict[str, Any]:
    """One proposal as an export line: its edits, diff, evidence and reasoning, its checks
    verdict, the review decision, and how the version it became did (`stats`)."""
    redactor = Redactor()
    return {"kind": "proposal", "tier": decision_tier(row.status, stats), "id": row.id,
            "namespace": row.namespace, "skill": row.name, "base_version": row.base_version,
            "applies_to": row.applies_to, "edits": redactor.value(row.edits),
            "diff": redactor.text(diff), "evidence": redactor.value(row.evidence),
            "reasoning": redactor.text(row.reasoning), "support": row.support,
            "verdict": row.verdict,
            "review": {"decision": row.status, "comment": redactor.text(row.comment),
                       "at": row.decided_at},
            "version": row.version, "version_outcomes": _outcomes(stats),
            "created_at": row.created_at, "redactions": redactor.count}


def review_line(row: ReleaseRow, stats: VersionStats | None) -> dict[str, Any]:
    """One decided release (required review) as an export line."""
    redactor = Redactor()
    return {"kind": "review", "tier": decision_tier(row.state, stats), "id": row.id,
            "namespace": row.namespace, "skill": row.name, "version": row.version,
            "decision": row.state, "comment": redactor.text(row.comment),
            "verdict": row.verdict, "commit": row.commit_sha,
            "content_sha256": row.content_sha256, "version_outcomes": _outcomes(stats),
            "created_at": row.created_at, "decided_at": row.decided_at,
            "redactions": redactor.count}


@functools.lru_cache(maxsize=1024)
def _signals(text: str) -> dict[str, Any]:
    """Parsed once per distinct signals text (a few combinations recur across reports); the
    dict is shared, never changed."""
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def _outcomes(stats: VersionStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    counted = stats.successes + stats.failures
    return {"successes": stats.successes, "failures": stats.failures,
            "success_rate": round(stats.successes / counted, 4) if counted else None,
            "mean_score": None if stats.score_mean is None else round(stats.score_mean, 4)}
