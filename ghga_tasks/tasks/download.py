"""Download DAG: PollOutbox → FetchFile (one task per file)."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple

import luigi

from .. import parts as planning
from .. import state
from ..clients import DrsClient, access_url, expected_checksum
from ..errors import IntegrityError, OutputError, UsageError
from ..fileio import O_BINARY, fsync_dir, is_disk_full, preallocate
from ..hashing import PrefixHasher
from ..transfer import DownloadStrategy, Engine
from .base import GhgaTask, Marker, stopwatch

log = logging.getLogger("ghga_tasks")


WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10))}


def check_file_id(file_id: str) -> str:
    """A file id becomes a file name in output_dir; refuse anything that could escape it."""
    bad = (not file_id or file_id in (".", "..") or file_id != file_id.strip()
           or any(c in '/\\:<>|?*"' or ord(c) < 32 for c in file_id)
           or file_id.split(".")[0].upper() in WINDOWS_RESERVED)
    if bad:
        raise UsageError(f"file id {file_id!r} cannot be used as a file name in the output dir")
    return file_id


NAME_MAX = 255  # bytes of one file name on every file system we run on


def side_path(directory: str, file_id: str, suffix: str) -> Path:
    """`.ID.SUFFIX` in `directory`: a hidden file beside the output. A name that would not
    fit NAME_MAX keeps the start of the id and adds a hash of the whole id."""
    name = f".{file_id}.{suffix}"
    if len(name.encode()) > NAME_MAX:
        digest = hashlib.sha256(file_id.encode()).hexdigest()[:16]
        room = NAME_MAX - len(f"..~{digest}.{suffix}")
        start = file_id.encode()[:room].decode(errors="ignore")
        name = f".{start}~{digest}.{suffix}"
    return Path(directory) / name


def partial_path(directory: str, file_id: str) -> Path:
    return side_path(directory, file_id, "ghga-part")


def object_facts(obj: dict) -> dict:
    """What PollOutbox keeps of a DRS object: never its access URL."""
    return {k: obj.get(k) for k in ("id", "size", "checksums", "name", "created_time",
                                    "self_uri")}


class DownloadTask(GhgaTask):
    direction = "downloads"

    def client(self) -> DrsClient:
        return DrsClient(self.api_url, self.cfg)


class PollOutbox(DownloadTask):
    """Ask DRS until the object is staged. Target: its id, size, checksums, name (no URL)."""

    def output(self) -> Marker:
        return Marker(str(self.dir / "object.json"))

    def run(self) -> None:
        check_file_id(self.file_id)
        client = self.client()
        try:
            obj = client.wait_for_object(
                self.file_id, on_wait=lambda s: self.report(0, 0, f"staging, next ask in {s:.0f} s"))
        finally:
            client.close()
        self.output().write(object_facts(obj))


class FetchFile(DownloadTask):
    """Ranged GETs into a preallocated partial file, verified, then moved into output_dir."""

    output_dir = luigi.Parameter(description="where the file goes")
    overwrite = luigi.BoolParameter(default=False, significant=False)

    def requires(self) -> PollOutbox:
        return PollOutbox(api_url=self.api_url, file_id=self.file_id, state_dir=self.state_dir,
                          settings=self.settings, progress=self.progress)

    @property
    def final(self) -> Path:
        return Path(self.output_dir) / check_file_id(self.file_id)

    def output(self) -> Marker:
        return Marker(str(self.dir / "done.json"))

    def complete(self) -> bool:
        done = self.output().read()
        if not done or done.get("path") != str(self.final.resolve()):
            return False
        if done.get("boot") != state.boot_id():
            return False  # written before a reboot: run() checks the bytes survived
        try:
            st = self.final.stat()
        except OSError:
            return False
        # a file changed since (same size, other bytes) is not complete: run() checks it
        return st.st_size == done.get("size") and st.st_mtime_ns == done.get("mtime_ns",
                                                                               st.st_mtime_ns)

    def run(self) -> None:
        check_file_id(self.file_id)
        with self.lock():
            self._fetch()

    def _fetch(self) -> None:
        elapsed = stopwatch()
        obj, url = self._current_object()
        size = int(obj["size"])
        kind, expected = expected_checksum(obj)
        out_dir = Path(self.output_dir)
        if not out_dir.is_dir():
            raise OutputError(f"output dir does not exist: {out_dir}")
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise OutputError(f"output dir is not writable: {out_dir}")
        if self.final.exists() and self._present(size, kind, expected, elapsed):
            return
        part = self._partial()
        if not expected:
            log.warning("DRS gives no checksum for %s: only its size can be checked",
                        self.file_id)
        ledger = state.Ledger(self.dir / "ranges.jsonl", {
            "id": obj.get("id"), "size": size, "checksum": expected})
        boot = state.boot_id()
        done = trusted_ranges(ledger.entries, boot) if part.exists() else []
        if [(e["offset"], e["size"]) for e in ledger.entries if "offset" in e] != done or \
                any(e.get("boot") != boot for e in ledger.entries if "offset" in e):
            # keep only what is trusted, stamped with this boot, so later checkpoints
            # can never vouch for ranges an earlier boot may have lost
            ledger.replace([{"offset": o, "size": n, "boot": boot} for o, n in done]
                           + ([{"durable": len(done)}] if done else []))
        resumed = planning.done_bytes(done)
        fd = self._open_partial(part, size)
        hasher = PrefixHasher(str(part), kind or "sha256", use_mmap=True)
        hasher.advance(planning.contiguous_prefix(done))
        ok = False
        try:
            moved, resent = self._download(fd, part, size, done, ledger, hasher, resumed, url)
            digests = hasher.finish(size)
            ok = True
        finally:
            if not ok:
                hasher.close(abort=True)
            ledger.close()
            os.close(fd)
        actual = os.stat(part).st_size
        if actual != size or (expected and digests[kind] != expected):
            bad = side_path(str(part.parent), self.file_id, "ghga-corrupt")
            os.replace(part, bad)
            state.remove(self.dir / "ranges.jsonl")
            state.remove(self.dir / "partial.json")
            state.remove(self.dir / "object.json")  # asked again next run
            what = (f"size {actual} != {size}" if actual != size
                    else f"{kind} {digests[kind]} != expected {expected}")
            raise IntegrityError(f"downloaded {self.file_id!r} does not verify ({what}); "
                                 f"the bytes are kept at {bad}, run again to download anew")
        # done.json before the rename: if the rename survives a power cut and the bytes do
        # not, done.json (older in every journal) tells the next run it was ours
        self._finish(size, digests["sha256"], "downloaded", moved, resumed, elapsed,
                     verified=kind, moving=part, resent=resent)
        # ranges.jsonl and partial.json stay: unlinking the ledger, whose lines are not yet
        # on disk, waits for the journal to write the whole file out (1-3 s for 4 GiB on
        # ext4). They are harmless: their partial file is gone, so a later run starts over.

    def _current_object(self) -> Tuple[dict, str]:
        """The object's facts as DRS gives them now, and an access URL.

        PollOutbox's facts may be stale (the same id may hold new content): facts the server
        contradicts are replaced, and the ledger, keyed by them, starts over."""
        cached = self.input().read() or {}
        client = self.client()
        try:
            fresh = client.wait_for_object(
                self.file_id,
                on_wait=lambda s: self.report(0, 0, f"staging, next ask in {s:.0f} s"))
        finally:
            client.close()
        facts = object_facts(fresh)
        if (facts["size"], expected_checksum(facts)) != (cached.get("size"),
                                                         expected_checksum(cached)):
            log.warning("object %r changed on the server since it was first asked for; "
                        "downloading it anew", self.file_id)
            self.input().write(facts)
        return facts, access_url(fresh)

    def _partial(self) -> Path:
        """Where the partial bytes go: where an earlier run left them (workflow engines may
        change the output dir between attempts), else the partial dir or the output dir."""
        record = self.dir / "partial.json"
        earlier = (state.read_json(record) or {}).get("path")
        if earlier and Path(earlier).is_file():
            return Path(earlier)
        part = partial_path(self.cfg.partial_dir or self.output_dir, self.file_id).resolve()
        if not part.parent.is_dir():
            raise OutputError(f"partial dir does not exist: {part.parent}")
        if earlier != str(part):
            state.remove(self.dir / "ranges.jsonl")  # its bytes are gone
            state.write_json(record, {"path": str(part)})
        return part

    def _present(self, size, kind, expected, elapsed) -> bool:
        """True when the final file already holds these bytes; error if it differs.

        Our own earlier download that lost bytes in a power cut (it is not fsynced before
        the rename; done.json knows the boot it was written in) is downloaded again."""
        if self.overwrite:
            return False
        if self.final.is_file() and self.final.stat().st_size == size:
            hasher = PrefixHasher(str(self.final), kind or "sha256")
            digests = hasher.finish(size)
            if expected is None or digests[kind] == expected:
                self._finish(size, digests["sha256"], "present", 0, size, elapsed, verified=kind)
                return True
        done = self.output().read() or {}
        if done.get("path") == str(self.final.resolve()) and done.get("boot") != state.boot_id():
            log.warning("%s lost bytes before a reboot; downloading it again", self.final)
            return False
        raise OutputError(f"{self.final} already exists with different content "
                          "(use --overwrite to replace it)")

    def _open_partial(self, part: Path, size: int) -> int:
        created = not part.exists()
        try:
            fd = os.open(part, os.O_RDWR | os.O_CREAT | O_BINARY, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create {part}: {exc.strerror or exc}") from None
        try:
            # the state lock is per API URL; this one is per partial file (other state dirs,
            # other spellings of the same API), held until the fd is closed
            state.lock_fd(fd, f"{part}")
        except BaseException:
            os.close(fd)
            raise
        try:
            preallocate(fd, size)
        except OSError as exc:
            os.close(fd)
            if created:  # nothing of ours in it: leave no empty partial behind
                state.remove(part)
            if is_disk_full(exc):
                raise OutputError(f"not enough space for {size} bytes in {part.parent} "
                                  "(disk full); free space and run again") from None
            raise OutputError(f"cannot allocate {part}: {exc.strerror or exc}") from None
        return fd

    def _download(self, fd: int, part: Path, size: int, done: list, ledger: state.Ledger,
                  hasher: PrefixHasher, resumed: int, first_url: str) -> Tuple[int, int]:
        """(bytes moved and kept, bytes resent) of this run."""
        todo = planning.missing_ranges(size, self.cfg.part_size, done)
        if not todo:
            return 0, 0
        client = self.client()
        url = {"value": first_url}
        boot = state.boot_id()
        syncer = Checkpointer(fd, ledger)

        def refresh() -> None:
            url["value"] = access_url(client.wait_for_object(self.file_id))

        def on_piece(offset: int, length: int) -> None:
            ledger.append([{"offset": offset, "size": length, "boot": boot}], sync=False)
            done.append((offset, length))
            done[:] = planning.merge(done)  # a few intervals, however many pieces
            hasher.advance(planning.contiguous_prefix(done))

        try:
            engine = Engine(self.cfg, progress=lambda n: self.report(resumed + n, size, "download"))
            self.report(resumed, size, "download")
            strategy = DownloadStrategy(str(part), size, lambda: url["value"], refresh, on_piece,
                                        tick=syncer.tick)
            engine.run(strategy, todo)
            return engine.bytes_moved, engine.bytes_resent
        finally:
            syncer.close()
            client.close()

    def _move_into_place(self, part: Path) -> None:
        """An atomic rename, without waiting for the disk; across filesystems: copy, fsync,
        rename, and only then drop the partial."""
        tmp = side_path(str(self.final.parent), self.file_id, "ghga-tmp")
        try:
            try:
                os.replace(part, self.final)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                with open(part, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
                    dst.flush()
                    os.fsync(dst.fileno())
                st = os.stat(part)
                os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # done.json has this mtime
                os.replace(tmp, self.final)
                fsync_dir(str(self.final.parent))
                os.remove(part)
        except OSError as exc:
            state.remove(tmp)
            what = "disk full" if is_disk_full(exc) else (exc.strerror or str(exc))
            raise OutputError(f"cannot move the file into place at {self.final}: {what}; "
                              f"the verified bytes stay at {part}") from None

    def _finish(self, size: int, sha256: str, status: str, moved: int, resumed: int,
                elapsed, verified: Optional[str], moving: Optional[Path] = None,
                resent: int = 0) -> None:
        """Record the outcome (and move `moving` into place in between).

        No fsync here: right after gigabytes were written, any fsync waits until they reach
        the disk (on ext4 even one of a small file), which doubled the time of a 4 GiB
        download. done.json records the boot instead; see _present()."""
        path = str(self.final.resolve())
        mtime_ns = os.stat(moving or self.final).st_mtime_ns  # a rename keeps the mtime
        self.output().write({"path": path, "size": size, "sha256": sha256, "verified": verified,
                             "boot": state.boot_id(), "mtime_ns": mtime_ns}, sync=False)
        if moving is not None:
            self._move_into_place(moving)
        self.record_run(status=status, path=path, bytes_transferred=moved, bytes_resumed=resumed,
                        bytes_resent=resent, seconds=elapsed(), sha256=sha256, verified=verified,
                        sync=False)


def trusted_ranges(entries: list, boot: Optional[str]) -> List[Tuple[int, int]]:
    """Ranges a resumed download may keep.

    Ranges, and pieces of ranges in flight, are logged as soon as their bytes are written
    (enough after a killed process); after a reboot only those covered by a {"durable": n}
    checkpoint are trusted."""
    ranges = [e for e in entries if "offset" in e]
    same_boot = boot is not None and all(e.get("boot") == boot for e in ranges)
    if not same_boot:
        durable = max([e["durable"] for e in entries if "durable" in e] or [0])
        ranges = [e for e in entries[:durable] if "offset" in e]
    return [(e["offset"], e["size"]) for e in ranges]


class Checkpointer:
    """Every CHECKPOINT seconds, fdatasync the partial file in a thread, then log how many
    ledger lines that made durable. The pycurl loop never waits for the disk."""

    CHECKPOINT = 30.0

    def __init__(self, fd: int, ledger: state.Ledger):
        self.fd = fd
        self.ledger = ledger
        self.error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._last = time.monotonic()

    def tick(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            if is_disk_full(error):
                raise OutputError("disk full while writing the download") from None
            raise OutputError(f"cannot write the download: {error}")
        busy = self._thread is not None and self._thread.is_alive()
        if busy or time.monotonic() - self._last < self.CHECKPOINT:
            return
        self._last = time.monotonic()
        self._thread = threading.Thread(target=self._sync, args=(len(self.ledger),), daemon=True)
        self._thread.start()

    def _sync(self, lines: int) -> None:
        try:
            getattr(os, "fdatasync", os.fsync)(self.fd)
            self.ledger.append([{"durable": lines}])
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
