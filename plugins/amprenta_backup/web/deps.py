"""The engine a request reads the catalog through: built from Airflow's connections."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends

URL_PREFIX = "/api/v1/backup"  # where Airflow's api-server mounts the app
POOL_SIZE = 4  # catalog connections the api-server keeps open (a fresh one costs a fork)

if TYPE_CHECKING:
    from amprenta_backup.core.engine import BackupEngine


@lru_cache(maxsize=1)
def _engine() -> BackupEngine:
    from amprenta_backup.hooks.engine import EngineHook

    return EngineHook(pool_size=POOL_SIZE).engine


def get_engine() -> BackupEngine:
    """The api-server's engine (one per process: ``BACKUP_*`` settings are read once)."""
    return _engine()


# a route's ``engine: EngineDep`` parameter (the name stays a string: the engine's modules
# are imported on the first request, not when Airflow loads the plugin)
EngineDep = Annotated["BackupEngine", Depends(get_engine)]
