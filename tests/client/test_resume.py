"""Kill the real process with SIGKILL mid-transfer, run again, and check what was resumed."""

from __future__ import annotations

import json
import os
import signal

import pytest
from helpers import (
    MiB,
    bytes_logged,
    json_line,
    kill,
    kill_when,
    parts_logged,
    ranges_logged,
    sha256_of,
    wait_until,
)

PART = 16 * MiB


def test_upload_killed_then_resumed(client, tmp_path):
    size = 8 * PART + 3
    file_id, src, sha = client.new_file(tmp_path, size)
    proc = client.start_upload(file_id, src, "--max-rate", "24MiB", "--parallel", "2")
    kill_when(proc, lambda: len(parts_logged(client.state_dir)) >= 2)
    stored = parts_logged(client.state_dir)
    stored_bytes = sum(e["size"] for e in stored)
    assert 2 <= len(stored) < 9

    again = client.upload(file_id, src, "--wait")
    assert again.returncode == 0, again.stderr
    result = json_line(again)
    # only parts that were not in the ledger were sent again
    assert result["bytes_resumed"] == stored_bytes
    assert result["bytes_transferred"] == size - stored_bytes
    assert result["sha256"] == sha
    assert result["status"] == "accepted"

    out = tmp_path / "out"
    out.mkdir()
    client.download_ok(file_id, out, sha)


def test_download_killed_then_resumed(client, tmp_path):
    size = 6 * PART + 11
    file_id, sha, out, proc = client.put_and_start_download(
        tmp_path, size, "--max-rate", "24MiB", "--parallel", "2", "--part-size", "4MiB"
    )
    kill_when(proc, lambda: len(ranges_logged(client.state_dir)) >= 3)
    done_bytes = bytes_logged(client.state_dir)
    assert not (out / file_id).exists(), "a partial download must never sit at the final path"
    assert (out / f".{file_id}.ghga-part").exists()

    result = json_line(client.download_ok(file_id, out, sha))
    assert result["bytes_resumed"] == done_bytes
    assert result["bytes_transferred"] == size - done_bytes
    assert not (out / f".{file_id}.ghga-part").exists()


def test_second_process_on_same_file_is_refused(client, tmp_path):
    file_id, sha, out, first = client.put_and_start_download(
        tmp_path, 4 * PART, "--max-rate", "8MiB", "--part-size", "4MiB"
    )
    try:
        wait_until(lambda: ranges_logged(client.state_dir), "a range logged", 60, first)
        second = client.download(file_id, out)
        assert second.returncode == 75, second.stderr
        assert "another ghga-cli process" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        kill(first)
    client.download_ok(file_id, out, sha)


def test_power_loss_keeps_only_checkpointed_ranges():
    """After a reboot (other boot id) only ranges before a durable checkpoint count."""
    from ghga_tasks.partial import trusted_ranges

    entries = [
        {"offset": 0, "size": 4, "boot": "a"},
        {"offset": 4, "size": 4, "boot": "a"},
        {"durable": 2},
        {"offset": 8, "size": 4, "boot": "a"},
    ]
    assert trusted_ranges(entries, "a") == [(0, 4), (4, 4), (8, 4)]
    assert trusted_ranges(entries, "b") == [(0, 4), (4, 4)]
    assert trusted_ranges(entries[:2], "b") == []


def test_sigterm_exits_130_and_keeps_state(client, tmp_path):
    file_id, sha, out, proc = client.put_and_start_download(
        tmp_path, 4 * PART, "--max-rate", "16MiB", "--part-size", "4MiB"
    )
    wait_until(lambda: len(ranges_logged(client.state_dir)) >= 2, "two ranges logged", 60, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "resume" in stderr
    assert not (out / file_id).exists()
    kept = bytes_logged(client.state_dir)
    again = client.download_ok(file_id, out, sha)
    assert json_line(again)["bytes_resumed"] == kept > 0


def test_resume_into_another_output_dir_and_partial_dir(client, tmp_path):
    """Nextflow and CWL give each attempt a new output dir: the partial bytes still count."""
    size = 4 * PART
    file_id, src, sha = client.put(tmp_path, size)
    first_out, second_out, parts_dir = tmp_path / "a", tmp_path / "b", tmp_path / "partials"
    for d in (first_out, second_out, parts_dir):
        d.mkdir()
    proc = client.start_download(
        file_id,
        first_out,
        "--partial-dir",
        str(parts_dir),
        "--max-rate",
        "16MiB",
        "--part-size",
        "4MiB",
    )
    kill_when(proc, lambda: len(ranges_logged(client.state_dir)) >= 2)
    assert (parts_dir / f".{file_id}.ghga-part").exists()
    assert os.listdir(first_out) == []
    kept = bytes_logged(client.state_dir)
    again = client.download_ok(file_id, second_out, sha)
    assert json_line(again)["bytes_resumed"] == kept > 0
    assert os.listdir(parts_dir) == [] and os.listdir(first_out) == []


def test_after_reboot_untrusted_ranges_are_dropped_for_good(client, tmp_path, monkeypatch):
    """A ledger from another boot keeps only checkpointed ranges, restamped, so a later
    checkpoint can never vouch for bytes the earlier boot may have lost."""
    import ghga_tasks
    from ghga_tasks import download_steps, state
    from ghga_tasks.errors import TransientError

    size = 2 * PART
    file_id, src, sha = client.put(tmp_path, size)
    first = tmp_path / "first"
    first.mkdir()
    assert client.download(file_id, first).returncode == 0
    tdir = next((client.state_dir / "downloads").glob(f"{file_id}-*"))
    obj = json.loads((tdir / "object.json").read_text())
    # a partial whose second range was "lost" in a power cut, and its ledger from boot "old"
    out = tmp_path / "out"
    out.mkdir()
    part = out / f".{file_id}.ghga-part"
    part.write_bytes(src.read_bytes()[:PART] + bytes(PART))
    (tdir / "partial.json").write_text(json.dumps({"path": str(part)}))
    header = {"id": obj["id"], "size": size, "checksum": obj["checksums"][0]["checksum"]}
    lines = [
        {"header": header},
        {"offset": 0, "size": PART, "boot": "old"},
        {"durable": 1},
        {"offset": PART, "size": PART, "boot": "old"},
    ]
    (tdir / "ranges.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    monkeypatch.setattr(state, "boot_id", lambda: "new")

    def stop(*args):  # stop right after the ledger was looked at
        raise TransientError("stopped by the test")

    with monkeypatch.context() as patched:
        patched.setattr(download_steps.Engine, "run", stop)
        with pytest.raises(TransientError):
            ghga_tasks.download_by_id(
                client.stack.drs_api,
                file_id,
                str(out),
                retries=0,
                task_retries=0,
                state_dir=str(client.state_dir),
                quiet=True,
            )
    kept = [json.loads(x) for x in (tdir / "ranges.jsonl").read_text().splitlines()[1:]]
    assert kept == [{"offset": 0, "size": PART, "boot": "new"}, {"durable": 1}]

    result = ghga_tasks.download_by_id(
        client.stack.drs_api, file_id, str(out), state_dir=str(client.state_dir), quiet=True
    )
    assert result.bytes_resumed == PART and result.bytes_transferred == PART
    assert sha256_of(out / file_id) == sha


def test_after_reboot_a_finished_download_is_checked_again(client, tmp_path, monkeypatch):
    """The final file is not fsynced before its rename: after a reboot, the next run re-hashes
    it, and downloads it again if a power cut took bytes (here: zeroed by hand)."""
    import ghga_tasks
    from ghga_tasks import state

    file_id, src, sha = client.put(tmp_path, 2 * MiB)
    out = tmp_path / "out"
    out.mkdir()
    kwargs = dict(state_dir=str(client.state_dir), quiet=True)
    assert (
        ghga_tasks.download_by_id(client.stack.drs_api, file_id, str(out), **kwargs).status
        == "downloaded"
    )
    same = ghga_tasks.download_by_id(client.stack.drs_api, file_id, str(out), **kwargs)
    assert same.status == "complete"  # same boot: trusted without reading
    monkeypatch.setattr(state, "boot_id", lambda: "after-reboot")
    checked = ghga_tasks.download_by_id(client.stack.drs_api, file_id, str(out), **kwargs)
    assert checked.status == "present" and checked.bytes_transferred == 0
    with open(out / file_id, "r+b") as fh:  # the power cut
        fh.seek(MiB)
        fh.write(bytes(MiB))
    monkeypatch.setattr(state, "boot_id", lambda: "after-second-reboot")
    again = ghga_tasks.download_by_id(client.stack.drs_api, file_id, str(out), **kwargs)
    assert again.status == "downloaded" and again.bytes_transferred == 2 * MiB
    assert sha256_of(out / file_id) == sha


def test_finished_download_ledger_never_vouches_for_a_new_download(client, tmp_path):
    """After success the ledger stays (unlinking it would wait for the disk); a download of
    the same id again, after the file was deleted or with --overwrite, moves every byte."""
    size = 3 * PART + 7
    file_id, src, sha = client.put(tmp_path, size)
    out = tmp_path / "out"
    out.mkdir()
    first = client.download(file_id, out, "--part-size", "8MiB")
    assert first.returncode == 0, first.stderr
    assert len(ranges_logged(client.state_dir)) >= 4

    (out / file_id).unlink()
    result = json_line(client.download_ok(file_id, out, sha, "--part-size", "8MiB"))
    assert (result["bytes_transferred"], result["bytes_resumed"]) == (size, 0)

    (out / file_id).write_bytes(b"x" * size)  # same size, other bytes
    result = json_line(client.download_ok(file_id, out, sha, "--part-size", "8MiB", "--overwrite"))
    assert (result["bytes_transferred"], result["bytes_resumed"]) == (size, 0)
    assert not list(out.glob(".*")), "no partial or temp files left behind"
