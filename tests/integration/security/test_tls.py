"""Verified TLS to PostgreSQL: a throwaway CA, a server with ``ssl=on`` that takes only
``hostssl`` connections with a client certificate, and every workflow over
``sslmode=verify-full`` with ``sslrootcert``/``sslcert``/``sslkey`` from the connection's
extras (``AIRFLOW_CONN_PG_TLS``, JSON), read both by the core parser (CLI, ``amprenta-wal``)
and by Airflow's connection (the operators' ``PostgresTargetHook``).

The server demands a client certificate signed by the CA (``clientcert=verify-ca``), so a
tool that did not get ``sslcert``/``sslkey`` (psycopg's keywords, pg_dump's and
pg_basebackup's ``PGSSLCERT``/``PGSSLKEY``) could not connect at all. The archive_command side
of WAL archiving never connects to PostgreSQL; its connection is the base backup's
(``pg_basebackup`` over a ``hostssl replication`` line), tested here.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.connections import postgres_conninfo
from amprenta_backup.core.drill.runner import DrillRunner
from amprenta_backup.core.errors import StepError
from amprenta_backup.core.models import RunContext, Status
from amprenta_backup.core.pitr.basebackup import BaseBackupRunner
from amprenta_backup.core.settings import DrillSettings
from amprenta_backup.core.settings.base import BackupTarget
from amprenta_backup.hooks.postgres import PostgresTargetHook
from amprenta_backup.sandbox.dataset import load_sample
from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.backups import engine_for
from tests.support.tls import CertificateAuthority, Issued, give_to
from tests.support.wal import PREFIX, WalSetup, private_folder, start_archiving_cluster

TARGET = "pg_tls.pitr"
HBA = """local all all trust
hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca
hostssl replication all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca
"""


@dataclass
class TlsServer:
    """The TLS-only cluster, the CA files and the extras a connection gives."""

    wal: WalSetup
    ca: Path
    wrong_ca: Path
    client: Issued
    secrets: list[str]

    def connection(self, ca: Path | None = None) -> str:
        """``AIRFLOW_CONN_PG_TLS``: JSON, with the TLS files in ``extra``."""
        cluster = self.wal.cluster
        return json.dumps({
            "conn_type": "postgres", "host": "127.0.0.1", "port": cluster.port,
            "login": "postgres", "password": cluster.password, "schema": "app",
            "extra": {"sslmode": "verify-full", "sslrootcert": str(ca or self.ca),
                      "sslcert": str(self.client.cert), "sslkey": str(self.client.key)}})

    def admin(self, sql: str, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """A query over the Unix socket (trust), for checks that need no TLS."""
        cluster = self.wal.cluster
        with psycopg.connect(host=str(cluster.socket_dir), port=cluster.port, user="postgres",
                             dbname=dbname, autocommit=True) as conn:
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tls(moto_server: MotoServer) -> Iterator[TlsServer]:
    from amprenta_backup.sandbox.cluster import server_os_user

    os_user = server_os_user()
    server_dir, client_dir = private_folder(os_user), private_folder(None)
    ca = CertificateAuthority(client_dir)
    server = ca.issue("server", "127.0.0.1", hosts=("127.0.0.1", "localhost"))
    client = ca.issue("client", "postgres")
    (client_dir / "wrong").mkdir()
    wrong = CertificateAuthority(client_dir / "wrong", name="another CA")
    for issued in (server, ca.issued):  # the server's copies, owned by its OS user
        for path in (issued.cert, issued.key):
            (server_dir / path.name).write_bytes(path.read_bytes())
            (server_dir / path.name).chmod(0o600)
    give_to(list(server_dir.iterdir()), os_user)
    wal = start_archiving_cluster(moto_server, moto_server.create_bucket("tls-archive"), TARGET,
                                  extra={"ssl": "on",
                                         "ssl_cert_file": str(server_dir / "server.crt"),
                                         "ssl_key_file": str(server_dir / "server.key"),
                                         "ssl_ca_file": str(server_dir / ca.issued.cert.name)})
    try:
        load_sample(wal.cluster, "app")  # over TCP while the initdb lines still allow it
        (wal.cluster.data_dir / "pg_hba.conf").write_text(HBA)
        wal.cluster.run_as_owner(["pg_ctl", "-D", wal.cluster.data_dir, "reload"])
        time.sleep(0.5)
        keys = [client.key.read_text(), server.key.read_text(), ca.issued.key.read_text()]
        yield TlsServer(wal, ca.issued.cert, wrong.issued.cert, client,
                        [wal.cluster.password, *(line for k in keys for line in k.splitlines()
                                                 if "PRIVATE KEY" not in line)])
    finally:
        wal.stop()
        for folder in (server_dir, client_dir):
            shutil.rmtree(folder, ignore_errors=True)


def _switch_and_wait(tls: TlsServer, timeout: float = 60.0) -> None:
    name = str(tls.admin("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (last,) = tls.admin("SELECT last_archived_wal FROM pg_stat_archiver")[0]
        if last is not None and str(last) >= name:
            return
        time.sleep(0.1)
    raise AssertionError(f"{name} not archived within {timeout} s")


def test_verify_full_serves_backup_restore_drill_and_base_backup_with_no_secret_logged(
    tls: TlsServer, catalog: Catalog, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("AIRFLOW_CONN_PG_TLS", tls.connection())
    conn = postgres_conninfo("pg_tls")  # the CLI's and archive_command's parser
    assert conn.options["sslmode"] == "verify-full"
    hooked = PostgresTargetHook("pg_tls").get_conninfo("postgres")  # Airflow's (operators)
    assert hooked == conn.with_database("postgres")
    child = conn.env()  # the tools get the files as PGSSL* variables, never on a command line
    assert child["PGSSLROOTCERT"] == str(tls.ca) and child["PGSSLKEY"] == str(tls.client.key)
    storage = tls.wal.archive.storage
    engine = engine_for(storage, catalog, {"pg_tls": conn})
    backup_id = layout.make_backup_id(datetime.now(UTC), "tls")

    manifest = engine.runner().run("pg_tls", conn, RunContext(), backup_id)
    record = catalog.get(backup_id)
    assert manifest.table_counts and record is not None and record.status == Status.COMPLETED

    result = engine.restore_backup(backup_id, "app_restored")
    assert result.row_counts and all(got == want for got, want in result.row_counts.values())
    assert tls.admin("SELECT count(*) FROM app.customers", "app_restored") == \
        tls.admin("SELECT count(*) FROM app.customers", "app")

    drill = DrillRunner(storage, catalog, engine.resolve, DrillSettings()).run(
        BackupTarget("pg_tls"), RunContext(dag_id="monthly_restore_drill", run_id="tls",
                                           logical_date=datetime.now(UTC)))
    assert drill.passed is True, drill.summary

    base = BaseBackupRunner(storage, catalog, PREFIX)
    taken = base.take(TARGET, hooked, RunContext(),
                      layout.make_backup_id(datetime.now(UTC), "tls-base"))
    _switch_and_wait(tls)
    base.complete(taken, tls.wal.archive)
    assert catalog.get(taken.backup_id).status == Status.COMPLETED  # type: ignore[union-attr]

    leaked = [s for s in tls.secrets if s and s in caplog.text]
    assert leaked == [], "a password or key material reached the log"


def test_a_wrong_ca_fails_the_backup_naming_the_certificate(
    tls: TlsServer, catalog: Catalog, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PG_TLS", tls.connection(ca=tls.wrong_ca))
    conn = postgres_conninfo("pg_tls")
    engine = engine_for(tls.wal.archive.storage, catalog, {"pg_tls": conn})
    backup_id = layout.make_backup_id(datetime.now(UTC), "tls-wrong-ca")
    with pytest.raises(StepError) as err:
        engine.runner().run("pg_tls", conn, RunContext(), backup_id)
    assert "certificate verify failed" in str(err.value)
    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.FAILED
    assert "certificate verify failed" in (record.error or "")
    assert not list(tls.wal.archive.storage.list_objects(
        layout.backup_folder(PREFIX, "pg_tls", backup_id) + "/"))


def test_the_server_takes_no_connection_without_tls_or_without_a_client_certificate(
    tls: TlsServer,
) -> None:
    cluster = tls.wal.cluster
    base = {"host": "127.0.0.1", "port": cluster.port, "user": "postgres",
            "password": cluster.password, "dbname": "app", "connect_timeout": 10}
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(**base, sslmode="disable").close()
    with pytest.raises(psycopg.OperationalError, match="certificate"):
        psycopg.connect(**base, sslmode="verify-full", sslrootcert=str(tls.ca)).close()
