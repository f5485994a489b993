"""Full disks, long file ids, FIFOs and file systems without locks: a clear error, nothing left."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from helpers import (
    MiB,
    cli_download,
    cli_upload,
    json_line,
    make_file,
    new_id,
    one_line_error,
    sha256_of,
)

from ghga_tasks import state
from ghga_tasks.errors import LockedError, OutputError
from ghga_tasks.partial import NAME_MAX, partial_path, side_path


def fill(directory: Path) -> None:
    """Write until the file system is full."""
    with open(directory / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * MiB)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


@pytest.mark.parametrize("length", [200, 244, 245, 250, 255])
def test_side_names_always_fit(length):
    file_id = "a" * (length - 1) + "z"
    names = {
        suffix: side_path("/out", file_id, suffix).name
        for suffix in ("ghga-part", "ghga-corrupt", "ghga-tmp")
    }
    for suffix, name in names.items():
        assert len(name.encode()) <= NAME_MAX and name.startswith(".") and name.endswith(suffix)
    # distinct ids keep distinct names
    other = "a" * (length - 1) + "y"
    assert partial_path("/out", other) != partial_path("/out", file_id)


def test_file_id_of_255_characters_round_trip(client, tmp_path):
    file_id = new_id() + "x" * (255 - len(new_id()))
    assert len(file_id) == 255
    src = tmp_path / "src"
    sha = make_file(src, 3 * MiB + 1)
    client.stack.register(file_id, 3 * MiB + 1, sha256=sha)
    up = client.upload(file_id, src, "--wait")
    assert up.returncode == 0, up.stderr
    out = tmp_path / "out"
    out.mkdir()
    client.download_ok(file_id, out, sha)
    assert sorted(p.name for p in out.iterdir()) == [file_id]


def test_failed_preallocation_leaves_no_partial(client, tmp_path, mount_tmpfs):
    file_id, _, _ = client.put(tmp_path, 12 * MiB)
    small = mount_tmpfs("small", 4 * MiB)
    one_line_error(client.download(file_id, small), 73, "disk full")
    assert list(small.iterdir()) == []


def test_state_dir_on_a_full_file_system_is_73(client, tmp_path, mount_tmpfs):
    file_id, src, _ = client.put(tmp_path, 1 * MiB)
    full = mount_tmpfs("full", 1 * MiB)
    fill(full)
    out = tmp_path / "out"
    out.mkdir()
    down = cli_download(client.stack.drs_api, file_id, out, full / "state", "--quiet")
    one_line_error(down, 73, "disk full")
    up = cli_upload(client.stack.upload_api, file_id, src, full / "state", "--quiet")
    one_line_error(up, 73, "disk full")


def test_fifo_as_input_is_refused_without_opening_it(client, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    file_id = new_id()
    client.stack.register(file_id, 10)
    result = {}
    # were the FIFO opened, this would block until the pytest timeout
    worker = threading.Thread(target=lambda: result.update(proc=client.upload(file_id, fifo)))
    worker.start()
    worker.join(300)
    assert not worker.is_alive()
    one_line_error(result["proc"], 66, "not a regular file")


def test_a_lock_that_is_held_is_locked_error(tmp_path):
    with state.FileLock(tmp_path / "lock", "file 'x'"):
        with pytest.raises(LockedError, match="another ghga-cli process"):
            with state.FileLock(tmp_path / "lock", "file 'x'"):
                pass


def test_a_file_system_without_locks_is_not_a_held_lock(tmp_path, monkeypatch):
    """flock failing with ENOLCK (NFS/Lustre without locks) must not read as 'retry later'."""

    def no_locks(fd):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(state, "_lock", no_locks)
    with pytest.raises(OutputError, match="does not support locks"):
        with state.FileLock(tmp_path / "lock", "file 'x'"):
            pass


def test_json_of_a_rerun_upload_that_waited_says_accepted(client, tmp_path):
    file_id, src, sha = client.put(tmp_path, 1 * MiB)
    again = client.upload(file_id, src, "--wait")
    assert again.returncode == 0, again.stderr
    result = json_line(again)
    assert result["status"] == "accepted" and result["sha256"] == sha


def _used_bytes(path: Path) -> int:
    os.sync()
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
@pytest.mark.parametrize("preallocate", ["true", "false"])
def test_download_onto_a_compressing_file_system(client, tmp_path, preallocate):
    """btrfs with compress-force stores preallocated blocks as they are: the default takes
    the file's whole size, `preallocate = false` lets the file system compress it."""
    from benchmarks.clientfs import ClientFs

    size = 64 * MiB
    src = tmp_path / "src"
    src.write_bytes((b"ACGT" * 1024 + b"\n") * (size // 4097) + b"N" * (size % 4097))
    sha = sha256_of(src)
    file_id = new_id()
    client.stack.register(file_id, size, sha256=sha)
    assert client.upload(file_id, src, "--wait").returncode == 0
    fs = ClientFs.from_config({"size": "1G"}, tmp_path)
    fs.up()
    try:
        out = fs.mountpoint / "out"
        out.mkdir()
        before = _used_bytes(fs.mountpoint)
        down = cli_download(
            client.stack.drs_api,
            file_id,
            out,
            tmp_path / "state",
            "--json",
            env={"GHGA_TASKS_PREALLOCATE": preallocate},
        )
        assert down.returncode == 0, down.stderr
        assert json_line(down)["sha256"] == sha == sha256_of(out / file_id)
        grown = _used_bytes(fs.mountpoint) - before
        if preallocate == "true":
            assert grown >= size, grown
        else:
            assert grown < size // 4, grown
    finally:
        fs.down()
