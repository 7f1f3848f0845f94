"""The export's ZIP stream (core/export/zipsink.py): members of many blocks are hashed and
deflated in a second thread; the archive reads back byte for byte, and a failing source
leaves no archive behind."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from amprenta_backup.core.export.zipsink import CHUNK, ZipStream
from amprenta_backup.core.storage import LocalStorage


def _rows(count: int) -> Iterator[bytes]:
    """CSV-like rows, one chunk each (what COPY hands over)."""
    for n in range(count):
        yield f"{n},{n * 0.5},{hashlib.md5(str(n).encode()).hexdigest()}\n".encode()


def test_members_of_many_blocks_read_back_with_their_sha256(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    expected = b"".join(_rows(200_000))
    assert len(expected) > 5 * CHUNK  # several blocks through the compressing thread
    with storage.open_writer("x.zip") as writer:
        stream = ZipStream(writer, level=1)
        big = stream.add("data/big.csv", _rows(200_000))
        small = stream.add("data/small.csv", [b"id\n", b"1\n"])
        empty = stream.add("data/empty.csv", [])
        sha256, size = stream.close()
    stored = (tmp_path / "store" / "x.zip").read_bytes()
    assert (hashlib.sha256(stored).hexdigest(), len(stored)) == (sha256, size)
    with zipfile.ZipFile(tmp_path / "store" / "x.zip") as archive:
        assert archive.testzip() is None
        assert archive.read("data/big.csv") == expected
        assert archive.read("data/small.csv") == b"id\n1\n"
        assert archive.read("data/empty.csv") == b""
    assert (big.sha256, big.bytes) == (hashlib.sha256(expected).hexdigest(), len(expected))
    assert (small.bytes, empty.bytes) == (5, 0)


def _failing(after: int) -> Iterator[bytes]:
    yield from _rows(after)
    raise RuntimeError("the COPY broke off")


def test_a_source_failing_midway_raises_and_stores_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    with pytest.raises(RuntimeError, match="broke off"):
        with storage.open_writer("x.zip") as writer:
            ZipStream(writer, level=1).add("data/big.csv", _failing(150_000))
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
