"""The goals of the issues as ratios between tools measured in the same campaign, each row
with its verdict."""

from __future__ import annotations

from .files import size_label
from .netns import capped
from .table import PEERS, Table


def ratio_row(goal, where, ours, ref, ratio, target, cmp=">=") -> dict:
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
                                ratio_row("≥ 1.0× best peer", where, g, best_name, ours / best, 1.0)
                            )
                        conn = t.tools[g][1]
                        if conn in curls:
                            c = t.med((backend, direction, size, curls[conn], 1), "mb_per_s")
                            if c:
                                rows.append(
                                    ratio_row(
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
                                ratio_row(
                                    "client-only: ≥ 1.3× curl -o", where, g, curls[1], ours / c, 1.3
                                )
                            )
                        ours_cpu = t.med((backend, direction, size, g, 1), "client_cpu_seconds")
                        c_cpu = t.med((backend, direction, size, curls[1], 1), "client_cpu_seconds")
                        if ours_cpu is not None and c_cpu:
                            rows.append(
                                ratio_row(
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
                ratio_row(
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
                    ratio_row(
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
                        ratio_row(
                            "linear: rate(big) ≥ 0.9× rate(small)",
                            f"{backend} {direction} {size_label(hi)} vs {size_label(lo)}",
                            g,
                            "",
                            b / a,
                            0.9,
                        )
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
            goals.append(ratio_row(name, where, row["tool"], ref, row[field], target))
    return goals


def clients_goals(t: Table) -> list[dict]:
    """Several clients at once on a capped link: their aggregate within 10 % of one client's
    rate (same tool, backend and direction; the same size if one client ran it, else the
    largest one-client size)."""
    rows = []
    for key in t.keys():
        backend, direction, size, tool, clients = key
        runs = t.ok(key)
        link_capped = all(capped((r.get("netns") or {}).get("rate", 0)) for r in runs)
        if clients < 2 or not runs or not link_capped:
            continue
        if t.tools[tool][0] != "ghga-cli" and t.tools[tool][0] not in PEERS:
            continue
        singles = t.values(2, backend=backend, direction=direction, tool=tool, clients=1)
        if not singles:
            continue
        ref_size = size if size in singles else max(singles)
        one = t.med((backend, direction, ref_size, tool, 1), "mb_per_s")
        many = t.med(key, "mb_per_s")
        rows.append(
            ratio_row(
                f"{clients} clients: aggregate ≥ 0.9× one client",
                f"{backend} {direction} {clients} × {size_label(size)}",
                tool,
                f"one client, {size_label(ref_size)}",
                many / one if many and one else None,
                0.9,
            )
        )
    return rows


def kill_goals(runs: list[dict]) -> list[dict]:
    """A SIGKILL costs at most the parts in flight: bytes not resumed ≤ connections × part
    size (the part size from ghga-cli's own count of parts). Needs the client in a network
    namespace, whose veth counts the bytes that moved before the kill."""
    rows = []
    for r in runs:
        kill, counts = r.get("kill") or {}, r.get("ghga_cli_counts") or {}
        lost, parts = kill.get("payload_not_resumed"), counts.get("parts")
        if lost is None or not parts or not r.get("connections"):
            continue
        bound = r["connections"] * -(-r["size"] // parts)
        rows.append(
            ratio_row(
                "kill: re-sent ≤ parallel × part size",
                f"{r['backend']} {r['direction']} {size_label(r['size'])} (rep {r['rep']})",
                r["tool"],
                f"{r['connections']} × {size_label(bound // r['connections'])}",
                lost / bound,
                1.0,
                "<=",
            )
        )
    return rows


def error_goal(runs: list[dict]) -> list[dict]:
    """No sporadic errors: every transfer of every repetition verified."""
    if not runs:
        return []
    failed = sum(r["errors"] for r in runs)
    clients = sum(r.get("clients", 1) for r in runs)
    return [
        ratio_row(
            "no errors",
            f"all {len(runs)} runs, {clients} clients",
            "every tool",
            "clients with a failed or unverified transfer",
            float(failed),
            0,
            "<=",
        )
    ]
