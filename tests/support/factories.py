"""Small builders shared by the tests."""

from __future__ import annotations

import subprocess

import zstandard

from amprenta_backup.core.constants import READ_CHUNK
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.pgtools import PgConnInfo, tool
from amprenta_backup.core.storage import Storage


def restore_stored_dump(storage: Storage, manifest: Manifest, conn: PgConnInfo) -> None:
    """Stream a stored dump through zstd into plain ``pg_restore`` (independent of the engine)."""
    argv = [tool("pg_restore"), "--exit-on-error", "--no-owner", f"--dbname={conn.dbname}"]
    proc = subprocess.Popen(argv, env=conn.env(), stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None
    with storage.open_reader(manifest.key) as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        while chunk := reader.read(READ_CHUNK):
            proc.stdin.write(chunk)
    proc.stdin.close()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.wait() == 0, f"pg_restore failed: {err}"
