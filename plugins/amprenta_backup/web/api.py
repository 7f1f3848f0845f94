"""The JSON API: backups, verifications, drills, health, the spec's metrics and the page's
overview, read from the catalog through the engine (``engine.dashboard()``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from amprenta_backup.web.deps import EngineDep

router = APIRouter(tags=["backups"])
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many, newest first")]
Days = Annotated[int, Query(ge=1, le=3650, description="window in days, ending now")]
Target = Annotated[str | None, Query(max_length=200, description="only this target")]
METRICS = {"success-rate": 30, "size-duration": 7, "storage-trend": 30}


@router.get("/backups")
def list_backups(engine: EngineDep, target: Target = None, limit: Limit = 50,
                 ) -> dict[str, Any]:
    """The newest backup records, newest first."""
    records = engine.list_backups(limit=limit, target=target)
    return {"backups": [r.to_dict() for r in records]}


@router.get("/backups/{backup_id}")
def get_backup(engine: EngineDep, backup_id: str) -> dict[str, Any]:
    """One backup record with its manifest."""
    from amprenta_backup.core.errors import BackupError

    try:
        return engine.get_backup(backup_id).to_dict(manifest=True)
    except BackupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


@router.get("/verifications")
def list_verifications(engine: EngineDep, target: Target = None, limit: Limit = 50,
                       ) -> dict[str, Any]:
    """The newest verifications (weekly_verify, ``verify``), newest first."""
    return {"verifications": engine.dashboard().verifications(limit, target)}


@router.get("/drills")
def list_drills(engine: EngineDep, target: Target = None, limit: Limit = 50) -> dict[str, Any]:
    """The newest restore drills with their RTO against the objective, newest first."""
    return {"drills": engine.dashboard().drills(limit, target)}


@router.get("/health")
def health(engine: EngineDep) -> dict[str, Any]:
    """The latest daily_health results (worst first), each target's state, open problems."""
    board = engine.dashboard()
    targets = board.targets()
    return {"checks": board.health(), "targets": targets, "problems": board.problems(targets)}


@router.get("/metrics/{name}")
def metric(engine: EngineDep, name: Literal["success-rate", "size-duration", "storage-trend"],
           days: Annotated[int | None, Query(ge=1, le=3650)] = None,
           target: Target = None) -> Any:
    """One of the spec's three queries (default windows 30, 7 and 30 days)."""
    return engine.metric(name, days or METRICS[name], target)


@router.get("/overview")
def overview(engine: EngineDep, days: Days = 30) -> dict[str, Any]:
    """Everything the dashboard page draws, measured at one instant."""
    return engine.dashboard().overview(days)
