"""The jobs page's plots as inline SVG, drawn on the server from plain numbers.

Nothing is loaded by the browser: no script, no chart library, no font from elsewhere
(hospital networks often have no internet, and a page that reaches out is a leak).
Each function returns one ``<svg>`` element with a ``<title>`` and labelled axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from xml.sax.saxutils import escape

from dicom_ops.jobs.stats import OUTCOMES, Turnaround

WIDTH, HEIGHT = 500, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 26, 28, 36
OUTCOME_COLOURS = {"delivered": "#2e7d32", "failed": "#c62828", "cancelled": "#9e9e9e",
                   "invalidated": "#ef6c00", "in progress": "#1565c0"}


def turnaround_svg(turnaround: Turnaround, since: datetime, until: datetime) -> str:
    """Each delivered job's turnaround (minutes) at its finish time, with p50 and p95 lines."""
    points = turnaround.points
    top = _nice_ceiling(max([p.seconds for p in points] + [60.0]) / 60)
    span = (until - since).total_seconds() or 1.0

    def x(at: datetime) -> float:
        return LEFT + (at - since).total_seconds() / span * _plot_width()

    def y(minutes: float) -> float:
        return TOP + _plot_height() * (1 - minutes / top)

    parts = [_open("Turnaround per delivered job, last 30 days (minutes from series ready "
                   "to RTSTRUCT delivered)"), *_y_axis(top, "minutes")]
    parts += _date_ticks(since.date(), until.date(),
                         lambda d: x(datetime.combine(d, datetime.min.time(), since.tzinfo)))
    for point in points:
        parts.append(f'<circle class="job" cx="{x(point.finished_at):.1f}" '
                     f'cy="{y(point.seconds / 60):.1f}" r="3" fill="#1565c0">'
                     f'<title>job {point.job_id}: {point.seconds / 60:.1f} min</title></circle>')
    # p95 labelled above its line, p50 below: equal values stay readable
    for name, value, dash, dy in (("p50", turnaround.p50, "6 3", 13),
                                  ("p95", turnaround.p95, "2 3", -4)):
        if value is None:
            continue
        level = y(value / 60)
        parts.append(f'<line class="{name}" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{level:.1f}" '
                     f'y2="{level:.1f}" stroke="#6a1b9a" stroke-dasharray="{dash}"/>')
        parts.append(_text(LEFT + 6, level + dy, f"{name} {value / 60:.1f} min",
                           colour="#6a1b9a"))
    if not points:
        parts.append(_text(LEFT + _plot_width() / 2, TOP + _plot_height() / 2,
                           "no delivered job in this period", anchor="middle"))
    return "".join(parts) + "</svg>"


def jobs_per_day_svg(days: Sequence[tuple[date, dict[str, int]]]) -> str:
    """Jobs created per day, stacked by outcome, with a legend."""
    top = _nice_ceiling(max([sum(counts.values()) for _, counts in days] + [1]))
    slot = _plot_width() / max(len(days), 1)
    parts = [_open("Jobs per day by outcome, last 30 days"), *_y_axis(top, "jobs")]
    for index, (day, counts) in enumerate(days):
        base = 0
        left = LEFT + index * slot + slot * 0.15
        for outcome in OUTCOMES:
            count = counts.get(outcome, 0)
            if not count:
                continue
            height = count / top * _plot_height()
            y_top = TOP + _plot_height() - (base + count) / top * _plot_height()
            parts.append(f'<rect class="bar {outcome.replace(" ", "-")}" x="{left:.1f}" '
                         f'y="{y_top:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}" '
                         f'fill="{OUTCOME_COLOURS[outcome]}"><title>{day}: {count} '
                         f'{escape(outcome)}</title></rect>')
            base += count
        if index % 5 == 0 or index == len(days) - 1:
            parts.append(_text(left + slot * 0.35, HEIGHT - BOTTOM + 14, day.strftime("%d %b"),
                               anchor="middle"))
    for index, outcome in enumerate(OUTCOMES):
        lx = LEFT + index * 88
        parts.append(f'<rect x="{lx}" y="8" width="10" height="10" '
                     f'fill="{OUTCOME_COLOURS[outcome]}"/>')
        parts.append(_text(lx + 14, 17, outcome))
    return "".join(parts) + "</svg>"


def failures_by_stage_svg(failures: Sequence[tuple[str, int]]) -> str:
    """Failed jobs per stage, one horizontal bar each, most first."""
    top = _nice_ceiling(max([count for _, count in failures] + [1]))
    rows = max(len(failures), 1)
    row_height = min(28.0, _plot_height() / rows)
    label_width = 130
    width = WIDTH - RIGHT - LEFT - label_width
    parts = [_open("Failures by stage, last 30 days")]
    for index, (stage, count) in enumerate(failures):
        y = TOP + index * row_height
        parts.append(_text(LEFT + label_width - 6, y + row_height * 0.65, stage, anchor="end"))
        parts.append(f'<rect class="failures" x="{LEFT + label_width}" y="{y + 3:.1f}" '
                     f'width="{count / top * width:.1f}" height="{row_height - 6:.1f}" '
                     f'fill="{OUTCOME_COLOURS["failed"]}"><title>{escape(stage)}: {count}'
                     f'</title></rect>')
        parts.append(_text(LEFT + label_width + count / top * width + 4,
                           y + row_height * 0.65, str(count)))
    if not failures:
        parts.append(_text(LEFT + _plot_width() / 2, TOP + _plot_height() / 2,
                           "no failed job in this period", anchor="middle"))
    return "".join(parts) + "</svg>"


def _open(title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="{WIDTH}" height="{HEIGHT}" role="img" font-family="sans-serif" '
            f'font-size="12"><title>{escape(title)}</title>'
            f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>')


def _y_axis(top: float, unit: str) -> list[str]:
    parts = [f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + _plot_height()}" '
             f'stroke="#555"/>',
             f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + _plot_height()}" '
             f'y2="{TOP + _plot_height()}" stroke="#555"/>',
             _text(12, TOP + _plot_height() / 2, unit, anchor="middle",
                   transform=f"rotate(-90 12 {TOP + _plot_height() / 2})")]
    for step in range(5):
        value = top * step / 4
        level = TOP + _plot_height() * (1 - step / 4)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{level:.1f}" y2="{level:.1f}" '
                     f'stroke="#eee"/>')
        parts.append(_text(LEFT - 4, level + 4, f"{value:g}", anchor="end"))
    return parts


def _date_ticks(first: date, last: date, x_of) -> list[str]:
    parts = []
    day = first
    while day <= last:
        if (day - first).days % 5 == 0:
            parts.append(_text(x_of(day), HEIGHT - BOTTOM + 14, day.strftime("%d %b"),
                               anchor="middle"))
        day = date.fromordinal(day.toordinal() + 1)
    return parts


def _text(x: float, y: float, text: str, *, anchor: str = "start", colour: str = "#333",
          transform: str | None = None) -> str:
    extra = f' transform="{transform}"' if transform else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}"{extra}>'
            f'{escape(text)}</text>')


def _nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``value``: an axis people can read."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * power:
            return float(factor * power)
    return float(10 * power)


def _plot_width() -> float:
    return WIDTH - LEFT - RIGHT


def _plot_height() -> float:
    return HEIGHT - TOP - BOTTOM
