"""Part URLs fetched ahead of the pycurl loop, on threads of their own.

Each upload part needs its own pre-signed URL from the API. Asked for inside the loop, every
round trip would stall all handles; asked for here, the loop finds the URL waiting. A URL is
used once: a part sent again (retry, 403) gets a fresh one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, Iterable, Optional, Set, Tuple
from urllib.parse import parse_qs, urlsplit

DEFAULT_MAX_AGE = 60.0  # seconds a URL without X-Amz-Expires is trusted for


def url_lifetime(url: str) -> Optional[float]:
    """The lifetime in seconds a SigV4 pre-signed URL states (X-Amz-Expires), if any."""
    query = parse_qs(urlsplit(url).query)
    for name in ("X-Amz-Expires", "x-amz-expires"):
        if name in query and query[name][0].isdigit():
            return float(query[name][0])
    return None


class UrlPrefetcher:
    """Keeps up to `ahead` URLs ready or on their way, in the order the parts will be sent,
    asking for up to `fetchers` of them at once: over a long round trip to the API, one ask
    at a time would bound the parts sent per second.

    get(n) returns a ready URL for part n when it is still fresh (less than half of its
    stated lifetime gone), waits for it when it is on its way, else asks for one at once,
    ahead of the queue. Errors of a prefetch are not raised: get() asks again and raises
    what that ask raises."""

    def __init__(
        self,
        fetch: Callable[[int], str],
        order: Iterable[int],
        ahead: int,
        fetchers: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self._order: Deque[int] = deque(order)
        self._ahead = max(1, ahead)
        self._clock = clock
        self._ready: Dict[int, Tuple[str, float]] = {}  # part -> (url, time it goes stale)
        self._urgent: Deque[int] = deque()
        self._results: Dict[int, object] = {}  # waited-for part -> url or exception
        self._taken: Set[int] = set()  # parts get() has asked for
        self._underway: Set[int] = set()  # prefetches being asked for
        self._wanted: Set[int] = set()  # of those, parts get() waits for
        self._closing = False
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, name=f"ghga-urls-{k}", daemon=True)
            for k in range(max(1, min(fetchers, self._ahead)))
        ]
        for t in self._threads:
            t.start()

    def _stale_at(self, url: str, fetched: float) -> float:
        lifetime = url_lifetime(url)
        return fetched + (lifetime / 2 if lifetime is not None else DEFAULT_MAX_AGE)

    def _next(self) -> Optional[Tuple[int, bool]]:
        """Under the lock: the next part to fetch and whether someone waits for it."""
        if self._urgent:
            return self._urgent.popleft(), True
        while self._order and (self._order[0] in self._ready or self._order[0] in self._taken):
            self._order.popleft()
        if self._order and len(self._ready) + len(self._underway) < self._ahead:
            number = self._order.popleft()
            self._underway.add(number)
            return number, False
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and (item := self._next()) is None:
                    self._cond.wait()
                if self._closing:
                    return
            number, urgent = item
            try:
                url: object = self._fetch(number)
            except BaseException as exc:  # noqa: BLE001 - handed to get() for urgent asks
                url = exc
            fetched = self._clock()
            with self._cond:
                self._underway.discard(number)
                if urgent:
                    self._results[number] = url
                elif number in self._wanted:  # get() waits for this prefetch
                    self._wanted.discard(number)
                    if isinstance(url, BaseException):
                        self._urgent.append(number)  # ask again; get() raises that one
                    else:
                        self._results[number] = url
                elif number not in self._taken and not isinstance(url, BaseException):
                    self._ready[number] = (url, self._stale_at(url, fetched))
                self._cond.notify_all()

    def get(self, number: int) -> str:
        with self._cond:
            if self._closing:
                raise RuntimeError("URL prefetcher is closed")
            ready = self._ready.pop(number, None)
            self._taken.add(number)
            self._cond.notify_all()  # room for one more ahead
            if ready is not None and self._clock() < ready[1]:
                return ready[0]
            if number in self._underway and number not in self._wanted:
                self._wanted.add(number)  # on its way: wait for it, don't ask twice
            else:
                self._urgent.append(number)
                self._cond.notify_all()
            while number not in self._results:  # the fetch's own timeouts bound this
                if not any(t.is_alive() for t in self._threads):
                    raise RuntimeError("URL prefetcher stopped")
                self._cond.wait(1.0)
            result = self._results.pop(number)
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[return-value]

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for t in self._threads:  # a fetch in flight is bounded by its own timeouts
            t.join(timeout=5.0)
