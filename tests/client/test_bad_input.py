"""Bad input: one clear line on stderr, the documented exit code, nothing at the final path."""

from __future__ import annotations

import hashlib
import json
import os

import boto3
import pytest
from botocore.config import Config
from helpers import (
    MiB,
    api_error,
    cli,
    cli_download,
    cli_upload,
    json_line,
    make_file,
    new_id,
    one_line_error,
    stub_object,
    upload_api,
)


def test_unknown_file_id(client, tmp_path):
    src = tmp_path / "src"
    make_file(src, 10)
    one_line_error(client.upload("no-such-file", src), 69, "not registered")
    out = tmp_path / "out"
    out.mkdir()
    one_line_error(client.download("no-such-file", out), 69, "no-such-file")


def test_unreachable_api(tmp_path):
    src = tmp_path / "src"
    make_file(src, 10)
    api = "http://127.0.0.1:9/upload"
    no_retries = {"GHGA_TASKS_TASK_RETRIES": "0"}  # retries and their notices: test_papercuts
    proc = cli_upload(api, "x", src, tmp_path / "s", "--retries", "0", env=no_retries)
    one_line_error(proc, 75, "cannot reach the API", "connection refused")


def test_api_answering_junk(stub, tmp_path):
    junk = stub(lambda m, p, h: (200, {"Content-Type": "text/html"}, b"<html>proxy login</html>"))
    out = tmp_path / "out"
    out.mkdir()
    proc = cli_download(junk.url, "x", out, tmp_path / "s")
    one_line_error(proc, 69, "not JSON")
    assert os.listdir(out) == []


def test_api_forbidden_is_77(stub, tmp_path):
    api = stub(api_error(403, "noFileAccess", "denied"))
    src = tmp_path / "src"
    make_file(src, 10)
    proc = cli_upload(api.url, "x", src, tmp_path / "s", "--token", "tok123")
    one_line_error(proc, 77, "noFileAccess")
    assert api.requests[0][2].get("Authorization") == "Bearer tok123"
    assert "tok123" not in proc.stderr


def test_missing_or_unreadable_local_file(client, tmp_path):
    file_id = new_id()
    client.stack.register(file_id, 10)
    one_line_error(client.upload(file_id, tmp_path / "nope"), 66, "not found")
    one_line_error(client.upload(file_id, tmp_path), 66, "directory")


def test_local_size_differs_from_registered(client, tmp_path):
    file_id = new_id()
    client.stack.register(file_id, 11)
    src = tmp_path / "src"
    make_file(src, 10)
    one_line_error(client.upload(file_id, src), 65, "10 bytes", "11 bytes")


def test_local_content_differs_from_registered_sha(client, tmp_path):
    file_id = new_id()
    src = tmp_path / "src"
    make_file(src, 2 * MiB)
    client.stack.register(file_id, 2 * MiB, sha256="0" * 64)
    one_line_error(client.upload(file_id, src), 65, "SHA-256")


def test_output_already_present(client, tmp_path):
    file_id, src, sha = client.put(tmp_path, MiB)
    out = tmp_path / "out"
    out.mkdir()
    (out / file_id).write_bytes(src.read_bytes())
    same = client.download(file_id, out)
    assert same.returncode == 0, same.stderr
    assert json_line(same)["status"] == "present"
    assert json_line(same)["bytes_transferred"] == 0

    other = tmp_path / "out2"
    other.mkdir()
    (other / file_id).write_bytes(b"something else")
    one_line_error(client.download(file_id, other), 73, "already exists", "--overwrite")
    assert (other / file_id).read_bytes() == b"something else"
    client.download_ok(file_id, other, sha, "--overwrite")


def test_output_dir_missing_or_read_only(client, tmp_path, mount_tmpfs):
    file_id, src, sha = client.put(tmp_path, MiB)
    one_line_error(client.download(file_id, tmp_path / "missing"), 73, "does not exist")
    read_only = mount_tmpfs("ro", 4 * MiB, readonly=True)
    one_line_error(client.download(file_id, read_only), 73, "not writable")


def test_disk_full_then_resume_after_freeing_space(client, tmp_path, mount_tmpfs):
    file_id, src, sha = client.put(tmp_path, 12 * MiB)
    small = mount_tmpfs("small", 8 * MiB)
    one_line_error(client.download(file_id, small), 73, "disk full")
    assert not (small / file_id).exists()
    os.system(f"mount -o remount,size={32 * MiB} {small}")
    client.download_ok(file_id, small, sha)


def test_checksum_mismatch_keeps_bytes_aside(client, tmp_path):
    file_id, src, sha = client.put(tmp_path, 2 * MiB)
    out = tmp_path / "out"
    out.mkdir()
    assert client.download(file_id, out).returncode == 0  # stages it into the outbox
    # corrupt the staged copy in S3 behind the server's back: same size, other bytes
    info = client.stack.s3_info()
    s3 = boto3.client(
        "s3",
        endpoint_url=info["endpoint"],
        aws_access_key_id=info["access_key"],
        aws_secret_access_key=info["secret_key"],
        region_name=info["region"],
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.put_object(Bucket=info["buckets"]["outbox"], Key=file_id, Body=os.urandom(2 * MiB))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    proc = client.download(file_id, fresh)
    one_line_error(proc, 65, "does not verify", "sha256")
    assert not (fresh / file_id).exists()
    assert (fresh / f".{file_id}.ghga-corrupt").stat().st_size == 2 * MiB


def test_size_mismatch_from_storage(stub, tmp_path):
    """DRS says 100 bytes, storage has 50: a size error, nothing at the final path."""
    srv = stub_object(stub, os.urandom(50), "0" * 64, size=100)
    out = tmp_path / "out"
    out.mkdir()
    proc = cli_download(srv.url, "x", out, tmp_path / "s", "--retries", "1")
    one_line_error(proc, 65, "storage has 50 bytes but the object size is 100")
    assert not (out / "x").exists()


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "..", "a\\b"])
def test_file_id_escaping_output_dir(tmp_path, bad_id):
    out = tmp_path / "out"
    out.mkdir()
    proc = cli_download("http://127.0.0.1:9", bad_id, out, tmp_path / "s")
    one_line_error(proc, 2, "cannot be used as a file name")
    assert os.listdir(out) == []


@pytest.mark.parametrize(
    "retry_after", [None, "-5", "999999", "Wed, 21 Oct 2015 07:28:00 GMT", "soon"]
)
def test_odd_retry_after_values(stub, tmp_path, retry_after):
    data = os.urandom(3000)
    polls = []

    def staging(path):
        polls.append(path)
        if len(polls) < 3:
            return 202, {"Retry-After": retry_after} if retry_after is not None else {}, b""

    srv = stub_object(stub, data, path="/d?s=1", staging=staging)
    out = tmp_path / "out"
    out.mkdir()
    # the cap keeps huge or missing values short: every single wait is at most 1 s here
    cap = {"GHGA_TASKS_RETRY_AFTER_CAP": "1"}
    proc = cli_download(srv.url, "x", out, tmp_path / "s", "--json", env=cap)
    assert proc.returncode == 0, proc.stderr
    assert (out / "x").read_bytes() == data
    assert len(polls) >= 3


def test_bad_flag_values_are_usage_errors(tmp_path):
    for flag, value in (("--part-size", "lots"), ("--parallel", "0")):
        proc = cli_download("http://127.0.0.1:9", "x", tmp_path, None, flag, value)
        assert proc.returncode == 2, (flag, proc.stderr)
    proc = cli("upload-by-id", "--api-url", "http://127.0.0.1:9")
    assert proc.returncode == 2
    assert "--file-id" in proc.stderr


def test_bad_config_file_is_78(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("paralel = 3\n")
    proc = cli_download("http://127.0.0.1:9", "x", tmp_path, None, "--config", str(config))
    one_line_error(proc, 78, "unknown setting 'paralel'")


def test_etag_mismatch_resends_the_part(stub, tmp_path):
    """Storage answers the first PUT with an ETag that is not the part's MD5: sent again."""
    src = tmp_path / "src"
    data = os.urandom(3 * MiB)
    src.write_bytes(data)
    puts = []
    srv = stub(upload_api(lambda: srv.url, data, puts=puts, etags=["0" * 32]))
    proc = cli_upload(srv.url, "x", src, tmp_path / "s", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(puts) == 2
    assert all(h.get("Content-Length") == str(len(data)) for h in puts)
    assert not any("chunked" in h.get("Transfer-Encoding", "") for h in puts)
    assert json_line(proc)["sha256"] == hashlib.sha256(data).hexdigest()


def test_move_across_filesystems(client, tmp_path, mount_tmpfs):
    """Partial on one filesystem, output on another: copied durably, or a clean 73."""
    file_id, src, sha = client.put(tmp_path, 6 * MiB)
    partials = tmp_path / "partials"
    partials.mkdir()
    tiny = mount_tmpfs("tiny", 4 * MiB)
    proc = client.download(file_id, tiny, "--partial-dir", str(partials))
    one_line_error(proc, 73, "disk full", "the verified bytes stay at")
    assert os.listdir(tiny) == []  # no temp file left behind
    assert (partials / f".{file_id}.ghga-part").stat().st_size == 6 * MiB
    roomy = mount_tmpfs("roomy", 16 * MiB)
    again = client.download_ok(file_id, roomy, sha)  # resumes from the verified partial
    assert json_line(again)["bytes_transferred"] == 0
    assert os.listdir(partials) == []
    # the copy keeps the partial's mtime, so done.json vouches for it without a re-hash
    done = json.loads(next(client.state_dir.glob("downloads/*/done.json")).read_text())
    assert done["mtime_ns"] == (roomy / file_id).stat().st_mtime_ns


def test_unusable_state_dir_is_73(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    proc = cli_download("http://127.0.0.1:9", "x", tmp_path, blocker / "sub")
    one_line_error(proc, 73, "cannot create state dir")


def test_server_text_stays_one_line_and_bodies_are_not_echoed(stub, tmp_path):
    def handler(method, path, headers):
        if path == "/objects/multi":
            return (
                404,
                {"Content-Type": "application/json"},
                json.dumps(
                    {"exception_id": "noSuchObject", "description": "no\nsuch\n\nobject"}
                ).encode(),
            )
        body = {
            "size": 5,
            "access_methods": [
                {
                    "type": "s3",
                    "access_url": {"url": "http://127.0.0.1:9/b/k?X-Amz-Signature=SECRETSIG"},
                }
            ],
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    srv = stub(handler)
    out = tmp_path / "out"
    out.mkdir()
    base = ("download-by-id", "--api-url", srv.url, "--output-dir", str(out))
    proc = cli(*base, "--file-id", "multi", "--state-dir", str(tmp_path / "s1"))
    one_line_error(proc, 69, "no such object")
    proc = cli(*base, "--file-id", "noid", "--state-dir", str(tmp_path / "s2"))
    one_line_error(proc, 69, "answered without id")
    assert "SECRETSIG" not in proc.stderr
    for path in (tmp_path / "s2").rglob("*"):
        if path.is_file():
            assert "SECRETSIG" not in path.read_text(errors="replace")


def test_invalid_part_size_from_api_is_69(stub, tmp_path):
    def handler(method, path, headers):
        js = {"Content-Type": "application/json"}
        if path == "/files/x":
            return 200, js, b'{"file_id": "x", "size": 10}'
        return 200, js, b'{"upload_id": "u", "file_id": "x", "part_size": 0, "status": "pending"}'

    srv = stub(handler)
    src = tmp_path / "src"
    src.write_bytes(b"0123456789")
    proc = cli_upload(srv.url, "x", src, tmp_path / "s")
    one_line_error(proc, 69, "invalid part_size 0")
