"""Upload then download through the CLI against the live stack; bytes must be equal."""

from __future__ import annotations

import json

import pytest
from helpers import MiB, cli_download, json_line

PART = 16 * MiB  # the server's part size for files up to 160 GiB


@pytest.mark.parametrize("size", [0, 1, PART, PART + 1], ids=["0B", "1B", "one-part", "part+1"])
def test_round_trip_sizes(client, tmp_path, size):
    file_id, src, sha = client.put(tmp_path, size)
    out = tmp_path / "out"
    out.mkdir()
    proc = client.download(file_id, out)
    assert proc.returncode == 0, proc.stderr
    result = json_line(proc)
    assert (out / file_id).read_bytes() == src.read_bytes()
    assert result["sha256"] == sha
    assert result["size"] == size
    assert result["status"] == "downloaded"
    assert result["bytes_transferred"] == size
    assert not list(out.glob(".*")), "no partial or temp files left behind"


def test_large_file_many_ranges_and_json_fields(client, tmp_path):
    size = 300 * MiB + 12345
    file_id, src, sha = client.put(tmp_path, size)
    out = tmp_path / "out"
    out.mkdir()
    proc = client.download_ok(file_id, out, sha, "--part-size", "8MiB", "--parallel", "3")
    result = json_line(proc)
    for key in (
        "file_id",
        "path",
        "size",
        "sha256",
        "bytes_transferred",
        "bytes_resumed",
        "seconds",
        "status",
    ):
        assert key in result, key
    assert result["file_id"] == file_id
    assert result["path"] == str(out / file_id)
    assert result["bytes_resumed"] == 0
    assert result["seconds"] > 0
    assert result["parts"] == 38  # ranges of 8 MiB
    assert result["url_refreshes"] == 0


def test_upload_json_and_rerun_is_noop(client, tmp_path):
    file_id, src, sha = client.new_file(tmp_path, 2 * PART + 5)
    proc = client.upload(file_id, src, "--wait")
    assert proc.returncode == 0, proc.stderr
    first = json_line(proc)
    assert first["status"] == "accepted"
    assert first["sha256"] == sha
    assert first["bytes_transferred"] == 2 * PART + 5
    assert first["upload_id"]
    assert (first["parts"], first["url_refreshes"]) == (3, 0)
    again = client.upload(file_id, src, "--wait")
    assert again.returncode == 0, again.stderr
    second = json_line(again)
    assert second["bytes_transferred"] == 0
    assert second["parts"] == 0  # nothing moved
    assert second["status"] == "accepted"  # what it is, not "complete"
    # the server really has it: the attempt is accepted
    attempt = client.stack.session.get(
        f"{client.stack.upload_api}/uploads/{first['upload_id']}", timeout=10
    ).json()
    assert attempt["status"] == "accepted"


def test_download_rerun_moves_no_bytes(client, tmp_path):
    file_id, src, sha = client.put(tmp_path, 3 * MiB)
    out = tmp_path / "out"
    out.mkdir()
    assert client.download(file_id, out).returncode == 0
    client.stack.configure(error_rate=1.0)  # any API call would now fail
    proc = client.download(file_id, out, "--retries", "0")
    assert proc.returncode == 0, proc.stderr
    result = json_line(proc)
    assert result["bytes_transferred"] == 0
    assert result["status"] == "complete"
    assert result["sha256"] == sha


def test_api_errors_are_retried(client, tmp_path):
    """A quarter of API calls answer 503/429 with Retry-After; the transfer still succeeds."""
    client.stack.configure(error_rate=0.25)
    file_id, src, sha = client.put(tmp_path, PART + 7)
    out = tmp_path / "out"
    out.mkdir()
    client.download_ok(file_id, out, sha, "--retries", "8")


def test_both_flag_spellings_and_env_settings(client, tmp_path):
    """client.download spells the options --api_url ...; here --api-url ..."""
    file_id, src, sha = client.put(tmp_path, MiB)
    out = tmp_path / "out"
    out.mkdir()
    env = {"GHGA_TASKS_STATE_DIR": str(tmp_path / "envstate"), "GHGA_TASKS_PARALLEL": "2"}
    proc = cli_download(client.stack.drs_api, file_id, out, None, "--json", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sha256"] == sha
    assert (tmp_path / "envstate" / "downloads").is_dir()
