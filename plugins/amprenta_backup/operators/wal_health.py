"""WAL health for ``daily_health``: archiver checks of the PITR cluster, when one is configured."""

from __future__ import annotations

import logging

import psycopg

from amprenta_backup.core.errors import BackupError
from amprenta_backup.core.health import CheckResult, Level
from amprenta_backup.core.models import utcnow
from amprenta_backup.core.settings import BackupConfig, PitrSettings
from amprenta_backup.core.wal.health import check_wal, read_state
from amprenta_backup.hooks.wal import WalArchiveHook

log = logging.getLogger(__name__)


def wal_health_results(config: BackupConfig | None = None) -> list[CheckResult]:
    """The WAL checks of ``BACKUP_PITR_CONN_ID`` now; none when PITR is not configured.

    The archiver's state is live, so these checks are as of now, not a run's logical date.
    """
    if not PitrSettings.configured():
        return []
    try:
        hook = WalArchiveHook(config)
        target = hook.pitr.wal_target
        conn = hook.cluster_conninfo()
    except BackupError as exc:
        return [CheckResult("wal_settings", Level.CRITICAL, str(exc),
                            "fix BACKUP_PITR_CONN_ID / BACKUP_WAL_TARGET")]
    try:
        state = read_state(conn)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [CheckResult("wal_archiver_readable", Level.CRITICAL,
                            f"cannot read pg_stat_archiver on {conn.describe()}: "
                            f"{conn.redact(first)}", "check the server and its connection",
                            target)]
    try:
        return check_wal(state, target, utcnow(), hook.pitr.rpo_seconds, hook.archive)
    except BackupError as exc:
        log.warning("WAL archive not checked: %s", exc)
        return check_wal(state, target, utcnow(), hook.pitr.rpo_seconds) + [CheckResult(
            "wal_in_archive", Level.CRITICAL, f"the WAL archive cannot be read: {exc}",
            "fix the storage settings", target)]
