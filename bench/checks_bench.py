"""Publish-pipeline benchmark: detection, false positives and speed.

1. Detection on the labelled malicious set (tests/labelled/malicious): a sample is detected
   when its verdict is `dangerous` or `caution` AND a finding at high or critical severity
   names its primary family (labels.yaml). Also reported: the share that is `dangerous`.
2. False positives on the labelled benign set and on every skill of the public corpus
   (../shared/corpus): how many are `dangerous` (aim 0) and `caution` (aim <= 5 %).
3. Speed: pipeline p50/p95 for skills without tests (every corpus skill), and with a
   sandboxed test run (a skill with one script test; a skill with a code template).

    python bench/checks_bench.py [--corpus PATH] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skills_hub.checks.pipeline import Options, Report, check_bundle  # noqa: E402
from skills_hub.checks.sandbox import sandbox_available  # noqa: E402
from skills_hub.errors import HubError  # noqa: E402
from skills_hub.skill.bundle import Bundle, from_directory, from_files  # noqa: E402

LABELLED = ROOT / "tests" / "labelled"
CORPUS = ROOT.parent / "shared" / "corpus"
FLAG = ("high", "critical")


def flagged_families(report: Report) -> set[str]:
    return {f.family for f in report.findings if f.counts and f.severity.label in FLAG}


def flagged_rules(report: Report) -> list[str]:
    return sorted({f"{f.rule}@{f.file}:{f.line}" for f in report.findings
                   if f.counts and f.severity.label in FLAG})


def detection(options: Options) -> dict[str, Any]:
    labels = yaml.safe_load((LABELLED / "labels.yaml").read_text())
    rows = []
    for name, label in sorted(labels["malicious"].items()):
        report = check_bundle(from_directory(LABELLED / "malicious" / name), options)
        families = flagged_families(report)
        primary = label["families"][0]
        rows.append({
            "name": name, "verdict": report.verdict, "primary": primary,
            "detected": report.verdict in ("dangerous", "caution") and primary in families,
            "flagged": report.verdict in ("dangerous", "caution"),
            "families_found": sorted(families),
            "all_families_found": set(label["families"]) <= families,
        })
    benign = []
    for name in sorted(labels["benign"]):
        report = check_bundle(from_directory(LABELLED / "benign" / name), options)
        benign.append({"name": name, "verdict": report.verdict, "flagged": flagged_rules(report)})
    n = len(rows)
    return {
        "malicious": n,
        "detected": sum(r["detected"] for r in rows),
        "flagged_any_family": sum(r["flagged"] for r in rows),
        "dangerous": sum(r["verdict"] == "dangerous" for r in rows),
        "all_families": sum(r["all_families_found"] for r in rows),
        "misses": [r for r in rows if not r["detected"]],
        "benign": len(benign),
        "benign_dangerous": [b for b in benign if b["verdict"] == "dangerous"],
        "benign_caution": [b for b in benign if b["verdict"] == "caution"],
    }


def corpus_skills(corpus: Path) -> list[Path]:
    return sorted(p.parent for p in corpus.rglob("SKILL.md"))


def false_positives(corpus: Path, options: Options) -> dict[str, Any]:
    results, skipped, times = [], [], []
    for folder in corpus_skills(corpus):
        try:
            bundle = from_directory(folder)
        except HubError as exc:
            skipped.append({"skill": str(folder.relative_to(corpus)), "why": exc.code})
            continue
        start = time.perf_counter()
        report = check_bundle(bundle, options)
        times.append((time.perf_counter() - start) * 1000)
        results.append({"skill": str(folder.relative_to(corpus)), "verdict": report.verdict,
                        "flagged": flagged_rules(report)})
    n = len(results)
    caution = [r for r in results if r["verdict"] == "caution"]
    return {
        "skills": n, "skipped": skipped,
        "dangerous": [r for r in results if r["verdict"] == "dangerous"],
        "caution": caution,
        "caution_rate": round(len(caution) / n, 4) if n else 0.0,
        "timing_ms": summary(times),
    }


def summary(times: list[float]) -> dict[str, float]:
    if not times:
        return {}
    ordered = sorted(times)
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
            "max": round(ordered[-1], 2)}


def sandboxed_timings(runs: int) -> dict[str, Any]:
    md = (b"---\nname: csv-stats\ndescription: Summarise a CSV file's numeric columns.\n"
          b"---\n# CSV stats\nRun `python3 scripts/stats.py data.csv`.\n")
    script = (b"import csv, statistics, sys\n"
              b"rows = list(csv.reader(open(sys.argv[1])))\n"
              b"print(statistics.mean(float(r[1]) for r in rows[1:]))\n")
    test = (b"import subprocess, sys, pathlib\n"
            b"pathlib.Path('t.csv').write_text('a,b\\nx,1\\ny,3\\n')\n"
            b"out = subprocess.run([sys.executable, 'scripts/stats.py', 't.csv'],\n"
            b"                     capture_output=True, text=True, check=True).stdout\n"
            b"assert out.strip() == '2.0', out\n")
    with_test = from_files([("SKILL.md", md, False), ("scripts/stats.py", script, False),
                            ("tests/test_stats.py", test, False)])
    template_md = (b"---\nname: add-numbers\ndescription: Add two numbers.\n"
                   b"code_template: templates/add.py\ntest_parameters: tests/params.json\n"
                   b"---\n# Add\n")
    template = from_files([
        ("SKILL.md", template_md, False),
        ("templates/add.py", b"def main(a, b):\n    return a + b\n", False),
        ("tests/params.json", b'[{"args": {"a": 1, "b": 2}, "expect": 3}]', False)])
    out: dict[str, Any] = {"isolation": sandbox_available()}
    for label, bundle in (("script_test", with_test), ("code_template", template)):
        times, verdicts = [], set()
        for _ in range(runs):
            start = time.perf_counter()
            report = check_bundle(bundle)
            times.append((time.perf_counter() - start) * 1000)
            verdicts.add(report.verdict)
            cases = (report.sandbox or {}).get("cases") or []
        out[label] = {**summary(times), "verdicts": sorted(verdicts),
                      "passed": all(c.get("passed") for c in cases) and bool(cases)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    options = Options()  # as the server runs it: sandbox "auto"
    check_bundle(Bundle(files={"SKILL.md": b"---\nname: w\ndescription: w\n---\n"}), options)

    det = detection(options)
    fp = false_positives(args.corpus, options)
    speed = sandboxed_timings(args.runs)
    result = {"detection": det, "corpus": fp, "sandboxed": speed}

    print(f"labelled malicious set: {det['detected']}/{det['malicious']} detected with the "
          f"right family ({100 * det['detected'] / det['malicious']:.1f} %); "
          f"{det['flagged_any_family']} flagged at all; {det['dangerous']} dangerous; "
          f"{det['all_families']} with every labelled family")
    for miss in det["misses"]:
        print(f"  MISS {miss['name']}: verdict {miss['verdict']}, wanted {miss['primary']}, "
              f"found {miss['families_found']}")
    print(f"labelled benign set: {len(det['benign_dangerous'])} dangerous, "
          f"{len(det['benign_caution'])} caution of {det['benign']}")
    for b in det["benign_dangerous"] + det["benign_caution"]:
        print(f"  {b['verdict'].upper()} {b['name']}: {', '.join(b['flagged'])}")
    print(f"corpus ({args.corpus}): {fp['skills']} skills ({len(fp['skipped'])} unreadable), "
          f"{len(fp['dangerous'])} dangerous, {len(fp['caution'])} caution "
          f"({100 * fp['caution_rate']:.1f} %)")
    for r in fp["dangerous"] + fp["caution"]:
        print(f"  {r['verdict'].upper()} {r['skill']}: {', '.join(r['flagged'])}")
    t = fp["timing_ms"]
    print(f"pipeline without tests (corpus skills): p50 {t.get('p50')} ms, p95 {t.get('p95')} "
          f"ms, max {t.get('max')} ms (aim p50 < 300 ms)")
    for label in ("script_test", "code_template"):
        s = speed[label]
        print(f"pipeline with a sandboxed run ({label}, {speed['isolation']}): p50 {s['p50']} "
              f"ms, p95 {s['p95']} ms, verdicts {s['verdicts']}, tests passed: {s['passed']} "
              f"(aim p50 < 3000 ms)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
