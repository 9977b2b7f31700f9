"""The real-world corpus: pydicom's own test files plus the ``pydicom-data`` package.

``load_corpus()`` reads every file of ``pydicom.data.get_testdata_files()`` (which
includes pydicom-data's files when that package is installed) and keeps the image
files (pixel data of any kind) as ``CorpusFile``; everything else is counted by
why it was left out (not DICOM, unreadable, no image), so the tests can say what
they did not send.

``send_in_own_syntax(port, files, folder)`` sends files with dcmtk's storescu, each
in the transfer syntax it is encoded in: one association per transfer syntax, whose
presentation contexts (from a generated ``-xf`` profile) pair each SOP class with
that one syntax, so storescu never converts. It returns what storescu said about each
file it could not send (``SendReport``).

``rounds(files)`` splits files so no SOP Instance UID repeats within a round: the
corpus holds the same image in many encodings, and a listener keeps a repeated
instance of a series once, so each round goes to a fresh listener.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from tests.support.dcmtk import dcmtk_tool

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# The encodings storescu may try for a file whose file meta names no transfer syntax.
UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2")
# Presentation contexts per association: dcmtk and pynetdicom allow 128.
MAX_CONTEXTS = 120

NOT_DICOM = "not a DICOM file"
NO_IMAGE = "DICOM without pixel data (not an image)"


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    sop_class: str
    sop_uid: str
    series_uid: str
    modality: str
    transfer_syntax: str  # "" when the file meta names none

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


@dataclass
class Corpus:
    images: list[CorpusFile]
    skipped: Counter[str]  # why a file was not sent -> how many


def load_corpus() -> Corpus:
    paths = sorted({Path(p) for p in pydicom.data.get_testdata_files()})
    images: list[CorpusFile] = []
    skipped: Counter[str] = Counter()
    for path in paths:
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=False)
        except InvalidDicomError:
            skipped[NOT_DICOM] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - counted, not raised: pydicom cannot read it
            skipped[f"pydicom cannot read it ({type(exc).__name__})"] += 1
            continue
        if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
            skipped[NO_IMAGE] += 1
            continue
        images.append(CorpusFile(
            path=path,
            sop_class=str(ds.get("SOPClassUID", "")),
            sop_uid=str(ds.get("SOPInstanceUID", "")),
            series_uid=str(ds.get("SeriesInstanceUID", "")),
            modality=str(ds.get("Modality", "")),
            transfer_syntax=str(ds.file_meta.get("TransferSyntaxUID", "")),
        ))
    return Corpus(images, skipped)


def pixel_value(path: Path) -> bytes | None:
    """The pixel data element's value as stored (encapsulated: every fragment, as is)."""
    ds = pydicom.dcmread(path)
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds:
            return bytes(ds[keyword].value)
    return None


def rounds(files: Iterable[CorpusFile]) -> list[list[CorpusFile]]:
    """Files in rounds within which no SOP Instance UID repeats (first copies first)."""
    result: list[list[CorpusFile]] = []
    seen: Counter[str] = Counter()
    for corpus_file in files:
        index = seen[corpus_file.sop_uid]
        seen[corpus_file.sop_uid] += 1
        if index == len(result):
            result.append([])
        result[index].append(corpus_file)
    return result


@dataclass
class SendReport:
    """What storescu printed: error lines per file it could not send, and every run."""

    refused: dict[Path, list[str]] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    associations: int = 0


_SENDING = re.compile(r"^I: Sending file: (.+)$")


def send_in_own_syntax(port: int, files: Iterable[CorpusFile], folder: Path, *,
                       calling_aet: str = "CORPUS") -> SendReport:
    """Send each file in its own transfer syntax, one association per syntax (and chunk)."""
    folder.mkdir(parents=True, exist_ok=True)
    by_syntax: dict[str, list[CorpusFile]] = defaultdict(list)
    for corpus_file in files:
        by_syntax[corpus_file.transfer_syntax].append(corpus_file)
    report = SendReport()
    for syntax, group in sorted(by_syntax.items()):
        for chunk in _chunks(group, MAX_CONTEXTS // len(_proposed(syntax))):
            report.associations += 1
            config = folder / f"profile-{report.associations}.cfg"
            config.write_text(_profile(syntax, {f.sop_class for f in chunk}))
            command = [dcmtk_tool("storescu"), "-v", "--no-halt", "-aet", calling_aet,
                       "-aec", "DRAWCLIENT", "-xf", str(config), "Corpus",
                       "127.0.0.1", str(port), *[str(f.path) for f in chunk]]
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
            output = result.stdout + result.stderr
            report.outputs.append(output)
            report.refused.update(_errors_by_file(output))
    return report


def _proposed(syntax: str) -> tuple[str, ...]:
    return (syntax,) if syntax else UNCOMPRESSED


def _chunks(group: list[CorpusFile], max_classes: int) -> list[list[CorpusFile]]:
    """Split a group so that no association proposes more than ``max_classes`` classes."""
    chunks: list[list[CorpusFile]] = [[]]
    classes: set[str] = set()
    for corpus_file in group:
        if corpus_file.sop_class not in classes and len(classes) == max_classes:
            chunks.append([])
            classes = set()
        classes.add(corpus_file.sop_class)
        chunks[-1].append(corpus_file)
    return chunks


def _profile(syntax: str, sop_classes: set[str]) -> str:
    """An storescu ``-xf`` file: every SOP class paired with exactly ``syntax``."""
    lines = ["[[TransferSyntaxes]]", "[Own]"]
    lines += [f"TransferSyntax{i} = {uid}" for i, uid in enumerate(_proposed(syntax), 1)]
    lines += ["[[PresentationContexts]]", "[Contexts]"]
    # A file without a SOP Class UID proposes nothing (storescu says so and skips it);
    # Verification keeps the profile valid when no file of the group has a class.
    classes = sorted(uid for uid in sop_classes if uid) or ["1.2.840.10008.1.1"]
    lines += [f"PresentationContext{i} = {uid}\\Own" for i, uid in enumerate(classes, 1)]
    lines += ["[[Profiles]]", "[Corpus]", "PresentationContexts = Contexts", ""]
    return "\n".join(lines)


def _errors_by_file(output: str) -> dict[Path, list[str]]:
    """Error lines storescu printed while sending each file (files without any left out)."""
    errors: dict[Path, list[str]] = {}
    current: Path | None = None
    for line in output.splitlines():
        match = _SENDING.match(line)
        if match:
            current = Path(match.group(1))
        elif line.startswith(("E: ", "F: ")) and current is not None:
            errors.setdefault(current, []).append(line[3:].replace(str(current), current.name))
    return errors
