"""Three source databases backed up once per module (the NEW empty cluster: ``new_server``)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.dataset import load_sample
from tests.integration.cli.test_backups import _uri as uri
from tests.integration.conftest import conninfo

SOURCE_DATABASES = {"dr_shop": 1500, "dr_crm": 400, "dr_audit": 200}  # database -> sample rows
_catalogs = itertools.count(1)


@dataclass
class Backed:
    """The source's three databases, backed up into ``storage`` with a catalog on the source."""

    env: dict[str, str]
    storage: Path
    catalog_db: str
    backups: dict[str, str] = field(default_factory=dict)  # database -> backup id

    def run(self, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "amprenta_backup.cli", *args],
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              timeout=600)


@pytest.fixture(scope="module")
def backed(pg_cluster: ClusterBase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backed]:
    for name, rows in SOURCE_DATABASES.items():
        load_sample(pg_cluster, name, rows=rows)
    catalog_db = f"dr_catalog_{next(_catalogs)}"
    pg_cluster.drop_database(catalog_db)
    pg_cluster.create_database(catalog_db)
    source = conninfo(pg_cluster, "postgres")
    storage = tmp_path_factory.mktemp("dr") / "backups"
    targets = ",".join(f"pg_src:{name}" for name in SOURCE_DATABASES)
    env = {"PATH": os.environ["PATH"], "AIRFLOW_CONN_PG_SRC": uri(source, "postgres"),
           "AIRFLOW_CONN_BACKUP_CATALOG": uri(source, catalog_db), "BACKUP_TARGETS": targets,
           "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(storage)}
    backed = Backed(env, storage, catalog_db)
    for target in targets.split(","):
        done = backed.run("backup", target, "--json")
        assert done.returncode == 0, done.stderr
        backed.backups[target.split(":")[1]] = json.loads(done.stdout)["backup_id"]
    try:
        yield backed
    finally:
        pg_cluster.drop_database(catalog_db)


def server_env(cluster: ClusterBase, conn_id: str = "PG_NEW") -> dict[str, str]:
    return {f"AIRFLOW_CONN_{conn_id}": uri(conninfo(cluster, "postgres"), "postgres")}
