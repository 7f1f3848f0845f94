"""What a user reads from ``amprenta-backup``: one spelling of a target, options named as
typed, ``latest`` of the only target, JSON, sizes, pipes and folders (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from amprenta_backup.core.models import human_bytes
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.support.cli import CLI, CliRunner, conn_uri

TARGET = "pg_source:amprenta"  # as BACKUP_TARGETS spells it
FILED = "pg_source.amprenta"  # as it is filed, listed and shown


@pytest.fixture(scope="module")
def cli(pg_cluster: ClusterBase, source_conn: PgConnInfo,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliRunner]:
    pg_cluster.create_database("cli_words_catalog")
    yield CliRunner({
        "AIRFLOW_CONN_PG_SOURCE": conn_uri(source_conn, "postgres"),
        "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(source_conn, "cli_words_catalog"),
        "BACKUP_TARGETS": TARGET, "BACKUP_STORAGE_TYPE": "local",
        "BACKUP_LOCAL_PATH": str(tmp_path_factory.mktemp("words") / "b")})
    pg_cluster.drop_database("cli_words_catalog")


@pytest.fixture(scope="module")
def backup(cli: CliRunner) -> dict[str, object]:
    done = cli("backup", TARGET, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_target_has_one_spelling_and_both_are_accepted(
        cli: CliRunner, backup: dict[str, object]) -> None:
    assert backup["target"] == FILED
    for spelling in (TARGET, FILED):
        listed = cli("list", "--target", spelling, "--json")
        assert [b["backup_id"] for b in json.loads(listed.stdout)] == [backup["backup_id"]]
        plan = cli("restore", "latest", "--from", spelling, "--database", "words_new",
                   "--dry-run", "--json")
        assert plan.returncode == 0, plan.stderr
        assert json.loads(plan.stdout)["plan"]["source_target"] == FILED
    bad = cli("list", "--target", "pg source")
    assert bad.returncode == 2
    assert "Error: Invalid value for '--target': backup target 'pg source' is not valid; give " \
           "conn_id or conn_id.database (conn_id:database works too)" in bad.stderr


def test_latest_of_the_only_target_and_options_named_as_typed(
        cli: CliRunner, backup: dict[str, object]) -> None:
    plan = cli("restore", "latest", "--database", "words_new", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"backup    {backup['backup_id']} of {FILED}" in plan.stdout
    replace = cli("restore", "latest", "--database", "amprenta", "--mode", "replace")
    assert replace.returncode == 2
    assert replace.stderr == ("error: --mode replace drops database 'amprenta': type its name "
                              "again as --confirm amprenta to go ahead (--confirm was not "
                              "given)\n")
    two = cli("restore", "latest", "--database", "x", extra={
        "BACKUP_TARGETS": f"{TARGET},pg_source"})
    assert two.stderr == ("error: backup id 'latest' needs the backup target whose newest "
                          f"backup to restore: give --from, one of {FILED}, pg_source\n")


def test_json_is_one_object_per_backup_with_utc_times_and_errors_as_json(
        cli: CliRunner, backup: dict[str, object]) -> None:
    show = cli("show", str(backup["backup_id"]), "--json")
    assert show.returncode == 0, show.stderr
    shown = json.loads(show.stdout)
    listed = json.loads(cli("list", "--json").stdout)
    assert shown == listed[0] == backup  # backup, list and show: the same object
    assert backup["status"] == "completed" and backup["table_counts"]
    for key in ("started_at", "completed_at"):
        assert str(backup[key]).endswith("+00:00"), backup[key]
        datetime.fromisoformat(str(backup[key]))
    missing = cli("show", "20260101T000000Z-00000000", "--json")
    assert missing.returncode == 2 and missing.stdout == ""
    error = json.loads(missing.stderr)["error"]  # stderr: this one line
    assert error["type"] == "PreconditionError" and error["exit_code"] == 2
    assert error["message"].startswith("no backup '20260101T000000Z-00000000' in ")
    usage = cli("list", "--limit", "0", "--json")
    assert usage.returncode == 2 and json.loads(usage.stderr) == {"error": {
        "type": "usage", "exit_code": 2, "message": "Invalid value for '--limit': 0 is out of "
        "range; give a whole number from 1 to 100000"}}


def test_show_and_health_speak_in_sizes_and_name_the_target_reachable(
        cli: CliRunner, backup: dict[str, object]) -> None:
    shown = cli("show", str(backup["backup_id"])).stdout
    stored = int(str(backup["stored_bytes"]))
    assert f"stored_bytes   {human_bytes(stored)} ({stored:,} bytes)\n" in shown
    assert "started_at     20" in shown and " UTC\n" in shown
    health = cli("health")
    assert health.returncode == 0, health.stdout + health.stderr
    lines = health.stdout.splitlines()
    reachable = [line for line in lines if " target_reachable " in line]
    assert len(reachable) == 1 and reachable[0].startswith(f"OK       {FILED:24} target_reachable")
    assert " answers (PostgreSQL " in reachable[0]
    stored_line = next(line for line in lines if " backups_stored " in line)
    assert stored_line.endswith(f"1 backups, {human_bytes(stored)}")


def test_a_closed_pipe_a_missing_folder_and_the_version(
        cli: CliRunner, backup: dict[str, object], tmp_path: Path) -> None:
    show = f"{' '.join(CLI)} show {backup['backup_id']}"
    head = subprocess.run(f"{show} | head -1", shell=True, text=True, capture_output=True,
                          env=cli.environment(), timeout=120)
    assert head.stdout == f"backup_id      {backup['backup_id']}\n"
    gone = subprocess.run(  # `true` has exited, unread, before the CLI writes: EPIPE
        ["bash", "-c", f"{show} | true; echo ${{PIPESTATUS[0]}}"], text=True,
        capture_output=True, env=cli.environment(), timeout=120)
    assert gone.stderr == "" and gone.stdout == "141\n"  # no BrokenPipeError traceback
    made = cli("download", str(backup["backup_id"]), f"{tmp_path}/new/")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "new" / f"{backup['backup_id']}.pgc").stat().st_size == backup["raw_bytes"]
    missing = cli("download", str(backup["backup_id"]), f"{tmp_path}/nowhere/dump.pgc")
    assert missing.returncode == 2 and missing.stderr == (
        f"error: folder '{tmp_path}/nowhere' does not exist: create it, or end the path with / "
        f"to have it created ({tmp_path}/nowhere/)\n")
    assert not (tmp_path / "nowhere").exists()
    version = subprocess.run([sys.executable, "-m", "amprenta_backup.cli", "--version"],
                             capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert version.returncode == 0 and version.stdout.startswith("amprenta-backup 0.")
