"""Integration tests of the sandbox: throwaway cluster, sample data, comparison and moto S3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import psycopg
import pytest

from amprenta_backup.sandbox.cluster import ClusterBase, ThrowawayCluster
from amprenta_backup.sandbox.compare import assert_databases_equal, table_checksums
from amprenta_backup.sandbox.dataset import SAMPLE_TABLES, load_sample
from amprenta_backup.sandbox.s3server import MotoServer

SRC = "sandbox_src"


@pytest.fixture(scope="module")
def sample_db(pg_cluster: ClusterBase) -> Iterator[dict[str, int]]:
    counts = load_sample(pg_cluster, SRC, rows=2000)
    yield counts
    pg_cluster.drop_database(SRC)


@pytest.fixture()
def copy_db(pg_cluster: ClusterBase, sample_db: dict[str, int]) -> Iterator[str]:
    name = "sandbox copy é"  # spaces and non-ASCII in a database name, on purpose
    pg_cluster.drop_database(name)
    pg_cluster.create_database(name, template=SRC)
    yield name
    pg_cluster.drop_database(name)


def test_cluster_server_runs_unprivileged(pg_cluster: ClusterBase) -> None:
    if not isinstance(pg_cluster, ThrowawayCluster):
        pytest.skip("server-side checks need the local ThrowawayCluster backend")
    assert pg_cluster.query("SELECT current_setting('server_version_num')::int / 10000") == [(15,)]
    owner_uid = os.stat(f"/proc/{pg_cluster.server_pid()}").st_uid
    assert owner_uid != 0
    assert pg_cluster.data_dir.stat().st_uid == owner_uid
    assert pg_cluster.query("SHOW unix_socket_directories") == [(str(pg_cluster.socket_dir),)]


def test_password_never_on_a_command_line(pg_cluster: ClusterBase) -> None:
    secret = pg_cluster.password.encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert secret not in cmdline.read_bytes(), f"password visible in {cmdline}"
        except OSError:
            continue  # process ended meanwhile


def test_wrong_password_over_tcp_fails(pg_cluster: ClusterBase) -> None:
    bad = {**pg_cluster.conninfo(), "password": pg_cluster.password + "-wrong"}
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**bad, connect_timeout=10)
    assert pg_cluster.query("SELECT current_user") == [("postgres",)]


def test_sample_dataset_has_rows_everywhere(pg_cluster: ClusterBase,
                                            sample_db: dict[str, int]) -> None:
    assert set(sample_db) == {f"{s}.{t}" for s, t in SAMPLE_TABLES}
    assert all(count > 0 for count in sample_db.values()), sample_db
    checksums = table_checksums(pg_cluster, SRC)
    assert {name: rows for name, (rows, _) in checksums.items()} == sample_db
    assert checksums["données.café"][0] == 50
    assert sample_db["billing.invoices_2025"] + sample_db["billing.invoices_2026"] == 1600
    emails = pg_cluster.query("SELECT count(*) FROM app.customers WHERE email <> lower(email)",
                              dbname=SRC)
    assert emails == [(0,)]  # the trigger lower-cased them
    sizes = pg_cluster.query("SELECT max(length(body)), max(length(payload)) FROM app.documents",
                             dbname=SRC)
    assert sizes[0][0] > 100_000 and sizes[0][1] >= 1_048_576
    all_bytes = pg_cluster.query("SELECT payload FROM app.documents WHERE id = 1", dbname=SRC)
    assert all_bytes[0][0] == bytes(range(256))
    assert pg_cluster.query("SELECT last_value FROM app.ticket_seq", dbname=SRC) == [(4242,)]


def test_sample_load_is_deterministic(pg_cluster: ClusterBase,
                                      sample_db: dict[str, int]) -> None:
    other = "sandbox_again"
    try:
        load_sample(pg_cluster, other, rows=2000)
        assert_databases_equal(pg_cluster.env(), SRC, pg_cluster.env(), other)
    finally:
        pg_cluster.drop_database(other)


def test_template_copy_is_equal_until_a_row_changes(pg_cluster: ClusterBase,
                                                     copy_db: str) -> None:
    assert_databases_equal(pg_cluster.env(), SRC, pg_cluster.env(), copy_db)
    pg_cluster.execute("UPDATE app.orders SET note = 'tampered' WHERE id = 42", dbname=copy_db)
    with pytest.raises(AssertionError) as caught:
        assert_databases_equal(pg_cluster.env(), SRC, pg_cluster.env(), copy_db)
    message = str(caught.value)
    assert "app.orders" in message and "content differs" in message
    assert "schema differs" not in message


def test_schema_change_shows_a_diff(pg_cluster: ClusterBase, copy_db: str) -> None:
    pg_cluster.execute('ALTER TABLE "données"."café" ADD COLUMN "remarque" text',
                       dbname=copy_db)
    with pytest.raises(AssertionError) as caught:
        assert_databases_equal(pg_cluster, SRC, pg_cluster, copy_db)
    message = str(caught.value)
    assert "schema differs" in message and '+    remarque text' in message


def test_moto_put_and_get(moto_server: MotoServer) -> None:
    bucket = moto_server.create_bucket("sandbox-put-get")
    s3 = moto_server.client()
    s3.put_object(Bucket=bucket, Key="a/b.bin", Body=bytes(range(256)))
    assert s3.get_object(Bucket=bucket, Key="a/b.bin")["Body"].read() == bytes(range(256))


def test_moto_kill_breaks_the_next_request() -> None:
    with MotoServer() as server:
        s3 = server.client(retries={"max_attempts": 1})
        server.create_bucket("sandbox-kill")
        s3.put_object(Bucket="sandbox-kill", Key="k", Body=b"x")
        server.kill()
        assert not server.running
        with pytest.raises(botocore.exceptions.EndpointConnectionError):
            s3.get_object(Bucket="sandbox-kill", Key="k")
