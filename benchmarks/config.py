"""Campaign configuration: a TOML file in configs/benchmarks/ -> the list of runs.

The matrix is the union of ``[[matrix]]`` blocks, each a cross product of backends,
directions, sizes, tools, client counts and files per client, repeated ``repetitions``
times. Combinations a tool cannot do (S3 peers on nginx, uploads to nginx, many files
with a single-file tool) are left out. See
configs/benchmarks/quick.toml for every key.
"""

from __future__ import annotations

import itertools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ghga_tasks.settings import parse_size

from .files import size_label
from .tools import Tool, make_tool

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DIRECTIONS = ("download", "upload")


SPARE = 4 << 30  # free disk to keep beyond a run's own bytes


@dataclass(frozen=True)
class RunSpec:
    backend: str
    direction: str
    size: int
    tool: str
    clients: int
    rep: int
    order: int = 0
    files: int = 1  # files per client: a dataset moved by one command

    @property
    def key(self) -> str:
        many = f"x{self.files}" if self.files > 1 else ""
        return (
            f"{self.backend}__{self.direction}__{size_label(self.size)}{many}__{self.tool}"
            f"__c{self.clients}__r{self.rep}"
        )

    @property
    def file_count(self) -> int:
        """Files of all clients together."""
        return self.clients * self.files

    @property
    def total_bytes(self) -> int:
        return self.size * self.file_count

    @property
    def peak_bytes(self) -> int:
        """The most this run holds at once, before compression: the source and three copies
        (seeding a download: inbox, permanent and outbox, then the outputs take the place of
        the source and the inbox copy; an upload: inbox, permanent and the part files of the
        tools that cut the file)."""
        return self.size + 3 * self.total_bytes


@dataclass
class Campaign:
    name: str
    path: Path
    results_dir: Path
    work_dir: Path
    runs: list[RunSpec]
    tools: dict[str, Tool]
    backends: dict[str, dict]
    run_timeout: float = 600.0
    content: str = "random"
    netns: Optional[dict] = None
    cpus: Optional[dict] = None
    client_fs: Optional[dict] = None
    stored_fraction: float = 1.0  # of a run's bytes that the disk holds (compression: < 1)
    gc: str = "every-run"
    warm_up: bool = False  # one unrecorded run after each backend start
    raw: dict = field(default_factory=dict)

    def on_disk(self, nbytes: int) -> int:
        """What `nbytes` of run data take on the disk (`stored_fraction`: compression)."""
        return int(nbytes * self.stored_fraction)

    def disk_needed(self, specs: list[RunSpec]) -> int:
        """Free disk the largest of `specs` needs (its peak on the disk, plus spare)."""
        return max((self.on_disk(s.peak_bytes) for s in specs), default=0) + SPARE

    def done(self, key: str) -> bool:
        """Whether the run has its result file."""
        return (self.results_dir / "runs" / f"{key}.json").exists()

    def left(self, only: Optional[str] = None) -> list[RunSpec]:
        """The runs without a result (matching the regex ``only``, if given)."""
        return [
            s for s in self.runs if not self.done(s.key) and (not only or re.search(only, s.key))
        ]

    def run(self, key: str) -> RunSpec:
        for spec in self.runs:
            if spec.key == key:
                return spec
        raise KeyError(key)


def _list(block: dict, key: str, default=None) -> list:
    value = block.get(key, default)
    if value is None:
        raise ValueError(f"[[matrix]] needs {key!r}")
    return value if isinstance(value, list) else [value]


def load(path, results_dir=None, work_dir=None) -> Campaign:
    path = Path(path)
    raw = tomllib.loads(path.read_text())
    camp = raw.get("campaign", {})
    name = camp.get("name", path.stem)
    reps = int(camp.get("repetitions", 1))
    tool_table = raw.get("tools", {})
    tools: dict[str, Tool] = {}
    specs: dict[tuple, RunSpec] = {}
    backend_rank: dict[str, int] = {}
    tool_rank: dict[str, int] = {}
    for block in raw.get("matrix", []):
        for b in _list(block, "backends"):
            backend_rank.setdefault(b, len(backend_rank))
        for t in _list(block, "tools"):
            tool_rank.setdefault(t, len(tool_rank))
            if t not in tools:
                tools[t] = make_tool(t, tool_table)
        combos = itertools.product(
            _list(block, "backends"),
            _list(block, "directions", list(DIRECTIONS)),
            [parse_size(s) for s in _list(block, "sizes")],
            _list(block, "tools"),
            [int(c) for c in _list(block, "clients", [1])],
            [int(n) for n in _list(block, "files", [1])],
            range(1, int(block.get("repetitions", reps)) + 1),
        )
        for backend, direction, size, tool, clients, files, rep in combos:
            if direction not in DIRECTIONS:
                raise ValueError(f"unknown direction {direction!r}")
            if not tools[tool].supports(backend, direction, files):
                continue
            if tools[tool].opts.get("kill_at") and (
                tools[tool].kind != "ghga-cli" or files != 1 or clients != 1
            ):
                raise ValueError(f"tool {tool!r}: kill_at needs ghga-cli, one client, one file")
            spec = RunSpec(backend, direction, size, tool, clients, rep, files=files)
            specs[(spec.key,)] = spec
    if not specs:
        raise ValueError(f"{path}: the matrix is empty")

    def rank(s: RunSpec):
        return (
            backend_rank[s.backend],
            DIRECTIONS.index(s.direction),
            s.files,
            s.size,
            s.clients,
            s.rep,
            tool_rank[s.tool],
        )

    runs = [
        RunSpec(**{**s.__dict__, "order": i})
        for i, s in enumerate(sorted(specs.values(), key=rank))
    ]
    base = Path.cwd()
    results = Path(results_dir or camp.get("results_dir") or base / "bench-results" / name)
    work = Path(work_dir or camp.get("work_dir") or "/var/tmp/ghga-tasks-bench")
    netns = raw.get("netns")
    if netns is not None and not netns.get("enabled", True):
        netns = None
    cpus = raw.get("cpus")
    if netns and netns.get("rps") and not (cpus and cpus.get("enabled", True)):
        raise ValueError(f"{path}: [netns] rps = true needs [cpus] (whose CPUs receive what)")
    return Campaign(
        name=name,
        path=path.resolve(),
        results_dir=results.resolve(),
        work_dir=work.resolve(),
        runs=runs,
        tools=tools,
        backends=raw.get("backends", {}),
        run_timeout=float(camp.get("run_timeout", 600)),
        content=camp.get("content", "random"),
        netns=netns,
        cpus=cpus,
        client_fs=raw.get("client_fs"),
        stored_fraction=float(camp.get("stored_fraction", 1.0)),
        gc=camp.get("gc", "every-run"),
        warm_up=bool(camp.get("warm_up", False)),
        raw=raw,
    )
