"""Source files for the campaign: generated once per size, cached, SHA-256 known.

Content is real bytes that neither compress nor deduplicate at block level: a pool of
``os.urandom`` bytes read at a moving offset, with a block counter stamped into every
4 KiB. Generation runs at disk speed. ``sparse`` files (a hole of the right size) are
cheap for logic tests but fast-pathed by some layers; the full campaign uses random.
``compressible`` files are for sizes the disk cannot hold: every 4 KiB block starts with
its own offset and a seed (so a misplaced or duplicated range changes the SHA-256) and is
filled with a fixed text, so compressing file systems and stores keep them small.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

BLOCK = 1 << 20
POOL = 16 << 20


def size_label(n: int) -> str:
    for unit, mult in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= mult and n % mult == 0:
            return f"{n // mult}{unit}"
    return f"{n}B"


def _write_random(path: Path, size: int) -> str:
    pool = os.urandom(POOL + BLOCK)
    digest = hashlib.sha256()
    block = bytearray(BLOCK)
    stamp_at = range(0, BLOCK, 4096)
    with open(path, "wb", buffering=0) as f:
        done, i = 0, 0
        while done < size:
            off = (i * 1_048_583) % POOL  # a prime stride: blocks never line up
            block[:] = pool[off : off + BLOCK]
            tag = i.to_bytes(8, "little")
            for j in stamp_at:
                block[j : j + 8] = tag
            n = min(BLOCK, size - done)
            view = memoryview(block)[:n]
            f.write(view)
            digest.update(view)
            done += n
            i += 1
    return digest.hexdigest()


COMPRESSIBLE_SEED = 0x6768676174736B73  # "ghgatsks"
FILLER = b"GHGA file services benchmark filler. "


def compressible_block(index: int) -> bytearray:
    """The BLOCK bytes at offset index * BLOCK of a compressible source file."""
    block = bytearray((FILLER * (BLOCK // len(FILLER) + 1))[:BLOCK])
    seed = COMPRESSIBLE_SEED.to_bytes(8, "little")
    base = index * BLOCK
    for j in range(0, BLOCK, 4096):
        block[j : j + 16] = (base + j).to_bytes(8, "little") + seed
    return block


def _write_compressible(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb", buffering=0) as f:
        done, i = 0, 0
        while done < size:
            n = min(BLOCK, size - done)
            view = memoryview(compressible_block(i))[:n]
            f.write(view)
            digest.update(view)
            done += n
            i += 1
    return digest.hexdigest()


def _write_sparse(path: Path, size: int) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
    digest = hashlib.sha256()
    zeros = bytes(BLOCK)
    left = size
    while left:
        n = min(BLOCK, left)
        digest.update(zeros[:n])
        left -= n
    return digest.hexdigest()


def source_file(files_dir: Path, size: int, content: str = "random") -> tuple[Path, str]:
    """The cached source file of ``size`` bytes and its SHA-256 (generated on first use)."""
    files_dir.mkdir(parents=True, exist_ok=True)
    path = files_dir / f"src-{content}-{size_label(size)}.bin"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if info.get("size") == size and path.stat().st_size == size:
            return path, info["sha256"]
    tmp = path.with_suffix(".tmp")
    writers = {"sparse": _write_sparse, "compressible": _write_compressible}
    if content not in (*writers, "random"):
        raise ValueError(f"content {content!r}: one of random, compressible, sparse")
    sha = writers.get(content, _write_random)(tmp, size)
    os.replace(tmp, path)
    write_json_atomic(meta, {"size": size, "sha256": sha, "content": content})
    return path, sha


def drop_source(meta: Path) -> None:
    """Delete a cached source file (``src-*.json`` names it); source_file() makes it again."""
    meta.with_suffix(".bin").unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def sha256_of(paths: list[Path]) -> str:
    """SHA-256 of the concatenation of ``paths`` (parts of a ranged download)."""
    digest = hashlib.sha256()
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                digest.update(view[:n])
    return digest.hexdigest()


def split_parts(src: Path, part_size: int, out_dir: Path) -> list[Path]:
    """Copy ``src`` into part files (curl uploads one file per part)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    size = src.stat().st_size
    parts = []
    with open(src, "rb") as fin:
        for n, off in enumerate(range(0, size, part_size), start=1):
            p = out_dir / f"part{n:05d}"
            length = min(part_size, size - off)
            with open(p, "wb") as fout:
                copied = 0
                while copied < length:
                    copied += os.copy_file_range(
                        fin.fileno(), fout.fileno(), length - copied, off + copied, copied
                    )
            parts.append(p)
    return parts


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
