"""The writer lease of an upload attempt (uploads.claim), on a clock the test controls."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ghga_tasks.server import uploads
from ghga_tasks.server.db import Database, FileRow, UploadRow
from ghga_tasks.server.errors import ApiError

LEASE = 60.0  # s; the writer's last request is recorded to within a second


class Server:
    """The parts of the server's context claim() uses, and the time it reads."""

    def __init__(self, db: Database):
        self.now = 0.0
        self.lease = LEASE
        self.core = SimpleNamespace(db=db, knobs=SimpleNamespace(get=self._knobs))

    def _knobs(self):
        return SimpleNamespace(writer_lease=self.lease)

    def claim(self, writer: str, at: float) -> None:
        """A request of `writer` at time `at`, with the row read as sign_part reads it."""
        self.now = at
        uploads.claim(self.core, self.core.db.get_upload("u1"), writer)

    def seen(self) -> tuple:
        row = self.core.db.get_upload("u1")
        return row.writer, row.writer_seen


@pytest.fixture
def server(tmp_path, monkeypatch):
    db = Database(tmp_path / "state.sqlite")
    db.add_file(FileRow("f1", "f1", 10, None, 0.0, None, None, None))
    db.add_upload(UploadRow("u1", "f1", 16, "pending", "inbox/f1", 0.0, 0.0, None))
    s = Server(db)
    monkeypatch.setattr(uploads, "time", SimpleNamespace(time=lambda: s.now))
    yield s
    db.close()


def _refused(server: Server, writer: str, at: float) -> ApiError:
    with pytest.raises(ApiError) as caught:
        server.claim(writer, at)
    assert caught.value.status == 409 and caught.value.exception_id == "uploadInProgress"
    return caught.value


def test_writer_recorded_at_most_once_per_refresh(server):
    server.claim("A", 100.0)
    assert server.seen() == ("A", 100.0)
    # within a second: granted without a write
    server.claim("A", 100.9)
    assert server.seen() == ("A", 100.0)
    server.claim("A", 101.0)
    assert server.seen() == ("A", 101.0)
    # a shorter lease records to within a tenth of it
    server.lease = 5.0
    server.claim("A", 101.4)
    assert server.seen() == ("A", 101.0)
    server.claim("A", 101.5)
    assert server.seen() == ("A", 101.5)


def test_other_writer_refused_until_the_lease_ends(server):
    server.claim("A", 100.0)
    server.claim("A", 100.5)  # not recorded
    refusal = _refused(server, "B", 100.0 + LEASE - 0.01)
    assert refusal.data == {"upload_id": "u1", "retry_after": 1}
    assert server.seen() == ("A", 100.0)
    server.claim("B", 100.0 + LEASE)
    assert server.seen() == ("B", 100.0 + LEASE)
    _refused(server, "A", 100.0 + LEASE + 0.5)
    assert server.seen() == ("B", 100.0 + LEASE)
