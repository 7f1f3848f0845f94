"""Which backup of each target a recovery (or a DR drill) restores: the newest, or the one
named in ``backup_ids``; every wrong name refused before anything is planned."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from amprenta_backup.core.errors import ConfigError, PreconditionError
from amprenta_backup.core.models import Status
from amprenta_backup.core.recovery.index import StorageCatalog
from amprenta_backup.core.recovery.plan import RecoveryRequest, choose_backups
from amprenta_backup.core.storage import LocalStorage
from tests.unit.recovery.test_index import _manifest, _store


@pytest.fixture
def index(tmp_path: Path) -> tuple[StorageCatalog, dict[str, str]]:
    """pg_main with an old and a new backup, pg_crm with one; ids by name."""
    storage = LocalStorage(tmp_path)
    made = {"main_old": _manifest("pg_main", datetime(2026, 11, 1, tzinfo=UTC)),
            "main_new": _manifest("pg_main", datetime(2026, 11, 20, tzinfo=UTC)),
            "crm": _manifest("pg_crm", datetime(2026, 11, 10, tzinfo=UTC))}
    for manifest in made.values():
        _store(storage, manifest)
    return (StorageCatalog(storage, "database", "test"),
            {name: m.backup_id for name, m in made.items()})


def _chosen(index: StorageCatalog, **request: object) -> dict[str, str]:
    chosen, _ = choose_backups(index, RecoveryRequest(server_conn_id="pg_new", **request))  # type: ignore[arg-type]
    return {r.target: r.backup_id for r in chosen}


def test_a_named_backup_replaces_its_targets_newest_and_the_others_get_theirs(
    index: tuple[StorageCatalog, dict[str, str]],
) -> None:
    catalog, ids = index
    assert _chosen(catalog) == {"pg_main": ids["main_new"], "pg_crm": ids["crm"]}
    assert _chosen(catalog, backup_ids=(ids["main_old"],)) == {
        "pg_main": ids["main_old"], "pg_crm": ids["crm"]}
    assert _chosen(catalog, before=datetime(2026, 11, 15, tzinfo=UTC)) == {
        "pg_main": ids["main_old"], "pg_crm": ids["crm"]}  # the newest before that time
    request = RecoveryRequest.from_mapping({"server_conn_id": "pg_new",
                                            "backup_ids": [ids["main_old"]]})
    assert request.backup_ids == (ids["main_old"],)  # the DAG form's list


def test_wrong_names_are_refused_saying_which_and_why(
    index: tuple[StorageCatalog, dict[str, str]],
) -> None:
    catalog, ids = index
    absent = "20261102T000000Z-00000000"
    with pytest.raises(PreconditionError, match=f"backup {absent} is not in the manifests"):
        _chosen(catalog, backup_ids=(absent,))
    with pytest.raises(PreconditionError, match="are both of target pg_main; name one per"):
        _chosen(catalog, backup_ids=(ids["main_old"], ids["main_new"]))
    with pytest.raises(PreconditionError, match=r"of target pg_main, which is not among the "
                                                r"targets given \(pg_crm\)"):
        _chosen(catalog, targets=("pg_crm",), backup_ids=(ids["main_old"],))
    with pytest.raises(ConfigError, match="'yesterday' is malformed"):
        RecoveryRequest(server_conn_id="pg_new", backup_ids=("yesterday",))
    with pytest.raises(ConfigError, match="backup_ids must be a list"):
        RecoveryRequest.from_mapping({"server_conn_id": "pg_new", "backup_ids": ids["crm"]})


def test_a_verified_backup_comes_before_a_newer_completed_one(
    index: tuple[StorageCatalog, dict[str, str]],
) -> None:
    catalog, ids = index
    statuses = {ids["main_old"]: Status.VERIFIED, ids["crm"]: Status.FAILED}
    for record in catalog.records:  # what the catalog database would hold after weekly_verify
        record.status = statuses.get(record.backup_id, record.status)
    assert _chosen(catalog) == {"pg_main": ids["main_old"]}  # pg_crm has nothing restorable
    with pytest.raises(PreconditionError, match=f"backup {ids['crm']} is a failed logical"):
        _chosen(catalog, backup_ids=(ids["crm"],))
