"""Server time of the pages people use, at 1,000 skills (issue 14's aims).

Publishes N synthetic skills (one namespace, keyword search only, no sandboxed tests) into a
throwaway home through the service, then times each page in-process (the ASGI app through
Starlette's test client: what the server spends, without sockets): the home page, the
as-you-type search fragment (`HX-Request`), a namespace page, a skill page, a file page, and
the diff between two versions (every tenth skill gets a second version that changes a few
lines of SKILL.md and of a 200-line script and adds a file), in the unified and the
side-by-side view. Prints p50/p95 per page against the aims (pages p50 < 20 ms, the
fragment < 15 ms); nothing is asserted.

    .venv/bin/python bench/pages_bench.py [--skills 1000] [--requests 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from skills_hub.access.principal import OPERATOR  # noqa: E402
from skills_hub.config import Settings  # noqa: E402
from skills_hub.services import Registry  # noqa: E402
from skills_hub.skill.bundle import Bundle  # noqa: E402
from skills_hub.web.app import create_app  # noqa: E402

NAMESPACE = "bench"
AIM_PAGE_P50_MS = 20.0
AIM_FRAGMENT_P50_MS = 15.0
WORDS = ("report chart sales weekly monthly csv parse table schema deploy review release "
         "invoice budget forecast summary cluster metrics latency search index cache").split()


def skill_md(i: int, rng: random.Random) -> bytes:
    words = " ".join(rng.choice(WORDS) for _ in range(12))
    return (f"---\nname: skill-{i:05d}\ndescription: Handles {words} for the team, number "
            f"{i}.\nlicense: Apache-2.0\nmetadata:\n  author: bench\n  tags: \"bench, "
            f"{rng.choice(WORDS)}\"\n---\n# skill {i}\n\n## Steps\n\n1. {words}.\n2. Check "
            f"the result.\n\n```python\nprint({i})\n```\n").encode()


def script(i: int, changed: bool) -> bytes:
    """A 200-line helper script; the second version changes every twentieth line."""
    return "".join(
        f"def step_{n}(rows):\n    return [r for r in rows if r.get('k') != {n + i}]\n"
        if not (changed and n % 20 == 7) else
        f"def step_{n}(rows, limit=None):\n    return [r for r in rows if r][:limit]\n"
        for n in range(100)).encode()


def second_version(i: int, first: bytes) -> Bundle:
    """A second version of skill i: a few lines of SKILL.md changed, a script changed, a file
    added."""
    text = first.decode().replace("2. Check the result.", "2. Check the result twice.\n"
                                  "3. Write down what changed.")
    return Bundle({"SKILL.md": text.encode() + b"\n## Notes\n\nSee references/notes.md.\n",
                   "scripts/steps.py": script(i, True),
                   "references/notes.md": b"# Notes\n\nWhat the second version adds.\n"})


def timed(client: TestClient, url: str, n: int, headers: dict[str, str] | None = None
          ) -> dict[str, float]:
    for _ in range(min(20, n)):  # warm-up
        client.get(url, headers=headers)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        samples.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    samples.sort()
    return {"p50_ms": statistics.median(samples),
            "p95_ms": samples[int(0.95 * (len(samples) - 1))], "n": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skills", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = random.Random(7)
    home = Path(tempfile.mkdtemp(prefix="skills-hub-pages-")) / "data"
    settings = Settings(home=home, seed=False, semantic="off", sandbox="off")
    registry = Registry(settings)
    registry.start()
    start = time.perf_counter()
    name = f"skill-{args.skills // 2:05d}"
    seconds = {i for i in range(args.skills) if i % 10 == 0} | {args.skills // 2}
    for i in range(args.skills):
        first = skill_md(i, rng)
        files = {"SKILL.md": first, **({"scripts/steps.py": script(i, False)}
                                       if i in seconds else {})}
        registry.publish(NAMESPACE, Bundle(files), principal=OPERATOR)
        if i in seconds:
            registry.publish(NAMESPACE, second_version(i, first), principal=OPERATOR,
                             version="0.2.0")
    print(f"published {args.skills} skills ({len(seconds)} with a second version) in "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    diff = f"/{NAMESPACE}/{name}/diff/0.1.0...0.2.0"
    pages: dict[str, tuple[str, dict[str, str] | None, float]] = {
        "home": ("/", None, AIM_PAGE_P50_MS),
        "search fragment": ("/search?q=weekly+sales", {"HX-Request": "true"},
                            AIM_FRAGMENT_P50_MS),
        "namespace": (f"/{NAMESPACE}", None, AIM_PAGE_P50_MS),
        "skill": (f"/{NAMESPACE}/{name}", None, AIM_PAGE_P50_MS),
        "file": (f"/{NAMESPACE}/{name}/v/0.1.0/files/SKILL.md", None, AIM_PAGE_P50_MS),
        "diff": (diff, None, AIM_PAGE_P50_MS),
        "diff side by side": (diff + "?view=split", None, AIM_PAGE_P50_MS),
    }
    results: dict[str, Any] = {"skills": args.skills}
    with TestClient(create_app(settings, registry)) as client:
        print(f"{'page':<18} {'p50 ms':>8} {'p95 ms':>8}  aim p50")
        for label, (url, headers, aim) in pages.items():
            if client.get(url, headers=headers).status_code == 404:
                print(f"{label:<18} {'-':>8} {'-':>8}  (not served by this code)")
                continue
            figures = timed(client, url, args.requests, headers)
            met = "met" if figures["p50_ms"] < aim else "MISSED"
            print(f"{label:<18} {figures['p50_ms']:8.2f} {figures['p95_ms']:8.2f}  "
                  f"< {aim:.0f} ms {met}")
            results[label] = {**figures, "aim_p50_ms": aim}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
