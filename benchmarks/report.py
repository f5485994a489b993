"""The report of a results dir: REPORT.md, results.csv and PNG plots.

Figures are medians over repetitions; errors are counted over all repetitions. Every
ratio compares tools measured in the same campaign on the same backend, which is what
the goals ask for (absolute MB/s on a shared two-core machine vary by ±20 %).
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Optional

from .files import size_label
from .paths import portable

PEERS = ("s5cmd", "aws", "rclone", "aria2c", "s3transfer-crt")
FIELDS = [
    "key",
    "backend",
    "api",
    "direction",
    "size",
    "size_label",
    "tool",
    "tool_kind",
    "connections",
    "clients",
    "files",
    "rep",
    "seconds",
    "mb_per_s",
    "per_client_mb_per_s",
    "client_cpu_seconds",
    "client_sys_seconds",
    "client_peak_rss_mb",
    "server_cpu_seconds",
    "errors",
    "verified",
    "started",
]


def load_runs(results_dir: Path) -> list[dict]:
    runs = []
    for path in sorted((results_dir / "runs").glob("*.json")):
        try:
            runs.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return runs


def _med(values) -> Optional[float]:
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
        return _med(r[field] for r in self.ok(key))

    def spread(self, key, field) -> str:
        """min–max over the verified repetitions (the run-to-run noise), or – for fewer than 2."""
        values = [r[field] for r in self.ok(key) if r[field] is not None]
        if len(values) < 2:
            return "–"
        return f"{_fmt(min(values))}–{_fmt(max(values))}"

    def keys(self, **match):
        names = ("backend", "direction", "size", "tool", "clients")
        return sorted(
            k for k in self.groups if all(k[names.index(n)] == v for n, v in match.items())
        )

    def values(self, index: int, **match) -> list:
        return sorted({k[index] for k in self.keys(**match)})


def _fmt(v, digits=1) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}"


def _ratio_row(goal, where, ours, ref, ratio, target, cmp=">=") -> dict:
    if ratio is None:
        verdict = "no data"
    else:
        verdict = "pass" if (ratio >= target if cmp == ">=" else ratio <= target) else "MISS"
    return {
        "goal": goal,
        "where": where,
        "ours": ours,
        "ref": ref,
        "ratio": ratio,
        "target": f"{cmp} {target}",
        "verdict": verdict,
    }


def goals(t: Table) -> list[dict]:
    rows = []
    ghga = [n for n, (kind, _) in t.tools.items() if kind == "ghga-cli" and n not in t.killed]
    curls = {conn: n for n, (kind, conn) in t.tools.items() if kind == "curl"}
    peers = [n for n, (kind, _) in t.tools.items() if kind in PEERS]
    for backend in t.values(0):
        for direction in t.values(1, backend=backend):
            for size in t.values(2, backend=backend, direction=direction):
                where = f"{backend} {direction} {size_label(size)}"
                for g in ghga:
                    ours = t.med((backend, direction, size, g, 1), "mb_per_s")
                    if ours is None:
                        continue
                    if backend != "nginx":
                        best, best_name = None, None
                        for p in peers:
                            v = t.med((backend, direction, size, p, 1), "mb_per_s")
                            if v is not None and (best is None or v > best):
                                best, best_name = v, p
                        if best is not None:
                            rows.append(
                                _ratio_row(
                                    "≥ 1.0× best peer", where, g, best_name, ours / best, 1.0
                                )
                            )
                        conn = t.tools[g][1]
                        if conn in curls:
                            c = t.med((backend, direction, size, curls[conn], 1), "mb_per_s")
                            if c:
                                rows.append(
                                    _ratio_row(
                                        "≥ 0.9× curl, same connections",
                                        where,
                                        g,
                                        curls[conn],
                                        ours / c,
                                        0.9,
                                    )
                                )
                    elif 1 in curls:
                        c = t.med((backend, direction, size, curls[1], 1), "mb_per_s")
                        if c:
                            rows.append(
                                _ratio_row(
                                    "client-only: ≥ 1.3× curl -o", where, g, curls[1], ours / c, 1.3
                                )
                            )
                        ours_cpu = t.med((backend, direction, size, g, 1), "client_cpu_seconds")
                        c_cpu = t.med((backend, direction, size, curls[1], 1), "client_cpu_seconds")
                        if ours_cpu is not None and c_cpu:
                            rows.append(
                                _ratio_row(
                                    "client-only: CPU ≤ 0.6× curl -o",
                                    where,
                                    g,
                                    curls[1],
                                    ours_cpu / c_cpu,
                                    0.6,
                                    "<=",
                                )
                            )
    for g in ghga:
        rss = {}
        for key in t.keys(tool=g):
            for r in t.ok(key):
                rss[r["size"]] = max(rss.get(r["size"], 0), r["client_peak_rss_mb"])
        if rss:
            worst = max(rss.values())
            rows.append(
                _ratio_row(
                    "peak RSS ≤ 150 MB",
                    f"all sizes, max at {size_label(max(rss, key=rss.get))}",
                    g,
                    "150 MB",
                    worst / 150.0,
                    1.0,
                    "<=",
                )
            )
            lo, hi = min(rss), max(rss)
            if hi > lo:
                rows.append(
                    _ratio_row(
                        "RSS flat in size",
                        f"{size_label(hi)} vs {size_label(lo)}",
                        g,
                        f"{rss[lo]:.0f} MB → {rss[hi]:.0f} MB",
                        rss[hi] / rss[lo],
                        1.1,
                        "<=",
                    )
                )
        for backend in t.values(0, tool=g):
            for direction in t.values(1, backend=backend, tool=g):
                sizes = t.values(2, backend=backend, direction=direction, tool=g, clients=1)
                base = [s for s in sizes if s >= 2**30] or sizes
                if len(sizes) < 2 or base[0] == sizes[-1]:
                    continue
                lo, hi = base[0], sizes[-1]
                a = t.med((backend, direction, lo, g, 1), "mb_per_s")
                b = t.med((backend, direction, hi, g, 1), "mb_per_s")
                if a and b:
                    rows.append(
                        _ratio_row(
                            "linear: rate(big) ≥ 0.9× rate(small)",
                            f"{backend} {direction} {size_label(hi)} vs {size_label(lo)}",
                            g,
                            "",
                            b / a,
                            0.9,
                        )
                    )
    return rows


def many_files_rows(runs: list[dict]) -> list[dict]:
    """Many-files runs (one client, `files` files): per (backend, direction, files, size,
    tool) the medians, and each ghga-cli batch's ratio to s5cmd and to the sequential loop
    (one ghga-cli process per file) of the same point."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        if r.get("files", 1) > 1:
            groups[(r["backend"], r["direction"], r["files"], r["size"], r["tool"])].append(r)

    def med(rs, field):
        return _med(r[field] for r in rs if r["verified"])

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
                    f"{_fmt(min(v['mb_per_s'] for v in vals))}–"
                    f"{_fmt(max(v['mb_per_s'] for v in vals))}"
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


def many_files_goals(rows: list[dict]) -> list[dict]:
    goals = []
    for row in rows:
        if not row["batch"]:
            continue
        where = f"{row['backend']} {row['direction']} {row['files']} × {size_label(row['size'])}"
        for name, ref, field, target in (
            ("many files: ≥ 1.0× s5cmd", "s5cmd run", "vs_s5cmd", 1.0),
            ("many files: ≥ 1.5× a ghga-cli loop", "one process per file", "vs_loop", 1.5),
        ):
            goals.append(_ratio_row(name, where, row["tool"], ref, row[field], target))
    return goals


def _plots(t: Table, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    for backend in t.values(0):
        for direction in t.values(1, backend=backend):
            fig, axes = plt.subplots(1, 2, figsize=(11, 4))
            ax = axes[0]
            for tool in t.values(3, backend=backend, direction=direction):
                sizes = t.values(2, backend=backend, direction=direction, tool=tool, clients=1)
                pts = [
                    (s / 2**30, t.med((backend, direction, s, tool, 1), "mb_per_s")) for s in sizes
                ]
                pts = [p for p in pts if p[1] is not None]
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=tool)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("file size (GiB)")
            ax.set_ylabel("MB/s (1 client)")
            ax.set_title(f"{backend} {direction}: rate vs size")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
            ax = axes[1]
            for tool in t.values(3, backend=backend, direction=direction):
                for size in t.values(2, backend=backend, direction=direction, tool=tool):
                    clients = t.values(
                        4, backend=backend, direction=direction, tool=tool, size=size
                    )
                    if len(clients) < 2:
                        continue
                    pts = [
                        (c, t.med((backend, direction, size, tool, c), "mb_per_s")) for c in clients
                    ]
                    pts = [p for p in pts if p[1] is not None]
                    if pts:
                        ax.plot(*zip(*pts), marker="o", label=f"{tool} {size_label(size)}")
            ax.set_xlabel("parallel clients (files at once)")
            ax.set_ylabel("aggregate MB/s")
            ax.set_title(f"{backend} {direction}: rate vs clients")
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
            else:
                ax.text(
                    0.5,
                    0.5,
                    "no runs with several clients",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                )
            fig.tight_layout()
            name = f"{backend}-{direction}.png"
            fig.savefig(out / name, dpi=90)
            plt.close(fig)
            made.append(name)
    return made


def write_report(results_dir: Path, out: Optional[Path] = None) -> Path:
    results_dir = Path(results_dir)
    out = Path(out) if out else results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(results_dir)
    machine = {}
    if (results_dir / "machine.json").exists():
        machine = json.loads((results_dir / "machine.json").read_text())
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in sorted(runs, key=lambda r: r.get("order", 0)):
            w.writerow(r)
    t = Table(runs)
    lines = [f"# Benchmark report: {machine.get('campaign', results_dir.name)}", ""]
    if machine:
        lines += [
            f"- recorded {machine.get('recorded')} on `{machine.get('hostname')}`: "
            f"{machine.get('cpus')} × {machine.get('cpu_model')}, "
            f"{machine.get('mem_gib')} GiB RAM, "
            f"{machine.get('os')}, kernel {machine.get('kernel')}, Python {machine.get('python')}",
            f"- config: `{portable(machine.get('config') or '?')}`; ghga_tasks sources "
            f"`{machine.get('ghga_tasks_digest', '?')}` (per run: `ghga_tasks_digest`)",
        ]
        lines += [f"- {name}: `{v}`" for name, v in sorted(machine.get("tools", {}).items())]
    n_bad = sum(1 for r in runs if not r["verified"])
    netns = {
        (
            "loopback"
            if not r.get("netns")
            else "namespace {netns}, veth capped at {rate}, MTU {mtu}".format(**r["netns"])
        )
        for r in runs
    }
    cpus = {
        (
            "shared by clients and servers"
            if not r.get("cpus")
            else "servers on {servers}, clients on {clients} (taskset)".format(**r["cpus"])
        )
        for r in runs
    }
    lines += [
        f"- {len(runs)} runs, {n_bad} not verified; client network: " + ", ".join(sorted(netns)),
        "- CPUs: " + ", ".join(sorted(cpus)),
        "",
        "Medians over repetitions; MB/s = 10⁶ bytes/s; errors = failed or unverified "
        "client transfers over all repetitions. CPU and RSS are the client's (GNU time "
        "around each client process); server CPU is all server processes "
        "(API, SeaweedFS / RGW + OSD + MON, nginx).",
        "",
    ]
    many = many_files_rows(runs)
    g = goals(t) + many_files_goals(many)
    lines += [
        "## Goals",
        "",
        "| goal | where | ghga-cli variant | compared to | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in g:
        lines.append(
            f"| {row['goal']} | {row['where']} | {row['ours']} | {row['ref']} | "
            f"{_fmt(row['ratio'], 2)} | {row['target']} | {row['verdict']} |"
        )
    if not g:
        lines.append("| (no ghga-cli results) | | | | | | |")
    lines += ["", "## Duration and rate per size and direction (1 client)", ""]
    for backend in t.values(0):
        lines += [
            f"### {backend}",
            "",
            "| direction | size | tool | conns | duration s | MB/s | "
            "MB/s min–max | client CPU s | peak RSS MB | server CPU s | errors / runs |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for direction in t.values(1, backend=backend):
            for size in t.values(2, backend=backend, direction=direction):
                for tool in sorted(
                    t.values(3, backend=backend, direction=direction, size=size, clients=1)
                ):
                    key = (backend, direction, size, tool, 1)
                    allr = t.groups[key]
                    lines.append(
                        f"| {direction} | {size_label(size)} | {tool} | "
                        f"{t.tools[tool][1] or '–'} | "
                        f"{_fmt(t.med(key, 'seconds'), 2)} | {_fmt(t.med(key, 'mb_per_s'))} | "
                        f"{t.spread(key, 'mb_per_s')} | "
                        f"{_fmt(t.med(key, 'client_cpu_seconds'), 2)} | "
                        f"{_fmt(t.med(key, 'client_peak_rss_mb'), 0)} | "
                        f"{_fmt(t.med(key, 'server_cpu_seconds'), 1)} | "
                        f"{sum(r['errors'] for r in allr)} / {len(allr)} |"
                    )
        lines.append("")
    lines += ["## ghga-cli's ratio to each tool (1 client, same campaign)", ""]
    ghga = [n for n, (kind, _) in t.tools.items() if kind == "ghga-cli" and n not in t.killed]
    others = sorted(n for n, (kind, _) in t.tools.items() if kind != "ghga-cli")
    if ghga and others:
        lines += [
            "| backend | direction | size | ghga-cli variant | " + " | ".join(others) + " |",
            "|---|---|---|---|" + "---|" * len(others),
        ]
        for backend in t.values(0):
            for direction in t.values(1, backend=backend):
                for size in t.values(2, backend=backend, direction=direction):
                    for gv in ghga:
                        ours = t.med((backend, direction, size, gv, 1), "mb_per_s")
                        if ours is None:
                            continue
                        cells = []
                        for o in others:
                            v = t.med((backend, direction, size, o, 1), "mb_per_s")
                            cells.append(_fmt(ours / v, 2) + "×" if v else "–")
                        lines.append(
                            f"| {backend} | {direction} | {size_label(size)} | {gv} | "
                            + " | ".join(cells)
                            + " |"
                        )
    lines += [
        "",
        "## Parallel clients: aggregate and per-client rate",
        "",
        "| backend | direction | size | tool | clients | aggregate MB/s | per-client MB/s | "
        "client CPU s | server CPU s | errors / runs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in t.keys():
        backend, direction, size, tool, clients = key
        if len(t.values(4, backend=backend, direction=direction, size=size, tool=tool)) < 2:
            continue
        allr = t.groups[key]
        lines.append(
            f"| {backend} | {direction} | {size_label(size)} | {tool} | {clients} | "
            f"{_fmt(t.med(key, 'mb_per_s'))} | {_fmt(t.med(key, 'per_client_mb_per_s'))} | "
            f"{_fmt(t.med(key, 'client_cpu_seconds'), 2)} | "
            f"{_fmt(t.med(key, 'server_cpu_seconds'), 1)} | "
            f"{sum(r['errors'] for r in allr)} / {len(allr)} |"
        )
    killed = [r for r in runs if r.get("kill")]
    if killed:
        lines += [
            "",
            "## Killed halfway and resumed",
            "",
            "SIGKILL once the client's ledgers held `at` of the bytes, then the same command "
            "again. Time lost: this run's seconds minus the median of the uninterrupted "
            "ghga-cli runs of the same cell. Not resumed: wire bytes before the kill minus the "
            "bytes the second run resumed (an upper bound of what was sent again).",
            "",
            "| backend | direction | size | tool | at | killed after s | seconds | time lost s | "
            "bytes resumed | wire bytes not resumed | verified |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sorted(killed, key=lambda r: r.get("order", 0)):
            kill = r["kill"]
            plain = t.med(
                (r["backend"], r["direction"], r["size"], "ghga-cli", r["clients"]), "seconds"
            )
            lost = r["seconds"] - plain if plain is not None else None
            lines.append(
                f"| {r['backend']} | {r['direction']} | {size_label(r['size'])} | {r['tool']} | "
                f"{kill.get('at_fraction')} | {_fmt(kill.get('killed_after_seconds'), 1)} | "
                f"{_fmt(r['seconds'], 1)} | {_fmt(lost, 1)} | {kill.get('bytes_resumed')} | "
                f"{kill.get('wire_bytes_not_resumed', '–')} | {r['verified']} |"
            )
    if many:
        lines += [
            "",
            "## Many files: one command for a dataset",
            "",
            "One client moves `files` files of `size` each (distinct objects, the same bytes). "
            "MB/s is the aggregate over all files; ratios compare with s5cmd (`s5cmd run`, one "
            "`cp` per file) and with one `ghga-cli` process per file, one after the other.",
            "",
            "| backend | direction | files × size | tool | workers | duration s | MB/s | "
            "MB/s min–max | client CPU s | peak RSS MB | server CPU s | errors / runs | "
            "vs s5cmd | vs loop |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in many:
            lines.append(
                f"| {row['backend']} | {row['direction']} | "
                f"{row['files']} × {size_label(row['size'])} | {row['tool']} | "
                f"{row['workers'] or ('–' if not row['batch'] else 'default')} | "
                f"{_fmt(row['seconds'], 1)} | {_fmt(row['mb_per_s'])} | {row['spread']} | "
                f"{_fmt(row['cpu'], 1)} | {_fmt(row['rss'], 0)} | {_fmt(row['server_cpu'], 1)} | "
                f"{row['errors']} | {_fmt(row['vs_s5cmd'], 2)}× | {_fmt(row['vs_loop'], 2)}× |"
            )
    try:
        plots = _plots(t, out)
    except ImportError:
        plots = []
        lines += ["", "(matplotlib is not installed: no plots; `pip install 'ghga-tasks[bench]'`)"]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    bad = [r for r in runs if not r["verified"]]
    if bad:
        lines += ["", "## Runs with errors", ""]
        for r in bad:
            msg = (
                " / ".join(r.get("error_messages", []))[:400].replace("\n", " ").replace("|", "\\|")
            )
            lines.append(f"- `{r['key']}`: {msg}")
    lines += [
        "",
        f"Data: [results.csv](results.csv); one JSON per run in `{results_dir.name}/runs/`.",
        "",
    ]
    (out / "REPORT.md").write_text("\n".join(lines))
    return out / "REPORT.md"
