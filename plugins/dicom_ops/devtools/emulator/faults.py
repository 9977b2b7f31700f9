"""Faults the emulator can inject, switched by ``--fault NAME=VALUE`` or ``POST /admin/faults``.

A value of 0 (or ``off``, or JSON null) switches a fault off, except for
``token_expiry`` where 0 means "at once" and only ``off``/null switch it off.
Counts (``*_next``, ``wrong_checksum``) are used up one by one. Faults live in
memory: a restarted emulator starts with the ones its command line gives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FaultSpec:
    name: str
    parse: Callable[[Any], float | int]
    help: str


def _seconds(value: Any) -> float:
    number = float(value)
    if number < 0 or number != number:
        raise ValueError("must be a number of seconds >= 0")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    number = float(value)
    if number < 0 or number != int(number):
        raise ValueError("must be a whole number >= 0")
    return int(number)


FAULTS: tuple[FaultSpec, ...] = (
    FaultSpec("busy", _seconds, "health and upload answer 503 for this many seconds"),
    FaultSpec("error_every", _count, "every k-th API request answers 500 (counting from now)"),
    FaultSpec("token_expiry", _seconds,
              "access tokens stop working this many seconds after they were issued "
              "(or after the fault was switched on, whichever is later); 0 = at once"),
    FaultSpec("fail_next", _count, "the next N uploaded tasks end FAILED with an error"),
    FaultSpec("wrong_checksum", _count, "the next N downloads carry a wrong X-File-Checksum"),
    FaultSpec("slow", _seconds, "tasks stay PROCESSING this many extra seconds"),
    FaultSpec("vanish_next", _count, "the next N uploads get a task id the server then "
              "forgets (404 on every later call)"),
    FaultSpec("legacy_upload", _count, "1: upload answers with transaction_token, as older "
              "servers do, instead of task_id"),
    FaultSpec("drop_after_upload", _count, "the next N accepted uploads are stored and "
              "processed, but the connection is closed before the answer (no task id)"),
    FaultSpec("reject_next", _count, "the next N uploads answer 400 (refused, nothing stored)"),
    FaultSpec("error_next", _count, "the next N API requests answer 500"),
    FaultSpec("foreign_uid_next", _count, "the next N tasks segmented return an RTSTRUCT "
              "whose frame of reference is a UID the upload did not have"),
    FaultSpec("bare_rtstruct", _count, "the next N tasks segmented return an RTSTRUCT "
              "without the Frame of Reference module (FrameOfReferenceUID, "
              "PositionReferenceIndicator), as some servers do"),
)
FAULT_NAMES = tuple(spec.name for spec in FAULTS)
_SPECS = {spec.name: spec for spec in FAULTS}


class FaultError(ValueError):
    """A fault name or value we do not understand; the message names it."""


def parse_fault_values(changes: Mapping[str, Any]) -> dict[str, float | int | None]:
    """Checked values by fault name; None means "switch off"."""
    parsed: dict[str, float | int | None] = {}
    for name, value in changes.items():
        spec = _SPECS.get(name)
        if spec is None:
            raise FaultError(f"unknown fault {name!r}; known faults: {', '.join(FAULT_NAMES)}")
        if value is None or (isinstance(value, str) and value.strip().lower() == "off"):
            parsed[name] = None
            continue
        try:
            number = spec.parse(value)
        except (TypeError, ValueError) as exc:
            raise FaultError(f"fault {name}={value!r}: {exc}") from None
        parsed[name] = number if number or name == "token_expiry" else None
    return parsed


def parse_fault_flag(text: str) -> dict[str, float | int | None]:
    """``busy=30`` -> {"busy": 30.0}; a bare name means 1 (``fail_next`` = one failure)."""
    name, _, value = text.partition("=")
    return parse_fault_values({name.strip(): value.strip() if value.strip() else 1})


class Faults:
    """The switches, read by the request handlers and the processing thread."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, float | int] = {}
        self._busy_until = 0.0
        self._token_expiry_since = 0.0
        self._requests = 0

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        parsed = parse_fault_values(changes)
        with self._lock:
            now = self._clock()
            for name, value in parsed.items():
                if value is None:
                    self._values.pop(name, None)
                    continue
                self._values[name] = value
                if name == "busy":
                    self._busy_until = now + float(value)
                elif name == "token_expiry":
                    self._token_expiry_since = now
                elif name == "error_every":
                    self._requests = 0
        return self.snapshot()

    def clear(self) -> dict[str, Any]:
        with self._lock:
            self._values.clear()
            self._busy_until = 0.0
            self._requests = 0
        return self.snapshot()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            values: dict[str, Any] = dict(self._values)
            if "busy" in values:
                values["busy"] = round(max(0.0, self._busy_until - self._clock()), 3)
            return values

    # --- questions the server asks -------------------------------------------------------

    def busy_for(self) -> float:
        """Seconds the server stays busy from now; 0 when it is not."""
        with self._lock:
            return max(0.0, self._busy_until - self._clock()) if "busy" in self._values else 0.0

    def next_request_fails(self) -> bool:
        with self._lock:
            every = int(self._values.get("error_every", 0))
            if not every:
                return False
            self._requests += 1
            return self._requests % every == 0

    def token_expiry(self) -> tuple[float, float] | None:
        """(lifetime in seconds, since when it counts) while the fault is on."""
        with self._lock:
            if "token_expiry" not in self._values:
                return None
            return float(self._values["token_expiry"]), self._token_expiry_since

    def slow_seconds(self) -> float:
        with self._lock:
            return float(self._values.get("slow", 0.0))

    def legacy_upload(self) -> bool:
        with self._lock:
            return bool(self._values.get("legacy_upload", 0))

    def take(self, name: str) -> bool:
        """Use up one of a counted fault (fail_next, wrong_checksum, vanish_next, ...)."""
        with self._lock:
            left = int(self._values.get(name, 0))
            if left <= 0:
                return False
            if left == 1:
                del self._values[name]
            else:
                self._values[name] = left - 1
            return True
