"""What the listener offers senders: every storage SOP class, every transfer syntax."""

from __future__ import annotations

import copy

from dicom_ops.config import load_settings
from dicom_ops.intake.listener import build_ae
from dicom_ops.intake.negotiation import SharedContexts, storage_sop_classes, transfer_syntaxes
from pydicom._uid_dict import UID_dictionary
from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class


def test_every_storage_class_of_pynetdicom_and_every_retired_one_is_accepted(tmp_path):
    classes = set(storage_sop_classes())
    assert {c.abstract_syntax for c in AllStoragePresentationContexts} <= classes
    retired = {uid for uid in classes if UID(uid).is_retired}
    assert {"1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image Storage (retired)
            "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image Storage (retired)
            "1.2.840.10008.5.1.4.1.1.5",  # Nuclear Medicine Image Storage (retired)
            "1.2.840.10008.5.1.4.1.1.8",  # Standalone Overlay Storage
            "1.2.840.10008.5.1.4.1.1.129"} <= retired  # Standalone PET Curve Storage
    assert "1.2.840.10008.1.3.10" not in classes  # the DICOMDIR is not C-STOREd
    # Each has a storage SCP behind it, so a C-STORE is answered, not aborted.
    assert all(issubclass(uid_to_service_class(uid), StorageServiceClass) for uid in classes)
    settings = load_settings({}, data_root=tmp_path, db_url="sqlite://", secret_key="x" * 32)
    supported = {c.abstract_syntax for c in build_ae(settings).supported_contexts}
    assert classes | {"1.2.840.10008.1.1"} == supported


def test_every_transfer_syntax_a_dataset_can_come_in_is_accepted_uncompressed_first():
    syntaxes = transfer_syntaxes()
    assert syntaxes[:2] == ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
    known = {uid for uid, entry in UID_dictionary.items() if entry[1] == "Transfer Syntax"}
    assert set(syntaxes) == known - {"1.2.840.10008.1.2.6.1", "1.2.840.10008.1.2.6.2",
                                     "1.2.840.10008.1.20"}
    for wanted in ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.50",
                   "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
                   "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90",
                   "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.5"):
        assert wanted in syntaxes


def test_the_shared_contexts_are_not_copied_per_association():
    contexts = SharedContexts([])
    assert copy.deepcopy(contexts) is contexts
