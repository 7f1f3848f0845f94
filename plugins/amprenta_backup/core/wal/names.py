"""WAL file names, LSNs and segment arithmetic (stdlib only: ``amprenta-wal push`` uses it)."""

from __future__ import annotations

import re

from amprenta_backup.core.errors import ConfigError

WAL_FILE = re.compile(
    r"^(?:[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$")
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024


def check_wal_name(name: str) -> str:
    """Return ``name`` if it is a WAL file name PostgreSQL archives, else a ConfigError."""
    if not isinstance(name, str) or not WAL_FILE.match(name):
        raise ConfigError(
            f"{str(name)[:80]!r} is not a WAL file name (24 hex digits, optionally .partial or "
            ".XXXXXXXX.backup, or XXXXXXXX.history); pass %f from archive_command/"
            "restore_command"
        )
    return name


def parse_lsn(text: str) -> int:
    """``0/2000100`` -> 33554688."""
    high, sep, low = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError(text)
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise ConfigError(f"{text!r} is not an LSN like 0/2000100") from None


def format_lsn(lsn: int) -> str:
    """33554688 -> ``0/2000100``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def segment_name(timeline: int, segno: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str:
    """The file name of segment number ``segno`` on ``timeline``."""
    per_id = 0x1_0000_0000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


def segment_number(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> tuple[int, int]:
    """``(timeline, segno)`` of a segment name (the first 24 characters of any WAL file)."""
    check_wal_name(name)
    if name.endswith(".history"):
        raise ConfigError(f"{name} is a timeline history file, not a segment")
    per_id = 0x1_0000_0000 // segment_size
    return int(name[:8], 16), int(name[8:16], 16) * per_id + int(name[16:24], 16)


def segment_of(timeline: int, lsn: int, segment_size: int = DEFAULT_SEGMENT_SIZE,
               end: bool = False) -> str:
    """The segment holding ``lsn``; with ``end=True`` the one holding the byte before it,
    as ``pg_walfile_name()`` does for an end position such as a backup's stop LSN."""
    position = lsn - 1 if end and lsn > 0 else lsn
    return segment_name(timeline, position // segment_size, segment_size)
