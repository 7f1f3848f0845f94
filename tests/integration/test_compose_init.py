"""The compose deployment's first-start step (airflow-init) on a real cluster and moto S3."""

from __future__ import annotations

import json

from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compose_init import prepare
from amprenta_backup.sandbox.s3server import MotoServer


def _conn(cluster: ClusterBase, dbname: str) -> str:
    return json.dumps({"conn_type": "postgres", "host": cluster.host, "port": cluster.port,
                       "login": cluster.user, "password": cluster.password, "schema": dbname})


def test_prepare_creates_catalog_sample_and_bucket_once(pg_cluster: ClusterBase,
                                                        moto_server: MotoServer) -> None:
    for name in ("ci_catalog", "ci_source"):
        pg_cluster.drop_database(name)
    env = {
        "AIRFLOW_CONN_PG_SOURCE": _conn(pg_cluster, "ci_source"),
        "AIRFLOW_CONN_BACKUP_CATALOG": _conn(pg_cluster, "ci_catalog"),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({
            "conn_type": "aws", "login": moto_server.access_key,
            "password": moto_server.secret_key,
            "extra": {"endpoint_url": moto_server.endpoint_url, "region_name": "us-east-1"}}),
        "BACKUP_TARGETS": "pg_source", "BACKUP_STORAGE_TYPE": "s3",
        "BACKUP_S3_BUCKET": "compose-init-bucket",
    }
    try:
        done = prepare(env, rows=100)
        assert done[0] == "created catalog database ci_catalog"
        assert done[1].startswith("loaded the sample data into pg_source: ")
        assert done[2] == "created bucket compose-init-bucket"
        assert pg_cluster.query("SELECT count(*) FROM app.orders", "ci_source") == [(100,)]
        moto_server.client().head_bucket(Bucket="compose-init-bucket")
        # a restart of the deployment changes nothing
        pg_cluster.execute("INSERT INTO app.customers (email, full_name, created_at) "
                           "VALUES ('x@y.z', 'x', now())", "ci_source")
        assert prepare(env, rows=100) == []
        assert pg_cluster.query("SELECT count(*) FROM app.customers WHERE email = 'x@y.z'",
                                "ci_source") == [(1,)]
    finally:
        for name in ("ci_catalog", "ci_source"):
            pg_cluster.drop_database(name)
