"""WAL file names, LSNs and segment numbers (checked against pg_walfile_name in test_wal.py)."""

from __future__ import annotations

import pytest

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.wal.archive import wal_key
from amprenta_backup.core.wal.names import (
    check_wal_name,
    format_lsn,
    parse_lsn,
    segment_name,
    segment_number,
    segment_of,
)


@pytest.mark.parametrize("name", ["000000010000000A000000FF", "00000002.history",
                                  "000000010000000000000002.00000028.backup",
                                  "000000020000000000000003.partial"])
def test_names_postgres_archives_are_accepted(name: str) -> None:
    assert check_wal_name(name) == name


@pytest.mark.parametrize("name", ["../../etc/passwd", "00000001000000000000000g",
                                  "000000010000000000000001/x", "", "RECOVERYXLOG"])
def test_anything_else_is_refused_before_it_reaches_a_path_or_key(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a WAL file name"):
        check_wal_name(name)


def test_lsn_text_round_trips() -> None:
    assert parse_lsn("0/2000100") == 0x2000100
    assert format_lsn(parse_lsn("A/12345678")) == "A/12345678"
    with pytest.raises(ConfigError, match="not an LSN"):
        parse_lsn("12345678")


def test_segment_names_for_16_and_64_mb_segments() -> None:
    assert segment_name(1, 0x1FF) == "0000000100000001000000FF"
    assert segment_number("0000000100000001000000FF") == (1, 0x1FF)
    big = 64 * 1024 * 1024
    assert segment_name(3, 70, big) == "000000030000000100000006"
    assert segment_number("000000030000000100000006", big) == (3, 70)
    assert segment_of(1, parse_lsn("0/4000000"), big, end=True) == "000000010000000000000000"
    assert segment_of(1, parse_lsn("0/4000000"), big) == "000000010000000000000001"


def test_keys_group_wal_by_target_and_timeline() -> None:
    assert wal_key("database", "pg_main", "000000020000000000000003") == \
        "database/pg_main/wal/00000002/000000020000000000000003.zst"
    assert wal_key("", "pg_main", "00000002.history") == \
        "pg_main/wal/00000002/00000002.history.zst"
