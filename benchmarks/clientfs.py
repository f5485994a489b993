"""The client's file system for sizes the disk cannot hold: btrfs with forced compression
on a sparse loop file.

``[client_fs] size = "400G", compress = "zstd:1"`` makes the harness create (once) a sparse
image ``WORK_DIR/clientfs.img``, format it btrfs, and mount it with
``compress-force=ALG`` on ``WORK_DIR/clientfs``; the source files and every client's output
and state dir then live there. Compressible content (``content = "compressible"``) then
takes a fraction of its size on the disk. Compression and decompression run in the kernel's
unbound workqueues, not in the client process; with ``[cpus]`` those are pinned to the
server CPUs (cpus.py), so they never run on the client's CPU.
Needs root, ``mkfs.btrfs`` (Debian's btrfs-progs) and a kernel with btrfs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ghga_tasks.settings import parse_size


class ClientFsError(RuntimeError):
    pass


def _run(*argv: str, timeout: float = 300) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise ClientFsError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")


def _mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts)


@dataclass
class ClientFs:
    image: Path
    mountpoint: Path
    size: int
    compress: str = "zstd:1"

    @classmethod
    def from_config(cls, table: Optional[dict], work_dir: Path) -> Optional["ClientFs"]:
        if not table or not table.get("enabled", True):
            return None
        return cls(
            image=Path(table.get("image") or work_dir / "clientfs.img"),
            mountpoint=work_dir / "clientfs",
            size=parse_size(table.get("size", "400G")),
            compress=str(table.get("compress", "zstd:1")),
        )

    def up(self) -> None:
        if _mounted(self.mountpoint):
            return
        if shutil.which("mkfs.btrfs") is None:
            raise ClientFsError("mkfs.btrfs is missing: apt-get install btrfs-progs")
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if not self.image.exists():  # made under another name: a failed mkfs leaves no image
            self.image.parent.mkdir(parents=True, exist_ok=True)
            fresh = self.image.with_name(self.image.name + ".new")
            with open(fresh, "wb") as f:
                f.truncate(self.size)  # sparse: takes only what btrfs writes
            _run("mkfs.btrfs", "-q", "-f", str(fresh))
            os.replace(fresh, self.image)
        # discard: what is deleted in the file system is freed in the sparse image too
        options = f"loop,noatime,discard=async,compress-force={self.compress}"
        _run("mount", "-o", options, str(self.image), str(self.mountpoint))

    def down(self) -> None:
        if _mounted(self.mountpoint):
            _run("umount", str(self.mountpoint))

    def physical_bytes(self) -> int:
        """What the image takes on the disk below it."""
        return os.stat(self.image).st_blocks * 512

    def facts(self) -> dict:
        return {
            "fs": "btrfs",
            "compress": f"compress-force={self.compress}",
            "image_size": self.size,
            "image_on_disk": self.physical_bytes(),
        }
