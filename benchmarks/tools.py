"""The tools compared, one class each: how it downloads and uploads one file.

Every tool moves the same bytes from or to the same backend in the same run. The S3
peers (s5cmd, aws-cli v2, rclone) use the backend's keys and their default settings,
as their users run them; ``ghga-cli`` and curl go through the services' pre-signed URLs.
A client writes only into its own empty ``out_dir``; the harness verifies the SHA-256 of
the concatenation of the files there (sorted by name), so curl may write one file per
range. A client of a many-files run (``files > 1``) moves all its files with one command
(``ghga-cli download-batch``, ``s5cmd run``) or, for the ``loop`` variant, with one
``ghga-cli`` process per file, one after the other; each of its output files must hold
the source's bytes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ghga_tasks.settings import parse_size

from .api import Upload
from .files import split_parts
from .paths import REPO
from .servers import find_exe, ghga_cli_argv, ghga_env


@dataclass
class FileRef:
    """One file a client moves: its id at the services, or its place in S3 (peers)."""

    file_id: str = ""
    access_url: str = ""  # download: pre-signed GET
    bucket: str = ""  # S3 location (peers)
    key: str = ""
    name: str = ""  # the output file's name (downloads)


@dataclass
class ClientCtx:
    """What one client of a run needs; filled by the lab before the clock starts."""

    index: int
    direction: str
    size: int
    src: Path
    sha256: str
    work: Path  # private scratch dir of this client
    out_dir: Path  # download target (empty)
    state_dir: Path
    api: object
    s3: dict
    files: list[FileRef] = field(default_factory=list)
    post: Optional[Callable[[], None]] = None
    extra: dict = field(default_factory=dict)

    # the single file of a one-file run
    @property
    def file_id(self) -> str:
        return self.files[0].file_id

    @property
    def access_url(self) -> str:
        return self.files[0].access_url

    @property
    def bucket(self) -> str:
        return self.files[0].bucket

    @property
    def key(self) -> str:
        return self.files[0].key


class Tool:
    kind = "?"
    via_api = False  # goes through the services (registers files) vs plain S3
    directions = ("download", "upload")
    backends = ("seaweedfs", "ceph", "seaweedfs-direct")
    many_files = False  # can move several files in one client (files > 1)

    sources: Optional[Path] = None  # the checkout whose ghga_tasks a ghga-cli tool runs

    def __init__(self, name: str, opts: dict):
        self.name, self.opts = name, dict(opts)

    @property
    def connections(self) -> Optional[int]:
        return self.opts.get("connections")

    def exe(self) -> Optional[list[str]]:
        raise NotImplementedError

    def version_argv(self) -> list[str]:
        return (self.exe() or ["missing"]) + ["--version"]

    def version_env(self) -> Optional[dict]:
        """The environment version_argv() runs in (None: the harness's)."""
        return None

    def supports(self, backend: str, direction: str, files: int = 1) -> bool:
        return (
            direction in self.directions
            and backend in self.backends
            and (files == 1 or self.many_files)
        )

    def prepare(self, ctx: ClientCtx) -> None:
        """Untimed set-up of one client (URLs, part files)."""

    def argv(self, ctx: ClientCtx) -> list[str]:
        raise NotImplementedError

    def env(self, ctx: ClientCtx) -> dict:
        return dict(os.environ)


class GhgaCli(Tool):
    """``ghga-cli`` through the Upload / DRS APIs. Many files: one ``download-batch`` /
    ``upload-batch`` over a manifest (``workers``, ``connections``), or with ``loop = true``
    one ``ghga-cli`` process per file, one after the other (a shell loop)."""

    kind = "ghga-cli"
    via_api = True
    many_files = True
    backends = ("seaweedfs", "ceph", "nginx", "seaweedfs-direct")

    def __init__(self, name: str, opts: dict):
        super().__init__(name, opts)
        if "sources" in self.opts:  # another checkout: two engines in one campaign (A/B)
            self.sources = Path(self.opts["sources"]).resolve()
            if not (self.sources / "ghga_tasks" / "__init__.py").is_file():
                raise ValueError(f"tool {name!r}: no ghga_tasks package in {self.sources}")

    @property
    def connections(self):
        if "parallel" in self.opts:
            return int(self.opts["parallel"])
        try:
            from ghga_tasks.settings import Settings

            return Settings().parallel
        except Exception:  # noqa: BLE001
            return None

    def supports(self, backend, direction, files=1):
        return super().supports(backend, direction, files) and not (
            backend == "nginx" and direction == "upload"
        )

    def exe(self):
        return ghga_cli_argv()

    def version_env(self):
        return ghga_env(sources=self.sources)  # the sources the runs use, not the installed

    def _tuning(self) -> list[str]:
        args = []
        if "parallel" in self.opts:
            args += ["--parallel", str(self.opts["parallel"])]
        return args + list(self.opts.get("args", []))

    def _single(self, ctx: ClientCtx, ref: FileRef) -> list[str]:
        if ctx.direction == "download":
            cmd = ["download-by-id", "--api-url", ctx.api.drs_api, "--file-id", ref.file_id]
            cmd += ["--output-dir", str(ctx.out_dir)]
            if "part_size" in self.opts:
                cmd += ["--part-size", str(parse_size(self.opts["part_size"]))]
        else:
            cmd = ["upload-by-id", "--api-url", ctx.api.upload_api, "--file-id", ref.file_id]
            cmd += ["--file-path", str(ctx.src)]
        return self.exe() + cmd + ["--state-dir", str(ctx.state_dir), "--json"] + self._tuning()

    def _batch(self, ctx: ClientCtx) -> list[str]:
        manifest = ctx.work / "manifest.tsv"
        if ctx.direction == "download":
            rows = ["file_id"] + [ref.file_id for ref in ctx.files]
            cmd = ["download-batch", "--api-url", ctx.api.drs_api]
            cmd += ["--output-dir", str(ctx.out_dir)]
        else:
            rows = ["file_id\tfile_path"] + [f"{ref.file_id}\t{ctx.src}" for ref in ctx.files]
            cmd = ["upload-batch", "--api-url", ctx.api.upload_api]
        manifest.write_text("\n".join(rows) + "\n")
        cmd += ["--manifest", str(manifest), "--state-dir", str(ctx.state_dir), "--json"]
        for opt in ("workers", "connections"):
            if opt in self.opts:
                cmd += [f"--{opt}", str(self.opts[opt])]
        return self.exe() + cmd + self._tuning()

    def prepare(self, ctx):
        if len(ctx.files) > 1 and self.opts.get("loop"):
            script = ctx.work / "loop.sh"
            lines = [shlex.join(self._single(ctx, ref)) for ref in ctx.files]
            script.write_text("set -e\n" + "\n".join(lines) + "\n")
            ctx.extra["argv"] = ["/bin/sh", str(script)]
        elif len(ctx.files) > 1:
            ctx.extra["argv"] = self._batch(ctx)
        else:
            ctx.extra["argv"] = self._single(ctx, ctx.files[0])

    def argv(self, ctx):
        return ctx.extra["argv"]

    def env(self, ctx):
        env = ghga_env(home=ctx.work, sources=self.sources)
        if ctx.extra.get("compressing_fs"):  # reserved blocks would be stored uncompressed
            env["GHGA_TASKS_PREALLOCATE"] = "false"
        return env


class Curl(Tool):
    """curl on the same pre-signed URLs: the limit of the HTTP path.

    One connection: ``curl -o FILE URL`` / the parts one after the other on one
    connection. N connections: one curl with ``--parallel --parallel-max N`` over the
    ranges (download, one file per range) or the parts (upload, from part files cut
    before the clock starts). ``Expect: 100-continue`` is switched off.
    """

    kind = "curl"
    via_api = True
    backends = ("seaweedfs", "ceph", "nginx", "seaweedfs-direct")

    @property
    def connections(self):
        return int(self.opts.get("connections", 1))

    def supports(self, backend, direction, files=1):
        return super().supports(backend, direction, files) and not (
            backend == "nginx" and direction == "upload"
        )

    def exe(self):
        exe = self.opts.get("path") or find_exe("curl")
        return [exe] if exe else None

    def prepare(self, ctx):
        n = self.connections
        lines = ["silent", "show-error", "globoff"]
        if n > 1:
            lines += ["parallel", f"parallel-max = {n}"]
        if ctx.direction == "download":
            if n == 1:
                ctx.extra["argv_tail"] = [
                    "-sS",
                    "-f",
                    "-o",
                    str(ctx.out_dir / "file"),
                    ctx.access_url,
                ]
                return
            chunk = parse_size(self.opts.get("part_size", "64MiB"))
            for i, off in enumerate(range(0, ctx.size, chunk)):
                end = min(off + chunk, ctx.size) - 1
                lines += [
                    f'url = "{ctx.access_url}"',
                    f"range = {off}-{end}",
                    "fail",
                    f'output = "{ctx.out_dir / f"part{i:06d}"}"',
                    "next",
                ]
        else:
            up: Upload = ctx.api.begin_upload(ctx.file_id)
            shared = ctx.extra["shared"]  # one set of part files for all clients of a run
            parts = shared.get("parts")
            if parts is None or parts[0] != up.part_size:
                parts = (up.part_size, split_parts(ctx.src, up.part_size, shared["parts_dir"]))
                shared["parts"] = parts
            for n_part, part in enumerate(parts[1], start=1):
                lines += [
                    f'url = "{ctx.api.part_url(up, n_part)}"',
                    f'upload-file = "{part}"',
                    'header = "Expect:"',
                    "fail",
                    "next",
                ]
            ctx.post = lambda: ctx.api.complete(up, ctx.src)
        if lines[-1] == "next":
            lines.pop()
        cfg = ctx.work / "curl.cfg"
        cfg.write_text("\n".join(lines) + "\n")
        ctx.extra["argv_tail"] = ["-K", str(cfg)]

    def argv(self, ctx):
        return self.exe() + ctx.extra["argv_tail"]


class S3Peer(Tool):
    """An S3 client with the backend's keys (s5cmd, aws-cli, rclone): `cmd SRC DST`."""

    @staticmethod
    def _copy(cmd: list, remote: str, ctx: ClientCtx) -> list:
        """`cmd SRC DST` for an S3 peer's copy command, in the run's direction."""
        if ctx.direction == "download":
            return cmd + [remote, str(ctx.out_dir / "file")]
        return cmd + [str(ctx.src), remote]

    def env(self, ctx: ClientCtx) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
        env.update(
            AWS_ACCESS_KEY_ID=ctx.s3["access_key"],
            AWS_SECRET_ACCESS_KEY=ctx.s3["secret_key"],
            AWS_REGION=ctx.s3.get("region") or "us-east-1",
            AWS_DEFAULT_REGION=ctx.s3.get("region") or "us-east-1",
            AWS_EC2_METADATA_DISABLED="true",  # never probe an instance metadata service
            AWS_CONFIG_FILE=str(ctx.work / "aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(ctx.work / "aws-credentials"),
            AWS_PAGER="",
            HOME=str(ctx.work),
        )
        return env


class S5cmd(S3Peer):
    """``s5cmd cp``; many files: ``s5cmd run`` over one ``cp`` line per file."""

    kind = "s5cmd"
    many_files = True

    def exe(self):
        exe = self.opts.get("path") or find_exe("s5cmd")
        return [exe] if exe else None

    def version_argv(self):
        return (self.exe() or ["missing"]) + ["version"]

    def argv(self, ctx):
        cmd = self.exe() + ["--endpoint-url", ctx.s3["endpoint"]] + list(self.opts.get("args", []))
        if len(ctx.files) > 1:
            cp_args, lines = list(self.opts.get("cp_args", [])), []
            for ref in ctx.files:
                remote = f"s3://{ref.bucket}/{ref.key}"
                local = str(ctx.out_dir / ref.name) if ctx.direction == "download" else str(ctx.src)
                pair = [remote, local] if ctx.direction == "download" else [local, remote]
                lines.append(shlex.join(["cp", *cp_args, *pair]))
            commands = ctx.work / "s5cmd-commands"
            commands.write_text("\n".join(lines) + "\n")
            return cmd + ["run", str(commands)]
        cmd.append("cp")
        cmd += list(self.opts.get("cp_args", []))
        return self._copy(cmd, f"s3://{ctx.bucket}/{ctx.key}", ctx)


class AwsCli(S3Peer):
    """``aws s3 cp``; prefers AWS CLI v2 (Debian's ``awscli`` on bookworm is 2.9)."""

    kind = "aws"

    def exe(self):
        if self.opts.get("path"):
            return [self.opts["path"]]
        for cand in ("/usr/bin/aws", "/usr/local/bin/aws", find_exe("aws")):
            if cand and os.path.exists(cand):
                try:
                    out = subprocess.run(
                        [cand, "--version"],
                        capture_output=True,
                        text=True,
                        timeout=30,
                        env={**os.environ, "AWS_PAGER": ""},
                    )
                except (OSError, subprocess.TimeoutExpired):
                    continue
                if out.stdout.startswith("aws-cli/2"):
                    return [cand]
        aws = find_exe("aws")
        return [aws] if aws else None

    def argv(self, ctx):
        cmd = self.exe() + ["s3", "cp", "--no-progress", "--endpoint-url", ctx.s3["endpoint"]]
        cmd += list(self.opts.get("args", []))
        return self._copy(cmd, f"s3://{ctx.bucket}/{ctx.key}", ctx)


class Rclone(S3Peer):
    kind = "rclone"

    def exe(self):
        exe = self.opts.get("path") or find_exe("rclone")
        return [exe] if exe else None

    def argv(self, ctx):
        cmd = self.exe() + ["copyto"] + list(self.opts.get("args", []))
        return self._copy(cmd, f"bench:{ctx.bucket}/{ctx.key}", ctx)

    def env(self, ctx):
        env = super().env(ctx)
        (ctx.work / "rclone.conf").write_text("")
        env.update(
            RCLONE_CONFIG=str(ctx.work / "rclone.conf"),
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=ctx.s3["access_key"],
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=ctx.s3["secret_key"],
            RCLONE_CONFIG_BENCH_ENDPOINT=ctx.s3["endpoint"],
            RCLONE_CONFIG_BENCH_REGION=ctx.s3.get("region") or "us-east-1",
            RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
            RCLONE_S3_NO_CHECK_BUCKET="true",
        )
        return env


class Aria2(Tool):
    """aria2c, the classic resumable multi-connection downloader, on the same pre-signed
    URL as curl: ``-x N -s N`` connections (ranges of at least ``min_split``), its own
    control file for resuming, no pre-allocation. ``verify = true`` adds
    ``--checksum=sha-256=…``: aria2c then hashes the finished file, as ghga-cli does."""

    kind = "aria2c"
    via_api = True
    directions = ("download",)
    backends = ("seaweedfs", "ceph", "nginx", "seaweedfs-direct")

    @property
    def connections(self):
        return int(self.opts.get("connections", 4))

    def exe(self):
        exe = self.opts.get("path") or find_exe("aria2c")
        return [exe] if exe else None

    def argv(self, ctx):
        n = self.connections
        cmd = self.exe() + [
            f"--max-connection-per-server={n}",
            f"--split={n}",
            f"--min-split-size={self.opts.get('min_split', '20M')}",
            "--file-allocation=none",
            "--console-log-level=warn",
            "--summary-interval=0",
            "--download-result=hide",
            "--allow-overwrite=false",
            "--auto-file-renaming=false",
            f"--dir={ctx.out_dir}",
            "--out=file",
        ]
        if self.opts.get("verify"):
            cmd.append(f"--checksum=sha-256={ctx.sha256}")
        return cmd + list(self.opts.get("args", [])) + [ctx.access_url]


class S3TransferCrt(S3Peer):
    """boto3's s3transfer with the AWS Common Runtime (``awscrt``): benchmarks/crt_client.py."""

    kind = "s3transfer-crt"

    def supports(self, backend, direction, files=1):
        # s3transfer's CRT uploads always send a CRC32 as an aws-chunked trailer
        # (x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER); Debian's Ceph 16 RGW
        # refuses every such UploadPart with XAmzContentSHA256Mismatch
        return super().supports(backend, direction, files) and not (
            backend == "ceph" and direction == "upload"
        )

    def exe(self):
        try:
            import awscrt  # noqa: F401
            import s3transfer.crt  # noqa: F401
        except ImportError:
            return None
        return [sys.executable, "-m", "benchmarks.crt_client"]

    def version_argv(self):
        code = (
            "import awscrt, s3transfer; "
            "print('awscrt', awscrt.__version__, 's3transfer', s3transfer.__version__)"
        )
        return [sys.executable, "-c", code]

    def argv(self, ctx):
        local = str(ctx.out_dir / "file") if ctx.direction == "download" else str(ctx.src)
        return self.exe() + [ctx.direction, ctx.s3["endpoint"], ctx.bucket, ctx.key, local]

    def env(self, ctx):
        env = super().env(ctx)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env


KINDS = {cls.kind: cls for cls in (GhgaCli, Curl, S5cmd, AwsCli, Rclone, Aria2, S3TransferCrt)}

# Tool names usable in a config without a [tools.NAME] table.
BUILTIN = {
    "ghga-cli": {"kind": "ghga-cli"},
    "ghga-cli-tuned": {"kind": "ghga-cli", "parallel": 8},
    "ghga-cli-loop": {"kind": "ghga-cli", "loop": True},
    "ghga-cli-killed": {"kind": "ghga-cli", "kill_at": 0.5},
    "curl": {"kind": "curl", "connections": 1},
    "curl-4": {"kind": "curl", "connections": 4},
    "curl-8": {"kind": "curl", "connections": 8},
    "s5cmd": {"kind": "s5cmd"},
    "aws": {"kind": "aws"},
    "rclone": {"kind": "rclone"},
    "aria2c-4": {"kind": "aria2c", "connections": 4},
    "aria2c-8": {"kind": "aria2c", "connections": 8},
    "s3transfer-crt": {"kind": "s3transfer-crt"},
}


def make_tool(name: str, table: dict) -> Tool:
    opts = {**BUILTIN.get(name, {}), **table.get(name, {})}
    if "kind" not in opts:
        raise ValueError(f"tool {name!r}: no kind (one of {sorted(KINDS)})")
    return KINDS[opts["kind"]](name, opts)
