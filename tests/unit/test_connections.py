"""The package's own AIRFLOW_CONN_* parser reads every URI the way Airflow's does (extras and
``__extra__`` kept), so the CLI without Airflow and the DAGs see the same connection."""

from __future__ import annotations

import pytest

from amprenta_backup.core.connections import connection_fields, postgres_conninfo

URIS = [
    "postgresql://u:p%40ss%2Fw@db.example.com:5433/sales",
    "postgresql://u:secret@db.example.com/sales?sslmode=require&connect_timeout=5",
    "postgresql://u:secret@db.example.com:5432/sales?__extra__=%7B%22sslmode%22%3A+%22verify-"
    "full%22%2C+%22sslrootcert%22%3A+%22%2Fetc%2Fca.pem%22%7D",
    "postgres://u@10.0.0.7:6432/",
    "aws://AKIAEXAMPLE:s%2Fecret@/?endpoint_url=http%3A%2F%2F127.0.0.1%3A9000&region_name=eu-1",
]


@pytest.mark.parametrize("uri", URIS)
def test_our_parser_agrees_with_airflows(uri: str) -> None:
    from airflow.models.connection import Connection

    theirs = Connection(conn_id="x", uri=uri)
    ours = connection_fields("x", {"AIRFLOW_CONN_X": uri})
    assert ours == {"conn_type": theirs.conn_type, "host": theirs.host or "",
                    "port": theirs.port, "login": theirs.login or "",
                    "password": theirs.password or "", "schema": theirs.schema or "",
                    "extra": theirs.extra_dejson}


def test_extras_reach_libpq() -> None:
    info = postgres_conninfo("pg", None, {"AIRFLOW_CONN_PG": URIS[2]})
    assert info.options == {"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem"}
