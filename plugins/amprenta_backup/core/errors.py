"""One exception tree for the engine, rooted at :class:`BackupError`.

::

    BackupError
     +-- ConfigError (also ValueError)   a setting is missing or wrong; names the setting
     +-- ConnectionSettingsError         a database connection cannot be built or reached
     +-- DumpError                       pg_dump (or another client tool) failed
     +-- StorageError                    the storage backend failed (retry may help)
     |    +-- StorageNotReady (also PreconditionError)  no such bucket, unwritable folder
     |    +-- ObjectMissing                 an object is not in storage
     |    +-- ObjectLocked                  S3 Object Lock refused a delete (retain-until ahead)
     +-- ChecksumMismatch                stored bytes differ from the manifest (never retry)
     |    +-- BackupDamaged                a backup's manifest or dump is missing or unreadable
     +-- CatalogError                    the catalog database failed
     |    +-- CatalogUnavailable (also PreconditionError)  down before a backup started
     +-- RestoreError                    a restore could not be carried out
     +-- PreconditionError               refused before touching anything
     +-- WalSegmentMissing               a WAL segment is not in the archive
     +-- WalConflict                     a different WAL segment is archived under that name
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping


class BackupError(Exception):
    """Root of every error raised by the engine."""


class ConfigError(BackupError, ValueError):
    """A setting is missing or has a bad value; the message names the setting and the fix."""


class ConnectionSettingsError(BackupError):
    """A database connection cannot be built from its settings, or the server is unreachable."""


class DumpError(BackupError):
    """A PostgreSQL client tool (pg_dump, pg_restore, ...) exited with an error."""


class StorageError(BackupError):
    """Reading from or writing to backup storage failed."""


class ObjectLocked(StorageError):
    """S3 Object Lock refused to delete objects whose retain-until date is still ahead: not a
    failure of the caller, who skips them and tries again once the date has passed.

    :param keys: the keys whose delete was refused
    """

    def __init__(self, message: str, keys: list[str]) -> None:
        super().__init__(message)
        self.keys = keys


class ChecksumMismatch(BackupError):
    """The bytes in storage do not match the checksum recorded in the manifest (or the manifest
    does not match the catalog record).

    :param backup_id: the backup found corrupt, when one is known
    """

    def __init__(self, message: str, backup_id: str | None = None) -> None:
        super().__init__(message)
        self.backup_id = backup_id


class ObjectMissing(StorageError):
    """An object a backup needs is not in storage (deleted, or never written)."""


class BackupDamaged(ChecksumMismatch):
    """A backup's stored objects are missing or unreadable (the CLI exits 3, as for a checksum
    mismatch).

    :param backup_id: the damaged backup
    """

    def __init__(self, message: str, backup_id: str) -> None:
        super().__init__(message)
        self.backup_id = backup_id


class CatalogError(BackupError):
    """The backup catalog database could not be read or written."""


class RestoreError(BackupError):
    """A restore could not be carried out."""


class PreconditionError(BackupError):
    """An operation was refused before anything was touched."""


class StepError(BackupError):
    """A named step of a backup failed; ``step`` says which, ``__cause__`` says why.

    :param step: the step that failed (``connect``, ``dump``, ``upload``, ``manifest`` ...)
    :param target: the backup target the step worked on
    :param detail: what went wrong, already free of secrets
    """

    def __init__(self, step: str, target: str, detail: str) -> None:
        super().__init__(f"backup of {target!r} failed at step {step!r}: {detail}")
        self.step = step
        self.target = target
        self.detail = detail


class StorageNotReady(StorageError, PreconditionError):
    """Storage cannot be used as configured (no such bucket, an unwritable folder); refused
    before anything was written (the CLI exits 2)."""


class CatalogUnavailable(CatalogError, PreconditionError):
    """The catalog could not record the start of a backup; refused before anything was
    written (the CLI exits 2)."""


class WalSegmentMissing(BackupError):
    """A WAL segment (or history file) is not in the archive."""


class WalConflict(BackupError):
    """The archive already holds different content under a WAL file's name; never overwrite."""


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error's message, else the error's type name.

    Driver and tool errors run over several lines (``DETAIL:``, ``HINT:``, a query echo);
    the first one says what went wrong and is what a record, a log line or an alert shows.
    """
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    return type(error).__name__ if isinstance(error, BaseException) else ""


FORM_ASSIGN = "{word}: {value}"
"""How a form field given a value reads in a message (:func:`reword`): ``Confirm: sales``."""


def reword(message: str, names: Mapping[str, str], assign: str = "{word} {value}") -> str:
    """``message`` with the request fields it names in another interface's words.

    The engine names a field as Python does (``confirm='sales'``, ``give source_target``,
    ``mode replace``, ``(confirm was None)``); the CLI shows ``--confirm sales``, ``--from``,
    ``--mode replace``, ``(--confirm was not given)``, and a form its labels (``Confirm:
    sales`` with ``assign="{word}: {value}"``).

    :param names: field -> the interface's word for it, e.g. ``{"source_target": "--from"}``
    :param assign: how a field given a value reads (``{word}``, ``{value}``)
    """
    def assignment(word: str) -> Callable[[re.Match[str]], str]:
        def render(match: re.Match[str]) -> str:
            text = match.group(1)
            if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
                text = text[1:-1]
            return assign.format(word=word, value=shlex.quote(text))
        return render

    for field, word in names.items():
        message = re.sub(rf"(?<![\w-]){field} was None\b", f"{word} was not given", message)
        message = re.sub(rf"(?<![\w-]){field} was ('[^']*'|\"[^\"]*\")", f"{word} was \\1",
                         message)
        message = re.sub(rf"(?<![\w-]){field}=('[^']*'|\"[^\"]*\"|[\w.-]+)",
                         assignment(word), message)
        if field == "mode":
            message = re.sub(r"(?<![\w-])mode (new_database|replace)\b", f"{word} \\1", message)
        elif "_" in field:  # a snake_case name is a Python name wherever it stands
            message = re.sub(rf"(?<![\w-]){field}\b", word, message)
    return message
