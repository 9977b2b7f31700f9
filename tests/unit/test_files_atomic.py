"""The one atomic write (``dicom_ops.files``): whole files or nothing, the first copy
kept when asked, the mode as given, no temporary file left after a failure."""

from __future__ import annotations

import errno
import os

import pytest
from dicom_ops import files
from dicom_ops.files import (
    atomic_writer,
    is_partial_name,
    keep_secret,
    move_without_overwrite,
    remove_partial_files,
    write_atomically,
)


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bytes_and_chunks_of_bytes_or_memoryviews_are_written_whole(tmp_path):
    assert write_atomically(tmp_path / "a", b"one piece") is True
    assert write_atomically(tmp_path / "b", [b"head ", memoryview(b"and body")]) is True

    assert (tmp_path / "a").read_bytes() == b"one piece"
    assert (tmp_path / "b").read_bytes() == b"head and body"
    assert names(tmp_path) == ["a", "b"]


def test_overwrite_false_keeps_the_first_copy_and_says_so(tmp_path):
    target = tmp_path / "instance.dcm"
    write_atomically(target, b"first")

    assert write_atomically(target, b"second", overwrite=False) is False

    assert target.read_bytes() == b"first"
    assert names(tmp_path) == ["instance.dcm"]  # the dropped copy left no temporary file


def test_overwrite_replaces_by_default(tmp_path):
    target = tmp_path / "task.json"
    write_atomically(target, b"old")

    assert write_atomically(target, b"new") is True

    assert target.read_bytes() == b"new"


def test_without_hard_links_the_first_copy_is_still_kept(tmp_path, monkeypatch):
    # given a file system that refuses hard links (some SMB/NFS mounts)
    def no_links(*_args, **_kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_links)
    target = tmp_path / "RS.1.dcm"

    assert write_atomically(target, b"first", overwrite=False) is True
    assert write_atomically(target, b"second", overwrite=False) is False

    assert target.read_bytes() == b"first"
    assert names(tmp_path) == ["RS.1.dcm"]


def test_an_error_while_writing_leaves_neither_the_file_nor_a_temporary_one(tmp_path):
    def chunks():
        yield b"half"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(tmp_path / "a.dcm", chunks())

    assert names(tmp_path) == []


def test_an_error_while_writing_leaves_an_existing_file_as_it_was(tmp_path):
    target = tmp_path / "a.dcm"
    target.write_bytes(b"good")

    with pytest.raises(TypeError):
        write_atomically(target, [b"new", object()])  # type: ignore[list-item]

    assert target.read_bytes() == b"good"
    assert names(tmp_path) == ["a.dcm"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_the_mode_is_applied_as_given_whatever_the_umask(tmp_path, mode):
    previous = os.umask(0o077)
    try:
        write_atomically(tmp_path / "f", b"x", mode=mode)
    finally:
        os.umask(previous)

    assert (tmp_path / "f").stat().st_mode & 0o777 == mode


def test_a_streamed_write_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "upload.zip"

    with atomic_writer(target) as handle:
        handle.write(b"zip bytes")
        assert not target.exists()  # a reader never sees half a file
        handle.seek(0)
        assert handle.read() == b"zip bytes"  # the writer may read back what it wrote

    assert target.read_bytes() == b"zip bytes"
    assert names(tmp_path) == ["upload.zip"]


def test_a_failed_streamed_write_removes_its_temporary_file_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "rtstruct.dcm"
    target.write_bytes(b"previous download")

    with pytest.raises(ValueError, match="checksum"):
        with atomic_writer(target, mode=0o600) as handle:
            handle.write(b"corrupt body")
            raise ValueError("checksum mismatch")

    assert target.read_bytes() == b"previous download"
    assert names(tmp_path) == ["rtstruct.dcm"]


def test_a_named_temporary_file_is_used_and_a_leftover_of_it_truncated(tmp_path):
    # given a crash left the export's partial zip behind
    partial = tmp_path / "upload.zip.part"
    partial.write_bytes(b"a much longer leftover from the crashed run")

    with atomic_writer(tmp_path / "upload.zip", temporary=partial) as handle:
        assert names(tmp_path) == ["upload.zip.part"]
        handle.write(b"fresh")

    assert (tmp_path / "upload.zip").read_bytes() == b"fresh"
    assert names(tmp_path) == ["upload.zip"]


def test_temporary_files_are_hidden_and_recognised_as_partial(tmp_path):
    seen = []

    def chunks():
        seen.extend(names(tmp_path))
        yield b"x"

    write_atomically(tmp_path / "1.2.3.dcm", chunks())

    assert len(seen) == 1 and is_partial_name(seen[0]) and seen[0].startswith(".1.2.3.dcm.")
    assert not is_partial_name("1.2.3.dcm") and not is_partial_name(".hidden")


def test_leftover_partial_files_are_removed_and_nothing_else(tmp_path):
    (tmp_path / ".1.2.3.dcm.999-1.part").write_bytes(b"half an instance")
    (tmp_path / "1.2.3.dcm").write_bytes(b"whole")
    (tmp_path / "notes.part").write_bytes(b"not ours: not hidden")

    assert remove_partial_files(tmp_path) == 1

    assert names(tmp_path) == ["1.2.3.dcm", "notes.part"]


def test_a_leftover_with_our_pid_and_number_does_not_block_a_new_write(tmp_path, monkeypatch):
    # given a crashed process with our host and pid left the name our next write would take
    monkeypatch.setattr(files, "_part_numbers", iter(range(7, 100)))
    (tmp_path / f".a.dcm.{files.writer_tag()}-7.part").write_bytes(b"old")

    assert write_atomically(tmp_path / "a.dcm", b"new") is True

    assert (tmp_path / "a.dcm").read_bytes() == b"new"


def test_a_move_keeps_an_existing_target_and_drops_the_source(tmp_path):
    source, target = tmp_path / "round", tmp_path / "final"
    source.write_bytes(b"second copy")
    target.write_bytes(b"first copy")

    assert move_without_overwrite(source, target) is False

    assert target.read_bytes() == b"first copy" and not source.exists()


def test_a_secret_is_made_once_private_and_read_back(tmp_path):
    path = tmp_path / "emulator" / "access_token"

    first = keep_secret(path)

    assert keep_secret(path) == first and len(first) >= 32
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_secret_another_process_wrote_meanwhile_wins(tmp_path, monkeypatch):
    # given another process writes the secret between our look and our write
    path = tmp_path / "secret_key"
    real_write = files.write_atomically

    def racing_write(target, chunks, **options):
        real_write(target, b"theirs\n")
        return real_write(target, chunks, **options)

    monkeypatch.setattr(files, "write_atomically", racing_write)

    assert keep_secret(path) == "theirs"
    assert path.read_text() == "theirs\n"


def test_an_empty_secret_file_is_replaced(tmp_path):
    path = tmp_path / "signing_key"
    path.write_text("")

    assert keep_secret(path) == path.read_text().strip() != ""
