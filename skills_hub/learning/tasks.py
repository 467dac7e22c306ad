"""Evidence per kind of task: a skill that works for one kind of task and fails for another
gets a number for each, and a search ranks by the evidence of the tasks near its query.

An outcome report may carry the task it served (`task`: its text or a short label). The
registry embeds the text with the search model (the same MiniLM vector space as queries)
and keeps the vector per task (`task_vectors`, keyed by the task's `task_key`); the report
itself keeps only the key. Evidence per task is the skill's counted reports of that task
(`store.guards` decides what counts: a repeat of one task by one token counts once).

For a query vector q and a skill with tasks t (each with decayed successes s_t, failures
f_t), the evidence of the tasks near the query is a kernel-weighted count:

    sim_t   = q . v_t                                  (cosine; unit vectors)
    w_t     = ((sim_t - NEAR) / (1 - NEAR)) ** SHARPNESS   for sim_t > NEAR, else 0
    s_near  = sum w_t * s_t,   f_near = sum w_t * f_t,   n_near = s_near + f_near
    lambda  = n_near / (n_near + PRIOR)     when n_near >= MIN_NEAR, else 0
    evidence = (1 - lambda) * global evidence + lambda * Wilson(s_near, n_near)

So a repeat of a reported task (sim ~ 1) counts in full, a paraphrase (MiniLM puts them at
0.6-0.9) a tenth to two thirds, an unrelated task (under 0.4) not at all; with little evidence
near the query the global numbers decide, and the weight of the local ones grows with
their amount (PRIOR reports give it half). Decay: each task's counts are decayed by the
age of their mean report time (one factor per task, `quality.decay_factor`).

The skill page groups a skill's tasks into neighbourhoods (`neighbourhoods`: greedy, a task
joins the first group whose leader it is at least GROUP_SIMILARITY similar to) and shows
each group's counts. A task's text is shown there only when at least LABEL_REPORTERS
distinct tokens reported it (`label`; a text only one client sent stays private to it),
and never when the secret rules find something in it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..checks.threats import find_secrets
from ..domain import TaskStats
from ..ranking.quality import HALF_LIFE_DAYS, wilson_lower_bound
from ..search.embedder import DIM

NEAR = 0.4          # at or below this cosine a reported task says nothing about the query
SHARPNESS = 2.0     # how fast a task's weight falls as it moves away from the query
PRIOR = 10.0        # near-query reports that give the local evidence half the weight
MIN_NEAR = 2.0      # fewer weighted reports near the query: the global numbers alone
GROUP_SIMILARITY = 0.6  # the skill page's neighbourhoods (the demand list's bar too)
LABEL_CHARS = 120
LABEL_REPORTERS = 2
MAX_GROUPS = 8
LEADERS = 64        # groups opened at most (the page shows MAX_GROUPS of them)
# New tasks embedded per token: about 6 ms of model time each on 2 cores, so a token may not
# spend more than a share of a core on them (the outcome limit alone allows 500 reports/s).
# Past it the reports are stored and count as always; their tasks keep their key only, and
# a later report of the same task embeds it.
EMBED_RATE = 20.0   # tasks a second
EMBED_BURST = 2000.0
EMBED_CHUNK = 50


@dataclass(frozen=True)
class Near:
    """The evidence of a skill's tasks near one query (`score_parts.task`)."""

    tasks: int          # reported tasks with any weight
    successes: float    # weighted, decayed
    failures: float
    wilson: float
    weight: float       # lambda: the local evidence's share of the evidence term

    def parts(self) -> dict[str, float | int]:
        return {"tasks": self.tasks, "successes": round(self.successes, 4),
                "failures": round(self.failures, 4), "wilson": round(self.wilson, 6),
                "weight": round(self.weight, 6)}


def weights(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Each task's kernel weight for the query (rows of `vectors` are unit task vectors)."""
    sims = vectors @ query
    return np.clip((sims - NEAR) / (1.0 - NEAR), 0.0, None) ** SHARPNESS


@dataclass(frozen=True)
class SkillTasks:
    """One skill's reported tasks as arrays: the tasks that have a vector, each row with
    its counts (what a search keeps per skill, `SearchEngine._task_stats`)."""

    vectors: np.ndarray    # tasks x DIM, unit rows
    successes: np.ndarray  # float64 per task
    failures: np.ndarray
    mean_at: np.ndarray    # epoch seconds
    complete: bool         # every reported task had its vector

    @classmethod
    def of(cls, stats: Sequence[TaskStats], vectors: dict[str, np.ndarray]) -> SkillTasks:
        rows = [t for t in stats if t.task_key in vectors]
        return cls(to_matrix(vectors[t.task_key] for t in rows),
                   np.array([t.successes for t in rows], dtype=np.float64),
                   np.array([t.failures for t in rows], dtype=np.float64),
                   np.array([t.mean_at for t in rows], dtype=np.float64),
                   len(rows) == len(stats))

    def __len__(self) -> int:
        return len(self.successes)


def near(query: np.ndarray, vectors: np.ndarray, stats: Sequence[TaskStats],
         now: float | None = None) -> Near | None:
    """The evidence of the tasks near `query` (rows of `vectors` are `stats`' tasks);
    None when too little is near to count."""
    keys = {t.task_key: v for t, v in zip(stats, vectors, strict=True)}
    return near_each(query, [SkillTasks.of(stats, keys)], now)[0]


def near_each(query: np.ndarray, skills: Sequence[SkillTasks],
              now: float | None = None) -> list[Near | None]:
    """`near` for several skills at once (one matrix product for a whole result page)."""
    skills_ = [s for s in skills if len(s)]
    if not skills_:
        return [None] * len(skills)
    now = time.time() if now is None else now
    w = weights(query, np.concatenate([s.vectors for s in skills_]))
    ages = now - np.concatenate([s.mean_at for s in skills_])
    w *= np.power(0.5, np.maximum(ages, 0.0) / (HALF_LIFE_DAYS * 86_400.0))
    owner = np.repeat(np.arange(len(skills_)), [len(s) for s in skills_])
    succ = np.bincount(owner, w * np.concatenate([s.successes for s in skills_]),
                       minlength=len(skills_))
    fail = np.bincount(owner, w * np.concatenate([s.failures for s in skills_]),
                       minlength=len(skills_))
    counted = np.bincount(owner, (w > 0).astype(np.float64), minlength=len(skills_))
    found = iter(zip(succ.tolist(), fail.tolist(), counted.tolist(), strict=True))
    out: list[Near | None] = []
    for skill in skills:
        if not len(skill):
            out.append(None)
            continue
        s, f, n = next(found)
        total = s + f
        out.append(None if total < MIN_NEAR else
                   Near(int(n), s, f, wilson_lower_bound(s, total), total / (total + PRIOR)))
    return out


def label(text: str) -> str | None:
    """What may be shown of a task's text: control characters and runs of white space
    folded to one space, cut at LABEL_CHARS; None when the secret rules find anything in
    it."""
    folded = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if not folded or find_secrets(folded):
        return None
    return folded if len(folded) <= LABEL_CHARS else folded[:LABEL_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True)
class Neighbourhood:
    """A group of similar tasks on the skill page."""

    label: str | None   # the most reported shown label of the group; None: none may be shown
    tasks: int
    successes: int
    failures: int
    wilson: float


def neighbourhoods(stats: Sequence[TaskStats], vectors: np.ndarray,
                   labels: dict[str, str | None],
                   limit: int = MAX_GROUPS) -> list[Neighbourhood]:
    """The skill's tasks grouped by similarity, most reported groups first.

    Bounded whatever the number of tasks (a page must not take longer because someone
    reported many unrelated tasks): the LEADERS-th group is the last one opened, in order
    of report counts, and every task then joins its most similar group in one matrix
    product, or none (it is then in no group shown)."""
    if not stats:
        return []
    count = np.array([s.successes + s.failures for s in stats])
    order = sorted(range(len(stats)), key=lambda i: (-count[i], stats[i].task_key))
    leaders: list[int] = []
    for i in order:
        if len(leaders) >= LEADERS:
            break
        if not leaders or float(np.max(vectors[leaders] @ vectors[i])) < GROUP_SIMILARITY:
            leaders.append(i)
    sims = vectors @ vectors[leaders].T                    # tasks x leaders
    best = np.argmax(sims, axis=1)
    joined = sims[np.arange(len(stats)), best] >= GROUP_SIMILARITY
    members: dict[int, list[int]] = {j: [] for j in range(len(leaders))}
    for i in order:  # in report-count order, so a group's first shown label is its most reported
        if joined[i]:
            members[int(best[i])].append(i)
    groups = []
    for j in range(len(leaders)):
        rows = [stats[i] for i in members[j]]
        shown = next((labels.get(r.task_key) for r in rows
                      if r.reporters >= LABEL_REPORTERS and labels.get(r.task_key)), None)
        s, f = sum(r.successes for r in rows), sum(r.failures for r in rows)
        groups.append(Neighbourhood(shown, len(rows), s, f, wilson_lower_bound(s, s + f)))
    groups.sort(key=lambda g: (-(g.successes + g.failures), g.label or ""))
    return groups[:limit]


def to_matrix(vectors: Iterable[bytes | np.ndarray]) -> np.ndarray:
    """Stored task vectors (float32 bytes or arrays) as the rows of one matrix."""
    rows = [np.frombuffer(v, dtype=np.float32) if isinstance(v, bytes) else v for v in vectors]
    if not rows:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.vstack(rows).astype(np.float32, copy=False)
