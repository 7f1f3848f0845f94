"""Fault: hostile or broken manifests in storage, then ``amprenta-backup rebuild-catalog``.

Each bad manifest is skipped and named with its reason, the good ones are rebuilt, and a
manifest that claims the id of an existing backup never takes over its record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.faults.common import local_cli
from tests.faults.conftest import FaultRow
from tests.support.cli import CliRunner

PREFIX = "database"
HOSTILE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "bigint overflow": (lambda m: m.update(stored_bytes=2**64),
                        "field stored_bytes: Input should be less than or equal to"),
    "wrong type": (lambda m: m.update(raw_bytes="12"), "field raw_bytes: Input should be a "
                   "valid integer"),
    "negative size": (lambda m: m.update(raw_bytes=-5), "field raw_bytes: Input should be "
                      "greater than or equal to 0"),
    "year 9999": (lambda m: m.update(started_at="9999-12-31T00:00:00+00:00"),
                  "started_at 9999-12-31T00:00:00+00:00 is in the future"),
    "sha256 not hex": (lambda m: m.update(sha256="0" * 63 + "z"), "field sha256"),
    "key outside its folder": (lambda m: m.update(key="../../../etc/passwd"), "outside its "
                               "folder"),
}


@pytest.fixture
def cli(source_conn: PgConnInfo, catalog: Catalog, local_storage: LocalStorage) -> CliRunner:
    return local_cli("pg_source", source_conn, catalog, local_storage.root)


def _backup(cli: CliRunner, storage: LocalStorage) -> dict[str, Any]:
    """A CLI backup's manifest as stored (``backup --json`` prints the record's fields too)."""
    done = cli("backup", "pg_source", "--json")
    assert done.returncode == 0, done.stderr
    key = layout.manifest_key(layout.folder_of(json.loads(done.stdout)["key"]))
    return dict(json.loads(storage.get_bytes(key)))


def _plant(storage: LocalStorage, folder: str, manifest: dict[str, Any] | bytes) -> str:
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    storage.put_bytes(f"{folder}/manifest.json", raw)
    return storage.uri(f"{folder}/manifest.json")


def _forged(template: dict[str, Any], n: int, target: str = "pg_source") -> dict[str, Any]:
    """A copy of a real manifest under a new id (and its own dated folder)."""
    backup_id = template["backup_id"][:-8] + f"{n:08x}"
    folder = layout.backup_folder(PREFIX, target, backup_id)
    return {**template, "backup_id": backup_id, "target": target,
            "key": f"{folder}/{template['key'].rsplit('/', 1)[1]}"}


@pytest.mark.faults("hostile manifests for rebuild-catalog")
def test_rebuild_skips_hostile_manifests_rebuilds_the_rest_and_keeps_records(
    cli: CliRunner, catalog: Catalog, local_storage: LocalStorage, pg_cluster: ClusterBase,
    row: FaultRow,
) -> None:
    good, lost = _backup(cli, local_storage), _backup(cli, local_storage)
    assert cli("verify", good["backup_id"]).returncode == 0
    with catalog.cursor() as cur:  # the catalog lost one record: rebuild must bring it back
        cur.execute("DELETE FROM backup_records WHERE id = %s", (lost["backup_id"],))
    expected: dict[str, str] = {}
    for n, (damage, reason) in enumerate(HOSTILE.values(), start=1):
        forged = _forged(good, n)
        damage(forged)
        folder = forged["key"].rsplit("/", 1)[0] if ".." not in forged["key"] else \
            layout.backup_folder(PREFIX, "pg_source", forged["backup_id"])
        expected[_plant(local_storage, folder, forged)] = reason
    deep = _forged(good, 100)
    folder = deep["key"].rsplit("/", 1)[0]
    raw = json.dumps(deep).encode()[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    expected[_plant(local_storage, folder, raw)] = "nested too deeply"
    bad_id = _forged(good, 101)
    bad_folder = bad_id["key"].rsplit("/", 2)[0] + "/not-an-id"
    expected[_plant(local_storage, bad_folder, {**bad_id, "backup_id": "not-an-id"})] = \
        "field backup_id"
    escape = _forged(good, 102)
    expected[_plant(local_storage, escape["key"].rsplit("/", 1)[0],
                    {**escape, "target": "../../../etc"})] = "field target"
    elsewhere = _forged(good, 103)
    expected[_plant(local_storage, elsewhere["key"].rsplit("/", 1)[0],
                    {**elsewhere, "backup_id": _forged(good, 104)["backup_id"]})] = \
        "sits in the folder of"
    hijack = {**good, "target": "pg_evil", "sha256": "0" * 64, "key": layout.backup_folder(
        PREFIX, "pg_evil", good["backup_id"]) + "/dump.pgc.zst"}
    _plant(local_storage, hijack["key"].rsplit("/", 1)[0], hijack)

    done = cli("rebuild-catalog", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    skipped = {s["manifest"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == set(expected), skipped
    for uri, reason in expected.items():
        assert reason in skipped[uri], (uri, skipped[uri])
    row.saw(f"{len(expected)} bad manifests skipped, each named with its reason, exit 1")
    assert report["rebuilt"] == 1 and catalog.get(lost["backup_id"]) is not None
    row.saw("the rest rebuilt (a lost record is back)")
    assert [c["backup_id"] for c in report["conflicts"]] == [good["backup_id"]]
    record = catalog.get(good["backup_id"])
    assert record is not None and record.status == Status.VERIFIED
    assert record.sha256 == good["sha256"] and record.target == "pg_source"
    restored = cli("restore", good["backup_id"], "--database", "faults_rebuilt")
    try:
        assert restored.returncode == 0, restored.stderr
    finally:
        pg_cluster.drop_database("faults_rebuilt")
    row.saw("a manifest claiming an existing id is a conflict: the record is kept and restores")
    assert not Path("/etc/amprenta").exists()
