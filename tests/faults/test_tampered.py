"""Stored objects damaged, removed, swapped or planted: verify and restore must notice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.faults.conftest import FaultRow
from tests.support.backups import flip_byte, rewrite, truncate
from tests.support.cli import CliRunner, conn_uri

Backup = dict[str, str]


class Stored:
    """Two CLI backups of the sample database in local storage, and the tools to harm them."""

    def __init__(self, source: PgConnInfo, catalog: Catalog, root: Path) -> None:
        self.storage = LocalStorage(root)
        self.catalog = catalog
        self.cli = CliRunner({"AIRFLOW_CONN_PG_SOURCE": conn_uri(source),
                              "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
                              "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(root)})
        self.first, self.second = self.backup(), self.backup()

    def backup(self) -> Backup:
        done = self.cli("backup", "pg_source", "--json")
        assert done.returncode == 0, done.stderr
        manifest = json.loads(done.stdout)
        return {"id": manifest["backup_id"], "key": manifest["key"],
                "manifest": layout.manifest_key(manifest["key"].rsplit("/", 1)[0])}

    def status(self, backup: Backup) -> Status:
        record = self.catalog.get(backup["id"])
        assert record is not None
        return record.status


def _corrupt(s: Stored) -> None:
    rewrite(s.storage, s.second["key"], flip_byte)


def _truncated(s: Stored) -> None:
    rewrite(s.storage, s.second["key"], truncate)


def _deleted(s: Stored) -> None:
    s.storage.delete([s.second["key"]])


def _manifest_garbage(s: Stored) -> None:
    s.storage.put_bytes(s.second["manifest"], b'{"backup_id": ')


def _manifest_deleted(s: Stored) -> None:
    s.storage.delete([s.second["manifest"]])


def _swapped(s: Stored) -> None:
    """The first backup's dump and manifest copied over the second's (a bad sync, a mix-up)."""
    s.storage.put_bytes(s.second["key"], s.storage.get_bytes(s.first["key"]))
    s.storage.put_bytes(s.second["manifest"], s.storage.get_bytes(s.first["manifest"]))


HARMS: dict[str, Callable[[Stored], None]] = {
    "dump with one bit flipped": _corrupt, "dump truncated to half": _truncated,
    "dump deleted": _deleted, "manifest not JSON": _manifest_garbage,
    "manifest deleted": _manifest_deleted,
    "dump and manifest swapped for another backup's": _swapped,
}


@pytest.fixture
def stored(source_conn: PgConnInfo, catalog: Catalog, tmp_path: Path) -> Stored:
    return Stored(source_conn, catalog, tmp_path / "b")


@pytest.mark.faults("{harm}: verify")
@pytest.mark.parametrize("harm", list(HARMS))
def test_verify_finds_the_harm_and_marks_the_backup_corrupt(
    stored: Stored, harm: str, row: FaultRow,
) -> None:
    HARMS[harm](stored)
    done = stored.cli("verify", stored.second["id"])
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "CORRUPT" in done.stderr and "Traceback" not in done.stderr
    assert stored.status(stored.second) == Status.CORRUPT
    assert stored.status(stored.first) == Status.COMPLETED
    row.saw("verify exits 3 naming what is wrong; record CORRUPT; the other backup untouched")


@pytest.mark.faults("{harm}: restore")
@pytest.mark.parametrize("harm", [h for h in HARMS if "swapped" not in h])
def test_restore_refuses_before_creating_anything_and_latest_moves_on(
    stored: Stored, harm: str, row: FaultRow, pg_cluster: ClusterBase,
) -> None:
    HARMS[harm](stored)
    name = f"tampered_{abs(hash(harm)) % 10**6}"
    done = stored.cli("restore", stored.second["id"], "--database", name)
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert not pg_cluster.database_exists(name)
    row.saw("restore exits 3, no database created")
    assert stored.status(stored.second) == Status.CORRUPT
    latest = stored.cli("restore", "latest", "--from", "pg_source", "--database", name,
                        "--dry-run", "--json")
    assert latest.returncode == 0, latest.stderr
    assert stored.first["id"] in latest.stdout and stored.second["id"] not in latest.stdout
    row.saw("record CORRUPT, so `restore latest` picks the older intact backup")


@pytest.mark.faults("dump and manifest swapped for another backup's: restore")
def test_a_swapped_folder_is_refused_by_restore(
    stored: Stored, row: FaultRow, pg_cluster: ClusterBase,
) -> None:
    _swapped(stored)
    done = stored.cli("restore", stored.second["id"], "--database", "tampered_swap")
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "does not match the catalog record" in done.stderr, done.stderr
    assert not pg_cluster.database_exists("tampered_swap")
    row.saw("restore exits 3 naming the mismatch with the catalog record, no database created")


@pytest.mark.faults("backup folder planted in storage (unknown to the catalog)")
def test_a_planted_folder_is_not_offered(stored: Stored, row: FaultRow) -> None:
    planted = layout.make_backup_id(layout.backup_time(stored.second["id"]), "planted")
    folder = layout.backup_folder("database", "pg_source", planted)
    stored.storage.put_bytes(layout.dump_key(folder, True), stored.storage.get_bytes(
        stored.first["key"]))
    manifest = json.loads(stored.storage.get_bytes(stored.first["manifest"]))
    manifest["backup_id"] = planted
    manifest["key"] = layout.dump_key(folder, True)
    stored.storage.put_bytes(layout.manifest_key(folder), json.dumps(manifest).encode())
    listed = json.loads(stored.cli("list", "--json").stdout)
    assert planted not in [r["backup_id"] for r in listed]
    refused = stored.cli("restore", planted, "--database", "tampered_planted")
    assert refused.returncode == 2 and "rebuild-catalog" in refused.stderr, refused.stderr
    row.saw("not listed; restore of its id exits 2 (not in the catalog)")
