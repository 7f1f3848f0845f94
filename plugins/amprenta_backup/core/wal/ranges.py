"""The WAL a base backup needs (its manifest's ``wal`` field): read by PITR and WAL retention.

It lives with the WAL names it is made of, so ``wal/`` never imports ``pitr/`` (``pitr/``
uses ``wal/``, not the other way round).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from amprenta_backup.core.errors import PreconditionError
from amprenta_backup.core.models import Manifest
from amprenta_backup.core.wal.names import parse_lsn, segment_of


@dataclass(frozen=True)
class WalRange:
    """The WAL a base backup needs: from its start LSN to its stop LSN on one timeline.

    :param timeline: timeline the backup was taken on
    :param start_lsn: where replay starts (the backup's checkpoint redo point)
    :param stop_lsn: where the backup becomes consistent
    :param segment_size: the cluster's ``wal_segment_size`` in bytes
    :param stop_time: when pg_basebackup finished; recovery targets must be later
    """

    timeline: int
    start_lsn: str
    stop_lsn: str
    segment_size: int
    stop_time: datetime

    @property
    def start_segment(self) -> str:
        return segment_of(self.timeline, parse_lsn(self.start_lsn), self.segment_size)

    @property
    def stop_segment(self) -> str:
        """The segment holding the stop LSN: archived means the backup is usable for PITR."""
        return segment_of(self.timeline, parse_lsn(self.stop_lsn), self.segment_size, end=True)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop_time"] = self.stop_time.isoformat()
        data["start_segment"], data["stop_segment"] = self.start_segment, self.stop_segment
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WalRange:
        return cls(timeline=int(data["timeline"]), start_lsn=str(data["start_lsn"]),
                   stop_lsn=str(data["stop_lsn"]), segment_size=int(data["segment_size"]),
                   stop_time=datetime.fromisoformat(str(data["stop_time"])))

    @classmethod
    def of(cls, manifest: Manifest) -> WalRange:
        if not manifest.wal:
            raise PreconditionError(f"backup {manifest.backup_id} is not a base backup (its "
                                    "manifest has no WAL range)")
        return cls.from_dict(manifest.wal)
