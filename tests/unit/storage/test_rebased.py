"""RebasedStorage: the copy read with the primary's keys, on a real local folder."""

from __future__ import annotations

from pathlib import Path

from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.storage.rebased import RebasedStorage


def test_keys_under_the_primary_prefix_live_under_the_copy_prefix(tmp_path: Path) -> None:
    inner = LocalStorage(tmp_path)
    view = RebasedStorage(inner, "database/", "dr/copies")
    view.put_bytes("database/pg/2026/11/24/x/manifest.json", b"{}")
    assert (tmp_path / "dr/copies/pg/2026/11/24/x/manifest.json").read_bytes() == b"{}"
    inner.put_bytes("dr/copies-other/pg/y", b"not ours")
    inner.put_bytes("elsewhere/z", b"not ours")
    assert [o.key for o in view.list_objects("database/")] == [
        "database/pg/2026/11/24/x/manifest.json"]
    assert [o.key for o in view.list_objects("database/pg/")] == [
        "database/pg/2026/11/24/x/manifest.json"]
    folder_uri = view.uri("database/pg/2026/11/24/x")
    assert folder_uri == (tmp_path / "dr/copies/pg/2026/11/24/x").as_uri()
    assert view.key_of(folder_uri) == "database/pg/2026/11/24/x"
    assert view.key_of(inner.uri("elsewhere/z")) is None
    assert view.exists("database/pg/2026/11/24/x/manifest.json")
    view.delete(["database/pg/2026/11/24/x/manifest.json"])
    assert not (tmp_path / "dr/copies/pg/2026/11/24/x/manifest.json").exists()


def test_an_empty_prefix_on_either_side(tmp_path: Path) -> None:
    view = RebasedStorage(LocalStorage(tmp_path), "", "copy")
    view.put_bytes("pg/a", b"1")
    assert (tmp_path / "copy/pg/a").exists() and [o.key for o in view.list_objects()] == ["pg/a"]
    flat = RebasedStorage(LocalStorage(tmp_path / "flat"), "database", "")
    flat.put_bytes("database/pg/b", b"2")
    assert (tmp_path / "flat/pg/b").exists()
    assert [o.key for o in flat.list_objects("database/")] == ["database/pg/b"]
