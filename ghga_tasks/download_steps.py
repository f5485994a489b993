"""The steps of one file's download, without luigi: wait for staging, then fetch, verify and
place. Each returns a typed outcome; ghga_tasks.tasks.download runs them as
PollOutbox → FetchFile.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Iterator, Optional, Tuple

from . import parts as planning
from . import state
from .answers import access_url, expected_checksum
from .clients import DrsClient
from .errors import IntegrityError, NotStagedYet, OutputError
from .hashing import PrefixHasher
from .partial import (
    Checkpointer,
    check_file_id,
    move_into_place,
    open_partial,
    partial_path,
    side_path,
    trusted_ranges,
)
from .progress import Progress, WaitNotice, no_progress
from .settings import Settings
from .strategies import DownloadStrategy
from .transfer import Engine
from .transfer_dir import DONE, OBJECT, PARTIAL, RANGES_LEDGER, TransferDir

log = logging.getLogger("ghga_tasks")


@dataclasses.dataclass
class Fetched:
    """FetchFile's outcome: the verified file at `path` (its target, done.json, holds the
    first six fields)."""

    path: str
    size: int
    sha256: str
    verified: Optional[str]  # sha256, md5, or None (DRS gave no checksum)
    boot: Optional[str]  # the boot the file was placed in (see is_in_place)
    mtime_ns: int
    status: str = "downloaded"  # downloaded, or present (the output held these bytes)
    bytes_transferred: int = 0
    bytes_resumed: int = 0
    bytes_resent: int = 0
    parts: int = 0  # ranges this run planned for the whole file (0: nothing to move)
    url_refreshes: int = 0
    seconds: float = 0.0

    def target(self) -> dict:
        return {
            k: getattr(self, k) for k in ("path", "size", "sha256", "verified", "boot", "mtime_ns")
        }


@contextlib.contextmanager
def unreadable_is_output_error(path: Path) -> Iterator[None]:
    """An OSError on a file of ours in the output (unreadable, gone, truncated) is 73."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot read or move {path}: {exc.strerror or exc}") from None


def object_facts(obj: dict) -> dict:
    """What PollOutbox keeps of a DRS object: never its access URL."""
    return {k: obj.get(k) for k in ("id", "size", "checksums", "name", "created_time", "self_uri")}


def check_output_dir(output_dir: str) -> None:
    """The output dir exists and can be written (before any wait for staging)."""
    out_dir = Path(output_dir)
    if not out_dir.is_dir():
        raise OutputError(f"output dir does not exist: {out_dir}")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError(f"output dir is not writable: {out_dir}")


def final_path(output_dir: str, file_id: str) -> Path:
    return Path(output_dir) / check_file_id(file_id)


def is_in_place(tdir: TransferDir, final: Path) -> bool:
    """FetchFile is complete: done.json names this file, from this boot, unchanged since."""
    done = tdir.read(DONE)
    if not done or done.get("path") != str(final.resolve()):
        return False
    if done.get("boot") != state.boot_id():
        return False  # written before a reboot: fetch() checks the bytes survived
    try:
        st = final.stat()
    except OSError:
        return False
    # a file changed since (same size, other bytes) is not complete: fetch() checks it
    return st.st_size == done.get("size") and st.st_mtime_ns == done.get("mtime_ns", st.st_mtime_ns)


@dataclasses.dataclass
class Download:
    """One file's download through one DRS client; its facts live in `tdir`."""

    client: DrsClient
    tdir: TransferDir
    file_id: str
    settings: Settings
    report: Progress = no_progress

    def __post_init__(self) -> None:
        self._notice = WaitNotice(log)

    def _staging(self, seconds: float) -> None:
        self.report(0, 0, f"staging, next ask in {seconds:.0f} s")
        self._notice(
            f"{self.file_id}: DRS is staging the object; asking again in {seconds:.0f} s "
            f"(for at most --max-wait {self.settings.max_wait:g} s in all)"
        )

    # PollOutbox

    def _staged_object(self, ask_once: bool) -> dict:
        """The DRS object once staged: waited for, or with `ask_once` (a batch, whose worker
        is needed for other files) NotStagedYet at once while DRS is staging it."""
        if not ask_once:
            return self.client.wait_for_object(self.file_id, on_wait=self._staging)
        obj, wait = self.client.get_object(self.file_id)
        if obj is None:
            self.report(0, 0, "staging")
            raise NotStagedYet(f"{self.file_id}: DRS is staging the object", retry_after=wait)
        return obj

    def poll_outbox(self, ask_once: bool = False) -> dict:
        """Ask DRS until the object is staged; its facts (never the URL)."""
        check_file_id(self.file_id)
        return object_facts(self._staged_object(ask_once))

    # FetchFile

    def fetch(self, output_dir: str, overwrite: bool = False, ask_once: bool = False) -> Fetched:
        """Ranged GETs into the partial file (preallocated unless `preallocate` is off),
        verified, then moved into place."""
        started = time.monotonic()
        final = final_path(output_dir, self.file_id)
        check_output_dir(output_dir)
        obj, url = self._current_object(ask_once)
        size = int(obj["size"])
        kind, expected = expected_checksum(obj)
        if final.exists() and not overwrite:
            present = self._present(final, size, kind, expected)
            if present is not None:
                present.seconds = time.monotonic() - started
                return present
        part = self._partial(output_dir)
        if not expected:
            log.warning("DRS gives no checksum for %s: only its size can be checked", self.file_id)
        ledger = self.tdir.ranges_ledger(obj.get("id"), size, expected)
        boot = state.boot_id()
        done = trusted_ranges(ledger.entries, boot) if part.exists() else []
        if [(e["offset"], e["size"]) for e in ledger.entries if "offset" in e] != done or any(
            e.get("boot") != boot for e in ledger.entries if "offset" in e
        ):
            # keep only what is trusted, stamped with this boot, so later checkpoints
            # can never vouch for ranges an earlier boot may have lost
            ledger.replace(
                [{"offset": o, "size": n, "boot": boot} for o, n in done]
                + ([{"durable": len(done)}] if done else [])
            )
        resumed = planning.done_bytes(done)
        fd = open_partial(part, size, reserve=self.settings.preallocate)
        hasher = PrefixHasher(
            str(part), kind or "sha256", mapped=True, drop=not self.settings.keep_page_cache
        )
        hasher.advance(planning.contiguous_prefix(done))
        ok = False
        try:
            engine = self._download(fd, part, size, done, ledger, hasher, resumed, url)
            with unreadable_is_output_error(part):
                digests = hasher.finish(size)
            ok = True
        finally:
            if not ok:
                hasher.close(abort=True)
            ledger.close()
            os.close(fd)
        with unreadable_is_output_error(part):
            actual = os.stat(part).st_size
        if actual != size or (expected and digests[kind] != expected):
            bad = side_path(str(part.parent), self.file_id, "ghga-corrupt")
            with unreadable_is_output_error(part):
                os.replace(part, bad)
            self.tdir.remove(RANGES_LEDGER, PARTIAL, OBJECT)  # OBJECT: asked again next run
            what = (
                f"size {actual} != {size}"
                if actual != size
                else f"{kind} {digests[kind]} != expected {expected}"
            )
            raise IntegrityError(
                f"downloaded {self.file_id!r} does not verify ({what}); "
                f"the bytes are kept at {bad}, run again to download anew"
            )
        fetched = self._place(final, part, size, digests["sha256"], kind)
        # RANGES_LEDGER and PARTIAL stay: unlinking the ledger, whose lines are not yet on
        # disk, waits for the journal to write the whole file out. They are harmless: their
        # partial file is gone, so a later run starts over.
        fetched.bytes_resumed = resumed
        if engine is not None:
            fetched.bytes_transferred = engine.bytes_moved
            fetched.bytes_resent = engine.bytes_resent
            fetched.url_refreshes = engine.url_refreshes
            fetched.parts = planning.part_count(size, self.settings.part_size)
        fetched.seconds = time.monotonic() - started
        return fetched

    def _current_object(self, ask_once: bool = False) -> Tuple[dict, str]:
        """The object's facts as DRS gives them now, and an access URL.

        PollOutbox's facts may be stale (the same id may hold new content): facts the server
        contradicts are replaced, and the ledger, keyed by them, starts over."""
        cached = self.tdir.read(OBJECT) or {}
        fresh = self._staged_object(ask_once)  # evicted since PollOutbox: staged again
        facts = object_facts(fresh)
        if (facts["size"], expected_checksum(facts)) != (
            cached.get("size"),
            expected_checksum(cached),
        ):
            log.warning(
                "object %r changed on the server since it was first asked for; downloading it anew",
                self.file_id,
            )
            self.tdir.write(OBJECT, facts)
        return facts, access_url(fresh)

    def _partial(self, output_dir: str) -> Path:
        """Where the partial bytes go: where an earlier run left them (workflow engines may
        change the output dir between attempts), else the partial dir or the output dir."""
        earlier = (self.tdir.read(PARTIAL) or {}).get("path")
        if earlier and Path(earlier).is_file():
            return Path(earlier)
        part = partial_path(self.settings.partial_dir or output_dir, self.file_id).resolve()
        if not part.parent.is_dir():
            raise OutputError(f"partial dir does not exist: {part.parent}")
        if earlier != str(part):
            self.tdir.remove(RANGES_LEDGER)  # its bytes are gone
            self.tdir.write(PARTIAL, {"path": str(part)})
        return part

    def _present(
        self, final: Path, size: int, kind: Optional[str], expected: Optional[str]
    ) -> Optional[Fetched]:
        """The outcome when the final file already holds these bytes, None when it is ours
        and lost bytes in a power cut (downloaded again); an error when it differs.

        Our own download is not fsynced before the rename; done.json knows its boot."""
        if final.is_file() and final.stat().st_size == size:
            with unreadable_is_output_error(final):
                digests = PrefixHasher(str(final), kind or "sha256").finish(size)
            if expected is None or digests[kind] == expected:
                fetched = self._record(final, size, digests["sha256"], kind, final)
                fetched.status, fetched.bytes_resumed = "present", size
                return fetched
        done = self.tdir.read(DONE) or {}
        if done.get("path") == str(final.resolve()) and done.get("boot") != state.boot_id():
            log.warning("%s lost bytes before a reboot; downloading it again", final)
            return None
        raise OutputError(
            f"{final} already exists with different content (use --overwrite to replace it)"
        )

    def _download(
        self,
        fd: int,
        part: Path,
        size: int,
        done: list,
        ledger: state.Ledger,
        hasher: PrefixHasher,
        resumed: int,
        first_url: str,
    ) -> Optional[Engine]:
        """The engine that moved this run's bytes (its counters); None: nothing was missing."""
        todo = planning.missing_ranges(size, self.settings.part_size, done)
        if self.settings.parallel > 1:  # one connection: the hash keeps up piece by piece
            todo = planning.fine_tail(todo, self.settings.parallel)
        if not todo:
            return None
        url = {"value": first_url}
        boot = state.boot_id()
        syncer = Checkpointer(fd, ledger)

        def refresh() -> None:
            url["value"] = access_url(self.client.wait_for_object(self.file_id))

        def on_piece(offset: int, length: int) -> None:
            ledger.append_later([{"offset": offset, "size": length, "boot": boot}])
            done.append((offset, length))
            done[:] = planning.merge(done)  # a few intervals, however many pieces
            hasher.advance(planning.contiguous_prefix(done))

        try:
            engine = Engine(
                self.settings, progress=lambda n: self.report(resumed + n, size, "download")
            )
            self.report(resumed, size, "download")
            strategy = DownloadStrategy(
                str(part), size, lambda: url["value"], refresh, on_piece, tick=syncer.tick
            )
            engine.run(strategy, todo)
            return engine
        finally:
            syncer.close()

    def _place(
        self, final: Path, part: Path, size: int, sha256: str, verified: Optional[str]
    ) -> Fetched:
        """done.json, then the rename. If the rename survives a power cut and the bytes do
        not, done.json (older in every journal) tells the next run the file was ours."""
        fetched = self._record(final, size, sha256, verified, part)
        move_into_place(part, final, self.file_id)
        return fetched

    def _record(
        self, final: Path, size: int, sha256: str, verified: Optional[str], source: Path
    ) -> Fetched:
        """Write done.json for `final` (bytes now at `source`; a rename keeps the mtime).

        No fsync: right after gigabytes were written, any fsync waits until they reach the
        disk (on ext4 even one of a small file). done.json records the boot instead."""
        fetched = Fetched(
            str(final.resolve()),
            size,
            sha256,
            verified,
            state.boot_id(),
            os.stat(source).st_mtime_ns,
        )
        self.tdir.write(DONE, fetched.target(), sync=False)
        return fetched
