"""Search latency at scale: keyword, hybrid, filtered, sorted and browse, at 10k and 100k skills.

Runs in-process against `Registry` (no HTTP, no git) in a throwaway home, semantic search on
(all-MiniLM-L6-v2, loaded offline), publish checks off. For each size in `--sizes`:

1. Indexing. Synthetic skills are generated deterministically (seeded `random.Random`):
   2-4 word names, 15-40 word descriptions from templates over a vocabulary of ~2,800
   words (verbs and their inflections, objects and plurals, adjectives, domains, formats,
   real and made-up tool names, drawn with Zipf weights), 400-800 character markdown bodies
   (headings, bullet lists, numbered steps), 1-3 tags of 100, spread over 12 namespaces
   (Zipf too) and published-at stamps over the last 365 days. They are written as
   `NewVersion` rows straight into the index with `Index.record_versions` in batches of
   1,000 (skills table, versions table, FTS5 row) -- no git, no checks: the figure is the
   search index. Then `SearchEngine.embed_pending()` embeds every skill without a vector
   (what the server's background worker runs), stores the vectors and fills the in-memory
   matrix. The two parts are timed separately (skills/s each); generating the text is not
   timed. A larger size extends the previous registry, so nothing is embedded twice.
   Past `--embed-limit` skills (default 10,000) the new skills get copies of embedded
   skills' vectors instead (`copy_vectors`): latency does not depend on the values, and
   the model embeds only ~20-50 skill texts/s on 2 cores (every text fills the 128 tokens).
2. Queries, through `Registry.search(query, principal=ANONYMOUS, mode=..., limit=10)`,
   one after another, wall time per call; p50/p95/p99 are nearest-rank. Every page must
   be served by the mode asked for (`page.results.mode`); mismatches are counted. Each
   size gets its own query set, never asked before (new texts): natural-language requests
   ("convert a csv of invoices into a monthly chart"), short search-box queries (1-3
   words, some a prefix being typed) and exact skill names.
   - *cold*: the first time each query text is asked. For hybrid this includes embedding
     the query with the model (its LRU cache, `Embedder.embed_query`, has never seen it);
     for keyword it is the first run of that FTS expression (SQLite's page cache is warm
     from earlier queries either way).
   - *warm*: the same queries again, query vectors now cached.
   - filtered hybrid (a common tag, a rare tag, a small namespace, `updated_since` 30 days),
     hybrid with `sort=recent`, and the empty-query browse (no filter, tag, namespace,
     `sort=installs`), all with query vectors cached.
3. Where the time goes: one more pass per mode with the engine's and index's methods
   wrapped by timers at run time (nothing in skills_hub/ is changed): FTS (AND and OR
   runs), query embedding, matrix product, top-k selection, SQL row fetch, exact-name
   lookup, page snippets, quality lookup and ranking; mean ms per query. SQL time is
   charged to the outermost part running it. Also the model's time to embed one uncached
   query, and how many rows the FTS OR expressions match (median, max).
4. Resources after each size: vector matrix (rows used and allocated), process VmRSS and
   peak VmHWM from /proc/self/status, index.db (+WAL) on disk.

Aims (at 10,000 skills only; nothing is asserted, each is marked met/MISSED): keyword
p50 < 5 ms and hybrid p50 < 25 ms, cold and warm. Larger sizes are printed without aims.
The table goes to stdout, progress to stderr; "cpu/w" is this process's CPU time over wall
time during a pass (about 2 when a thread pool's worker spins beside the main thread, well
under 1 when other work takes the cores: then the figures are noisy).

`--home DIR` keeps the registry and resumes from it (sizes below its skill count are
skipped, stored vectors are reused), e.g. to re-run 100,000 with other settings in minutes.
`--blas-threads N` / `--torch-threads N` limit numpy's BLAS and torch's thread pools once
the model is loaded (the default pools spin after each call; on a busy 2-core machine that
stalls the matrix product and slows what follows a query embedding).

    .venv/bin/python bench/search_bench.py [--sizes 10000,100000] [--queries 300] [--quick]
        [--embed-limit N] [--home DIR] [--blas-threads N] [--torch-threads N]
        [--json PATH] [--keep]
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import skills_hub.search.engine as engine_module  # noqa: E402
from skills_hub.access.principal import ANONYMOUS  # noqa: E402
from skills_hub.config import Settings  # noqa: E402
from skills_hub.domain import NewVersion  # noqa: E402
from skills_hub.search.embedder import skill_text  # noqa: E402
from skills_hub.search.query import parse  # noqa: E402
from skills_hub.services import Registry  # noqa: E402
from skills_hub.store.sqlite import fts  # noqa: E402

AIM_SIZE = 10_000
AIM_KEYWORD_P50_MS = 5.0
AIM_HYBRID_P50_MS = 25.0
BATCH = 1_000
LIMIT = 10
MODEL_TIMEOUT_S = 600
SEED = 20240611
NAME_RE = r"^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$"

# -- vocabulary ------------------------------------------------------------------------------

_VERBS = """
convert parse validate summarise extract merge split format render export import generate
analyse compare audit scan clean deduplicate normalise translate classify tag index search
rank filter sort group aggregate plot chart visualise schedule monitor alert notify deploy
build test lint refactor document review draft rewrite proofread annotate label transcribe
compress encrypt decrypt sign verify backup restore migrate sync mirror archive upload
download fetch scrape crawl query join pivot reconcile forecast estimate price invoice bill
book plan track log trace profile benchmark optimise resize crop watermark redact anonymise
mask detect diagnose debug patch upgrade install configure provision rotate revoke approve
triage escalate assign cluster embed score predict train tune evaluate sample simulate map
geocode route digest batch stream cache queue retry collect compile publish share review
prioritise categorise highlight outline interview onboard recruit survey measure calculate
""".split()

_OBJECTS = """
invoice receipt ledger budget expense payroll contract clause policy ticket incident alert
metric dashboard report summary table spreadsheet column row schema dataset record customer
order shipment product catalog inventory warehouse supplier vendor lead campaign email
newsletter message thread comment review rating survey response question answer transcript
meeting agenda note calendar event reminder task project milestone roadmap sprint backlog
issue bug commit branch release changelog build pipeline container image cluster node
service endpoint request header payload token secret certificate key password account user
role permission group team employee candidate resume interview offer timesheet shift
patient appointment prescription claim diagnosis lab sample experiment protocol paper
citation abstract reference bibliography chapter section paragraph sentence headline
article post caption tweet video podcast episode playlist track album photo thumbnail
diagram slide deck presentation template form field label barcode address route map
location coordinate trip booking flight hotel itinerary menu recipe ingredient meal
nutrition workout score match player fixture lesson course quiz grade student syllabus
assignment rubric feedback complaint refund payment transaction subscription plan quote
estimate proposal lease property listing tenant mortgage loan portfolio stock trade
price forecast risk vulnerability threat firewall log trace span query index cache queue
job cron backup snapshot volume disk bucket file folder archive attachment document
signature license dependency package library module function variable test fixture mock
benchmark profile translation glossary keyword topic entity sentiment summary outline
""".split()

_ADJECTIVES = """
monthly weekly daily quarterly annual large small messy raw duplicate missing broken stale
legacy new draft final public private internal external shared scanned handwritten
multilingual nested sparse noisy encrypted signed failed pending overdue unpaid recurring
historical realtime structured unstructured tabular visual interactive printable accessible
compliant secure minimal detailed concise formal casual technical urgent flaky slow
expensive unused orphaned inconsistent malformed localized regional global consolidated
anonymous verified rejected approved archived exported imported nightly hourly incremental
""".split()

_DOMAINS = """
finance accounting marketing sales support logistics healthcare legal recruiting devops
security compliance education research retail ecommerce insurance banking travel
hospitality manufacturing energy agriculture media publishing gaming telecom biology
chemistry physics astronomy geography climate sports music film photography design
architecture construction nonprofit government procurement tax operations engineering
product analytics data infrastructure networking mobile frontend backend qa localization
accessibility privacy fundraising events realty pharmacy dentistry veterinary fitness
nutrition journalism translation
""".split()

_FORMATS = """
csv json yaml xml pdf docx xlsx markdown html parquet avro sql sqlite postgres mysql excel
pptx png jpeg svg mp3 mp4 wav srt ics vcf geojson kml gpx latex bibtex epub zip tar
protobuf graphql openapi jsonl tsv toml dockerfile terraform helm kubernetes ansible
jupyter syslog har pcap ical rss atom odt rtf heic webp tiff ogg flac
""".split()

_TOOLS = """
git github gitlab docker slack jira confluence notion stripe salesforce hubspot figma
airtable zapier trello asana linear sentry grafana prometheus datadog pagerduty
snowflake bigquery redshift dbt airflow spark pandas numpy excel sheets drive dropbox
outlook gmail zoom teams shopify quickbooks xero netsuite workday greenhouse zendesk
intercom mailchimp twilio sendgrid okta vault terraform ansible kubectl postman openai
""".split()

_PERIODS = ("day", "week", "month", "quarter", "year", "sprint", "release", "shift")


def _dedupe(words: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(words))


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _third(verb: str) -> str:
    return _plural(verb)


def _gerund(verb: str) -> str:
    if verb.endswith("e") and not verb.endswith(("ee", "ye")):
        return verb[:-1] + "ing"
    return verb + "ing"


def _made_up_tools(rng: random.Random, count: int) -> list[str]:
    """Product-like names ("kavora", "telmix"): the long tail of a real vocabulary."""
    onsets = "b c d f g h j k l m n p r s t v z br cr dr fl gr kl pl pr sk st tr".split()
    vowels = "a e i o u ai ea io".split()
    codas = ["", "", "n", "r", "x", "l", "s", "m", "k"]
    out: set[str] = set()
    while len(out) < count:
        parts = [rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(2, 3))]
        out.add("".join(parts) + rng.choice(codas))
    return sorted(out)


def _cumulative(size: int, s: float = 1.0) -> list[float]:
    total, out = 0.0, []
    for rank in range(size):
        total += 1.0 / (rank + 1) ** s
        out.append(total)
    return out


class Pool:
    """Words drawn with Zipf weights (the first ones are the most common)."""

    def __init__(self, words: Sequence[str], s: float = 1.0) -> None:
        self.words = list(words)
        self._cum = _cumulative(len(self.words), s)

    def pick(self, rng: random.Random) -> str:
        x = rng.random() * self._cum[-1]
        return self.words[min(bisect.bisect_left(self._cum, x), len(self.words) - 1)]


@dataclass
class Vocabulary:
    verbs: Pool
    objects: Pool
    adjectives: Pool
    domains: Pool
    formats: Pool
    tools: Pool
    tags: list[str]
    size: int

    @classmethod
    def build(cls, seed: int = SEED) -> Vocabulary:
        rng = random.Random(seed)
        verbs, objects = _dedupe(_VERBS), _dedupe(_OBJECTS)
        adjectives, domains, formats = _dedupe(_ADJECTIVES), _dedupe(_DOMAINS), _dedupe(_FORMATS)
        for words in (verbs, objects, adjectives, domains, formats):
            rng.shuffle(words)  # which words are common is itself seeded
        tools = _dedupe(_TOOLS) + _made_up_tools(rng, 1500)
        every = set(verbs) | {_third(v) for v in verbs} | {_gerund(v) for v in verbs}
        every |= {v + "ed" for v in verbs} | set(objects) | {_plural(o) for o in objects}
        every |= set(adjectives) | set(domains) | set(formats) | set(tools)
        tags = _dedupe(domains[:60] + formats[:40])[:100]
        # Exponents below 1: the lists are short, so s = 1 would put the commonest
        # content words into nearly every skill (real corpora are less concentrated).
        return cls(Pool(verbs, 0.8), Pool(objects, 0.8), Pool(adjectives, 0.8),
                   Pool(domains, 0.9), Pool(formats, 0.9), Pool(tools, 1.0), tags, len(every))


# -- synthetic skills ------------------------------------------------------------------------

NAMESPACES = ("synthetic", "acme", "data-team", "platform", "finance-ops", "research-lab",
              "support", "growth", "secops", "edu", "studio", "tiny-labs")
_NAMESPACE_POOL = Pool(NAMESPACES)
_NAME_PATTERNS: tuple[tuple[str, ...], ...] = (
    ("verb", "objs"), ("fmt", "obj"), ("domain", "obj"), ("tool", "obj"), ("verb", "obj"),
    ("verb", "fmt", "objs"), ("domain", "obj", "verb"), ("adj", "obj", "verb"),
    ("verb", "objs", "tool"), ("obj", "to", "fmt"), ("gerund", "domain", "objs"),
    ("domain", "verb", "obj", "fmt"), ("verb", "adj", "objs", "tool"),
    ("tool", "obj", "verb", "domain"),
)
_DESCRIPTIONS = (
    "{Verb} {adj} {objs} from {fmt} files into a {adj2} {obj2} for {domain} teams. Use when "
    "the user asks to {verb2} {objs3}, {verb3} {obj4} totals or prepare a {obj5} with {tool}.",
    "Helps {domain} analysts {verb} and {verb2} {objs} stored as {fmt}. It {verb3s} each "
    "{obj2}, flags {adj} {objs3} and writes a {adj2} {obj4} that can be shared in {tool}.",
    "When a {obj} arrives as {fmt}, this skill {verbs} it, {verb2s} the {adj} {objs2} and "
    "produces a {obj3} ready for the {domain} {obj4}. Works with {tool} and {tool2}.",
    "{Gerund} {objs} for {domain}: {verb} the {fmt} export, {verb2} {adj} {objs2}, then "
    "{verb3} a {adj2} {obj3}. Suited to {adj3} {objs4} and {obj5} reviews.",
    "{Verb} a {adj} {obj} with {tool}. Reads {fmt} input, {verb2s} missing {objs2}, and "
    "returns a {obj3} the {domain} team can {verb3} every {period}.",
    "Turns {adj} {fmt} {objs} into {adj2} {objs2}: {gerund2} {objs3}, {gerund3} the "
    "{obj4} and keeping a {obj5} of every change. For {domain} work in {tool}.",
)
_EXTRA = (
    " Also {verbs} {objs} on request.",
    " It never changes the original {obj}.",
    " Ask before {gerund} {adj} {objs}.",
)
_STEPS = (
    "{Verb} the {obj} {fmt} file with `{tool}`.",
    "Check each {obj} for {adj} {objs2}.",
    "{Verb} the {adj} {objs} by {obj2}.",
    "Write the result to `{obj}.{fmt}`.",
    "Ask the user to {verb} the {obj} before {gerund} it.",
    "Run `{tool} {verb} --{obj}` and keep its output.",
    "{Verb} the {objs} that are {adj}; list them in a {obj2}.",
    "Compare the {obj} with last {period}'s {obj2}.",
)


@dataclass(frozen=True)
class Skill:
    namespace: str
    name: str
    description: str
    tags: str
    body: str
    published_at: str


def _slots(vocab: Vocabulary, rng: random.Random) -> dict[str, str]:
    """One draw of every template slot (numbered slots are further independent draws)."""
    out: dict[str, str] = {}
    for suffix in ("", "2", "3", "4", "5"):
        verb = vocab.verbs.pick(rng)
        obj = vocab.objects.pick(rng)
        out.update({f"verb{suffix}": verb, f"verb{suffix}s": _third(verb),
                    f"gerund{suffix}": _gerund(verb), f"obj{suffix}": obj,
                    f"objs{suffix}": _plural(obj), f"adj{suffix}": vocab.adjectives.pick(rng),
                    f"tool{suffix}": vocab.tools.pick(rng)})
    out.update(domain=vocab.domains.pick(rng), fmt=vocab.formats.pick(rng),
               period=rng.choice(_PERIODS), to="to")
    out["Verb"], out["Gerund"] = out["verb"].capitalize(), out["gerund"].capitalize()
    return out


def _fill(template: str, slots: dict[str, str]) -> str:
    return template.format(**slots)


_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiou])")


def _articles(text: str) -> str:
    """"a expensive" -> "an expensive"."""
    return _ARTICLE.sub(lambda m: m.group(1) + "n ", text)


def _words_between(text: str, want: int, extra: Callable[[], str]) -> str:
    """`text` padded with `extra()` sentences or cut to `want` words, ending in a full stop."""
    words = text.split()
    while len(words) < want:
        words += extra().split()
    out = " ".join(words[:want]).rstrip(",.:;")
    return _articles(out + ".")


def make_skill(vocab: Vocabulary, i: int, taken: set[str], now: datetime) -> Skill:
    """Synthetic skill number `i`; `taken` holds the names already used (updated here)."""
    rng = random.Random(SEED * 1_000_003 + i)
    slots = _slots(vocab, rng)
    name = ""
    for attempt in range(40):
        pattern = rng.choice(_NAME_PATTERNS)
        if attempt:  # fresh words for the retry
            slots = {**slots, **{k: v for k, v in _slots(vocab, rng).items()
                                 if k in ("verb", "obj", "objs", "adj", "tool", "gerund")}}
        words = [slots[k] for k in pattern]
        if attempt >= 20:
            words.append(rng.choice(vocab.tools.words))
        candidate = "-".join(words)
        if candidate not in taken and len(candidate) <= 64:
            name = candidate
            break
    if not name:
        name = f"{slots['verb']}-{slots['obj']}-{i}"
    taken.add(name)
    description = _words_between(
        _fill(rng.choice(_DESCRIPTIONS), slots), rng.randint(15, 40),
        lambda: _fill(rng.choice(_EXTRA), _slots(vocab, rng)))
    tags = [slots["domain"], slots["fmt"]]
    if rng.random() < 0.5:
        tags.append(rng.choice(vocab.tags))
    tag_list = [t for t in dict.fromkeys(tags) if t in vocab.tags][:3] or [vocab.tags[0]]
    published = now - timedelta(seconds=rng.uniform(0, 365 * 86_400))
    return Skill(_NAMESPACE_POOL.pick(rng), name, description, ", ".join(tag_list),
                 _body(vocab, rng, name, slots), published.isoformat(timespec="seconds"))


_LEADS = (
    "{Verb} {objs} for the {domain} team.",
    "This skill helps you {verb} {adj} {objs}.",
    "{Gerund} {objs} kept as {fmt}, for {domain} work.",
    "Use it to {verb} a {obj} and {verb2} its {objs2}.",
)
_SUFFIXES = ("", "2", "3", "4", "5")


def _topic(slots: dict[str, str], rng: random.Random) -> dict[str, str]:
    """The skill's own words, reshuffled: a body mostly talks about its own subject."""
    out = dict(slots)
    for target in ("", "2"):
        source = rng.choice(_SUFFIXES)
        for base in ("verb", "gerund", "obj", "objs", "adj", "tool"):
            out[base + target] = slots[base + source]
        out[f"verb{target}s"] = slots[f"verb{source}s"]
    out["Verb"], out["Gerund"] = out["verb"].capitalize(), out["gerund"].capitalize()
    return out


def _body(vocab: Vocabulary, rng: random.Random, name: str, slots: dict[str, str]) -> str:
    target = rng.randint(400, 800)
    title = name.replace("-", " ").title()
    head = (f"# {title}\n\n{_fill(rng.choice(_LEADS), slots)}\n\n"
            "## When to use\n\n"
            f"- The user wants to {slots['verb2']} {slots['objs2']} from {slots['fmt']}.\n"
            f"- A {slots['adj']} {slots['obj3']} needs a {slots['obj4']}.\n\n## Steps\n\n")
    tail = (f"\n## Output\n\nA {slots['adj2']} {slots['obj']} in {slots['fmt']}, "
            f"and a short {slots['obj5']} for the user.\n")
    steps: list[str] = []
    while len(head) + sum(len(s) for s in steps) + len(tail) < target:
        words = _topic(slots, rng) if rng.random() < 0.75 else _slots(vocab, rng)
        step = _fill(rng.choice(_STEPS), words)
        steps.append(f"{len(steps) + 1}. {step[0].upper()}{step[1:]}\n")
    while steps and len(head) + sum(len(s) for s in steps) + len(tail) > 800:
        steps.pop()
    return _articles(head + "".join(steps) + tail)


def new_version(vocab: Vocabulary, registry: Registry, skill: Skill, i: int) -> NewVersion:
    def sha(kind: str, length: int = 40) -> str:
        digest = hashlib.sha256(f"{kind}:{i}:{skill.name}".encode()).hexdigest()
        return digest[:length]

    frontmatter = {"name": skill.name, "description": skill.description,
                   "metadata": {"tags": skill.tags}}
    return NewVersion(
        namespace=skill.namespace, name=skill.name, version="1.0.0", commit_sha=sha("commit"),
        tag_sha=sha("tag"), tree_sha=sha("tree"), content_sha256=sha("content", 64),
        description=skill.description, frontmatter=frontmatter, files=[],
        published_at=skill.published_at, tags=skill.tags, body=skill.body, is_latest=True,
        embed_sha256=registry.embedder.text_digest(
            skill_text(skill.name, skill.description, skill.tags, skill.body)))


# -- queries ---------------------------------------------------------------------------------

_NATURAL = (
    "convert a {fmt} of {objs} into a {adj} {obj2}",
    "{verb} {adj} {objs} in {domain} {objs2}",
    "how do i {verb} {objs} from {fmt} files",
    "help me {verb} the {adj} {obj} for our {domain} team",
    "find {adj} {objs} and {verb2} them",
    "a tool to {verb} {objs} with {tool}",
    "{gerund} {domain} {objs} into {fmt}",
    "i need to {verb} {adj} {objs} every {period}",
    "{verb} my {obj} {fmt} and make a {adj2} {obj2}",
    "something that can {verb} {objs} and {verb2} the {obj2}",
    "turn {adj} {fmt} {objs} into a {obj2} for {domain}",
    "which skill will {verb} {objs} stored in {tool}",
    "{verb} {objs} then {verb2} a {adj} {obj2} in {fmt}",
    "automatically {verb} {adj} {objs} for the {domain} {obj2}",
    "check {objs} for {adj} {objs2} before i {verb} them",
)
_SHORT = (
    "{fmt} {objs}", "{verb} {obj}", "{domain}", "{obj}", "{adj} {objs}", "{tool}",
    "{verb} {fmt}", "{domain} {obj}", "{verb} {adj} {objs}", "{gerund}",
)


@dataclass(frozen=True)
class Query:
    kind: str  # natural, short, name
    text: str


def make_queries(vocab: Vocabulary, rng: random.Random, natural: int, short: int,
                 names: Sequence[str], asked: set[str]) -> list[Query]:
    """Distinct query texts never asked before (`asked` is updated)."""
    out: list[Query] = []

    def add(kind: str, text: str) -> bool:
        text = _articles(" ".join(text.split()))
        if text in asked:
            return False
        asked.add(text)
        out.append(Query(kind, text))
        return True

    while sum(q.kind == "natural" for q in out) < natural:
        add("natural", _fill(rng.choice(_NATURAL), _slots(vocab, rng)))
    while sum(q.kind == "short" for q in out) < short:
        text = _fill(rng.choice(_SHORT), _slots(vocab, rng))
        if rng.random() < 0.15 and len(text.split()[-1]) > 5:  # a word still being typed
            text = text[:-rng.randint(1, 3)]
        add("short", text)
    for name in names:
        add("name", name)
    rng.shuffle(out)
    return out


# -- measuring -------------------------------------------------------------------------------

def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary(ms: Sequence[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": pct(ms, 50), "p95": pct(ms, 95), "p99": pct(ms, 99),
            "max": max(ms), "mean": statistics.fmean(ms)}


def proc_status() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, kB."""
    out: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def disk_bytes(path: Path) -> dict[str, int]:
    """index.db and its WAL: apparent size and bytes on disk."""
    out = {"db": 0, "wal": 0, "on_disk": 0}
    for file, key in ((path, "db"), (path.with_name(path.name + "-wal"), "wal")):
        if file.exists():
            st = file.stat()
            out[key] = st.st_size
            out["on_disk"] += st.st_blocks * 512
    return out


def loadavg() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def sql_label(sql: str) -> str:
    if "snippet(" in sql:
        return "sql snippets"
    if " MATCH " in sql:
        return "sql fts"
    if "s.id IN (" in sql:
        return "sql rows by id"
    if "FROM outcome_totals" in sql:
        return "sql outcome totals"
    if "s.name = ?" in sql:
        return "sql exact name"
    if sql.lstrip().startswith("SELECT s.id FROM"):
        return "sql filtered ids"
    if "ORDER BY s." in sql and "LIMIT ? OFFSET ?" in sql:
        return "sql browse"
    return "sql other"


class Probe:
    """Accumulating timers around methods of live objects, removed by `restore()`.

    Nothing in skills_hub/ is modified: instance (or module) attributes shadow the
    methods for the duration of one measured pass. SQLite time is taken by handing out a
    connection proxy that times `execute` and the fetches, labelled by the SQL's shape.
    """

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.active: list[str] = []  # the wrapped calls under way, outermost first
        self._undo: list[tuple[Any, str, bool, Any]] = []

    def add(self, label: str, seconds: float, count: bool = True) -> None:
        self.seconds[label] += seconds
        self.calls[label] += count

    def add_sql(self, label: str, seconds: float, count: bool = True) -> None:
        """SQL time under its own label and under "<label> in <outermost part>"."""
        self.add(label, seconds, count)
        self.add(f"{label} in {self.active[0] if self.active else 'search'}", seconds, count)

    def wrap(self, obj: Any, attr: str, label: str) -> bool:
        """Time `obj.attr` under `label`; False (nothing wrapped) if it does not exist."""
        if not callable(getattr(obj, attr, None)):
            return False
        own = attr in vars(obj)
        original = getattr(obj, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.active.append(label)
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - t0)
                self.active.pop()

        self._undo.append((obj, attr, own, vars(obj).get(attr)))
        setattr(obj, attr, timed)
        return True

    def wrap_connections(self, db: Any) -> None:
        original = db.connection  # the per-thread sqlite3 connection of the SQLite Database
        probe = self

        def conn() -> _TimedConnection:
            return _TimedConnection(original(), probe)

        self._undo.append((db, "connection", "connection" in vars(db),
                           vars(db).get("connection")))
        db.connection = conn

    def restore(self) -> None:
        for obj, attr, own, value in reversed(self._undo):
            if own:
                setattr(obj, attr, value)
            else:
                delattr(obj, attr)
        self._undo.clear()


class _TimedCursor:
    def __init__(self, cursor: sqlite3.Cursor, label: str, probe: Probe) -> None:
        self._cursor, self._label, self._probe = cursor, label, probe

    def _timed(self, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self._probe.add_sql(self._label, time.perf_counter() - t0, count=False)

    def fetchall(self) -> list[Any]:
        return list(self._timed(self._cursor.fetchall))

    def fetchone(self) -> Any:
        return self._timed(self._cursor.fetchone)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class _TimedConnection:
    def __init__(self, conn: sqlite3.Connection, probe: Probe) -> None:
        self._conn, self._probe = conn, probe

    def execute(self, sql: str, params: Any = ()) -> _TimedCursor:
        label = sql_label(sql)
        t0 = time.perf_counter()
        cursor = self._conn.execute(sql, params)
        self._probe.add_sql(label, time.perf_counter() - t0)
        return _TimedCursor(cursor, label, self._probe)


@contextmanager
def probed(registry: Registry) -> Iterator[Probe]:
    """Time the parts of `SearchEngine.search` (and the SQL under them) for one pass."""
    engine = registry.search_engine
    probe = Probe()
    probe.wrap(registry.store.keyword, "search", "keyword")
    probe.wrap(engine, "_semantic", "semantic")
    probe.wrap(engine, "_exact", "exact name")
    probe.wrap(engine, "_rank", "rank")
    probe.wrap(engine, "_qualities", "quality lookup")
    probe.wrap(registry.store.keyword, "snippets", "snippets")
    probe.wrap(engine.embedder, "embed_query", "query embedding")
    probe.wrap(engine.vectors, "scores", "matrix product")
    probe.wrap(engine.vectors, "top", "top-k (incl. product)")
    for name in ("fuse", "rrf"):  # whichever fusion function the engine calls
        if probe.wrap(engine_module, name, "fusion"):
            break
    probe.wrap_connections(registry.store.db)
    try:
        yield probe
    finally:
        probe.restore()


# -- the phases ------------------------------------------------------------------------------

@dataclass
class Catalogue:
    """What has been indexed so far (sizes extend it)."""

    vocab: Vocabulary
    now: datetime
    count: int = 0
    names: list[str] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)
    tags: Counter[str] = field(default_factory=Counter)
    namespaces: Counter[str] = field(default_factory=Counter)


@contextmanager
def reporting(what: str, current: Callable[[], int], total: int,
              every_s: float = 30.0) -> Iterator[None]:
    """Print progress of a long call that reports nothing itself (daemon thread)."""
    done = threading.Event()

    def run() -> None:
        t0 = time.perf_counter()
        while not done.wait(every_s):
            n = current()
            log(f"    {what}: {n}/{total} after {time.perf_counter() - t0:.0f} s")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)


def copy_vectors(registry: Registry) -> int:
    """Give every skill without a vector a copy of an embedded skill's vector.

    For sizes past --embed-limit: search latency does not depend on the vectors' values,
    and embedding 90,000 texts on 2 cores takes about half an hour. Returns how many."""
    pool = [blob for _, blob in registry.store.vectors.skill_vectors()]
    model, engine, copied = registry.embedder.model_id, registry.search_engine, 0
    while jobs := registry.store.vectors.embed_jobs(1000):
        blobs = [pool[(copied + k) % len(pool)] for k in range(len(jobs))]
        registry.store.vectors.save_vectors((job.embed_sha256, model, blob)
                                            for job, blob in zip(jobs, blobs, strict=True))
        for job, blob in zip(jobs, blobs, strict=True):
            engine.vectors.upsert(job.skill_id, blob)
        copied += len(jobs)
    return copied


def index_to(registry: Registry, cat: Catalogue, target: int,
             embed_limit: int | None = None) -> dict[str, Any]:
    """Index skills cat.count..target-1 (SQL + FTS), then embed them; timed apart.

    Past `embed_limit` skills, vectors are copied instead of embedded (see copy_vectors)."""
    first = cat.count
    added = target - first
    gen_s = sql_s = 0.0
    for start in range(first, target, BATCH):
        t0 = time.perf_counter()
        rows = []
        for i in range(start, min(target, start + BATCH)):
            skill = make_skill(cat.vocab, i, cat.taken, cat.now)
            cat.names.append(skill.name)
            cat.tags.update(skill.tags.split(", "))
            cat.namespaces[skill.namespace] += 1
            rows.append(new_version(cat.vocab, registry, skill, i))
        t1 = time.perf_counter()
        registry.store.catalogue.record_versions(rows)
        t2 = time.perf_counter()
        gen_s += t1 - t0
        sql_s += t2 - t1
        cat.count = start + len(rows)
        if (cat.count - first) % (BATCH * 10) == 0 or cat.count == target:
            log(f"    indexed {cat.count}/{target} (SQL+FTS {sql_s:.1f} s, "
                f"generating {gen_s:.1f} s)")
    engine = registry.search_engine
    if embed_limit is not None and first >= embed_limit:
        t0 = time.perf_counter()
        copied = copy_vectors(registry)
        log(f"    copied {copied} vectors of embedded skills in {time.perf_counter() - t0:.1f} s "
            f"(--embed-limit {embed_limit})")
        return {"added": added, "embedded": 0, "copied": copied, "generate_s": gen_s,
                "sql_s": sql_s, "embed_s": float("nan"), "total_s": float("nan"),
                "sql_per_s": added / sql_s if sql_s else float("nan"),
                "embed_per_s": float("nan"), "total_per_s": float("nan")}
    log(f"    embedding {added} skills ...")
    t0 = time.perf_counter()
    with reporting("embedded", lambda: len(engine.vectors) - first, added):
        embedded = engine.embed_pending()
    embed_s = time.perf_counter() - t0
    if len(engine.vectors) < target:  # texts embedded before (a reused --home) are stored
        engine.load_vectors()
    if len(engine.vectors) != target:
        raise RuntimeError(f"{len(engine.vectors)} vectors for {target} skills")
    return {"added": added, "embedded": embedded, "generate_s": gen_s, "sql_s": sql_s,
            "embed_s": embed_s, "total_s": sql_s + embed_s,
            "sql_per_s": added / sql_s if sql_s else float("nan"),
            "embed_per_s": embedded / embed_s if embed_s else float("nan"),
            "total_per_s": added / (sql_s + embed_s)}


def run_pass(registry: Registry, queries: Sequence[Query], mode: str,
             **options: Any) -> dict[str, Any]:
    """Each query once through Registry.search; wall ms per call, by query kind too."""
    expected = "browse" if not queries or not queries[0].text else mode
    times: list[float] = []
    kinds: dict[str, list[float]] = {}
    mismatched: Counter[str] = Counter()
    hits = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for query in queries:
        t0 = time.perf_counter()
        page = registry.search(query.text, principal=ANONYMOUS, mode=mode, limit=LIMIT,
                               **options)
        ms = (time.perf_counter() - t0) * 1e3
        times.append(ms)
        kinds.setdefault(query.kind, []).append(ms)
        hits += bool(page.results.results)
        if page.results.mode != expected:
            mismatched[page.results.mode] += 1
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {**summary(times), "by_kind": {k: summary(v) for k, v in kinds.items()},
            "with_results": hits, "mismatched": dict(mismatched), "expected": expected,
            "cpu_per_wall": cpu / wall if wall else float("nan"),
            "times_ms": [round(t, 3) for t in times]}


def breakdown(registry: Registry, queries: Sequence[Query], mode: str,
              **options: Any) -> dict[str, Any]:
    """Mean ms per query of each part of the search, from one probed (warm) pass."""
    with probed(registry) as probe:
        t0 = time.perf_counter()
        run = run_pass(registry, queries, mode, **options)
        wall = time.perf_counter() - t0
    n = max(1, len(queries))
    parts = {label: seconds * 1e3 / n for label, seconds in probe.seconds.items()}
    calls = {label: count / n for label, count in probe.calls.items()}
    return {"mode": mode, "queries": len(queries), "total_ms": run["mean"],
            "pass_wall_ms": wall * 1e3 / n, "parts_ms": parts, "calls_per_query": calls}


def model_only(registry: Registry, queries: Sequence[Query]) -> dict[str, float]:
    """The model's time to embed one query that is not cached (cache left untouched)."""
    times = []
    for query in queries:
        t0 = time.perf_counter()
        registry.embedder.embed([query.text.lower()])
        times.append((time.perf_counter() - t0) * 1e3)
    return summary(times)


def fts_matches(db: Path, queries: Sequence[Query]) -> dict[str, Any]:
    """How many rows the AND and OR expressions of each query match (own connection)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    counts: dict[str, list[int]] = {"and": [], "or": []}
    times: dict[str, list[float]] = {"and": [], "or": []}
    try:
        for query in queries:
            match = fts.build(parse(query.text))
            if not match:
                continue
            for key, expr in (("and", match.all_words), ("or", match.any_word)):
                t0 = time.perf_counter()
                row = conn.execute("SELECT count(*) FROM skills_fts WHERE skills_fts MATCH ?",
                                   (expr,)).fetchone()
                times[key].append((time.perf_counter() - t0) * 1e3)
                counts[key].append(int(row[0]))
    finally:
        conn.close()
    return {key: {"p50_rows": pct(counts[key], 50), "p90_rows": pct(counts[key], 90),
                  "max_rows": max(counts[key], default=0),
                  "count_p50_ms": pct(times[key], 50), "count_p90_ms": pct(times[key], 90)}
            for key in counts}


@dataclass(frozen=True)
class QueryPlan:
    natural: int
    short: int
    names: int
    filtered: int  # queries run with each filter / sort
    browse: int    # repetitions of each browse


def measure_size(registry: Registry, cat: Catalogue, size: int, plan: QueryPlan,
                 asked: set[str], embed_limit: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"size": size, "load_before": loadavg()}
    log(f"size {size:,}: indexing {size - cat.count:,} more skills")
    out["index"] = index_to(registry, cat, size, embed_limit)
    rng = random.Random(SEED + size)
    names = rng.sample(cat.names, min(plan.names, len(cat.names)))
    queries = make_queries(cat.vocab, rng, plan.natural, plan.short, names, asked)
    out["queries"] = dict(Counter(q.kind for q in queries))
    log(f"size {size:,}: {len(queries)} queries, keyword and hybrid, cold then warm")
    passes = {}
    for label, mode in (("keyword_cold", "keyword"), ("hybrid_cold", "hybrid"),
                        ("keyword_warm", "keyword"), ("hybrid_warm", "hybrid")):
        passes[label] = run_pass(registry, queries, mode)
        log(f"    {label}: p50 {passes[label]['p50']:.2f} ms, p95 {passes[label]['p95']:.2f} ms")
    out["passes"] = passes

    common_tag = cat.tags.most_common(1)[0][0]
    rare_tag = min(cat.tags, key=lambda t: (abs(cat.tags[t] / cat.count - 0.01), t))
    small_ns = min(cat.namespaces, key=lambda n: (cat.namespaces[n], n))
    since = (cat.now - timedelta(days=30)).isoformat(timespec="seconds")
    recent_share = _share_since(registry, since, cat.count)
    subset = [q for q in queries if q.kind != "name"][:plan.filtered]
    variants: list[tuple[str, str, dict[str, Any]]] = [
        ("tag_common", f"tag={common_tag} ({100 * cat.tags[common_tag] / cat.count:.1f} %)",
         {"tag": common_tag}),
        ("tag_rare", f"tag={rare_tag} ({100 * cat.tags[rare_tag] / cat.count:.1f} %)",
         {"tag": rare_tag}),
        ("namespace", f"namespace={small_ns} "
         f"({100 * cat.namespaces[small_ns] / cat.count:.1f} %)", {"namespace": small_ns}),
        ("since", f"updated_since 30 days ({100 * recent_share:.1f} %)",
         {"updated_since": since}),
        ("recent", "sort=recent", {"sort": "recent"}),
    ]
    log(f"size {size:,}: filtered and sorted hybrid, browse")
    filtered = {}
    for key, label, options in variants:
        filtered[key] = {"label": label, **run_pass(registry, subset, "hybrid", **options)}
    out["filtered"] = filtered
    empty = [Query("browse", "")] * plan.browse
    browse = {}
    for key, label, options in (
            ("plain", "newest first", {}),
            ("tag_rare", f"tag={rare_tag}", {"tag": rare_tag}),
            ("namespace", f"namespace={small_ns}", {"namespace": small_ns}),
            ("installs", "sort=installs", {"sort": "installs"}),
            ("rating", "sort=rating", {"sort": "rating"})):
        browse[key] = {"label": label, **run_pass(registry, empty, "auto", **options)}
    out["browse"] = browse

    log(f"size {size:,}: where the time goes (probed passes), model, FTS row counts")
    out["breakdown"] = {mode: breakdown(registry, queries, mode)
                        for mode in ("hybrid", "keyword")}
    out["breakdown"]["hybrid_rare_tag"] = breakdown(registry, subset, "hybrid", tag=rare_tag)
    out["model_query_ms"] = model_only(registry, [q for q in queries if q.kind == "natural"][:50])
    out["fts_rows"] = fts_matches(registry.settings.index_path, queries[:150])

    vectors = registry.search_engine.vectors
    allocated = getattr(vectors, "_matrix", None)  # capacity grows by half when full
    out["resources"] = {
        "vectors": len(vectors), "dim": vectors.dim,
        "matrix_used_bytes": len(vectors) * vectors.dim * 4,
        "matrix_allocated_bytes": int(allocated.nbytes) if allocated is not None else 0,
        "status_kb": proc_status(), "index": disk_bytes(registry.settings.index_path)}
    out["load_after"] = loadavg()
    return out


def _share_since(registry: Registry, since: str, total: int) -> float:
    conn = sqlite3.connect(f"file:{registry.settings.index_path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT count(*) FROM skills WHERE updated_at >= ?",
                           (since,)).fetchone()
    finally:
        conn.close()
    return int(row[0]) / max(1, total)


def collect_verdicts(sizes: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for size, fig in sizes.items():
        if size != AIM_SIZE:
            continue
        for label, aim in (("keyword_cold", AIM_KEYWORD_P50_MS),
                           ("keyword_warm", AIM_KEYWORD_P50_MS),
                           ("hybrid_cold", AIM_HYBRID_P50_MS),
                           ("hybrid_warm", AIM_HYBRID_P50_MS)):
            p50 = fig["passes"][label]["p50"]
            out.append({"figure": f"{label.replace('_', ' ')} p50 at {size:,}",
                        "value": f"{p50:.2f} ms", "aim": f"< {aim:g} ms", "met": p50 < aim})
        wrong = sum(sum(p["mismatched"].values()) for p in fig["passes"].values())
        out.append({"figure": f"pages served by the mode asked at {size:,}",
                    "value": f"{wrong} wrong", "aim": "0 wrong", "met": wrong == 0})
    return out


# -- report ----------------------------------------------------------------------------------

WIDTH = 96
_ROW = "{:<46} {:>7} {:>7} {:>7} {:>7} {:>5}  {:<8} {}"
# (label, probe key) rows of the breakdown; "=" rows are computed.
_PARTS: tuple[tuple[str, str], ...] = (
    ("keyword: FTS AND (+ OR) runs, rows -> hits", "keyword"),
    ("  SQLite FTS match + bm25 (+ join)", "sql fts in keyword"),
    ("  SQLite rows by id", "sql rows by id in keyword"),
    ("query embedding (embed_query: LRU or model)", "query embedding"),
    ("semantic: top-k + rows + filter", "semantic"),
    ("  matrix product (n x 384 @ q)", "matrix product"),
    ("  top-k selection (argpartition, lexsort)", "=topk"),
    ("  SQLite rows by id (filters, visibility)", "sql rows by id in semantic"),
    ("  SQLite filtered ids (filter fallback)", "sql filtered ids in semantic"),
    ("exact-name lookup (SQLite)", "exact name"),
    ("snippets for the page (SQLite)", "snippets"),
    ("fusion (fuse / rrf)", "fusion"),
    ("rank: quality + score parts + sort", "rank"),
    ("  quality lookup", "quality lookup"),
    ("    of which SQLite outcome_totals", "sql outcome totals"),
    ("  score parts + sort (rest of rank)", "=rankrest"),
    ("other (service checks, fts.build, cursor)", "=other"),
)
_TOP_LEVEL = ("keyword", "query embedding", "semantic", "exact name", "snippets", "fusion",
              "rank")


def part_ms(bd: dict[str, Any], key: str) -> float:
    parts = bd["parts_ms"]
    if key == "=topk":
        return float(parts.get("top-k (incl. product)", 0.0) - parts.get("matrix product", 0.0))
    if key == "=rankrest":
        return float(parts.get("rank", 0.0) - parts.get("quality lookup", 0.0))
    if key == "=other":
        return float(bd["total_ms"] - sum(parts.get(k, 0.0) for k in _TOP_LEVEL))
    return float(parts.get(key, 0.0))


def _ms(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def _lat_row(label: str, s: dict[str, Any], aim: float | None, size: int) -> str:
    if aim is None or size != AIM_SIZE:
        aim_text, verdict = "", ""
    else:
        aim_text, verdict = f"< {aim:g}", "met" if s["p50"] < aim else "MISSED"
    bad = sum(s.get("mismatched", {}).values())
    note = f"  {bad} served by {s['mismatched']}" if bad else ""
    ratio = s.get("cpu_per_wall")
    return _ROW.format(label, _ms(s.get("p50")), _ms(s.get("p95")), _ms(s.get("p99")),
                       _ms(s.get("max")), "" if ratio is None else f"{ratio:.2f}", aim_text,
                       verdict) + note


def render_size(fig: dict[str, Any]) -> list[str]:
    size = fig["size"]
    lines: list[str] = []
    w = lines.append
    ix, res = fig["index"], fig["resources"]
    w("")
    w(f"== {size:,} skills " + "=" * (WIDTH - 14 - len(f"{size:,}")))
    w(f"1. indexing {ix['added']:,} more skills (load average before "
      f"{fig['load_before'][0]:.2f}, after {fig['load_after'][0]:.2f})")
    w(f"   SQL + FTS  (record_versions, batches of {BATCH})   {ix['sql_s']:8.1f} s  "
      f"{ix['sql_per_s']:9,.0f} skills/s")
    if ix.get("copied"):
        w(f"   embedding  not run: {ix['copied']:,} vectors copied from embedded skills "
          "(--embed-limit); embedding time grows linearly: use the first size's rate")
    else:
        w(f"   embedding  (embed_pending, model on CPU)      {ix['embed_s']:8.1f} s  "
          f"{ix['embed_per_s']:9,.0f} skills/s")
        w(f"   total                                          {ix['total_s']:8.1f} s  "
          f"{ix['total_per_s']:9,.0f} skills/s   (generating the text: "
          f"{ix['generate_s']:.1f} s, untimed)")
    q = fig["queries"]
    w(f"2. search latency, ms: Registry.search(limit={LIMIT}), {sum(q.values())} queries "
      f"({q.get('natural', 0)} natural, {q.get('short', 0)} short, {q.get('name', 0)} names)")
    w(_ROW.format("", "p50", "p95", "p99", "max", "cpu/w", "aim p50", "verdict"))
    p = fig["passes"]
    w(_lat_row("   keyword, cold (new query text)", p["keyword_cold"], AIM_KEYWORD_P50_MS, size))
    w(_lat_row("   keyword, warm (same texts again)", p["keyword_warm"], AIM_KEYWORD_P50_MS,
               size))
    w(_lat_row("   hybrid, cold (query embedded by the model)", p["hybrid_cold"],
               AIM_HYBRID_P50_MS, size))
    w(_lat_row("   hybrid, warm (query vector cached)", p["hybrid_warm"], AIM_HYBRID_P50_MS,
               size))
    for mode in ("keyword", "hybrid"):
        for kind in ("natural", "short", "name"):
            s = p[f"{mode}_warm"]["by_kind"].get(kind)
            if s:
                w(_lat_row(f"     {mode} warm, {kind} queries ({s['n']})", s, None, size))
    sub = fig["filtered"]["recent"]["n"]
    w(f"   hybrid with a filter or sort, warm ({sub} queries each):")
    for f in fig["filtered"].values():
        w(_lat_row(f"     {f['label']}", f, None, size))
    w(f"   browse: empty query ({fig['browse']['plain']['n']} runs each):")
    for b in fig["browse"].values():
        w(_lat_row(f"     {b['label']}", b, None, size))
    w(_lat_row("   the model alone: embed one uncached query", fig["model_query_ms"], None,
               size))
    hits = p["hybrid_warm"]["with_results"], p["keyword_warm"]["with_results"]
    w(f"   queries with results: hybrid {hits[0]}, keyword {hits[1]} of {sum(q.values())}")
    bd = fig["breakdown"]
    w("3. where the time goes: mean ms per query, probed warm pass  "
      "  hybrid  keyword  hybrid+rare tag")
    for label, key in _PARTS:
        vals = [part_ms(bd[m], key) for m in ("hybrid", "keyword", "hybrid_rare_tag")]
        w(f"   {label:<58}" + "".join(f"{v:>8.2f}" for v in vals))
    w(f"   {'total (Registry.search wall, mean)':<58}"
      + "".join(f"{bd[m]['total_ms']:>8.2f}" for m in ("hybrid", "keyword", "hybrid_rare_tag")))
    fts_calls = [bd[m]["calls_per_query"].get("sql fts", 0.0) for m in ("hybrid", "keyword")]
    w(f"   FTS MATCH statements per query (AND, OR when short of candidates; snippets apart): "
      f"hybrid {fts_calls[0]:.2f}, keyword {fts_calls[1]:.2f}")
    fr = fig["fts_rows"]
    w(f"   rows matched per query (first 150): AND p50 {fr['and']['p50_rows']:,}, p90 "
      f"{fr['and']['p90_rows']:,}; OR p50 {fr['or']['p50_rows']:,}, p90 {fr['or']['p90_rows']:,}"
      f", max {fr['or']['max_rows']:,}  (count(*) of OR: p50 {fr['or']['count_p50_ms']:.1f} ms)")
    st, idx = res["status_kb"], res["index"]
    w("4. resources after this size")
    w(f"   vector matrix: {res['vectors']:,} x {res['dim']} float32 = "
      f"{res['matrix_used_bytes'] / 2**20:.1f} MiB used, "
      f"{res['matrix_allocated_bytes'] / 2**20:.1f} MiB allocated")
    w(f"   process VmRSS {st.get('VmRSS', 0) / 1024:.0f} MiB, peak VmHWM "
      f"{st.get('VmHWM', 0) / 1024:.0f} MiB (model, matrix, SQLite cache, the bench's own data)")
    w(f"   index.db {idx['db'] / 2**20:.1f} MiB + WAL {idx['wal'] / 2**20:.1f} MiB "
      f"({idx['on_disk'] / 2**20:.1f} MiB on disk)")
    return lines


def render_growth(sizes: dict[int, dict[str, Any]]) -> list[str]:
    keys = sorted(sizes)
    lines: list[str] = []
    for small, large in zip(keys, keys[1:], strict=False):
        a, b = sizes[small], sizes[large]
        factor = large / small
        ha, hb = a["breakdown"]["hybrid"], b["breakdown"]["hybrid"]

        def grow(label: str, x: float, y: float) -> str:
            return f"{label} {x:.2f} -> {y:.2f} ms ({y / x:.1f}x)" if x > 0 else label

        lines.append(f"growth {small:,} -> {large:,} skills ({factor:g}x), hybrid warm, mean "
                     "ms/query:")
        lines.append("   " + grow("matrix product", part_ms(ha, "matrix product"),
                                  part_ms(hb, "matrix product"))
                     + " -- linear in rows (one n x 384 product per query)")
        orr = (a["fts_rows"]["or"]["p50_rows"], b["fts_rows"]["or"]["p50_rows"])
        lines.append("   " + grow("keyword part (FTS + rows)", part_ms(ha, "keyword"),
                                  part_ms(hb, "keyword"))
                     + f" -- grows with matching rows (OR p50 {orr[0]:,} -> {orr[1]:,})")
        for label, key in (("top-k selection", "=topk"),
                           ("SQLite rows by id (all parts)", "sql rows by id"),
                           ("rank", "rank"), ("query embedding", "query embedding")):
            lines.append("   " + grow(label, part_ms(ha, key), part_ms(hb, key)))
        pa, pb = a["passes"], b["passes"]
        lines.append("   " + grow("keyword warm p50", pa["keyword_warm"]["p50"],
                                  pb["keyword_warm"]["p50"]) + "; "
                     + grow("hybrid warm p50", pa["hybrid_warm"]["p50"],
                            pb["hybrid_warm"]["p50"]))
    return lines


def render(result: dict[str, Any]) -> str:
    m, p = result["machine"], result["params"]
    lines = ["skills-hub search benchmark", "=" * WIDTH]
    w = lines.append
    w(f"machine : nproc {m['nproc']}, {m['cpu']}, Python {m['python']}, SQLite "
      f"{m['sqlite']}, numpy {m['numpy']}, {m['platform']}")
    w(f"params  : --sizes {','.join(str(s) for s in p['sizes'])} (in-process Registry, no git, "
      f"checks off); per size {p['natural']} natural + {p['short']} short + {p['names']} "
      f"name queries, {p['filtered']} per filter, {p['browse']} browses; limit {LIMIT}")
    w(f"corpus  : seed {SEED}, vocabulary {p['vocabulary']:,} words, {p['tags']} tags, "
      f"{len(NAMESPACES)} namespaces; model {p['model']} (loaded in {p['model_load_s']:.1f} s)")
    if p.get("resumed_from"):
        w(f"resumed : {p['resumed_from']:,} skills were already in --home (indexed and embedded "
          "by an earlier run, not timed here); smaller sizes skipped")
    tp = p.get("thread_pools") or {}
    w(f"threads : {tp.get('pools', '?')}"
      + (f"; numpy BLAS limited to {tp['blas_limit']} (--blas-threads)"
         if tp.get("blas_limit") else "; numpy BLAS default")
      + (f"; torch limited to {tp['torch_threads']} (--torch-threads)"
         if tp.get("torch_threads") else "; torch default"))
    w(f"started : {p['started']}, load average {p['load_start'][0]:.2f} "
      f"{p['load_start'][1]:.2f} {p['load_start'][2]:.2f} (1/5/15 min); "
      f"total wall {result['wall_s']:.0f} s")
    for size in sorted(result["sizes"]):
        lines += render_size(result["sizes"][size])
    growth = render_growth(result["sizes"])
    if growth:
        w("")
        lines += growth
    w("-" * WIDTH)
    verdicts = result["verdicts"]
    if not verdicts:
        w(f"no aims apply (they are set at {AIM_SIZE:,} skills)")
    else:
        for v in verdicts:
            w(f"{v['figure']:<46} {v['value']:>12}  {v['aim']:<10} "
              f"{'met' if v['met'] else 'MISSED'}")
        met = sum(v["met"] for v in verdicts)
        w(f"aims met: {met}/{len(verdicts)}" + ("" if met == len(verdicts) else "   missed: "
          + ", ".join(v["figure"] for v in verdicts if not v["met"])))
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import numpy

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "numpy": numpy.__version__,
            "platform": platform.platform(terse=True)}


def thread_pools(blas_threads: int | None) -> dict[str, Any]:
    """The BLAS / OpenMP pools loaded now (numpy's OpenBLAS, torch's OpenMP), optionally
    limiting the BLAS ones (numpy's matrix product) to `blas_threads` for the whole run."""
    try:
        import threadpoolctl  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return {"pools": "threadpoolctl not installed", "blas_limit": None}
    if blas_threads:
        # Kept in effect until the process exits (the object is not used as a context).
        threadpoolctl.threadpool_limits(blas_threads, user_api="blas")
    pools = sorted({f"{i['internal_api']} x{i['num_threads']}"
                    for i in threadpoolctl.threadpool_info()})
    return {"pools": ", ".join(pools), "blas_limit": blas_threads}


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not sizes or sizes[0] < 100:
        raise argparse.ArgumentTypeError("sizes must be at least 100")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[10_000, 100_000],
                        help="catalogue sizes, comma-separated (default 10000,100000)")
    parser.add_argument("--queries", type=int, default=300,
                        help="natural-language queries per size (plus a third as many short "
                             "ones and a fifteenth as many names)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: --sizes 2000 and 50 queries")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway home")
    parser.add_argument("--embed-limit", type=int, default=10_000,
                        help="embed only the first N skills; later ones get copies of their "
                             "vectors (latency does not depend on the values; 0: embed all)")
    parser.add_argument("--home", type=Path, default=None,
                        help="use (and keep) this home; skills a previous run indexed there "
                             "are reused, sizes below their count are skipped")
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit numpy's BLAS threads (threadpoolctl) once the model is "
                             "loaded: shows what the matrix product costs single-threaded")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads(N) once the model is loaded (the model "
                             "runs on 2 OpenMP threads by default on this VM)")
    args = parser.parse_args(argv)
    if args.quick:
        sizes, plan = [2_000], QueryPlan(natural=35, short=10, names=5, filtered=20, browse=20)
    else:
        if args.queries < 15:
            parser.error("--queries must be at least 15")
        sizes = args.sizes
        plan = QueryPlan(natural=args.queries, short=args.queries // 3,
                         names=args.queries // 15, filtered=100, browse=50)

    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    load_start = loadavg()
    t_start = time.perf_counter()
    vocab = Vocabulary.build()
    cat = Catalogue(vocab, datetime.now(UTC).replace(microsecond=0))
    if args.home is not None:
        home = args.home.resolve()
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = Path(tempfile.mkdtemp(prefix="skills-hub-search-bench-"))
    registry = Registry(Settings(home=home, seed=False, sandbox="off"))
    figures: dict[int, dict[str, Any]] = {}
    params: dict[str, Any] = {
        "sizes": sizes, "natural": plan.natural, "short": plan.short, "names": plan.names,
        "filtered": plan.filtered, "browse": plan.browse, "quick": args.quick, "limit": LIMIT,
        "seed": SEED, "vocabulary": vocab.size, "tags": len(vocab.tags),
        "model": registry.embedder.model_id, "model_load_s": 0.0, "started": started,
        "load_start": load_start, "thread_pools": {}, "resumed_from": 0}

    def result() -> dict[str, Any]:
        return {"params": params, "machine": machine(), "sizes": figures,
                "verdicts": collect_verdicts(figures), "wall_s": time.perf_counter() - t_start}

    try:
        if (home / "index.db").exists():
            # Resuming (--home): Registry.start() would reconcile the index with git, where
            # the synthetic skills are not, and drop them. Start what search needs instead:
            # the schema, the stored vectors, the model and its worker.
            registry.store.db.migrate()
            registry.search_engine.start()
        else:
            registry.start()
        log(f"home {home}; loading the embedding model ...")
        t0 = time.perf_counter()
        if not registry.embedder.wait(MODEL_TIMEOUT_S):
            log(f"the embedding model did not load: {registry.embedder.error}")
            return 1
        params["model_load_s"] = time.perf_counter() - t0
        # The engine's background worker runs embed_pending once when the model is ready;
        # let that run finish so it cannot race the timed embed_pending below (with --home
        # it may have vectors left to embed: they are not timed). Rows written with
        # record_versions directly do not wake the worker again.
        if not registry.search_engine.wait_indexed(None if args.home else 60):
            log("the start-up embedding did not finish")
        time.sleep(1.0)
        resumed = resume(registry, cat)
        params["resumed_from"] = resumed
        if resumed:
            skipped = [size for size in sizes if size < resumed]
            sizes = [size for size in sizes if size >= resumed]
            params["sizes"] = sizes
            log(f"--home holds {resumed:,} skills (regenerated in memory, not re-indexed); "
                f"skipping sizes {skipped}")
        if args.torch_threads:
            import torch

            torch.set_num_threads(args.torch_threads)
        params["thread_pools"] = thread_pools(args.blas_threads)
        params["thread_pools"]["torch_threads"] = args.torch_threads
        log(f"model ready in {params['model_load_s']:.1f} s; thread pools: "
            f"{params['thread_pools']['pools']}")
        asked: set[str] = set()
        for size in sizes:
            figures[size] = measure_size(registry, cat, size, plan, asked,
                                         args.embed_limit or None)
            print("\n".join(render_size(figures[size])), file=sys.stderr, flush=True)
            if args.json:  # after every size, so a run stopped later keeps what it measured
                write_json(args.json, {**result(), "partial": size != sizes[-1]})
    finally:
        registry.close()
        if args.keep or args.home is not None:
            log(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    final = result()
    print(render(final))
    if args.json:
        write_json(args.json, {**final, "partial": False})
    return 0


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def resume(registry: Registry, cat: Catalogue) -> int:
    """Skills already in the home (--home): regenerate them in memory; returns how many."""
    count = registry.store.catalogue.count_skills(readable=frozenset(), namespace=None)
    for i in range(count):
        skill = make_skill(cat.vocab, i, cat.taken, cat.now)
        cat.names.append(skill.name)
        cat.tags.update(skill.tags.split(", "))
        cat.namespaces[skill.namespace] += 1
    cat.count = count
    return count


if __name__ == "__main__":
    sys.exit(main())
