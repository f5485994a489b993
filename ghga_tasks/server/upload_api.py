"""Upload Controller API (PROTOCOL.md §1), mounted under /upload."""

from __future__ import annotations

from typing import List, Literal, Optional

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from . import uploads
from .context import file_metadata, upload_attempt
from .core import Core
from .errors import file_not_registered

router = APIRouter()


class NewUpload(BaseModel):
    file_id: str
    writer: Optional[str] = Field(None, min_length=1, max_length=200)


class PartUrlRequest(BaseModel):
    writer: Optional[str] = Field(None, min_length=1, max_length=200)


class StatusChange(BaseModel):
    status: Literal["uploaded", "cancelled"]
    parts_md5: Optional[List[str]] = None
    sha256: Optional[str] = None
    writer: Optional[str] = Field(None, min_length=1, max_length=200)


def _core(request: Request) -> Core:
    return request.app.state.core


@router.get("/health")
def health() -> dict:
    return {"status": "OK"}


@router.get("/files/{file_id}")
def get_file(file_id: str, request: Request) -> dict:
    row = _core(request).db.get_file(file_id)
    if row is None:
        raise file_not_registered(file_id)
    return file_metadata(row)


@router.post("/uploads")
def create_upload(body: NewUpload, request: Request) -> dict:
    return upload_attempt(uploads.start(_core(request), body.file_id, body.writer))


@router.get("/uploads/{upload_id}")
def get_upload(upload_id: str, request: Request) -> dict:
    return upload_attempt(uploads.get_attempt(_core(request), upload_id))


@router.post("/uploads/{upload_id}/parts/{part_no}/signed_urls")
def sign_part(
    upload_id: str,
    request: Request,
    part_no: int = Path(..., ge=1, le=10_000),
    body: Optional[PartUrlRequest] = None,
) -> dict:
    writer = body.writer if body is not None else None
    return {"url": uploads.sign_part(_core(request), upload_id, part_no, writer)}


@router.patch("/uploads/{upload_id}", status_code=204, response_class=Response)
def change_status(upload_id: str, body: StatusChange, request: Request) -> Response:
    core = _core(request)
    if body.status == "uploaded":
        uploads.complete(core, upload_id, body.parts_md5, body.sha256, body.writer)
    else:
        uploads.cancel(core, upload_id)
    return Response(status_code=204)
