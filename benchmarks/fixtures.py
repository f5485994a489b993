"""Download fixtures: the seeded, staged objects downloads read, and the store they live in
kept across starts of a campaign.

Seeding is set-up, not measurement, but at 200 GiB it takes over an hour (upload, the
server's SHA-256 check, the copies into permanent and outbox). A campaign that stops with
runs left (Ctrl-C, SIGTERM, the end of a session) therefore keeps its store on the disk,
with ``fixtures.json`` beside it: which fixtures it holds and the settings it was made with.
The next start with the same backend settings and content starts the servers on that store
and uses the fixtures again; a seeding that was interrupted resumes, since its ghga-cli
state dir lives in the store's directory. A store made with other settings is removed
before the campaign starts (`remove_other_stores`), and a campaign that ends with every run
done removes its store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Optional

from .api import ApiError, acceptance_deadline
from .files import size_label, write_json_atomic

RECORD = "fixtures.json"
SEED_PREFIX = "bench-dl-"


def store_identity(campaign, backend: str) -> dict:
    """What a kept store of ``backend`` must match to be used again by ``campaign``: the
    backend's settings and the content."""
    return {
        "backend": backend,
        "settings": campaign.backends.get(backend, {}),
        "content": campaign.content,
    }


def kept_record(data_dir: Path, identity: dict) -> Optional[dict]:
    """The record of the store kept in ``data_dir``, if it was made with ``identity``."""
    try:
        record = json.loads((data_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("identity") == identity else None


def remove_other_stores(stack_root: Path, identities: dict[str, dict], log: Callable) -> None:
    """Remove every store under ``stack_root`` that this campaign cannot use: one of a
    backend it does not run, made with other settings or content, or without a record
    (a campaign killed before it wrote one). Their gigabytes are needed by the runs."""
    if not stack_root.is_dir():
        return
    for data_dir in sorted(p for p in stack_root.iterdir() if p.is_dir()):
        identity = identities.get(data_dir.name)
        if identity is None or kept_record(data_dir, identity) is None:
            log(f"removing {data_dir}: a store this campaign does not use")
            shutil.rmtree(data_dir, ignore_errors=True)


def _unused_id(size: int, have: list[str]) -> str:
    i = 0
    while (fid := f"{SEED_PREFIX}{size_label(size)}-{i}") in have:
        i += 1
    return fid


def disk_bytes(root: Path) -> int:
    """What the files under ``root`` take on the disk (sparse files: their blocks)."""
    if not root.is_dir():
        return 0
    return sum(p.lstat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


class Fixtures:
    """The download fixtures of one running stack, by size, recorded beside its store.

    Fixture ids are ``bench-dl-SIZE-I``; all of a size hold the same bytes (distinct
    objects). ``record`` is what `kept_record` found (None: an empty store)."""

    def __init__(self, stack, identity: dict, record: Optional[dict], log: Callable):
        self.stack, self.identity, self.log = stack, identity, log
        self.ids: dict[int, list[str]] = {}
        self.sha: dict[int, str] = {}
        self.checked: set[str] = set()  # kept fixtures found staged since this start
        if record:
            for size, entry in record.get("fixtures", {}).items():
                self.ids[int(size)] = list(entry["ids"])
                self.sha[int(size)] = entry["sha256"]
            count = sum(len(v) for v in self.ids.values())
            self.log(f"using the store kept in {stack.data_dir}: {count} download fixtures")
            self._forget_strays()
        self.save()

    @property
    def path(self) -> Path:
        return self.stack.data_dir / RECORD

    def save(self) -> None:
        if not self.stack.keeps_store:
            return
        fixtures = {
            str(size): {"ids": ids, "sha256": self.sha[size]}
            for size, ids in self.ids.items()
            if size in self.sha
        }
        write_json_atomic(self.path, {"identity": self.identity, "fixtures": fixtures})

    def _seed_state(self, file_id: str) -> Path:
        return self.stack.data_dir / "seeding" / file_id

    def _forget_strays(self) -> None:
        """Delete the files a kept store holds besides its fixtures: uploads of the run that
        was in flight when the campaign stopped. A seeding in progress stays, to resume."""
        known = {fid for ids in self.ids.values() for fid in ids}
        for fid in self.stack.api.list_files():
            if fid in known or self._seed_state(fid).is_dir():
                continue
            self.log(f"deleting {fid}, left by the run in flight when the campaign stopped")
            self.stack.api.delete(fid)

    def drop(self, keep: int, gc: bool) -> None:
        """Delete the fixtures of every size but ``keep`` (-1: all)."""
        for size in [s for s in self.ids if s != keep]:
            self._delete(size, gc)

    def _delete(self, size: int, gc: bool) -> None:
        for fid in self.ids.pop(size, []):
            self.stack.api.delete(fid)
            self.checked.discard(fid)
        self.sha.pop(size, None)
        self.save()
        if gc:
            self.stack.gc()

    def usable(self, size: int) -> list[str]:
        """The fixtures of ``size`` there are; a kept one is first waited for until staged
        (the outbox may have let it expire), or deleted when the server lost it."""
        have = self.ids.get(size, [])
        for fid in [f for f in have if f not in self.checked]:
            try:  # waiting out staging here keeps it off every run's clock
                self.stack.api.drs_object(fid, acceptance_deadline(size))
                self.checked.add(fid)
            except ApiError as exc:
                self.log(f"kept fixture {fid} is unusable ({exc}): it will be seeded again")
                self.stack.api.delete(fid)
                have.remove(fid)
                self.save()
        return list(have)

    def ensure(self, size: int, n: int, src: Path, sha: str, gc: bool) -> list[str]:
        """``n`` staged fixtures of ``size`` holding ``src``: those there are, and the
        missing ones seeded (an interrupted seeding resumes)."""
        if self.sha.get(size, sha) != sha:  # other bytes: never serve them as these
            self._delete(size, gc)
        self.drop(keep=size, gc=gc)
        self.sha[size] = sha
        have = self.ids.setdefault(size, [])
        self.usable(size)
        while len(have) < n:
            fid = _unused_id(size, have)
            state = self._seed_state(fid)
            if state.is_dir():
                self.log(f"seeding {fid} (resuming)")
                try:
                    self.stack.api.seed(fid, src, sha, state)
                except ApiError as exc:  # e.g. the API's port was taken: another writer
                    self.log(f"seeding {fid} could not resume ({exc}): from the start")
                    self.stack.api.delete(fid)
                    shutil.rmtree(state)
            if not state.is_dir():
                self.log(f"seeding {fid}")
                self.stack.api.seed(fid, src, sha, state)
            # wait out staging (a copy of the whole object) before any clock starts
            self.stack.api.drs_object(fid, acceptance_deadline(size))
            shutil.rmtree(state, ignore_errors=True)
            have.append(fid)
            self.checked.add(fid)
            self.save()
            if gc:
                self.stack.gc()  # the inbox copy is garbage now: free it before the next seed
        return have[:n]
