"""The report's PNG plots: rate against size, and aggregate rate against parallel clients,
per backend and direction."""

from __future__ import annotations

from pathlib import Path

from .files import size_label
from .table import Table


def write_plots(t: Table, out: Path) -> list[str]:
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
