"""``amprenta-backup export ...`` and ``scripts/import_project.py`` as real processes, with
settings in their environment only."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.integration.conftest import conninfo
from tests.integration.export.conftest import PROJECTS
from tests.integration.export.oracle import checksums, expected_rows, table_rows
from tests.support.cli import CliRunner, conn_uri

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "import_project.py"


@pytest.fixture
def runner(project_db: PgConnInfo, project_files: Path, fresh_db: Callable[[str], str],
           tmp_path: Path) -> CliRunner:
    return CliRunner({
        "AIRFLOW_CONN_PROJECTS": conn_uri(project_db),
        "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(project_db, fresh_db("cli_catalog")),
        "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "backups"),
        "BACKUP_PROJECT_ROOT": "app.projects.id", "BACKUP_PROJECT_SOURCE": "projects",
        "BACKUP_PROJECT_FILE_COLUMNS": "app.documents.path",
        "BACKUP_PROJECT_FILES_ROOT": str(project_files)})


def _script(runner: CliRunner, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=runner.environment(),
                          capture_output=True, text=True, timeout=120)


def test_export_commands_and_the_import_script(
        runner: CliRunner, project_db: PgConnInfo, pg_cluster: ClusterBase,
        fresh_db: Callable[[str], str], tmp_path: Path) -> None:
    created = runner("export", "create", PROJECTS["B"], "--json")
    assert created.returncode == 0, created.stderr
    export_id = json.loads(created.stdout)["export_id"]
    listed = json.loads(runner("export", "list", "--json").stdout)
    assert [(e["export_id"], e["status"]) for e in listed] == [(export_id, "completed")]
    shown = runner("export", "show", export_id)
    assert PROJECTS["B"] in shown.stdout and "completed" in shown.stdout
    downloaded = runner("export", "download", export_id, "-o", str(tmp_path))
    assert downloaded.returncode == 0, downloaded.stderr
    path = tmp_path / f"project_export_{export_id}.zip"
    assert listed[0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    folder = tmp_path / "project_export"
    zipfile.ZipFile(path).extractall(folder)  # step 1 of the spec: unzip

    target = conninfo(pg_cluster, fresh_db("script_target"))
    before = checksums(target)
    dry = _script(runner, "--export-dir", str(folder), "--target-database", target.dbname,
                  "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would import" in dry.stdout and "nothing was written" in dry.stdout
    assert checksums(target) == before
    nowhere = subprocess.run(  # no server named: the error names the script's option
        [sys.executable, str(SCRIPT), "--export-dir", str(folder), "--target-database", "x"],
        env={k: v for k, v in runner.environment().items() if not k.startswith("BACKUP_PROJ")},
        capture_output=True, text=True, timeout=120)
    assert nowhere.returncode == 2 and nowhere.stderr == (
        "error: name the server to import into: give --target-conn-id (an Airflow Postgres "
        "connection id), or set BACKUP_PROJECT_SOURCE\n")
    done = _script(runner, "--export-dir", str(folder), "--target-database", target.dbname)
    assert done.returncode == 0, done.stderr
    assert table_rows(target) == expected_rows(project_db, PROJECTS["B"])

    (folder / "ddl" / "schema.sql").write_text("DROP SCHEMA app CASCADE;")
    tampered = _script(runner, "--export-dir", str(folder), "--target-database",
                       fresh_db("script_tampered"))
    assert tampered.returncode == 3 and "ddl/schema.sql has sha256" in tampered.stderr
