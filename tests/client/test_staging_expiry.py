"""Staging waits (202 + Retry-After), deadlines, and pre-signed URLs expiring mid-transfer."""

from __future__ import annotations

import re

from helpers import MiB, json_line


def test_waits_for_staging(client, tmp_path):
    file_id, src, sha = client.put(tmp_path, MiB)
    client.stack.configure(staging_delay=3, retry_after=1)
    out = tmp_path / "out"
    out.mkdir()
    proc = client.download_ok(file_id, out, sha)
    assert json_line(proc)["seconds"] >= 2.5
    assert "DRS is staging" not in proc.stderr  # a short wait stays quiet


def test_a_long_staging_is_said_on_stderr(client, tmp_path):
    """A log has no progress bar: a wait past 10 s is said, once within its first minute."""
    file_id, src, sha = client.put(tmp_path, MiB)
    client.stack.configure(staging_delay=14, retry_after=1)
    out = tmp_path / "out"
    out.mkdir()
    proc = client.download_ok(file_id, out, sha)
    assert proc.stderr.count("DRS is staging the object; asking again in") == 1, proc.stderr


def test_max_wait_deadline_then_resume(client, tmp_path):
    file_id, src, sha = client.put(tmp_path, MiB)
    client.stack.configure(staging_delay=8, retry_after=1)
    out = tmp_path / "out"
    out.mkdir()
    proc = client.download(file_id, out, "--max-wait", "2", "--verbose")
    assert proc.returncode == 75, proc.stderr
    assert "still being staged after 2 s" in proc.stderr
    # the deadline is the user's: the runner's DAG-level retry must not stretch it
    assert "running the transfer again" not in proc.stderr
    assert not (out / file_id).exists()
    client.download_ok(file_id, out, sha, "--max-wait", "30")


def test_download_urls_expire_mid_transfer(client, tmp_path):
    """URLs live 1 s; the rate cap makes the download take several seconds."""
    file_id, src, sha = client.put(tmp_path, 24 * MiB)
    client.stack.configure(url_lifetime=1)
    out = tmp_path / "out"
    out.mkdir()
    proc = client.download_ok(
        file_id,
        out,
        sha,
        "--max-rate",
        "6MiB",
        "--part-size",
        "2MiB",
        "--parallel",
        "2",
        "--verbose",
    )
    assert "fresh URL" in proc.stderr, "expiry never happened; the test proves nothing"
    assert json_line(proc)["url_refreshes"] == proc.stderr.count("asking for a fresh URL") >= 1
    assert_no_signatures(proc.stderr + proc.stdout, client.state_dir)


def test_upload_with_short_lived_urls(client, tmp_path):
    client.stack.configure(url_lifetime=1)
    file_id, src, sha = client.put(tmp_path, 3 * 16 * MiB)
    out = tmp_path / "out"
    out.mkdir()
    client.download_ok(file_id, out, sha)


def assert_no_signatures(text: str, state_dir) -> None:
    pattern = re.compile(r"X-Amz-Signature|X-Amz-Credential|Signature=|AWSAccessKeyId")
    assert not pattern.search(text), text
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert not pattern.search(path.read_text(errors="replace")), path
