"""HTTP clients for the Upload Controller API and the DRS3 API (requests; no luigi).

Every call has a timeout and bounded retries; pre-signed URLs are redacted in every message.
"""

from __future__ import annotations

import email.utils
import re
import logging
import time
from datetime import timezone
from typing import Any, Callable, Optional, Tuple
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from . import __version__
from .errors import (ApiRefused, ConfigError, GhgaError, NotAllowed, TransientError, UsageError,
                     WaitTimeout)
from .settings import Settings

log = logging.getLogger("ghga_tasks")

RETRY_STATUSES = {429, 500, 502, 503, 504}
DEFAULT_RETRY_AFTER = 5.0
MIN_RETRY_AFTER = 0.2


def redact(url: str) -> str:
    """Drop the query string (the signature) and any user info from a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def parse_retry_after(value: Optional[str], cap: float, default: float = DEFAULT_RETRY_AFTER,
                      now: Optional[float] = None) -> float:
    """Seconds to wait: integer seconds or an HTTP date; missing/malformed/negative → default."""
    wait = default
    if value is not None and str(value).strip():
        text = str(value).strip()
        try:
            seconds = float(text)
            wait = seconds if seconds >= 0 and seconds == seconds else default
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=timezone.utc)
                base = now if now is not None else time.time()
                wait = max(0.0, when.timestamp() - base)
    return min(max(wait, MIN_RETRY_AFTER), cap)


def error_details(resp: requests.Response) -> Tuple[Optional[str], str, dict]:
    """(exception_id, description, data) from any of the error shapes the protocol allows."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        exc_id = body.get("exception_id") or body.get("exceptionId")
        if exc_id or "description" in body:
            return exc_id, str(body.get("description", "")), body.get("data") or {}
        if "msg" in body:
            return None, str(body["msg"]), {}
        if "detail" in body:
            detail = body["detail"]
            if isinstance(detail, list):
                detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                                   for d in detail)
            return None, str(detail), {}
    text = (resp.text or "").strip().replace("\n", " ")
    return None, text[:200], {}


class ApiClient:
    """Shared request logic: session, auth, TLS, timeouts, retries, error mapping."""

    def __init__(self, api_url: str, settings: Settings,
                 sleep: Callable[[float], None] = time.sleep):
        self.base = api_url.strip().rstrip("/")
        if urlsplit(self.base).scheme not in ("http", "https"):
            raise UsageError(f"API URL must start with http:// or https://: {api_url!r}")
        self.settings = settings
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"ghga-tasks/{__version__}"
        if settings.token:
            self.session.headers["Authorization"] = f"Bearer {settings.token}"
        # passed with every request: requests lets REQUESTS_CA_BUNDLE beat session.verify
        self.verify = settings.ca_bundle or True

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, path: str, body: Any = None,
                read_timeout: Optional[float] = None) -> requests.Response:
        """Send with retries on connection errors and 429/5xx; return the final response."""
        url = self.base + path
        attempts = self.settings.retries + 1
        problem = ""
        for attempt in range(attempts):
            try:
                resp = self.session.request(method, url, json=body, verify=self.verify,
                                            timeout=(self.settings.timeout,
                                                     read_timeout or self.settings.timeout))
            except requests.exceptions.SSLError as exc:
                raise ConfigError(f"TLS verification failed for {redact(url)}: {_reason(exc)}"
                                  " (see --ca-bundle)") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = _reason(exc)
                wait = None
            else:
                if resp.status_code not in RETRY_STATUSES:
                    return resp
                problem = f"HTTP {resp.status_code}"
                wait = resp.headers.get("Retry-After")
            if attempt + 1 < attempts:
                backoff = min(0.5 * 2 ** attempt, 30.0)
                delay = (parse_retry_after(wait, self.settings.retry_after_cap, default=backoff)
                         if wait is not None else backoff)
                log.info("%s %s: %s; retrying in %.1f s", method, redact(url), problem, delay)
                self.sleep(delay)
        raise TransientError(f"cannot reach the API at {redact(self.base)}: {problem} "
                             f"(after {attempts} attempts)")

    def fail(self, resp: requests.Response, what: str) -> GhgaError:
        exc_id, description, data = error_details(resp)
        detail = f"{description} [{exc_id}]" if exc_id else description
        message = f"{what}: HTTP {resp.status_code}" + (f": {detail}" if detail else "")
        if resp.status_code in (401, 403):
            return NotAllowed(message)
        return ApiRefused(message, status=resp.status_code, exception_id=exc_id, data=data)

    def json(self, resp: requests.Response, what: str) -> Any:
        try:
            return resp.json()
        except ValueError:
            snippet = (resp.text or "").strip().replace("\n", " ")[:80]
            raise ApiRefused(f"{what}: the API at {redact(self.base)} answered HTTP "
                             f"{resp.status_code} with something that is not JSON: {snippet!r}") from None

    def json_object(self, resp: requests.Response, what: str, keys: Tuple[str, ...]) -> dict:
        data = self.json(resp, what)
        missing = [k for k in keys if not isinstance(data, dict) or k not in data]
        if missing:  # never echo the body: it may hold pre-signed URLs
            raise ApiRefused(f"{what}: the API at {redact(self.base)} answered without "
                             f"{', '.join(missing)}")
        return data


def _reason(exc: BaseException) -> str:
    text = str(exc)
    # requests puts the whole URL into its messages; keep them free of query strings
    for word in text.split():
        if "?" in word and "://" in word:
            text = text.replace(word, redact(word.strip("'\"(),")))
    if "CERTIFICATE_VERIFY_FAILED" in text:
        match = re.search(r"certificate verify failed: ([^(')\]]+)", text)
        return "certificate verify failed" + (f": {match.group(1).strip()}" if match else "")
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    return text[:200]


def _segment(value: str) -> str:
    return quote(value, safe="")


ATTEMPT_KEYS = ("upload_id", "file_id", "part_size", "status")


def _check_attempt(attempt: dict, base: str) -> dict:
    part_size = attempt.get("part_size")
    if not isinstance(part_size, int) or isinstance(part_size, bool) or part_size < 1:
        raise ApiRefused(f"the API at {redact(base)} sent an invalid part_size {part_size!r}")
    return attempt


class UploadClient(ApiClient):
    """The Upload Controller API (PROTOCOL.md § 1)."""

    def get_file(self, file_id: str) -> dict:
        resp = self.request("GET", f"/files/{_segment(file_id)}")
        if resp.status_code != 200:
            raise self.fail(resp, f"file {file_id!r}")
        meta = self.json_object(resp, f"file {file_id!r}", ("file_id", "size"))
        if not isinstance(meta["size"], int) or isinstance(meta["size"], bool) or meta["size"] < 0:
            raise ApiRefused(f"file {file_id!r}: invalid size {meta['size']!r}")
        return meta

    def create_upload(self, file_id: str) -> Tuple[dict, bool]:
        """Start an attempt; (attempt, adopted) where adopted means it already existed."""
        resp = self.request("POST", "/uploads", {"file_id": file_id})
        if resp.status_code == 200:
            return _check_attempt(self.json_object(resp, "new upload", ATTEMPT_KEYS),
                                  self.base), False
        exc_id, _, data = error_details(resp)
        if resp.status_code == 400 and exc_id == "existingActiveUpload":
            active = data.get("active_upload")
            if isinstance(active, dict) and all(k in active for k in ATTEMPT_KEYS):
                return _check_attempt(active, self.base), True
        raise self.fail(resp, f"starting an upload of {file_id!r}")

    def get_upload(self, upload_id: str) -> dict:
        resp = self.request("GET", f"/uploads/{_segment(upload_id)}")
        if resp.status_code != 200:
            raise self.fail(resp, f"upload {upload_id!r}")
        return self.json_object(resp, f"upload {upload_id!r}", ATTEMPT_KEYS)

    def part_url(self, upload_id: str, part_no: int) -> str:
        resp = self.request("POST", f"/uploads/{_segment(upload_id)}/parts/{part_no}/signed_urls")
        if resp.status_code != 200:
            raise self.fail(resp, f"URL for part {part_no}")
        return str(self.json_object(resp, f"URL for part {part_no}", ("url",))["url"])

    def set_status(self, upload_id: str, status: str) -> Optional[str]:
        """PATCH the status; None on 204, else the current status from uploadNotPending."""
        # completing 10,000 parts takes the server a while: wait longer for this answer
        resp = self.request("PATCH", f"/uploads/{_segment(upload_id)}", {"status": status},
                            read_timeout=max(self.settings.timeout, 600.0))
        if resp.status_code in (200, 204):
            return None
        exc_id, _, data = error_details(resp)
        if resp.status_code == 400 and exc_id == "uploadNotPending":
            current = data.get("current_upload_status")
            if current:
                return str(current)
        raise self.fail(resp, f"setting upload {upload_id!r} to {status}")


class DrsClient(ApiClient):
    """The DRS3 API (PROTOCOL.md § 2)."""

    def get_object(self, object_id: str) -> Tuple[Optional[dict], float]:
        """(DrsObject, 0) when ready, (None, seconds to wait) while it is being staged."""
        resp = self.request("GET", f"/objects/{_segment(object_id)}")
        if resp.status_code == 202:
            return None, parse_retry_after(resp.headers.get("Retry-After"),
                                           self.settings.retry_after_cap)
        if resp.status_code != 200:
            raise self.fail(resp, f"object {object_id!r}")
        obj = self.json_object(resp, f"object {object_id!r}", ("id", "size"))
        if not isinstance(obj["size"], int) or obj["size"] < 0:
            raise ApiRefused(f"object {object_id!r}: invalid size {obj['size']!r}")
        return obj, 0.0

    def wait_for_object(self, object_id: str, max_wait: Optional[float] = None,
                        on_wait: Optional[Callable[[float], None]] = None,
                        clock: Callable[[], float] = time.monotonic) -> dict:
        """Ask until 200, sleeping as Retry-After says, within the max_wait deadline."""
        max_wait = self.settings.max_wait if max_wait is None else max_wait
        deadline = clock() + max_wait
        while True:
            obj, wait = self.get_object(object_id)
            if obj is not None:
                return obj
            left = deadline - clock()
            if left <= 0:
                raise WaitTimeout(f"object {object_id!r} was still being staged after "
                                     f"{max_wait:g} s (--max-wait); run again to keep waiting")
            wait = min(wait, left)
            if on_wait:
                on_wait(wait)
            self.sleep(wait)


def access_url(obj: dict) -> str:
    """The first access method of type s3, else https (PROTOCOL.md § 2)."""
    methods = obj.get("access_methods") or []
    for kind in ("s3", "https"):
        for method in methods:
            if isinstance(method, dict) and method.get("type") == kind:
                url = (method.get("access_url") or {}).get("url")
                if url:
                    return str(url)
    raise ApiRefused(f"object {obj.get('id')!r} has no s3 or https access URL")


def expected_checksum(obj: dict) -> Tuple[Optional[str], Optional[str]]:
    """('sha256' | 'md5', hex) from the DRS checksums, preferring SHA-256."""
    found = {}
    for item in obj.get("checksums") or []:
        if isinstance(item, dict) and item.get("checksum"):
            kind = str(item.get("type", "")).lower().replace("-", "")
            found.setdefault(kind, str(item["checksum"]).lower())
    for kind in ("sha256", "md5"):
        if kind in found:
            return kind, found[kind]
    return None, None

