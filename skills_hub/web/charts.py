"""The skill page's evidence chart: the success rate of outcome reports per day or week and
version, drawn on the server as a small SVG (no script, no chart library).

`evidence_chart` turns a timeline (services.outcomes.OutcomeTimeline) into a `Chart`, plain
geometry in the SVG's own units; `render` writes it as escaped markup that scales with its
viewBox to the width of the page. Colours are classes (`chart-s0`..`chart-s9`, styled in
static/style.css for the light and the dark scheme), dashes tell lines apart without colour,
and a dot's area grows with the number of reports it stands for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from html import escape

from markupsafe import Markup

from ..services.outcomes import OutcomeTimeline

WIDTH, HEIGHT = 400, 220
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 24, 44  # the plot's margins: tick labels, axis titles
MAX_LINES = 10     # the newest versions drawn; the table below the chart has every version
MAX_X_LABELS = 6   # bucket labels on the x-axis (every k-th bucket is labelled)
Y_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)
DOT_MIN, DOT_MAX = 2.5, 6.0  # dot radius for the fewest and the most reports in a bucket
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Tick:
    at: float    # x or y in SVG units
    label: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    r: float
    label: str   # the tooltip: version, bucket, counts


@dataclass(frozen=True)
class Line:
    index: int        # the colour and dash class: chart-s{index}
    version: str
    path: str         # SVG path data; a bucket without reports breaks the line
    dots: list[Dot]
    successes: int
    failures: int

    @property
    def reports(self) -> int:
        return self.successes + self.failures

    @property
    def text(self) -> str:
        """'96% of 1,234 reports'."""
        return f"{percent(self.successes, self.reports)} of {plural(self.reports, 'report')}"


@dataclass(frozen=True)
class Chart:
    unit: str             # "day" or "week"
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    lines: list[Line]     # newest version first
    hidden: int           # versions with reports that are not drawn (beyond MAX_LINES)
    summary: str          # the chart in words, for screen readers and the tooltip
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def svg(self) -> Markup:
        return render(self)

    @property
    def plot(self) -> tuple[float, float, float, float]:
        """The plot area: left, top, right, bottom."""
        return LEFT, TOP, self.width - RIGHT, self.height - BOTTOM


def evidence_chart(timeline: OutcomeTimeline | None) -> Chart | None:
    """The chart of a timeline; None when there is nothing to draw."""
    if timeline is None or not timeline.series or timeline.buckets < 1:
        return None
    n = timeline.buckets
    drawn = timeline.series[:MAX_LINES]
    most = max((s + f for series in drawn for s, f in series.counts), default=0)
    if most == 0:
        return None
    unit = "day" if timeline.step_days == 1 else "week"
    lines = []
    for index, series in enumerate(drawn):
        dots = []
        for i, (s, f) in enumerate(series.counts):
            if s + f:
                when = bucket_label(timeline.bucket_start(i), unit)
                dots.append(Dot(x_of(i, n), y_of(s / (s + f)), dot_radius(s + f, most),
                                f"v{series.version}, {when}: {plural(s, 'success')}, "
                                f"{plural(f, 'failure')} ({percent(s, s + f)})"))
        lines.append(Line(index, series.version, line_path(series.counts, n), dots,
                          series.successes, series.failures))
    hidden = len(timeline.series) - len(drawn)
    return Chart(unit, x_ticks(timeline), [Tick(y_of(v), f"{v:.0%}") for v in Y_TICKS],
                 lines, hidden, summary(timeline, unit, lines, hidden))


# -- geometry ---------------------------------------------------------------------------------


def x_of(index: int, buckets: int) -> float:
    """The centre of bucket `index` of `buckets` across the plot."""
    width = WIDTH - RIGHT - LEFT
    return round(LEFT + (index + 0.5) * width / buckets, 2)


def y_of(rate: float) -> float:
    """A success rate (0..1) as a height: 1 at the top of the plot, 0 at its bottom."""
    rate = min(1.0, max(0.0, rate))
    return round(TOP + (1 - rate) * (HEIGHT - BOTTOM - TOP), 2)


def dot_radius(reports: int, most: int) -> float:
    """A dot's area grows with its reports: DOT_MIN for one, DOT_MAX for the most."""
    if most <= 0:
        return DOT_MIN
    return round(DOT_MIN + (DOT_MAX - DOT_MIN) * math.sqrt(reports / most), 2)


def line_path(counts: list[tuple[int, int]], buckets: int) -> str:
    """Path data through the buckets with reports; an empty bucket ends a segment, and a
    segment of one bucket draws nothing (its dot shows it)."""
    segments: list[list[str]] = [[]]
    for i, (s, f) in enumerate(counts):
        if s + f:
            segments[-1].append(f"{x_of(i, buckets):g} {y_of(s / (s + f)):g}")
        elif segments[-1]:
            segments.append([])
    return " ".join("M" + " L".join(points) for points in segments if len(points) > 1)


def x_ticks(timeline: OutcomeTimeline) -> list[Tick]:
    """Every k-th bucket's first day, at most MAX_X_LABELS labels, the newest always."""
    n = timeline.buckets
    step = max(1, math.ceil(n / MAX_X_LABELS))
    return [Tick(x_of(i, n), short_date(timeline.bucket_start(i)))
            for i in range(n - 1, -1, -step)][::-1]


# -- words ------------------------------------------------------------------------------------


def short_date(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day}"


def bucket_label(start: date, unit: str) -> str:
    return short_date(start) if unit == "day" else f"week of {short_date(start)}"


def percent(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "no reports"


def plural(count: int, noun: str) -> str:
    word = noun if count == 1 else (noun + "es" if noun.endswith("s") else noun + "s")
    return f"{count:,} {word}"


def summary(timeline: OutcomeTimeline, unit: str, lines: list[Line], hidden: int) -> str:
    """The chart in words: its window, then each drawn version's share of successes."""
    head = (f"Success rate of outcome reports per {unit}, "
            f"{short_date(timeline.start)} to {short_date(timeline.end)} (UTC), "
            f"{plural(len(lines), 'version')}.")
    parts = [f"v{line.version}: {line.text}, {plural(line.successes, 'success')} and "
             f"{plural(line.failures, 'failure')}." for line in lines]
    if hidden:
        parts.append(f"{plural(hidden, 'older version')} not drawn.")
    return " ".join([head, *parts])


# -- markup -----------------------------------------------------------------------------------


def render(chart: Chart) -> Markup:
    """The chart as SVG markup, every text escaped; it fills the width it is given."""
    left, top, right, bottom = chart.plot
    out = [f'<svg class="evidence-chart" xmlns="http://www.w3.org/2000/svg" '
           f'viewBox="0 0 {chart.width} {chart.height}" width="100%" role="img" '
           f'aria-label="{escape(chart.summary)}">',
           f"<title>{escape(chart.summary)}</title>",
           '<g class="chart-grid">']
    out += [f'<line x1="{left:g}" y1="{t.at:g}" x2="{right:g}" y2="{t.at:g}"/>'
            for t in chart.y_ticks]
    out.append('</g><g class="chart-axis">')
    out += [f'<text x="{left - 6:g}" y="{t.at + 4:g}" text-anchor="end">{escape(t.label)}</text>'
            for t in chart.y_ticks]
    out += [f'<text x="{t.at:g}" y="{bottom + 16:g}" text-anchor="middle">{escape(t.label)}'
            "</text>" for t in chart.x_ticks]
    out.append(f'<text class="chart-title" x="{left:g}" y="{top - 10:g}">success rate</text>')
    out.append(f'<text class="chart-title" x="{(left + right) / 2:g}" y="{chart.height - 6:g}" '
               f'text-anchor="middle">{"day" if chart.unit == "day" else "week starting"} '
               "(UTC)</text>")
    out.append('</g><g class="chart-lines">')
    for line in reversed(chart.lines):  # the newest version is drawn last, on top
        if line.path:
            out.append(f'<path class="chart-line chart-s{line.index}" d="{line.path}"/>')
    out.append('</g><g class="chart-dots">')
    for line in reversed(chart.lines):
        out += [f'<circle class="chart-dot chart-s{line.index}" cx="{d.x:g}" cy="{d.y:g}" '
                f'r="{d.r:g}"><title>{escape(d.label)}</title></circle>' for d in line.dots]
    out.append("</g></svg>")
    return Markup("".join(out))
