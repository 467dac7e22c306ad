#!/usr/bin/env python3
"""Profile a CSV/TSV file using only the Python standard library.

Prints, for every column: inferred type, filled/missing counts, distinct
values, numeric statistics (min, max, mean, median, stdev) or date range,
and the most frequent values.

Exit codes: 0 ok, 1 file could not be read or parsed, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

MISSING = {"", "na", "n/a", "null", "none", "nan", "-"}
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S", "%d.%m.%Y")


def parse_number(text: str) -> float | None:
    cleaned = text.replace(",", "").replace("_", "").strip()
    for symbol in ("$", "€", "£", "%"):
        cleaned = cleaned.replace(symbol, "")
    negative = cleaned.startswith("(") and cleaned.endswith(")")
    try:
        value = float(cleaned.strip("()"))
    except ValueError:
        return None
    return -value if negative else value


def parse_date(text: str) -> datetime | None:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


def mostly(parsed: list, present: list[str], threshold: float) -> tuple[list, list[str]] | None:
    """Return (parsed values, rejected raw values) if enough values parsed."""
    good = [p for p in parsed if p is not None]
    if not good or len(good) / len(present) < threshold:
        return None
    rejected = [raw for raw, p in zip(present, parsed) if p is None]
    return good, rejected


def infer_column(values: list[str], top: int, threshold: float) -> dict:
    present = [v for v in values if v.strip().lower() not in MISSING]
    info: dict = {
        "filled": len(present),
        "missing": len(values) - len(present),
        "distinct": len(set(present)),
    }
    if not present:
        info["type"] = "empty"
        return info

    numeric = mostly([parse_number(v) for v in present], present, threshold)
    if numeric:
        nums, rejected = numeric
        info["type"] = "integer" if all(n.is_integer() for n in nums) else "float"
        info["min"] = min(nums)
        info["max"] = max(nums)
        info["mean"] = round(statistics.fmean(nums), 4)
        info["median"] = statistics.median(nums)
        info["stdev"] = round(statistics.stdev(nums), 4) if len(nums) > 1 else 0.0
        info["sum"] = round(sum(nums), 4)
        if rejected:
            info["invalid"] = len(rejected)
            info["invalid_examples"] = sorted(set(rejected))[:top]
        return info

    dated = mostly([parse_date(v) for v in present], present, threshold)
    if dated:
        dates, rejected = dated
        info["type"] = "date"
        info["min"] = min(dates).isoformat(sep=" ")
        info["max"] = max(dates).isoformat(sep=" ")
        if rejected:
            info["invalid"] = len(rejected)
            info["invalid_examples"] = sorted(set(rejected))[:top]
        return info

    lowered = {v.strip().lower() for v in present}
    if lowered <= {"true", "false", "yes", "no", "y", "n", "0", "1"}:
        info["type"] = "boolean"
    else:
        info["type"] = "text"
        lengths = [len(v) for v in present]
        info["min_length"] = min(lengths)
        info["max_length"] = max(lengths)
    info["top_values"] = Counter(present).most_common(top)
    return info


def read_rows(path: Path, delimiter: str | None, encoding: str, limit: int | None):
    with path.open(newline="", encoding=encoding, errors="replace") as handle:
        sample = handle.read(64 * 1024)
        handle.seek(0)
        if delimiter is None:
            try:
                delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:
                delimiter = ","
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise ValueError("file is empty")
        rows = []
        short_rows = 0
        for index, row in enumerate(reader):
            if limit is not None and index >= limit:
                break
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                short_rows += 1
                row = (row + [""] * len(header))[: len(header)]
            rows.append(row)
    return delimiter, header, rows, short_rows


def format_text(report: dict) -> str:
    lines = [
        f"File:       {report['file']}",
        f"Delimiter:  {report['delimiter']!r}",
        f"Rows:       {report['rows']}",
        f"Columns:    {len(report['columns'])}",
    ]
    if report["ragged_rows"]:
        lines.append(f"WARNING:    {report['ragged_rows']} rows had a different field count than the header")
    if report["duplicate_headers"]:
        lines.append(f"WARNING:    duplicate column names: {', '.join(report['duplicate_headers'])}")
    for name, col in report["columns"].items():
        lines.append("")
        lines.append(f"[{name}] type={col['type']} filled={col['filled']} "
                     f"missing={col['missing']} distinct={col['distinct']}")
        for key in ("min", "max", "mean", "median", "stdev", "sum", "min_length", "max_length",
                    "invalid", "invalid_examples"):
            if key in col:
                lines.append(f"  {key:<16} {col[key]}")
        if col.get("top_values"):
            shown = ", ".join(f"{value!r} x{count}" for value, count in col["top_values"])
            lines.append(f"  {'top':<16} {shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise a CSV/TSV file (stdlib only).")
    parser.add_argument("path", type=Path, help="CSV or TSV file to profile")
    parser.add_argument("--delimiter", help="field delimiter (default: auto-detect)")
    parser.add_argument("--encoding", default="utf-8-sig", help="file encoding (default: utf-8-sig)")
    parser.add_argument("--limit", type=int, help="only read the first N data rows")
    parser.add_argument("--top", type=int, default=5, help="how many frequent values to list (default: 5)")
    parser.add_argument("--threshold", type=float, default=0.8,
                        help="share of values that must parse for a numeric/date type (default: 0.8)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be a positive integer")
    if not 0 < args.threshold <= 1:
        parser.error("--threshold must be in (0, 1]")
    if not args.path.is_file():
        print(f"error: {args.path} is not a file", file=sys.stderr)
        return 1
    try:
        delimiter, header, rows, ragged = read_rows(args.path, args.delimiter, args.encoding, args.limit)
    except (OSError, ValueError, csv.Error) as exc:
        print(f"error: could not read {args.path}: {exc}", file=sys.stderr)
        return 1

    counts = Counter(header)
    report = {
        "file": str(args.path),
        "delimiter": delimiter,
        "rows": len(rows),
        "ragged_rows": ragged,
        "duplicate_headers": [name for name, n in counts.items() if n > 1],
        "columns": {},
    }
    for index, name in enumerate(header):
        key = name if counts[name] == 1 else f"{name}#{index}"
        report["columns"][key or f"column_{index}"] = infer_column([row[index] for row in rows], args.top, args.threshold)

    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
