"""Which found series a query retrieves, and why it skips each of the others: one pure
function, so ``--dry-run`` shows exactly what a real run would do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from dicom_ops.pacs.filters import QueryFilters, filtered_out
from dicom_ops.pacs.found import FoundSeries


class Verdict(StrEnum):
    RETRIEVE = "retrieve"  # new, or asked again after a partial or failed retrieve
    FILTERED = "filtered"  # the filters exclude it
    KNOWN = "known"  # already in the app DB (from any source)
    ARRIVING = "arriving"  # requested by an earlier run and still arriving
    OVER_LIMIT = "over_limit"  # this run already has max_series series to retrieve
    UNUSABLE = "unusable"  # the PACS gave no Series Instance UID: nothing to ask for


@dataclass(frozen=True)
class Prior:
    """What an earlier run or intake left about one series (``records.prior_states``)."""

    verdict: Verdict  # KNOWN, ARRIVING or RETRIEVE (a partial or failed earlier retrieve)
    reason: str


@dataclass(frozen=True)
class Decision:
    series: FoundSeries
    verdict: Verdict
    reason: str

    @property
    def retrieve(self) -> bool:
        return self.verdict is Verdict.RETRIEVE


def decide(found: list[FoundSeries], filters: QueryFilters, priors: Mapping[str, Prior],
           room: int) -> list[Decision]:
    """Decisions for one batch of series (oldest first), retrieving at most ``room``."""
    decisions = []
    seen: set[str] = set()
    for series in sorted(found, key=lambda s: s.sort_key):
        if not series.series_uid:
            decisions.append(Decision(series, Verdict.UNUSABLE,
                                      "the PACS returned no Series Instance UID"))
            continue
        if series.series_uid in seen:  # a PACS listing a series twice
            continue
        seen.add(series.series_uid)
        why_not = filtered_out(series, filters)
        if why_not:
            decisions.append(Decision(series, Verdict.FILTERED, why_not))
            continue
        prior = priors.get(series.series_uid)
        if prior is not None and prior.verdict is not Verdict.RETRIEVE:
            decisions.append(Decision(series, prior.verdict, prior.reason))
            continue
        if room <= 0:
            decisions.append(Decision(series, Verdict.OVER_LIMIT,
                                      f"over this run's limit of {filters.max_series} series; "
                                      "a later run takes it"))
            continue
        room -= 1
        decisions.append(Decision(series, Verdict.RETRIEVE,
                                  prior.reason if prior else "new"))
    return decisions
