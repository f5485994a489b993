"""One transfer's folder in the state dir: every file name in it, its lock and its ledgers.

    <state root>/<uploads|downloads>/<safe file id>-<hash of api url + file id>/

Nothing here ever holds a pre-signed URL. The upload and download steps read and write
their facts only through a TransferDir, so the layout is written down once, here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from . import state

# uploads
ATTEMPT = "attempt.json"  # the attempt adopted or started (RequestURL's target)
PARTS = "parts.json"  # every part stored, with its MD5 (TransferParts' target)
PARTS_LEDGER = "parts.jsonl"  # one line per part stored
CONFIRMED = "confirmed.json"  # the attempt confirmed (ConfirmUpload's target)
ACCEPTED = "accepted.json"  # the attempt accepted (ConfirmUpload's target with wait)
WRITER = "writer.json"  # this dir's writer id towards the Upload API
# downloads
OBJECT = "object.json"  # the DRS object's facts (PollOutbox's target)
RANGES_LEDGER = "ranges.jsonl"  # one line per written piece of the partial file
PARTIAL = "partial.json"  # where the partial file is
DONE = "done.json"  # the verified file in place (FetchFile's target)
# both
FAILURE = "failure.json"  # the typed error of the last failed run (failure_of)
LOCK = "lock"

ATTEMPT_FILES = (ATTEMPT, PARTS, PARTS_LEDGER, CONFIRMED)


class TransferDir:
    """The state of one file's transfer in one direction, keyed by API URL and file id."""

    def __init__(self, root: Path, direction: str, api_url: str, file_id: str):
        self.file_id = file_id
        self.path = state.transfer_dir(Path(root), direction, api_url, file_id)

    def __repr__(self) -> str:
        return f"TransferDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def ensure(self) -> Path:
        return state.ensure_dir(self.path)

    def read(self, name: str) -> Optional[dict]:
        return state.read_json(self.file(name))

    def write(self, name: str, data: dict, sync: bool = True) -> None:
        self.ensure()
        state.write_json(self.file(name), data, sync=sync)

    def remove(self, *names: str) -> None:
        for name in names:
            state.remove(self.file(name))

    def lock(self) -> state.FileLock:
        return state.FileLock(self.ensure() / LOCK, f"file {self.file_id!r}")

    def writer_id(self) -> str:
        """Random, made once: a resumed run is the same writer (PROTOCOL.md § 1), another
        state dir is not."""
        known = (self.read(WRITER) or {}).get("writer")
        if isinstance(known, str) and known:
            return known
        writer = os.urandom(16).hex()
        self.write(WRITER, {"writer": writer})
        return writer

    def parts_ledger(self, attempt: dict, source: dict) -> state.Ledger:
        """The parts stored in this attempt, each with the MD5 S3 confirmed; a ledger of
        another attempt or of another source file (path, size, mtime, inode) starts over."""
        return state.Ledger(
            self.file(PARTS_LEDGER),
            {
                "upload_id": attempt["upload_id"],
                "part_size": attempt["part_size"],
                "size": attempt["size"],
                "source": source,
            },
        )

    def ranges_ledger(
        self, object_id: Optional[str], size: int, checksum: Optional[str]
    ) -> state.Ledger:
        """The pieces of the partial file written for this object; another object's
        ledger (other size or checksum) starts over."""
        return state.Ledger(
            self.file(RANGES_LEDGER), {"id": object_id, "size": size, "checksum": checksum}
        )

    def forget_attempt(self) -> None:
        """Drop every fact about the current upload attempt: the next run starts or adopts
        one anew."""
        self.remove(*ATTEMPT_FILES)
