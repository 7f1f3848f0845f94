"""The engine's project export methods (the spec's ``create_project_export``), kept beside
the domain so the engine module stays small; :class:`BackupEngine` inherits them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from amprenta_backup.core.connections import Resolver
from amprenta_backup.core.settings import BackupConfig
from amprenta_backup.core.settings.project import ProjectSettings
from amprenta_backup.core.storage.base import Storage

if TYPE_CHECKING:  # imported where used: the engine must stay light for amprenta-wal
    from amprenta_backup.core.catalog import Catalog
    from amprenta_backup.core.export.load import ImportReport
    from amprenta_backup.core.export.workflow import ProjectExports


class _Engine(Protocol):
    config: BackupConfig
    resolve: Resolver
    project_settings: ProjectSettings | None

    @property
    def storage(self) -> Storage: ...

    @property
    def catalog(self) -> Catalog: ...


class ProjectExportEntry:
    """Project exports through :class:`BackupEngine`.

    :param project_settings: what a project is; read from ``BACKUP_PROJECT_*`` when None
    """

    project_settings: ProjectSettings | None = None

    def project_exports(self: _Engine) -> ProjectExports:
        """Project exports (``BACKUP_PROJECT_*``): made, listed, fetched and imported."""
        from amprenta_backup.core.export.workflow import ProjectExports

        settings = self.project_settings or ProjectSettings.from_env()
        return ProjectExports.configured(self.storage, self.catalog, self.config, self.resolve,
                                         settings)

    def create_project_export(self, project_ids: list[str], include_data: bool = True,
                              include_files: bool = True, **run: Any) -> dict[str, Any]:
        """Export projects as one ZIP in storage (the spec's API): ``{"export_id": ...}``
        with its location, sha256, size and rows per table.

        :param run: ``run`` (a :class:`RunContext`) and ``created_by``, recorded with it
        """
        from amprenta_backup.core.export.writer import ExportRequest

        request = ExportRequest(tuple(str(p) for p in project_ids), include_data,
                                include_files, **run)
        return self.project_exports().create(request).to_dict()  # type: ignore[misc]

    def import_project(self, source: Path | str, target_database: str,
                       target_conn_id: str | None = None, on_conflict: str = "fail",
                       dry_run: bool = False) -> ImportReport:
        """Import an export (a ZIP, an unzipped folder, or an export id in storage) into
        ``target_database`` on ``target_conn_id``'s server (default: the project's)."""
        exports = self.project_exports()  # type: ignore[misc]
        return exports.import_into(source, target_database, target_conn_id, on_conflict,
                                   dry_run)
