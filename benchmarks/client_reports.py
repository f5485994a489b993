"""What a ghga-cli client leaves behind about its own run: the ledgers in its state dir
(how far a run got, for the kill) and its --json lines (parts, URL refreshes, bytes sent
again)."""

from __future__ import annotations

import json
from pathlib import Path


def ledger_bytes(state_dir: Path) -> int:
    """Bytes a ghga-cli state dir's ledgers record as stored (parts) or written (ranges)."""
    total = 0
    for ledger in state_dir.glob("*/*/*.jsonl"):
        try:
            lines = ledger.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn last line
            if isinstance(entry, dict) and "offset" in entry:
                total += int(entry.get("size", 0))
    return total


def _json_lines(path: Path) -> list[dict]:
    """The JSON objects a client printed (ghga-cli --json), one per line; [] if none."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    objects = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    return objects


def json_tail(path: Path) -> dict:
    """The last JSON object a client printed, or {}."""
    objects = _json_lines(path)
    return objects[-1] if objects else {}


CLIENT_COUNTS = ("parts", "url_refreshes", "bytes_resent")


def client_counts(stdout_paths: list[Path]) -> dict:
    """What ghga-cli said of its runs (--json), summed over clients: parts (or ranges),
    fresh URLs after a refusal, bytes sent again; and the longest `transfer_seconds` of a
    file (moving bytes only: without start-up, API calls, the last hashing and the move
    into place). A batch's summary line counts for its files; a killed run printed
    nothing, so it counts only the run that resumed it."""
    total = dict.fromkeys(CLIENT_COUNTS, 0)
    longest = None
    for path in stdout_paths:
        objects = _json_lines(path)
        summary = [o for o in objects if o.get("summary")]
        for obj in summary or objects:
            for key in CLIENT_COUNTS:
                total[key] += int(obj.get(key) or 0)
        for obj in objects:
            if obj.get("transfer_seconds") is not None:
                longest = max(longest or 0.0, float(obj["transfer_seconds"]))
    return {**total, "transfer_seconds": longest}
