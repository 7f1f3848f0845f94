"""WAL retention tied to base backups: WAL goes only when no stored base backup needs it.

A stored base backup (one whose ``manifest.json`` exists) needs every WAL file from its
start segment onward on its own timeline, and everything on later timelines (a restore may
follow a timeline switch). History files are never deleted. With no stored base backup,
nothing is deleted: the archive is then all there is.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from amprenta_backup.core.constants import MANIFEST_NAME
from amprenta_backup.core.errors import ObjectLocked
from amprenta_backup.core.layout import target_prefix
from amprenta_backup.core.wal.archive import CHECKSUM_SUFFIX, SUFFIX, WalArchive, wal_prefix
from amprenta_backup.core.wal.names import WAL_FILE, segment_number
from amprenta_backup.core.wal.ranges import WalRange

log = logging.getLogger(__name__)


@dataclass
class WalCleanupReport:
    """What a WAL cleanup removed and kept, and from which point on it keeps everything."""

    dry_run: bool
    base_backups: list[str] = field(default_factory=list)
    keep_from: dict[str, str] = field(default_factory=dict)  # timeline -> first kept segment
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    bytes_freed: int = 0
    locked: list[str] = field(default_factory=list)  # WAL files S3 Object Lock still keeps

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "base_backups": self.base_backups,
                "keep_from": self.keep_from, "removed_count": len(self.removed),
                "first_removed": self.removed[:1], "last_removed": self.removed[-1:],
                "kept": self.kept, "bytes_freed": self.bytes_freed,
                "locked_count": len(self.locked)}


def stored_base_backups(archive: WalArchive) -> dict[str, WalRange]:
    """Base backups of the archive's target with a manifest in storage, by backup id."""
    found: dict[str, WalRange] = {}
    root = target_prefix(archive.prefix, archive.target)
    wal_root = wal_prefix(archive.prefix, archive.target)
    for info in archive.storage.list_objects(root):
        if info.key.startswith(wal_root) or not info.key.endswith("/" + MANIFEST_NAME):
            continue
        data = json.loads(archive.storage.get_bytes(info.key))
        if data.get("kind") == "physical" and data.get("wal"):
            found[str(data["backup_id"])] = WalRange.from_dict(data["wal"])
    return found


def needed(name: str, backups: list[WalRange]) -> bool:
    """Whether a stored base backup needs WAL file ``name``."""
    if name.endswith(".history"):
        return True
    for backup in backups:
        timeline, segno = segment_number(name[:24], backup.segment_size)
        _, start = segment_number(backup.start_segment, backup.segment_size)
        if timeline > backup.timeline or (timeline == backup.timeline and segno >= start):
            return True
    return False


def clean_wal(archive: WalArchive, dry_run: bool = False) -> WalCleanupReport:
    """Delete the archived WAL no stored base backup needs (objects and their checksums)."""
    backups = stored_base_backups(archive)
    report = WalCleanupReport(dry_run, base_backups=sorted(backups))
    if not backups:
        log.warning("no stored base backup of %s: all WAL is kept", archive.target)
        return report
    for backup in backups.values():
        current = report.keep_from.get(f"{backup.timeline:08X}")
        if current is None or backup.start_segment < current:
            report.keep_from[f"{backup.timeline:08X}"] = backup.start_segment
    objects: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for info in archive.storage.list_objects(wal_prefix(archive.prefix, archive.target)):
        base = info.key.rsplit("/", 1)[-1].removesuffix(CHECKSUM_SUFFIX).removesuffix(SUFFIX)
        if WAL_FILE.match(base):
            objects[base].append((info.key, info.size))
    doomed = sorted(n for n in objects if not needed(n, list(backups.values())))
    report.kept = len(objects) - len(doomed)
    for start in range(0, len(doomed), 500):
        batch = doomed[start:start + 500]
        keys = [key for name in batch for key, _ in sorted(objects[name], reverse=True)]
        if not dry_run:
            try:
                archive.storage.delete(keys)  # checksum before data: no half file looks complete
            except ObjectLocked as exc:  # kept until their retain-until date; the next run
                report.locked += [n for n in batch if any(k in exc.keys for k, _ in objects[n])]
                batch = [n for n in batch if n not in report.locked]
                log.warning("WAL kept under S3 Object Lock: %s", exc)
        report.removed += batch
        report.bytes_freed += sum(size for name in batch for _, size in objects[name])
    log.info("%s %d WAL files of %s (%d bytes); kept %d, from %s",
             "would remove" if dry_run else "removed", len(report.removed), archive.target,
             report.bytes_freed, report.kept, report.keep_from)
    return report
