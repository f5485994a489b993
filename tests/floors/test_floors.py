"""The declared dependency floors work: an upload and a download with the lowest versions.

.ci/run's floors job makes a venv with `uv pip install --resolution lowest-direct -e .` (every
runtime dependency at the floor in pyproject.toml) on the oldest and on the newest supported
Python, and runs this file with GHGA_FLOORS_BIN set to that venv's bin dir. The reference
server runs from the environment running pytest; only the client comes from the venv.

Without GHGA_FLOORS_BIN the main suite does not collect this folder (tests/conftest.py;
it covers the newest versions). Collected without it, every test here fails; a venv that is
missing, broken or not at the floors fails too. Nothing skips.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import download_args, json_line, upload_args
from packaging.requirements import Requirement
from packaging.version import Version

from ghga_tasks.units import MiB

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the main environment may be older
    import tomli as tomllib

FLOORS_BIN = os.environ.get("GHGA_FLOORS_BIN", "")
ROOT = Path(__file__).resolve().parents[2]
PART = 16 * MiB  # the server's part size for files up to 160 GiB


def _bin(name: str) -> str:
    if not FLOORS_BIN:
        pytest.fail("GHGA_FLOORS_BIN is not set (.ci/run's floors job sets it)")
    path = Path(FLOORS_BIN) / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"GHGA_FLOORS_BIN={FLOORS_BIN}: no executable {name} there")
    return str(path)


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GHGA_TASKS_") and k not in ("PYTHONPATH", "PYTHONHOME")
    }
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _floors() -> dict:
    """{distribution name: floor} of the runtime dependencies in pyproject.toml."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    floors = {}
    for dep in deps:
        req = Requirement(dep)
        lows = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lows) == 1, f"{dep!r}: give exactly one tested floor (>=)"
        floors[req.name] = (lows[0], req.marker)
    return floors


def test_the_venv_holds_the_declared_floors():
    probe = (
        "import importlib.metadata as m, json, platform, sys\n"
        "names = json.loads(sys.argv[1])\n"
        "def version(n):\n"
        "    try:\n        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n        return None\n"
        "print(json.dumps({'python_version': '%d.%d' % sys.version_info[:2],\n"
        "                  'python_full_version': platform.python_version(),\n"
        "                  'versions': {n: version(n) for n in names}}))\n"
    )
    floors = _floors()
    proc = _run(_bin("python"), "-c", probe, json.dumps(sorted(floors)))
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    env = {
        "python_version": seen["python_version"],
        "python_full_version": seen["python_full_version"],
    }
    for name, (floor, marker) in floors.items():
        if marker is not None and not marker.evaluate(env):
            continue
        installed = seen["versions"][name]
        assert installed and Version(installed) == Version(floor), (
            f"{name}: the venv has {installed}, the declared floor is {floor} "
            f"(install it with `uv pip install --resolution lowest-direct -e .`)"
        )


def test_upload_and_download_with_the_floors(stack, tmp_path):
    cli = _bin("ghga-cli")
    size = 2 * PART + 12345  # three upload parts
    data = os.urandom(size)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    file_id = f"floors-{sha[:12]}"
    stack.register(file_id, size, sha256=sha)
    state = tmp_path / "state"

    flags = ("--wait", "--json", "--quiet", "--parallel", "2")
    up = _run(cli, *upload_args(stack.upload_api, file_id, src, state, *flags))
    assert up.returncode == 0, up.stderr
    result = json_line(up)
    assert result["status"] == "accepted"
    assert result["sha256"] == sha
    assert result["bytes_transferred"] == size

    out = tmp_path / "out"
    out.mkdir()
    # a config file (tomli below Python 3.11); 20 MiB ranges: each crosses the 8 MiB mark at
    # which a range's written prefix is logged (the SIZE_DOWNLOAD_T poll of the engine)
    config = tmp_path / "config.toml"
    config.write_text('parallel = 2\npart_size = "20MiB"\n')

    def download(*extra: str) -> subprocess.CompletedProcess:  # the --option_name spelling
        args = download_args(
            stack.drs_api, file_id, out, state, "--json", "--quiet", *extra, sep="_"
        )
        return _run(cli, *args)

    down = download("--config", str(config))
    assert down.returncode == 0, down.stderr
    result = json_line(down)
    assert result["status"] == "downloaded"
    assert result["bytes_transferred"] == size
    assert (out / file_id).read_bytes() == data

    again = download()
    assert again.returncode == 0, again.stderr
    assert json_line(again)["bytes_transferred"] == 0


def test_usage_errors_and_help_with_the_floors(tmp_path):
    cli = _bin("ghga-cli")
    assert _run(cli, "--help").returncode == 0
    missing = _run(cli, "download-by-id", "--output_dir", str(tmp_path))
    assert missing.returncode == 2, missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith("ghga-cli: error: ")
