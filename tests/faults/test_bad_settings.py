"""Out-of-range and malformed numbers are refused with the setting named, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from amprenta_backup.core.catalog import Catalog
from tests.faults.conftest import FaultRow
from tests.support.cli import CliRunner, conn_uri

CASES = {
    "BACKUP_RETENTION_DAYS=3000000": ({"BACKUP_RETENTION_DAYS": "3000000"}, ("cleanup",)),
    "BACKUP_HEALTH_MAX_AGE_HOURS=99999999999999": (
        {"BACKUP_HEALTH_MAX_AGE_HOURS": "99999999999999"}, ("health",)),
    "BACKUP_S3_STALL_SECONDS=0": ({"BACKUP_S3_STALL_SECONDS": "0"}, ("list",)),
    "BACKUP_S3_STALL_SECONDS=abc": ({"BACKUP_S3_STALL_SECONDS": "abc"}, ("list",)),
}


@pytest.mark.faults("out-of-range setting {case}")
@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_number_exits_2_naming_the_setting(case: str, tmp_path: Path, row: FaultRow
                                                 ) -> None:
    env, args = CASES[case]
    name = next(iter(env))
    cli = CliRunner({"BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path),
                     "AIRFLOW_CONN_BACKUP_CATALOG": "postgresql://u@127.0.0.1:1/c", **env})
    done = cli(*args)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert name in done.stderr and "Traceback" not in done.stderr, done.stderr
    row.saw("exit 2 naming the setting, before anything is touched")


ARGUMENTS = {
    "metrics --days 99999999999": (("metrics", "success-rate", "--days", "99999999999"),
                                   "--days"),
    "list --limit -1": (("list", "--limit", "-1"), "--limit"),
}


@pytest.mark.faults("out-of-range command-line number {case}")
@pytest.mark.parametrize("case", list(ARGUMENTS))
def test_a_bad_command_line_number_exits_2_naming_the_option(
    case: str, tmp_path: Path, row: FaultRow,
) -> None:
    args, option = ARGUMENTS[case]
    cli = CliRunner({"BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path),
                     "AIRFLOW_CONN_BACKUP_CATALOG": "postgresql://u@127.0.0.1:1/c"})
    done = cli(*args)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert f"Invalid value for '{option}': " in done.stderr, done.stderr
    assert "give a whole number from 1 to" in done.stderr and "Traceback" not in done.stderr
    assert "catalog" not in done.stderr  # refused before any connection is tried
    row.saw("exit 2 naming the option and its range, before the catalog is tried")


@pytest.mark.faults("connection port {port} in an AIRFLOW_CONN_* URI")
@pytest.mark.parametrize("port", ["abc", "99999"])
def test_a_bad_connection_port_exits_2_naming_the_variable(
    port: str, catalog: Catalog, tmp_path: Path, row: FaultRow,
) -> None:
    cli = CliRunner({"BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path),
                     "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
                     "AIRFLOW_CONN_PG_PORT": f"postgresql://u:secret@127.0.0.1:{port}/db"})
    done = cli("backup", "pg_port")
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "AIRFLOW_CONN_PG_PORT has no valid port after the host (1-65535)" in done.stderr
    assert "percent-encode" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert "secret" not in done.stderr and catalog.find(target="pg_port") == []
    assert list(tmp_path.iterdir()) == []
    row.saw("exit 2 naming the variable and the fix, no record, nothing written")
    done = CliRunner({**cli.env, "AIRFLOW_CONN_BACKUP_CATALOG": cli.env["AIRFLOW_CONN_PG_PORT"]}
                     )("health")
    assert done.returncode == 2 and "AIRFLOW_CONN_BACKUP_CATALOG has no valid port" in \
        done.stderr and "Traceback" not in done.stderr, done.stderr
    row.saw("as the catalog: `health` exits 2 naming AIRFLOW_CONN_BACKUP_CATALOG")
