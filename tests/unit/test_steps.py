"""The upload and download steps without luigi: fake API clients, a stub storage on loopback,
real files and a real state dir. Needs no server extra."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ghga_tasks import fileio, upload_steps
from ghga_tasks.clients import DrsClient
from ghga_tasks.download_steps import Download, is_in_place
from ghga_tasks.errors import ApiRefused, IntegrityError, OutputError, PartsNotStored
from ghga_tasks.server.stub import StubServer, drs_object, serve_range
from ghga_tasks.settings import Settings
from ghga_tasks.transfer_dir import ATTEMPT, CONFIRMED, PARTS, TransferDir
from ghga_tasks.units import KiB
from ghga_tasks.upload_steps import Upload

PART = 1024 * KiB  # the smallest range size Settings allows


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class FakeUploadApi:
    """The Upload Controller API as UploadClient's methods; part URLs go to `storage`."""

    def __init__(self, storage: StubServer, size: int, sha256=None):
        self.storage, self.size, self.sha256 = storage, size, sha256
        self.attempts = {}
        self.started = 0
        self.confirmations = []
        self.missing_parts = []  # the next confirmation answers partsNotStored for these

    def get_file(self, file_id):
        return {"file_id": file_id, "size": self.size, "sha256": self.sha256}

    def create_upload(self, file_id, writer=None):
        self.started += 1
        upload_id = f"u{self.started}"
        self.attempts[upload_id] = {
            "upload_id": upload_id,
            "file_id": file_id,
            "part_size": PART,
            "status": "pending",
            "sha256": None,
        }
        return dict(self.attempts[upload_id]), False

    def get_upload(self, upload_id):
        if upload_id not in self.attempts:
            raise ApiRefused("gone", status=404, exception_id="noSuchUpload")
        return dict(self.attempts[upload_id])

    def part_url(self, upload_id, part_no, writer=None):
        return f"{self.storage.url}/inbox/{upload_id}?partNumber={part_no}"

    def confirm(self, upload_id, parts_md5, sha256, writer=None):
        self.confirmations.append((upload_id, parts_md5, sha256, writer))
        if self.missing_parts:
            missing, self.missing_parts = self.missing_parts, []
            raise PartsNotStored(upload_id, missing)
        self.attempts[upload_id].update(status="uploaded", sha256=sha256)
        return None


@pytest.fixture
def storage():
    """Stores nothing: answers every PUT 200 without an ETag (the client keeps its MD5)."""
    server = StubServer(lambda method, path, headers: (200, {}, b""))
    yield server
    server.close()


def puts(storage: StubServer) -> list:
    return [path for method, path, _ in storage.requests if method == "PUT"]


def upload_of(tmp_path: Path, storage: StubServer, data: bytes, **api) -> tuple:
    src = tmp_path / "src"
    src.write_bytes(data)
    fake = FakeUploadApi(storage, len(data), **api)
    tdir = TransferDir(tmp_path / "state", "uploads", "http://api", "F1")
    settings = Settings(parallel=2, retries=0, state_dir=str(tmp_path / "state"))
    return Upload(fake, tdir, "F1", str(src), settings), fake


def test_send_parts_then_resume_sends_nothing(tmp_path, storage):
    data = os.urandom(3 * PART + 5)
    upload, fake = upload_of(tmp_path, storage, data)
    stored = upload.send_parts()
    chunks = [data[i : i + PART] for i in range(0, len(data), PART)]
    assert stored.parts_md5 == [md5(c) for c in chunks]
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert (stored.bytes_transferred, stored.bytes_resumed) == (len(data), 0)
    assert sorted(puts(storage)) == sorted(f"/inbox/u1?partNumber={n}" for n in range(1, 5))
    again = upload.send_parts()
    assert (again.bytes_transferred, again.bytes_resumed) == (0, len(data))
    assert again.parts_md5 == stored.parts_md5 and len(puts(storage)) == 4


def test_confirm_names_the_verified_md5s_and_the_writer(tmp_path, storage):
    data = os.urandom(2 * PART)
    upload, fake = upload_of(tmp_path, storage, data)
    stored = upload.send_parts()
    confirmation = upload.confirm({**vars(stored)}, wait=False)
    assert (confirmation.status, confirmation.sha256) == ("uploaded", stored.sha256)
    ((upload_id, parts_md5, sha256, writer),) = fake.confirmations
    assert parts_md5 == stored.parts_md5 and sha256 == stored.sha256
    assert writer == upload.tdir.writer_id() and len(writer) == 32
    assert upload.tdir.read(CONFIRMED)["status"] == "uploaded"


def test_parts_the_server_lacks_are_sent_again(tmp_path, storage):
    data = os.urandom(3 * PART)
    upload, fake = upload_of(tmp_path, storage, data)
    stored = upload.send_parts()
    upload.tdir.write(PARTS, vars(stored))
    fake.missing_parts = [2]
    with pytest.raises(PartsNotStored) as raised:
        upload.confirm(vars(stored), wait=False)
    assert raised.value.parts == [2] and upload.tdir.read(PARTS) is None
    again = upload.send_parts()
    assert again.bytes_transferred == PART and puts(storage)[-1] == "/inbox/u1?partNumber=2"
    assert upload.confirm(vars(again), wait=False).status == "uploaded"


def test_a_forgotten_attempt_is_replaced(tmp_path, storage):
    data = os.urandom(PART)
    upload, fake = upload_of(tmp_path, storage, data)
    upload.start_attempt()
    fake.attempts.clear()  # the server forgot u1
    stored = upload.send_parts()
    assert stored.upload_id == "u2" and stored.bytes_transferred == PART


def test_a_finished_attempt_of_other_bytes_is_refused(tmp_path, storage):
    data = os.urandom(PART)
    upload, fake = upload_of(tmp_path, storage, data)
    upload.start_attempt()
    fake.attempts["u1"].update(status="accepted", sha256="0" * 64)
    with pytest.raises(IntegrityError, match="already holds other bytes"):
        upload.send_parts()
    fake.attempts["u1"]["sha256"] = hashlib.sha256(data).hexdigest()
    stored = upload.send_parts()
    assert (stored.status, stored.bytes_transferred, puts(storage)) == ("accepted", 0, [])


class FakeDrs(DrsClient):
    """DrsClient whose answers come from `objects` (no API server)."""

    def __init__(self, objects: dict, settings: Settings):
        super().__init__("http://drs.invalid", settings)
        self.objects = objects

    def get_object(self, object_id):
        return self.objects[object_id], 0.0


def test_fetch_verify_place_then_present(tmp_path):
    data = os.urandom(3 * PART + 3)
    sha = hashlib.sha256(data).hexdigest()
    storage = StubServer(lambda method, path, headers: serve_range(data, headers))
    try:
        settings = Settings(parallel=2, part_size=PART, retries=0)
        client = FakeDrs({"F1": drs_object("F1", len(data), sha, f"{storage.url}/F1")}, settings)
        tdir = TransferDir(tmp_path / "state", "downloads", "http://drs", "F1")
        out = tmp_path / "out"
        out.mkdir()
        download = Download(client, tdir, "F1", settings)
        assert download.poll_outbox()["size"] == len(data)
        fetched = download.fetch(str(out))
        assert (out / "F1").read_bytes() == data
        assert (fetched.status, fetched.sha256, fetched.verified) == ("downloaded", sha, "sha256")
        assert fetched.bytes_transferred == len(data) and is_in_place(tdir, out / "F1")
        assert sorted(p.name for p in out.iterdir()) == ["F1"]
        again = download.fetch(str(out))
        assert (again.status, again.bytes_transferred) == ("present", 0)
    finally:
        storage.close()


@pytest.mark.parametrize("keep", [False, True])
def test_a_download_drops_its_hashed_pages_unless_asked_to_keep_them(tmp_path, monkeypatch, keep):
    monkeypatch.setattr(fileio.DropBehind, "WINDOW", PART)
    monkeypatch.setattr(fileio, "default_drop_lag", lambda: 2 * PART)
    given = []  # the windows a DONTNEED was given for
    monkeypatch.setattr(
        fileio.os,
        "posix_fadvise",
        lambda fd, offset, length, advice: given.append(offset // PART),
        raising=False,
    )
    monkeypatch.setattr(fileio.os, "POSIX_FADV_DONTNEED", 4, raising=False)
    data = os.urandom(8 * PART)
    storage = StubServer(lambda method, path, headers: serve_range(data, headers))
    try:
        settings = Settings(parallel=2, part_size=PART, retries=0, keep_page_cache=keep)
        sha = hashlib.sha256(data).hexdigest()
        client = FakeDrs({"F1": drs_object("F1", len(data), sha, f"{storage.url}/F1")}, settings)
        tdir = TransferDir(tmp_path / "state", "downloads", "http://drs", "F1")
        fetched = Download(client, tdir, "F1", settings).fetch(str(tmp_path))
        assert (tmp_path / "F1").read_bytes() == data and fetched.sha256 == sha
        # each window once the hasher is two windows (the lag) past it
        assert given == ([] if keep else [0, 1, 2, 3, 4, 5])
    finally:
        storage.close()


def test_fetch_of_a_corrupted_object_keeps_the_bytes_aside(tmp_path):
    data = os.urandom(2 * PART)
    storage = StubServer(lambda method, path, headers: serve_range(data, headers))
    try:
        settings = Settings(parallel=1, part_size=PART, retries=0)
        client = FakeDrs(
            {"F1": drs_object("F1", len(data), "0" * 64, f"{storage.url}/F1")}, settings
        )
        tdir = TransferDir(tmp_path / "state", "downloads", "http://drs", "F1")
        with pytest.raises(IntegrityError, match="does not verify"):
            Download(client, tdir, "F1", settings).fetch(str(tmp_path))
        assert (tmp_path / ".F1.ghga-corrupt").read_bytes() == data
        assert not (tmp_path / "F1").exists()
    finally:
        storage.close()


def test_the_steps_need_no_luigi():
    code = (
        "import sys, ghga_tasks.upload_steps, ghga_tasks.download_steps; "
        "sys.exit('luigi' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_confirmation_someone_else_made_with_other_bytes_is_refused(tmp_path, storage):
    data = os.urandom(PART)
    upload, fake = upload_of(tmp_path, storage, data)
    stored = upload.send_parts()
    # another writer completed the attempt with other bytes before our confirmation
    fake.attempts["u1"].update(status="uploaded", sha256="1" * 64)
    fake.confirm = lambda *args: "uploaded"  # the server answers uploadNotPending
    with pytest.raises(IntegrityError, match="confirmed with other bytes"):
        upload.confirm(vars(stored), wait=False)
    fake.attempts["u1"]["sha256"] = stored.sha256  # our own answer was lost: fine
    assert upload.confirm(vars(stored), wait=False).status == "uploaded"


def test_a_rejected_attempt_is_forgotten_so_a_run_uploads_anew(tmp_path, storage):
    data = os.urandom(PART)
    upload, fake = upload_of(tmp_path, storage, data)
    stored = upload.send_parts()
    upload.confirm(vars(stored), wait=False)
    fake.attempts["u1"]["status"] = "rejected"
    with pytest.raises(IntegrityError, match="run again to upload it anew"):
        upload.confirm(vars(stored), wait=True)
    assert upload.tdir.read(ATTEMPT) is None and upload.tdir.read(CONFIRMED) is None
    assert upload.send_parts().upload_id == "u2"


def test_targets_of_another_file_are_not_complete(tmp_path, storage):
    """parts.json made from one file does not make another (same size) complete."""
    from ghga_tasks.tasks.upload import TransferParts

    data = os.urandom(PART)
    upload, fake = upload_of(tmp_path, storage, data)
    stored = upload.send_parts()
    upload.tdir.write(PARTS, vars(stored))
    settings = upload.settings
    same = TransferParts(
        api_url="http://api",
        file_id="F1",
        file_path=upload.file_path,
        state_dir=str(tmp_path / "state"),
        settings=settings,
    )
    assert same.tdir.path == upload.tdir.path and same.complete()
    other_path = tmp_path / "other"
    other_path.write_bytes(os.urandom(PART))
    other = TransferParts(
        api_url="http://api",
        file_id="F1",
        file_path=str(other_path),
        state_dir=str(tmp_path / "state"),
        settings=settings,
    )
    assert not other.complete()
    Path(upload.file_path).write_bytes(os.urandom(PART))  # the same path, rewritten
    assert not same.complete()


def test_an_unreadable_file_at_the_final_path_is_an_output_error(tmp_path, monkeypatch):
    data = os.urandom(PART)
    settings = Settings(parallel=1, part_size=PART, retries=0)
    sha = hashlib.sha256(data).hexdigest()
    client = FakeDrs({"F1": drs_object("F1", len(data), sha, "http://127.0.0.1:9/F1")}, settings)
    tdir = TransferDir(tmp_path / "state", "downloads", "http://drs", "F1")
    (tmp_path / "F1").write_bytes(data)

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("ghga_tasks.hashing.os.open", unreadable)
    with pytest.raises(OutputError, match="Permission denied"):
        Download(client, tdir, "F1", settings).fetch(str(tmp_path))


def test_a_fresh_symlink_to_the_same_file_resumes(tmp_path, storage):
    """Nextflow and cwltool stage an input as a new symlink on every attempt."""
    data = os.urandom(2 * PART)
    upload, fake = upload_of(tmp_path, storage, data)
    upload.start_attempt()
    first = tmp_path / "attempt1"
    first.mkdir()
    (first / "reads.bam").symlink_to(upload.file_path)
    upload.file_path = str(first / "reads.bam")
    upload._send(upload.tdir.read(ATTEMPT), upload_steps.source_facts(upload.file_path))
    second = tmp_path / "attempt2"
    second.mkdir()
    (second / "reads.bam").symlink_to(tmp_path / "src")
    upload.file_path = str(second / "reads.bam")
    again = upload.send_parts()
    assert (again.bytes_transferred, again.bytes_resumed) == (0, len(data))
