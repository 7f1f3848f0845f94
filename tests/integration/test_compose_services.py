"""Parts of docker-compose.airflow.yml run here without a Docker engine: the ``s3`` service's
own command (the SeaweedFS version its image pins) and the ``source-db`` init script that lets
the workers' pg_basebackup in."""

from __future__ import annotations

import ipaddress
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from amprenta_backup.core.connections import s3_client_kwargs
from amprenta_backup.sandbox.cluster import ThrowawayCluster
from amprenta_backup.sandbox.seaweed import SeaweedServer
from tests.support.compose import as_run, env_example, model, services

WORKER_ADDRESS = ipaddress.ip_address("172.18.0.9")  # an Airflow worker on the compose network
DOCKER_HBA = "host all all all scram-sha-256\n"  # what the postgres image appends at init


class ComposeS3(SeaweedServer):
    """The ``s3`` service's command and identity config, on free ports and a temp folder."""

    def __init__(self) -> None:
        super().__init__(start_timeout=30)
        aws = env_example()["AIRFLOW_CONN_AWS_DEFAULT"]
        kwargs = s3_client_kwargs("aws_default", {"AIRFLOW_CONN_AWS_DEFAULT": aws})
        self.access_key = kwargs["aws_access_key_id"]
        self.secret_key = kwargs["aws_secret_access_key"]

    def server_args(self, workdir: Path) -> list[str]:
        config = workdir / "s3.json"
        config.write_text(as_run(model()["configs"]["seaweedfs-s3"]["content"]))
        (workdir / "data").mkdir()
        return [*services()["s3"]["command"], f"-dir={workdir / 'data'}",
                f"-s3.config={config}", *self.port_args(workdir)]


def test_the_s3_service_answers_its_healthcheck_and_takes_the_connections_keys() -> None:
    check = services()["s3"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "wget"] and check[-1].startswith("http://127.0.0.1:8333/")
    assert "-s3.port=8333" in services()["s3"]["command"]
    with ComposeS3() as s3:  # its start writes an object with the .env.example keys
        url = check[-1].replace(":8333/", f":{s3.port}/")
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.status == 200
        s3.client().create_bucket(Bucket="amprenta-backups")
        assert [b["Name"] for b in s3.client().list_buckets()["Buckets"]] == [
            "amprenta-backups"]


def _replication_rule(cluster: ThrowawayCluster) -> dict[str, Any] | None:
    """The pg_hba rule a replication connection of ``postgres`` from a worker matches."""
    rows = cluster.query("SELECT type, database, user_name, address, netmask, auth_method, "
                         "error FROM pg_hba_file_rules ORDER BY line_number")
    keys = ("type", "database", "user_name", "address", "netmask", "auth_method", "error")
    for rule in (dict(zip(keys, row, strict=True)) for row in rows):
        assert rule["error"] is None, rule
        if rule["type"] not in ("host", "hostnossl") or "replication" not in rule["database"]:
            continue
        if not {"all", "postgres"} & set(rule["user_name"]):
            continue
        address = rule["address"]
        if address == "all":
            return rule
        if rule["netmask"] and ":" not in address and WORKER_ADDRESS in ipaddress.ip_network(
                f"{address}/{rule['netmask']}", strict=False):  # an IPv4 rule covering it
            return rule
    return None


def test_the_source_lets_the_workers_pg_basebackup_in(new_server: ThrowawayCluster) -> None:
    (init,) = services()["source-db"]["configs"]
    assert init["target"].startswith("/docker-entrypoint-initdb.d/")
    hba = new_server.data_dir / "pg_hba.conf"
    with hba.open("a") as file:
        file.write(DOCKER_HBA)
    assert _replication_rule(new_server) is None  # the image's own file refuses the workers
    script = as_run(model()["configs"][init["source"]]["content"])
    subprocess.run(["sh", "-ec", script], env={"PGDATA": str(new_server.data_dir),
                                              "PATH": "/usr/bin:/bin"}, check=True)
    rule = _replication_rule(new_server)
    assert rule is not None and rule["auth_method"] == "scram-sha-256", rule
