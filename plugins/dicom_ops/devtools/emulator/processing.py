"""Background processing of the emulator's tasks: PENDING -> PROCESSING -> SEGMENTATION
COMPLETED, or FAILED with an error.

One thread ticks over the tasks. A task starts at its ``start_at`` (upload time
+ ``--delay`` + a random share of ``--jitter``), is segmented at once, and its
status turns final at ``finish_at`` (the ``slow`` fault pushes that later).
Tasks found PROCESSING after a restart are segmented again.

The segmentation itself (reading the images, contouring, encoding the RTSTRUCT: ~2 s of
CPU for 60 slices) runs in one child process, one task at a time, at the lowest CPU
priority. In a thread of the API's process it held the GIL the handlers need (in a
burst of 20, answers to uploads took up to 4 s), and it took 40 of the burst's ~150
core-s at the pipeline's own priority. A real server's API does not stall while its
GPU works, and its hardware is not ours: the child gives the emulator both properties.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from dicom_ops.devtools.emulator.faults import Faults
from dicom_ops.devtools.emulator.store import (
    COMPLETED,
    FAILED,
    PENDING,
    PROCESSING,
    Task,
    TaskStore,
)
from dicom_ops.devtools.emulator.uploads import TEMPLATE_NAME, UploadTemplate, parse_template
from dicom_ops.devtools.rtstruct_builder import RoiContours, build_rtstruct
from dicom_ops.devtools.segmentation import SliceContours, segment_image
from dicom_ops.files import write_atomically

log = logging.getLogger("dicom_ops.devtools.emulator")

BODY, LUNGS, LUNG_LEFT, LUNG_RIGHT = "body", "lungs", "lung_left", "lung_right"
STRUCTURE_SET_LABEL = "DRAW_EMULATOR"


class SegmentationFailed(Exception):
    """The task cannot be segmented; the message becomes the task's ``error``."""


def structure_kind(name: str) -> str | None:
    """What the emulator can draw for a structure name: body, lungs (both, left or right),
    or None (the ROI stays empty but named)."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    if any(w.startswith(("body", "external", "skin", "outline")) for w in words):
        return BODY
    if not any(w.startswith("lung") for w in words):
        return None
    if any(w in {"l", "lt", "left", "sin"} for w in words):
        return LUNG_LEFT
    if any(w in {"r", "rt", "right", "dex"} for w in words):
        return LUNG_RIGHT
    return LUNGS


def _contours_of(kind: str | None, segmentation: SliceContours) -> list[np.ndarray]:
    return {
        BODY: segmentation.body,
        LUNGS: segmentation.lungs,
        LUNG_LEFT: segmentation.lung_left,
        LUNG_RIGHT: segmentation.lung_right,
    }.get(kind or "", [])


def read_images(files: list[Path]) -> list[Dataset]:
    images = []
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise SegmentationFailed(f"file {path.name} cannot be read as DICOM "
                                     f"({type(exc).__name__})") from None
        if "PixelData" not in ds:
            raise SegmentationFailed(f"file {path.name} has no pixel data")
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                        "SOPInstanceUID", "FrameOfReferenceUID"):
            if keyword not in ds:
                raise SegmentationFailed(f"file {path.name} has no {keyword}")
        images.append(ds)
    return sorted(images, key=_position_along_normal)


def _position_along_normal(ds: Dataset) -> float:
    orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
    normal = np.cross(orientation[:3], orientation[3:])
    return float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient]))


def segment_upload(input_dir: Path, template: UploadTemplate, sop_instance_uid: str, *,
                   frame_of_reference_module: bool = True) -> Dataset:
    """The RTSTRUCT for one task: one ROI per template map entry, numbered in order
    (without the Frame of Reference module when told so: the ``bare_rtstruct`` fault)."""
    images = read_images(sorted(input_dir.glob("*.dcm")))
    if not images:
        raise SegmentationFailed("the upload holds no images")
    try:
        per_image = {str(ds.SOPInstanceUID): segment_image(ds) for ds in images}
    except (ValueError, AttributeError, NotImplementedError) as exc:
        raise SegmentationFailed(f"segmentation failed: {exc}") from None
    rois = []
    for number, name in enumerate(template.structure_names(), start=1):
        kind = structure_kind(name)
        contours = {uid: _contours_of(kind, seg) for uid, seg in per_image.items()}
        rois.append(RoiContours(number=number, name=name,
                                contours={uid: c for uid, c in contours.items() if c}))
    try:
        return build_rtstruct(images, rois, sop_instance_uid=sop_instance_uid,
                              label=STRUCTURE_SET_LABEL,
                              frame_of_reference_module=frame_of_reference_module)
    except ValueError as exc:
        raise SegmentationFailed(str(exc)) from None


def render_result(input_dir: Path, template_bytes: bytes, sop_instance_uid: str, *,
                  frame_of_reference_module: bool, foreign_frame: bool) -> bytes:
    """One task's RTSTRUCT as the file the server returns (run in the child process).
    ``foreign_frame``: the ``foreign_uid_next`` fault, a Frame of Reference not the upload's."""
    rtstruct = segment_upload(input_dir, parse_template(template_bytes), sop_instance_uid,
                              frame_of_reference_module=frame_of_reference_module)
    if foreign_frame:
        rtstruct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID = \
            generate_uid(prefix=None)
    buffer = BytesIO()
    rtstruct.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


SEGMENTER_NICENESS = 19  # the lowest priority there is


def _segmenter() -> ProcessPoolExecutor:
    # spawn, not fork: the emulator's process runs uvicorn's and this module's threads
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_child, initargs=(os.getpid(),))


def _start_child(parent: int) -> None:
    """In the child: the lowest CPU priority, and an end with the emulator.

    The emulator stands in for a remote server's hardware; on the machine it shares with
    the pipeline (`make run`, the benches) its segmentation must not take the CPU the
    pipeline needs, so it gets only what is left. Its time is the server's processing
    time, which the benches subtract.
    """
    os.nice(SEGMENTER_NICENESS)
    _end_with_parent(parent)


def _end_with_parent(parent: int) -> None:
    """Exit once the emulator is gone (a kill -9 gives it no chance to stop us), instead
    of waiting forever for work that will not come."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="end-with-emulator", daemon=True).start()


class Processor:
    """The thread that moves tasks along; ``tick()`` is one pass (tests call it directly)."""

    def __init__(self, store: TaskStore, faults: Faults, *, interval: float = 0.05,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._faults = faults
        self._interval = interval
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._segmenter = _segmenter()  # its process starts with the first task

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="draw-emulator-processing",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._segmenter.shutdown(cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # one bad task must not stop the server's processing
                log.error("processing pass failed (%s)", type(exc).__name__)
                log.debug("processing pass failed", exc_info=True)
            self._stop.wait(self._interval)

    def tick(self) -> None:
        for task in self._store.unfinished():
            if self._stop.is_set():
                return
            now = self._clock()
            if task.status == PENDING and task.start_at <= now:
                self._process(task)
            elif task.status == PROCESSING and not task.processed:
                self._process(task)  # interrupted by a restart
            elif task.status == PROCESSING and task.finish_at is not None \
                    and task.finish_at <= now:
                self._finish(task)

    def _process(self, task: Task) -> None:
        task.status = PROCESSING
        if not self._store.save(task):
            return  # forgotten (vanished) meanwhile
        log.info("task %s: PROCESSING %d image(s)", task.task_id, task.image_count)
        started = self._clock()
        try:
            if task.fail_reason:
                raise SegmentationFailed(task.fail_reason)
            input_dir = self._store.input_dir(task.task_id)
            body = self._segment(
                input_dir, (input_dir / TEMPLATE_NAME).read_bytes(), generate_uid(prefix=None),
                frame_of_reference_module=not self._faults.take("bare_rtstruct"),
                foreign_frame=self._faults.take("foreign_uid_next"))
            write_atomically(self._store.result_path(task.task_id), body)
            task.rtstruct_sha256 = hashlib.sha256(body).hexdigest()
        except SegmentationFailed as exc:
            task.error = str(exc)
        except Exception as exc:  # a server reports its own bugs as a failed task
            if self._store.get(task.task_id) is None:
                return
            # only the type at ERROR: a message could quote a header value
            log.error("task %s: segmentation crashed (%s)", task.task_id, type(exc).__name__)
            log.debug("task %s: segmentation crashed", task.task_id, exc_info=True)
            task.error = f"internal error during segmentation ({type(exc).__name__})"
        task.processed = True
        task.finish_at = started + self._faults.slow_seconds()
        self._store.save(task)
        if task.finish_at <= self._clock():
            self._finish(task)

    def _segment(self, *args, **kwargs) -> bytes:
        try:
            return self._segmenter.submit(render_result, *args, **kwargs).result()
        except BrokenProcessPool:
            # the child died (killed, out of memory): this task fails as a crash would,
            # and the next one gets a new child
            self._segmenter = _segmenter()
            raise

    def _finish(self, task: Task) -> None:
        task.status = FAILED if task.error else COMPLETED
        self._store.save(task)
        if task.error:
            log.info("task %s: FAILED (%s)", task.task_id, task.error)
        else:
            log.info("task %s: %s", task.task_id, COMPLETED)
