"""The demo's last words: the sandbox it keeps, and the three commands to try next with the
environment they need (scripts/demo.py; `make demo` runs the whole of it)."""

from __future__ import annotations

import importlib.util
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from amprenta_backup.core.models import BackupRecord, Status

ROOT = Path(__file__).resolve().parents[2]


def _demo() -> object:
    spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_names_the_next_three_commands_and_their_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = _demo()
    record = BackupRecord(backup_id="20261202T004857Z-c4cc6cbb", target="pg_source",
                          status=Status.COMPLETED, location="file:///x",
                          started_at=datetime(2026, 12, 2, tzinfo=UTC))
    assert demo.next_steps(record, "PostgreSQL on 127.0.0.1:37395") == (  # type: ignore[attr-defined]
        "The sandbox keeps running (PostgreSQL on 127.0.0.1:37395); stop it with: "
        ".venv/bin/python scripts/demo.py --stop\n"
        "Try the CLI on it; its settings, passwords included, are in .demo/env.sh (mode 600):\n"
        "  source scripts/env.sh && source .demo/env.sh\n"
        "  amprenta-backup list\n"
        "  amprenta-backup verify 20261202T004857Z-c4cc6cbb\n"
        "  amprenta-backup restore 20261202T004857Z-c4cc6cbb --database amprenta_restored "
        "--dry-run")
    monkeypatch.setattr(demo, "ENV_FILE", tmp_path / "env.sh")
    demo.write_cli_env({"AIRFLOW_CONN_PG_SOURCE": '{"password": "it\'s"}',  # type: ignore[attr-defined]
                        "BACKUP_TARGETS": "pg_source", "HOME": "/root"})
    written = (tmp_path / "env.sh").read_text().splitlines()
    assert written[1:] == ["export AIRFLOW_CONN_PG_SOURCE='{\"password\": \"it'\"'\"'s\"}'",
                           "export BACKUP_TARGETS=pg_source"]
    assert os.stat(tmp_path / "env.sh").st_mode & 0o777 == 0o600
