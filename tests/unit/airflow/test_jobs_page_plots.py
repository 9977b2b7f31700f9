"""The jobs page's plots are well-formed SVG drawn from the numbers, with nothing fetched."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from datetime import UTC, date, datetime, timedelta

from dicom_ops.airflow.ui.plots import failures_by_stage_svg, jobs_per_day_svg, turnaround_svg
from dicom_ops.jobs.stats import OUTCOMES, Turnaround, TurnaroundPoint

SVG = "{http://www.w3.org/2000/svg}"
UNTIL = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SINCE = UNTIL - timedelta(days=30)


def _parse(svg: str) -> ElementTree.Element:
    assert "href" not in svg and "<script" not in svg  # nothing loaded, nothing run
    return ElementTree.fromstring(svg)


def test_turnaround_has_a_dot_per_job_and_labelled_p50_and_p95_lines():
    points = [TurnaroundPoint(n, SINCE + timedelta(days=n), 60.0 * n) for n in range(1, 11)]
    root = _parse(turnaround_svg(Turnaround(points, p50=300.0, p95=600.0), SINCE, UNTIL))
    dots = root.findall(f".//{SVG}circle")
    assert len(dots) == 10
    assert dots[0].find(f"{SVG}title").text == "job 1: 1.0 min"
    lines = {line.get("class"): float(line.get("y1")) for line in root.findall(f".//{SVG}line")
             if line.get("class") in ("p50", "p95")}
    assert lines["p95"] < lines["p50"]  # the longer turnaround is higher up
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "p50 5.0 min" in texts and "p95 10.0 min" in texts
    # later jobs are further right
    assert float(dots[0].get("cx")) < float(dots[-1].get("cx"))


def test_an_empty_period_says_so_instead_of_drawing_nothing():
    root = _parse(turnaround_svg(Turnaround([], None, None), SINCE, UNTIL))
    assert "no delivered job in this period" in [t.text for t in root.iter(f"{SVG}text")]
    assert not root.findall(f".//{SVG}circle")
    failures = _parse(failures_by_stage_svg([]))
    assert "no failed job in this period" in [t.text for t in failures.iter(f"{SVG}text")]


def test_jobs_per_day_stacks_outcomes_and_failures_have_a_bar_per_stage():
    days = [(date(2026, 12, 1), dict.fromkeys(OUTCOMES, 0) | {"delivered": 3, "failed": 1}),
            (date(2026, 12, 2), dict.fromkeys(OUTCOMES, 0) | {"in progress": 2})]
    root = _parse(jobs_per_day_svg(days))
    bars = {bar.find(f"{SVG}title").text for bar in root.findall(f".//{SVG}rect")
            if bar.get("class", "").startswith("bar")}
    assert bars == {"2026-12-01: 3 delivered", "2026-12-01: 1 failed", "2026-12-02: 2 in progress"}
    failures = _parse(failures_by_stage_svg([("upload", 4), ("egress check", 1)]))
    widths = {bar.find(f"{SVG}title").text: float(bar.get("width"))
              for bar in failures.findall(f".//{SVG}rect[@class='failures']")}
    assert widths["upload: 4"] == 4 * widths["egress check: 1"]
