"""DRS3 API: staging with 202 + Retry-After, pre-signed GETs, expiry, eviction."""

from __future__ import annotations

import time

import requests

from .protocol import (
    download,
    drs,
    fetch,
    object_keys,
    payload,
    registered_upload,
    sha256,
    wait_object,
)

T = 30


def test_first_request_stages_with_202_and_retry_after(stack):
    data = payload(3000)
    file_id = registered_upload(stack, data)
    assert object_keys(stack, "outbox", file_id) == []
    r = drs(stack, file_id)
    assert r.status_code == 202
    assert r.headers["Retry-After"] == "1"  # the session stack runs with --retry-after 1
    assert r.content in (b"", b"null")
    obj, _ = wait_object(stack, file_id)
    assert object_keys(stack, "outbox", file_id) == [file_id]
    # staged: answered at once from now on
    assert drs(stack, file_id).status_code == 200
    assert fetch(obj["access_methods"][0]["access_url"]["url"], len(data)) == data


def test_staging_delay_and_retry_after_knobs(stack):
    stack.configure(staging_delay=2, retry_after=3)
    file_id = registered_upload(stack, payload(10))
    started = time.monotonic()
    r = drs(stack, file_id)
    assert r.status_code == 202 and r.headers["Retry-After"] == "3"
    time.sleep(1)
    r = drs(stack, file_id)
    assert r.status_code == 202  # copy done long ago, but the delay holds it back
    stack.configure(retry_after=0)
    obj, _ = wait_object(stack, file_id)
    assert time.monotonic() - started >= 2
    assert obj["size"] == 10


def test_whole_object_get_answers_200(stack):
    data = payload(5000)
    file_id = registered_upload(stack, data)
    obj, _ = wait_object(stack, file_id)
    r = requests.get(obj["access_methods"][0]["access_url"]["url"], timeout=T)
    assert r.status_code == 200 and r.content == data


def test_expired_download_url_refused_then_fresh_one_works(stack):
    stack.configure(url_lifetime=1)
    data = payload(4000)
    file_id = registered_upload(stack, data)
    obj, _ = wait_object(stack, file_id)
    url = obj["access_methods"][0]["access_url"]["url"]
    assert "X-Amz-Expires=1" in url
    time.sleep(3)  # well past the 1 s lifetime
    r = requests.get(url, headers={"Range": "bytes=0-9"}, timeout=T)
    assert r.status_code == 403
    stack.configure(url_lifetime=3600)  # the fresh URL must outlive a slow fetch
    fresh = drs(stack, file_id).json()["access_methods"][0]["access_url"]["url"]
    assert fetch(fresh, len(data)) == data


def test_tampered_download_url_refused(stack):
    file_id = registered_upload(stack, payload(100))
    obj, _ = wait_object(stack, file_id)
    url = obj["access_methods"][0]["access_url"]["url"]
    bad = url.replace(f"/{file_id}?", f"/{file_id}x?")
    assert requests.get(bad, timeout=T).status_code == 403


def test_outbox_eviction(stack):
    data = payload(6000)
    file_id = registered_upload(stack, data, sha=sha256(data))
    obj, _ = wait_object(stack, file_id)
    url = obj["access_methods"][0]["access_url"]["url"]
    assert fetch(url, len(data)) == data
    stack.configure(outbox_lifetime=1)
    deadline = time.monotonic() + 10
    while object_keys(stack, "outbox", file_id):  # the sweep deletes it
        assert time.monotonic() < deadline, "not evicted"
        time.sleep(0.2)
    assert requests.get(url, headers={"Range": "bytes=0-9"}, timeout=T).status_code == 404
    assert drs(stack, file_id).status_code == 202  # staged again on request
    stack.configure(outbox_lifetime=None)
    obj, body = download(stack, file_id)
    assert body == data
    assert stack.file_info(file_id)["outbox"]["state"] == "staged"


def test_request_after_outbox_lifetime_gets_202(stack):
    """A request after the lifetime gets 202 (evicted by the sweep or by the request)."""
    file_id = registered_upload(stack, payload(10))
    stack.configure(retry_after=0)
    wait_object(stack, file_id)
    stack.configure(outbox_lifetime=0.5)
    time.sleep(0.6)
    assert drs(stack, file_id).status_code == 202
