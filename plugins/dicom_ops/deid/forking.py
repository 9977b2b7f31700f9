"""Sharing a series between processes: forked helpers, results back through a pipe.

Fork, not spawn: a helper starts with everything the parent already compiled for the
series (recipe programs, memories of the first image) and costs a millisecond. Use it
from command-line tools and worker processes that run no threads of their own.
"""

from __future__ import annotations

import os

from dicom_ops.deid.errors import DeidError


def in_forked_helpers(work, chunks: list) -> list:
    """``work(chunk)`` for every chunk: the first here, the others in forked children."""
    import pickle

    children = []
    for chunk in chunks[1:]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: compute, send the pickled outcome, leave without cleanup
            os.close(read_end)
            try:
                try:
                    payload = pickle.dumps((True, work(chunk)))
                except BaseException as exc:  # noqa: BLE001 - reported to the parent
                    try:
                        payload = pickle.dumps((False, exc))
                    except Exception:
                        payload = pickle.dumps((False, DeidError(type(exc).__name__)))
                with os.fdopen(write_end, "wb") as stream:
                    stream.write(payload)
            finally:
                os._exit(0)
        os.close(write_end)
        children.append((pid, read_end))
    results, failure = [], None
    try:
        results.append(work(chunks[0]))
    except BaseException as exc:
        failure = exc
    for pid, read_end in children:
        with os.fdopen(read_end, "rb") as stream:
            payload = stream.read()
        os.waitpid(pid, 0)
        if not payload:
            failure = failure or DeidError("a helper process died")
            continue
        ok, value = pickle.loads(payload)
        if ok:
            results.append(value)
        else:
            failure = failure or value
    if failure is not None:
        raise failure
    return results
