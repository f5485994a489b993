"""Fault knobs, the bearer token, the multipart-copy path, the missing extra, log hygiene."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
import threading
import time

import requests

from .protocol import (
    MiB,
    download,
    error_id,
    new_id,
    payload,
    registered_upload,
    s3_client,
    sha256,
    wait_object,
)

T = 30


def test_error_rate_one_fails_every_api_request_but_not_health_or_admin(stack):
    stack.configure(error_rate=1.0)
    try:
        for url in (f"{stack.upload_api}/files/x", f"{stack.drs_api}/objects/x"):
            for _ in range(10):
                r = requests.get(url, timeout=T)
                assert r.status_code in (429, 503)
                assert r.headers["Retry-After"] == "1"
                assert error_id(r) in ("tooManyRequests", "serviceUnavailable")
        r = requests.post(f"{stack.upload_api}/uploads", json={"file_id": "x"}, timeout=T)
        assert r.status_code in (429, 503)
        for url in (
            f"{stack.url}/health",
            f"{stack.upload_api}/health",
            f"{stack.drs_api}/health",
            f"{stack.admin_api}/config",
        ):
            assert requests.get(url, timeout=T).status_code == 200
    finally:
        stack.configure(error_rate=0)


def test_error_rate_half(stack):
    stack.configure(error_rate=0.5, retry_after=0)
    try:
        counts = collections.Counter(
            requests.get(f"{stack.upload_api}/files/none", timeout=T).status_code
            for _ in range(200)
        )
    finally:
        stack.configure(error_rate=0)
    assert set(counts) <= {404, 429, 503}
    assert 60 <= counts[404] <= 140, counts  # binomial(200, 0.5): 5+ sigma margin
    assert counts[429] and counts[503]


def test_error_rate_leaves_no_side_effects(stack):
    """A faulted request is refused before it does anything."""
    file_id = new_id()
    stack.register(file_id, 10)
    stack.configure(error_rate=1.0)
    try:
        for _ in range(5):
            requests.post(f"{stack.upload_api}/uploads", json={"file_id": file_id}, timeout=T)
    finally:
        stack.configure(error_rate=0)
    assert stack.file_info(file_id)["uploads"] == []


def test_api_delay_holds_back_api_answers_but_not_the_server(stack):
    """A far-away API: the answer comes after the delay, right; meanwhile /health answers."""
    file_id = new_id()
    stack.register(file_id, 10)
    answers: list = []

    def delayed() -> None:
        started = time.monotonic()
        r = requests.get(f"{stack.upload_api}/files/{file_id}", timeout=T)
        answers.append((r, time.monotonic() - started))

    stack.configure(api_delay=8)
    try:
        t = threading.Thread(target=delayed, daemon=True)
        t.start()
        time.sleep(0.5)  # let it reach the server; no bound is asserted on this
        assert requests.get(f"{stack.url}/health", timeout=T).status_code == 200
        assert requests.get(f"{stack.admin_api}/config", timeout=T).json()["api_delay"] == 8
        assert t.is_alive()  # /health was answered while the API answer was held back
        t.join(T)
    finally:
        stack.configure(api_delay=0)
    ((r, took),) = answers
    assert r.status_code == 200 and r.json()["file_id"] == file_id
    assert took >= 8


def test_bearer_token(stack_factory):
    s = stack_factory("--auth-token", "s3cret")
    s.register("tok-file", 10)
    good = {"Authorization": "Bearer s3cret"}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = requests.get(f"{s.upload_api}/files/tok-file", headers=headers, timeout=T)
        assert r.status_code == 403 and error_id(r) == "noFileAccess"
        r = requests.post(
            f"{s.upload_api}/uploads", json={"file_id": "tok-file"}, headers=headers, timeout=T
        )
        assert r.status_code == 403 and error_id(r) == "noFileAccess"
        r = requests.get(f"{s.drs_api}/objects/tok-file", headers=headers, timeout=T)
        assert r.status_code == 403
    assert requests.get(f"{s.upload_api}/files/tok-file", headers=good, timeout=T).ok
    assert requests.get(f"{s.upload_api}/health", timeout=T).ok
    assert requests.get(f"{s.admin_api}/files", timeout=T).ok


def test_multipart_copy_path(special_stack):
    """With a 5 MiB threshold a 12 MiB object moves (and stages) by UploadPartCopy."""
    s = special_stack
    data = payload(12 * MiB + 3)
    file_id = registered_upload(s, data, sha=sha256(data))
    s3, buckets = s3_client(s)
    head = s3.head_object(Bucket=buckets["permanent"], Key=file_id)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # 5 + 5 + 2 MiB copy parts
    wait_object(s, file_id)
    head = s3.head_object(Bucket=buckets["outbox"], Key=file_id)
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    obj, body = download(s, file_id)
    assert body == data and obj["checksums"][0]["checksum"] == sha256(data)
    assert f"/{file_id}: 3 parts" in s.log_tail(10_000)


def test_small_objects_use_plain_copy(stack):
    data = payload(100)
    file_id = registered_upload(stack, data)
    wait_object(stack, file_id)
    s3, buckets = s3_client(stack)
    etag = s3.head_object(Bucket=buckets["permanent"], Key=file_id)["ETag"].strip('"')
    assert "-" not in etag or etag.endswith("-1")  # CopyObject may keep the source's ETag
    assert f"/{file_id}: " not in stack.log_tail(10_000)  # no "multipart copy ... N parts"


def test_serve_without_server_extra_exits_78(tmp_path):
    """An interpreter on which `import fastapi` fails, as if the extra were not installed."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        textwrap.dedent("""
        import sys

        class HideFastAPI:
            def find_spec(self, name, path=None, target=None):
                if name == "fastapi" or name.startswith("fastapi."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, HideFastAPI())
    """)
    )
    env = {"PYTHONPATH": str(shim), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    probe = subprocess.run(
        [sys.executable, "-c", "import fastapi"], env=env, capture_output=True, timeout=60
    )
    assert probe.returncode != 0  # the shim works
    r = subprocess.run(
        [sys.executable, "-m", "ghga_tasks", "serve", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 78, r.stderr.decode()
    assert "pip install 'ghga-tasks[server]'" in r.stderr.decode()
    assert r.stdout == b""
    assert not (tmp_path / "data" / "seaweedfs").exists()  # nothing was started


def test_log_never_contains_presigned_urls(stack):
    data = payload(1000)
    file_id = registered_upload(stack, data)
    download(stack, file_id)
    log = stack.log_path.read_text(errors="replace")
    assert "uvicorn.access" in log  # the access log is there ...
    assert "X-Amz-Signature" not in log and "X-Amz-Credential" not in log  # ... URLs are not
    assert stack.s3_info()["secret_key"] not in log
