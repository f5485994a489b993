"""The repo the harness runs from, and how results spell paths so that they read the same
on every machine: in the repo relative to it, in the work dir as `$WORK_DIR/...`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
WORK_DIR = "$WORK_DIR"


def portable(arg: str, work_dir: Optional[Path] = None) -> str:
    """An argument as results record it: an absolute path in the repo or the work dir made
    relative (see above), any other absolute path (an executable) by its name alone;
    anything else unchanged."""
    if not arg.startswith("/"):
        return arg
    path = Path(arg)
    if path.is_relative_to(REPO):
        return path.relative_to(REPO).as_posix()
    if work_dir is not None and path.is_relative_to(work_dir):
        return f"{WORK_DIR}/{path.relative_to(work_dir).as_posix()}"
    return path.name


def portable_text(text: str, work_dir: Optional[Path] = None) -> str:
    """Free text (a client's stderr) with the repo's and the work dir's paths made relative."""
    text = text.replace(f"{REPO}/", "")
    return text.replace(f"{work_dir}/", f"{WORK_DIR}/") if work_dir is not None else text
