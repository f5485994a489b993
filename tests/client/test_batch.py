"""upload-batch and download-batch against the live stack: many files in one luigi build."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import cli, make_file, new_id, one_line_error, sha256_of

from ghga_tasks.units import MiB


def lines_of(proc) -> list:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def upload_batch(client, manifest, *extra, sep="-"):
    names = {"api-url": client.stack.upload_api, "manifest": str(manifest)}
    args = ["upload-batch"]
    for name, value in names.items():
        args += ["--" + name.replace("-", sep), value]
    args += ["--state" + sep + "dir", str(client.state_dir)]
    return cli(*args, "--json", "--quiet", *extra)


def download_batch(client, out, *extra, sep="-"):
    args = ["download-batch", "--api" + sep + "url", client.stack.drs_api]
    args += ["--output" + sep + "dir", str(out), "--state" + sep + "dir", str(client.state_dir)]
    return cli(*args, "--json", "--quiet", *extra)


def registered_files(client, tmp_path, sizes) -> list:
    """Register random files in tmp_path/src: [(id, path, sha)] (paths relative in the
    manifest)."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    files = []
    for size in sizes:
        file_id = new_id()
        path = src / f"{file_id}.dat"
        sha = make_file(path, size)
        client.stack.register(file_id, size, sha256=sha)
        files.append((file_id, path, sha))
    return files


def write_manifest(path, rows, header="file_id\tfile_path") -> None:
    path.write_text(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))


def uploaded(client, tmp_path, sizes) -> list:
    files = registered_files(client, tmp_path, sizes)
    manifest = tmp_path / "up.tsv"
    write_manifest(manifest, [(f, p.relative_to(tmp_path)) for f, p, _ in files])
    proc = upload_batch(client, manifest, "--wait")
    assert proc.returncode == 0, proc.stderr
    return files


def test_upload_batch_then_download_batch_and_rerun(client, tmp_path):
    sizes = [3 * MiB, 1 * MiB + 7, 17 * MiB, 5]
    files = registered_files(client, tmp_path, sizes)
    manifest = tmp_path / "up.tsv"
    write_manifest(manifest, [(f, p.relative_to(tmp_path)) for f, p, _ in files])

    proc = upload_batch(client, manifest, "--wait", "--workers", "3", sep="_")
    assert proc.returncode == 0, proc.stderr
    *per_file, summary = lines_of(proc)
    assert [d["file_id"] for d in per_file] == [f for f, _, _ in files]
    for d, (_, _, sha), size in zip(per_file, files, sizes):
        assert (d["status"], d["sha256"], d["size"]) == ("accepted", sha, size)
        assert d["bytes_transferred"] == size and d["bytes_resumed"] == 0
    assert summary["summary"] is True
    assert (summary["files"], summary["done"], summary["failed"]) == (4, 4, 0)
    assert summary["bytes_transferred"] == sum(sizes) and summary["exit_code"] == 0

    again = upload_batch(client, manifest, "--wait")
    assert again.returncode == 0, again.stderr
    assert lines_of(again)[-1]["bytes_transferred"] == 0

    out = tmp_path / "out"
    out.mkdir()
    down_manifest = tmp_path / "down.tsv"
    write_manifest(down_manifest, [(f,) for f, _, _ in files], header="file_id")
    proc = download_batch(client, out, "--manifest", str(down_manifest), "--workers", "4")
    assert proc.returncode == 0, proc.stderr
    *per_file, summary = lines_of(proc)
    for d, (file_id, _, sha), size in zip(per_file, files, sizes):
        assert d["file_id"] == file_id and d["status"] == "downloaded"
        assert d["bytes_transferred"] == size and d["sha256"] == sha
        assert sha256_of(out / file_id) == sha
    assert summary["bytes_transferred"] == sum(sizes) == summary["size"]

    rerun = download_batch(client, out, "--manifest", str(down_manifest), sep="_")
    assert rerun.returncode == 0, rerun.stderr
    *per_file, summary = lines_of(rerun)
    assert {d["status"] for d in per_file} == {"complete"}
    assert summary["bytes_transferred"] == 0 and summary["bytes_resumed"] == sum(sizes)


def test_one_bad_file_among_good_ones(client, tmp_path):
    files = uploaded(client, tmp_path, [2 * MiB, 3 * MiB])
    unknown = new_id("unknown")
    out = tmp_path / "out"
    out.mkdir()
    ids = [files[0][0], unknown, files[1][0]]
    args = [a for file_id in ids for a in ("--file-id", file_id)]
    proc = download_batch(client, out, *args, "--workers", "2")
    assert proc.returncode == 69, proc.stderr
    per_file = {d.get("file_id"): d for d in lines_of(proc)[:-1]}
    assert per_file[unknown]["exit_code"] == 69 and per_file[unknown]["error"]
    for file_id, _, sha in files:
        assert per_file[file_id]["status"] == "downloaded"
        assert sha256_of(out / file_id) == sha
    summary = lines_of(proc)[-1]
    assert (summary["done"], summary["failed"], summary["exit_code"]) == (2, 1, 69)
    assert f"{unknown}: failed (69)" in proc.stderr


def test_progress_says_files_and_bytes(client, tmp_path):
    files = uploaded(client, tmp_path, [1 * MiB, 2 * MiB])
    out = tmp_path / "out"
    out.mkdir()
    args = [a for file_id, _, _ in files for a in ("--file-id", file_id)]
    proc = cli(
        "download-batch",
        "--api-url",
        client.stack.drs_api,
        "--output-dir",
        str(out),
        "--state-dir",
        str(client.state_dir),
        *args,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 of 2 files done, 0 failed; moved 3.0 MiB" in proc.stderr.replace("MB", "MiB")


def test_bad_manifests_before_any_request(client, tmp_path):
    good = tmp_path / "good.dat"
    good.write_bytes(b"x" * 10)
    cases = {
        "missing column": ("file_id\n" + "a\n", 2, "file_path"),
        "duplicate id": ("file_id\tfile_path\na\tgood.dat\na\tgood.dat\n", 2, "more than once"),
        "unreadable path": ("file_id\tfile_path\na\tnothere.dat\n", 66, "nothere.dat"),
        "empty": ("", 2, "empty"),
        "no rows": ("file_id\tfile_path\n", 2, "no files"),
        "bad id": ("file_id\tfile_path\na/b\tgood.dat\n", 2, "file name"),
    }
    # a server that is not there: any request would end in another exit code (75)
    dead = "http://127.0.0.1:9/upload"
    for name, (text, code, word) in cases.items():
        manifest = tmp_path / f"{name.replace(' ', '-')}.tsv"
        manifest.write_text(text)
        proc = cli("upload-batch", "--api-url", dead, "--manifest", str(manifest), "--retries", "0")
        one_line_error(proc, code, word)
    proc = cli("upload-batch", "--api-url", dead, "--manifest", str(tmp_path / "none.tsv"))
    one_line_error(proc, 66, "none.tsv")
    out = tmp_path / "out"
    out.mkdir()
    dead_drs = "http://127.0.0.1:9/ga4gh/drs/v1"
    proc = cli("download-batch", "--api-url", dead_drs, "--output-dir", str(out))
    one_line_error(proc, 2, "--manifest")
    proc = cli("download-batch", "--api_url", dead_drs, "--output_dir", str(out), "--file-id", "..")
    one_line_error(proc, 2, "file name")
    proc = cli(
        "download-batch",
        "--api-url",
        dead_drs,
        "--output-dir",
        str(out),
        *("--file-id", "a", "--file_id", "a"),
    )
    one_line_error(proc, 2, "more than once")
    assert not list(out.iterdir())


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_luigid(tmp_path):
    """luigid on 127.0.0.1 (a free port, its state in tmp_path/luigid): yields its URL; ends it
    by its PID."""
    import requests
    from helpers import kill, wait_until

    luigid = shutil.which("luigid") or os.path.join(os.path.dirname(sys.executable), "luigid")
    port = free_port()
    sched_dir = tmp_path / "luigid"
    sched_dir.mkdir()
    scheduler = subprocess.Popen(
        [
            luigid,
            *("--port", str(port), "--address", "127.0.0.1"),
            *("--pidfile", str(sched_dir / "pid"), "--logdir", str(sched_dir)),
            *("--state-path", str(sched_dir / "state.pickle")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return requests.get(f"{url}/api/task_list", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, "luigid to answer", timeout=60, proc=scheduler)
        yield url
    finally:
        kill(scheduler)


def check_moved_once(files, sizes, out, outputs) -> dict:
    """Every process exited 0 with all files done; every file verified and its bytes moved
    exactly once over all processes. Returns {process index: bytes it moved}."""
    moved = {file_id: 0 for file_id, _, _ in files}
    by_process = {}
    for i, (returncode, stdout, stderr) in enumerate(outputs):
        assert returncode == 0, (i, stderr)
        *per_file, summary = [json.loads(line) for line in stdout.splitlines()]
        assert summary["done"] == len(files) and summary["failed"] == 0, summary
        for d in per_file:
            assert d["bytes_transferred"] in (0, d["size"]), d
            moved[d["file_id"]] += d["bytes_transferred"]
        by_process[i] = summary["bytes_transferred"]
    for (file_id, _, sha), size in zip(files, sizes):
        assert sha256_of(out / file_id) == sha
        assert moved[file_id] == size, (file_id, moved)  # exactly once
    return by_process


def batch_args(client, out, manifest, url) -> list:
    return [
        "download-batch",
        *("--api-url", client.stack.drs_api, "--output-dir", str(out)),
        *("--state-dir", str(client.state_dir), "--manifest", str(manifest)),
        *("--workers", "2", "--scheduler_url", url, "--json", "--quiet"),
    ]


def test_two_processes_share_a_batch_through_luigid(client, tmp_path):
    from helpers import cli_popen

    sizes = [4 * MiB, 6 * MiB, 1 * MiB, 9 * MiB, 2 * MiB, 5 * MiB]
    files = uploaded(client, tmp_path, sizes)
    with running_luigid(tmp_path) as url:
        out = tmp_path / "out"
        out.mkdir()
        manifest = tmp_path / "down.tsv"
        write_manifest(manifest, [(f,) for f, _, _ in files], header="file_id")
        procs = [cli_popen(*batch_args(client, out, manifest, url)) for _ in range(2)]
        outputs = [(p, *p.communicate(timeout=300)) for p in procs]
        check_moved_once(files, sizes, out, [(p.returncode, o, e) for p, o, e in outputs])


def test_three_hosts_share_a_batch_through_luigid(client, tmp_path):
    """Three download-batch processes, each in its own network namespace (as three hosts,
    joined to the host's loopback the way the benchmarks' client namespace is), one luigid
    and the stack on the host's 127.0.0.1, one shared output and state dir."""
    import secrets

    from benchmarks.netns import Netns

    sizes = [3 * MiB, 7 * MiB, 1 * MiB, 5 * MiB, 2 * MiB, 8 * MiB, 4 * MiB, 6 * MiB, 1 * MiB + 3]
    files = uploaded(client, tmp_path, sizes)
    suffix = secrets.token_hex(3)
    octets = [secrets.randbelow(150) + 100, secrets.randbelow(254) + 1]
    hosts = [
        Netns(name=f"gbt{suffix}{i}", rate="10gbit", addr="127.{}.{}.{}".format(*octets, i + 2))
        for i in range(3)
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_TASKS_")}
    procs = []
    try:
        for host in hosts:
            host.up()
        with running_luigid(tmp_path) as url:
            out = tmp_path / "out"
            out.mkdir()
            manifest = tmp_path / "down.tsv"
            write_manifest(manifest, [(f,) for f, _, _ in files], header="file_id")
            argv = [sys.executable, "-m", "ghga_tasks", *batch_args(client, out, manifest, url)]
            for host in hosts:
                procs.append(
                    subprocess.Popen(
                        host.prefix() + argv,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                        env=env,
                        stdin=subprocess.DEVNULL,
                    )
                )
            outputs = [(p, *p.communicate(timeout=300)) for p in procs]
            outputs = [(p.returncode, o, e) for p, o, e in outputs]
            by_process = check_moved_once(files, sizes, out, outputs)
            print("bytes moved by host:", {hosts[i].name: n for i, n in by_process.items()})
            assert sum(by_process.values()) == sum(sizes)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for host in hosts:
            host.down()


def test_two_processes_share_an_upload_batch_through_luigid(client, tmp_path):
    from helpers import cli_popen

    sizes = [5 * MiB, 2 * MiB, 7 * MiB, 1 * MiB, 3 * MiB, 6 * MiB]
    files = registered_files(client, tmp_path, sizes)
    manifest = tmp_path / "up.tsv"
    write_manifest(manifest, [(f, p) for f, p, _ in files])
    with running_luigid(tmp_path) as url:
        args = [
            "upload-batch",
            *("--api_url", client.stack.upload_api, "--manifest", str(manifest)),
            *("--state-dir", str(client.state_dir), "--workers", "2"),
            *("--scheduler-url", url, "--wait", "--json", "--quiet"),
        ]
        procs = [cli_popen(*args) for _ in range(2)]
        outputs = [(p, *p.communicate(timeout=300)) for p in procs]
    sent = {file_id: 0 for file_id, _, _ in files}
    for proc, stdout, stderr in outputs:
        assert proc.returncode == 0, stderr
        *per_file, summary = [json.loads(line) for line in stdout.splitlines()]
        assert (summary["done"], summary["failed"]) == (len(files), 0), summary
        for d in per_file:
            assert d["status"] == "accepted", d
            sent[d["file_id"]] += d["bytes_transferred"]
    for (file_id, _, sha), size in zip(files, sizes):
        assert sent[file_id] == size, (file_id, sent)  # sent exactly once over both processes
        info = client.stack.file_info(file_id)
        assert [(u["status"], u["sha256"]) for u in info["uploads"]] == [("accepted", sha)]


@pytest.mark.parametrize("case", ["first-ask", "evicted-since-an-earlier-run"])
def test_a_file_still_being_staged_does_not_hold_the_others(client, tmp_path, case):
    """One worker; the first file of the manifest is being staged for the next 10 minutes.
    The two staged files are fetched meanwhile: the batch asks DRS for every file first and
    fetches the staged ones before it waits. In the second case the slow file was fetched
    before (its PollOutbox target exists), its output is gone and the server evicted it
    from the outbox: FetchFile must not wait in the worker either."""
    import requests
    from helpers import cli_popen, kill, wait_until

    sizes = [2 * MiB, 3 * MiB, 1 * MiB]
    files = uploaded(client, tmp_path, sizes)
    slow = files[0][0]
    out = tmp_path / "out"
    out.mkdir()
    if case == "evicted-since-an-earlier-run":
        proc = download_batch(client, out, "--file-id", slow)
        assert proc.returncode == 0, proc.stderr
        (out / slow).unlink()
    client.stack.configure(staging_delay=600, outbox_lifetime=0)  # evicted when asked
    try:
        answer = requests.get(f"{client.stack.drs_api}/objects/{slow}", timeout=30)
        assert answer.status_code == 202, answer.text
    finally:
        client.stack.configure(staging_delay=0, outbox_lifetime=None)
    proc = cli_popen(
        "download-batch",
        *("--api-url", client.stack.drs_api, "--output-dir", str(out)),
        *("--state-dir", str(client.state_dir), "--workers", "1", "--quiet"),
        *("--file-id", slow, "--file-id", files[1][0], "--file-id", files[2][0]),
    )
    try:
        wait_until(
            lambda: all((out / f).exists() for f, _, _ in files[1:]),
            "the staged files in place",
            timeout=300,
            proc=proc,
        )
        assert proc.poll() is None  # still waiting for the slow one
        assert not (out / slow).exists()
    finally:
        kill(proc)
    for file_id, _, sha in files[1:]:
        assert sha256_of(out / file_id) == sha

    # run again with a short --max-wait: the two are done, the slow one gives up with 75
    proc = download_batch(
        client,
        out,
        "--file-id",
        slow,
        "--file-id",
        files[1][0],
        "--file-id",
        files[2][0],
        "--max-wait",
        "3",
    )
    assert proc.returncode == 75, proc.stderr
    *per_file, summary = lines_of(proc)
    assert (summary["done"], summary["failed"]) == (2, 1)
    by_id = {d["file_id"]: d for d in per_file}
    assert by_id[slow]["exit_code"] == 75
    assert "still being staged after 3 s (--max-wait)" in by_id[slow]["error"]
    assert {by_id[f]["bytes_transferred"] for f, _, _ in files[1:]} == {0}
    assert not (out / slow).exists()
