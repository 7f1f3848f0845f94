"""The JSON API: backups of the catalog, read through the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query

from amprenta_backup.web.deps import get_engine

if TYPE_CHECKING:
    from amprenta_backup.core.engine import BackupEngine

router = APIRouter(tags=["backups"])
EngineDep = Annotated["BackupEngine", Depends(get_engine)]


@router.get("/backups")
def list_backups(engine: EngineDep, target: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    """The newest backup records, newest first."""
    records = engine.list_backups(limit=limit, target=target)
    return {"backups": [r.to_dict() for r in records]}
