"""The emulator's tasks on disk: ``<data-dir>/tasks/<task id>/`` with ``task.json``,
``input/`` (the unpacked upload) and ``rtstruct.dcm`` (the result).

Every change rewrites ``task.json`` atomically, so a restarted emulator picks
up where it stopped. After a confirm the files go and ``task.json`` stays as
a record (the status is then ``Transfer Completed``).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from dicom_ops.files import write_atomically

log = logging.getLogger("dicom_ops.devtools.emulator")

PENDING = "PENDING"
PROCESSING = "PROCESSING"
COMPLETED = "SEGMENTATION COMPLETED"
FAILED = "FAILED"
DELIVERED = "Delivered to Client"
TRANSFERRED = "Transfer Completed"

_TASK_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Task:
    task_id: str
    client_id: str
    status: str
    created_at: float
    start_at: float  # processing begins at this (epoch) time
    image_count: int
    error: str | None = None
    fail_reason: str | None = None  # set by the fail_next fault at upload
    processed: bool = False  # segmentation done (result or error), maybe still "slow"
    finish_at: float | None = None  # status becomes final at this time
    rtstruct_sha256: str | None = None
    confirmed_at: float | None = None
    files_deleted: bool = False

    @classmethod
    def from_json(cls, data: dict) -> Task:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def valid_task_id(task_id: str) -> bool:
    return bool(_TASK_ID.match(task_id))


class TaskStore:
    """Tasks by id, in memory and on disk; safe to use from several threads."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "tasks"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._tasks: dict[str, Task] = {}
        self._load()

    def _load(self) -> None:
        for folder in sorted(self.root.iterdir()):
            record = folder / "task.json"
            if not (folder.is_dir() and valid_task_id(folder.name) and record.exists()):
                continue
            try:
                task = Task.from_json(json.loads(record.read_text()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("task %s: unreadable task.json (%s), ignored", folder.name,
                            type(exc).__name__)
                continue
            self._tasks[task.task_id] = task
        if self._tasks:
            log.info("resumed %d task(s) from %s", len(self._tasks), self.root)

    def folder(self, task_id: str) -> Path:
        return self.root / task_id

    def input_dir(self, task_id: str) -> Path:
        return self.folder(task_id) / "input"

    def result_path(self, task_id: str) -> Path:
        return self.folder(task_id) / "rtstruct.dcm"

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            task = self._tasks.get(task_id)
            return Task(**asdict(task)) if task else None

    def all(self) -> list[Task]:
        with self._lock:
            return [Task(**asdict(task)) for task in self._tasks.values()]

    def unfinished(self) -> list[Task]:
        """PENDING and PROCESSING tasks, oldest start first: the processor's work list."""
        with self._lock:
            waiting = [Task(**asdict(task)) for task in self._tasks.values()
                       if task.status in (PENDING, PROCESSING)]
        return sorted(waiting, key=lambda task: task.start_at)

    def save(self, task: Task, *, create: bool = False) -> bool:
        """Write a task; a task forgotten meanwhile stays forgotten unless ``create``."""
        with self._lock:
            if not create and task.task_id not in self._tasks:
                return False
            folder = self.folder(task.task_id)
            folder.mkdir(parents=True, exist_ok=True)
            write_atomically(folder / "task.json",
                             json.dumps(asdict(task), indent=2).encode())
            self._tasks[task.task_id] = Task(**asdict(task))
            return True

    def delete_files(self, task_id: str) -> None:
        """Drop the upload and the result; the record stays."""
        with self._lock:
            shutil.rmtree(self.input_dir(task_id), ignore_errors=True)
            self.result_path(task_id).unlink(missing_ok=True)

    def forget(self, task_id: str) -> bool:
        """The task never existed, as far as anyone asking can tell."""
        with self._lock:
            known = self._tasks.pop(task_id, None) is not None
            shutil.rmtree(self.folder(task_id), ignore_errors=True)
            return known
