"""The engine's restore-domain methods beyond the restore itself (the server's globals, replay
plans), kept beside the domain so the engine module stays small; :class:`BackupEngine`
inherits them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from amprenta_backup.core.connections import Resolver
from amprenta_backup.core.encryption import KeyService
from amprenta_backup.core.layout import check_backup_id
from amprenta_backup.core.models import BackupRecord
from amprenta_backup.core.storage.base import Storage

if TYPE_CHECKING:  # imported where used: the engine must stay light for amprenta-wal
    from amprenta_backup.core.catalog import Catalog
    from amprenta_backup.core.restore.globals import GlobalsRestoreResult
    from amprenta_backup.core.restore.replaybook import ReplayBook


class _Engine(Protocol):
    resolve: Resolver

    @property
    def storage(self) -> Storage: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def keys(self) -> KeyService | None: ...

    def get_backup(self, backup_id: str, catalog: Catalog | None = None) -> BackupRecord: ...


class RestoreEntry:
    """Restore-domain methods of :class:`BackupEngine`."""

    def restore_globals(self: _Engine, backup_id: str, target_conn_id: str,
                        dry_run: bool = False) -> GlobalsRestoreResult:
        """Create on ``target_conn_id``'s server the roles and tablespaces of the server backup
        ``backup_id`` came from that it lacks; existing roles are left as they are."""
        from amprenta_backup.core.restore.globals import globals_of, restore_globals
        from amprenta_backup.core.restore.plan import load_manifest

        record = self.get_backup(check_backup_id(backup_id))
        manifest = load_manifest(self.storage, record)
        return restore_globals(self.storage, globals_of(manifest),
                               self.resolve(target_conn_id, None), dry_run, self.keys)

    def replay_book(self: _Engine) -> ReplayBook:
        """The catalog's replay plans: the writer DAG runs restores to a point took away."""
        from amprenta_backup.core.restore.replaybook import ReplayBook

        return ReplayBook(self.catalog)
