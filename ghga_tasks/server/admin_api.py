"""The server's own admin API under /admin (not part of GHGA's API; see README.md)."""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field

from .config import FILE_ID, MAX_FILE_SIZE, Registration
from .context import file_metadata
from .core import Core
from .errors import ApiError, file_not_registered

log = logging.getLogger("ghga_tasks.server.admin")
router = APIRouter()


class NewFile(BaseModel):
    file_id: str = Field(pattern=FILE_ID.pattern)
    size: int = Field(ge=0, le=MAX_FILE_SIZE)
    sha256: Optional[str] = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    file_name: Optional[str] = Field(default=None, min_length=1, max_length=1024)


def _core(request: Request) -> Core:
    return request.app.state.core


@router.post("/files", status_code=201)
def register(body: NewFile, request: Request, response: Response) -> dict:
    row, created = _core(request).register(
        Registration(body.file_id, body.size, body.sha256, body.file_name)
    )
    if not created:
        response.status_code = 200
    return file_metadata(row)


@router.get("/files")
def list_files(request: Request) -> list:
    return [file_metadata(row) for row in _core(request).db.list_files()]


@router.get("/files/{file_id}")
def file_details(file_id: str, request: Request) -> dict:
    details = _core(request).file_details(file_id)
    if details is None:
        raise file_not_registered(file_id)
    return details


@router.delete("/files/{file_id}", status_code=204, response_class=Response)
def delete_file(file_id: str, request: Request) -> Response:
    _core(request).delete(file_id)
    return Response(status_code=204)


@router.get("/config")
def get_config(request: Request) -> dict:
    return _core(request).knobs.get().as_dict()


@router.patch("/config")
def patch_config(request: Request, body: Dict[str, Any] = Body(...)) -> dict:
    try:
        knobs = _core(request).knobs.update(body).as_dict()
    except ValueError as exc:
        raise ApiError(422, "invalidConfig", str(exc), {"config": body}) from None
    log.info("config changed: %s", body)
    return knobs


@router.get("/s3")
def s3_info(request: Request) -> dict:
    storage = _core(request).storage
    s3 = storage.settings
    return {
        "endpoint": s3.endpoint,
        "access_key": s3.access_key,
        "secret_key": s3.secret_key,
        "region": s3.region,
        "buckets": dict(storage.buckets),
    }
