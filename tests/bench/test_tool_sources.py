"""A ghga-cli tool with `sources` runs another checkout's ghga_tasks (two engines, one
campaign), and its runs record that checkout's digest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmarks.measure import source_digest
from benchmarks.tools import GhgaCli

REPO = Path(__file__).resolve().parents[2]


def other_checkout(root: Path) -> Path:
    package = root / "ghga_tasks"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("WHERE = 'the other checkout'\n")
    return root


def imported_from(env: dict) -> str:
    code = "import ghga_tasks; print(getattr(ghga_tasks, 'WHERE', ghga_tasks.__file__))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_a_tool_with_sources_imports_that_checkout(tmp_path):
    other = other_checkout(tmp_path / "old")
    tool = GhgaCli("ghga-cli-old", {"kind": "ghga-cli", "sources": str(other)})
    ctx = SimpleNamespace(work=tmp_path / "work", extra={})
    assert imported_from(tool.env(ctx)) == "the other checkout"
    assert imported_from(tool.version_env()) == "the other checkout"
    assert tool.sources == other.resolve()
    assert source_digest(tool.sources / "ghga_tasks") != source_digest(REPO / "ghga_tasks")


def test_a_tool_without_sources_imports_this_checkout(tmp_path):
    tool = GhgaCli("ghga-cli", {"kind": "ghga-cli"})
    ctx = SimpleNamespace(work=tmp_path / "work", extra={})
    assert imported_from(tool.env(ctx)) == str(REPO / "ghga_tasks" / "__init__.py")
    assert tool.sources is None


def test_sources_without_the_package_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="no ghga_tasks package in"):
        GhgaCli("ghga-cli-old", {"kind": "ghga-cli", "sources": str(tmp_path)})
