"""What a cleanup run did, per area: for the task log (words) and for XCom (numbers only).

Nothing here holds a path or a UID: items are named by job id, series id, or counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

# In the order the report lists them.
AREAS = ("uploads", "work", "quarantine", "receiving", "datastore", "events")
AREA_TITLES = {
    "uploads": "upload zips",
    "work": "work folders",
    "quarantine": "quarantine",
    "receiving": "unfinished series (.tmp folders)",
    "datastore": "datastore series folders",
    "events": "audit events (rows)",
}
SHOWN_LABELS = 20  # ids listed per area at INFO; the rest are counted


@dataclass
class AreaReport:
    retention: timedelta | None  # None: this area is kept forever
    removed: int = 0
    bytes_freed: int = 0
    early: int = 0  # of ``removed``: taken ahead of their retention (disk watermark)
    kept: int = 0  # allowed to go one day, not old enough yet
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> how many
    labels: list[str] = field(default_factory=list)  # "job 12", "series #4" (no PHI)

    def add_removed(self, label: str, size: int, *, early: bool) -> None:
        self.removed += 1
        self.bytes_freed += size
        self.early += int(early)
        self.labels.append(label)


@dataclass
class CleanupReport:
    dry_run: bool
    older_than_hours: float | None
    watermark: int  # bytes; 0: no watermark
    areas: dict[str, AreaReport]
    free_before: int | None = None
    free_after: int | None = None
    watermark_triggered: bool = False
    watermark_reached: bool = True
    errors: int = 0  # items that could not be removed (the log says which and why)

    @property
    def removed(self) -> int:
        return sum(area.removed for area in self.areas.values())

    @property
    def bytes_freed(self) -> int:
        return sum(area.bytes_freed for area in self.areas.values())

    @property
    def skipped(self) -> int:
        return sum(sum(area.skipped.values()) for area in self.areas.values())

    def summary(self) -> dict[str, object]:
        """Numbers only (and two flags): safe for XCom and ``--json``."""
        return {
            "dry_run": self.dry_run,
            "removed": self.removed,
            "bytes_freed": self.bytes_freed,
            "skipped": self.skipped,
            "errors": self.errors,
            "watermark_triggered": self.watermark_triggered,
            "free_bytes_before": self.free_before,
            "free_bytes_after": self.free_after,
            "areas": {
                name: {"removed": area.removed, "bytes_freed": area.bytes_freed,
                       "early": area.early, "kept": area.kept,
                       "skipped": sum(area.skipped.values())}
                for name, area in self.areas.items()
            },
        }

    def lines(self) -> list[str]:
        """The report for people, one line per area plus a head and the disk lines."""
        verb = "would remove" if self.dry_run else "removed"
        head = "cleanup (dry run: nothing deleted)" if self.dry_run else "cleanup"
        if self.older_than_hours is not None:
            head += f", retentions overridden to {self.older_than_hours:g} h for this run"
        lines = [f"{head}: {verb} {self.removed} item(s), {human_bytes(self.bytes_freed)}; "
                 f"skipped {self.skipped}"]
        for name in AREAS:
            if name in self.areas:
                lines.append(f"  {AREA_TITLES[name]}: " + _area_line(self.areas[name], verb,
                                                                     rows=name == "events"))
        lines.extend(self._disk_lines())
        return lines

    def _disk_lines(self) -> list[str]:
        if self.free_before is None:
            return []
        free = (f"free disk {human_bytes(self.free_before)} before, "
                f"{human_bytes(self.free_after or 0)} after"
                + (" (estimated)" if self.dry_run else ""))
        if not self.watermark:
            return [f"  {free}; no watermark set"]
        mark = human_bytes(self.watermark)
        if not self.watermark_triggered:
            return [f"  {free}; watermark {mark} not reached"]
        early = sum(area.early for area in self.areas.values())
        outcome = ("back above it" if self.watermark_reached
                   else "STILL BELOW it: nothing else is allowed to go")
        return [f"  {free}; below the watermark {mark}: {early} item(s) taken ahead of their "
                f"retention, oldest first; {outcome}"]


def _area_line(area: AreaReport, verb: str, *, rows: bool) -> str:
    if area.retention is None:
        text = "kept forever (no retention set)"
    else:
        amount = f"{area.removed}" if rows else (
            f"{area.removed} ({human_bytes(area.bytes_freed)})")
        text = f"retention {human_age(area.retention)}; {verb} {amount}"
        if area.early:
            text += f", {area.early} of them early (watermark)"
        if area.labels and not rows:
            shown = ", ".join(area.labels[:SHOWN_LABELS])
            more = len(area.labels) - SHOWN_LABELS
            text += f" [{shown}{f', +{more} more' if more > 0 else ''}]"
        if area.kept:
            text += f"; {area.kept} not old enough yet"
    if area.skipped:
        reasons = "; ".join(f"{count} {reason}" for reason, count in
                            sorted(area.skipped.items(), key=lambda kv: (-kv[1], kv[0])))
        text += f"; skipped: {reasons}"
    return text


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_age(age: timedelta) -> str:
    hours = age.total_seconds() / 3600
    if hours >= 48 and hours % 24 == 0:
        return f"{hours / 24:g} d"
    return f"{hours:g} h"
