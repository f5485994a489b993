"""API errors: `{"exception_id", "description", "data"}` with an HTTP status."""

from __future__ import annotations

from typing import Any, Dict, Optional


class ApiError(Exception):
    """An error answer of the Upload, DRS or admin API."""

    def __init__(
        self,
        status: int,
        exception_id: str,
        description: str,
        data: Optional[Dict[str, Any]] = None,
        headers: Optional[Dict[str, str]] = None,
    ):
        super().__init__(description)
        self.status = status
        self.exception_id = exception_id
        self.description = description
        self.data = data or {}
        self.headers = headers

    def body(self) -> Dict[str, Any]:
        return {
            "exception_id": self.exception_id,
            "description": self.description,
            "data": self.data,
        }


def file_not_registered(file_id: str, status: int = 404) -> ApiError:
    return ApiError(
        status,
        "fileNotRegistered",
        f"The file {file_id!r} is not registered.",
        {"file_id": file_id},
    )


def no_such_upload(upload_id: str) -> ApiError:
    return ApiError(
        404, "noSuchUpload", f"There is no upload attempt {upload_id!r}.", {"upload_id": upload_id}
    )


def upload_not_pending(upload_id: str, status: str) -> ApiError:
    return ApiError(
        400,
        "uploadNotPending",
        f"The upload attempt {upload_id!r} is {status}, not pending.",
        {"upload_id": upload_id, "current_upload_status": status},
    )


def upload_status_change(upload_id: str, reason: str) -> ApiError:
    return ApiError(
        400,
        "uploadStatusChange",
        f"Completing upload attempt {upload_id!r} failed: {reason}",
        {"upload_id": upload_id, "reason": reason},
    )


def no_such_object(object_id: str) -> ApiError:
    return ApiError(
        404, "noSuchObject", f"There is no DRS object {object_id!r}.", {"object_id": object_id}
    )
