"""Project exports: the list, and the download of one export's ZIP streamed from storage."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from amprenta_backup.core.errors import ConfigError, PreconditionError
from amprenta_backup.web.deps import EngineDep

router = APIRouter(tags=["exports"])
SHA256_HEADER = "X-Checksum-SHA256"
_CHUNK = 1 << 20


@router.get("/exports")
def list_exports(engine: EngineDep,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    """The newest project exports, newest first."""
    return {"exports": [r.to_dict() for r in engine.project_exports().list(limit)]}


def _chunks(reader: BinaryIO) -> Iterator[bytes]:
    with reader:
        while chunk := reader.read(_CHUNK):
            yield chunk


@router.get("/export/{export_id}", response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}}}})
def download_export(export_id: str, engine: EngineDep) -> StreamingResponse:
    """The export's ZIP, streamed from backup storage; its sha256 (hex) in
    ``X-Checksum-SHA256`` and ``Repr-Digest``, recorded when it was written."""
    from amprenta_backup.core.export.store import zip_name

    try:
        record, reader = engine.project_exports().open(export_id)
    except ConfigError as exc:  # a malformed id
        raise HTTPException(status_code=400, detail=str(exc)) from None
    except PreconditionError as exc:  # unknown, or not completed
        raise HTTPException(status_code=404, detail=str(exc)) from None
    digest = base64.b64encode(bytes.fromhex(record.sha256 or "")).decode()
    headers = {SHA256_HEADER: record.sha256 or "", "Repr-Digest": f"sha-256=:{digest}:",
               "Content-Disposition": f'attachment; filename="{zip_name(export_id)}"'}
    if record.size_bytes is not None:
        headers["Content-Length"] = str(record.size_bytes)
    return StreamingResponse(_chunks(reader), media_type="application/zip", headers=headers)
