"""Start the dump before storage is known ready, and record the backup once it is.

Making the S3 client (botocore's imports and the client: 0.1-0.2 s of Python) and checking
storage (is there a manifest already, is the bucket there) used to come before ``pg_dump``
started. Now they run in a thread (:func:`check_storage`) while the source is prepared and
``pg_dump`` starts and streams; the dump's first bytes are held in memory
(:class:`HeldWriter`, at most :data:`HOLD_BYTES`) until :class:`Admission` has the storage's
answer. Nothing is written to storage before that answer, and the catalog record is saved
RUNNING only then, so a missing bucket still leaves no record and nothing written, and a
backup id that already completed is never overwritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import ExitStack
from typing import TYPE_CHECKING

from amprenta_backup.core import layout
from amprenta_backup.core.backup.lifecycle import Lifecycle, recorded
from amprenta_backup.core.errors import StorageError
from amprenta_backup.core.models import BackupRecord, Manifest
from amprenta_backup.core.storage.base import ObjectWriter, Storage
from amprenta_backup.core.storage.multipart import run_in_thread

if TYPE_CHECKING:
    from amprenta_backup.core.catalog import Catalog

log = logging.getLogger(__name__)

HOLD_BYTES = 16 * 1024 * 1024
"""The most dump bytes held in memory while storage is being checked (about 0.5 s of a
200 MiB database's compressed dump on two cores); then the dump waits for the answer."""


def check_storage(storage: Storage, folder: str) -> Manifest | None:
    """What storage says before a backup: the manifest of a backup that already completed in
    ``folder`` (then nothing is checked further), else None once storage is usable; raises
    the storage's :class:`StorageError` (e.g. ``StorageNotReady``) otherwise."""
    manifest_key = layout.manifest_key(folder)
    if storage.exists(manifest_key):
        return Manifest.from_json(storage.get_bytes(manifest_key))
    storage.check_ready()
    return None


class AlreadyCompleted(Exception):  # noqa: N818 (not an error: the backup exists)
    """Storage holds a finished backup under this id: the dump started early is stopped."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__(f"backup {manifest.backup_id} already completed")
        self.manifest = manifest


class Admission:
    """One backup's way from "dump started" to "recorded RUNNING".

    :meth:`admit` waits for storage's answer (:func:`check_storage`, run in a thread from
    :meth:`start`); if storage is usable it saves the record RUNNING and enters
    :func:`recorded` into ``stack``, whose outcome is then saved however the backup ends.
    Until then :attr:`step` is kept here and handed to the lifecycle when it begins.

    :param storage: where the backup goes
    :param folder: the backup's folder
    :param catalog: where the record goes
    :param record: the record, RUNNING, not yet saved
    :param stack: the block the record's lifecycle is entered into
    :param redact: removes secrets from error text
    """

    def __init__(self, storage: Storage, folder: str, catalog: Catalog, record: BackupRecord,
                 stack: ExitStack, redact: Callable[[str], str]) -> None:
        self.record = record
        self._storage, self._folder, self._catalog = storage, folder, catalog
        self._stack, self._redact = stack, redact
        self._answer: Future[Manifest | None] | None = None
        self._life: Lifecycle | None = None
        self._step = "connect"

    def start(self) -> None:
        """Ask storage in a thread (the S3 client is made there, on first use)."""
        self._answer = run_in_thread(lambda: check_storage(self._storage, self._folder),
                                     "storage-check")

    @property
    def admitted(self) -> bool:
        return self._life is not None

    @property
    def answered(self) -> bool:
        return self._answer is None or self._answer.done()

    @property
    def step(self) -> str:
        return self._life.step if self._life is not None else self._step

    @step.setter
    def step(self, name: str) -> None:
        if self._life is not None:
            self._life.step = name
        self._step = name

    def admit(self) -> Lifecycle:
        """Wait for storage's answer; record the backup RUNNING and return its lifecycle.

        Raises the storage's error (nothing recorded, nothing written) or
        :class:`AlreadyCompleted`.
        """
        if self._life is not None:
            return self._life
        if self._answer is None:
            self.start()
        assert self._answer is not None
        done = self._answer.result()
        if done is not None:
            raise AlreadyCompleted(done)
        self._life = self._stack.enter_context(
            recorded(self._catalog, self.record, step=self._step, redact=self._redact))
        return self._life


class HeldWriter(ObjectWriter):
    """Holds the first bytes of an object until the backup is admitted, then opens the real
    writer and passes everything on; it admits as soon as storage has answered, or when
    :data:`HOLD_BYTES` are held, or at commit. Aborting before that throws away what it held.

    :param admission: the backup's admission
    :param open_writer: opens the real writer, a context manager as ``Storage.open_writer``
        gives (entered once, after admission)
    :param limit: the most bytes held
    """

    def __init__(self, admission: Admission, open_writer: Callable[[], ObjectWriter],
                 limit: int = HOLD_BYTES) -> None:
        super().__init__()
        self._admission, self._open, self._limit = admission, open_writer, limit
        self._held: list[bytes] = []
        self._size = 0
        self._opened: ObjectWriter | None = None
        self._target: ObjectWriter | None = None

    def write(self, data: bytes) -> int:
        target = self._target
        if target is None:
            if not self._admission.answered and self._size + len(data) <= self._limit:
                self._held.append(bytes(data))
                self._size += len(data)
                return len(data)
            target = self._release()
        return target.write(data)

    def _release(self) -> ObjectWriter:
        self._admission.admit()
        self._opened = self._open()
        target = self._target = self._opened.__enter__()
        while self._held:
            target.write(self._held.pop(0))
        self._size = 0
        return target

    def _commit(self) -> None:
        if self._target is None:
            self._release()
        assert self._opened is not None
        self._opened.__exit__(None, None, None)

    def _abort(self) -> None:
        self._held.clear()
        if self._opened is not None:
            stop = StorageError("the write was aborted")
            self._opened.__exit__(StorageError, stop, None)
