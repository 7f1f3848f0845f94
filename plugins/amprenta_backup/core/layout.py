"""Where a backup's objects live in storage, and what a backup id looks like."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from amprenta_backup.core.constants import (
    DUMP_NAME,
    GLOBALS_INFO_NAME,
    GLOBALS_NAME,
    GLOBALS_ROOT,
    MANIFEST_NAME,
)
from amprenta_backup.core.errors import ConfigError

BACKUP_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")
# connection ids and target names share one safe alphabet (also storage folder names)
CONN_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$")
TARGET_NAME = CONN_ID


def make_backup_id(when: datetime, run_key: str | None = None) -> str:
    """``20261124T010000Z-1a2b3c4d``: the time, then 8 hex digits.

    With a ``run_key`` (dag id, run id and target) the id is the same on every try of the
    same run, which makes retries and cleared re-runs overwrite instead of duplicating.
    """
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = (hashlib.sha256(run_key.encode()).hexdigest()[:8] if run_key
              else secrets.token_hex(4))
    return f"{stamp}-{suffix}"


def check_backup_id(backup_id: str) -> str:
    """Return ``backup_id`` if well-formed, else a ConfigError that shows the expected form."""
    if not isinstance(backup_id, str) or not BACKUP_ID.match(backup_id):
        raise ConfigError(
            f"backup id {str(backup_id)[:80]!r} is malformed; expected the form "
            "20261124T010000Z-1a2b3c4d (see `amprenta-backup list`)"
        )
    return backup_id


def check_target_name(target: str) -> str:
    """Return ``target`` if it is safe as a storage folder name."""
    if not TARGET_NAME.match(target):
        raise ConfigError(f"target name {target[:80]!r} may only hold letters, digits, '_.-'")
    return target


def filed_name(conn_id: str, database: str | None) -> str:
    """How the backups of ``conn_id`` (optionally another ``database`` on its server) are
    filed, listed and shown: ``conn_id`` or ``conn_id.database``."""
    if not database:
        return conn_id
    return f"{conn_id}.{re.sub(r'[^A-Za-z0-9_.-]', '_', database)}"


def target_name(text: str) -> str:
    """The one spelling of a backup target given in either form, ``conn_id.database`` (as
    filed) or ``conn_id:database`` (as in BACKUP_TARGETS): ``pg_main:sales`` and
    ``pg_main.sales`` both give ``pg_main.sales``."""
    if not isinstance(text, str):
        raise ConfigError(f"backup target {str(text)[:80]!r} is not a name; give conn_id or "
                          "conn_id.database (conn_id:database works too)")
    conn_id, _, database = text.strip().partition(":")
    name = filed_name(conn_id, database or None)
    if not TARGET_NAME.match(name):
        raise ConfigError(f"backup target {text[:80]!r} is not valid; give conn_id or "
                          "conn_id.database (conn_id:database works too) with letters, digits "
                          "and '_.-' in the connection id, e.g. pg_main or pg_main.sales")
    return name


def backup_time(backup_id: str) -> datetime:
    """The time encoded in a backup id."""
    return datetime.strptime(check_backup_id(backup_id)[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def backup_folder(prefix: str, target: str, backup_id: str) -> str:
    """``{prefix}/{target}/{YYYY}/{MM}/{DD}/{backup_id}`` (no trailing slash)."""
    when = backup_time(backup_id)
    parts = [prefix.strip("/"), check_target_name(target), f"{when:%Y}", f"{when:%m}",
             f"{when:%d}", backup_id]
    return "/".join(p for p in parts if p)


def dump_key(folder: str, compressed: bool) -> str:
    return f"{folder}/{DUMP_NAME}{'.zst' if compressed else ''}"


def part_key(folder: str, index: int, compressed: bool) -> str:
    """The key of data-only part ``index`` (1, 2 ...) of a parallel dump."""
    stem, _, ext = DUMP_NAME.rpartition(".")
    return f"{folder}/{stem}-data-{index:02d}.{ext}{'.zst' if compressed else ''}"


def manifest_key(folder: str) -> str:
    return f"{folder}/{MANIFEST_NAME}"


def folder_of(key: str) -> str:
    """The folder an object key lies in (``.../{backup_id}/manifest.json``: the backup's)."""
    return key.rsplit("/", 1)[0]


def target_prefix(prefix: str, target: str) -> str:
    """Prefix of every object of one target, with a trailing slash."""
    return "/".join(p for p in (prefix.strip("/"), check_target_name(target)) if p) + "/"


def server_name(host: str, port: int) -> str:
    """``db.example.com-5432``: a server as a storage folder name (sockets: ``_tmp_sock-5432``)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", host).strip(".") or "local"
    return f"{safe[:200]}-{int(port)}"


def globals_folder(prefix: str, server: str, globals_id: str) -> str:
    """``{prefix}/_globals/{server}/{YYYY}/{MM}/{DD}/{globals_id}``: one server's roles and
    tablespaces of one run, shared by every backup of that server in the run."""
    when = backup_time(globals_id)
    parts = [prefix.strip("/"), GLOBALS_ROOT, server, f"{when:%Y}", f"{when:%m}", f"{when:%d}",
             globals_id]
    return "/".join(p for p in parts if p)


def globals_key(folder: str, compressed: bool) -> str:
    return f"{folder}/{GLOBALS_NAME}{'.zst' if compressed else ''}"


def globals_info_key(folder: str) -> str:
    """The small JSON written after the globals object: no info, no globals."""
    return f"{folder}/{GLOBALS_INFO_NAME}"
