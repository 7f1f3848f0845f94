"""The RTO forecast of daily_health, on a synthetic history in a real catalog: backups that
grow 0.1 GiB a day for 90 days, and drills whose restore time grows with the size."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.catalog import Catalog
from amprenta_backup.core.drill import record as drill_record
from amprenta_backup.core.drill.forecast import RtoForecast
from amprenta_backup.core.drill.record import DrillRecord
from amprenta_backup.core.health import HealthChecker, Level, RtoObjective
from amprenta_backup.core.models import BackupRecord, Status, utcnow
from amprenta_backup.core.pgtools import PgConnInfo
from amprenta_backup.core.settings import BackupTarget
from amprenta_backup.core.storage import LocalStorage

GIB = 2**30
TARGET = "pg_app"


def _history(catalog: Catalog, now: datetime, drills: int = 4) -> None:
    """One backup a day for 90 days, 10 GiB growing to 18.9 GiB; a drill every 30 days whose
    restore took 60 s + 100 s per GiB."""
    for day in range(90):
        started = now - timedelta(days=89 - day, hours=1)
        size = int((10 + 0.1 * day) * GIB)
        backup_id = layout.make_backup_id(started)
        catalog.save(BackupRecord(backup_id=backup_id, target=TARGET, status=Status.COMPLETED,
                                  location="file:///x", started_at=started,
                                  completed_at=started + timedelta(minutes=5),
                                  stored_bytes=size // 3, raw_bytes=size))
        if day % 29 == 0 and day // 29 < drills:
            drill_record.save(catalog, DrillRecord(
                drill_id=f"d{day}", target=TARGET, strategy="latest", window_end=started,
                drill_conn_id="pg_drill", scratch_database="drill", rto_objective_seconds=1,
                started_at=started + timedelta(hours=1), backup_id=backup_id, passed=True,
                restore_seconds=60 + 100 * size / GIB))


def _results(catalog: Catalog, objective: float, now: datetime) -> list[tuple[str, Level, str]]:
    checker = HealthChecker(LocalStorage("/nonexistent"), catalog, [BackupTarget(TARGET)],
                            lambda _t: PgConnInfo(host="localhost"),
                            rto=RtoObjective(objective, 90))
    return [(r.name, r.status, r.detail) for r in checker.check_rto_forecast(now)]


def test_a_history_that_crosses_the_objective_within_90_days_warns(catalog: Catalog) -> None:
    now = utcnow()
    _history(catalog, now)
    [(name, level, detail)] = _results(catalog, 2500, now)
    # 2500 s is reached at 24.4 GiB: 18.9 GiB now + 0.1 GiB/day -> in about 55 days
    assert (name, level) == ("rto_forecast", Level.WARNING)
    assert detail.startswith("restore of pg_app is projected to reach the 2500 s RTO objective "
                             "in about 55 days (now 1950 s, 2850 s in 90 days; fit over 4 "
                             "drills: 60 s + 100 s per GiB; 18.90 GiB now, growing 102.4 "
                             "MiB/day)"), detail


def test_a_history_well_within_the_objective_is_ok(catalog: Catalog) -> None:
    now = utcnow()
    _history(catalog, now)
    [(name, level, detail)] = _results(catalog, 14400, now)
    assert (name, level) == ("rto_forecast", Level.OK)
    assert detail.startswith("restore projected at 2850 s in 90 days, within the 14400 s "
                             "objective"), detail


def test_an_objective_already_missed_says_already(catalog: Catalog) -> None:
    now = utcnow()
    _history(catalog, now)
    [(_, level, detail)] = _results(catalog, 1500, now)
    assert level == Level.WARNING and "objective already (now 1950 s" in detail


def test_too_few_drills_give_no_forecast(catalog: Catalog) -> None:
    now = utcnow()
    _history(catalog, now, drills=2)
    assert _results(catalog, 2500, now) == []


@pytest.mark.parametrize(("growth", "expected"), [(0.0, None), (-5.0, None)])
def test_a_database_that_does_not_grow_never_crosses(growth: float, expected: None) -> None:
    f = RtoForecast(TARGET, 5, 60, 100, 10 * GIB, growth, 90, 14400)
    assert f.days_to_objective is expected and not f.crosses
