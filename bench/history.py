"""History benchmark: the pipelines' recurring queries with 10 vs 10,000 finished series.

Seeds the app DB with N finished series and jobs as production leaves them (series
done, job finished, transfer confirmed, its upload attempt settled, a dozen audit
events per job), then, with the same small live load each round (3 series ready
with files on disk, 3 queued jobs, 3 transfers waiting at the server), times:

  readiness poll   the series_ready trigger's query (a fresh ReadinessWatch)
  plan_jobs        plan_export: recovery, then the ready series into jobs
  claim_jobs       the export's claims (stranded first, then queued)
  import poll      poll_transfers (a server that answers "PROCESSING" at once)
  cleanup survey   a dry-run cleanup, with a datastore retention so every area is read

on SQLite and on a throwaway PostgreSQL server (tests/support/postgres.py), and prints
each time with 10 and with 10,000, and their ratio (goal: within 20%, ratio <= 1.2).
The anchor is the same query with 10 finished series, measured in the same run: both
DBs are seeded first, then timed in alternating rounds.
``--explain`` prints each backend's query plans of the history-sensitive queries.

    .venv/bin/python bench/history.py [--history 10000] [--rounds 12] [--explain]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dicom_ops.config import REPO_ROOT, Settings, load_settings  # noqa: E402
from dicom_ops.db.session import dispose_engines  # noqa: E402
from dicom_ops.db.session import upgrade as migrate  # noqa: E402
from dicom_ops.draw.client import ServerStatus, normalise_status  # noqa: E402

from tests.support.history import (  # noqa: E402
    add_live_load,
    captured_selects,
    full_scans,
    operations,
    remove_live_load,
    seed_history,
)
from tests.support.postgres import PostgresUnavailable, start_postgres  # noqa: E402

SMALL = 10


class ProcessingServer:
    """A DRAW server that answers every status call with PROCESSING, instantly."""

    def status(self, task_id: str) -> ServerStatus:
        return ServerStatus(raw="PROCESSING", state=normalise_status("PROCESSING"), error=None)


@dataclass
class Subject:
    """One seeded app DB (its settings), and the times taken on it."""

    settings: Settings
    times: dict[str, list[float]] = field(default_factory=dict)

    def time_round(self, round_number: int) -> None:
        """Time each operation once, with this round's small live load in the DB."""
        live = add_live_load(self.settings, round_number)
        for name, operation in operations(self.settings, ProcessingServer()).items():
            started = time.perf_counter()
            operation()
            self.times.setdefault(name, []).append(time.perf_counter() - started)
        remove_live_load(self.settings, live)

    def medians(self) -> dict[str, float]:
        """Median seconds of each operation, the warm-up round left out."""
        return {name: statistics.median(values[1:] or values)
                for name, values in self.times.items()}


def prepare(url: str, data_root: Path, history: int) -> Subject:
    """A migrated app DB at ``url`` with ``history`` finished series and their events."""
    settings = load_settings({}, data_root=data_root, db_url=url, secret_key="bench-" * 6,
                             templates_dir=REPO_ROOT / "include" / "templates",
                             min_free_disk=0, retention_datastore_days=30)
    settings.datastore_dir.mkdir(parents=True, exist_ok=True)
    migrate(url)
    seed_history(url, history, settings.datastore_dir)
    return Subject(settings)


def measure(subjects: list[Subject], rounds: int) -> None:
    """Time the subjects round by round, alternating which goes first, so a change in
    the machine's speed during the run (seen here: tens of percent) falls on both the
    anchor and the large history rather than on whichever was timed later."""
    for round_number in range(rounds):
        order = subjects if round_number % 2 == 0 else subjects[::-1]
        for subject in order:
            subject.time_round(round_number)


def explain(settings, label: str) -> None:
    """Print every full scan of a history table in the operations' real queries."""
    live = add_live_load(settings, 99)
    for name, operation in operations(settings, ProcessingServer()).items():
        scans = set()
        for statement, parameters in captured_selects(settings.db_url, operation):
            for table in full_scans(settings.db_url, statement, parameters):
                scans.add(f"{table} <- {' '.join(statement.split())[:140]}")
        print(f"    {label} {name}: " + ("no full scan of a history table" if not scans
                                         else "FULL SCAN " + "; ".join(sorted(scans))))
    remove_live_load(settings, live)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dicom-ops-bench-history-"))
    server = None
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    try:
        for backend in backends:
            subjects = []
            for history in (SMALL, args.history):
                root = workdir / f"{backend}-{history}"
                root.mkdir()
                if backend == "sqlite":
                    url = f"sqlite:///{root / 'dicom_ops.sqlite'}"
                else:
                    if server is None:
                        try:
                            server = start_postgres()
                        except PostgresUnavailable as exc:
                            sys.exit(f"PostgreSQL: {exc}")
                    url = server.create_database(f"history_{history}")
                subjects.append(prepare(url, root, history))
            measure(subjects, args.rounds)
            if args.explain:
                explain(subjects[1].settings, f"{args.history} finished:")
            small, large = (subject.medians() for subject in subjects)
            print(f"\n{backend}: median of {args.rounds - 1} rounds, ms "
                  f"(anchor: {SMALL} finished series, same run)")
            print(f"  {'operation':<16} {SMALL:>8} {args.history:>8}   ratio (goal <= 1.2)")
            for name in small:
                ratio = large[name] / small[name]
                print(f"  {name:<16} {small[name] * 1000:8.1f} {large[name] * 1000:8.1f}   "
                      f"{ratio:5.2f}{'' if ratio <= 1.2 else '  <- grows'}")
    finally:
        dispose_engines()
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
