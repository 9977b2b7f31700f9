"""De-identify, then check that nothing identifying is left: the one way data leaves.

``deidentify_and_check`` is what the export pipeline (one job: its series, one
patient) and ``dicom-ops deidentify`` (one series at a time) both run, so what a
person inspects with the command is exactly what the pipeline would send. It
de-identifies each series into its own folder, then runs the PHI egress check over
all their output together, with the identifiers of all of them: an identifier of
one series found in another's output is a hit too.

The check's verdict comes back in the result rather than as an exception, because
the command reports every finding while the pipeline fails the job: a pipeline
raises ``result.violation``. The check can be skipped only by asking
(``check_egress=False``: the command's ``--no-egress-check``); the pipeline never does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dicom_ops.deid.egress import EgressViolation, find_identifiers
from dicom_ops.deid.engine import SeriesDeidResult, deidentify_series
from dicom_ops.deid.errors import DeidError
from dicom_ops.deid.identifiers import Identifiers
from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.recipe import Recipe

# One series to de-identify: its files and the empty (or new) folder for its output.
SeriesInput = tuple[Sequence[str | os.PathLike], str | os.PathLike]


class SeriesNotDeidentified(DeidError):
    """A series could not be de-identified: ``cause`` says why (``BurnedInAnnotationError``
    or another ``DeidError``), ``position`` which of the series handed over it was."""

    def __init__(self, position: int, cause: DeidError) -> None:
        super().__init__(str(cause))
        self.position = position
        self.cause = cause


class DifferentPatients(DeidError):
    """The series handed over together belong to more than one patient."""

    def __init__(self) -> None:
        super().__init__("the series belong to different patients")


@dataclass(frozen=True)
class CheckedDeidResult:
    """The de-identified series of one patient and the egress check's verdict on them.

    ``findings`` is ``None`` when the check was skipped, empty when it passed. The
    attributes re-identification needs (``uid_map``, ``pseudonym``, ``date_offset_days``,
    ``subject``) are those of all the series together, as ``store_deid_maps`` takes them.
    """

    series: tuple[SeriesDeidResult, ...]
    findings: tuple[str, ...] | None = None

    @property
    def files(self) -> list[Path]:
        return [path for result in self.series for path in result.files]

    @property
    def uid_map(self) -> dict[str, tuple[str, str]]:
        return {new: old for result in self.series for new, old in result.uid_map.items()}

    @property
    def identifiers(self) -> Identifiers:
        merged = self.series[0].identifiers
        for result in self.series[1:]:
            merged = merged | result.identifiers
        return merged

    @property
    def pseudonym(self) -> str:
        return self.series[0].pseudonym

    @property
    def date_offset_days(self) -> int:
        return self.series[0].date_offset_days

    @property
    def subject(self) -> dict[str, str]:
        return self.series[0].subject

    @property
    def violation(self) -> EgressViolation | None:
        """The exception a pipeline raises when the check found anything, else ``None``."""
        return EgressViolation(list(self.findings)) if self.findings else None


def deidentify_and_check(
    series: Sequence[SeriesInput],
    recipe: Recipe,
    keys: DeidKeys,
    *,
    workers: int = 1,
    check_egress: bool = True,
    search_pixel_data: bool = False,
    on_deidentified: Callable[[CheckedDeidResult], None] | None = None,
) -> CheckedDeidResult:
    """De-identify one patient's ``series`` (each ``(files, out_dir)``), then run the PHI
    egress check over everything they produced.

    Raises ``SeriesNotDeidentified`` (naming the series by position) when a series
    cannot be de-identified and ``DifferentPatients`` when they are not one patient's;
    what the failing series wrote is removed (``deidentify_series``). ``on_deidentified``
    runs between de-identification and the check (the pipeline records the maps and its
    stage there). ``workers`` > 1 forks helpers for large series. ``search_pixel_data``
    (DICOM_OPS_EGRESS_PIXEL_SEARCH) has the check search the image bytes too.
    """
    if not series:
        raise DeidError("no series to de-identify")
    results: list[SeriesDeidResult] = []
    for position, (files, out_dir) in enumerate(series):
        try:
            result = deidentify_series(files, out_dir, recipe, keys, workers=workers)
        except DeidError as exc:
            raise SeriesNotDeidentified(position, exc) from exc
        if results and result.pseudonym != results[0].pseudonym:
            raise DifferentPatients()
        results.append(result)
    deidentified = CheckedDeidResult(tuple(results))
    if on_deidentified is not None:
        on_deidentified(deidentified)
    if not check_egress:
        return deidentified
    findings = find_identifiers(deidentified.files, deidentified.identifiers,
                                search_pixel_data=search_pixel_data)
    return CheckedDeidResult(deidentified.series, tuple(findings))
