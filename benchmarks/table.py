"""Runs grouped for the report: medians over repetitions, errors over all of them.

One file per client: `Table`, by (backend, direction, size, tool, clients). Many files per
client: `many_files_rows`, by (backend, direction, files, size, tool).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Optional

PEERS = ("s5cmd", "aws", "rclone", "aria2c", "s3transfer-crt")


def load_runs(results_dir: Path) -> list[dict]:
    runs = []
    for path in sorted((results_dir / "runs").glob("*.json")):
        try:
            runs.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return runs


def median(values) -> Optional[float]:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Table:
    """Runs of one file per client, grouped by (backend, direction, size, tool, clients)."""

    def __init__(self, runs: list[dict]):
        self.groups: dict[tuple, list[dict]] = defaultdict(list)
        for r in runs:
            if r.get("files", 1) > 1:
                continue  # many-files runs: many_files_rows()
            self.groups[(r["backend"], r["direction"], r["size"], r["tool"], r["clients"])].append(
                r
            )
        self.tools = {r["tool"]: (r["tool_kind"], r.get("connections")) for r in runs}
        # killed-and-resumed runs (kill_at) measure what a kill costs, not a rate: no goals
        self.killed = {r["tool"] for r in runs if r.get("kill")}

    def ok(self, key) -> list[dict]:
        return [r for r in self.groups.get(key, []) if r["verified"]]

    def med(self, key, field) -> Optional[float]:
        return median(r[field] for r in self.ok(key))

    def spread(self, key, field) -> str:
        """min–max over the verified repetitions (the run-to-run noise), or – for fewer than 2."""
        values = [r[field] for r in self.ok(key) if r[field] is not None]
        if len(values) < 2:
            return "–"
        return f"{fmt(min(values))}–{fmt(max(values))}"

    def keys(self, **match):
        names = ("backend", "direction", "size", "tool", "clients")
        return sorted(
            k for k in self.groups if all(k[names.index(n)] == v for n, v in match.items())
        )

    def values(self, index: int, **match) -> list:
        return sorted({k[index] for k in self.keys(**match)})


def fmt(v, digits=1) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}"


def many_files_rows(runs: list[dict]) -> list[dict]:
    """Many-files runs (one client, `files` files): per (backend, direction, files, size,
    tool) the medians, and each ghga-cli batch's ratio to s5cmd and to the sequential loop
    (one ghga-cli process per file) of the same point."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        if r.get("files", 1) > 1:
            groups[(r["backend"], r["direction"], r["files"], r["size"], r["tool"])].append(r)

    def med(rs, field):
        return median(r[field] for r in rs if r["verified"])

    rows = []
    for key in sorted(groups):
        backend, direction, files, size, tool = key
        rs = groups[key]
        point = {k: v for k, v in groups.items() if k[:4] == key[:4]}
        ref_s5cmd = [med(v, "mb_per_s") for k, v in point.items() if v[0]["tool_kind"] == "s5cmd"]
        ref_loop = [med(v, "mb_per_s") for k, v in point.items() if v[0].get("process_per_file")]
        rate = med(rs, "mb_per_s")
        batch = rs[0]["tool_kind"] == "ghga-cli" and not rs[0].get("process_per_file")
        vals = [v for v in rs if v["verified"]]
        rows.append(
            {
                "backend": backend,
                "direction": direction,
                "files": files,
                "size": size,
                "tool": tool,
                "batch": batch,
                "workers": rs[0].get("workers"),
                "seconds": med(rs, "seconds"),
                "mb_per_s": rate,
                "spread": (
                    f"{fmt(min(v['mb_per_s'] for v in vals))}–"
                    f"{fmt(max(v['mb_per_s'] for v in vals))}"
                    if len(vals) > 1
                    else "–"
                ),
                "cpu": med(rs, "client_cpu_seconds"),
                "rss": med(rs, "client_peak_rss_mb"),
                "server_cpu": med(rs, "server_cpu_seconds"),
                "errors": f"{sum(r['errors'] for r in rs)} / {len(rs)}",
                "vs_s5cmd": rate / ref_s5cmd[0] if rate and ref_s5cmd and ref_s5cmd[0] else None,
                "vs_loop": rate / ref_loop[0] if rate and ref_loop and ref_loop[0] else None,
            }
        )
    return rows
