"""Wall time of the steps of one backup, for diagnosis (``_backup_child.py --phases``).

Wraps the engine's own functions (nothing is skipped or replaced), so the backup measured is
the one a user's run makes; the wrapping costs a few microseconds a call. Each step's total
seconds and calls are kept per thread kind (``main`` or ``thread``): a step of a helper
thread overlaps the main thread's work.
"""

from __future__ import annotations

import functools
import importlib
import threading
import time
from collections import defaultdict
from typing import Any

STEPS = {
    "run_guard": ("amprenta_backup.core.records.heartbeat", "RunGuard.__enter__"),
    "sweep": ("amprenta_backup.core.backup.logical", "sweep_quietly"),
    "already_completed": ("amprenta_backup.core.backup.admission", "completed_manifest"),
    "admission": ("amprenta_backup.core.backup.admission", "Admission._admit"),
    "admission_wait": ("amprenta_backup.core.backup.admission", "Admission.wait"),
    "s3_check_ready": ("amprenta_backup.core.storage.s3", "S3Storage.check_ready"),
    "catalog_ensure": ("amprenta_backup.core.catalog", "Catalog.ensure"),
    "catalog_now": ("amprenta_backup.core.catalog", "Catalog.now"),
    "catalog_save": ("amprenta_backup.core.catalog", "Catalog.save"),
    "pg_connect": ("psycopg", "connect"),
    "properties": ("amprenta_backup.core.backup.logical", "read_properties"),
    "dump": ("amprenta_backup.core.backup.logical", "BackupRunner._stream_dump"),
    "s3_commit": ("amprenta_backup.core.storage.multipart", "MultipartWriter._commit"),
    "s3_submit": ("amprenta_backup.core.storage.multipart", "MultipartWriter._submit"),
    "s3_upload_part": ("amprenta_backup.core.storage.multipart", "MultipartWriter._upload_part"),
    "s3_client": ("amprenta_backup.core.storage.s3", "new_client"),
    "local_commit": ("amprenta_backup.core.storage.local", "_LocalWriter._commit"),
    "row_count_wait": ("amprenta_backup.core.backup.rowcount", "RowCounter.join"),
    "row_count": ("amprenta_backup.core.backup.rowcount", "count_rows"),
    "globals_take": ("amprenta_backup.core.backup.globals", "GlobalsCapture.take"),
    "globals_store": ("amprenta_backup.core.backup.globals", "GlobalsCapture.store"),
    "put_bytes": ("amprenta_backup.core.storage.base", "Storage.put_bytes"),
    "run": ("amprenta_backup.core.backup.logical", "BackupRunner.run"),
}

_totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
_lock = threading.Lock()


def _timed(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            kind = "main" if threading.current_thread() is threading.main_thread() else "thread"
            with _lock:
                entry = _totals[f"{name}.{kind}"]
                entry[0] += time.perf_counter() - started
                entry[1] += 1
    return wrapper


def install() -> None:
    """Wrap every step of :data:`STEPS` that this engine has."""
    for name, (module_name, attribute) in STEPS.items():
        owner: Any = importlib.import_module(module_name)
        *path, leaf = attribute.split(".")
        try:
            for part in path:
                owner = getattr(owner, part)
            setattr(owner, leaf, _timed(name, getattr(owner, leaf)))
        except AttributeError:
            continue


def report() -> dict[str, dict[str, float]]:
    """``{step.kind: {"s": seconds, "calls": n}}``."""
    with _lock:
        return {k: {"s": round(v[0], 4), "calls": int(v[1])} for k, v in sorted(_totals.items())}
