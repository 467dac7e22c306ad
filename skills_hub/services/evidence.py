"""Evidence export for training: a namespace's outcome reports, proposals and review
decisions as tiered, redacted JSON lines (`learning.evidence` shapes them), read from
storage in keyset pages so that an export of any size holds one page in memory.

Owners export their namespaces, the operator every namespace, nobody else (the policy's
EXPORT action). Who may export what is decided when `export_evidence` is called, before the
first line is produced, so a server answers an error, never half a stream."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..access.policy import EXPORT, allowed, require
from ..access.principal import Principal
from ..domain import OutcomeRecord, ProposalRow, ReleaseRow, VersionStats
from ..errors import BadRequest, Forbidden, NotFound, Problem
from ..learning.evidence import KINDS, TIERS, outcome_line, proposal_line, review_line
from ..learning.merge import unified_diff
from .base import RegistryBase
from .common import NAME_RE, ref_of

PAGE = 1000          # rows read from storage at once
CHUNK_LINES = 200    # lines written to a stream at once
STATS_CACHE = 256    # skills whose version statistics are kept while exporting a namespace

Row = TypeVar("Row")
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class EvidenceFilters:
    """What to export: one namespace (else all the caller may export), one skill of it, a
    time range [since, until) as stored ISO 8601 UTC times, the tiers and the kinds."""

    namespace: str | None = None
    skill: str | None = None
    since: str | None = None
    until: str | None = None
    tiers: frozenset[str] = frozenset(TIERS)
    kinds: tuple[str, ...] = KINDS

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "skill": self.skill, "since": self.since,
                "until": self.until, "tiers": sorted(self.tiers),
                "kinds": list(self.kinds)}


def parse_evidence_filters(*, namespace: str | None = None, skill: str | None = None,
                           since: str | None = None, until: str | None = None,
                           tiers: Iterable[str] = (),
                           kinds: Iterable[str] = ()) -> EvidenceFilters:
    """The filters from text (query parameters, options); a BadRequest lists every problem.
    `tiers` and `kinds` may each be repeated or comma-separated; empty means all."""
    problems: list[Problem] = []
    for key, value in (("namespace", namespace), ("skill", skill)):
        if value is not None and (len(value) > 64 or not NAME_RE.match(value)):
            problems.append(Problem(key, f"{value[:70]!r} is not a valid {key} name",
                                    "1-64 lowercase letters, digits and single hyphens"))
    if skill is not None and namespace is None:
        problems.append(Problem("skill", "a skill needs its namespace",
                                "also send `namespace` (the skill's namespace)"))
    start, end = _time("since", since, problems), _time("until", until, problems)
    if start is not None and end is not None and start >= end:
        problems.append(Problem("until", "not after `since`",
                                "send a time range whose `until` is later than `since`"))
    wanted_tiers = _choices("tier", tiers, TIERS, problems)
    wanted_kinds = _choices("kind", kinds, KINDS, problems)
    if problems:
        raise BadRequest(f"{len(problems)} problem(s) in the export's filters; nothing was "
                         "exported", problems=problems)
    return EvidenceFilters(namespace, skill, start, end, frozenset(wanted_tiers or TIERS),
                           tuple(k for k in KINDS if not wanted_kinds or k in wanted_kinds))


def _time(key: str, value: str | None, problems: list[Problem]) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        problems.append(Problem(key, f"{value[:40]!r} is not an ISO 8601 date or time",
                                "e.g. 2026-11-01 or 2026-11-01T08:00:00Z"))
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def _choices(key: str, values: Iterable[str], allowed_values: tuple[str, ...],
             problems: list[Problem]) -> set[str]:
    chosen = {part.strip() for value in values for part in value.split(",") if part.strip()}
    for value in sorted(chosen - set(allowed_values)):
        problems.append(Problem(key, f"{value[:40]!r} is not a {key}",
                                f"use {', '.join(allowed_values)} (repeat or comma-separate)"))
    return chosen


@dataclass
class _Stats:
    """Version statistics of the skills of one namespace, looked up once per skill."""

    lookup: Callable[[str], dict[str, VersionStats]]
    skills: dict[str, dict[str, VersionStats]] = field(default_factory=dict)

    def of(self, name: str, version: str | None) -> VersionStats | None:
        if version is None:
            return None
        if name not in self.skills:
            if len(self.skills) >= STATS_CACHE:
                self.skills.clear()
            self.skills[name] = self.lookup(name)
        return self.skills[name].get(version)


class EvidenceMixin(RegistryBase):
    """The evidence export."""

    def export_evidence(self, principal: Principal,
                        filters: EvidenceFilters) -> Iterator[dict[str, Any]]:
        """The lines of the export, lazily. Raises now (nothing read yet) when the caller may
        not export what the filters name: 401 anonymous, 404 a namespace or skill it may not
        see, 403 one it reads but does not own, or no namespace of its own at all."""
        namespaces = self._exportable(principal, filters)
        self.audit(principal, "evidence.export", filters.namespace or "*",
                   namespace=filters.namespace, detail=filters.to_dict())
        return self._evidence_lines(namespaces, filters)

    def _exportable(self, principal: Principal, filters: EvidenceFilters) -> list[str]:
        if filters.namespace is not None:
            self.require(principal, EXPORT, filters.namespace)
            if filters.skill is not None and self.store.catalogue.get_skill(
                    filters.namespace, filters.skill) is None:
                raise NotFound(f"no skill {filters.namespace}/{filters.skill}")
            return [filters.namespace]
        if not principal.signed_in:
            require(principal, EXPORT, None, "every namespace")  # 401: sign in first
        names = [info.name for info in self.store.namespaces.namespaces()
                 if allowed(principal, EXPORT, ref_of(info))]
        if not names:
            raise Forbidden("exporting evidence needs the 'owner' role on a namespace (or the "
                            "operator), and this account owns none",
                            extra={"hint": "ask an owner of the namespace to export it, or "
                                           "for the role", "needed_role": "owner"})
        return sorted(names)

    def _evidence_lines(self, namespaces: list[str],
                        f: EvidenceFilters) -> Iterator[dict[str, Any]]:
        for namespace in namespaces:
            lines = self._namespace_lines(namespace, f)
            yield from (line for line in lines if line["tier"] in f.tiers)

    def _namespace_lines(self, ns: str, f: EvidenceFilters) -> Iterator[dict[str, Any]]:
        """A namespace's lines of the kinds asked for: reports, proposals, then reviews."""
        stats = _Stats(functools.partial(self.store.outcomes.version_stats, ns))
        kw = {"name": f.skill, "since": f.since, "until": f.until}

        def reports(after: tuple[str, str, str] | None) -> list[OutcomeRecord]:
            return self.store.outcomes.outcome_page(ns, **kw, after=after, limit=PAGE)

        def proposals(after: tuple[str, str] | None) -> list[ProposalRow]:
            return self.store.proposals.proposal_page(ns, **kw, after=after, limit=PAGE)

        def releases(after: tuple[str, str] | None) -> list[ReleaseRow]:
            return self.store.releases.decided_page(ns, **kw, after=after, limit=PAGE)

        if "outcome" in f.kinds:
            yield from (outcome_line(r) for r in _pages(reports, _report_key))
        if "proposal" in f.kinds:
            for row in _pages(proposals, _proposal_key):
                diff = self._proposal_diff(ns, row.name, row.applies_to, row.tree_sha)
                yield proposal_line(row, diff, stats.of(row.name, row.version))
        if "review" in f.kinds:
            for release in _pages(releases, _release_key):
                yield review_line(release, stats.of(release.name, release.version))

    def _proposal_diff(self, namespace: str, name: str, applies_to: str,
                       tree_sha: str) -> str | None:
        """The proposal's unified diff against the version it applies to; None when that
        version or the proposal's tree is gone."""
        skill = self.store.catalogue.get_skill(namespace, name)
        base = None if skill is None else self.store.catalogue.get_version(skill.id, applies_to)
        if base is None:
            return None
        try:
            return unified_diff(self.bundle(namespace, base).files,
                                self.git.read_tree(namespace, tree_sha).files)
        except NotFound:
            return None


def _report_key(row: OutcomeRecord) -> tuple[str, str, str]:
    return row.key


def _proposal_key(row: ProposalRow) -> tuple[str, str]:
    return row.created_at, row.id


def _release_key(row: ReleaseRow) -> tuple[str, str]:
    return row.decided_at or "", row.id


def _pages(read: Callable[[Any], list[Row]], key: Callable[[Row], Any]) -> Iterator[Row]:
    """Every row of a keyset-paged read, one page in memory at a time."""
    after = None
    while True:
        page = read(after)
        yield from page
        if len(page) < PAGE:
            return
        after = key(page[-1])


def evidence_jsonl(lines: Iterable[dict[str, Any]],
                   chunk_lines: int = CHUNK_LINES) -> Iterator[str]:
    """The lines as JSON lines text, a few hundred lines per chunk (fewer, larger writes)."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(_ENCODE(line) + "\n")
        if len(chunk) >= chunk_lines:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)
