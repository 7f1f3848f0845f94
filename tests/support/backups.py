"""Real backups for verify and restore tests, and ways to damage them as disks and people do."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import zstandard

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner, BackupSettings
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.models import Manifest, RunContext
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.pipeline import Compression
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.storage import Storage

SETTINGS = BackupSettings(prefix="database/", compression=Compression())
_ids = itertools.count(1)


def make_backup(storage: Storage, catalog: Catalog, conn: PgConnInfo, target: str = "pg_source",
                when: datetime | None = None, keys: KeyService | None = None) -> Manifest:
    """One real backup of ``conn``'s database, recorded COMPLETED (encrypted with ``keys``)."""
    backup_id = layout.make_backup_id(when or datetime.now(UTC), f"test/{next(_ids)}/{target}")
    settings = dataclasses.replace(SETTINGS, keys=keys)
    return BackupRunner(storage, catalog, settings).run(target, conn, RunContext(), backup_id)


def engine_for(storage: Storage, catalog: Catalog, conns: dict[str, PgConnInfo],
               config: BackupConfig | None = None, **options: Any) -> BackupEngine:
    """A BackupEngine over ``storage`` and ``catalog`` whose connection ids are ``conns``
    (``options``: the engine's other keyword arguments, e.g. a copy storage)."""

    def resolve(conn_id: str, database: str | None) -> PgConnInfo:
        if conn_id not in conns:
            raise ConfigError(f"connection {conn_id!r} is not defined")
        conn = conns[conn_id]
        return conn.with_database(database) if database else conn

    return BackupEngine(config or BackupConfig(), storage=storage, catalog=catalog,
                        resolve=resolve, **options)


def rewrite(storage: Storage, key: str, change: Callable[[bytes], bytes]) -> None:
    """Replace a stored object's bytes with ``change(bytes)``."""
    storage.put_bytes(key, change(storage.get_bytes(key)))


def flip_byte(data: bytes) -> bytes:
    """One bit flipped in the middle: what a bad disk sector or a bit rot does."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1:]


def truncate(data: bytes) -> bytes:
    """The first half only: an interrupted copy."""
    return data[: len(data) // 2]


def damage_archive_then_checksum(storage: Storage, manifest: Manifest) -> Manifest:
    """Cut the end off the pg_dump archive *before* compression and write a manifest whose
    sha256 and sizes match the damaged bytes: only a full read of the archive can tell."""
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(storage.get_bytes(manifest.key))
    damaged = raw[: int(len(raw) * 0.9)]
    stored = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(damaged)
    storage.put_bytes(manifest.key, stored)
    forged = Manifest.from_json(manifest.to_json())
    forged.sha256 = hashlib.sha256(stored).hexdigest()
    forged.stored_bytes, forged.raw_bytes = len(stored), len(damaged)
    storage.put_bytes(layout.manifest_key(manifest.key.rsplit("/", 1)[0]), forged.to_json())
    return forged
