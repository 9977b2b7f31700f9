"""What the listener accepts: every storage SOP class, in every transfer syntax.

A sender proposes a presentation context for each SOP class and transfer syntax it
wants to send in; an SCP that does not support the pair answers "no acceptable
presentation contexts" and the instance never arrives. Since intake stores the bytes
as received and never decodes pixel data, nothing stops us accepting all of them:

- SOP classes: every SOP class of pydicom's UID dictionary that is a storage class,
  retired ones included (pynetdicom's ``AllStoragePresentationContexts`` leaves those
  out: Ultrasound Image Storage 1.2.840.10008.5.1.4.1.1.6, the Standalone Curve/
  Overlay/LUT classes, Nuclear Medicine Image Storage (retired), the "- Trial" SR
  classes...), plus whatever pynetdicom lists that this pydicom's dictionary lacks
  (classes added to the standard after it was built).
- transfer syntaxes: every transfer syntax of the dictionary whose dataset is a
  binary DICOM encoding we can read the header of: implicit and explicit VR little
  endian, explicit big endian, deflated, and every encapsulated syntax (JPEG,
  JPEG-LS, JPEG 2000, HTJ2K, JPEG XL, RLE, MPEG/H.264/HEVC, JPIP, SMPTE 2110...).

The 128-context limit is the requestor's: an SCP may support any number. But
pynetdicom deep-copies the SCP's contexts for every association it accepts, which
for 200-odd classes times 60 syntaxes costs about 0.1 s of CPU each time: the listener
hands it ``SharedContexts``, which negotiation only reads, so one copy serves all.
"""

from __future__ import annotations

from pydicom._uid_dict import UID_dictionary
from pynetdicom import AllStoragePresentationContexts, register_uid
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

# Not storage SOP classes, though their names say "Storage": they are never C-STOREd.
_NOT_STORED = frozenset({
    "1.2.840.10008.1.3.10",  # Media Storage Directory Storage (the DICOMDIR)
    "1.2.840.10008.1.20.1",  # Storage Commitment Push Model
    "1.2.840.10008.1.20.2",  # Storage Commitment Pull Model (retired)
})

# Not binary encodings of a dataset (XML, MIME) or never negotiated (a file format only):
# the header of such a dataset cannot be read, so accepting it would only quarantine it.
_NOT_ON_THE_WIRE = frozenset({
    "1.2.840.10008.1.2.6.1",  # RFC 2557 MIME encapsulation (retired)
    "1.2.840.10008.1.2.6.2",  # XML Encoding (retired)
    "1.2.840.10008.1.20",  # Papyrus 3 Implicit VR Little Endian (retired)
})

# When a sender proposes several syntaxes in one context, pynetdicom takes the first of
# ours that is among them: uncompressed first, as before. A sender that proposes its
# file's own syntax in a context of its own (dcmtk's storescu does) gets that one.
_FIRST = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
)


def storage_sop_classes() -> list[str]:
    """Every storage SOP class UID, retired ones included, sorted.

    Each is registered with pynetdicom's Storage Service: for a class it does not know
    (the retired ones), it would accept the context but abort the association at the
    first C-STORE ("no supported service class").
    """
    known = {uid for uid, (name, kind, *_rest) in UID_dictionary.items()
             if kind == "SOP Class" and "Storage" in name and uid not in _NOT_STORED}
    for uid in known:
        if not issubclass(uid_to_service_class(uid), StorageServiceClass):
            register_uid(uid, UID_dictionary[uid][4], StorageServiceClass)
    known |= {context.abstract_syntax for context in AllStoragePresentationContexts}
    return sorted(known, key=_uid_key)


def transfer_syntaxes() -> list[str]:
    """Every transfer syntax a C-STORE dataset may come in, explicit VR little endian first."""
    rest = {uid for uid, (_name, kind, *_rest) in UID_dictionary.items()
            if kind == "Transfer Syntax" and uid not in _NOT_ON_THE_WIRE} - set(_FIRST)
    return [*_FIRST, *sorted(rest, key=_uid_key)]


def _uid_key(uid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in uid.split("."))


class SharedContexts(list[PresentationContext]):
    """The SCP's supported contexts, shared by every association instead of copied.

    pynetdicom's association server gives each association ``deepcopy(contexts)``;
    negotiation only reads them (the accepted contexts are new objects), so sharing
    one list is safe and saves the copy.
    """

    def __deepcopy__(self, memo: dict) -> SharedContexts:
        return self
