"""DRS3 API (PROTOCOL.md §2), mounted under /ga4gh/drs/v1."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from . import outbox

router = APIRouter()


@router.get("/health")
def health() -> dict:
    return {"status": "OK"}


@router.get("/objects/{object_id}")
def get_object(object_id: str, request: Request) -> Response:
    core = request.app.state.core
    obj = outbox.drs_object(core, object_id, request.url.netloc)
    if obj is None:
        return Response(status_code=202,
                        headers={"Retry-After": str(core.knobs.get().retry_after)})
    return JSONResponse(obj)
