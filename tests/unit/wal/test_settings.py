"""amprenta-wal settings: an env-style file that must be private, and BACKUP_WAL_* variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.settings import WalSettings
from amprenta_backup.core.wal.settings import (
    read_config_file,
    settings_environment,
    write_config_file,
)


def test_a_written_file_reads_back_and_wins_over_the_environment(tmp_path: Path) -> None:
    path = write_config_file(tmp_path / "wal.env", {"BACKUP_WAL_TARGET": "pg_main",
                                                    "AWS_SECRET_ACCESS_KEY": "s3cr=t"})
    assert path.stat().st_mode & 0o777 == 0o600
    env = settings_environment(str(path), {"BACKUP_WAL_TARGET": "other", "HOME": "/root"})
    assert env["BACKUP_WAL_TARGET"] == "pg_main" and env["AWS_SECRET_ACCESS_KEY"] == "s3cr=t"
    assert env["HOME"] == "/root" and env["AMPRENTA_WAL_CONFIG"] == str(path)


def test_the_config_variable_names_the_file(tmp_path: Path) -> None:
    path = write_config_file(tmp_path / "wal.env", {"BACKUP_WAL_TARGET": "pg_x"})
    env = settings_environment(None, {"AMPRENTA_WAL_CONFIG": str(path)})
    assert WalSettings.from_env(env).target == "pg_x"


def test_comments_quotes_and_export_are_understood(tmp_path: Path) -> None:
    path = tmp_path / "wal.env"
    path.write_text("# storage\nexport BACKUP_S3_BUCKET=\"b-1\"\n\nBACKUP_WAL_PARALLEL = 4\n")
    path.chmod(0o600)
    assert read_config_file(path) == {"BACKUP_S3_BUCKET": "b-1", "BACKUP_WAL_PARALLEL": "4"}


def test_a_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = write_config_file(tmp_path / "wal.env", {"BACKUP_WAL_TARGET": "pg_main"})
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"mode 644.*chmod 600"):
        read_config_file(path)


def test_missing_file_and_bad_lines_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "nope.env")
    path = tmp_path / "wal.env"
    path.write_text("BACKUP_WAL_TARGET=x\nthis is not a setting\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="line 2 is not KEY=VALUE"):
        read_config_file(path)


def test_settings_defaults_and_spool_folder_per_cluster(tmp_path: Path) -> None:
    settings = WalSettings.from_env({"BACKUP_WAL_TARGET": "pg_main",
                                     "BACKUP_WAL_SPOOL": str(tmp_path)})
    assert (settings.compression_level, settings.async_push) == (1, True)
    assert settings.parallel == min(len(os.sched_getaffinity(0)) + 1, 4)  # busy while one waits
    assert (settings.catchup_level, settings.catchup_backlog) == (-5, 8)
    one, two = settings.spool_dir(tmp_path / "a"), settings.spool_dir(tmp_path / "b")
    assert one != two and one.parent == tmp_path and one.name.startswith("pg_main-")


@pytest.mark.parametrize(("env", "message"), [
    ({}, "BACKUP_WAL_TARGET is not set"),
    ({"BACKUP_WAL_TARGET": "a/b"}, "may only hold"),
    ({"BACKUP_WAL_TARGET": "t", "BACKUP_WAL_PARALLEL": "0"}, "BACKUP_WAL_PARALLEL=0"),
    ({"BACKUP_WAL_TARGET": "t", "BACKUP_WAL_PARALLEL": "two"},
     "BACKUP_WAL_PARALLEL='two' is not a number"),
    ({"BACKUP_WAL_TARGET": "t", "BACKUP_WAL_ASYNC": "maybe"}, "BACKUP_WAL_ASYNC"),
    ({"BACKUP_WAL_TARGET": "t", "BACKUP_WAL_COMPRESSION_LEVEL": "0"},
     r"=0 is not a zstd level; use 1-19 .* or -1 to -50"),
    ({"BACKUP_WAL_TARGET": "t", "BACKUP_WAL_CATCHUP_LEVEL": "0"},
     r"BACKUP_WAL_CATCHUP_LEVEL=0 is not a zstd level; .* BACKUP_WAL_CATCHUP_LEVEL=-1"),
    ({"BACKUP_WAL_TARGET": "t", "BACKUP_WAL_CATCHUP_BACKLOG": "0"}, "BACKUP_WAL_CATCHUP_BACKLOG=0"),
    ({"BACKUP_WAL_TARGET": "t", "BACKUP_WAL_COMPRESSION_LEVEL": "-51"},
     "=-51 is out of range; use -50 to 19"),
    ({"BACKUP_WAL_TARGET": "t", "BACKUP_WAL_COMPRESSION_LEVEL": "20"},
     "=20 is out of range; use -50 to 19"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WalSettings.from_env(env)


def test_zstd_fast_levels_are_accepted() -> None:
    settings = WalSettings.from_env({"BACKUP_WAL_TARGET": "t",
                                     "BACKUP_WAL_COMPRESSION_LEVEL": "-3"})
    assert settings.compression_level == -3
