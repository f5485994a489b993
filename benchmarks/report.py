"""The report of a results dir: REPORT.md, results.csv and PNG plots.

Figures are medians over repetitions; errors are counted over all repetitions. Every
ratio compares tools measured in the same campaign on the same backend, which is what
the goals ask for (absolute MB/s on a shared two-core machine vary by ±20 %).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Optional

from .files import size_label
from .goals import clients_goals, error_goal, goals, kill_goals, many_files_goals
from .netns import capped
from .paths import portable
from .plots import write_plots
from .table import Table, fmt, load_runs, many_files_rows

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
    "parts",
    "url_refreshes",
    "bytes_resent",
    "errors",
    "verified",
    "started",
]


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
            w.writerow({**r, **(r.get("ghga_cli_counts") or {})})
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
            else "namespace {netns}, veth {cap}, MTU {mtu}{steering}".format(
                cap=f"capped at {r['netns']['rate']}" if capped(r["netns"]["rate"]) else "uncapped",
                steering=", each side receiving on its own CPUs (RPS)"
                if r["netns"].get("rps")
                else "",
                **r["netns"],
            )
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
    g = goals(t) + clients_goals(t) + kill_goals(runs) + many_files_goals(many) + error_goal(runs)
    lines += [
        "## Goals",
        "",
        "| goal | where | ghga-cli variant | compared to | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in g:
        lines.append(
            f"| {row['goal']} | {row['where']} | {row['ours']} | {row['ref']} | "
            f"{fmt(row['ratio'], 2)} | {row['target']} | {row['verdict']} |"
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
                        f"{fmt(t.med(key, 'seconds'), 2)} | {fmt(t.med(key, 'mb_per_s'))} | "
                        f"{t.spread(key, 'mb_per_s')} | "
                        f"{fmt(t.med(key, 'client_cpu_seconds'), 2)} | "
                        f"{fmt(t.med(key, 'client_peak_rss_mb'), 0)} | "
                        f"{fmt(t.med(key, 'server_cpu_seconds'), 1)} | "
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
                            cells.append(fmt(ours / v, 2) + "×" if v else "–")
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
        others = t.values(4, backend=backend, direction=direction, tool=tool)
        if clients == 1 and len(others) < 2:  # one client rows: as the reference of others
            continue
        allr = t.groups[key]
        lines.append(
            f"| {backend} | {direction} | {size_label(size)} | {tool} | {clients} | "
            f"{fmt(t.med(key, 'mb_per_s'))} | {fmt(t.med(key, 'per_client_mb_per_s'))} | "
            f"{fmt(t.med(key, 'client_cpu_seconds'), 2)} | "
            f"{fmt(t.med(key, 'server_cpu_seconds'), 1)} | "
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
            "ghga-cli runs of the same cell. Not resumed (client outside the backend network "
            "only): the TCP payload that crossed the veth before the kill (its byte counters "
            "minus the packets' headers) minus the bytes the second run resumed: what went "
            "again, plus a few KB of HTTP headers.",
            "",
            "| backend | direction | size | tool | at | killed after s | seconds | time lost s | "
            "bytes resumed | bytes not resumed | verified |",
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
                f"{kill.get('at_fraction')} | {fmt(kill.get('killed_after_seconds'), 1)} | "
                f"{fmt(r['seconds'], 1)} | {fmt(lost, 1)} | {kill.get('bytes_resumed')} | "
                f"{kill.get('payload_not_resumed', '–')} | {r['verified']} |"
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
                f"{fmt(row['seconds'], 1)} | {fmt(row['mb_per_s'])} | {row['spread']} | "
                f"{fmt(row['cpu'], 1)} | {fmt(row['rss'], 0)} | {fmt(row['server_cpu'], 1)} | "
                f"{row['errors']} | {fmt(row['vs_s5cmd'], 2)}× | {fmt(row['vs_loop'], 2)}× |"
            )
    try:
        plots = write_plots(t, out)
    except ImportError:
        plots = []
        lines += ["", "(matplotlib is not installed: no plots; `pip install 'ghga-tasks[bench]'`)"]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += every_run_lines(runs)
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


def every_run_lines(runs: list[dict]) -> list[str]:
    """One row per run, in the order they ran: the seed's table. Busy seconds per CPU are
    everything that ran on each CPU meanwhile (with [cpus]: the server side and the client
    side, kernel work included). Parts, URL refreshes and bytes re-sent are what ghga-cli's
    --json said (summed over its clients); a killed run counts the run that resumed it."""
    lines = [
        "",
        "## Every run",
        "",
        "| # | backend | direction | size | tool | clients | rep | duration s | MB/s | "
        "client CPU s | peak RSS MB | server CPU s | busy s per CPU | parts | URL refreshes | "
        "bytes re-sent | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(runs, key=lambda r: r.get("order", 0)):
        counts = r.get("ghga_cli_counts") or {}
        files = f"{r.get('files', 1)} × " if r.get("files", 1) > 1 else ""
        per_cpu = sorted((r.get("cpu_busy_seconds") or {}).items())
        busy = ", ".join(f"{n}: {s:.0f}" for n, s in per_cpu)
        lines.append(
            f"| {r.get('order', '')} | {r['backend']} | {r['direction']} | "
            f"{files}{size_label(r['size'])} | {r['tool']} | {r['clients']} | {r['rep']} | "
            f"{fmt(r['seconds'], 1)} | {fmt(r['mb_per_s'])} | "
            f"{fmt(r['client_cpu_seconds'], 1)} | {fmt(r['client_peak_rss_mb'], 0)} | "
            f"{fmt(r['server_cpu_seconds'], 1)} | {busy or '–'} | {counts.get('parts', '–')} | "
            f"{counts.get('url_refreshes', '–')} | {counts.get('bytes_resent', '–')} | "
            f"{r['errors']} |"
        )
    return lines
