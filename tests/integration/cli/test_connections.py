"""The CLI sees the connections the DAGs see: Airflow's configured secrets backend (a real
LocalFilesystemBackend file) when no AIRFLOW_CONN_* variable is set, and the extras of an
AIRFLOW_CONN_* URI (``__extra__``) reach libpq."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from amprenta_backup.core.pgtools import PgConnInfo
from tests.support.cli import CliRunner, conn_uri


def _airflow_env(tmp_path: Path, connections: dict[str, object]) -> dict[str, str]:
    path = tmp_path / "connections.json"
    path.write_text(json.dumps(connections))
    path.chmod(0o600)
    return {"AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(path)}),
            "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "b")}


def test_a_connection_only_airflow_knows_is_found_with_its_extras(
        source_conn: PgConnInfo, tmp_path: Path) -> None:
    catalog = {"conn_type": "postgres", "host": source_conn.host, "port": source_conn.port,
               "login": source_conn.user, "password": source_conn.password,
               "schema": "amprenta", "extra": {"application_name": "x"}}
    env = _airflow_env(tmp_path, {"backup_catalog": catalog, "pg_source": {
        **catalog, "extra": {"sslmode": "require"}}})
    cli = CliRunner({**env, "BACKUP_TARGETS": "pg_source"})
    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []  # the catalog reached through Airflow's backend
    health = cli("health")
    reachable = next(line for line in health.stdout.splitlines() if "target_reachable" in line)
    assert reachable.startswith("CRITICAL pg_source")  # its sslmode=require reached libpq:
    assert "server does not support SSL" in reachable, reachable
    missing = cli("backup", "pg_nowhere")
    assert missing.returncode == 2 and "connection 'pg_nowhere' is not defined: set " \
        "AIRFLOW_CONN_PG_NOWHERE (JSON or URI, as for Airflow), e.g. postgresql://user@host:" \
        "5432/db with the password in it or in Airflow's connections" in missing.stderr
    assert (source_conn.password or "\0") not in listed.stdout + listed.stderr + health.stdout


def test_the_extra_of_an_airflow_conn_uri_is_kept(source_conn: PgConnInfo,
                                                  tmp_path: Path) -> None:
    extra = quote(json.dumps({"sslmode": "require"}), safe="")
    cli = CliRunner({"AIRFLOW_CONN_BACKUP_CATALOG": f"{conn_uri(source_conn)}?__extra__={extra}",
                     "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path)})
    done = cli("list")
    assert done.returncode != 0 or "catalog is unreachable" in done.stderr
    assert "server does not support SSL" in done.stderr, done.stderr


_TWO_AT_ONCE = """
import sys, threading, time
from amprenta_backup.cli.connections import airflow_fields
stdout = sys.stdout
found = {}
def look(conn_id, delay):
    time.sleep(delay)
    found[conn_id] = airflow_fields(conn_id)
# the second starts while the first imports Airflow and ends after it (the metadata database
# is asked too, for a connection the file lacks)
threads = [threading.Thread(target=look, args=args) for args in (("pg_a", 0), ("pg_b", 0.2))]
[t.start() for t in threads]
[t.join() for t in threads]
print(sys.stdout is stdout, found["pg_a"]["host"], found["pg_b"])
"""


def test_lookups_from_two_threads_leave_stdout_the_clis(tmp_path: Path) -> None:
    """``recover`` restores several databases at once, each resolving its connection: the first
    lookup imports Airflow (seconds) with stdout swapped to stderr; an interleaved second one
    once left stdout on stderr for good, and the JSON report went to stderr."""
    env = _airflow_env(tmp_path, {"pg_a": {"conn_type": "postgres", "host": "a.example"}})
    done = subprocess.run([sys.executable, "-c", _TWO_AT_ONCE], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True a.example None", (done.stdout, done.stderr[-2000:])
