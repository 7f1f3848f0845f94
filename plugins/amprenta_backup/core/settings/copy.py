"""Settings of the second copy: its storage (``BACKUP_COPY_*``, the primary's storage
variables under another name), its retention and how far it may lag behind the primary."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, create_model

from amprenta_backup.core.settings.backup import StorageConfig
from amprenta_backup.core.settings.base import GFSSpec, Settings, var

COPY = "BACKUP_COPY_"


def _renamed(base: type[StorageConfig], overrides: Mapping[str, tuple[Any, str, str]]
             ) -> type[StorageConfig]:
    """``base`` with every variable declared again with ``BACKUP_COPY_`` for ``BACKUP_``: the same
    types, bounds, checks and help; ``overrides`` give ``field -> (default, help, shown)``."""
    fields: dict[str, Any] = {}
    for name, info in base.model_fields.items():
        renamed = copy.copy(info)
        renamed.validation_alias = str(info.validation_alias).replace("BACKUP_", COPY, 1)
        if name in overrides:
            default, help_text, shown = overrides[name]
            renamed.default, renamed.description = default, help_text
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            renamed.json_schema_extra = {**extra, "shown": shown or None}
        fields[name] = (info.annotation, renamed)
    made: type[StorageConfig] = create_model(
        "CopyStorageConfig", __base__=base, __doc__="Where the second copy of every backup goes "
        "(``BACKUP_COPY_*``: the primary's storage variables under another name).", **fields)
    made.group = "Second copy: storage"
    return made


CopyStorageConfig = _renamed(StorageConfig, {
    "storage_type": ("local", "`local` or `s3`: turns the second copy on; unset, there is no "
                     "copy", "(off)"),
    "local_path": ("/var/backups/amprenta-copy", "Root folder of a `local` copy (absolute path; "
                   "another disk or a mounted share)", ""),
    "s3_bucket": ("amprenta-backups-copy", "Bucket of an `s3` copy (another bucket, region or "
                  "endpoint than the primary's)", ""),
    "aws_conn_id": ("aws_default", "Airflow `aws` connection of an `s3` copy (its own "
                    "credentials)", ""),
})


class CopySettings(Settings):
    """The second copy: where it goes, how long it keeps backups, how far it may lag.

    :param storage: the copy's storage, None when ``BACKUP_COPY_STORAGE_TYPE`` is unset
    """

    group: ClassVar[str] = "Second copy"

    storage: StorageConfig | None = None
    retention_days: int | None = var(
        "BACKUP_COPY_RETENTION_DAYS", None, "Days the copy keeps backups (e.g. 365 beside a "
        "primary's 30); at least `7`", ge=7, le=36500, shown="(`BACKUP_RETENTION_DAYS`)",
        floor="7-day safety floor")
    keep_last: int | None = var(
        "BACKUP_COPY_KEEP_LAST", None, "Also keep the newest N copies of each target (0 = off)",
        ge=0, le=10000, shown="(`BACKUP_KEEP_LAST`)")
    gfs: Annotated[GFSSpec | None, BeforeValidator(GFSSpec.parse)] = var(
        "BACKUP_COPY_GFS", None, "Also keep daily/weekly/monthly copies, e.g. `7d,4w,12m`",
        shown="(`BACKUP_GFS`)")
    max_lag_hours: float = var(
        "BACKUP_COPY_MAX_LAG_HOURS", 26.0, "`daily_health` warns when the newest completed "
        "backup of a target has had no verified copy for longer", gt=0, le=8760,
        shown="`26`")

    @classmethod
    def env_defaults(cls, env: Mapping[str, str]) -> dict[str, Any]:
        on = bool(env.get(f"{COPY}STORAGE_TYPE", "").strip())
        return {"storage": CopyStorageConfig.from_env(env) if on else None}

    @property
    def enabled(self) -> bool:
        return self.storage is not None
