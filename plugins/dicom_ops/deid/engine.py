"""De-identifying a series: the entry points of the de-identification engine.

For each file the ``SeriesRewriter`` (``rewriter.py``) reads the header bytes
(``part10.py``), decides for every element what the recipe makes of it
(``recipe.py``), builds the new header and writes it, then the original pixel bytes,
copied by the kernel. Pixel data is never decoded, never even read into Python. The
same input and key always give byte-identical output.

``deidentify_series`` does a whole series into an empty folder: it refuses burned-in
annotation and mixed patients (removing whatever it wrote), names every output file by
its new SOP Instance UID, and returns what re-identification and the egress check need.
With ``workers`` > 1 it forks helper processes (``forking.py``). Paths are handled as
strings and ``pathlib`` is imported only when ``SeriesDeidResult.files`` is read: a
short-lived process starts faster.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dicom_ops.deid.errors import BurnedInAnnotationError, DeidError
from dicom_ops.deid.forking import in_forked_helpers
from dicom_ops.deid.identifiers import Identifiers
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import Recipe
from dicom_ops.deid.rewriter import (  # noqa: F401 - the summary's words, re-exported
    ADDED,
    EMPTIED,
    KEPT,
    REMOVED,
    REPLACED,
    SHIFTED,
    ChunkResult,
    FileOutcome,
    Patient,
    SeriesRewriter,
)

__all__ = ["BurnedInAnnotationError", "DeidError", "SeriesDeidResult", "deidentify_file",
           "deidentify_series", "identifiers_of"]

MIN_FILES_PER_WORKER = 16
WRITE_BATCH = 16  # files prepared before they are written (each holds an open descriptor)


class SeriesDeidResult:
    """What de-identifying a series produced, and what is needed to undo it.

    ``subject`` and ``identifiers`` are PHI: store them encrypted (``store_deid_maps``)
    and never log them. ``actions`` says what happened to each top-level attribute
    (kept, removed, replaced, emptied, shifted, added), for people inspecting a recipe.
    """

    __slots__ = ("out_dir", "file_names", "uid_map", "pseudonym", "date_offset_days", "subject",
                 "identifiers", "actions", "private_tags_removed")

    def __init__(self, out_dir: str, file_names: list[str], uid_map: dict[str, tuple[str, str]],
                 pseudonym: str, date_offset_days: int, subject: dict[str, str],
                 identifiers: Identifiers, actions: dict[int, str] | None = None,
                 private_tags_removed: int = 0) -> None:
        self.out_dir = out_dir
        self.file_names = file_names  # in input order, each <new SOP Instance UID>.dcm
        self.uid_map = uid_map  # deid UID -> (original UID, kind)
        self.pseudonym = pseudonym
        self.date_offset_days = date_offset_days
        self.subject = subject
        self.identifiers = identifiers
        self.actions = actions or {}
        self.private_tags_removed = private_tags_removed

    @property
    def files(self) -> list:
        """The output files (``pathlib.Path``), in the order of the input files."""
        from pathlib import Path

        return [Path(self.out_dir, name) for name in self.file_names]

    def __repr__(self) -> str:
        return (f"SeriesDeidResult({len(self.file_names)} files, {len(self.uid_map)} UIDs, "
                f"{self.pseudonym}, {self.date_offset_days} days)")



# --- running chunks of a series, here and in forked helpers ----------------------------------


def _run_chunk(rewriter: SeriesRewriter, chunk: list[tuple[int, str]], total: int, out_dir: str
               ) -> ChunkResult:
    """Headers of a batch first, then its writes: the kernel's copying of pixel data does
    not keep evicting the interpreter's working set from the CPU caches between headers."""
    outcomes: list[FileOutcome] = []
    for start in range(0, len(chunk), WRITE_BATCH):
        batch = []
        try:
            for index, source in chunk[start:start + WRITE_BATCH]:
                outcome = rewriter.prepare(index, total, source, want_subject=index == 0)
                outcomes.append(outcome)
                if outcome.burned_in:
                    return rewriter.chunk_result(outcomes)  # the series is refused anyway
                batch.append(outcome)
            for outcome in batch:
                rewriter.write(outcome, out_dir)
        finally:
            for outcome in batch:
                if outcome.pending is not None:
                    outcome.pending[0].close()
    return rewriter.chunk_result(outcomes)


def _prepare_out_dir(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    if os.listdir(out_dir):
        raise DeidError(f"the output folder is not empty: {out_dir}")


def _discard(out_dir: str) -> None:
    """Remove what a failed run wrote (the folder was empty when it started)."""
    for name in os.listdir(out_dir):
        try:
            os.unlink(os.path.join(out_dir, name))
        except OSError:
            pass


def deidentify_series(files: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                      recipe: Recipe, keys: DeidKeys, *, workers: int = 1) -> SeriesDeidResult:
    """De-identify one patient's series into the empty (or new) folder ``out_dir``.

    Raises ``BurnedInAnnotationError`` if any image has BurnedInAnnotation YES, and
    ``DeidError`` for unreadable files, mixed patients or a recipe that cannot apply;
    either way nothing is left in ``out_dir``.
    """
    files = [os.fspath(f) for f in files]
    if not files:
        raise DeidError("no images to de-identify")
    out_dir = os.fspath(out_dir)
    _prepare_out_dir(out_dir)
    try:
        rewriter = SeriesRewriter(recipe, keys)
        total = len(files)
        indexed = list(enumerate(files))
        results = [_run_chunk(rewriter, indexed[:1], total, out_dir)]
        rest = indexed[1:] if not results[0].outcomes[0].burned_in else []
        if rest:
            # Helpers start from the rewriter as it is after the first image: what the
            # recipe does with this series is worked out once, before forking.
            rewriter.forget_results()
            workers = max(1, min(workers, len(rest) // MIN_FILES_PER_WORKER, os.cpu_count() or 1))
            size = -(-len(rest) // workers)
            chunks = [rest[i:i + size] for i in range(0, len(rest), size)]
            results += in_forked_helpers(
                lambda chunk: _run_chunk(rewriter, chunk, total, out_dir), chunks)
        result = _assemble(results, files, out_dir, keys)
    except BaseException:
        _discard(out_dir)
        raise
    learned: dict[int, tuple[str, str, str]] = {}
    for chunk in results:
        learned.update(chunk.learned_tags)
    recipe.remember(learned)
    return result


# A defining kind wins over "other" when helpers saw one UID in different places.
_KIND_RANK = {"other": 0, "sop": 1, "frame_of_reference": 1, "series": 1, "study": 1}


def _assemble(results: list[ChunkResult], files: list[str], out_dir: str, keys: DeidKeys
              ) -> SeriesDeidResult:
    outcomes = sorted((o for r in results for o in r.outcomes), key=lambda o: o.index)
    total = len(files)
    burned = [o.index for o in outcomes if o.burned_in]
    if burned:
        raise BurnedInAnnotationError(
            f"burned-in annotation: image {burned[0] + 1} of {total} has BurnedInAnnotation "
            "(0028,0301) YES; nothing was de-identified or sent")
    patients = {o.patient_key for o in outcomes}
    if len(patients) > 1:
        raise DeidError(f"the series mixes {len(patients)} patients (different Patient IDs); "
                        "nothing was de-identified")
    names = [o.output for o in outcomes]
    if len(set(names)) != len(names):
        raise DeidError("two images share a SOP Instance UID; nothing was de-identified")
    uid_map: dict[str, tuple[str, str]] = {}
    identifiers = Identifiers()
    actions: dict[int, str] = {}
    for result in results:
        for new, (original, kind) in result.uid_map.items():
            if new not in uid_map or _KIND_RANK[kind] > _KIND_RANK[uid_map[new][1]]:
                uid_map[new] = (original, kind)
        identifiers = identifiers | result.identifiers
        for tag, what in result.actions.items():
            actions.setdefault(tag, what)
    patient = Patient(outcomes[0].patient_key, keys)
    return SeriesDeidResult(
        out_dir=out_dir,
        file_names=names,
        uid_map=uid_map,
        pseudonym=patient.pseudonym,
        date_offset_days=patient.offset,
        subject=outcomes[0].subject or {},
        identifiers=identifiers,
        actions=actions,
        private_tags_removed=sum(r.private_tags_removed for r in results),
    )


def deidentify_file(source: str | os.PathLike, out_dir: str | os.PathLike, recipe: Recipe,
                    keys: DeidKeys):
    """De-identify one file into ``out_dir`` (which may hold other files); returns its
    ``pathlib.Path``. For tests and tools: the pipeline uses ``deidentify_series``."""
    from pathlib import Path

    rewriter = SeriesRewriter(recipe, keys)
    outcome = rewriter.file(0, 1, os.fspath(source), os.fspath(out_dir), want_subject=False)
    if outcome.burned_in:
        raise BurnedInAnnotationError("burned-in annotation: BurnedInAnnotation (0028,0301) YES")
    recipe.remember(rewriter.chunk_result([]).learned_tags)
    return Path(out_dir, outcome.output)


def identifiers_of(files: Sequence[str | os.PathLike], recipe: Recipe) -> Identifiers:
    """The identifiers in original files, as ``deidentify_series`` collects them, without
    writing anything: for an egress check in another task than the de-identification
    (identifiers are PHI and never travel through XCom)."""
    rewriter = SeriesRewriter(recipe, DeidKeys.throwaway())
    paths = [os.fspath(f) for f in files]
    for index, path in enumerate(paths):
        outcome = rewriter.prepare(index, len(paths), path, want_subject=False)
        if outcome.pending is not None:
            outcome.pending[0].close()
    return rewriter.collector.freeze()
