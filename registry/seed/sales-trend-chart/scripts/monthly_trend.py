#!/usr/bin/env python3
"""Aggregate a sales CSV by calendar month and draw an SVG line chart.

Only the Python standard library is used. The script sums (or counts) a value
column per YYYY-MM, fills months with no sales with zero, prints the monthly
table and writes a self-contained SVG file.

Exit codes: 0 ok, 1 input problem (missing file/column, no parsable rows),
2 bad arguments.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from datetime import datetime
from html import escape
from pathlib import Path

DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y",
                "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m")


def parse_date(text: str, fmt: str | None) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    formats = (fmt,) if fmt else DATE_FORMATS
    for candidate in formats:
        try:
            return datetime.strptime(text, candidate)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def parse_amount(text: str) -> float | None:
    cleaned = text.strip().replace(",", "")
    for symbol in ("$", "€", "£"):
        cleaned = cleaned.replace(symbol, "")
    negative = cleaned.startswith("(") and cleaned.endswith(")")
    cleaned = cleaned.strip("()")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return -value if negative else value


def month_range(first: str, last: str) -> list[str]:
    year, month = map(int, first.split("-"))
    end_year, end_month = map(int, last.split("-"))
    months = []
    while (year, month) <= (end_year, end_month):
        months.append(f"{year:04d}-{month:02d}")
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return months


def aggregate(path: Path, date_col: str, value_col: str | None, date_fmt: str | None,
              delimiter: str) -> tuple[dict[str, float], int]:
    totals: dict[str, float] = defaultdict(float)
    skipped = 0
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        fields = reader.fieldnames or []
        for needed in filter(None, (date_col, value_col)):
            if needed not in fields:
                raise ValueError(f"column {needed!r} not found; columns are: {', '.join(fields)}")
        for row in reader:
            when = parse_date(row.get(date_col) or "", date_fmt)
            if when is None:
                skipped += 1
                continue
            if value_col is None:
                amount = 1.0
            else:
                amount = parse_amount(row.get(value_col) or "")
                if amount is None:
                    skipped += 1
                    continue
            totals[when.strftime("%Y-%m")] += amount
    return totals, skipped


def nice_step(raw: float) -> float:
    """Round a raw tick interval up to 1, 2, 2.5 or 5 times a power of ten."""
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def render_svg(series: list[tuple[str, float]], title: str, width: int, height: int) -> str:
    left, right, top, bottom = 70, 20, 40, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v in series]
    step = nice_step((max(max(values), 0.0) - min(min(values), 0.0)) / 4)
    low = math.floor(min(min(values), 0.0) / step) * step
    high = math.ceil(max(max(values), 0.0) / step) * step
    if high == low:
        high = low + step
    span = high - low
    ticks = int(round(span / step))
    step_x = plot_w / max(len(series) - 1, 1)

    def x_at(i: int) -> float:
        return left + i * step_x

    def y_at(v: float) -> float:
        return top + plot_h - (v - low) / span * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for tick in range(ticks + 1):
        value = low + step * tick
        y = y_at(value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,.0f}</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>')
    parts.append(f'<line x1="{left}" y1="{y_at(0):.1f}" x2="{width - right}" y2="{y_at(0):.1f}" stroke="#333"/>')

    label_every = max(1, len(series) // 12)
    for i, (month, _) in enumerate(series):
        if i % label_every == 0 or i == len(series) - 1:
            x = x_at(i)
            parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="end" '
                         f'transform="rotate(-40 {x:.1f} {top + plot_h + 16})">{month}</text>')

    points = " ".join(f"{x_at(i):.1f},{y_at(v):.1f}" for i, (_, v) in enumerate(series))
    parts.append(f'<polyline points="{points}" fill="none" stroke="#2563eb" stroke-width="2"/>')
    for i, (month, v) in enumerate(series):
        parts.append(f'<circle cx="{x_at(i):.1f}" cy="{y_at(v):.1f}" r="3" fill="#2563eb">'
                     f'<title>{month}: {v:,.2f}</title></circle>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Monthly sales trend from a CSV, as a table and an SVG line chart.")
    parser.add_argument("csv", type=Path, help="input CSV file")
    parser.add_argument("--date-col", default="date", help="date column name (default: date)")
    parser.add_argument("--value-col", default="amount",
                        help="numeric column to sum (default: amount); use --count to count rows instead")
    parser.add_argument("--count", action="store_true", help="count rows per month instead of summing")
    parser.add_argument("--date-format", help="strptime format, e.g. %%d/%%m/%%Y (default: try common formats)")
    parser.add_argument("--delimiter", default=",", help="field delimiter (default: ,)")
    parser.add_argument("--out", type=Path, default=Path("monthly_trend.svg"), help="SVG output path")
    parser.add_argument("--title", default="Monthly sales", help="chart title")
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=400)
    parser.add_argument("--no-fill", action="store_true", help="do not insert zero rows for months without data")
    args = parser.parse_args(argv)

    if args.width < 200 or args.height < 150:
        parser.error("--width must be >= 200 and --height >= 150")
    if not args.csv.is_file():
        print(f"error: {args.csv} is not a file", file=sys.stderr)
        return 1
    value_col = None if args.count else args.value_col
    try:
        totals, skipped = aggregate(args.csv, args.date_col, value_col, args.date_format, args.delimiter)
    except (OSError, ValueError, csv.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not totals:
        print("error: no rows with a parsable date and value", file=sys.stderr)
        return 1

    months = sorted(totals)
    if not args.no_fill:
        months = month_range(months[0], months[-1])
    series = [(m, round(totals.get(m, 0.0), 2)) for m in months]

    print("month,total,change_pct")
    previous = None
    for month, total in series:
        change = "" if not previous else f"{(total - previous) / abs(previous) * 100:.1f}"
        print(f"{month},{total:.2f},{change}")
        previous = total
    if skipped:
        print(f"warning: skipped {skipped} rows with an unparsable date or value", file=sys.stderr)

    try:
        args.out.write_text(render_svg(series, args.title, args.width, args.height), encoding="utf-8")
    except OSError as exc:
        print(f"error: could not write {args.out}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(series)} months)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
