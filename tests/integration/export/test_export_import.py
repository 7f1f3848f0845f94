"""Project export and import against real PostgreSQL databases (the session's cluster)."""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from amprenta_backup.core.engine import BackupEngine
from amprenta_backup.core.errors import ChecksumMismatch
from amprenta_backup.core.export.load import ImportConflict
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.integration.conftest import conninfo
from tests.integration.export.conftest import PROJECTS
from tests.integration.export.oracle import checksums, expected_rows, rows, table_rows

A, C = PROJECTS["A"], PROJECTS["C"]


@pytest.fixture
def exported_a(export_engine: Callable[..., BackupEngine], tmp_path: Path) -> tuple[
        BackupEngine, dict[str, object], Path]:
    """Project A exported once, and its ZIP downloaded."""
    engine = export_engine()
    result = engine.create_project_export(project_ids=[A])
    path = tmp_path / "a.zip"
    engine.project_exports().download(str(result["export_id"]), path)
    return engine, result, path


def _target(pg_cluster: ClusterBase, fresh_db: Callable[[str], str]) -> PgConnInfo:
    return conninfo(pg_cluster, fresh_db("import"))


def test_export_of_one_project_imports_exactly_its_rows(
        exported_a: tuple[BackupEngine, dict[str, object], Path], project_db: PgConnInfo,
        project_files: Path, pg_cluster: ClusterBase, fresh_db: Callable[[str], str]) -> None:
    engine, result, path = exported_a
    record = engine.project_exports().get(str(result["export_id"]))
    assert (record.status, record.sha256, record.project_ids) == ("completed", result["sha256"],
                                                                  [A])
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    expected = expected_rows(project_db, A)
    assert record.completed_at is not None
    assert record.row_count == sum(len(v) for v in expected.values())
    with zipfile.ZipFile(path) as archive:  # the documents' files, byte for byte
        for n in range(3):
            assert archive.read(f"files/A/exp{n}.txt") == (project_files / f"A/exp{n}.txt"
                                                           ).read_bytes()
        assert not [n for n in archive.namelist() if n.startswith("files/B")]
        manifest = json.loads(archive.read("manifest.json"))
        for table in manifest["tables"]:  # every data file's sha256 and row count
            member = table["file"]
            assert hashlib.sha256(archive.read(member["path"])).hexdigest() == member["sha256"]
            assert table["rows"] == len(expected[table["table"]])
    assert manifest["project_ids"] == [A] and manifest["source"]["database"] == project_db.dbname
    snapshot = datetime.fromisoformat(manifest["snapshot_time"].replace("Z", "+00:00"))
    assert record.started_at <= snapshot <= record.completed_at
    assert {(fk["child"], tuple(fk["child_columns"])) for fk in manifest["graph"]["foreign_keys"]
            } >= {("app.experiments", ("parent_id",)), ("app.experiments", ("lead_sample_id",)),
                  ("app.annotations", ("sample_id", "seq", "taken_on"))}
    target = _target(pg_cluster, fresh_db)
    report = engine.import_project(path, target.dbname)
    assert report.created_schema and report.loaded == record.row_count
    assert table_rows(target) == expected  # exactly A's rows and the lookups they need
    assert rows(target, "SELECT * FROM app.unrelated") == []
    with psycopg.connect(**target.connect_kwargs()) as db:  # sequences moved past the keys
        db.execute("INSERT INTO app.experiments (project_id, title) VALUES (%s, 'new')", (A,))


def _writer(source: PgConnInfo, stop: threading.Event, done: list[int]) -> None:
    """Insert samples of project C, each with its counter, one transaction each."""
    with psycopg.connect(**source.connect_kwargs(), autocommit=True) as db:
        first = db.execute("SELECT min(id) FROM app.experiments WHERE project_id = %s",
                           (C,)).fetchone()[0]
        while not stop.is_set():
            with db.transaction():
                db.execute("INSERT INTO app.samples (experiment_id, label) VALUES (%s, 'w')",
                           (first,))
                db.execute("UPDATE app.projects SET samples_written = samples_written + 1 "
                           "WHERE id = %s", (C,))
            done[0] += 1


@pytest.fixture
def writer(project_db: PgConnInfo) -> Iterator[list[int]]:
    stop, done = threading.Event(), [0]
    thread = threading.Thread(target=_writer, args=(project_db, stop, done))
    thread.start()
    try:
        while done[0] < 20:
            stop.wait(0.01)
        yield done
    finally:
        stop.set()
        thread.join()


def test_export_while_a_writer_inserts_is_one_snapshot(
        export_engine: Callable[..., BackupEngine], writer: list[int], pg_cluster: ClusterBase,
        fresh_db: Callable[[str], str]) -> None:
    engine = export_engine(file_columns=())
    before = writer[0]
    result = engine.create_project_export(project_ids=[C], include_files=False)
    assert writer[0] > before, "the writer committed while the export ran"
    target = _target(pg_cluster, fresh_db)
    engine.import_project(str(result["export_id"]), target.dbname)
    counter = rows(target, "SELECT samples_written FROM app.projects")
    samples = rows(target, "SELECT count(*) FROM app.samples")
    assert counter == samples  # every sample the counter counts, and no other


@pytest.fixture
def holding_a(exported_a: tuple[BackupEngine, dict[str, object], Path], pg_cluster: ClusterBase,
              fresh_db: Callable[[str], str]) -> PgConnInfo:
    """A target that already holds project A, with its experiments and samples edited there
    (same keys, other content: conflicts); its lookups and measurements are left equal."""
    engine, _, path = exported_a
    target = _target(pg_cluster, fresh_db)
    engine.import_project(path, target.dbname)
    with psycopg.connect(**target.connect_kwargs()) as db:
        db.execute("UPDATE app.experiments SET title = title || ' (edited)'")
        db.execute("UPDATE app.samples SET label = label || ' (edited)'")
    return target


def test_conflicts_fail_by_default_and_write_nothing(
        exported_a: tuple[BackupEngine, dict[str, object], Path], holding_a: PgConnInfo) -> None:
    engine, _, path = exported_a
    before = checksums(holding_a)
    with pytest.raises(ImportConflict, match=r"app\.experiments: 3 .*app\.samples: 6"):
        engine.import_project(path, holding_a.dbname)
    assert checksums(holding_a) == before


def test_skip_keeps_the_targets_rows(exported_a: tuple[BackupEngine, dict[str, object], Path],
                                     holding_a: PgConnInfo) -> None:
    engine, _, path = exported_a
    before = table_rows(holding_a)
    report = engine.import_project(path, holding_a.dbname, on_conflict="skip")
    by_table = {t.table: t for t in report.tables}
    assert (by_table["app.experiments"].skipped, by_table["app.samples"].skipped) == (3, 6)
    assert by_table["app.measurements"].present == 12
    after = table_rows(holding_a)
    assert {t: v for t, v in after.items() if t != "app.audit"} == {
        t: v for t, v in before.items() if t != "app.audit"}
    assert len(after["app.audit"]) == 2 * len(before["app.audit"])  # no key: loaded again


def test_remap_gives_new_keys_and_rewrites_every_reference(
        exported_a: tuple[BackupEngine, dict[str, object], Path], holding_a: PgConnInfo,
        project_db: PgConnInfo) -> None:
    engine, _, path = exported_a
    report = engine.import_project(path, holding_a.dbname, on_conflict="remap")
    by_table = {t.table: t for t in report.tables}
    assert (by_table["app.experiments"].remapped, by_table["app.samples"].remapped) == (3, 6)
    # annotations reference the samples only through measurements' composite key: rewritten
    # there too, so they are new rows (new ids), not the target's copies
    assert by_table["app.annotations"].remapped == 6
    fresh = ("SELECT e.title, p.title, s.label, (SELECT count(*) FROM app.measurements m "
             "WHERE m.sample_id = s.id), (SELECT count(*) FROM app.sample_tags t "
             "WHERE t.sample_id = s.id), (SELECT string_agg(a.note, '') FROM app.annotations a "
             "WHERE a.sample_id = s.id) FROM app.experiments e "
             "LEFT JOIN app.experiments p ON p.id = e.parent_id "
             "JOIN app.samples s ON s.id = e.lead_sample_id AND s.experiment_id = e.id "
             "WHERE e.title NOT LIKE '%(edited)'")
    source = ("SELECT e.title, p.title, s.label, 2, 2, (SELECT string_agg(a.note, '') FROM "
              "app.annotations a WHERE a.sample_id = s.id) FROM app.experiments e "
              "LEFT JOIN app.experiments p ON p.id = e.parent_id "
              "JOIN app.samples s ON s.id = e.lead_sample_id WHERE e.project_id = %(p)s")
    assert rows(holding_a, fresh) == rows(project_db, source, {"p": A})
    assert rows(holding_a, "SELECT count(*) FROM app.experiments") == ["(6,)"]
    assert rows(holding_a, "SELECT count(*) FROM app.annotations") == ["(12,)"]


def test_dry_run_writes_nothing(exported_a: tuple[BackupEngine, dict[str, object], Path],
                                holding_a: PgConnInfo, pg_cluster: ClusterBase,
                                fresh_db: Callable[[str], str]) -> None:
    engine, _, path = exported_a
    before = checksums(holding_a)
    report = engine.import_project(path, holding_a.dbname, on_conflict="remap", dry_run=True)
    assert report.dry_run and {t.table: t.remapped for t in report.tables}["app.samples"] == 6
    assert checksums(holding_a) == before
    empty = _target(pg_cluster, fresh_db)
    before = checksums(empty)
    assert engine.import_project(path, empty.dbname, dry_run=True).created_schema
    assert checksums(empty) == before  # not even the tables


def _tampered(path: Path, out: Path, member: str) -> Path:
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data.replace(b"mg", b"kg") if info.filename == member else data)
    return out


def test_a_tampered_zip_is_refused_before_anything_is_written(
        exported_a: tuple[BackupEngine, dict[str, object], Path], tmp_path: Path,
        pg_cluster: ClusterBase, fresh_db: Callable[[str], str]) -> None:
    engine, _, path = exported_a
    with zipfile.ZipFile(path) as archive:
        member = next(n for n in archive.namelist() if "measurements" in n)
    bad = _tampered(path, tmp_path / "bad.zip", member)
    target = _target(pg_cluster, fresh_db)
    before = checksums(target)
    with pytest.raises(ChecksumMismatch, match=rf"{member} has sha256 .* not imported"):
        engine.import_project(bad, target.dbname)
    assert checksums(target) == before
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(path).extractall(folder)
    (folder / "files" / "planted.sh").write_text("echo hi")
    with pytest.raises(ChecksumMismatch, match="files/planted.sh is not listed"):
        engine.import_project(folder, target.dbname)
    assert checksums(target) == before
