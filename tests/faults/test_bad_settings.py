"""Out-of-range and malformed numbers are refused with the setting named, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import FaultRow
from tests.support.cli import CliRunner

CASES = {
    "BACKUP_RETENTION_DAYS=3000000": ({"BACKUP_RETENTION_DAYS": "3000000"}, ("cleanup",)),
    "BACKUP_HEALTH_MAX_AGE_HOURS=99999999999999": (
        {"BACKUP_HEALTH_MAX_AGE_HOURS": "99999999999999"}, ("health",)),
    "BACKUP_S3_STALL_SECONDS=0": ({"BACKUP_S3_STALL_SECONDS": "0"}, ("list",)),
    "BACKUP_S3_STALL_SECONDS=abc": ({"BACKUP_S3_STALL_SECONDS": "abc"}, ("list",)),
}


@pytest.mark.faults("out-of-range setting {case}")
@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_number_exits_2_naming_the_setting(case: str, tmp_path: Path, row: FaultRow
                                                 ) -> None:
    env, args = CASES[case]
    name = next(iter(env))
    cli = CliRunner({"BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path),
                     "AIRFLOW_CONN_BACKUP_CATALOG": "postgresql://u@127.0.0.1:1/c", **env})
    done = cli(*args)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert name in done.stderr and "Traceback" not in done.stderr, done.stderr
    row.saw("exit 2 naming the setting, before anything is touched")
