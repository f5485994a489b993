"""Shared fixtures: a live reference server (`ghga-cli serve`) for the whole session.

- `server_stack` (session): embedded SeaweedFS, started with `--retry-after 1`.
- `stack` (function): the same server with every knob reset; use unique file ids.
- `stack_factory` (function): start extra servers with their own flags; stopped after the test.

With GHGA_TEST_S3_ENDPOINT, GHGA_TEST_S3_ACCESS_KEY and GHGA_TEST_S3_SECRET_KEY set, the
servers use that S3 store (e.g. Ceph RGW) with a bucket prefix of their own.
"""

from __future__ import annotations

import os
import uuid

import pytest
from stack import Stack, env_backend, start_stack

# the floors job (.ci/run) runs tests/floors with GHGA_FLOORS_BIN; the main suite leaves it out
collect_ignore = [] if os.environ.get("GHGA_FLOORS_BIN") else ["floors"]


def _backend_args() -> tuple:
    """Extra serve arguments for the configured backend: a fresh bucket prefix on shared S3."""
    if env_backend()["s3_endpoint"]:
        return ("--bucket-prefix", f"t{uuid.uuid4().hex[:10]}-")
    return ()


@pytest.fixture(scope="session")
def server_stack(tmp_path_factory) -> Stack:
    s = start_stack(
        tmp_path_factory.mktemp("server"), "--retry-after", "1", *_backend_args(), **env_backend()
    )
    yield s
    s.stop()


@pytest.fixture
def stack(server_stack: Stack) -> Stack:
    server_stack.reset()
    yield server_stack


@pytest.fixture(scope="session")
def ceph(tmp_path_factory):
    """One fresh single-node Ceph RGW for the session; the script's JSON plus `dir`."""
    from benchmarks.backends.ceph import ceph_installed, start_ceph, stop_ceph

    if not ceph_installed() and os.geteuid() != 0:
        pytest.skip("Ceph is not installed and installing it needs root")
    cluster_dir = tmp_path_factory.mktemp("ceph")
    try:
        info = start_ceph(cluster_dir)
    except Exception:
        stop_ceph(cluster_dir)
        raise
    yield info
    stop_ceph(cluster_dir)


@pytest.fixture(scope="session")
def ceph_server(ceph, tmp_path_factory) -> Stack:
    """The reference server on the session's Ceph RGW."""
    s = start_stack(
        tmp_path_factory.mktemp("server"),
        "--retry-after",
        "1",
        "--s3-region",
        ceph["region"],
        s3_endpoint=ceph["endpoint"],
        access_key=ceph["access_key"],
        secret_key=ceph["secret_key"],
    )
    yield s
    s.stop()


@pytest.fixture
def stack_factory(tmp_path_factory):
    """start(*serve_args) -> Stack on a fresh data dir, same backend; all stopped afterwards."""
    started = []

    def start(*args: str) -> Stack:
        s = start_stack(tmp_path_factory.mktemp("server"), *args, *_backend_args(), **env_backend())
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()
