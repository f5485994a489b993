"""UrlPrefetcher: part URLs fetched ahead of the pycurl loop, once each, fresh."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import wait_until

from ghga_tasks.errors import ApiRefused
from ghga_tasks.prefetch import UrlPrefetcher, url_lifetime


class Api:
    """A fake part-URL endpoint that records every ask."""

    def __init__(self, lifetime: int = 600, fail: set = frozenset()):
        self.asked: list[int] = []
        self.lifetime = lifetime
        self.fail = set(fail)
        self.lock = threading.Lock()

    def __call__(self, n: int) -> str:
        with self.lock:
            self.asked.append(n)
            count = self.asked.count(n)
        if n in self.fail:
            self.fail.discard(n)
            raise ApiRefused(f"no URL for part {n}", status=500)
        return (
            f"http://s3/b/k?partNumber={n}&X-Amz-Expires={self.lifetime}&X-Amz-Signature=s{count}"
        )


def test_lifetime_parsed_from_sigv4_query():
    assert url_lifetime("http://h/b/k?X-Amz-Expires=900&X-Amz-Signature=x") == 900
    assert url_lifetime("http://h/b/k?partNumber=1") is None


def test_fetches_ahead_in_order_and_no_further():
    api = Api()
    urls = UrlPrefetcher(api, [3, 1, 2, 5, 4], ahead=2)
    try:
        wait_until(lambda: len(api.asked) == 2, "two asks", 5, interval=0.01)
        time.sleep(0.1)
        assert api.asked == [3, 1]  # bounded: nothing beyond `ahead` before a get()
        assert "partNumber=3" in urls.get(3)
        wait_until(lambda: len(api.asked) == 3, "a third ask", 5, interval=0.01)
        assert api.asked == [3, 1, 2]
        for n in (1, 2, 5, 4):
            assert f"partNumber={n}&" in urls.get(n)
        assert sorted(api.asked) == [1, 2, 3, 4, 5]  # each URL asked for once
    finally:
        urls.close()


def test_second_get_of_a_part_asks_for_a_fresh_url():
    api = Api()
    urls = UrlPrefetcher(api, [1, 2], ahead=2)
    try:
        first = urls.get(1)
        again = urls.get(1)  # a retry or a 403: never reuse the URL that was sent
        assert first.endswith("s1") and again.endswith("s2")
        assert api.asked.count(1) == 2
    finally:
        urls.close()


def test_stale_prefetched_url_is_replaced():
    now = [0.0]
    api = Api(lifetime=10)
    urls = UrlPrefetcher(api, [1, 2], ahead=2, clock=lambda: now[0])
    try:
        wait_until(lambda: len(api.asked) == 2, "two asks", 5, interval=0.01)
        now[0] = 4.9  # less than half of the 10 s lifetime gone: still used
        assert urls.get(1).endswith("s1")
        now[0] = 5.1  # more than half gone: asked for again
        assert urls.get(2).endswith("s2")
        assert api.asked.count(2) == 2
    finally:
        urls.close()


def test_failed_prefetch_is_asked_again_and_a_failed_ask_raises():
    api = Api(fail={2})
    urls = UrlPrefetcher(api, [1, 2, 3], ahead=3)
    try:
        wait_until(lambda: len(api.asked) == 3, "three asks", 5, interval=0.01)
        assert "partNumber=2&" in urls.get(2)  # the prefetch failed; get() asked again
        api.fail.add(3)
        urls.get(1)
        # part 3 was prefetched fine; a fresh ask for it fails and get() raises that
        assert "partNumber=3&" in urls.get(3)
        with pytest.raises(ApiRefused, match="no URL for part 3"):
            urls.get(3)
    finally:
        urls.close()


def test_close_while_idle_returns_and_get_after_close_raises():
    urls = UrlPrefetcher(Api(), [], ahead=4)
    urls.close()
    with pytest.raises(RuntimeError, match="closed"):
        urls.get(1)


class GatedApi(Api):
    """An Api whose answers wait until the test opens the gate of that part."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.gates: dict[int, threading.Event] = {}
        self.waiting: set[int] = set()

    def gate(self, n: int) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(n, threading.Event())

    def __call__(self, n: int) -> str:
        with self.lock:
            self.waiting.add(n)
        try:
            if not self.gate(n).wait(30):
                raise AssertionError(f"the gate of part {n} was never opened")
        finally:
            with self.lock:
                self.waiting.discard(n)
        return super().__call__(n)


def get_while_prefetching(api: GatedApi, urls: UrlPrefetcher, n: int):
    """Call urls.get(n) on a thread while the prefetch of part n hangs at its gate; return
    (thread, list the thread appends the URL or the error to) once get() waits for it."""
    wait_until(lambda: api.waiting == {n}, f"the prefetch of part {n}", 10, interval=0.01)
    got: list = []

    def run() -> None:
        try:
            got.append(urls.get(n))
        except Exception as exc:  # noqa: BLE001 - handed to the test
            got.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    wait_until(lambda: n in urls._wanted, f"get({n}) waiting for the prefetch", 10, interval=0.01)
    return t, got


def test_asks_for_several_urls_at_once():
    api = GatedApi()
    urls = UrlPrefetcher(api, [1, 2, 3, 4, 5], ahead=4, fetchers=3)
    try:
        wait_until(lambda: api.waiting == {1, 2, 3}, "three asks at once", 10, interval=0.01)
        for n in (1, 2, 3, 4, 5):
            api.gate(n).set()
        for n in (2, 1, 3, 5, 4):
            assert f"partNumber={n}&" in urls.get(n)
        assert sorted(api.asked) == [1, 2, 3, 4, 5]  # each once, however they interleaved
    finally:
        for gate in api.gates.values():
            gate.set()
        urls.close()


def test_a_url_on_its_way_is_waited_for_not_asked_for_again():
    api = GatedApi()
    urls = UrlPrefetcher(api, [1, 2], ahead=1)
    try:
        t, got = get_while_prefetching(api, urls, 1)
        api.gate(1).set()
        t.join(30)
        assert got and got[0].endswith("partNumber=1&X-Amz-Expires=600&X-Amz-Signature=s1")
        api.gate(2).set()
        assert "partNumber=2&" in urls.get(2)
        assert api.asked == [1, 2]  # part 1 once: the start of an upload asked twice before
    finally:
        for gate in api.gates.values():
            gate.set()
        urls.close()


def test_a_failed_prefetch_someone_waits_for_is_asked_again():
    api = GatedApi(fail={1})
    urls = UrlPrefetcher(api, [1], ahead=1)
    try:
        t, got = get_while_prefetching(api, urls, 1)
        api.gate(1).set()
        t.join(30)
        assert got and got[0].endswith("Signature=s2")  # the second ask's URL, not an error
        assert api.asked == [1, 1]
    finally:
        urls.close()
