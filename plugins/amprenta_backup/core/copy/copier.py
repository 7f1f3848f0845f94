"""Copy one stored backup to the second storage: read the primary once, write the copy, read
the copy back and prove every object's sha256; the manifest goes last, as on the primary.

The copy moves stored bytes and never looks inside them, so compressed, encrypted or
Object-Locked backups are copied the same way.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.constants import READ_CHUNK
from amprenta_backup.core.copy.records import CopyRecord, CopyRecords, CopyStatus
from amprenta_backup.core.errors import BackupError, ChecksumMismatch, PreconditionError
from amprenta_backup.core.models import RESTORABLE, BackupRecord, Manifest, RunContext, utcnow
from amprenta_backup.core.storage.base import Storage
from amprenta_backup.core.storage.rebased import RebasedStorage
from amprenta_backup.core.verify import folder_of, record_mismatches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One object to copy: its key, size and the sha256 its bytes must have (None: any)."""

    key: str
    size: int
    sha256: str | None = None


@dataclass
class CopyOutcome:
    """What one copy did: the row it recorded, the objects written and those already there."""

    record: CopyRecord
    copied: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        r = self.record
        return (f"backup {r.backup_id} of {r.target} copied to {r.location}: {len(self.copied)} "
                f"objects, {r.stored_bytes} bytes, sha256 {r.sha256} checked on the copy "
                f"({r.seconds} s)")


def _stream(source: Storage, target: Storage, item: Item) -> str:
    """Copy one object in bounded chunks; its sha256 as read. Nothing is left on ``target``
    if the bytes read are not those expected."""
    sha = hashlib.sha256()
    with source.open_reader(item.key) as reader, \
            target.open_writer(item.key, expected_size=item.size) as writer:
        while chunk := reader.read(READ_CHUNK):
            sha.update(chunk)
            writer.write(chunk)
        if item.sha256 and sha.hexdigest() != item.sha256:
            writer.abort()
            raise ChecksumMismatch(
                f"{source.uri(item.key)} has sha256 {sha.hexdigest()}, its manifest says "
                f"{item.sha256}: the primary's copy is damaged and was not copied; verify the "
                "backup (`amprenta-backup verify`)")
    return sha.hexdigest()


def sha256_of(storage: Storage, key: str) -> str:
    """The sha256 of one stored object, read whole."""
    sha = hashlib.sha256()
    with storage.open_reader(key) as reader:
        while chunk := reader.read(READ_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


class Copier:
    """Copies backups from the primary storage to the copy, recording each in
    ``backup_copies``.

    :param primary: the primary storage
    :param copy: the copy, seen with the primary's keys
    :param catalog: the catalog of both
    """

    def __init__(self, primary: Storage, copy: RebasedStorage, catalog: Catalog) -> None:
        self.primary = primary
        self.copy = copy
        self.catalog = catalog
        self.records = CopyRecords(catalog, copy.uri(copy.seen))

    def run(self, record: BackupRecord, run: RunContext | None = None) -> CopyOutcome:
        """Copy ``record``'s objects and prove them on the copy; FAILED is recorded (and the
        error raised) if anything goes wrong, and the copy's manifest is then not written."""
        if record.status not in RESTORABLE:
            raise PreconditionError(f"backup {record.backup_id} is {record.status}; only "
                                    "completed backups are copied")
        folder = folder_of(self.primary, record)
        self.copy.check_ready()  # reachable, and with Object Lock if the copy asks for it
        row = CopyRecord(record.backup_id, self.records.storage, record.target,
                         self.copy.uri(folder), CopyStatus.COPYING, started_at=utcnow(),
                         run=run or RunContext())
        self.records.save(row)
        started = time.monotonic()
        outcome = CopyOutcome(row)
        try:
            self._copy(record, folder, outcome)
        except BackupError as exc:
            row.status, row.error = CopyStatus.FAILED, f"copy failed: {exc}"
            row.seconds = round(time.monotonic() - started, 3)
            self.records.save(row)
            raise
        row.status, row.seconds = CopyStatus.VERIFIED, round(time.monotonic() - started, 3)
        row.copied_at = row.verified_at = utcnow()
        self.records.save(row)
        log.info("%s", outcome.message)
        return outcome

    def _copy(self, record: BackupRecord, folder: str, outcome: CopyOutcome) -> None:
        manifest_key = layout.manifest_key(folder)
        raw = self.primary.get_bytes(manifest_key)  # read once, written as read
        manifest = Manifest.from_json(raw)
        problems = record_mismatches(record, manifest)
        if problems:
            raise ChecksumMismatch(f"the manifest at {self.primary.uri(manifest_key)} does not "
                                   f"match the catalog record ({'; '.join(problems)}); not "
                                   "copied", backup_id=record.backup_id)
        for item in self._globals(manifest):
            if self.copy.exists(item.key) and sha256_of(self.copy, item.key) == item.sha256:
                outcome.present.append(item.key)  # another target of the run brought it
                continue
            self._one(item, outcome)
        for item in self._objects(folder, manifest):
            self._one(item, outcome)
        self.copy.put_bytes(manifest_key, raw)
        if sha256_of(self.copy, manifest_key) != hashlib.sha256(raw).hexdigest():
            raise ChecksumMismatch(f"the manifest read back from {self.copy.uri(manifest_key)} "
                                   "differs from the one written", backup_id=record.backup_id)
        outcome.copied.append(manifest_key)
        outcome.record.stored_bytes = (outcome.record.stored_bytes or 0) + len(raw)
        outcome.record.objects = len(outcome.copied)
        outcome.record.sha256 = manifest.sha256

    def _one(self, item: Item, outcome: CopyOutcome) -> None:
        self._put(item)
        outcome.copied.append(item.key)
        outcome.record.stored_bytes = (outcome.record.stored_bytes or 0) + item.size

    def _put(self, item: Item) -> None:
        """Copy one object and read it back from the copy: its sha256 must be the one read."""
        read = _stream(self.primary, self.copy, item)
        back = sha256_of(self.copy, item.key)
        if back != read:
            self.copy.delete([item.key])
            raise ChecksumMismatch(f"{self.copy.uri(item.key)} read back with sha256 {back}, "
                                   f"{read} was written; the copy storage damaged it")

    def sync(self, prefix: str) -> list[str]:
        """Copy every object under ``prefix`` that the copy lacks or holds with another size
        (archived WAL), each read back; in key order, so a WAL segment lands before its
        sha256 sidecar (which makes it count as archived). Returns the keys copied."""
        have = {o.key: o.size for o in self.copy.list_objects(prefix)}
        copied: list[str] = []
        for obj in sorted(self.primary.list_objects(prefix), key=lambda o: o.key):
            if have.get(obj.key) != obj.size:
                self._put(Item(obj.key, obj.size))
                copied.append(obj.key)
        return copied

    def _objects(self, folder: str, manifest: Manifest) -> list[Item]:
        """Every object of the backup's folder but the manifest; the dump must be there."""
        manifest_key = layout.manifest_key(folder)
        found = {o.key: o.size for o in self.primary.list_objects(folder + "/")
                 if o.key != manifest_key}
        expected = {obj.key: obj.sha256 for obj in manifest.objects()}  # each part's own
        for key in expected:
            if key not in found:
                raise ChecksumMismatch(f"the dump {self.primary.uri(key)} is missing; "
                                       "nothing to copy", backup_id=manifest.backup_id)
        return [Item(key, size, expected.get(key)) for key, size in sorted(found.items())]

    def _globals(self, manifest: Manifest) -> list[Item]:
        """The server's roles and tablespaces of the backup's run, and their info (last)."""
        ref = manifest.globals_ref()
        if ref is None:
            return []
        info = layout.globals_info_key(layout.folder_of(ref.key))
        sizes = {o.key: o.size for o in self.primary.list_objects(layout.folder_of(ref.key))}
        return [Item(ref.key, sizes.get(ref.key, ref.stored_bytes), ref.sha256),
                Item(info, sizes.get(info, 0), None)]
