"""Backup ids and storage keys: deterministic per run, and refusing unsafe values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.errors import ConfigError

WHEN = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def test_same_run_gives_same_id_and_other_runs_differ() -> None:
    a = layout.make_backup_id(WHEN, "daily_backup/scheduled__2026-11-24/pg_main")
    assert a == layout.make_backup_id(WHEN, "daily_backup/scheduled__2026-11-24/pg_main")
    assert a != layout.make_backup_id(WHEN, "daily_backup/scheduled__2026-11-24/pg_other")
    assert a.startswith("20261124T010000Z-")
    assert layout.make_backup_id(WHEN) != layout.make_backup_id(WHEN)


def test_folder_follows_the_documented_layout() -> None:
    backup_id = layout.make_backup_id(WHEN, "k")
    folder = layout.backup_folder("database/", "pg_main", backup_id)
    assert folder == f"database/pg_main/2026/11/24/{backup_id}"
    assert layout.manifest_key(folder) == f"{folder}/manifest.json"
    assert layout.dump_key(folder, True) == f"{folder}/dump.pgc.zst"
    assert layout.backup_time(backup_id) == WHEN


@pytest.mark.parametrize("bad", ["", "latest", "../../etc", "20261124T010000Z-1234567g",
                                 "20261124T010000Z-12345678; rm -rf /", "x" * 300])
def test_malformed_backup_ids_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="malformed"):
        layout.check_backup_id(bad)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "a b"])
def test_unsafe_target_names_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        layout.check_target_name(bad)
