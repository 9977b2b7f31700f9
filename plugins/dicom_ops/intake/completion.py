"""Finished-series detection for the listener: who is receiving what, and when it is done.

The C-STORE handler asks the tracker where an instance goes (``reserve``) and
tells it when the file is written (``stored``). All per-instance bookkeeping is
in memory; the app DB is written once when a series starts a receiving round,
about once a second with progress counts, and once when the round finishes.

A round is finished when no association that sent to it is still open, no
write into it is in flight, and no instance arrived for ``quiet_seconds``. The
checker thread then publishes the round's folder and marks the series ready.
When the process stops, unfinished rounds stay ``receiving`` with their
``.tmp-<n>`` folders; the next start picks them up (``adopt_leftovers``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from dicom_ops.db.models import Series, utcnow
from dicom_ops.db.session import session_scope
from dicom_ops.failures import log_failure
from dicom_ops.files import remove_partial_files
from dicom_ops.intake import datastore, series_lifecycle, series_registry
from dicom_ops.intake.finished import is_quiet
from dicom_ops.intake.headers import InstanceHeader
from dicom_ops.intake.series_registry import Round
from dicom_ops.intake.storage import instance_filename

log = logging.getLogger("dicom_ops.completion")

PROGRESS_EVERY_SECONDS = 1.0


@dataclass
class ActiveRound:
    round: Round
    known: set[str]  # SOP Instance UIDs already stored (series folder and this round)
    base_count: int  # instances in the series folder when the round began
    last_arrival: float
    stored: int = 0
    duplicates: int = 0
    lost: int = 0  # acknowledged, then not made durable (``durability``): the round fails
    in_flight: int = 0
    associations: set[int] = field(default_factory=set)
    last_seen: datetime = field(default_factory=utcnow)
    flushed: int = -1

    @property
    def count(self) -> int:
        return self.base_count + self.stored


@dataclass(frozen=True)
class Reservation:
    """A place for one new instance; hand it back to ``ReceivingTracker.stored``."""

    path: Path
    active: ActiveRound
    sop_uid: str


class ReceivingTracker:
    def __init__(self, engine: Engine, datastore_dir: Path, quiet_seconds: float, *,
                 source: str = "scp", clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.datastore_dir = datastore_dir
        self.quiet_seconds = quiet_seconds
        self.source = source
        self.clock = clock
        self._rounds: dict[str, ActiveRound] = {}
        self._retry: list[ActiveRound] = []
        self._lock = threading.Lock()
        self._begin_lock = threading.Lock()
        self._last_progress = 0.0

    # --- called from association threads ---------------------------------------------

    def reserve(self, header: InstanceHeader, association: int,
                calling_aet: str | None) -> Reservation | None:
        """Where to write this instance, or ``None`` if it is already stored (a duplicate)."""
        while True:
            with self._lock:
                active = self._rounds.get(header.series_uid)
                if active is not None:
                    active.associations.add(association)
                    active.last_arrival = self.clock()
                    active.last_seen = utcnow()
                    if header.sop_uid in active.known:
                        active.duplicates += 1
                        return None
                    active.known.add(header.sop_uid)
                    active.in_flight += 1
                    return Reservation(active.round.folder / instance_filename(header.sop_uid),
                                       active, header.sop_uid)
            self._begin(header, calling_aet)

    def stored(self, reservation: Reservation, ok: bool) -> None:
        with self._lock:
            active = reservation.active
            active.in_flight -= 1
            active.last_arrival = self.clock()
            if ok:
                active.stored += 1
            else:
                active.known.discard(reservation.sop_uid)

    def synced(self, reservation: Reservation, ok: bool) -> None:
        """A stored instance's fsync is done; ``ok=False``: it failed and the file is gone,
        after the sender was told it is stored, so the round cannot end ``ready``."""
        if ok:
            self.stored(reservation, True)
            return
        with self._lock:
            reservation.active.lost += 1
        self.stored(reservation, False)

    def association_closed(self, association: int) -> None:
        with self._lock:
            for active in self._rounds.values():
                active.associations.discard(association)

    def _begin(self, header: InstanceHeader, calling_aet: str | None) -> None:
        with self._begin_lock:
            with self._lock:
                if header.series_uid in self._rounds:
                    return
            round_ = self._begin_in_db(header, calling_aet)
            active = self._activate(round_)
            with self._lock:
                self._rounds[header.series_uid] = active
        log.info("series #%d: receiving from %s", round_.series_id, calling_aet or self.source)

    def _begin_in_db(self, header: InstanceHeader, calling_aet: str | None) -> Round:
        def begin() -> Round:
            with session_scope(self.engine) as session:
                return series_registry.begin_round(session, header, datastore=self.datastore_dir,
                                                   source=self.source, calling_aet=calling_aet)

        try:
            return begin()
        except IntegrityError:  # another process inserted the same series at that moment
            return begin()

    def _activate(self, round_: Round) -> ActiveRound:
        in_series = datastore.instance_uids(round_.final_folder)
        in_round = datastore.instance_uids(round_.folder)
        return ActiveRound(round=round_, known=in_series | in_round, base_count=len(in_series),
                           stored=len(in_round - in_series), last_arrival=self.clock())

    # --- called from the checker thread ------------------------------------------------

    def adopt_leftovers(self) -> int:
        """Pick up rounds a previous run left ``receiving``; returns how many."""
        with session_scope(self.engine) as session:
            rounds = series_registry.receiving_rounds(session, datastore=self.datastore_dir,
                                                      source=self.source)
        for round_ in rounds:
            if round_.folder.is_dir() and datastore.is_round_folder(round_.folder):
                remove_partial_files(round_.folder)
                active = self._activate(round_)
                with self._lock:
                    self._rounds[self._series_uid(round_)] = active
                log.info("series #%d: resuming a round left by a previous run (%d instances)",
                         round_.series_id, active.count)
            else:
                # The round folder was already published (stopped before the DB was told).
                active = self._activate(round_)
                self._finish(active)
        return len(rounds)

    def _series_uid(self, round_: Round) -> str:
        return round_.final_folder.name

    def tick(self) -> list[int]:
        """Finish the rounds that are done; returns their series ids."""
        now = self.clock()
        with self._lock:
            done = [uid for uid, active in self._rounds.items()
                    if active.in_flight == 0 and not active.associations
                    and is_quiet(active.last_arrival, now, self.quiet_seconds)]
            finished = [self._rounds.pop(uid) for uid in done] + self._retry
            self._retry = []
        self._flush_progress(now)
        return [active.round.series_id for active in finished if self._finish(active)]

    def _flush_progress(self, now: float) -> None:
        if now - self._last_progress < PROGRESS_EVERY_SECONDS:
            return
        self._last_progress = now
        with self._lock:
            counts = {a.round.series_id: (a.count, a.last_seen)
                      for a in self._rounds.values() if a.flushed != a.count}
            for active in self._rounds.values():
                active.flushed = active.count
        if counts:
            try:
                with session_scope(self.engine) as session:
                    series_registry.record_progress(session, counts)
            except Exception:
                log_failure(log, "could not record progress of %d receiving series", len(counts))

    def _finish(self, active: ActiveRound) -> bool:
        round_ = active.round
        try:
            count = datastore.finish_round(round_.folder, round_.final_folder)
            with session_scope(self.engine) as session:
                if count == 0:
                    self._fail(session, round_, "nothing was stored for this round")
                    return False
                if active.lost:
                    self._fail(session, round_, f"{active.lost} instances were acknowledged but "
                                                "could not be written to disk (fsync failed); "
                                                "send the series again")
                    return False
                became_ready = series_registry.finish_round(
                    session, round_, count, duplicates=active.duplicates,
                    last_seen=active.last_seen)
        except Exception:
            log_failure(log, "series #%d: could not finish its round; retrying later",
                        round_.series_id)
            with self._lock:
                self._retry.append(active)
            return False
        if became_ready:
            note = f" ({active.duplicates} duplicates stored once)" if active.duplicates else ""
            log.info("series #%d ready: %d instances%s", round_.series_id, count, note)
        else:
            log.info("series #%d: round merged (%d instances); a newer round is receiving",
                     round_.series_id, count)
        return became_ready

    def _fail(self, session, round_: Round, detail: str) -> None:
        row = session.get(Series, round_.series_id, with_for_update=True)
        if row is not None and row.folder == str(round_.folder):
            series_lifecycle.move(session, row, series_lifecycle.SeriesState.ERROR,
                                  detail=detail, message=detail, actor=series_registry.ACTOR)
        log.warning("series #%d: %s", round_.series_id, detail)

    def active_series_ids(self) -> list[int]:
        with self._lock:
            return sorted(a.round.series_id for a in self._rounds.values())


class CompletionChecker:
    """A thread that calls ``tracker.tick()`` a few times per quiet period."""

    def __init__(self, tracker: ReceivingTracker, interval: float | None = None) -> None:
        self.tracker = tracker
        self.interval = interval or min(0.5, tracker.quiet_seconds / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="completion-checker",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tracker.tick()
            except Exception:
                log_failure(log, "completion check failed; trying again")
