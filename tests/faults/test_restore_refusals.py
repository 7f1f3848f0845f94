"""Faults at restore time, through the CLI: a filter that matches nothing (a typo), and a
backup folder holding another backup's objects (swapped folders, a planted manifest)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from amprenta_backup.sandbox.compare import assert_databases_equal
from tests.faults.conftest import FaultRow
from tests.support.cli import CliRunner, conn_uri


@pytest.fixture
def other_db(pg_cluster: ClusterBase, fresh_db: Callable[[str], str]) -> str:
    name = fresh_db("other")
    pg_cluster.execute("CREATE TABLE notes (id int PRIMARY KEY, body text);"
                       "INSERT INTO notes SELECT g, 'other' FROM generate_series(1, 7) g", name)
    return name


@pytest.fixture
def cli(source_conn: PgConnInfo, other_db: str, catalog: Catalog, tmp_path: Path) -> CliRunner:
    return CliRunner({"AIRFLOW_CONN_PG_SOURCE": conn_uri(source_conn),
                      "AIRFLOW_CONN_PG_OTHER": conn_uri(source_conn, other_db),
                      "AIRFLOW_CONN_BACKUP_CATALOG": conn_uri(catalog.conn),
                      "BACKUP_STORAGE_TYPE": "local", "BACKUP_LOCAL_PATH": str(tmp_path / "b")})


@pytest.fixture
def restored(pg_cluster: ClusterBase) -> Iterator[str]:
    """A database name to restore into; dropped after the test."""
    name = "faults_restored"
    pg_cluster.drop_database(name)
    yield name
    pg_cluster.drop_database(name)


def _backup(cli: CliRunner, target: str) -> dict[str, str]:
    done = cli("backup", target, "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.faults("restore filter matching nothing (--table documnts, --schema ap)")
def test_a_filter_that_matches_nothing_is_refused_before_anything_is_created(
    cli: CliRunner, pg_cluster: ClusterBase, restored: str, row: FaultRow,
) -> None:
    backup = _backup(cli, "pg_source")
    typo = cli("restore", backup["backup_id"], "--database", restored, "--table", "documnts")
    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert "no table 'documnts'; close matches: app.documents" in typo.stderr, typo.stderr
    assert "Nothing was restored" in typo.stderr and "Traceback" not in typo.stderr
    # the same words serve the CLI's --table and the restore form's field
    assert re.search(r"tables\), a table without its schema \((\w+), not \w+\.\1\)\n$",
                     typo.stderr), typo.stderr
    schema = cli("restore", backup["backup_id"], "--database", restored, "--schema", "ap",
                 "--table", "documents")
    assert schema.returncode == 2 and "no schema 'ap'; close matches: app" in schema.stderr
    assert not pg_cluster.database_exists(restored)
    row.saw("exit 2 naming the close matches, no database created")
    good = cli("restore", backup["backup_id"], "--database", restored, "--table", "documents")
    assert good.returncode == 0, good.stderr
    assert pg_cluster.query("SELECT count(*) FROM app.documents", restored)[0][0] == \
        backup["table_counts"]["app.documents"]  # type: ignore[index]
    row.saw("the corrected filter restores the table")


def _swap(storage: LocalStorage, victim: dict[str, str], intruder: dict[str, str]) -> None:
    """Put the intruder's dump and manifest, verbatim, in the victim's folder."""
    folder = victim["key"].rsplit("/", 1)[0]
    for name in ("manifest.json", intruder["key"].rsplit("/", 1)[1]):
        source = intruder["key"].rsplit("/", 1)[0] + "/" + name
        storage.put_bytes(f"{folder}/{name}", storage.get_bytes(source))


def _plant(storage: LocalStorage, victim: dict[str, str], intruder: dict[str, str]) -> None:
    """The intruder's dump with a manifest that claims the victim's id, target and key."""
    _swap(storage, victim, intruder)
    folder = victim["key"].rsplit("/", 1)[0]
    manifest = json.loads(storage.get_bytes(f"{folder}/manifest.json"))
    manifest.update(backup_id=victim["backup_id"], target=victim["target"], key=victim["key"])
    storage.put_bytes(f"{folder}/manifest.json", json.dumps(manifest).encode())


@pytest.mark.faults("backup folder holding another backup's objects ({damage})")
@pytest.mark.parametrize("damage", ["swapped", "planted"])
def test_a_folder_holding_another_backup_is_refused_and_marked_corrupt(
    cli: CliRunner, catalog: Catalog, pg_cluster: ClusterBase, restored: str, tmp_path: Path,
    damage: str, row: FaultRow,
) -> None:
    older = _backup(cli, "pg_source")
    intruder = _backup(cli, "pg_other")
    newest = _backup(cli, "pg_source")
    (_swap if damage == "swapped" else _plant)(LocalStorage(tmp_path / "b"), newest, intruder)

    refused = cli("restore", "latest", "--from", "pg_source", "--database", restored)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert f"backup {newest['backup_id']} of target pg_source is CORRUPT: the manifest" in \
        refused.stderr and "does not match the catalog record" in refused.stderr
    assert ("backup id" if damage == "swapped" else "sha256") in refused.stderr
    assert not pg_cluster.database_exists(restored)
    row.saw("exit 3 naming the mismatch, nothing restored")
    record = catalog.get(newest["backup_id"])
    assert record is not None and record.status == Status.CORRUPT
    row.saw("the backup is marked CORRUPT")

    again = cli("restore", "latest", "--from", "pg_source", "--database", restored, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["plan"]["backup_id"] == older["backup_id"]
    assert_databases_equal(pg_cluster, "amprenta", pg_cluster, restored)
    row.saw("latest then restores the older good backup")
