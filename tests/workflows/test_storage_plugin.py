"""snakemake-storage-plugin-ghga (workflows/snakemake/plugin) against the live reference server.

Snakemake and the plugin live in the workflow venv (see test_workflows.py: $GHGA_WORKFLOW_BIN,
installed by tests/run), so both tests run there in subprocesses:
- the interface's own TestStorageBase (storage_plugin_suite.py) under that venv's pytest;
- the plugin's example Snakefile, whose inputs and outputs are storage.ghga("ghga://ID"),
  run by that venv's snakemake.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from test_workflows import (
    RUN_TIMEOUT,
    WORKFLOWS,
    engine_env,
    explain,
    ranges_done,
    register_new,
    run,
    shared,  # noqa: F401 (fixture)
    tool,
    wait_for,
)

from ghga_tasks.units import MiB

HERE = Path(__file__).resolve().parent
EXAMPLE = WORKFLOWS / "snakemake" / "plugin" / "example" / "Snakefile"


def wf_python() -> Path:
    """The Python of the venv that holds snakemake (and the plugin)."""
    snakemake = Path(tool("snakemake"))
    python = snakemake.parent / "python"
    assert python.exists(), f"no python next to {snakemake}"
    return python


def test_interface_test_suite(shared, stack, tmp_path):  # noqa: F811
    """snakemake_interface_storage_plugins.tests.TestStorageBase, plus staging, in the venv."""
    python = wf_python()
    env = engine_env(
        GHGA_PLUGIN_DRS_API=stack.drs_api,
        GHGA_PLUGIN_UPLOAD_API=stack.upload_api,
        GHGA_PLUGIN_ADMIN_API=stack.admin_api,
        GHGA_PLUGIN_STATE_DIR=str(tmp_path / "state"),
        GHGA_PLUGIN_FILE_ID=shared.file_id,
        GHGA_PLUGIN_FILE_SHA256=shared.sha,
    )
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")
    cmd = [
        python,
        "-m",
        "pytest",
        "-q",
        "-rA",
        "-p",
        "no:cacheprovider",
        "--noconftest",
        "-c",
        ini,
        "--rootdir",
        tmp_path,
        "--basetemp",
        tmp_path / "inner",
        HERE / "storage_plugin_suite.py",
    ]
    proc = run(cmd, env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, explain(proc)
    # every test of the interface ran (none skipped or deselected)
    for name in ("test_storage", "test_storage_not_existing", "test_query_validation"):
        assert f"TestStoreAndRetrieve::{name}" in proc.stdout, explain(proc)
        assert f"TestRetrieveOnly::{name}" in proc.stdout, explain(proc)
    for name in (
        "test_staging_counts_as_existing",
        "test_stored_object_is_newer_than_its_source",
        "test_stored_facts_while_being_staged",
        "test_whole_second_times_stand_for_the_end_of_their_second",
    ):
        assert re.search(rf"^PASSED \S*::{name}\b", proc.stdout, re.M), explain(proc)
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, explain(proc)


def sha256_line(path: Path) -> str:
    return path.read_text().split()[0]


def test_snakefile_with_storage_ghga(shared, stack, tmp_path):  # noqa: F811
    """The example Snakefile downloads (storage.ghga input) and uploads (storage.ghga output)."""
    snakemake = tool("snakemake")
    upload = register_new(stack, tmp_path, "wf-plugin-up", 1 * MiB)
    work, state = tmp_path / "work", tmp_path / "ghga-state"
    work.mkdir()
    config = work / "config.yaml"
    config.write_text(
        json.dumps({"download": [shared.file_id], "upload": {upload.file_id: str(upload.path)}})
    )
    # the URLs as flags, the state dir as the plugin's environment variable
    cmd = [
        snakemake,
        "--snakefile",
        EXAMPLE,
        "--directory",
        work,
        "--configfile",
        config,
        "--cores",
        "2",
        "--storage-ghga-drs-api",
        stack.drs_api,
        "--storage-ghga-upload-api",
        stack.upload_api,
        "--storage-ghga-parallel",
        "2",
    ]
    env = engine_env(SNAKEMAKE_STORAGE_GHGA_STATE_DIR=str(state))
    # DRS stages new files for 3 s: right after the upload, Snakemake asks for the output's
    # mtime while DRS answers 202, and the second run may too
    stack.configure(staging_delay=3)
    try:
        proc = run(cmd, env)
    finally:
        stack.reset()
    assert proc.returncode == 0, explain(proc)

    result = work / "results" / f"{shared.file_id}.sha256"
    assert sha256_line(result) == shared.sha
    # the client's resumable state is in the state dir, not in .snakemake/ or the outputs
    assert list(state.glob("downloads/*")), sorted(p.name for p in state.rglob("*"))
    assert not list(work.rglob(".*.ghga-part"))
    # the output was uploaded and accepted: DRS serves it with the source's checksum
    info = stack.file_info(upload.file_id)
    assert info["accepted_time"], info

    # a second run has nothing to do
    proc = run(cmd, env)
    assert proc.returncode == 0, explain(proc)
    assert "Nothing to be done" in proc.stdout + proc.stderr, explain(proc)

    # the uploaded file comes back through the plugin with the right bytes
    config.write_text(json.dumps({"download": [upload.file_id]}))
    proc = run(cmd, env)
    assert proc.returncode == 0, explain(proc)
    assert sha256_line(work / "results" / f"{upload.file_id}.sha256") == upload.sha
    assert hashlib.sha256(upload.path.read_bytes()).hexdigest() == upload.sha
    assert os.path.getsize(upload.path) == 1 * MiB


def test_killed_retrieval_resumes(shared, stack, tmp_path):  # noqa: F811
    """SIGKILL Snakemake while the plugin retrieves an input (in Snakemake's own process);
    the next run resumes the partial download from the state dir instead of starting over."""
    snakemake = tool("snakemake")
    work, state = tmp_path / "work", tmp_path / "ghga-state"
    work.mkdir()
    config = work / "config.yaml"
    config.write_text(json.dumps({"download": [shared.file_id]}))
    cmd = [
        snakemake,
        *("--snakefile", EXAMPLE, "--directory", work, "--configfile", config, "--cores", "1"),
        *("--storage-ghga-drs-api", stack.drs_api, "--storage-ghga-state-dir", state),
    ]
    # slow enough to be caught halfway: 1 MiB ranges, one connection, 512 KiB/s
    env = engine_env(
        GHGA_TASKS_PART_SIZE="1MiB", GHGA_TASKS_PARALLEL="1", GHGA_TASKS_MAX_RATE="512KiB"
    )
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for("a retrieved range in the ledger", lambda: ranges_done(state), 120, proc)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    result = work / "results" / f"{shared.file_id}.sha256"
    assert not result.exists()

    # a killed Snakemake leaves its own lock on the working dir: users unlock, then run again
    proc = run(cmd + ["--unlock"], env)
    assert proc.returncode == 0, explain(proc)
    proc = run(cmd, env, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, explain(proc)
    assert sha256_line(result) == shared.sha
    said = re.search(
        rf"ghga: retrieved ghga://{shared.file_id}: (\d+) bytes, (\d+) moved now, (\d+) resumed",
        proc.stdout + proc.stderr,
    )
    assert said, explain(proc)
    size, moved, resumed = map(int, said.groups())
    assert size == 2 * MiB and resumed >= 1 * MiB and moved + resumed == size
