"""One backup record's lifecycle, for every kind of backup (logical dumps and base backups).

The record is saved RUNNING before any work starts; when the work ends, however it ends, the
record is saved again in ``finally``: COMPLETED (or still RUNNING, for a base backup waiting
for its WAL), or FAILED with the step that failed named in its error. Anything raised counts,
``BaseException`` included (KeyboardInterrupt, SystemExit, a SIGTERM turned into an
exception, a timeout), so a backup that did not finish is never left RUNNING.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import (
    BackupError,
    CatalogError,
    CatalogUnavailable,
    StepError,
    first_line,
)
from amprenta_backup.core.models import BackupRecord, Manifest, Status, utcnow
from amprenta_backup.core.tracing import Phases

log = logging.getLogger(__name__)

EXPECTED = (BackupError, psycopg.Error)
"""Failures the engine expects (a tool, the server, storage): raised again as StepError."""


class Lifecycle:
    """The record of one backup while it runs, and the step it is in.

    :param record: the record, RUNNING
    :param step: the step the work starts with
    """

    def __init__(self, record: BackupRecord, step: str) -> None:
        self.record = record
        self.spans = Phases("backup", target=record.target, backup_id=record.backup_id,
                            kind=record.kind)
        self.step = step

    @property
    def step(self) -> str:
        return self._step

    @step.setter
    def step(self, name: str) -> None:
        """Entering a step starts its span (``backup.<step>``, see core/tracing.py)."""
        self._step = name
        self.spans.enter(name)

    def stored(self, manifest: Manifest) -> None:
        """Copy what was stored (bytes, checksum, manifest) into the record."""
        record = self.record
        record.stored_bytes, record.raw_bytes = manifest.stored_bytes, manifest.raw_bytes
        record.sha256, record.manifest = manifest.sha256, manifest

    def complete(self, manifest: Manifest) -> None:
        """The backup finished: COMPLETED, with what was stored."""
        self.stored(manifest)
        self.record.status, self.record.error = Status.COMPLETED, None
        self.record.completed_at = manifest.completed_at

    def fail(self, detail: str) -> None:
        """The backup failed in the current step."""
        record = self.record
        record.status, record.error = Status.FAILED, f"step {self.step!r} failed: {detail}"
        record.completed_at = utcnow()


@contextmanager
def recorded(catalog: Catalog, record: BackupRecord, *, step: str = "connect",
             redact: Callable[[str], str] = str, save_first: bool = True,
             wrap: bool = True, saved: Callable[[], None] | None = None
             ) -> Iterator[Lifecycle]:
    """Run the block as one backup's lifecycle; the record is saved in ``finally``.

    An :data:`EXPECTED` error is recorded with its first line and raised again as a
    :class:`StepError` naming the step (or as it is, with ``wrap=False``); anything else is
    recorded with its type and raised as it is.

    :param catalog: where the record is saved
    :param record: the record; saved RUNNING first unless ``save_first`` is false (a record
        that is already RUNNING in the catalog)
    :param step: the first step of the work
    :param redact: removes secrets (a password in a DSN) from error text
    :param wrap: raise expected errors as StepError
    :param saved: instead of saving the record RUNNING first, waits (once the block ended)
        until another thread saved it so (core/backup/admission.py); what it raises instead
        is raised, and no outcome is saved: the backup was never recorded
    """
    if save_first and saved is None:
        record.status = Status.RUNNING
        save_start(catalog, record)
    life = Lifecycle(record, step)
    try:
        with _outcome(catalog, record, life, redact, wrap, saved):
            yield life
    except BaseException as exc:
        life.spans.close(exc)
        raise
    life.spans.close()


@contextmanager
def _outcome(catalog: Catalog, record: BackupRecord, life: Lifecycle,
             redact: Callable[[str], str], wrap: bool,
             saved: Callable[[], None] | None) -> Iterator[None]:
    """The record's outcome from how the block ended, saved in ``finally`` (once ``saved``
    returns, if given)."""
    try:
        yield
    except EXPECTED as exc:
        detail = redact(first_line(exc) if isinstance(exc, psycopg.Error)
                        else str(exc).strip() or type(exc).__name__)
        life.fail(detail)
        if not wrap:
            raise
        raise StepError(life.step, record.target, detail) from exc
    except BaseException as exc:  # OS errors, timeouts, SIGTERM, Ctrl-C: never left RUNNING
        life.fail(redact(f"{type(exc).__name__}: {exc}".rstrip(": ")))
        raise
    finally:
        if saved is not None:
            saved()
        if record.status == Status.RUNNING and life.record.manifest is None:
            log.warning("backup %s ended without an outcome; recorded FAILED", record.backup_id)
            life.fail("the backup ended without recording an outcome")
        _save_outcome(catalog, record)


def save_start(catalog: Catalog, record: BackupRecord) -> None:
    """Save the record RUNNING before any work; CatalogUnavailable if the catalog fails."""
    try:
        catalog.save(record)
    except CatalogError as exc:
        raise CatalogUnavailable(f"backup of {record.target!r} not started, nothing was "
                                 f"written: {exc}") from exc


def _save_outcome(catalog: Catalog, record: BackupRecord) -> None:
    """Save the final record; if the catalog fails now, say what was stored all the same."""
    try:
        catalog.save(record)
    except CatalogError as exc:
        if record.status == Status.COMPLETED:
            raise CatalogError(
                f"backup {record.backup_id} of {record.target!r} was stored (dump and manifest "
                f"in {record.location}) but the catalog could not record it: {exc}; it is "
                "restorable from storage, and `amprenta-backup rebuild-catalog` (or the next "
                "run of this backup id) records it") from exc
        raise CatalogError(f"backup {record.backup_id} of {record.target!r} did not complete "
                           f"({record.error}) and the catalog could not record that: {exc}"
                           ) from exc
