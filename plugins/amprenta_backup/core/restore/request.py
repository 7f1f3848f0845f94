"""RestoreRequest: what a person asked to restore, and where, validated before anything runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.identifiers import check_conn_id, check_database_name, check_name
from amprenta_backup.core.layout import check_backup_id, target_name

if TYPE_CHECKING:
    from amprenta_backup.core.settings import BackupTarget

NEW_DATABASE, REPLACE = "new_database", "replace"
MODES = (NEW_DATABASE, REPLACE)
LATEST = "latest"
MAX_JOBS = 32
_REQUIRED = {"backup_id": "a backup id or latest (backup_id)",
             "database": "the target database (target_database, --database)"}
FIELDS = ("backup_id", "database", "target_conn_id", "mode", "confirm", "source_target",
          "schemas", "tables", "jobs", "no_owner", "dry_run")


@dataclass(frozen=True)
class RestoreRequest:
    """What to restore, and where. Every field is checked on construction (ConfigError).

    :param backup_id: a backup id, or ``latest`` for the newest restorable backup of
        ``source_target``
    :param database: the database to restore into
    :param target_conn_id: Postgres connection of the server to restore onto; default: the
        connection the backup was taken through
    :param mode: ``new_database`` (create it; refused if it exists) or ``replace`` (drop and
        re-create it)
    :param confirm: for ``replace``: the database name typed again
    :param source_target: for ``latest``: the backup target (default: ``target_conn_id``)
    :param schemas: restore only these schemas (``pg_restore --schema``)
    :param tables: restore only these tables (``pg_restore --table``, names without schema)
    :param jobs: parallel ``pg_restore`` jobs; above 1 the dump goes through a temporary file
    :param no_owner: leave out ownership and privileges (``--no-owner --no-privileges``), for
        a server without the source's roles
    :param dry_run: plan only; touch nothing
    """

    backup_id: str
    database: str
    target_conn_id: str | None = None
    mode: str = NEW_DATABASE
    confirm: str | None = None
    source_target: str | None = None
    schemas: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    jobs: int = 1
    no_owner: bool = False
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.backup_id != LATEST:
            check_backup_id(self.backup_id)
        check_database_name(self.database)
        if self.target_conn_id is not None:
            check_conn_id(self.target_conn_id)
        if self.mode not in MODES:
            raise ConfigError(f"restore mode {str(self.mode)[:40]!r} is not one of "
                              f"{', '.join(MODES)}")
        if self.confirm is not None and not isinstance(self.confirm, str):
            raise ConfigError("confirm must be the target database name, as text")
        if self.source_target is not None:
            object.__setattr__(self, "source_target", target_name(self.source_target))
        object.__setattr__(self, "schemas", _names(self.schemas, "schema to restore"))
        object.__setattr__(self, "tables", _names(self.tables, "table to restore"))
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) \
                or not 1 <= self.jobs <= MAX_JOBS:
            raise ConfigError(f"jobs={self.jobs!r} is out of range; use a whole number from 1 "
                              f"to {MAX_JOBS}")
        for name in ("no_owner", "dry_run"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false")
        if self.backup_id == LATEST and not (self.source_target or self.target_conn_id):
            raise ConfigError("backup id 'latest' needs the backup target whose newest backup to "
                              "restore: give source_target (see `amprenta-backup list`)")

    @classmethod
    def build(cls, backup_id: str, database: str, targets: Sequence[BackupTarget] = (),
              **options: Any) -> RestoreRequest:
        """The request, where ``latest`` with no source means the newest backup of the only
        configured target (BACKUP_TARGETS); with several, the error names them."""
        if backup_id == LATEST and not (options.get("source_target")
                                        or options.get("target_conn_id")):
            if len(targets) == 1:
                options = {**options, "source_target": targets[0].name}
            elif targets:
                raise ConfigError(
                    "backup id 'latest' needs the backup target whose newest backup to "
                    f"restore: give source_target, one of {', '.join(t.name for t in targets)}")
        return cls(backup_id=backup_id, database=database, **options)

    @property
    def latest_of(self) -> str:
        """The target whose newest backup ``latest`` means."""
        return self.source_target or self.target_conn_id or ""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RestoreRequest:
        """From Airflow params or JSON: unknown keys are ignored, empty strings mean "not given"."""
        values = {key: data[key] for key in FIELDS if data.get(key) not in (None, "")}
        for key in ("schemas", "tables"):
            if key in values and not isinstance(values[key], list | tuple):
                raise ConfigError(f"{key} must be a list of names, got {values[key]!r:.80}")
        missing = [what for key, what in _REQUIRED.items() if key not in values]
        if missing:
            raise ConfigError(f"the restore needs {' and '.join(missing)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["schemas"], data["tables"] = list(self.schemas), list(self.tables)
        return data


def _names(values: object, what: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise ConfigError(f"the {what}s must be given as a list of names")
    return tuple(check_name(value, what) for value in values)
