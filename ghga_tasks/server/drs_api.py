"""DRS3 API (PROTOCOL.md §2), mounted under /ga4gh/drs/v1."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from .. import __version__
from . import outbox

router = APIRouter()

# GA4GH service-info (DRS 1.2): what this service is; no file and no URL in it
SERVICE_TYPE = {"group": "org.ga4gh", "artifact": "drs", "version": "1.2.0"}


@router.get("/health")
def health() -> dict:
    return {"status": "OK"}


@router.get("/service-info")
def service_info(request: Request) -> dict:
    return {
        "id": "ghga-tasks.reference-server.drs",
        "name": "ghga-tasks reference DRS3 server",
        "type": SERVICE_TYPE,
        "description": "GA4GH DRS 1.2 objects with staging (202 + Retry-After) and "
        "pre-signed S3 URLs, as in PROTOCOL.md § 2.",
        "organization": {"name": "ghga-tasks", "url": str(request.base_url).rstrip("/")},
        "version": __version__,
    }


@router.get("/objects/{object_id}")
def get_object(object_id: str, request: Request) -> Response:
    core = request.app.state.core
    obj = outbox.drs_object(core, object_id, request.url.netloc)
    if obj is None:
        return Response(status_code=202, headers={"Retry-After": str(core.knobs.get().retry_after)})
    return JSONResponse(obj)
