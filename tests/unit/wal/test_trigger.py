"""WalSegmentArchivedTrigger: serializable, importable by the triggerer, and fires correctly."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from pathlib import Path
from typing import Any

from amprenta_backup.core.settings import BackupConfig, StorageConfig
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.core.wal.archive import WalArchive
from amprenta_backup.triggers.wal import WalSegmentArchivedTrigger, storage_kwargs

SEGMENT = "000000010000000000000007"


def trigger(tmp_path: Path, deadline: float) -> WalSegmentArchivedTrigger:
    config = BackupConfig(storage=StorageConfig(storage_type="local",
                                                 local_path=str(tmp_path / "store")))
    return WalSegmentArchivedTrigger(SEGMENT, "pg_main.pitr", storage_kwargs(config), deadline,
                                     poll_interval=0.05)


def first_event(trig: WalSegmentArchivedTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trig.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(run(), timeout=30))


def test_serialize_gives_an_import_path_and_plain_kwargs(tmp_path: Path) -> None:
    path, kwargs = trigger(tmp_path, time.time() + 60).serialize()
    module, _, name = path.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (path, kwargs)
    assert not path.startswith(("dags.", "plugins."))


def test_fires_once_the_segment_is_archived(tmp_path: Path) -> None:
    archive = WalArchive(LocalStorage(tmp_path / "store"), "database", "pg_main.pitr")
    segment = tmp_path / SEGMENT
    segment.write_bytes(b"wal" * 1000)
    archive.push(segment, SEGMENT)
    assert first_event(trigger(tmp_path, time.time() + 60)) == {
        "status": "archived", "segment": SEGMENT, "message": ""}


def test_gives_up_at_the_deadline(tmp_path: Path) -> None:
    started = time.monotonic()
    event = first_event(trigger(tmp_path, time.time() + 0.2))
    assert event["status"] == "timeout" and time.monotonic() - started < 5
