"""LocalStorage: nothing appears under a key until commit, and aborts leave nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from amprenta_backup.core.errors import StorageError
from amprenta_backup.core.storage import LocalStorage


def test_write_is_invisible_until_commit(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = storage.open_writer("a/b/obj")
    writer.write(b"x" * 10)
    assert not storage.exists("a/b/obj")
    assert list(storage.list_objects()) == []
    writer.commit()
    assert storage.get_bytes("a/b/obj") == b"x" * 10
    assert [(o.key, o.size) for o in storage.list_objects("a/")] == [("a/b/obj", 10)]


def test_a_failing_block_aborts_and_leaves_no_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(RuntimeError), storage.open_writer("k/obj") as writer:
        writer.write(b"partial")
        raise RuntimeError("pg_dump died")
    assert not storage.exists("k/obj")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_delete_removes_objects_and_empty_folders(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("t/2026/11/id/dump", b"1")
    storage.put_bytes("t/2026/11/id/manifest.json", b"2")
    storage.delete(["t/2026/11/id/dump", "t/2026/11/id/manifest.json", "t/missing"])
    assert not (tmp_path / "t").exists()


def test_missing_object_and_traversal_are_clear_errors(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(StorageError, match="not found"):
        storage.open_reader("nope")
    with pytest.raises(StorageError, match=r"'\.\.'"):
        storage.put_bytes("../escape", b"x")


def test_unwritable_root_is_reported_with_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match="BACKUP_LOCAL_PATH"):
        LocalStorage(blocker / "backups").check_ready()
