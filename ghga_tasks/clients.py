"""HTTP clients for the Upload Controller API and the DRS3 API (requests; no luigi).

Every call has a timeout, a deadline for its whole answer and bounded retries
(ghga_tasks.api_calls). Every answer is checked against the protocol where it is parsed and
handed inward as a typed value (ghga_tasks.answers).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, List, Optional, Tuple
from urllib.parse import quote

import requests

from . import __version__
from .answers import (
    ATTEMPT_KEYS,
    AnswerCheck,
    DrsObject,
    UploadAttempt,
    drs_object,
    file_metadata,
    signed_url,
    upload_attempt,
)
from .api_calls import (
    MAX_REDIRECTS,
    RETRY_STATUSES,
    ApiSession,
    CallDeadline,
    RedirectRefused,
    check_api_url,
    error_details,
    parse_retry_after,
    reason_of,
    redact,
    redact_urls,
)
from .errors import (
    ApiRefused,
    ConfigError,
    GhgaError,
    LockedError,
    NotAllowed,
    PartsNotStored,
    TransientError,
    WaitTimeout,
)
from .settings import Settings

log = logging.getLogger("ghga_tasks")


class ApiClient:
    """Shared request logic: session, auth, TLS, timeouts, retries, error mapping."""

    def __init__(
        self, api_url: str, settings: Settings, sleep: Callable[[float], None] = time.sleep
    ):
        self.base = check_api_url(api_url)
        self.settings = settings
        self.sleep = sleep
        self.session = ApiSession()
        self.session.headers["User-Agent"] = f"ghga-tasks/{__version__}"
        if settings.token:
            self.session.headers["Authorization"] = f"Bearer {settings.token}"
        # passed with every request: requests lets REQUESTS_CA_BUNDLE beat session.verify
        self.verify = settings.ca_bundle or True

    def close(self) -> None:
        self.session.close()

    def request(
        self, method: str, path: str, body: Any = None, read_timeout: Optional[float] = None
    ) -> requests.Response:
        """Send with retries on connection errors and 429/5xx; return the final response."""
        url = self.base + path
        attempts = self.settings.retries + 1
        read_timeout = read_timeout or self.settings.timeout
        problem = ""
        for attempt in range(attempts):
            deadline = CallDeadline(self.settings.timeout + read_timeout)
            try:
                with deadline:
                    resp = self.session.request(
                        method,
                        url,
                        json=body,
                        verify=self.verify,
                        timeout=(self.settings.timeout, read_timeout),
                    )
            except requests.RequestException as exc:
                problem = self._failed_call(exc, url, deadline)
                wait = None
            else:
                if resp.status_code not in RETRY_STATUSES:
                    return resp
                problem = f"HTTP {resp.status_code}"
                wait = resp.headers.get("Retry-After")
            if attempt + 1 < attempts:
                backoff = min(0.5 * 2**attempt, 30.0)
                delay = (
                    parse_retry_after(wait, self.settings.retry_after_cap, default=backoff)
                    if wait is not None
                    else backoff
                )
                # a user waiting on a silent terminal cannot tell a retry from a hang
                log.warning(
                    "API %s %s: %s; retry %d of %d in %.1f s%s",
                    method,
                    redact(url),
                    problem,
                    attempt + 1,
                    attempts - 1,
                    delay,
                    " (Retry-After)" if wait is not None else "",
                )
                self.sleep(delay)
        raise TransientError(
            f"cannot reach the API at {redact(self.base)}: {problem} (after {attempts} attempts)"
        )

    def _failed_call(self, exc: requests.RequestException, url: str, deadline: CallDeadline) -> str:
        """Why a call failed when trying again may help; raises when it cannot."""
        if deadline.expired:
            return f"no complete answer within {deadline.seconds:g} s"
        if isinstance(exc, RedirectRefused):
            raise ApiRefused(
                f"the API at {redact(self.base)} redirected to a URL that is not "
                f"http(s): {exc.target}"
            ) from None
        if isinstance(exc, requests.TooManyRedirects):
            raise ApiRefused(
                f"the API at {redact(self.base)} redirected more than "
                f"{MAX_REDIRECTS} times in a row (a redirect loop)"
            ) from None
        if isinstance(exc, requests.exceptions.SSLError):
            raise ConfigError(
                f"TLS verification failed for {redact(url)}: {reason_of(exc)} (see --ca-bundle)"
            ) from None
        if isinstance(
            exc,
            (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError),
        ):
            return reason_of(exc)
        if isinstance(
            exc,
            (
                requests.exceptions.InvalidURL,
                requests.exceptions.InvalidSchema,
                requests.exceptions.MissingSchema,
            ),
        ):
            # the API URL itself was checked: a redirect led here
            raise ApiRefused(
                f"the API at {redact(self.base)} redirected to an unusable URL: {reason_of(exc)}"
            ) from None
        if isinstance(exc, requests.exceptions.ContentDecodingError):
            raise ApiRefused(
                f"the API at {redact(self.base)} sent an answer that cannot be "
                f"decoded: {reason_of(exc)}"
            ) from None
        raise exc

    def fail(self, resp: requests.Response, what: str) -> GhgaError:
        exc_id, description, data = error_details(resp)
        detail = f"{description} [{exc_id}]" if exc_id else description
        message = f"{what}: HTTP {resp.status_code}" + (f": {detail}" if detail else "")
        if resp.status_code in (401, 403):
            return NotAllowed(message)
        if resp.status_code == 409 and exc_id == "uploadInProgress":
            return LockedError(f"{what}: another client is uploading this file ({description})")
        return ApiRefused(message, status=resp.status_code, exception_id=exc_id, data=data)

    def json(self, resp: requests.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            snippet = redact_urls((resp.text or "").strip().replace("\n", " "))[:80]
            raise ApiRefused(
                f"{what}: the API at {redact(self.base)} answered HTTP "
                f"{resp.status_code} with something that is not JSON: {snippet!r}"
            ) from None

    def json_object(self, resp: requests.Response, what: str, keys: Tuple[str, ...]) -> dict:
        data = self.json(resp, what)
        missing = [k for k in keys if not isinstance(data, dict) or k not in data]
        if missing:  # never echo the body: it may hold pre-signed URLs
            raise ApiRefused(
                f"{what}: the API at {redact(self.base)} answered without {', '.join(missing)}"
            )
        return data


def _segment(value: str) -> str:
    return quote(value, safe="")


def _check_attempt(attempt: dict, base: str) -> UploadAttempt:
    return upload_attempt(attempt, AnswerCheck("upload attempt", base))


class UploadClient(ApiClient):
    """The Upload Controller API (PROTOCOL.md § 1)."""

    def get_file(self, file_id: str) -> dict:
        resp = self.request("GET", f"/files/{_segment(file_id)}")
        if resp.status_code != 200:
            raise self.fail(resp, f"file {file_id!r}")
        meta = self.json_object(resp, f"file {file_id!r}", ("file_id", "size"))
        return file_metadata(meta, AnswerCheck(f"file {file_id!r}", self.base))

    def create_upload(self, file_id: str, writer: Optional[str] = None) -> Tuple[dict, bool]:
        """Start an attempt; (attempt, adopted) where adopted means it already existed."""
        body = {"file_id": file_id, **({"writer": writer} if writer else {})}
        resp = self.request("POST", "/uploads", body)
        if resp.status_code == 200:
            return _check_attempt(
                self.json_object(resp, "new upload", ATTEMPT_KEYS), self.base
            ), False
        exc_id, _, data = error_details(resp)
        if resp.status_code == 400 and exc_id == "existingActiveUpload":
            active = data.get("active_upload")
            if isinstance(active, dict):
                return _check_attempt(active, self.base), True
        raise self.fail(resp, f"starting an upload of {file_id!r}")

    def get_upload(self, upload_id: str) -> dict:
        resp = self.request("GET", f"/uploads/{_segment(upload_id)}")
        if resp.status_code != 200:
            raise self.fail(resp, f"upload {upload_id!r}")
        return _check_attempt(
            self.json_object(resp, f"upload {upload_id!r}", ATTEMPT_KEYS), self.base
        )

    def part_url(self, upload_id: str, part_no: int, writer: Optional[str] = None) -> str:
        resp = self.request(
            "POST",
            f"/uploads/{_segment(upload_id)}/parts/{part_no}/signed_urls",
            {"writer": writer} if writer else None,
        )
        if resp.status_code != 200:
            raise self.fail(resp, f"URL for part {part_no}")
        answer = self.json_object(resp, f"URL for part {part_no}", ("url",))
        return signed_url(answer, AnswerCheck(f"URL for part {part_no}", self.base))

    def confirm(
        self, upload_id: str, parts_md5: List[str], sha256: str, writer: Optional[str] = None
    ) -> Optional[str]:
        """PATCH the attempt to uploaded with the verified checksums (PROTOCOL.md § 1).

        None on 204, else the current status from uploadNotPending; partsNotStored raises
        PartsNotStored naming the parts to send again."""
        body = {
            "status": "uploaded",
            "parts_md5": parts_md5,
            "sha256": sha256,
            **({"writer": writer} if writer else {}),
        }
        # completing 10,000 parts takes the server a while: wait longer for this answer
        resp = self.request(
            "PATCH",
            f"/uploads/{_segment(upload_id)}",
            body,
            read_timeout=max(self.settings.timeout, 600.0),
        )
        if resp.status_code in (200, 204):
            return None
        exc_id, _, data = error_details(resp)
        if resp.status_code == 400 and exc_id == "uploadNotPending":
            current = data.get("current_upload_status")
            if current:
                return str(current)
        if resp.status_code == 400 and exc_id == "partsNotStored":
            numbers = data.get("parts")
            if isinstance(numbers, list) and all(isinstance(n, int) for n in numbers):
                raise PartsNotStored(upload_id, numbers)
        raise self.fail(resp, f"confirming upload {upload_id!r}")


class DrsClient(ApiClient):
    """The DRS3 API (PROTOCOL.md § 2)."""

    def get_object(self, object_id: str) -> Tuple[Optional[DrsObject], float]:
        """(DrsObject, 0) when ready, (None, seconds to wait) while it is being staged."""
        resp = self.request("GET", f"/objects/{_segment(object_id)}")
        if resp.status_code == 202:
            return None, parse_retry_after(
                resp.headers.get("Retry-After"), self.settings.retry_after_cap
            )
        if resp.status_code != 200:
            raise self.fail(resp, f"object {object_id!r}")
        obj = self.json_object(resp, f"object {object_id!r}", ("id", "size"))
        return drs_object(obj, AnswerCheck(f"object {object_id!r}", self.base)), 0.0

    def wait_for_object(
        self,
        object_id: str,
        max_wait: Optional[float] = None,
        on_wait: Optional[Callable[[float], None]] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> DrsObject:
        """Ask until 200, sleeping as Retry-After says, within the max_wait deadline."""
        max_wait = self.settings.max_wait if max_wait is None else max_wait
        deadline = clock() + max_wait
        while True:
            obj, wait = self.get_object(object_id)
            if obj is not None:
                return obj
            left = deadline - clock()
            if left <= 0:
                raise WaitTimeout(
                    f"object {object_id!r} was still being staged after "
                    f"{max_wait:g} s (--max-wait); run again to keep waiting"
                )
            wait = min(wait, left)
            if on_wait:
                on_wait(wait)
            self.sleep(wait)
