"""Parallel logical backups (several pg_dump streams on one snapshot) of real databases: the
manifest lists every object, and verify, restore and retention treat them as one backup."""

from __future__ import annotations

import dataclasses
import itertools
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner
from amprenta_backup.core.backup.parallel import resolve_jobs
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.encryption.stream import MAGIC
from amprenta_backup.core.errors import ChecksumMismatch, PreconditionError
from amprenta_backup.core.models import Manifest, RunContext, Status, utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.restore.request import RestoreRequest
from amprenta_backup.core.restore.run import Restorer
from amprenta_backup.core.retention.cleanup import Cleanup
from amprenta_backup.core.retention.policies import AgePolicy, KeepLastPolicy
from amprenta_backup.core.settings import BackupConfig, BackupTarget
from amprenta_backup.core.storage import LocalStorage, S3Storage, Storage
from amprenta_backup.core.verify import verify_backup
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from amprenta_backup.sandbox.dataset import load_tables
from tests.integration.backup.test_encryption import KEY_A, conn_keys, keyring_env
from tests.integration.backup.test_logical import _children_running
from tests.integration.conftest import conninfo
from tests.integration.copy.test_copy import COPY_PREFIX, copied_key, sha256
from tests.integration.copy.test_copy import engine as copy_engine
from tests.integration.drill.test_runner import _runner as drill_runner
from tests.support.backups import SETTINGS, engine_for, flip_byte, rewrite
from tests.support.signals import SignalOnFirstWrite, Terminated, sigterm_raises_terminated

PARALLEL = dataclasses.replace(SETTINGS, dump_jobs=3, min_table_bytes=0)
_ids = itertools.count(1)


@pytest.fixture(scope="session")
def many_tables_conn(pg_cluster: ClusterBase) -> PgConnInfo:
    """Six tables of uneven sizes (0.5 to 4 MiB) beside nothing else."""
    load_tables(pg_cluster, "manytables", [4, 0.5, 2, 1, 3, 1.5])
    return conninfo(pg_cluster, "manytables")


def parallel_backup(storage: Storage, catalog: Catalog, conn: PgConnInfo,
                    target: str = "pg_source") -> Manifest:
    backup_id = layout.make_backup_id(datetime.now(UTC), f"parallel/{next(_ids)}/{target}")
    return BackupRunner(storage, catalog, PARALLEL).run(target, conn, RunContext(), backup_id)


def test_a_parallel_backup_lists_every_object_with_its_sha256_and_verifies(
        local_storage: Storage, catalog: Catalog, many_tables_conn: PgConnInfo) -> None:
    manifest = parallel_backup(local_storage, catalog, many_tables_conn, "pg_many")

    parts = manifest.dump_parts()
    assert len(parts) == 3 and parts[0].section == "all" and parts[0].key == manifest.key
    moved = sorted(t for p in parts[1:] for t in p.tables)
    assert moved and set(moved) <= set(manifest.table_counts)
    stored = {o.key: o.size for o in local_storage.list_objects() if "/_globals/" not in o.key}
    assert {p.key: p.stored_bytes for p in parts} == {
        k: v for k, v in stored.items() if not k.endswith("manifest.json")}
    assert manifest.stored_bytes == sum(p.stored_bytes for p in parts)
    assert all(p.sha256 and len(p.sha256) == 64 for p in parts)

    result = verify_backup(local_storage, catalog, manifest)

    assert result.ok, result.detail
    assert "3 parts" in result.checked and "archive" in result.checked
    assert result.stored_bytes == manifest.stored_bytes
    assert catalog.get(manifest.backup_id).status == Status.VERIFIED  # type: ignore[union-attr]


def test_verify_names_the_part_with_a_flipped_byte(
        local_storage: Storage, catalog: Catalog, many_tables_conn: PgConnInfo) -> None:
    manifest = parallel_backup(local_storage, catalog, many_tables_conn, "pg_many")
    damaged = manifest.dump_parts()[2]
    rewrite(local_storage, damaged.key, flip_byte)

    result = verify_backup(local_storage, catalog, manifest)

    assert not result.ok and result.status == Status.CORRUPT
    assert all(local_storage.uri(damaged.key) in problem for problem in result.problems)
    assert "sha256 of the stored bytes" in result.detail
    assert catalog.get(manifest.backup_id).status == Status.CORRUPT  # type: ignore[union-attr]


def _restorer(storage: Storage, catalog: Catalog, conns: dict[str, PgConnInfo]) -> Restorer:
    return Restorer(storage, catalog, engine_for(storage, catalog, conns).resolve)


def test_a_parallel_backup_of_the_sample_database_restores_equal(
        local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
        pg_cluster: ClusterBase, new_name: Callable[[str], str], tmp_path: Path) -> None:
    manifest = parallel_backup(local_storage, catalog, source_conn)
    assert len(manifest.dump_parts()) == 3
    target, work = new_name("parallel_sample"), tmp_path / "work"
    work.mkdir()

    result = _restorer(local_storage, catalog, {"pg_source": source_conn}).run(
        RestoreRequest(manifest.backup_id, target, jobs=2), workdir=str(work))

    assert_databases_equal(pg_cluster, "amprenta", pg_cluster, target)
    assert result.mismatches == [] and list(work.iterdir()) == []
    assert {t: got for t, (got, _) in result.row_counts.items()} == manifest.table_counts


def test_a_parallel_backup_with_a_damaged_data_part_fails_its_restore_and_leaves_nothing(
        local_storage: Storage, catalog: Catalog, many_tables_conn: PgConnInfo,
        pg_cluster: ClusterBase, new_name: Callable[[str], str], tmp_path: Path) -> None:
    manifest = parallel_backup(local_storage, catalog, many_tables_conn, "pg_many")
    damaged = manifest.dump_parts()[2]
    rewrite(local_storage, damaged.key, flip_byte)
    target, work = new_name("parallel_damaged"), tmp_path / "work"
    work.mkdir()

    with pytest.raises(ChecksumMismatch, match="found while restoring: nothing was restored"):
        _restorer(local_storage, catalog, {"pg_many": many_tables_conn}).run(
            RestoreRequest(manifest.backup_id, target, jobs=2), workdir=str(work))

    assert not pg_cluster.database_exists(target) and list(work.iterdir()) == []
    assert catalog.get(manifest.backup_id).status == Status.CORRUPT  # type: ignore[union-attr]


def test_a_parallel_backup_of_many_tables_restores_equal_and_its_cleanup_deletes_every_object(
        local_storage: Storage, catalog: Catalog, many_tables_conn: PgConnInfo,
        pg_cluster: ClusterBase, new_name: Callable[[str], str]) -> None:
    old, kept = (parallel_backup(local_storage, catalog, many_tables_conn, "pg_many")
                 for _ in range(2))
    target = new_name("parallel_many")
    _restorer(local_storage, catalog, {"pg_many": many_tables_conn}).run(
        RestoreRequest(old.backup_id, target))  # jobs=1: one part at a time
    assert_databases_equal(pg_cluster, "manytables", pg_cluster, target)

    report = Cleanup(local_storage, catalog, [AgePolicy(7), KeepLastPolicy(1)],
                     "database").run(utcnow() + timedelta(days=30), deleted_by="test")

    assert [d.record.backup_id for d in report.plan.to_delete] == [old.backup_id]
    assert _keys(local_storage, old) == set()
    assert _keys(local_storage, kept) == {p.key for p in kept.dump_parts()} | {
        layout.manifest_key(layout.folder_of(kept.key))}
    assert catalog.get(old.backup_id).status == Status.DELETED  # type: ignore[union-attr]


def _keys(storage: Storage, manifest: Manifest) -> set[str]:
    return {o.key for o in storage.list_objects(layout.folder_of(manifest.key) + "/")}


def test_a_parallel_backup_interrupted_by_sigterm_leaves_nothing_and_no_pg_dump(
        local_storage: Storage, catalog: Catalog, many_tables_conn: PgConnInfo) -> None:
    """A real SIGTERM (raised in the main thread, as a task runner does) as the last part
    starts to store: every stream is stopped and every object of the backup removed."""
    storage: Any = SignalOnFirstWrite(local_storage, "dump-data-02.pgc.zst", signal.SIGTERM)
    backup_id = layout.make_backup_id(datetime.now(UTC), "parallel/sigterm")

    with sigterm_raises_terminated(), pytest.raises(Terminated):
        BackupRunner(storage, catalog, PARALLEL).run("pg_many", many_tables_conn,
                                                     RunContext(), backup_id)

    record = catalog.get(backup_id)
    assert record is not None and record.status == Status.FAILED
    assert "step 'dump' failed" in (record.error or "")
    assert [o.key for o in local_storage.list_objects() if "/_globals/" not in o.key] == []
    assert _children_running("--format=custom") == []


def test_a_parallel_backup_is_copied_part_by_part_and_verifies_from_the_copy(
        local_storage: LocalStorage, s3_storage: S3Storage, catalog: Catalog,
        source_conn: PgConnInfo) -> None:
    manifest = parallel_backup(local_storage, catalog, source_conn)
    backups = copy_engine(local_storage, s3_storage, catalog, source_conn)

    backups.copy_backup(manifest.backup_id)

    for part in manifest.dump_parts():
        assert sha256(s3_storage, copied_key(part.key)) == part.sha256
    result = backups.verify(manifest.backup_id, from_copy=True)
    assert result.ok and "3 parts" in result.checked, result.detail
    assert result.location.startswith(s3_storage.uri(COPY_PREFIX))


def test_download_writes_every_part_as_an_archive_of_its_own(
        local_storage: Storage, catalog: Catalog, many_tables_conn: PgConnInfo,
        tmp_path: Path) -> None:
    manifest = parallel_backup(local_storage, catalog, many_tables_conn, "pg_many")
    engine = engine_for(local_storage, catalog, {"pg_many": many_tables_conn})
    path = tmp_path / "out" / "many.pgc"
    path.parent.mkdir()

    result = engine.download(manifest.backup_id, path)

    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["many-data-01.pgc", "many-data-02.pgc", "many.pgc"]
    assert all(f.read_bytes()[:5] == b"PGDMP" for f in files)
    assert sum(f.stat().st_size for f in files) == manifest.raw_bytes == result.raw_bytes
    with pytest.raises(PreconditionError, match="already exist"):
        engine.download(manifest.backup_id, path)


def test_by_default_only_a_database_with_two_sizeable_tables_is_dumped_in_parallel(
        local_storage: Storage, catalog: Catalog, many_tables_conn: PgConnInfo) -> None:
    """BACKUP_DUMP_JOBS=0 (the default): streams from the cores, but only for tables of at
    least BACKUP_DUMP_MIN_TABLE_MB (16 MiB: none here, the biggest has 4)."""
    assert SETTINGS.dump_jobs == BackupConfig().dump_jobs == 0
    runner = BackupRunner(local_storage, catalog, SETTINGS)
    single = runner.run("pg_many", many_tables_conn, RunContext(),
                        layout.make_backup_id(datetime.now(UTC), "parallel/auto-single"))
    assert single.parts is None and single.format == "pg_dump-custom"

    runner.settings = dataclasses.replace(SETTINGS, min_table_bytes=2 * 2**20)
    parallel = runner.run("pg_many", many_tables_conn, RunContext(),
                          layout.make_backup_id(datetime.now(UTC), "parallel/auto-many"))

    moved = {t for p in parallel.dump_parts()[1:] for t in p.tables}
    assert 1 < len(parallel.objects()) <= resolve_jobs(0) <= 4
    assert moved and moved <= {"many.t01", "many.t03", "many.t05"}  # the 4, 2 and 3 MiB
    assert verify_backup(local_storage, catalog, parallel).ok


def test_an_encrypted_parallel_backup_seals_each_part_with_its_own_key_and_restores(
        local_storage: Storage, catalog: Catalog, many_tables_conn: PgConnInfo,
        pg_cluster: ClusterBase, new_name: Callable[[str], str]) -> None:
    keys = conn_keys("k1", keyring_env(KEY_A))
    backup_id = layout.make_backup_id(datetime.now(UTC), "parallel/encrypted")
    manifest = BackupRunner(local_storage, catalog, dataclasses.replace(PARALLEL, keys=keys)).run(
        "pg_many", many_tables_conn, RunContext(), backup_id)
    parts = manifest.dump_parts()
    assert len({p.encryption["wrapped_key"] for p in parts if p.encryption}) == len(parts) == 3
    assert all(local_storage.get_bytes(p.key).startswith(MAGIC) for p in parts)

    assert verify_backup(local_storage, catalog, manifest, keys=keys).ok
    target = new_name("parallel_enc")
    Restorer(local_storage, catalog, engine_for(local_storage, catalog, {
        "pg_many": many_tables_conn}).resolve, keys).run(
        RestoreRequest(manifest.backup_id, target, jobs=2))
    assert_databases_equal(pg_cluster, "manytables", pg_cluster, target)


def test_a_restore_drill_of_a_parallel_backup_passes_every_check_and_verifies_it(
        local_storage: Storage, catalog: Catalog, source_conn: PgConnInfo,
        pg_cluster: ClusterBase) -> None:
    manifest = parallel_backup(local_storage, catalog, source_conn)

    record = drill_runner(local_storage, catalog, {"pg_source": source_conn}).run(
        BackupTarget("pg_source"), RunContext(dag_id="monthly_restore_drill", run_id="parallel"))

    assert record.passed is True and record.backup_id == manifest.backup_id, record.summary
    assert {c.name for c in record.checks} >= {"checksum", "restore", "row_counts"}
    assert not pg_cluster.database_exists(record.scratch_database)
    assert catalog.get(manifest.backup_id).status == Status.VERIFIED  # type: ignore[union-attr]
