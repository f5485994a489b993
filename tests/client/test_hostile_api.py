"""APIs and storage that do not follow the protocol: answers of the wrong shape, redirects
to other schemes or in a loop, URLs that are not http(s), answers that drip in.

Each ends with one line `ghga-cli: error: ...` and the documented exit code."""

from __future__ import annotations

import hashlib
import json
import os
import socket

import pytest
from helpers import cli_download, cli_upload, one_line_error, stub_object, upload_api
from test_papercuts import retry_notices_then_error

from ghga_tasks.server.stub import JSON, Drip, drs_object

NO_TASK_RETRY = {"GHGA_TASKS_TASK_RETRIES": "0"}


@pytest.fixture
def listener():
    """A loopback port that only counts connections: nothing may ever connect to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def object_x(url: str, data: bytes, **changes) -> dict:
    """The DRS object "x": `data` at `url`."""
    return {**drs_object("x", len(data), hashlib.sha256(data).hexdigest(), url), **changes}


def download(api_url: str, tmp_path, *extra: str, timeout: float = 120):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    extra = ("--retries", "1", *extra)
    return cli_download(
        api_url, "x", out, tmp_path / "s", *extra, env=NO_TASK_RETRY, timeout=timeout
    )


def upload(api_url: str, tmp_path, data: bytes, *extra: str, timeout: float = 120):
    src = tmp_path / "src"
    src.write_bytes(data)
    extra = ("--retries", "1", *extra)
    return cli_upload(api_url, "x", src, tmp_path / "s", *extra, env=NO_TASK_RETRY, timeout=timeout)


DATA = os.urandom(3000)
GOOD_URL = "http://127.0.0.1:9/data"
BAD_DRS_FIELDS = [
    ({"checksums": 5}, "checksums"),
    ({"checksums": [5]}, "checksums[0]"),
    ({"checksums": [{"type": "sha-256", "checksum": 5}]}, "checksums[0].checksum"),
    ({"access_methods": 5}, "access_methods"),
    ({"access_methods": [{"type": "s3", "access_url": GOOD_URL}]}, "access_methods[0].access_url"),
    (
        {"access_methods": [{"type": "s3", "access_url": {"url": 5}}]},
        "access_methods[0].access_url.url",
    ),
    ({"access_methods": [{"type": 5, "access_url": {"url": GOOD_URL}}]}, "access_methods[0].type"),
    ({"size": True}, "size"),
    ({"id": 5}, "id"),
]


@pytest.mark.parametrize("changes,field", BAD_DRS_FIELDS, ids=[f for _, f in BAD_DRS_FIELDS])
def test_drs_object_of_the_wrong_shape_is_69(stub, tmp_path, changes, field):
    srv = stub_object(stub, DATA, **changes)
    proc = download(srv.url, tmp_path)
    one_line_error(proc, 69, "object 'x'", "not the protocol", field)
    assert all(path.startswith("/objects/") for _, path, _ in srv.requests)  # storage untouched
    assert os.listdir(tmp_path / "out") == []


BAD_UPLOAD_ANSWERS = [
    ({"file_meta": {"sha256": 5}}, "sha256"),
    ({"file_meta": {"file_id": ["x"]}}, "file_id"),
    ({"attempt": {"upload_id": 5}}, "upload_id"),
    ({"attempt": {"status": "sleeping"}}, "status"),
    ({"signed": {"url": 5}}, "url"),
]


@pytest.mark.parametrize(
    "changes,field", BAD_UPLOAD_ANSWERS, ids=[f"{next(iter(c))}.{f}" for c, f in BAD_UPLOAD_ANSWERS]
)
def test_upload_answers_of_the_wrong_shape_are_69(stub, tmp_path, changes, field):
    data = os.urandom(1000)
    puts: list = []
    srv = stub(upload_api(lambda: srv.url, data, puts=puts, **changes))
    proc = upload(srv.url, tmp_path, data)
    one_line_error(proc, 69, "not the protocol", field)
    assert puts == []


@pytest.mark.parametrize("target", ["file:///etc/passwd", "gopher://127.0.0.1:{port}/x", "loop"])
def test_api_redirecting_elsewhere_or_in_a_loop_is_69(stub, listener, tmp_path, target):
    port = listener.getsockname()[1]

    def handler(method, path, headers):
        location = path if target == "loop" else target.format(port=port)
        return 302, {"Location": location}, b""

    srv = stub(handler)
    proc = download(srv.url, tmp_path)
    words = ("redirect loop",) if target == "loop" else ("redirected", target.split(":")[0])
    one_line_error(proc, 69, *words)
    assert connections(listener) == 0
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.parametrize("scheme", ["file", "gopher"])
def test_access_url_that_is_not_http_is_refused_before_any_request(
    stub, listener, tmp_path, scheme
):
    secret = tmp_path / "secret"
    secret.write_bytes(DATA)
    port = listener.getsockname()[1]
    url = f"file://{secret}" if scheme == "file" else f"gopher://127.0.0.1:{port}/x?sig=s3cr3t"

    def handler(method, path, headers):
        return 200, JSON, json.dumps(object_x(url, DATA)).encode()

    srv = stub(handler)
    proc = download(srv.url, tmp_path)
    line = one_line_error(proc, 69, "access_url.url", "not an http(s) URL", f"{scheme}://")
    assert "s3cr3t" not in line
    assert connections(listener) == 0
    assert os.listdir(tmp_path / "out") == []


def test_part_url_that_is_not_http_is_refused_before_any_request(stub, listener, tmp_path):
    data = os.urandom(1000)
    port = listener.getsockname()[1]
    puts: list = []
    srv = stub(
        upload_api(
            lambda: srv.url,
            data,
            puts=puts,
            signed={"url": f"gopher://127.0.0.1:{port}/b/x?sig=s3cr3t"},
        )
    )
    proc = upload(srv.url, tmp_path, data)
    line = one_line_error(proc, 69, "part 1", "not an http(s) URL", "gopher://")
    assert "s3cr3t" not in line
    assert connections(listener) == 0
    assert puts == []


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_api_dripping_its_answer_is_transient(stub, tmp_path, headers_too):
    """One byte every 0.5 s never trips a 2 s read timeout; the call's deadline ends it."""

    def handler(method, path, headers):
        body = json.dumps(object_x(f"{srv.url}/data", DATA)).encode() + b" " * 5000
        return 200, JSON, Drip(body, interval=0.5, headers_too=headers_too)

    srv = stub(handler)
    proc = download(srv.url, tmp_path, "--timeout", "2")
    notices = retry_notices_then_error(
        proc, 75, "cannot reach the API", "no complete answer within", "(after 2 attempts)"
    )
    assert len(notices) == 1 and "no complete answer within" in notices[0], notices
    assert len(srv.requests) == 2


def test_storage_dripping_its_answer_is_a_stall(stub, tmp_path):
    """Storage sends one byte every 0.5 s: a stall, retried, then transient."""

    def drip(status, head, body):
        return status, head, Drip(body, interval=0.5)

    srv = stub_object(stub, os.urandom(100_000), path="/data?sig=s3cr3t", storage=drip)
    proc = download(srv.url, tmp_path, "--timeout", "2")
    notices = retry_notices_then_error(proc, 75, "failed after 2 attempts", "too slow")
    assert len(notices) == 1 and "too slow" in notices[0], notices
    assert "s3cr3t" not in proc.stderr
    assert sum(1 for _, path, _ in srv.requests if path.startswith("/data")) == 2
