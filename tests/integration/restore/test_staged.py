"""Parallel restores (jobs > 1) that start before the download ends: several tables loaded by
several pg_restore processes from the growing file, and a dump damaged in storage refused on
that one read (no checksum pass before it), with nothing left behind."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from amprenta_backup.core import pipeline
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.errors import ChecksumMismatch
from amprenta_backup.core.models import Manifest, Status
from amprenta_backup.core.restore.request import RestoreRequest
from amprenta_backup.core.restore.run import Restorer
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.integration.conftest import conninfo
from tests.support.backups import engine_for, flip_byte, make_backup, rewrite

TABLES = 5


@pytest.fixture(scope="module")
def many_tables(pg_cluster: ClusterBase) -> str:
    """A database of tables of uneven sizes, each with a key, an index, a sequence."""
    name = "staged_many"
    if not pg_cluster.database_exists(name):
        pg_cluster.create_database(name)
        for k in range(1, TABLES + 1):
            pg_cluster.execute(
                f"CREATE TABLE t{k} (id bigserial PRIMARY KEY, note text, n int);"
                f"INSERT INTO t{k} (note, n) SELECT md5(g::text), g % 97 "
                f"FROM generate_series(1, {k * 4000}) g; CREATE INDEX ON t{k} (n)", dbname=name)
    return name


def _restorer(storage: LocalStorage, catalog: Catalog, conn_db: str,
              cluster: ClusterBase) -> Restorer:
    engine = engine_for(storage, catalog, {"pg_source": conninfo(cluster, conn_db)})
    return Restorer(storage, catalog, engine.resolve)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"  # beside local_storage's tmp_path / "backups"
    folder.mkdir()
    return folder


@pytest.fixture
def backup(local_storage: LocalStorage, catalog: Catalog, pg_cluster: ClusterBase,
           many_tables: str) -> Manifest:
    return make_backup(local_storage, catalog, conninfo(pg_cluster, many_tables))


def test_several_tables_load_in_several_processes_and_equal_the_source(
    local_storage: LocalStorage, catalog: Catalog, pg_cluster: ClusterBase, many_tables: str,
    backup: Manifest, new_name: Callable[[str], str], work: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = new_name("staged")
    caplog.set_level(logging.INFO, logger="amprenta_backup.core.restore.staged")

    result = _restorer(local_storage, catalog, many_tables, pg_cluster).run(
        RestoreRequest(backup.backup_id, target, jobs=2), workdir=str(work))

    assert_databases_equal(pg_cluster, many_tables, pg_cluster, target)  # indexes, sequences too
    assert result.mismatches == [] and len(result.row_counts) == TABLES
    assert "with 2 pg_restore processes" in caplog.text
    assert list(work.iterdir()) == []  # the growing file and the lists are gone


def _sendfile_wants_a_socket(out: int, fd: int, offset: int, count: int) -> int:
    raise OSError(errno.ENOTSOCK, "Socket operation on non-socket")  # macOS, to a pipe


@pytest.mark.parametrize("found", [False, True], ids=["forced", "found-by-the-first-call"])
def test_where_sendfile_cannot_write_to_a_pipe_the_tools_are_fed_through_python(
    local_storage: LocalStorage, catalog: Catalog, pg_cluster: ClusterBase, many_tables: str,
    backup: Manifest, new_name: Callable[[str], str], work: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, found: bool,
) -> None:
    """The fallback for systems whose sendfile needs a socket (macOS). Linux's writes into a
    pipe, so "found" replaces it by one that fails as macOS's does: the one fault here that
    cannot be produced for real. "forced" takes the fallback as a test may, by the flag."""
    monkeypatch.setattr(pipeline, "SENDFILE_TO_PIPE", found)  # found: the first call tells
    if found:
        monkeypatch.setattr(pipeline.os, "sendfile", _sendfile_wants_a_socket)
    target = new_name("staged_copied")
    caplog.set_level(logging.INFO, logger="amprenta_backup.core.pipeline")

    result = _restorer(local_storage, catalog, many_tables, pg_cluster).run(
        RestoreRequest(backup.backup_id, target, jobs=2), workdir=str(work))

    assert_databases_equal(pg_cluster, many_tables, pg_cluster, target)
    assert result.mismatches == [] and len(result.row_counts) == TABLES
    assert pipeline.SENDFILE_TO_PIPE is False
    assert ("os.sendfile cannot write into a pipe here" in caplog.text) is found


SCHEMA_WEB = """
CREATE FUNCTION lower_note(text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT lower($1)';
CREATE TABLE parent (id bigint PRIMARY KEY, note text UNIQUE);
CREATE TABLE child (id bigserial PRIMARY KEY, parent_id bigint REFERENCES parent,
                    note text CHECK (note <> ''));
CREATE INDEX child_lower ON child (lower_note(note));
CREATE TABLE "Odd Name" ("Id" int PRIMARY KEY, "Value" text);
CREATE TABLE "MixedCase" (id int PRIMARY KEY);
CREATE TABLE events (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE events_a PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2026-07-01');
CREATE TABLE events_b PARTITION OF events FOR VALUES FROM ('2026-07-01') TO ('2027-01-01');
CREATE TABLE empty_one (id int PRIMARY KEY);
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 30000) g;
INSERT INTO child (parent_id, note) SELECT 1 + g % 30000, 'Note ' || g
  FROM generate_series(1, 20000) g;
INSERT INTO "Odd Name" SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
INSERT INTO "MixedCase" SELECT generate_series(1, 500);
INSERT INTO events SELECT g, date '2026-01-01' + g % 360 FROM generate_series(1, 9000) g;
"""


def test_keys_across_loaders_odd_names_and_partitions_are_restored_and_every_row_counted(
    local_storage: LocalStorage, catalog: Catalog, pg_cluster: ClusterBase,
    new_name: Callable[[str], str], work: Path,
) -> None:
    """The loaders build each table's own keys and indexes right after its data and count its
    rows as soon as they finish; what depends on more than one table (a foreign key, a
    partitioned table's key, an index on a function) waits for the last pass."""
    source = "staged_web"
    if not pg_cluster.database_exists(source):
        pg_cluster.create_database(source)
        pg_cluster.execute(SCHEMA_WEB, dbname=source)
    manifest = make_backup(local_storage, catalog, conninfo(pg_cluster, source))
    target = new_name("staged_web")

    result = _restorer(local_storage, catalog, source, pg_cluster).run(
        RestoreRequest(manifest.backup_id, target, jobs=2), workdir=str(work))

    assert_databases_equal(pg_cluster, source, pg_cluster, target)  # keys, indexes, partitions
    assert result.mismatches == []
    assert {table: got for table, (got, _) in result.row_counts.items()} == {
        "public.parent": 30000, "public.child": 20000, 'public."Odd Name"': 3000,
        'public."MixedCase"': 500, "public.events_a": 4525, "public.events_b": 4475,
        "public.empty_one": 0}
    assert list(work.iterdir()) == []


def test_a_dump_damaged_in_storage_fails_its_one_pass_and_no_database_is_left(
    local_storage: LocalStorage, catalog: Catalog, pg_cluster: ClusterBase, many_tables: str,
    backup: Manifest, new_name: Callable[[str], str], work: Path,
) -> None:
    target = new_name("staged_changed")
    seen: list[str] = []

    def progress(phase: str, total: int) -> None:
        seen.append(phase)  # the download starts: the object is damaged under it
        rewrite(local_storage, backup.key, flip_byte)

    with pytest.raises(ChecksumMismatch, match=r"is corrupt: sha256 .* found while restoring: "
                                               r"nothing was restored"):
        _restorer(local_storage, catalog, many_tables, pg_cluster).run(
            RestoreRequest(backup.backup_id, target, jobs=2), progress=progress,
            workdir=str(work))
    assert seen == ["restore"]  # one read of the object: no separate checksum pass
    assert not pg_cluster.database_exists(target)
    assert list(work.iterdir()) == []
    assert catalog.get(backup.backup_id).status == Status.CORRUPT  # type: ignore[union-attr]
