"""HTTP clients for the Upload Controller API and the DRS3 API (requests; no luigi).

Every call has a timeout, a deadline for its whole answer and bounded retries. Every answer
is checked against the protocol where it is parsed, and handed inward as a typed value.
Pre-signed URLs are redacted in every message.
"""

from __future__ import annotations

import email.utils
import logging
import re
import socket
import threading
import time
from datetime import timezone
from typing import Any, Callable, List, Optional, Tuple, TypedDict, cast
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from . import __version__
from .errors import (
    ApiRefused,
    ConfigError,
    GhgaError,
    LockedError,
    NotAllowed,
    PartsNotStored,
    TransientError,
    UsageError,
    WaitTimeout,
)
from .settings import Settings

log = logging.getLogger("ghga_tasks")

RETRY_STATUSES = {429, 500, 502, 503, 504}
DEFAULT_RETRY_AFTER = 5.0
MIN_RETRY_AFTER = 0.2
MAX_REDIRECTS = 10


def redact(url: str) -> str:
    """Drop the query string (the signature) and any user info from a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def parse_retry_after(
    value: Optional[str],
    cap: float,
    default: float = DEFAULT_RETRY_AFTER,
    now: Optional[float] = None,
) -> float:
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
            data = body.get("data")
            return (
                str(exc_id) if exc_id else None,
                str(body.get("description", "")),
                data if isinstance(data, dict) else {},
            )
        if "msg" in body:
            return None, str(body["msg"]), {}
        if "detail" in body:
            detail = body["detail"]
            if isinstance(detail, list):
                detail = "; ".join(
                    str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail
                )
            return None, str(detail), {}
    text = (resp.text or "").strip().replace("\n", " ")
    return None, text[:200], {}


def is_http_url(url: str) -> bool:
    """True for an http(s) URL with a host: the only URLs the client sends requests to."""
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


_calls = threading.local()  # the CallDeadline of the API call this thread is making


class CallDeadline:
    """Ends an API call when its time is up by shutting down the sockets it uses.

    A read timeout bounds each wait for the next bytes: a server that sends one byte a
    second never trips it. This bounds the whole answer: status line, headers, body and
    redirects."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "CallDeadline":
        _calls.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        _calls.deadline = None

    def watch(self, sock: Any) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: Any) -> None:
    """Wake a read blocked on `sock` in another thread: it sees the end of the stream."""
    if isinstance(sock, socket.socket):
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP socket, also under TLS
        except OSError:
            pass


class _Watched:
    """A connection that hands its socket to the deadline of the call awaiting the answer."""

    def getresponse(self, *args, **kwargs):
        deadline = getattr(_calls, "deadline", None)
        if deadline is not None and self.sock is not None:
            deadline.watch(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose connections a CallDeadline can end."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = WATCHED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = WATCHED_POOLS
        return manager


class _RedirectRefused(requests.RequestException):
    def __init__(self, target: str):
        super().__init__(target)
        self.target = target


class ApiSession(requests.Session):
    """Follows at most MAX_REDIRECTS redirects in a row, and only to http(s) URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.max_redirects = MAX_REDIRECTS
        adapter = _WatchedAdapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def get_redirect_target(self, resp: requests.Response) -> Optional[str]:
        target = super().get_redirect_target(resp)
        if target is not None and not is_http_url(urljoin(resp.url, target)):
            resp.close()
            raise _RedirectRefused(redact(urljoin(resp.url, target)))
        return target


def check_api_url(api_url: str) -> str:
    """The API URL without a trailing slash; UsageError unless it is http(s)://host[:port]."""
    base = api_url.strip().rstrip("/")
    try:
        parts = urlsplit(base)
        if parts.port == 0:  # the property raises ValueError for a bad port
            raise ValueError("port 0")
    except ValueError as exc:
        raise UsageError(f"not a valid API URL: {api_url!r} ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"API URL must start with http:// or https://: {api_url!r}")
    if not parts.hostname:
        raise UsageError(f"API URL has no host: {api_url!r}")
    return base


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
        if isinstance(exc, _RedirectRefused):
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
                f"TLS verification failed for {redact(url)}: {_reason(exc)} (see --ca-bundle)"
            ) from None
        if isinstance(
            exc,
            (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError),
        ):
            return _reason(exc)
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
                f"the API at {redact(self.base)} redirected to an unusable URL: {_reason(exc)}"
            ) from None
        if isinstance(exc, requests.exceptions.ContentDecodingError):
            raise ApiRefused(
                f"the API at {redact(self.base)} sent an answer that cannot be "
                f"decoded: {_reason(exc)}"
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
            snippet = (resp.text or "").strip().replace("\n", " ")[:80]
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


class FileMetadata(TypedDict):
    """PROTOCOL.md § 1; only file_id and size are required."""

    file_id: str
    size: int
    file_name: Optional[str]
    sha256: Optional[str]
    latest_upload_id: Optional[str]


class UploadAttempt(TypedDict):
    """PROTOCOL.md § 1."""

    upload_id: str
    file_id: str
    part_size: int
    status: str


class Checksum(TypedDict):
    type: str
    checksum: str


class AccessUrl(TypedDict):
    url: str


class AccessMethod(TypedDict, total=False):
    type: str  # always there
    access_url: AccessUrl  # http(s) for the types s3 and https


class DrsObject(TypedDict):
    """PROTOCOL.md § 2; checksums and access_methods are lists, empty when not sent."""

    id: str
    size: int
    checksums: List[Checksum]
    access_methods: List[AccessMethod]
    name: Optional[str]
    created_time: Optional[str]
    self_uri: Optional[str]


ATTEMPT_KEYS = ("upload_id", "file_id", "part_size", "status")
ATTEMPT_STATUSES = ("pending", "uploaded", "cancelled", "failed", "accepted", "rejected")
HEX_DIGITS = {"sha256": 64, "md5": 32}
_ABSENT = object()


def _json_kind(value: Any) -> str:
    if value is _ABSENT:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), "unknown")


class AnswerCheck:
    """Checks the fields of one JSON answer; the first that does not fit refuses the answer.

    Messages name the field and what was wrong with it, never a value that could be a
    pre-signed URL."""

    def __init__(self, what: str, base: str):
        self.what = what
        self.base = base

    def refuse(self, problem: str) -> ApiRefused:
        return ApiRefused(
            f"{self.what}: the answer of the API at {redact(self.base)} is not "
            f"the protocol: {problem}"
        )

    def _field(self, where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def object(self, value: Any, field: str) -> dict:
        if not isinstance(value, dict):
            raise self.refuse(f"{field} is {_json_kind(value)}, not an object")
        return value

    def string(
        self, data: dict, key: str, where: str = "", optional: bool = False
    ) -> Optional[str]:
        value = data.get(key, _ABSENT)
        if optional and (value is None or value is _ABSENT):
            return None
        if not isinstance(value, str):
            raise self.refuse(f"{self._field(where, key)} is {_json_kind(value)}, not a string")
        if not value and not optional:
            raise self.refuse(f"{self._field(where, key)} is an empty string")
        return value

    def integer(self, data: dict, key: str, minimum: int) -> int:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.refuse(
                f"invalid {key} {repr(value)[:40]} (an integer >= {minimum} expected)"
            )
        return value

    def items(self, data: dict, key: str) -> list:
        """A list; missing or null is an empty one."""
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.refuse(f"{key} is {_json_kind(value)}, not a list")
        return value

    def http_url(self, url: str, field: str) -> str:
        if not is_http_url(url):
            raise self.refuse(f"{field} is not an http(s) URL: {redact(url)}")
        return url


def file_metadata(data: dict, check: AnswerCheck) -> FileMetadata:
    check.string(data, "file_id")
    check.integer(data, "size", 0)
    check.string(data, "file_name", optional=True)
    check.string(data, "latest_upload_id", optional=True)
    sha256 = check.string(data, "sha256", optional=True)
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise check.refuse("sha256 is not 64 hex digits")
    return cast(FileMetadata, data)


def upload_attempt(data: dict, check: AnswerCheck) -> UploadAttempt:
    check.string(data, "upload_id")
    check.string(data, "file_id")
    check.integer(data, "part_size", 1)
    status = check.string(data, "status")
    if status not in ATTEMPT_STATUSES:
        raise check.refuse(f"status {status[:40]!r} is none of {', '.join(ATTEMPT_STATUSES)}")
    return cast(UploadAttempt, data)


def signed_url(data: dict, check: AnswerCheck) -> str:
    return check.http_url(check.string(data, "url"), "url")


def drs_object(data: dict, check: AnswerCheck) -> DrsObject:
    check.string(data, "id")
    check.integer(data, "size", 0)
    for key in ("name", "created_time", "self_uri"):
        check.string(data, key, optional=True)
    checksums = check.items(data, "checksums")
    for i, item in enumerate(checksums):
        where = f"checksums[{i}]"
        check.object(item, where)
        kind = check.string(item, "type", where)
        value = check.string(item, "checksum", where)
        digits = HEX_DIGITS.get(kind.lower().replace("-", ""))
        if digits and not re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", value):
            raise check.refuse(f"{where}.checksum is not {digits} hex digits")
    methods = check.items(data, "access_methods")
    for i, item in enumerate(methods):
        where = f"access_methods[{i}]"
        check.object(item, where)
        kind = check.string(item, "type", where)
        if item.get("access_url") is None:
            continue  # e.g. an access_id, which this client does not use
        check.object(item["access_url"], f"{where}.access_url")
        url = check.string(item["access_url"], "url", f"{where}.access_url")
        if kind in ("s3", "https"):
            check.http_url(url, f"{where}.access_url.url")
    return cast(DrsObject, {**data, "checksums": checksums, "access_methods": methods})


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


def access_url(obj: DrsObject) -> str:
    """The first access method of type s3, else https (PROTOCOL.md § 2); drs_object() has
    checked that its URL is http(s)."""
    for kind in ("s3", "https"):
        for method in obj["access_methods"]:
            if method["type"] == kind and method.get("access_url"):
                return method["access_url"]["url"]
    raise ApiRefused(f"object {obj['id']!r} has no s3 or https access URL")


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
