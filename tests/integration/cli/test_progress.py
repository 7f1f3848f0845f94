"""Progress while a backup streams: a rich bar at a terminal, plain lines with ``--progress``
elsewhere, and a log line every so often (what an Airflow task log shows)."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import re
import subprocess
from pathlib import Path

import pytest

from amprenta_backup.cli.progress import Lines
from amprenta_backup.core.models import human_bytes
from amprenta_backup.core.pipeline import Compression, ProgressLog, stream_command
from amprenta_backup.core.storage import LocalStorage
from tests.integration.cli.test_words import FILED, TARGET, backup, cli
from tests.support.cli import CLI, CliRunner

SHARED_FIXTURES = (cli, backup)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_a_backup_at_a_terminal_shows_bytes_read_and_stored_rate_and_time(
        cli: CliRunner) -> None:
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*CLI, "backup", TARGET], stdout=subprocess.PIPE, stderr=follower,
                            env=cli.environment({"COLUMNS": "160"}), text=True)
    os.close(follower)
    screen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the CLI closed its end
            break
        if not chunk:
            break
        screen += chunk
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0, screen.decode(errors="replace")
    text = ANSI.sub("", screen.decode())
    final = [line for line in text.replace("\r", "\n").splitlines() if "stored" in line][-1]
    assert final.lstrip().startswith(f"backup of {FILED} ")
    assert re.search(r" [\d.]+ (KiB|MiB) read, [\d.]+ (B|KiB|MiB)/s [\d.]+ (KiB|MiB) stored "
                     r"\d:\d\d:\d\d$", final.rstrip()), final  # read, rate, stored, elapsed
    assert out.startswith("backup ") and "stored" in out


def test_progress_lines_off_a_terminal_end_with_the_figures_of_the_manifest(
        cli: CliRunner) -> None:
    done = cli("backup", FILED, "--progress", "--json")  # the entry as listed: the same target
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    assert made["target"] == FILED and made["database"] == "amprenta"
    # under --json, stderr is JSON Lines: progress too, the last line the final figures
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines and all(list(line) == ["progress"] for line in lines), done.stderr
    last = lines[-1]["progress"]
    assert last["label"] == f"backup of {FILED}" and last["total_bytes"] is None
    assert (last["read_bytes"], last["stored_bytes"]) == (made["raw_bytes"], made["stored_bytes"])
    assert last["bytes_per_second"] > 0 and last["elapsed_seconds"] >= 0


def test_a_progress_line_in_words() -> None:
    lines = Lines("backup of pg_main.sales", 0, io.StringIO())
    lines(212 * 2**20, 79 * 2**20 + 2**19)
    assert lines.text(4.0) == ("backup of pg_main.sales: 212.0 MiB read, 79.5 MiB stored, "
                               "53.0 MiB/s, 4 s\n")
    lines.total = 424 * 2**20
    assert lines.text(4.0).startswith("backup of pg_main.sales: 212.0 MiB of 424.0 MiB (50%), ")


def test_a_task_log_gets_a_line_every_few_seconds_with_the_final_figures(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The pipeline fed by a real process (3 MiB of /dev/urandom with pauses) into local
    storage, as a backup task's pg_dump would be."""
    script = "for i in 1 2 3; do head -c 1048576 /dev/urandom; sleep 0.4; done"
    log = logging.getLogger("airflow.task")
    storage = LocalStorage(tmp_path)
    progress = ProgressLog("backup of pg_main", log, every=0.3)
    with caplog.at_level(logging.INFO, logger="airflow.task"):
        with storage.open_writer("dump.zst") as writer:
            result = stream_command(["sh", "-c", script], {"PATH": os.environ["PATH"]},
                                    writer, Compression(level=1, threads=0), progress=progress)
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow.task"]
    assert result.raw_bytes == 3 * 1048576
    assert 2 <= len(lines) <= 6, lines  # not one per chunk
    for line in lines:
        assert re.fullmatch(r"backup of pg_main: [\d.]+ (B|KiB|MiB) read, [\d.]+ (B|KiB|MiB) "
                            r"stored, [\d.]+ (B|KiB|MiB)/s, \d+ s elapsed", line), line
    assert progress.line(result.raw_bytes, result.stored_bytes, 2.0) == (
        f"backup of pg_main: 3.0 MiB read, {human_bytes(result.stored_bytes)} stored, "
        "1.5 MiB/s, 2 s elapsed")
