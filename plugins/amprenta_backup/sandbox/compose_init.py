"""First start of docker-compose.airflow.yml: the catalog database, the sample data of each
target and the bucket, from the deployment's own ``AIRFLOW_CONN_*`` and ``BACKUP_*`` settings.

``python -m amprenta_backup.sandbox.compose_init`` (the ``airflow-init`` service runs it); it is
idempotent: what exists is left as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import boto3
from botocore.exceptions import ClientError

from amprenta_backup.core.connections import postgres_conninfo, s3_client_kwargs
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupConfig, StorageConfig
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.dataset import load_sample

SAMPLE_TABLE = "app.orders"


def server(info: PgConnInfo) -> ClusterBase:
    """SQL helpers for the server behind ``info`` (its ``postgres`` database for DDL)."""
    srv = ClusterBase()
    srv.host, srv.port, srv.user = info.host, info.port, info.user
    srv.password = info.password or ""
    return srv


def prepare(environ: Mapping[str, str], rows: int = 20000) -> list[str]:
    """Create what the deployment needs and does not have yet; return what was done."""
    config = BackupConfig.from_env(environ)
    done: list[str] = []
    catalog = postgres_conninfo(config.catalog_conn_id, environ=environ)
    if not server(catalog).database_exists(catalog.dbname):
        server(catalog).create_database(catalog.dbname)
        done.append(f"created catalog database {catalog.dbname}")
    for target in config.targets:
        source = postgres_conninfo(target.conn_id, target.database, environ=environ)
        srv = server(source)
        if not srv.database_exists(source.dbname) or srv.query(
                "SELECT to_regclass(%s)", source.dbname, (SAMPLE_TABLE,))[0][0] is None:
            counts = load_sample(srv, source.dbname, rows=rows)
            done.append(f"loaded the sample data into {target.name}: {sum(counts.values())} "
                        "rows")
    storage = StorageConfig.from_env(environ)
    if storage.storage_type == "s3":
        s3 = boto3.client("s3", **{"region_name": storage.s3_region,
                                   **s3_client_kwargs(storage.aws_conn_id, environ)})
        try:
            s3.head_bucket(Bucket=storage.s3_bucket)
        except ClientError:
            s3.create_bucket(Bucket=storage.s3_bucket)
            done.append(f"created bucket {storage.s3_bucket}")
    return done


def main() -> None:
    for line in prepare(os.environ, rows=int(os.environ.get("SAMPLE_ROWS", "20000"))) or [
            "nothing to do: catalog, sample data and bucket exist"]:
        print(line)


if __name__ == "__main__":
    main()
