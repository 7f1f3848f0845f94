"""Files of a point-in-time restore: the base backup unpacked, and the recovery settings."""

from __future__ import annotations

import hashlib
import tarfile
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import zstandard

from amprenta_backup.core.constants import READ_CHUNK
from amprenta_backup.core.encryption import backup_identity, decrypting, envelope_of
from amprenta_backup.core.encryption.keys import KeyService
from amprenta_backup.core.encryption.stream import Source
from amprenta_backup.core.errors import ChecksumMismatch, RestoreError
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.readback import data_key
from amprenta_backup.core.storage.base import Storage

MARK = "# amprenta-backup point-in-time restore"
SOCKET_PATH_MAX = 100  # sun_path holds 107 bytes; the socket adds /.s.PGSQL.NNNNN
MINIMAL_HBA = """# written by amprenta-backup: the backup held no pg_hba.conf
local   all   all                 peer
host    all   all   127.0.0.1/32  scram-sha-256
"""


class _Hashing:
    """A reader that hashes and counts what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        self.count += len(data)
        return data


def extract_base_backup(storage: Storage, manifest: Manifest, data_dir: Path,
                        keys: KeyService | None = None) -> None:
    """Stream ``base.tar.zst`` into ``data_dir``: decryption (if encrypted), zstd, tar, and the
    sha256 of the stored bytes in one pass; a mismatch or a failed authentication tag raises
    ChecksumMismatch (the caller removes ``data_dir``). A missing key raises KeyUnavailable
    before anything is read."""
    envelope, key = envelope_of(manifest.encryption), data_key(keys, manifest)
    with storage.open_reader(manifest.key) as raw:
        hashing = _Hashing(raw)
        plain: Source = hashing
        if envelope is not None and key is not None:
            plain = decrypting(hashing, key, envelope,
                               backup_identity(manifest.backup_id, manifest.key),
                               storage.uri(manifest.key))
        reader = zstandard.ZstdDecompressor().stream_reader(plain)  # type: ignore[arg-type]
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                tar.extractall(data_dir, filter="data")
            while reader.read(READ_CHUNK):  # tar padding after the end-of-archive blocks
                pass
            while plain.read(READ_CHUNK):  # the last chunk's tag, and bytes zstd did not need
                pass
            while hashing.read(READ_CHUNK):  # bytes zstd did not need
                pass
        except (tarfile.TarError, zstandard.ZstdError) as exc:
            raise ChecksumMismatch(f"base backup {manifest.backup_id} at "
                                   f"{storage.uri(manifest.key)} cannot be unpacked: {exc}") \
                from exc
    if manifest.sha256 and hashing.sha.hexdigest() != manifest.sha256:
        raise ChecksumMismatch(f"base backup {manifest.backup_id} at {storage.uri(manifest.key)} "
                               f"fails its checksum (sha256 {hashing.sha.hexdigest()[:12]}... "
                               f"instead of {manifest.sha256[:12]}...); it cannot be restored")
    if not (data_dir / "PG_VERSION").is_file():
        raise RestoreError(f"base backup {manifest.backup_id} holds no PG_VERSION; it is not a "
                           "data directory")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def write_recovery_settings(data_dir: Path, port: int, restore_command: str,
                            target_time: datetime | None) -> None:
    """Append the recovery settings to ``postgresql.auto.conf`` (it wins over
    ``postgresql.conf``, where ``ALTER SYSTEM`` settings of the source also live) and create
    ``recovery.signal``. The server listens on 127.0.0.1 only."""
    settings = {
        "port": str(port), "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(data_dir) if len(str(data_dir)) <= SOCKET_PATH_MAX
        else "",
        "archive_mode": "off", "restore_command": restore_command,
        "recovery_target_action": "promote", "recovery_target_timeline": "latest",
    }
    if target_time is not None:
        settings["recovery_target_time"] = target_time.isoformat(sep=" ")
    lines = [MARK] + [f"{key} = {_quote(value)}" for key, value in settings.items()]
    with open(data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as conf:
        conf.write("\n" + "\n".join(lines) + "\n")
    (data_dir / "postgresql.conf").touch()  # Debian keeps it in /etc: start from defaults
    if not (data_dir / "pg_hba.conf").exists():
        (data_dir / "pg_hba.conf").write_text(MINIMAL_HBA)
    for stale in ("standby.signal", "postmaster.pid", "postmaster.opts"):
        (data_dir / stale).unlink(missing_ok=True)
    (data_dir / "recovery.signal").touch()
