"""BackupConfig reads the spec's variables and names the variable in every error."""

from __future__ import annotations

import pytest

from amprenta_backup.core.errors import ConfigError
from amprenta_backup.core.settings import BackupConfig, BackupTarget


def test_defaults_follow_the_spec() -> None:
    config = BackupConfig.from_env({})
    assert config.storage.storage_type == "local"
    assert config.retention_days == 365
    assert config.storage.s3_bucket == "amprenta-backups"
    assert config.prefix == "database"
    assert config.compression_enabled and config.checksum_enabled
    assert config.targets == ()


def test_reads_every_variable() -> None:
    config = BackupConfig.from_env({
        "BACKUP_STORAGE_TYPE": "S3", "BACKUP_S3_BUCKET": "team-backups",
        "BACKUP_S3_PREFIX": "/pg/", "BACKUP_RETENTION_DAYS": "30",
        "BACKUP_COMPRESSION_ENABLED": "false", "BACKUP_CHECKSUM_ENABLED": "no",
        "BACKUP_S3_SSE": "aws:kms", "BACKUP_S3_KMS_KEY_ID": "alias/backups",
        "BACKUP_TARGETS": "pg_main, pg_main:analytics", "BACKUP_CATALOG_CONN_ID": "cat",
    })
    assert config.storage.storage_type == "s3" and config.storage.s3_bucket == "team-backups"
    assert config.prefix == "pg" and config.retention_days == 30
    assert not config.compression_enabled and not config.checksum_enabled
    assert config.storage.s3_kms_key_id == "alias/backups"
    assert config.targets == (BackupTarget("pg_main"), BackupTarget("pg_main", "analytics"))
    assert [t.name for t in config.targets] == ["pg_main", "pg_main.analytics"]
    assert config.catalog_conn_id == "cat"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"BACKUP_STORAGE_TYPE": "ftp"}, ["BACKUP_STORAGE_TYPE", "'local' or 's3'"]),
        ({"BACKUP_RETENTION_DAYS": "6"}, ["BACKUP_RETENTION_DAYS", "7"]),
        ({"BACKUP_RETENTION_DAYS": "a year"}, ["BACKUP_RETENTION_DAYS", "whole number"]),
        ({"BACKUP_COMPRESSION_ENABLED": "maybe"}, ["BACKUP_COMPRESSION_ENABLED", "true or false"]),
        ({"BACKUP_STORAGE_TYPE": "s3", "BACKUP_S3_BUCKET": "x"}, ["BACKUP_S3_BUCKET"]),
        ({"BACKUP_LOCAL_PATH": "relative/dir"}, ["BACKUP_LOCAL_PATH", "absolute"]),
        ({"BACKUP_S3_SSE": "aws:kms"}, ["BACKUP_S3_KMS_KEY_ID"]),
        ({"BACKUP_S3_SSE": "rot13"}, ["BACKUP_S3_SSE"]),
        ({"BACKUP_OBJECT_LOCK_MODE": "governance"},
         ["BACKUP_OBJECT_LOCK_MODE", "BACKUP_STORAGE_TYPE=s3", "local storage has no Object Lock"]),
        ({"BACKUP_STORAGE_TYPE": "s3", "BACKUP_OBJECT_LOCK_MODE": "forever"},
         ["BACKUP_OBJECT_LOCK_MODE", "'governance' or 'compliance'"]),
        ({"BACKUP_STORAGE_TYPE": "s3", "BACKUP_OBJECT_LOCK_MODE": "compliance",
          "BACKUP_OBJECT_LOCK_DAYS": "0"}, ["BACKUP_OBJECT_LOCK_DAYS", "1-36500"]),
        ({"BACKUP_TARGETS": "pg;drop table x"}, ["BACKUP_TARGETS"]),
        ({"BACKUP_TARGETS": "a,b,a"}, ["BACKUP_TARGETS", "more than once"]),
        ({"BACKUP_COMPRESSION_LEVEL": "40"}, ["BACKUP_COMPRESSION_LEVEL", "1-19"]),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(env: dict[str, str], names: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        BackupConfig.from_env(env)
    for name in names:
        assert name in str(err.value)


def test_target_text_round_trips() -> None:
    for text in ("pg_main", "pg_main:analytics", "pg.main-2:Données"):
        assert BackupTarget.parse(text).to_text() == text
    assert BackupTarget.parse("pg:Données").name == "pg.Donn_es"


@pytest.mark.parametrize(("env", "expected"), [
    ({"BACKUP_RETENTION_DAYS": "3000000"},
     "BACKUP_RETENTION_DAYS=3000000 is out of range; use 7-36500"),
    ({"BACKUP_HEALTH_MAX_AGE_HOURS": "99999999999999"},
     "BACKUP_HEALTH_MAX_AGE_HOURS=99999999999999 is out of range; use 1-8760"),
    ({"BACKUP_KEEP_LAST": "-1"}, "BACKUP_KEEP_LAST=-1 is out of range; use 0-10000"),
    ({"BACKUP_COMPRESSION_THREADS": "1e9"}, "BACKUP_COMPRESSION_THREADS='1e9' is not a number"),
    ({"BACKUP_RETENTION_DAYS": "6"}, "BACKUP_RETENTION_DAYS=6 is under the 7-day safety floor"),
])
def test_numbers_out_of_bounds_are_config_errors_with_the_range_and_the_fix(
        env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        BackupConfig.from_env(env)
    assert str(err.value).startswith(expected)
    assert "e.g. " in str(err.value)  # the fix: a value that works


def test_unset_empty_and_padded_values() -> None:
    config = BackupConfig.from_env({"BACKUP_RETENTION_DAYS": "  ", "BACKUP_KEEP_LAST": " 4 ",
                                    "BACKUP_STORAGE_TYPE": ""})
    assert (config.retention_days, config.keep_last) == (365, 4)
    assert config.storage.storage_type == "local"


def test_keyword_arguments_never_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKUP_RETENTION_DAYS", "30")
    assert BackupConfig().retention_days == 365
    assert BackupConfig.from_env().retention_days == 30
    assert BackupConfig.from_env({}).retention_days == 365


def test_the_copy_storage_declares_the_primary_variables_under_its_own_names() -> None:
    from amprenta_backup.core.settings import CopySettings, CopyStorageConfig, StorageConfig

    assert CopySettings.from_env({}).storage is None  # no copy unless its type is set
    copy = CopySettings.from_env({"BACKUP_COPY_STORAGE_TYPE": "S3",
                                  "BACKUP_COPY_S3_BUCKET": "acme-dr",
                                  "BACKUP_COPY_AWS_CONN_ID": "aws_dr",
                                  "BACKUP_S3_BUCKET": "acme-primary",
                                  "BACKUP_COPY_RETENTION_DAYS": "365"})
    assert copy.storage is not None and copy.storage.storage_type == "s3"
    assert (copy.storage.s3_bucket, copy.storage.aws_conn_id) == ("acme-dr", "aws_dr")
    assert copy.retention_days == 365
    assert set(CopyStorageConfig.names().values()) == {
        name.replace("BACKUP_", "BACKUP_COPY_", 1) for name in StorageConfig.names().values()}
    with pytest.raises(ConfigError, match="BACKUP_COPY_S3_BUCKET='A B' is not a valid bucket"):
        CopySettings.from_env({"BACKUP_COPY_STORAGE_TYPE": "s3",
                               "BACKUP_COPY_S3_BUCKET": "A B"})
    with pytest.raises(ConfigError, match="BACKUP_COPY_LOCAL_PATH='rel' must be an absolute"):
        CopySettings.from_env({"BACKUP_COPY_STORAGE_TYPE": "local",
                               "BACKUP_COPY_LOCAL_PATH": "rel"})
    with pytest.raises(ConfigError, match="BACKUP_COPY_RETENTION_DAYS=3 is under the 7-day"):
        CopySettings.from_env({"BACKUP_COPY_RETENTION_DAYS": "3"})
