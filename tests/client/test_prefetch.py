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
