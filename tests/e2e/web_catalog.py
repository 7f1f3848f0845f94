"""A catalog for the dashboard tests, filled with real backups, a verify, a drill, a failed
backup and health results (real pg_dump into the deployment's moto bucket)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from amprenta_backup.core import layout
from amprenta_backup.core.backup.logical import BackupRunner
from amprenta_backup.core.drill.record import DrillRecord
from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.models import RunContext
from amprenta_backup.core.settings import BackupTarget, DrillSettings
from amprenta_backup.core.verify import VerifyResult
from tests.integration.conftest import conninfo
from tests.support.backups import SETTINGS, engine_for

if TYPE_CHECKING:
    from tests.e2e.conftest import E2ESetup

BROKEN = "pg_broken"  # a target whose database does not exist: its backup fails


@dataclass(frozen=True)
class WebCatalog:
    """What the fill made, for the tests to assert on."""

    verified: VerifyResult
    drill: DrillRecord
    failed_backup_id: str
    failed_run: RunContext


def fill_web_catalog(e2e: E2ESetup) -> WebCatalog:
    from tests.e2e.conftest import SOURCE_DB, TARGET

    source = conninfo(e2e.cluster, SOURCE_DB)
    broken = conninfo(e2e.cluster, "e2e_no_such_database")
    engine = engine_for(e2e.storage, e2e.catalog, {TARGET: source, BROKEN: broken})
    runner = BackupRunner(e2e.storage, e2e.catalog, SETTINGS)
    run = RunContext(dag_id="daily_backup", run_id="manual__web_e2e",
                     logical_date=datetime.now(UTC))
    made = runner.run(TARGET, source, run, layout.make_backup_id(datetime.now(UTC), "web/1"))
    verified = engine.verify(made.backup_id, RunContext(dag_id="weekly_verify",
                                                        run_id="manual__web_verify"))
    drill = engine.drills(DrillSettings(rto_seconds=600)).run(
        BackupTarget(TARGET), RunContext(dag_id="monthly_restore_drill",
                                         run_id="manual__web_drill",
                                         logical_date=datetime.now(UTC)))
    failed_run = RunContext(dag_id="daily_backup", run_id="manual__web_failed",
                            logical_date=datetime.now(UTC))
    failed_id = layout.make_backup_id(datetime.now(UTC), "web/failed")
    with pytest.raises(BackupError):
        runner.run(BROKEN, broken, failed_run, failed_id)
    engine.save_health(engine.health(), e2e.catalog.now(), run_id="manual__web_health")
    return WebCatalog(verified=verified, drill=drill, failed_backup_id=failed_id,
                      failed_run=failed_run)
