"""series-report: a JSON report for every CT series that becomes ready.

``report.json`` in the job's output folder holds the slice count, the pixel spacing,
the slice spacing (from the image positions along the slice normal) and the body
volume: voxels above ``body_threshold_hu`` (default -300 HU) times the voxel volume.
The report holds no patient identifiers; the run record gets the same numbers.
"""

from __future__ import annotations

import json

import numpy as np
from pydicom import dcmread


def only_ct(headers, params):
    """Registry callback: CT series only (other modalities are skipped, saying why)."""
    modality = str(headers.get("Modality", "") or "none")
    if modality != "CT":
        return False, f"modality {modality}, not CT"
    return {"modality": modality}


def write_report(ctx):
    threshold = float(ctx.params.get("body_threshold_hu", -300))
    slices = []
    for path in ctx.series_files():
        ds = dcmread(path)
        if "PixelData" not in ds or "ImagePositionPatient" not in ds:
            continue
        slices.append(ds)
    if not slices:
        raise ValueError("no CT images with pixel data and position in the series")
    normal = np.cross(*np.array(slices[0].ImageOrientationPatient, dtype=float).reshape(2, 3))
    slices.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, float))))
    positions = [float(np.dot(normal, np.array(ds.ImagePositionPatient, float))) for ds in slices]
    gaps = np.diff(positions)
    slice_spacing = float(np.median(gaps)) if len(gaps) else float(slices[0].SliceThickness)
    row_mm, column_mm = (float(v) for v in slices[0].PixelSpacing)
    voxel_ml = row_mm * column_mm * abs(slice_spacing) / 1000.0
    body_voxels = 0
    for ds in slices:
        hu = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        body_voxels += int(np.count_nonzero(hu > threshold))
    report = {
        "slices": len(slices),
        "pixel_spacing_mm": [row_mm, column_mm],
        "slice_spacing_mm": round(abs(slice_spacing), 3),
        "body_threshold_hu": threshold,
        "body_volume_ml": round(body_voxels * voxel_ml, 1),
    }
    (ctx.output_folder / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    ctx.log.info("report: %d slices, body %.1f ml", report["slices"], report["body_volume_ml"])
    return report
