"""Fixtures for client tests: a CLI client bound to the live stack, tmpfs mounts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import Client

from ghga_tasks.server.stub import StubServer


@pytest.fixture
def client(stack, tmp_path) -> Client:
    return Client(stack, tmp_path / "state")


@pytest.fixture
def stub():
    """stub(handler) -> a StubServer on loopback answering with handler; closed afterwards."""
    servers = []

    def start(handler):
        server = StubServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(name, size_bytes, readonly=False) -> Path; unmounted afterwards."""
    mounted = []

    def mount(name: str, size: int, readonly: bool = False) -> Path:
        target = tmp_path / name
        target.mkdir()
        opts = f"size={size}" + (",ro" if readonly else "")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(target)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
