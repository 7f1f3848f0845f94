"""Names and defaults shared across the engine."""

from __future__ import annotations

import os

DEFAULT_BUCKET = "amprenta-backups"
DEFAULT_PREFIX = "database/"
DEFAULT_LOCAL_PATH = "/var/backups/amprenta"
DEFAULT_RETENTION_DAYS = 365
MIN_RETENTION_DAYS = 7
# zstd level 1: on the benchmark's realistic data 30 % faster than level 3 and 6 % smaller
# (bench/README.md); still smaller than pg_dump's own gzip. Set 3+ to trade CPU for size.
DEFAULT_COMPRESSION_LEVEL = 1
# when daily_backup runs (cron, UTC): its DAG's schedule, and what the dashboard holds the
# newest backup of each target to (with BACKUP_DEADLINE_HOURS)
DAILY_RUN_CRON = "0 1 * * *"
# the PostgreSQL server majors supported and tested (docs/postgres-versions.md): the Dockerfile
# installs the client and server tools of each, tests/integration/backup/test_majors.py runs each
SUPPORTED_MAJORS = (14, 15, 16, 17, 18)
# the WAL archiver's default pushes at once: one more than the cores (a push waiting on storage
# leaves its core to another), at most this many: on a big database host a backlog drains
# at 4 x 20-35 segments/s while the server keeps the other cores (pgBackRest's default is 1)
MAX_AUTO_WAL_PARALLEL = 4
DEFAULT_DUMP_MIN_TABLE_MB = 16  # a table smaller than this is not worth a dump stream of its own

MANIFEST_NAME = "manifest.json"
DUMP_NAME = "dump.pgc"
GLOBALS_ROOT = "_globals"
GLOBALS_NAME = "globals.sql"
GLOBALS_INFO_NAME = "globals.json"
MANIFEST_VERSION = 3  # 2: globals and database properties; 3: client-side encryption
PARALLEL_MANIFEST_VERSION = 4  # 4: a parallel dump lists its objects in ``parts``

PART_SIZE = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 2
READ_CHUNK = 1024 * 1024
ZSTD_JOB_SIZE = 1024 * 1024
HEARTBEAT_HELP = ("A RUNNING backup whose heartbeat is older is abandoned (its process died): "
                  "health warns, the next run of the target and `weekly_cleanup` record it "
                  "FAILED and remove its partial objects")
WAL_TARGET_HELP = ("the name this cluster's WAL and base backups are stored under; the same on "
                   "the database host and on Airflow, and not a `BACKUP_TARGETS` name")
# the format of a base backup's manifest: raw_bytes are the bytes of the files its
# backup_manifest lists, not the tar's length (core/tartally.py)
PHYSICAL_TAR_FORMAT = "pg_basebackup-tar"


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one, as
    under a container's cpuset; else every core)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1
