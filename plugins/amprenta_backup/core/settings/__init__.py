"""Every ``BACKUP_*`` variable, declared once: name, type, default, bounds and help text.

Each settings class reads its variables through pydantic-settings (:meth:`Settings.from_env`);
a bad value is a :class:`ConfigError` naming the variable, the value, what is allowed and
the fix. The tables of docs/configuration.md are rendered from these declarations
(``python -m amprenta_backup.core.settings``) and a unit test keeps them equal.

``amprenta-wal push`` does not import this module on its per-segment fast path (pydantic
costs about 0.3 s): see :mod:`amprenta_backup.core.wal.quick`.
"""

from __future__ import annotations

from amprenta_backup.core.settings.backup import (
    LATEST,
    RANDOM,
    AlertSettings,
    BackupConfig,
    DrDrillSettings,
    DrillSettings,
    PgToolsSettings,
    StorageConfig,
    TaskSettings,
)
from amprenta_backup.core.settings.base import (
    BackupTarget,
    GFSSpec,
    Settings,
)
from amprenta_backup.core.settings.copy import CopySettings, CopyStorageConfig
from amprenta_backup.core.settings.encryption import EncryptionSettings
from amprenta_backup.core.settings.pipelines import PipelineSettings
from amprenta_backup.core.settings.pitr import (
    PitrSettings,
    WalSettings,
)
from amprenta_backup.core.settings.project import ProjectSettings

__all__ = [
    "AlertSettings",
    "BackupConfig",
    "BackupTarget",
    "CopySettings",
    "CopyStorageConfig",
    "DrDrillSettings",
    "DrillSettings",
    "EncryptionSettings",
    "GFSSpec",
    "LATEST",
    "PgToolsSettings",
    "PipelineSettings",
    "PitrSettings",
    "ProjectSettings",
    "RANDOM",
    "Settings",
    "StorageConfig",
    "TaskSettings",
    "WalSettings",
    "ALL",
]


ALL: tuple[type[Settings], ...] = (BackupConfig, StorageConfig, EncryptionSettings,
                                   CopyStorageConfig, CopySettings, AlertSettings, TaskSettings,
                                   DrillSettings, DrDrillSettings, PgToolsSettings, WalSettings,
                                   PitrSettings, ProjectSettings,
                                   PipelineSettings)
