"""The archive holds the submitter's bytes: corrupted parts, other bytes, stale state, two writers.

Each test drives the real CLI against the live stack twice: on the default backend
(SeaweedFS, or the S3 store the environment names) and on Ceph RGW.
"""

from __future__ import annotations

import pytest
from helpers import (
    Client,
    MiB,
    json_line,
    kill,
    make_file,
    new_id,
    one_line_error,
    parts_logged,
    upload_with_a_part_corrupted_once,
    wait_until,
)

PART = 16 * MiB


@pytest.fixture(params=["default", pytest.param("ceph", marks=pytest.mark.ceph)])
def client(request, tmp_path) -> Client:
    """The CLI against the default stack, then against the reference server on Ceph RGW."""
    stack = request.getfixturevalue("ceph_server" if request.param == "ceph" else "stack")
    stack.reset()
    return Client(stack, tmp_path / "state")


def _attempt(stack, upload_id: str) -> dict:
    return stack.session.get(f"{stack.upload_api}/uploads/{upload_id}", timeout=30).json()


def test_part_corrupted_in_transit_is_sent_again_and_completion_uses_the_good_copy(
    client, tmp_path
):
    """A bit flipped on the way to S3: the ETag shows it, the client sends the part again,
    and the server completes with the copy whose MD5 the client confirmed (no SHA-256 is
    registered, so nothing else would notice)."""
    size = 2 * PART + 10
    file_id, src, sha = client.new_file(tmp_path, size, register_sha=False)
    proc, proxy = upload_with_a_part_corrupted_once(client, file_id, src, 2, "--wait")
    assert proc.returncode == 0, proc.stderr
    assert len(proxy.corrupted) == 1, proxy.requests
    assert sum(1 for m, u in proxy.requests if m == "PUT") == 4  # three parts, one twice
    result = json_line(proc)
    assert result["status"] == "accepted" and result["sha256"] == sha
    assert result["bytes_resent"] == PART and result["bytes_transferred"] == size
    assert _attempt(client.stack, result["upload_id"])["sha256"] == sha
    out = tmp_path / "out"
    out.mkdir()
    client.download_ok(file_id, out, sha)


@pytest.mark.parametrize("registered", [True, False], ids=["sha-registered", "no-sha"])
def test_other_bytes_for_a_finished_file_are_not_reported_uploaded(client, tmp_path, registered):
    size = PART + 5
    file_id, src, sha = client.put(tmp_path, size, register_sha=registered)
    other = tmp_path / "other"
    make_file(other, size)
    proc = Client(client.stack, tmp_path / "state2").upload(file_id, other, "--wait")
    one_line_error(proc, 65, "already holds other bytes")
    assert proc.stdout == ""
    # the same bytes from yet another state dir: nothing sent, and known to be this file
    same = Client(client.stack, tmp_path / "state3").upload(file_id, src, "--wait")
    assert same.returncode == 0, same.stderr
    result = json_line(same)
    assert result["status"] == "accepted" and result["sha256"] == sha
    assert result["bytes_transferred"] == 0


@pytest.mark.parametrize("new_size", [PART + 5, PART + 999], ids=["same-size", "other-size"])
def test_download_after_the_object_changed_on_the_server(client, tmp_path, new_size):
    file_id, _, _ = client.put(tmp_path, PART + 5)
    first = tmp_path / "out1"
    first.mkdir()
    assert client.download(file_id, first).returncode == 0
    # same id, new content: deleted, registered and uploaded again
    client.stack.delete(file_id)
    new = tmp_path / "new"
    new_sha = make_file(new, new_size)
    client.stack.register(file_id, new_size, sha256=new_sha)
    up = Client(client.stack, tmp_path / "state2").upload(file_id, new, "--wait")
    assert up.returncode == 0, up.stderr
    second = tmp_path / "out2"
    second.mkdir()
    proc = client.download_ok(file_id, second, new_sha)
    assert json_line(proc)["size"] == new_size


def test_upload_starts_a_new_attempt_when_the_server_forgot_the_old_one(client, tmp_path):
    size = PART + 5
    file_id = new_id()
    src = tmp_path / "src"
    sha = make_file(src, size)
    client.stack.register(file_id, size, sha256="0" * 64)  # wrong: the first run stops
    first = client.upload(file_id, src)
    assert first.returncode == 65, first.stderr
    client.stack.delete(file_id)  # the attempt is gone with the file
    client.stack.register(file_id, size, sha256=sha)
    second = client.upload(file_id, src, "--wait")
    assert second.returncode == 0, second.stderr
    assert json_line(second)["sha256"] == sha


def test_second_uploader_from_another_state_dir_is_refused_at_once(client, tmp_path):
    file_id, src, sha = client.new_file(tmp_path, 6 * PART)
    first = client.start_upload(file_id, src, "--max-rate", "8MiB", "--parallel", "1")
    try:
        wait_until(lambda: parts_logged(client.state_dir), "a part stored", 120, first)
        second = Client(client.stack, tmp_path / "state2").upload(file_id, src)
        one_line_error(second, 75, "another client is uploading")
    finally:
        kill(first)
    third = client.upload(file_id, src, "--wait")
    assert third.returncode == 0, third.stderr
    assert json_line(third)["sha256"] == sha
