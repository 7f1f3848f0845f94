"""Fault: two backups of the same target with different backup ids started at the same
moment (two schedulers, or a manual run during the scheduled one), as real CLI processes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.models import Status
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.storage import LocalStorage
from amprenta_backup.sandbox.cluster import ClusterBase
from tests.faults.common import assert_counts_match, local_cli, stored_matches_manifest
from tests.faults.conftest import FaultRow


@pytest.mark.faults("different backup ids of one target run at once")
def test_two_ids_at_once_both_complete_and_restore(
    big_source_conn: PgConnInfo, catalog: Catalog, local_storage: LocalStorage,
    pg_cluster: ClusterBase, row: FaultRow,
) -> None:
    cli = local_cli("pg_big", big_source_conn, catalog, local_storage.root)
    now = datetime.now(UTC)
    ids = [layout.make_backup_id(now, f"faults/ids-{n}") for n in (1, 2)]
    assert ids[0] != ids[1]
    runs = [cli.start("backup", "pg_big", "--backup-id", backup_id, "--json")
            for backup_id in ids]
    outcomes = [(proc.wait(timeout=300), *proc.communicate()) for proc in runs]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    row.saw("both exit 0")
    manifests = [json.loads(out) for _, out, _ in outcomes]
    records = {r.backup_id: r for r in catalog.find(target="pg_big")}
    for backup_id, manifest in zip(ids, manifests, strict=True):
        assert records[backup_id].status == Status.COMPLETED
        assert manifest["backup_id"] == backup_id
        stored_matches_manifest(local_storage, manifest)
    assert manifests[0]["key"] != manifests[1]["key"]
    row.saw("both records COMPLETED, each manifest matches its own stored bytes")

    for n, (backup_id, manifest) in enumerate(zip(ids, manifests, strict=True)):
        database = f"faults_ids_{n}"
        restored = cli("restore", backup_id, "--database", database, timeout=600)
        try:
            assert restored.returncode == 0, restored.stderr
            assert "row counts match the manifest" in restored.stdout, restored.stdout
            assert_counts_match(pg_cluster, database, manifest["table_counts"])
        finally:
            pg_cluster.drop_database(database)
    row.saw("each restores with the manifest's row counts")
