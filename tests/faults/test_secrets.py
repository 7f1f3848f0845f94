"""Secrets: reserved characters in a URI password, and what a real pg_dump child can see."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.pgtools import PgConnInfo, default_install
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.s3server import MotoServer
from tests.faults.conftest import FaultRow
from tests.support.cli import CliRunner, conn_uri

# every piece between reserved characters is distinctive, so a leak of any piece shows
PASSWORD = "Kq7rXw/Jm2pTz?Hd9vLb#Ns4cYe@Wg6fRa:Ut3h"
PIECES = ("Kq7rXw", "Jm2pTz", "Hd9vLb", "Ns4cYe", "Wg6fRa", "Ut3h")
AWS_SECRET = "aws-secret-Zx81Qm"
ROLE = "fault_reserved"


@pytest.fixture
def reserved_role(pg_cluster: ClusterBase, source_conn: PgConnInfo) -> Iterator[PgConnInfo]:
    """A login role whose password holds / ? # @ : unencoded, owning nothing."""
    pg_cluster.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
        sql.Identifier(ROLE), sql.Literal(PASSWORD)))
    try:
        yield PgConnInfo(host=source_conn.host, port=source_conn.port, user=ROLE,
                         dbname=source_conn.dbname, password=PASSWORD)
    finally:
        pg_cluster.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


def _raw_uri(conn: PgConnInfo, port: str | None = None) -> str:
    """The URI as a user writes it by hand: the password NOT percent-encoded."""
    return f"postgresql://{conn.user}:{PASSWORD}@{conn.host}:{port or conn.port}/{conn.dbname}"


def _leaks(text: str) -> list[str]:
    return [p for p in PIECES if p in text]


@pytest.mark.faults("password with unencoded / ? # @ : in an AIRFLOW_CONN_* URI")
def test_reserved_characters_in_a_uri_password(
    reserved_role: PgConnInfo, catalog: Catalog, tmp_path: Path, row: FaultRow,
) -> None:
    cli = CliRunner({"AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
                     "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "b")})
    done = cli("backup", "pg_raw", "--json", extra={"AIRFLOW_CONN_PG_RAW": _raw_uri(reserved_role)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["table_counts"]
    assert _leaks(done.stdout + done.stderr) == []
    row.saw("taken whole: the backup COMPLETED")
    typo = cli("-v", "backup", "pg_raw",
               extra={"AIRFLOW_CONN_PG_RAW": _raw_uri(reserved_role, port="54x2")})
    assert typo.returncode == 2, typo.stderr
    assert "Traceback" not in typo.stderr and "percent-encode" in typo.stderr
    assert _leaks(typo.stdout + typo.stderr) == []
    row.saw("a bad port exits 2 naming the variable, no piece of the password in any output")


def _recording_bindir(folder: Path, record: Path) -> Path:
    """pg_dump and pg_restore wrappers that save their environment, then exec the real tool
    (real processes; the path of the record is written into the script, not passed)."""
    found = default_install("pg_dump")
    assert found is not None
    real = found.bindir
    folder.mkdir()
    for tool in ("pg_dump", "pg_restore", "psql", "pg_dumpall"):
        script = folder / tool
        # the engine's own `--version` probe (which major is this?) is not a child at work
        script.write_text(f"#!/bin/sh\n[ \"$1\" = --version ] || env -0 > '{record}.{tool}.$$'\n"
                          f"exec '{real / tool}' \"$@\"\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


def _recorded(record: Path, tool: str) -> list[dict[str, str]]:
    envs = []
    for path in sorted(record.parent.glob(f"{record.name}.{tool}.*")):
        pairs = [item.split("=", 1) for item in path.read_bytes().decode().split("\0") if item]
        envs.append(dict(pairs))
    return envs


@pytest.mark.faults("secrets in the environment of pg_dump / pg_restore children (S3)")
def test_children_see_only_their_own_connection(
    reserved_role: PgConnInfo, catalog: Catalog, moto_server: MotoServer, tmp_path: Path,
    row: FaultRow,
) -> None:
    bucket = moto_server.create_bucket("faults-secrets")
    record = tmp_path / "env"
    cli = CliRunner({
        "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
        "AIRFLOW_CONN_PG_RAW": _raw_uri(reserved_role),
        "AMPRENTA_PG_BINDIR": str(_recording_bindir(tmp_path / "bin", record)),
        "BACKUP_STORAGE_TYPE": "s3", "BACKUP_S3_BUCKET": bucket,
        "BACKUP_S3_ENDPOINT_URL": moto_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "AKIAFAULTS", "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": "aws-token-Pq44", "HOME": str(tmp_path), "LANG": "C.UTF-8"})
    done = cli("backup", "pg_raw", "--json")
    assert done.returncode == 0, done.stderr
    verified = cli("verify", json.loads(done.stdout)["backup_id"])
    assert verified.returncode == 0, verified.stderr
    dumps, restores = _recorded(record, "pg_dump"), _recorded(record, "pg_restore")
    assert dumps and restores
    catalog_password = catalog.conn.password or "\0"
    for env in dumps + restores:
        assert not [k for k in env if k.startswith(("AWS_", "AIRFLOW_", "BACKUP_"))], env
        assert all(AWS_SECRET not in v and catalog_password not in v for v in env.values())
    row.saw("no AWS_*, AIRFLOW_CONN_* or catalog password in a real child's environment")
    for env in dumps:
        assert env["PGPASSWORD"] == PASSWORD and env["PGUSER"] == ROLE
        assert {k for k in env if k.startswith("PG")} <= {
            "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGCONNECT_TIMEOUT",
            "PGAPPNAME"}
    assert "PGPASSWORD" not in restores[0]  # verify's pg_restore reads a file: no database
    row.saw("pg_dump gets PG* of its own connection only; verify's pg_restore none")
    assert os.environ.get("AWS_SECRET_ACCESS_KEY") != AWS_SECRET  # the test's own env untouched
