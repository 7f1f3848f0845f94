"""The JSON API: backups, verifications, drills, health, the spec's metrics and the page's
overview, read from the catalog through the engine (``engine.dashboard()``)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from amprenta_backup.web.deps import EngineDep


class PlainJSON(JSONResponse):
    """JSON of plain dicts and lists straight from ``json.dumps``: the figures are JSON types
    already, and FastAPI's ``jsonable_encoder`` walk costs more than the catalog's SQL on an
    overview of thousands of points."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"),
                          default=_plain).encode()


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


router = APIRouter(tags=["backups"], default_response_class=PlainJSON)
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many, newest first")]
Days = Annotated[int, Query(ge=1, le=3650, description="window in days, ending now")]
Target = Annotated[str | None, Query(max_length=200, description="only this target")]
METRICS = {"success-rate": 30, "size-duration": 7, "storage-trend": 30}


@router.get("/backups")
def list_backups(engine: EngineDep, target: Target = None, limit: Limit = 50,
                 ) -> PlainJSON:
    """The newest backup records, newest first."""
    records = engine.list_backups(limit=limit, target=target)
    return PlainJSON({"backups": [r.to_dict() for r in records]})


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
                       ) -> PlainJSON:
    """The newest verifications (weekly_verify, ``verify``), newest first."""
    return PlainJSON({"verifications": engine.dashboard().verifications(limit, target)})


@router.get("/drills")
def list_drills(engine: EngineDep, target: Target = None, limit: Limit = 50) -> PlainJSON:
    """The newest restore drills with their RTO against the objective, newest first."""
    return PlainJSON({"drills": engine.dashboard().drills(limit, target)})


@router.get("/health")
def health(engine: EngineDep) -> PlainJSON:
    """The latest daily_health results (worst first), each target's state, open problems."""
    board = engine.dashboard()
    with board.session():
        targets, checks = board.targets(), board.health()
        answer = {"checks": checks, "targets": targets,
                  "problems": board.problems(targets, health=checks)}
    return PlainJSON(answer)


@router.get("/metrics/{name}")
def metric(engine: EngineDep, name: Literal["success-rate", "size-duration", "storage-trend"],
           days: Annotated[int | None, Query(ge=1, le=3650)] = None,
           target: Target = None) -> PlainJSON:
    """One of the spec's three queries (default windows 30, 7 and 30 days)."""
    return PlainJSON(engine.metric(name, days or METRICS[name], target))


@router.get("/overview")
def overview(engine: EngineDep, days: Days = 30) -> PlainJSON:
    """Everything the dashboard page draws, measured at one instant."""
    return PlainJSON(engine.dashboard().overview(days))
