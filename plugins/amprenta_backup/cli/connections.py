"""Connections the way Airflow resolves them, when Airflow is installed: a connection that no
``AIRFLOW_CONN_<ID>`` variable defines is looked up through Airflow's configured secrets
backends (a custom backend such as Vault or a local file, then the metadata database), so
that the CLI and the DAGs see the same connection. Airflow is imported only then: it takes
seconds, and the variables need none of it."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from importlib.util import find_spec

from amprenta_backup.core.connections import add_source

# sys.stdout and the root logger are the process's, and `recover` resolves connections from
# several threads at once: two unguarded lookups interleaved could leave stdout pointing at
# stderr for good (the second restores what the first had put there)
_LOOKUP = threading.Lock()

def airflow_fields(conn_id: str) -> dict[str, object] | None:
    """``conn_id``'s fields from Airflow's secrets backends; None if none of them has it.

    Importing Airflow configures its logging onto stdout; stdout is the CLI's output (JSON
    for scripts), so Airflow writes to stderr here and the CLI's own logging is put back.
    One lookup at a time: the swap of stdout is process-wide."""
    with _LOOKUP:
        return _lookup(conn_id)


def _lookup(conn_id: str) -> dict[str, object] | None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(sys.stderr):
            from airflow.models.connection import Connection
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                conn = Connection.get_connection_from_secrets(conn_id)
            except AirflowNotFoundException:
                return None
    finally:
        root.handlers[:], root.level = handlers, level
    return {"conn_type": conn.conn_type, "host": conn.host, "port": conn.port,
            "login": conn.login, "password": conn.password, "schema": conn.schema,
            "extra": conn.extra_dejson}


def use_airflow_connections() -> bool:
    """Add Airflow's secrets backends as a source of connections, if Airflow is installed."""
    if find_spec("airflow") is None:
        return False
    add_source(airflow_fields)
    return True
