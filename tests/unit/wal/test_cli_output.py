"""``amprenta-wal`` speaks JSON like ``amprenta-backup`` (``--json``; errors as JSON on stderr
with the exit code unchanged) and has ``--version``; real processes, local storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WAL = (sys.executable, "-m", "amprenta_backup.cli.wal")


def _wal(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WAL, *args], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=120)


def test_check_list_and_errors_as_json(tmp_path: Path) -> None:
    env = {"BACKUP_WAL_TARGET": "pg_main", "BACKUP_STORAGE_TYPE": "local",
           "BACKUP_LOCAL_PATH": str(tmp_path / "store"), "BACKUP_WAL_SPOOL": str(tmp_path / "s")}
    checked = _wal("check", "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout) == {
        "ok": True, "target": "pg_main",
        "storage": f"file://{tmp_path}/store/database/pg_main/wal"}
    listed = _wal("list", "--json", env=env)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    bad = _wal("list", "--json", env={**env, "BACKUP_WAL_TARGET": ""})
    assert bad.returncode == 2 and bad.stdout == ""
    assert json.loads(bad.stderr) == {"error": {
        "type": "ConfigError", "exit_code": 2, "message": "BACKUP_WAL_TARGET is not set; set "
        "it to the name this cluster's WAL is stored under (the Airflow connection id of the "
        "cluster, e.g. BACKUP_WAL_TARGET=pg_main)"}}
    usage = _wal("list", "--json", "--timelin", "1", env=env)  # a typo: a usage error, as JSON
    assert usage.returncode == 2 and usage.stdout == ""
    assert json.loads(usage.stderr) == {"error": {
        "type": "usage", "exit_code": 2,
        "message": "No such option '--timelin'. Did you mean '--timeline'?"}}
    version = _wal("--version", env={})
    assert version.returncode == 0 and version.stdout.startswith("amprenta-wal 0.")
