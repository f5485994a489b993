"""The examples in workflows/ run for real against the live reference server.

A file is uploaded with the CLI once; then the luigi example, Snakemake and cwltool download
it (and upload others) as a user would run them, in subprocesses, and the tests compare
bytes and exit codes. Killed jobs are killed for real (SIGTERM to the running ghga-cli) and
must resume from the state dir. Nextflow can't be installed here (its launcher downloads
its runtime), so workflows/nextflow is not run.

snakemake and cwltool are looked up in $GHGA_WORKFLOW_BIN (a PATH-like list, e.g. the bin/
of the venv they were installed into; they conflict with packages of the main environment, see
workflows/README.md), then on PATH. Missing ones are skipped, or fail the test when
$GHGA_REQUIRE_WORKFLOW_TOOLS is set (CI sets it, so a broken install can't pass silently).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest
from helpers import upload_args

from ghga_tasks.units import MiB

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
RUN_TIMEOUT = 120  # any one engine run, in seconds


# helpers


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def engine_env(**extra: str) -> dict[str, str]:
    """The test's environment without GHGA_TASKS_*, this interpreter's ghga-cli first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_TASKS_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def tool(name: str) -> str:
    """Path of snakemake / cwltool, or skip (fail under GHGA_REQUIRE_WORKFLOW_TOOLS)."""
    dirs = [d for d in os.environ.get("GHGA_WORKFLOW_BIN", "").split(os.pathsep) if d]
    exe = shutil.which(name, path=os.pathsep.join(dirs)) if dirs else None
    exe = exe or shutil.which(name)
    if exe is None:
        message = (
            f"{name} is not installed (pip install {name} into a venv and point "
            f"GHGA_WORKFLOW_BIN at its bin/; see workflows/README.md)"
        )
        if os.environ.get("GHGA_REQUIRE_WORKFLOW_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


def run(
    cmd: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def explain(proc) -> str:
    return (
        f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
        f"--- stderr\n{proc.stderr[-6000:]}"
    )


def wait_for(
    what: str, predicate: Callable[[], object], timeout: float, proc: subprocess.Popen | None = None
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def ranges_done(state_dir: Path) -> int:
    """Byte ranges the download ledgers in state_dir record as written."""
    count = 0
    for ledger in state_dir.glob("downloads/*/ranges.jsonl"):
        count += sum(1 for line in ledger.read_text().splitlines() if '"offset"' in line)
    return count


def descendant(root_pid: int, subcommand: str) -> int | None:
    """PID of the `ghga-cli SUBCOMMAND ...` process below root_pid (not a shell around it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    todo = [root_pid]
    while todo:
        for pid in children.get(todo.pop(), []):
            try:
                argv = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            names = [os.path.basename(a.decode(errors="replace")) for a in argv[:2]]
            if subcommand.encode() in argv and "ghga-cli" in names:
                return pid
            todo.append(pid)
    return None


def interrupt_download(proc: subprocess.Popen, state_dir: Path) -> None:
    """Once a range is on disk, send SIGTERM to the ghga-cli download under proc."""
    wait_for("a downloaded range in the ledger", lambda: ranges_done(state_dir), 30, proc)
    pid = wait_for(
        "the ghga-cli download process", lambda: descendant(proc.pid, "download-by-id"), 10, proc
    )
    os.kill(pid, signal.SIGTERM)


def stop(proc: subprocess.Popen) -> None:
    """Bounded wait for a process this test started; kill it if it hangs."""
    try:
        proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        raise


# fixtures


@pytest.fixture(scope="module")
def shared(server_stack, tmp_path_factory):
    """A 2 MiB file, registered and uploaded with the CLI (accepted): what the engines fetch."""
    root = tmp_path_factory.mktemp("workflows")
    server_stack.reset()
    file_id = new_id("wf")
    source = root / "source.bin"
    sha = make_file(source, 2 * MiB)
    server_stack.register(file_id, source.stat().st_size, sha256=sha)
    proc = ghga_cli_upload(server_stack, file_id, source, root / "upload-state", "--json")
    assert proc.returncode == 0, explain(proc)
    assert json.loads(proc.stdout)["status"] == "accepted"
    return SimpleNamespace(stack=server_stack, file_id=file_id, source=source, sha=sha)


def ghga_cli_upload(stack, file_id: str, path: Path, state_dir: Path, *extra: str):
    """`ghga-cli upload-by-id ... --wait --quiet *extra`, as a user would upload a file."""
    args = upload_args(stack.upload_api, file_id, path, state_dir, "--wait", "--quiet", *extra)
    return run([sys.executable, "-m", "ghga_tasks", *args], engine_env())


def register_new(stack, tmp_path: Path, prefix: str, size: int) -> SimpleNamespace:
    file_id = new_id(prefix)
    path = tmp_path / f"{file_id}.src"
    sha = make_file(path, size)
    stack.register(file_id, size, sha256=sha)
    return SimpleNamespace(file_id=file_id, path=path, sha=sha)


# luigi


def test_luigi_example(shared, tmp_path):
    out, state = tmp_path / "out", tmp_path / "state"

    def example(*file_ids: str) -> subprocess.CompletedProcess:
        ids = [arg for file_id in file_ids for arg in ("--file-id", file_id)]
        args = ["--api-url", shared.stack.drs_api, *ids, "--output-dir", out, "--state-dir", state]
        return run([sys.executable, WORKFLOWS / "luigi" / "example.py", *args], engine_env())

    proc = example(shared.file_id)
    assert proc.returncode == 0, explain(proc)
    assert (out / shared.file_id).read_bytes() == shared.source.read_bytes()
    summary = Path(proc.stdout.strip())
    data = shared.source.read_bytes()
    rows = [line.split("\t") for line in summary.read_text().splitlines()]
    assert rows[1] == [shared.file_id, str(len(data)), str(data.count(b"\n")), shared.sha]

    # an unknown id: the API refuses (69), as the CLI would say
    proc = example(shared.file_id, new_id("missing"))
    assert proc.returncode == 69, explain(proc)


# Snakemake


def snakemake(workdir: Path, config: dict, env: dict[str, str], *extra: str, popen: bool = False):
    config_file = workdir / "config.yaml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    cmd = [
        tool("snakemake"),
        "--snakefile",
        WORKFLOWS / "snakemake" / "Snakefile",
        "--directory",
        workdir,
        "--configfile",
        config_file,
        "--cores",
        "2",
        *extra,
    ]
    if popen:
        return subprocess.Popen(
            [str(c) for c in cmd],
            stdout=open(workdir / "sm.out", "w"),
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    return run(cmd, env)


def test_snakemake_download_upload_and_killed_job_resumes(shared, tmp_path):
    """Download (with the ghga-cli job killed halfway) and upload in one Snakemake run."""
    tool("snakemake")
    upload = register_new(shared.stack, tmp_path, "wf-sm-up", 1 * MiB)
    work, state = tmp_path / "work", tmp_path / "ghga-state"
    work.mkdir()
    config = {
        "drs_api": shared.stack.drs_api,
        "upload_api": shared.stack.upload_api,
        "download": [shared.file_id],
        "upload": {upload.file_id: str(upload.path)},
        "state_dir": str(state),
        "retries": 2,
        "retry_delay": 0,
    }
    # slow enough to be caught halfway: 1 MiB ranges, one connection, 512 KiB/s
    env = engine_env(
        GHGA_TASKS_PART_SIZE="1MiB", GHGA_TASKS_PARALLEL="1", GHGA_TASKS_MAX_RATE="512KiB"
    )
    proc = snakemake(work, config, env, popen=True)
    try:
        interrupt_download(proc, state)
    finally:
        stop(proc)
    log = (work / "sm.out").read_text()
    assert proc.returncode == 0, log[-6000:]
    # the killed attempt (ghga-cli ends SIGTERM like Ctrl-C: 130; 143 if it died of it) ...
    assert re.search(r"exit status (130|143)\b", log), log[-6000:]
    job_log = (work / "logs" / "ghga_download" / f"{shared.file_id}.log").read_text()
    assert "attempt 2 after a transient failure" in job_log  # ... was retried by Snakemake

    assert (work / "data" / shared.file_id).read_bytes() == shared.source.read_bytes()
    receipt = json.loads((work / "receipts" / "download" / f"{shared.file_id}.json").read_text())
    assert receipt["sha256"] == shared.sha
    assert receipt["bytes_resumed"] >= 1 * MiB  # the retry resumed, it did not start over
    counts = (work / "results" / f"{shared.file_id}.counts.tsv").read_text().splitlines()
    assert counts[1].split("\t") == [
        shared.file_id,
        str(2 * MiB),
        str(shared.source.read_bytes().count(b"\n")),
        shared.sha,
    ]
    uploaded = json.loads((work / "receipts" / "upload" / f"{upload.file_id}.json").read_text())
    assert uploaded["status"] == "accepted" and uploaded["sha256"] == upload.sha
    info = shared.stack.file_info(upload.file_id)
    assert info["accepted_time"] and info["latest_upload_id"] == uploaded["upload_id"]


def test_snakemake_exit_codes_decide_retries(shared, stack, tmp_path):
    """75 (staging outlasts --max-wait) is retried until it works; 69 is not retried."""
    tool("snakemake")
    fresh = register_new(stack, tmp_path, "wf-sm-staged", 1 * MiB)
    proc = ghga_cli_upload(stack, fresh.file_id, fresh.path, tmp_path / "up-state")
    assert proc.returncode == 0, explain(proc)
    missing = new_id("wf-missing")
    work, state = tmp_path / "work", tmp_path / "ghga-state"
    work.mkdir()
    config = {
        "drs_api": stack.drs_api,
        "download": [fresh.file_id, missing],
        "state_dir": str(state),
        "retries": 5,
        "retry_delay": 0,
        "ghga_args": "--max-wait 1",
    }
    stack.configure(staging_delay=2)
    try:
        proc = snakemake(work, config, engine_env(GHGA_TASKS_TASK_RETRIES="0"), "--keep-going")
    finally:
        stack.reset()
    assert proc.returncode == 1, explain(proc)  # one job failed for good
    out = proc.stdout + proc.stderr
    assert "exit status 75" in out, explain(proc)
    assert (work / "data" / fresh.file_id).read_bytes() == fresh.path.read_bytes()

    marker = state / "failed" / f"download-{missing}.exit"
    assert marker.read_text().splitlines()[0] == "69"
    failed_log = (work / "logs" / "ghga_download" / f"{missing}.log").read_text()
    assert "cannot be fixed by retrying" in failed_log  # later attempts gave up at once
    assert not (work / "data" / missing).exists()


# CWL


def cwltool(
    tmp_path: Path, tool_file: str, outdir: Path, *args: str, env=None, popen: bool = False
):
    cmd = [
        tool("cwltool"),
        "--outdir",
        outdir,
        "--tmpdir-prefix",
        f"{tmp_path}/cwltmp/",
        "--tmp-outdir-prefix",
        f"{tmp_path}/cwlout/",
        "--preserve-environment",
        "GHGA_TASKS_MAX_RATE",
        "--preserve-environment",
        "GHGA_TASKS_PARALLEL",
        "--preserve-environment",
        "GHGA_TASKS_PART_SIZE",
        WORKFLOWS / "cwl" / tool_file,
        *args,
    ]
    env = env or engine_env()
    if popen:
        return subprocess.Popen(
            [str(c) for c in cmd],
            stdout=subprocess.PIPE,
            stderr=open(tmp_path / "cwltool.err", "w"),
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    return run(cmd, env)


def test_cwl_download_killed_then_resumed(shared, tmp_path):
    tool("cwltool")
    state = tmp_path / "ghga-state"
    args = [
        "--api_url",
        shared.stack.drs_api,
        "--file_id",
        shared.file_id,
        "--state_dir",
        str(state),
    ]
    slow = engine_env(
        GHGA_TASKS_PART_SIZE="1MiB", GHGA_TASKS_PARALLEL="1", GHGA_TASKS_MAX_RATE="512KiB"
    )
    proc = cwltool(tmp_path, "ghga-download.cwl", tmp_path / "out1", *args, env=slow, popen=True)
    try:
        interrupt_download(proc, state)
    finally:
        stop(proc)
    proc.stdout.close()
    err = (tmp_path / "cwltool.err").read_text()
    assert proc.returncode != 0, err[-4000:]
    assert re.search(r"exited with status: (130|143)\b", err), err[-4000:]
    assert "completed temporaryFail" in err, err[-4000:]

    # a new run, in a new output dir: resumes from the state dir's staging area
    out = tmp_path / "out2"
    proc = cwltool(tmp_path, "ghga-download.cwl", out, *args)
    assert proc.returncode == 0, explain(proc)
    result = json.loads(proc.stdout)
    assert Path(result["file"]["path"]).read_bytes() == shared.source.read_bytes()
    receipt = json.loads(Path(result["receipt"]["path"]).read_text())
    assert receipt["sha256"] == shared.sha and receipt["bytes_resumed"] >= 1 * MiB
    assert not list((state / "staging").iterdir())  # moved, not copied


def test_cwl_upload_then_permanent_failure(shared, tmp_path):
    tool("cwltool")
    upload = register_new(shared.stack, tmp_path, "wf-cwl-up", 1 * MiB)
    state = str(tmp_path / "ghga-state")
    proc = cwltool(
        tmp_path,
        "ghga-upload.cwl",
        tmp_path / "up",
        "--api_url",
        shared.stack.upload_api,
        "--file_id",
        upload.file_id,
        "--file",
        str(upload.path),
        "--state_dir",
        state,
    )
    assert proc.returncode == 0, explain(proc)
    receipt = json.loads(Path(json.loads(proc.stdout)["receipt"]["path"]).read_text())
    # accepted: the server checked the stored bytes against the registered SHA-256
    assert receipt["status"] == "accepted" and receipt["sha256"] == upload.sha
    assert receipt["bytes_transferred"] == 1 * MiB

    # an unknown id: 69 is a permanentFail
    proc = cwltool(
        tmp_path,
        "ghga-download.cwl",
        tmp_path / "none",
        "--api_url",
        shared.stack.drs_api,
        "--file_id",
        new_id("missing"),
        "--state_dir",
        state,
    )
    assert proc.returncode != 0
    assert "exited with status: 69" in proc.stderr and "permanentFail" in proc.stderr, explain(proc)
