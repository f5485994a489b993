"""Start, stop, restart and crash of `ghga-cli serve` (each test starts its own server)."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from stack import env_backend, start_stack

from ghga_tasks.server.launcher import s3_args

from .conftest import REGISTERED
from .protocol import (
    PART,
    download,
    new_id,
    patch,
    payload,
    put_parts,
    s3_client,
    sha256,
    start,
    wait_object,
)

T = 30
embedded_only = pytest.mark.skipif(
    bool(env_backend()["s3_endpoint"]), reason="about the embedded SeaweedFS"
)


def _serve_until_exit(data_dir, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`ghga-cli serve --data-dir DATA_DIR *args` for a server that must not start."""
    return subprocess.run(
        [sys.executable, "-m", "ghga_tasks", "serve", "--data-dir", str(data_dir), *args],
        capture_output=True,
        timeout=timeout,
    )


def _status(stack, upload_id):
    return requests.get(f"{stack.upload_api}/uploads/{upload_id}", timeout=T).json()["status"]


def test_restart_mid_upload(special_stack):
    s = special_stack
    data = payload(PART + 1000)
    file_id = new_id()
    s.register(file_id, len(data), sha256=sha256(data))
    attempt = start(s, file_id)
    put_parts(s, attempt, data, [1])
    s.restart()
    assert _status(s, attempt["upload_id"]) == "pending"
    put_parts(s, attempt, data, [2])  # fresh URL from the restarted server
    assert patch(s, attempt["upload_id"], "uploaded", data).status_code == 204
    assert s.wait_accepted(attempt["upload_id"])["status"] == "accepted"
    assert download(s, file_id)[1] == data


def test_crash_mid_upload(special_stack):
    """SIGKILL of the server: its SeaweedFS goes too, and nothing is lost."""
    s = special_stack
    data = payload(PART + 10)
    file_id = new_id()
    s.register(file_id, len(data))
    attempt = start(s, file_id)
    put_parts(s, attempt, data, [2])
    s.kill()
    s.start()
    put_parts(s, attempt, data, [1])
    assert patch(s, attempt["upload_id"], "uploaded", data).status_code == 204
    assert s.wait_accepted(attempt["upload_id"])["status"] == "accepted"
    assert download(s, file_id)[1] == data


def test_restart_resumes_acceptance(special_stack):
    s = special_stack
    data = payload(5000)
    file_id = new_id()
    s.register(file_id, len(data), sha256=sha256(data))
    attempt = start(s, file_id)
    put_parts(s, attempt, data)
    s.args += ["--accept-delay", "600"]  # hold acceptance ...
    try:
        s.restart()
        assert patch(s, attempt["upload_id"], "uploaded", data).status_code == 204
        time.sleep(0.3)
        assert _status(s, attempt["upload_id"]) == "uploaded"
    finally:
        del s.args[-2:]
    s.restart()  # ... and resume it in a new process
    assert s.wait_accepted(attempt["upload_id"])["status"] == "accepted"
    assert download(s, file_id)[1] == data


def test_restart_keeps_staged_files(special_stack):
    s = special_stack
    data = payload(100)
    file_id = new_id()
    s.register(file_id, len(data))
    attempt = start(s, file_id)
    put_parts(s, attempt, data)
    patch(s, attempt["upload_id"], "uploaded", data)
    s.wait_accepted(attempt["upload_id"])
    wait_object(s, file_id)
    s.restart()
    r = requests.get(f"{s.drs_api}/objects/{file_id}", timeout=T)
    assert r.status_code == 200, r.text  # still staged: no 202
    assert download(s, file_id)[1] == data


@embedded_only
def test_sigint_stops_everything_cleanly(tmp_path):
    """One JSON line on stdout; SIGINT stops server and SeaweedFS; sockets removed."""
    data_dir = tmp_path / "srv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ghga_tasks", "serve", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = json.loads(proc.stdout.readline())
        assert set(line) == {"upload_api", "drs_api", "admin_api", "s3_endpoint"}
        assert line["upload_api"].endswith("/upload")
        assert line["drs_api"].endswith("/ga4gh/drs/v1")
        assert line["admin_api"].endswith("/admin")
        base = line["upload_api"][: -len("/upload")]
        for path in ("/health", "/upload/health", "/ga4gh/drs/v1/health"):
            assert requests.get(base + path, timeout=T).json() == {"status": "OK"}
        weed_pid = int((data_dir / "seaweedfs" / "weed.pid").read_text())
        ports = json.loads((data_dir / "seaweedfs" / "ports.json").read_text()).values()
        assert all(p <= 55535 for p in ports)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert out == b""  # nothing after the JSON line
    assert not os.path.exists(f"/proc/{weed_pid}")
    assert not (data_dir / "seaweedfs" / "weed.pid").exists()
    for port in ports:
        assert glob.glob(f"/tmp/seaweedfs-*-{port}.sock") == []
        assert glob.glob(f"/tmp/seaweedfs-*-{port + 10000}.sock") == []


def test_data_dir_in_use(stack):
    r = _serve_until_exit(stack.data_dir)
    assert r.returncode == 78
    assert b"another server" in r.stderr
    assert r.stdout == b""
    assert requests.get(f"{stack.url}/health", timeout=T).status_code == 200


def test_register_flag(special_stack):
    """special_stack was started (and is restarted) with two --register flags."""
    files = {
        f["file_id"]: f for f in requests.get(f"{special_stack.admin_api}/files", timeout=T).json()
    }
    for file_id, (size, sha) in REGISTERED.items():
        assert files[file_id]["size"] == size
        assert files[file_id]["sha256"] == sha


def test_register_flag_conflict_exits_78(tmp_path):
    registers = ("--register", "same=10", "--register", "same=11")
    r = _serve_until_exit(tmp_path, *registers, *_backend_flags(), timeout=120)
    assert r.returncode == 78, r.stderr.decode()
    assert b"--register same" in r.stderr


@pytest.mark.parametrize("arg", ["noequals", "x=1:nothex"])
def test_register_flag_invalid(arg, tmp_path):
    r = _serve_until_exit(tmp_path, "--register", arg)
    assert r.returncode == 2, r.stderr.decode()
    assert b"--register" in r.stderr


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a=10", ("a", 10, None)),
        ("a.b-c=0:" + "AB" * 32, ("a.b-c", 0, "ab" * 32)),
    ],
)
def test_parse_registration(text, expected):
    from ghga_tasks.server.config import parse_registration

    reg = parse_registration(text)
    assert (reg.file_id, reg.size, reg.sha256) == expected


@pytest.mark.parametrize("text", ["noequals", "=5", "x=abc", "x=-1", "x=1:nothex", "bad id=1"])
def test_parse_registration_invalid(text):
    from ghga_tasks.server.config import parse_registration

    with pytest.raises(ValueError):
        parse_registration(text)


@embedded_only
def test_bucket_prefix(special_stack):
    assert special_stack.s3_info()["buckets"] == {
        "inbox": "pfx-inbox",
        "permanent": "pfx-permanent",
        "outbox": "pfx-outbox",
    }
    s3, _ = s3_client(special_stack)
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {"pfx-inbox", "pfx-permanent", "pfx-outbox"} <= names


def _backend_flags() -> list:
    env = env_backend()
    if not env["s3_endpoint"]:
        return []
    return s3_args(env["s3_endpoint"], env["access_key"], env["secret_key"])


def test_second_server_on_the_same_s3_store(stack, tmp_path):
    """--s3-endpoint with another server's store; --bucket-prefix keeps them apart."""
    info = stack.s3_info()
    other = start_stack(
        tmp_path / "other",
        "--bucket-prefix",
        f"o{new_id('')[1:]}-",
        s3_endpoint=info["endpoint"],
        access_key=info["access_key"],
        secret_key=info["secret_key"],
    )
    try:
        assert other.s3_endpoint == info["endpoint"]
        assert not (other.data_dir / "seaweedfs").exists()
        data = payload(2000)
        file_id = new_id()
        for s in (stack, other):  # the same id on both servers, different content
            s.register(file_id, len(data) + (s is other))
        for s, body in ((stack, data), (other, data + b"!")):
            attempt = start(s, file_id)
            put_parts(s, attempt, body)
            assert patch(s, attempt["upload_id"], "uploaded", body).status_code == 204
            assert s.wait_accepted(attempt["upload_id"])["status"] == "accepted"
        assert download(stack, file_id)[1] == data
        assert download(other, file_id)[1] == data + b"!"
    finally:
        other.stop()
