"""De-identification: the recipe engine, keyed UIDs, pseudonyms and date shifts, the
encrypted subject map and the PHI egress check; ``deidentify_and_check`` is the one
entry point that runs the engine and then the check.

Names are imported on first use (PEP 562), so ``import dicom_ops.deid.engine``
stays light: a process that only de-identifies never loads pydicom, SQLAlchemy or
cryptography.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DeidKeys": "keys",
    "Recipe": "recipe",
    "RecipeError": "recipe",
    "load_recipe": "recipe",
    "default_cache_dir": "recipe",
    "deid_uid": "uids",
    "pseudonym": "pseudonym",
    "date_offset_days": "pseudonym",
    "Identifiers": "identifiers",
    "DeidError": "errors",
    "BurnedInAnnotationError": "errors",
    "SeriesDeidResult": "engine",
    "deidentify_series": "engine",
    "deidentify_file": "engine",
    "identifiers_of": "engine",
    "deidentify_dataset": "dataset",
    "encrypt_subject": "subject",
    "decrypt_subject": "subject",
    "SubjectMapError": "subject",
    "store_deid_maps": "store",
    "load_uid_map": "store",
    "load_subject": "store",
    "CheckedDeidResult": "checked",
    "DifferentPatients": "checked",
    "SeriesNotDeidentified": "checked",
    "deidentify_and_check": "checked",
    "EgressViolation": "egress",
    "egress_check": "egress",
    "find_identifiers": "egress",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
