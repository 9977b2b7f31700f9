"""The upload zip deflates what shrinks and stores what does not, losing nothing."""

from __future__ import annotations

import os
import zipfile

from dicom_ops.pipeline.export import TEMPLATE_MEMBER, _pack

from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series


def _series(folder, *, noise: bool):
    datasets = make_ct_series(synthetic_patient(3), SeriesGeometry(slices=3, rows=128,
                                                                   columns=128))
    if noise:  # what a noisy CT's low bits, or JPEG-encoded pixels, look like to zlib
        for dataset in datasets:
            dataset.PixelData = os.urandom(len(dataset.PixelData))
    return write_series(datasets, folder)


def test_a_phantom_series_is_deflated_and_a_noise_series_stored(tmp_path):
    phantom = _series(tmp_path / "deid" / "00", noise=False)
    noise = _series(tmp_path / "deid" / "01", noise=True)

    zip_path, _ = _pack(tmp_path, phantom + noise, "name: t\n")

    with zipfile.ZipFile(zip_path) as zf:
        kinds = {info.filename.split("/")[0]: info.compress_type for info in zf.infolist()
                 if "/" in info.filename}
        assert kinds == {"00": zipfile.ZIP_DEFLATED, "01": zipfile.ZIP_STORED}
        for path in phantom + noise:
            assert zf.read(f"{path.parent.name}/{path.name}") == path.read_bytes()
        assert zf.read(TEMPLATE_MEMBER) == b"name: t\n"
