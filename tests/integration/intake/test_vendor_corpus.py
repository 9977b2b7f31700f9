"""Real vendor files (pydicom's test files and pydicom-data) sent by dcmtk's storescu,
each in its own transfer syntax, to the listener: stored byte for byte or quarantined
with a reason, never lost, and the listener keeps answering."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from dicom_ops.config import load_settings
from dicom_ops.data_root import stamp as stamp_data_root
from dicom_ops.db.session import upgrade
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID

from tests.support.corpus import CorpusFile, load_corpus, pixel_value, rounds, send_in_own_syntax
from tests.support.listener import echoscu, wait_until

pytestmark = [pytest.mark.dcmtk, pytest.mark.slow]

RETIRED_ULTRASOUND = "1.2.840.10008.5.1.4.1.1.6"
# What a quarantine reason may say: it names the attribute or the step that failed.
QUARANTINE_REASONS = re.compile(
    r"(StudyInstanceUID|SeriesInstanceUID|SOPInstanceUID) is (missing|not a valid DICOM UID)"
    r"|cannot parse the dataset \(\w+\)|cannot inflate the deflated dataset"
    r"|cannot read \w+ \(\w+\)")

STORED = "stored intact"
QUARANTINED = "quarantined"
REFUSED = "refused by storescu"


def _fresh_root(tmp_path: Path, number: int) -> tuple[Path, str]:
    root = tmp_path / f"round-{number}"
    root.mkdir()
    url = f"sqlite:///{root / 'dicom_ops.sqlite'}"
    upgrade(url)
    # as `dicom-ops db upgrade` does: the listener refuses a data root without its identity
    stamp_data_root(load_settings({}, data_root=root, db_url=url))
    return root, url


def _stored(datastore: Path) -> dict[str, Path]:
    """Stored instances by the SOP Instance UID their file meta names."""
    return {str(read_file_meta_info(path).MediaStorageSOPInstanceUID): path
            for path in datastore.rglob("*.dcm")}


def _quarantined(folder: Path) -> dict[str, str]:
    """Quarantined instances: SOP Instance UID (as sent) -> the reason recorded."""
    result = {}
    for reason_file in folder.glob("*.reason.txt"):
        data = reason_file.with_name(reason_file.name.removesuffix(".reason.txt") + ".dcm")
        uid = str(read_file_meta_info(data).get("MediaStorageSOPInstanceUID", ""))
        result[uid] = reason_file.read_text().splitlines()[0].removeprefix("reason: ")
    return result


def _outcome(sent: CorpusFile, stored: dict[str, Path], quarantined: dict[str, str],
             refused: dict[Path, list[str]]) -> tuple[str, str]:
    if sent.sop_uid in stored:
        path = stored[sent.sop_uid]
        syntax = str(read_file_meta_info(path).TransferSyntaxUID)
        if syntax != sent.transfer_syntax:
            return "CHANGED", f"stored as {UID(syntax).name}, sent as {sent.transfer_syntax}"
        if pixel_value(path) != pixel_value(sent.path):
            return "CHANGED", "pixel data differ"
        return STORED, UID(syntax).name
    if sent.sop_uid in quarantined:
        return QUARANTINED, quarantined[sent.sop_uid]
    if sent.path in refused:
        return REFUSED, refused[sent.path][-1]
    return "LOST", ""


def test_every_corpus_image_is_stored_intact_quarantined_or_refused_with_a_reason(
        start_listener, tmp_path, capsys):
    corpus = load_corpus()
    assert len(corpus.images) > 100, "pydicom-data is not installed (make test installs it)"
    outcomes: dict[CorpusFile, tuple[str, str]] = {}
    associations = 0
    for number, batch in enumerate(rounds(corpus.images)):
        root, url = _fresh_root(tmp_path, number)
        settings = load_settings({}, data_root=root, db_url=url)
        listener = start_listener(data_root=root, db_url=url, quiet_seconds=1)
        report = send_in_own_syntax(listener.port, batch, tmp_path / f"send-{number}")
        associations += report.associations
        wait_until(lambda: not any(settings.datastore_dir.rglob("*.tmp-*")), 60,  # noqa: B023
                   "series still receiving after the send")
        stored = _stored(settings.datastore_dir)
        quarantined = _quarantined(settings.quarantine_dir)
        for sent in batch:
            outcomes[sent] = _outcome(sent, stored, quarantined, report.refused)
        assert echoscu(listener.port).returncode == 0, "the listener stopped answering"
        assert listener.process.poll() is None
        listener.stop()

    counts = Counter(kind for kind, _ in outcomes.values())
    by_reason = Counter((kind, why) for kind, why in outcomes.values() if kind != STORED)
    by_syntax = Counter(why for kind, why in outcomes.values() if kind == STORED)
    with capsys.disabled():
        print(f"\nvendor corpus: {len(corpus.images)} image files sent in {associations} "
              f"associations; not sent: {dict(corpus.skipped)}")
        print(f"  outcomes: {dict(counts)}")
        for syntax, count in sorted(by_syntax.items()):
            print(f"  stored intact, {syntax}: {count}")
        for (kind, why), count in sorted(by_reason.items()):
            print(f"  {kind}: {why}: {count}")
        for sent, (kind, why) in sorted(outcomes.items(), key=lambda item: str(item[0].path)):
            if kind != STORED:
                print(f"    {sent.name}: {kind}: {why}")

    problems = {sent.name: outcome for sent, outcome in outcomes.items()
                if outcome[0] not in (STORED, QUARANTINED, REFUSED)}
    assert not problems, f"lost or changed on the way in: {problems}"
    vague = {sent.name: why for sent, (kind, why) in outcomes.items()
             if (kind == QUARANTINED and not QUARANTINE_REASONS.fullmatch(why))
             or (kind == REFUSED and not why)}
    assert not vague, f"no reason that names the problem: {vague}"
    # The encodings the issue names all arrive intact at least once (the corpus's JPEG-LS
    # near-lossless files all lack a Study Instance UID: quarantined, as they should be).
    stored_syntaxes = {sent.transfer_syntax for sent, (kind, _) in outcomes.items()
                       if kind == STORED}
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
            "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
            "1.2.840.10008.1.2.5"} <= stored_syntaxes
    retired = [sent for sent in outcomes if sent.sop_class == RETIRED_ULTRASOUND]
    assert retired and all(outcomes[sent][0] == STORED for sent in retired)
    assert counts[STORED] >= 0.8 * len(outcomes)


def test_a_retired_storage_class_is_stored_not_refused(start_listener, settings, tmp_path):
    """Ultrasound Image Storage (retired): pynetdicom's own list leaves it out."""
    from tests.factories import SeriesGeometry, make_ct_series, synthetic_patient, write_series
    from tests.support.listener import storescu, wait_ready

    datasets = make_ct_series(synthetic_patient(3), SeriesGeometry(slices=2, rows=8, columns=8))
    for ds in datasets:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = RETIRED_ULTRASOUND
        ds.Modality = "US"
    files = write_series(datasets, tmp_path / "us")
    listener = start_listener(quiet_seconds=1)

    result = storescu(listener.port, files, extra=["-R"])

    assert "Received Store Response (Success)" in result.stderr
    series_uid = str(datasets[0].SeriesInstanceUID)
    series = wait_ready(settings.db_url, [series_uid])[series_uid]
    assert series.instance_count == 2
    stored = pydicom.dcmread(next(settings.datastore_dir.rglob("*.dcm")))
    assert stored.SOPClassUID == RETIRED_ULTRASOUND
