"""TarTally: the bytes of a tar's files counted as the stream passes, in any chunking."""

from __future__ import annotations

import io
import tarfile

import pytest

from amprenta_backup.core.tartally import TarTally, manifest_file_bytes


def _tar(files: dict[str, int], dirs: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, size in files.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(bytes([65 + size % 26]) * size))
    return out.getvalue()


FILES = {"PG_VERSION": 3, "base/1/1259": 8192 * 3 + 17, "global/pg_control": 8192,
         "pg_wal/000000010000000000000003": 16384, "./pg_wal/archive_status/x.done": 5,
         "d" * 90 + "/" + "e" * 60: 700, "empty": 0}


@pytest.mark.parametrize("chunk", [1, 511, 512, 513, 4096, 1 << 20])
def test_it_counts_the_files_outside_pg_wal_whatever_the_chunks(chunk: int) -> None:
    data = _tar(FILES, dirs=("base", "pg_wal", "./pg_wal/archive_status"))
    tally = TarTally()
    for at in range(0, len(data), chunk):
        tally(data[at:at + chunk])
    assert tally.problem() is None and tally.ended
    assert tally.members == len(FILES) + 3
    assert tally.file_bytes == 3 + 8192 * 3 + 17 + 8192 + 700


def test_a_tar_cut_inside_a_member_is_named_damaged() -> None:
    data = _tar(FILES)
    tally = TarTally()
    tally(data[:512 + 100])  # PG_VERSION's header, then part of its data block
    assert tally.problem() == "the tar archive ends inside a member"


def test_a_tar_cut_at_a_member_boundary_is_named_damaged() -> None:
    """Cut after a whole member: the WAL files that come last in base.tar are not counted in
    the manifest's sum, so only the missing end-of-archive blocks show the loss."""
    whole = _tar({"PG_VERSION": 3, "pg_wal/000000010000000000000003": 16384})
    tally = TarTally()
    tally(whole[:1024])  # PG_VERSION's header and data block, nothing after
    assert tally.file_bytes == 3
    assert tally.problem() == "the tar archive has no end-of-archive marker (cut short?)"


def test_a_header_without_a_size_is_named() -> None:
    header = bytearray(_tar({"a": 1})[:512])
    header[124:136] = b"zz not octal"
    tally = TarTally()
    tally(bytes(header))
    assert tally.problem() == "tar header 1 has no valid size"


def test_the_manifest_sum_and_its_refusal() -> None:
    files = [{"Path": "a", "Size": 5}, {"Path": "b", "Size": 7}]
    assert manifest_file_bytes({"Files": files}) == 12
    with pytest.raises(ValueError, match="no Files list"):
        manifest_file_bytes({"WAL-Ranges": []})
