"""One call to an API: the session (redirects only to http(s), a deadline for the whole
answer), URL checks and redaction, Retry-After, and the error shapes of PROTOCOL.md.

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
from typing import Any, Optional, Tuple
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from .errors import (
    UsageError,
)

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


def redact_urls(text: str) -> str:
    """`text` with every URL in it redacted (messages that may quote a pre-signed URL)."""
    return re.sub(r"https?://\S+", lambda m: redact(m.group(0)), text or "")


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


class RedirectRefused(requests.RequestException):
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
            raise RedirectRefused(redact(urljoin(resp.url, target)))
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


def reason_of(exc: BaseException) -> str:
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
