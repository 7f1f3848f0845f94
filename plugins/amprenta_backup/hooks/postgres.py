"""PostgresTargetHook: the libpq settings of a database, from an Airflow ``postgres`` connection."""

from __future__ import annotations

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from amprenta_backup.core.connections import PASSED_OPTIONS
from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.pgtools import PgConnInfo


class PostgresTargetHook(BaseHook):
    """Turns an Airflow Postgres connection into :class:`PgConnInfo`.

    The password stays in memory and reaches client tools only through ``PGPASSWORD``.

    :param postgres_conn_id: id of a connection of type ``postgres``
    :param setting: the setting the id came from, named in errors
    """

    conn_name_attr = "postgres_conn_id"
    default_conn_name = "postgres_default"
    conn_type = "postgres"
    hook_name = "Postgres backup target"

    def __init__(self, postgres_conn_id: str = default_conn_name,
                 setting: str = "BACKUP_TARGETS") -> None:
        super().__init__()
        self.postgres_conn_id = postgres_conn_id
        self.setting = setting

    def get_conninfo(self, database: str | None = None) -> PgConnInfo:
        """The connection's settings, pointed at ``database`` if given."""
        try:
            conn = self.get_connection(self.postgres_conn_id)
        except AirflowNotFoundException:
            raise ConfigError(
                f"Airflow connection {self.postgres_conn_id!r} (from {self.setting}) is not "
                f"defined; create it under Admin > Connections or set "
                f"AIRFLOW_CONN_{self.postgres_conn_id.upper()}"
            ) from None
        if not conn.host:
            raise ConfigError(f"Airflow connection {self.postgres_conn_id!r} has no host; set one")
        extras = conn.extra_dejson
        options = {key: str(extras[key]) for key in PASSED_OPTIONS if key in extras}
        return PgConnInfo(
            host=conn.host, port=int(conn.port or 5432), user=conn.login or "postgres",
            dbname=database or conn.schema or "postgres", password=conn.password or None,
            options=options,
        )
