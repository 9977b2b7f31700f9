"""Shifting DICOM dates (DA) and the date part of date-times (DT) by whole days.

A value we cannot read as a date is emptied, never passed through unshifted. Times of
day, fractions and UTC offsets of a DT are kept exactly as written. Multiple values
(backslash-separated) are shifted one by one. Old ACR-NEMA dates (``YYYY.MM.DD``) are
read and written back in the current form.
"""

from __future__ import annotations

from datetime import date, timedelta


def _shift_yyyymmdd(text: str, days: int) -> str | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        shifted = date(int(text[:4]), int(text[4:6]), int(text[6:])) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"


def shift_da(value: str, days: int) -> str:
    """Shift every date in a DA value; unreadable dates become empty."""
    shifted = []
    for part in value.split("\\"):
        text = part.strip(" \0")
        if len(text) == 10 and text[4] == "." and text[7] == ".":
            text = text.replace(".", "")
        shifted.append("" if not text else (_shift_yyyymmdd(text, days) or ""))
    return "\\".join(shifted)


def shift_dt(value: str, days: int) -> str:
    """Shift the date part of every DT value; values without a full date become empty."""
    shifted = []
    for part in value.split("\\"):
        text = part.strip(" \0")
        new_date = _shift_yyyymmdd(text[:8], days) if len(text) >= 8 else None
        shifted.append(new_date + text[8:] if new_date else "")
    return "\\".join(shifted)
