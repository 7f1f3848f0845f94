"""Rebuilding the catalog from storage: the manifests stored beside the backups, read back
into records (``rebuild-catalog``, a catalog lost or made anew, the storage-backed index), with
what was skipped or conflicts reported."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from amprenta_backup.core import layout
from amprenta_backup.core.constants import MANIFEST_NAME
from amprenta_backup.core.models import BackupRecord, Manifest, Status
from amprenta_backup.core.storage.base import Storage

if TYPE_CHECKING:
    from amprenta_backup.core.catalog import Catalog

log = logging.getLogger(__name__)


def rebuild_from_storage(catalog: Catalog, storage: Storage, prefix: str = "") -> RebuildReport:
    """Re-create ``catalog``'s records from every valid ``manifest.json`` in storage.

    Each manifest is checked (:func:`parse_manifest`: types, bounds, id and target equal
    to its folder's, no future dates by this server's clock); bad ones are skipped and
    reported, the rest rebuilt. A record that exists with other content (another target,
    sha256 or size), or an id found in two folders, is never overwritten: that is a
    conflict, reported.
    Statuses set by later steps (verified, corrupt, deleted) are kept.
    """
    from amprenta_backup.core.records.manifests import FUTURE_SLACK

    report = RebuildReport()
    found: dict[str, list[tuple[str, Manifest]]] = {}
    for folder, manifest in stored_manifests(storage, prefix, report.skipped,
                                             catalog.now() + FUTURE_SLACK):
        found.setdefault(manifest.backup_id, []).append((folder, manifest))
    for backup_id, copies in found.items():
        folder, manifest = copies[0]
        location = storage.uri(folder)
        existing = catalog.get(backup_id)
        conflict = (f"found in {len(copies)} folders: "
                    f"{', '.join(storage.uri(f) for f, _ in copies)}" if len(copies) > 1
                    else _conflict(existing, manifest) if existing else None)
        if conflict:
            report.conflicts.append((backup_id, conflict))
            log.warning("rebuild: backup %s not recorded: %s", backup_id, conflict)
            continue
        status = existing.status if existing and existing.status not in (
            Status.RUNNING, Status.FAILED) else Status.COMPLETED
        catalog.save(record_from_manifest(manifest, location, status))
        report.rebuilt += 1
    return report


@dataclass
class RebuildReport:
    """What ``rebuild-catalog`` did: records rebuilt, manifests skipped, conflicts left.

    :param skipped: ``(manifest URI, why)`` of manifests that failed the checks
    :param conflicts: ``(backup id, why)`` of manifests that disagree with an existing record
    """

    rebuilt: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    conflicts: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rebuilt": self.rebuilt,
                "skipped": [{"manifest": uri, "reason": why} for uri, why in self.skipped],
                "conflicts": [{"backup_id": i, "reason": why} for i, why in self.conflicts]}


def _conflict(existing: BackupRecord, manifest: Manifest) -> str | None:
    """Why ``manifest`` may not replace ``existing``, or None if it describes the same backup
    (found where it is now: storage copied or moved elsewhere keeps the same bytes)."""
    differences = [f"{what} {ours!r} in the catalog, {theirs!r} in the manifest"
                   for what, ours, theirs in (
                       ("target", existing.target, manifest.target),
                       ("sha256", existing.sha256, manifest.sha256),
                       ("stored size", existing.stored_bytes, manifest.stored_bytes))
                   if ours is not None and ours != theirs]
    return "; ".join(differences) or None


def stored_manifests(storage: Storage, prefix: str = "",
                     skipped: list[tuple[str, str]] | None = None,
                     not_after: datetime | None = None) -> Iterator[tuple[str, Manifest]]:
    """``(folder key, manifest)`` of every valid ``manifest.json`` under ``prefix``
    (:func:`parse_manifest`); the others are logged and added to ``skipped`` as
    ``(URI, why)``."""
    # here, not at the top: its pydantic schema costs every backup's process 40 ms to build
    from amprenta_backup.core.records.manifests import ManifestError, parse_manifest

    for info in storage.list_objects(prefix):
        if not info.key.endswith("/" + MANIFEST_NAME):
            continue
        folder = layout.folder_of(info.key)
        try:
            manifest = parse_manifest(storage.get_bytes(info.key), folder, not_after)
        except ManifestError as exc:
            log.warning("skipping manifest %s: it %s", storage.uri(info.key), exc)
            if skipped is not None:
                skipped.append((storage.uri(info.key), f"it {exc}"))
            continue
        yield folder, manifest


def record_from_manifest(manifest: Manifest, location: str, status: Status) -> BackupRecord:
    """The catalog record that a manifest describes."""
    return BackupRecord(
        backup_id=manifest.backup_id, target=manifest.target, status=status,
        location=location, started_at=manifest.started_at, database=manifest.database,
        kind=manifest.kind, completed_at=manifest.completed_at,
        stored_bytes=manifest.stored_bytes, raw_bytes=manifest.raw_bytes,
        sha256=manifest.sha256, run=manifest.run, manifest=manifest,
    )
