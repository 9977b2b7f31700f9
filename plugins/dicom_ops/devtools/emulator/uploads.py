"""An upload, checked the way a careful server would before it accepts work.

The zip must match its sha256, hold only DICOM files (Part 10) plus
``autosegmentation_template.yml``, name no member outside itself, and unpack
to no more than the size limit. Anything else is an :class:`UploadRejected`
whose message says what is wrong; the server answers it with a 400.
"""

from __future__ import annotations

import hashlib
import re
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import yaml

TEMPLATE_NAME = "autosegmentation_template.yml"
_CHUNK = 1024 * 1024
_DICOM_MAGIC_OFFSET = 128


class UploadRejected(ValueError):
    """The upload cannot be accepted; the message is the 400's detail."""


@dataclass(frozen=True)
class ModelTemplate:
    model_id: int
    name: str
    structures: tuple[tuple[int, str], ...]  # (map id, structure name), by map id


@dataclass(frozen=True)
class UploadTemplate:
    name: str
    models: tuple[ModelTemplate, ...]

    def structure_names(self) -> list[str]:
        return [name for model in self.models for _, name in model.structures]


@dataclass(frozen=True)
class UnpackedUpload:
    dicom_files: tuple[Path, ...]
    template: UploadTemplate
    unpacked_bytes: int


def save_stream(source: IO[bytes], destination: Path, max_bytes: int) -> str:
    """Copy an upload to disk and return its sha256."""
    digest = hashlib.sha256()
    written = 0
    with destination.open("wb") as out:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise UploadRejected(f"upload is larger than the {_size(max_bytes)} limit")
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def check_checksum(actual: str, claimed: str | None) -> None:
    if not claimed or not claimed.strip():
        raise UploadRejected("checksum missing: send the sha256 of the zip as form field "
                             "'checksum'")
    claimed = claimed.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", claimed):
        raise UploadRejected("checksum is not a sha256 hex digest (64 hex characters)")
    if claimed != actual:
        raise UploadRejected(f"checksum mismatch: the uploaded file has sha256 {actual}, "
                             f"the form says {claimed}")


def unpack_upload(zip_path: Path, destination: Path, *, max_unpacked_bytes: int,
                  max_members: int = 100_000) -> UnpackedUpload:
    """Check and unpack an upload into ``destination`` (DICOM files flat, numbered).

    On a rejection ``destination`` may hold part of the upload: the caller removes it.
    """
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise UploadRejected("file is not a zip archive") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        _check_members(members, max_unpacked_bytes, max_members)
        templates = [m for m in members if PurePosixPath(m.filename).name == TEMPLATE_NAME]
        if not templates:
            raise UploadRejected(f"{TEMPLATE_NAME} is missing from the zip")
        if len(templates) > 1:
            raise UploadRejected(f"the zip holds {len(templates)} files named {TEMPLATE_NAME}")
        destination.mkdir(parents=True, exist_ok=True)
        budget = [max_unpacked_bytes]
        template_path = destination / TEMPLATE_NAME
        _extract(archive, templates[0], template_path, budget)
        template = parse_template(template_path.read_bytes())
        dicom_files = []
        for member in members:
            if member is templates[0]:
                continue
            target = destination / f"{len(dicom_files) + 1:06d}.dcm"
            _extract(archive, member, target, budget)
            if not _is_dicom(target):
                raise UploadRejected(f"member '{_shown(member.filename)}' is not a DICOM file "
                                     "(no DICM marker after the 128-byte preamble)")
            dicom_files.append(target)
        if not dicom_files:
            raise UploadRejected("the zip holds no DICOM files")
    return UnpackedUpload(tuple(dicom_files), template, max_unpacked_bytes - budget[0])


def parse_template(raw: bytes) -> UploadTemplate:
    """The DRAW fields of ``autosegmentation_template.yml``: name and models with their maps."""
    try:
        document = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UploadRejected(f"{TEMPLATE_NAME} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise UploadRejected(f"{TEMPLATE_NAME} is not valid YAML{line}") from None
    if not isinstance(document, Mapping):
        raise UploadRejected(f"{TEMPLATE_NAME} must be a mapping with 'name' and 'models'")
    models = document.get("models")
    if not isinstance(models, Mapping) or not models:
        raise UploadRejected(f"{TEMPLATE_NAME}: 'models' must map model ids to models")
    parsed = []
    for model_id, model in models.items():
        key = f"{TEMPLATE_NAME}: models.{model_id}"
        number = _integer(model_id, f"{key}: model id must be an integer")
        if not isinstance(model, Mapping):
            raise UploadRejected(f"{key} must be a mapping with 'name' and 'map'")
        structure_map = model.get("map")
        if not isinstance(structure_map, Mapping) or not structure_map:
            raise UploadRejected(f"{key}.map must map numbers to structure names")
        structures = []
        for map_id, name in structure_map.items():
            map_number = _integer(map_id, f"{key}.map: {map_id!r} is not a number")
            if not isinstance(name, str) or not name.strip():
                raise UploadRejected(f"{key}.map.{map_id} must be a structure name")
            structures.append((map_number, name.strip()))
        parsed.append(ModelTemplate(model_id=number, name=str(model.get("name") or ""),
                                    structures=tuple(sorted(structures))))
    return UploadTemplate(name=str(document.get("name") or ""),
                          models=tuple(sorted(parsed, key=lambda m: m.model_id)))


def _integer(value: Any, message: str) -> int:
    if isinstance(value, bool):
        raise UploadRejected(message)
    try:
        return int(str(value).strip())
    except ValueError:
        raise UploadRejected(message) from None


def _check_members(members: list[zipfile.ZipInfo], max_unpacked_bytes: int,
                   max_members: int) -> None:
    if len(members) > max_members:
        raise UploadRejected(f"the zip holds {len(members)} files, more than the limit of "
                             f"{max_members}")
    for member in members:
        name = member.filename.replace("\\", "/")
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise UploadRejected(f"member '{_shown(member.filename)}' has an absolute path")
        if ".." in PurePosixPath(name).parts:
            raise UploadRejected(f"member '{_shown(member.filename)}' points outside the zip "
                                 "('..')")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise UploadRejected(f"member '{_shown(member.filename)}' is a symbolic link")
        if member.flag_bits & 0x1:
            raise UploadRejected(f"member '{_shown(member.filename)}' is encrypted")
    declared = sum(member.file_size for member in members)
    if declared > max_unpacked_bytes:
        raise UploadRejected(f"the zip would unpack to {_size(declared)}, more than the "
                             f"{_size(max_unpacked_bytes)} limit (zip bomb?)")


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path,
             budget: list[int]) -> None:
    """Copy one member, counting real bytes: the sizes a zip declares can lie."""
    try:
        with archive.open(member) as source, target.open("wb") as out:
            while chunk := source.read(_CHUNK):
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise UploadRejected("the zip unpacks to more than the size limit "
                                         "(zip bomb?)")
                out.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError,
            RuntimeError) as exc:
        raise UploadRejected(f"member '{_shown(member.filename)}' cannot be unpacked "
                             f"({type(exc).__name__})") from None


def _shown(name: str) -> str:
    """A member name fit for an error message."""
    return "".join(ch if ch.isprintable() else "?" for ch in name)[:200]


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(_DICOM_MAGIC_OFFSET)
        return handle.read(4) == b"DICM"


def _size(count: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= factor:
            return f"{count / factor:.1f} {unit}"
    return f"{count} bytes"
