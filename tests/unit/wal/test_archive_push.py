"""WalArchive.push and fetch on local storage: segments read through a memory map, one after
the other or from two threads at once, fetch back identical, also at zstd's fast (negative)
levels."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.wal.archive import WalArchive

SEGMENT = 2 * 1024 * 1024  # the size does not matter here; a real segment is 16 MiB


def wal_file(folder: Path, name: str, size: int, seed: int) -> Path:
    """``size`` bytes that compress like WAL: text and repeats, then a random tail."""
    text = (f"row {seed} " * (size // 16 + 1)).encode()[: size // 2]
    path = folder / name
    path.write_bytes(text + os.urandom(size - len(text)))
    return path


@pytest.mark.parametrize("level", [1, -5])
def test_pushes_of_different_sizes_in_turn_fetch_back_identical(tmp_path: Path,
                                                                level: int) -> None:
    archive = WalArchive(LocalStorage(tmp_path / "store"), "p", "t", level=level)
    sizes = [SEGMENT, 300, SEGMENT // 2, SEGMENT]  # a small file between two full ones
    names = [f"0000000100000000000000{n:02X}" for n in range(len(sizes))]
    files = [wal_file(tmp_path, name, size, n)
             for n, (name, size) in enumerate(zip(names, sizes, strict=True))]
    pushed = [archive.push(path, name) for path, name in zip(files, names, strict=True)]
    for path, name, result in zip(files, names, pushed, strict=True):
        original = path.read_bytes()
        assert result.sha256 == hashlib.sha256(original).hexdigest()
        assert result.raw_bytes == len(original) and 0 < result.stored_bytes < len(original)
        archive.fetch(name, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == original


def test_pushes_from_two_threads_at_once_keep_their_own_bytes(tmp_path: Path) -> None:
    archive = WalArchive(LocalStorage(tmp_path / "store"), "p", "t")
    names = [f"0000000100000000000001{n:02X}" for n in range(6)]
    files = {name: wal_file(tmp_path, name, SEGMENT // 4 + n, n) for n, name in enumerate(names)}
    digests: dict[str, str] = {}

    def push(part: list[str]) -> None:
        for name in part:
            digests[name] = archive.push(files[name], name).sha256

    threads = [threading.Thread(target=push, args=(names[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, path in files.items():
        assert digests[name] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert archive.fetch(name, tmp_path / f"{name}.back") == digests[name]
        assert (tmp_path / f"{name}.back").read_bytes() == path.read_bytes()


def test_a_segment_recycled_while_it_is_read_is_not_stored(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL recycles an archived segment by renaming it and writing it over; if that
    happens between the hash and the compression (two passes over one mapping), nothing is
    stored under the old name (its sidecar would not match the object)."""
    import amprenta_backup.core.wal.archive as archive_module

    name = "000000010000000000000010"
    path = wal_file(tmp_path, name, SEGMENT, 1)
    real = archive_module.zstandard_compressor

    class RecyclingCompressor:
        def __init__(self, level: int) -> None:
            self.inner = real(level)

        def compress(self, data: bytes) -> bytes:
            future = path.with_name("000000010000000000000020")
            os.rename(path, future)  # what a checkpoint does to a segment that is done
            with open(future, "r+b") as handle:
                handle.write(os.urandom(SEGMENT // 2))
            return bytes(self.inner.compress(data))

    monkeypatch.setattr(archive_module, "zstandard_compressor", RecyclingCompressor)
    archive = WalArchive(LocalStorage(tmp_path / "store"), "p", "t")
    with pytest.raises(FileNotFoundError, match="recycled"):
        archive.push(path, name)
    assert not archive.has(name)
    assert not (tmp_path / "store").exists() or not any(
        p.is_file() for p in (tmp_path / "store").rglob("*"))
