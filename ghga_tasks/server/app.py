"""The FastAPI application: one port, four parts.

/upload (Upload Controller API), /ga4gh/drs/v1 (DRS3 API), /admin, /health.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
from typing import Optional

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from . import admin_api, drs_api, upload_api
from .config import Knobs
from .core import Core
from .errors import ApiError
from .storage import error_code

log = logging.getLogger("ghga_tasks.server.app")

UPLOAD_PREFIX = "/upload"
DRS_PREFIX = "/ga4gh/drs/v1"
ADMIN_PREFIX = "/admin"


def _faulty_path(path: str) -> bool:
    """Requests the error-rate and api-delay knobs and the token apply to: the two GHGA
    APIs, not health or the DRS service-info."""
    return (
        (path.startswith(UPLOAD_PREFIX + "/") or path.startswith(DRS_PREFIX + "/"))
        and not path.endswith("/health")
        and path != DRS_PREFIX + "/service-info"
    )


class FaultsAndToken:
    """Injected faults (the error-rate knob), a far-away API (the api-delay knob: every
    answer held back that long, without holding up the others) and the bearer token,
    before any route.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware (`@app.middleware`) runs every
    request through an extra task and stream, a cost each part URL of an upload pays."""

    def __init__(self, app, core: Core):
        self.app = app
        self.core = core
        self.chance = random.Random()
        self.token = core.settings.auth_token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and _faulty_path(scope["path"]):
            knobs = self.core.knobs.get()
            if knobs.api_delay:
                await asyncio.sleep(knobs.api_delay)
            refusal = self._refusal(knobs, Headers(scope=scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, knobs: Knobs, headers: Headers) -> Optional[JSONResponse]:
        if knobs.error_rate and self.chance.random() < knobs.error_rate:
            status = self.chance.choice((503, 429))
            exception_id = "serviceUnavailable" if status == 503 else "tooManyRequests"
            return JSONResponse(
                {
                    "exception_id": exception_id,
                    "description": "Injected fault (error_rate); try again later.",
                    "data": {},
                },
                status_code=status,
                headers={"Retry-After": str(knobs.retry_after)},
            )
        if self.token is not None:
            sent = headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {self.token}".encode()):
                return JSONResponse(
                    {
                        "exception_id": "noFileAccess",
                        "description": "Missing or wrong bearer token.",
                        "data": {},
                    },
                    status_code=403,
                )
        return None


def create_app(core: Core) -> FastAPI:
    app = FastAPI(
        title="ghga-tasks reference server",
        description="Upload Controller API, DRS3 API and admin API in one process.",
    )
    app.state.core = core

    app.add_middleware(FaultsAndToken, core=core)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        # FastAPI's {"detail": [...]} plus the project's error fields.
        errors = jsonable_encoder(exc.errors())
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(
            {
                "detail": errors,
                "exception_id": "invalidRequest",
                "description": f"Invalid request: {where}: {first.get('msg', 'invalid')}",
                "data": {},
            },
            status_code=422,
        )

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    async def storage_error(request: Request, exc: Exception):
        # Never log the exception text: it may carry a URL.
        log.warning(
            "object storage error on %s %s: %s", request.method, request.url.path, error_code(exc)
        )
        retry = str(core.knobs.get().retry_after)
        return JSONResponse(
            {
                "exception_id": "storageUnavailable",
                "description": f"The object storage failed ({error_code(exc)}); try again later.",
                "data": {},
            },
            status_code=503,
            headers={"Retry-After": retry},
        )

    @app.get("/health")
    def health() -> dict:
        return {"status": "OK"}

    app.include_router(upload_api.router, prefix=UPLOAD_PREFIX, tags=["upload"])
    app.include_router(drs_api.router, prefix=DRS_PREFIX, tags=["drs"])
    app.include_router(admin_api.router, prefix=ADMIN_PREFIX, tags=["admin"])
    return app
