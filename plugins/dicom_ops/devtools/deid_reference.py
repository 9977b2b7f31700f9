"""The deid library's own run of a recipe: the reference our engine is measured against.

``replace_identifiers`` from deid, with the values our recipes name (``var:pseudonym``,
``var:date_offset_days``, ``var:empty``, ``func:deid_uid``) supplied through its lookup,
and private tags removed first (``remove_private=True``), as our engine does. Used by the
agreement test and by ``bench/deid.py``; the pipeline never runs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dicom_ops.deid.keys import DeidKeys
from dicom_ops.deid.pseudonym import date_offset_days, pseudonym
from dicom_ops.deid.uids import UidMapper


def deid_library_lookup(patient_key: str, keys: DeidKeys) -> dict:
    """deid's per-file lookup (its ``ids``) holding the values dicom-ops provides."""
    mapper = UidMapper(keys.uid)

    def deid_uid(dicom=None, value=None, field=None, item=None, **_):
        original = field.element.value
        if isinstance(original, (list, tuple)) or type(original).__name__ == "MultiValue":
            return [mapper(int(field.element.tag), str(uid)) for uid in original]
        return mapper(int(field.element.tag), str(original)) if original else original

    return {
        "pseudonym": pseudonym(patient_key, keys.pseudonym),
        "date_offset_days": date_offset_days(patient_key, keys.date_shift),
        "empty": "",
        "deid_uid": deid_uid,
    }


def run_deid_library(files: Sequence[Path], recipe_path: Path, keys: DeidKeys,
                     patient_key: str, out_dir: Path | None = None) -> list:
    """Apply the recipe with deid's ``replace_identifiers``; datasets, or files in ``out_dir``."""
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers
    from deid.logger import bot
    from deid.logger.message import ERROR

    paths = [os.path.abspath(f) for f in files]
    lookup = deid_library_lookup(patient_key, keys)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    chatty, bot.level = bot.level, min(bot.level, ERROR)  # its debug log prints values: PHI
    try:
        return replace_identifiers(
            paths,
            ids={path: lookup for path in paths},
            deid=DeidRecipe(str(recipe_path)),
            save=out_dir is not None,
            output_folder=None if out_dir is None else str(out_dir),
            remove_private=True,
        )
    finally:
        bot.level = chatty
