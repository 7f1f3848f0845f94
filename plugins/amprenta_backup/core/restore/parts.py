"""Restoring a parallel dump (core/backup/parallel.py): the schema part's pre-data first, then
the data of every part at once, then the schema part's post-data (indexes, constraints,
triggers) with ``pg_restore -j``.

Every object's sha256 and size are proven on its one read, before the restore is reported:
the schema part's before its file is used, each data part's as it streams (a mismatch fails
the restore and the caller drops the database). The schema part is downloaded to a temporary
file (``pg_restore --section`` and ``-j`` need a seekable archive); it holds the schema and
the small tables only. The data-only parts stream from storage
through zstd into a ``pg_restore`` each, as many at once as the restore's ``jobs``.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from amprenta_backup.core.constants import DUMP_NAME
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.errors import ChecksumMismatch, DumpError, ObjectMissing
from amprenta_backup.core.readback import Progress, ToolInput, download_object, read_back
from amprenta_backup.core.restore.plan import RestorePlan
from amprenta_backup.core.restore.staged import LOADED
from amprenta_backup.core.storage.base import Storage

ArgvFor = Callable[[RestorePlan, Path | None, int, tuple[str, ...]], list[str]]
"""``(plan, archive path or None for stdin, jobs, extra options) -> pg_restore argv``."""


class _Progress:
    """The stored bytes read from every object so far, as one :data:`Progress`."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress, self._lock, self._each = progress, threading.Lock(), {0: 0}

    def of(self, index: int) -> Progress | None:
        if self._progress is None:
            return None

        def report(count: int) -> None:
            with self._lock:
                self._each[index] = count
                total = sum(self._each.values())
            assert self._progress is not None
            self._progress(total)
        return report


class PartsRestore:
    """Restores one parallel dump into the database of ``plan`` (which exists, empty).

    :param storage: where the objects are
    :param plan: the restore's plan; ``plan.manifest`` lists the parts
    :param argv_for: builds each pg_restore command (the plan's filters and options kept)
    :param keys: opens encrypted objects
    :param progress: hears the stored bytes read
    :param workdir: where the schema part's temporary file goes
    """

    def __init__(self, storage: Storage, plan: RestorePlan, argv_for: ArgvFor,
                 keys: KeyService | None, progress: Progress | None, workdir: str | None
                 ) -> None:
        self.storage, self.plan, self.argv_for = storage, plan, argv_for
        self.keys, self.workdir = keys, workdir
        self.objects = plan.manifest.objects()
        self.jobs = max(1, plan.request.jobs)
        self._progress = _Progress(progress)

    def restore(self) -> None:
        """pre-data, every part's data at once, post-data; the first failure raised."""
        with tempfile.TemporaryDirectory(prefix="amprenta-restore-", dir=self.workdir) as tmp:
            path = Path(tmp) / DUMP_NAME
            download_object(self.storage, self.objects[0], path, True,
                            self._progress.of(0), durable=False, keys=self.keys)
            self._run_file(path, 1, "--section=pre-data")
            loads: list[Callable[[], None]] = [
                partial(self._run_file, path, self.jobs, "--section=data")]
            loads += [partial(self._stream, i) for i in range(1, len(self.objects))]
            with ThreadPoolExecutor(min(self.jobs, len(loads))) as pool:
                futures = [pool.submit(load) for load in loads]
            errors = [e for f in futures if (e := f.exception()) is not None]
            if errors:  # a damaged or missing part first: it marks the backup, not pg_restore
                raise next((e for e in errors if isinstance(e, (ChecksumMismatch, ObjectMissing))),
                           errors[0])
            self._run_file(path, self.jobs, "--section=post-data")

    def _run_file(self, path: Path, jobs: int, section: str) -> None:
        done = subprocess.run(self.argv_for(self.plan, path, jobs, (section,)),
                              env=self.plan.target_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if done.returncode != 0:
            tail = done.stderr[-4000:].decode("utf-8", "replace").strip()
            raise DumpError(f"pg_restore {section} exited with code {done.returncode}: "
                            f"{tail or 'no message'}")

    def _stream(self, index: int) -> None:
        """One data-only part: storage -> zstd -> pg_restore's stdin, hashed again."""
        obj = self.objects[index]
        with ToolInput(self.argv_for(self.plan, None, 1, ()), self.plan.target_env()) as tool:
            readback = read_back(self.storage, obj, tool, decompress=True,
                                 progress=self._progress.of(index), keys=self.keys)
            code, stderr = tool.finish()
        problems = readback.mismatches(obj)
        if problems:
            raise ChecksumMismatch(self._corrupt([f"{self.storage.uri(obj.key)}: {p}"
                                                  for p in problems]) + LOADED,
                                   backup_id=self.plan.backup_id)
        if code != 0:
            raise DumpError(f"pg_restore of {self.storage.uri(obj.key)} exited with code "
                            f"{code}: {stderr or 'no message'}")

    def _corrupt(self, problems: list[str]) -> str:
        return (f"backup {self.plan.backup_id} of target {self.plan.source_target} is corrupt: "
                f"{'; '.join(problems)}")
