"""Keep what we could not file: the bytes as received plus a reason file beside them.

Names are made of the time, our process id and a counter, never of anything in
the data, so a hostile UID cannot choose where bytes land.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from dicom_ops.files import writer_tag
from dicom_ops.intake.storage import write_intake_file

log = logging.getLogger("dicom_ops.quarantine")

REASON_SUFFIX = ".reason.txt"

_numbers = itertools.count(1)
_lock = threading.Lock()


def quarantine(quarantine_dir: Path, chunks: Iterable[bytes | memoryview], reason: str,
               details: dict[str, object] | None = None, *, suffix: str = ".dcm") -> Path:
    """Write the bytes and ``<name>.reason.txt``; returns the path of the bytes.

    ``reason`` and ``details`` end up in the reason file and the log: no PHI.
    """
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    with _lock:
        number = next(_numbers)
    stem = f"{now:%Y%m%dT%H%M%S}-{writer_tag()}-{number:06d}"
    data_path = quarantine_dir / (stem + suffix)
    write_intake_file(data_path, chunks)
    lines = [f"reason: {reason}", f"quarantined_at: {now.isoformat(timespec='seconds')}"]
    lines += [f"{key}: {value}" for key, value in (details or {}).items()]
    write_intake_file(quarantine_dir / (stem + REASON_SUFFIX), [("\n".join(lines) + "\n").encode()])
    log.warning("quarantined %s: %s", data_path.name, reason)
    return data_path
