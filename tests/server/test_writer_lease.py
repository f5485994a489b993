"""The writer lease in the server's database, on a clock the test controls."""

from __future__ import annotations

import pytest

from ghga_tasks.server.db import Database, FileRow, UploadRow

LEASE, REFRESH = 60.0, 1.0


@pytest.fixture
def db(tmp_path):
    db = Database(tmp_path / "state.sqlite")
    db.add_file(FileRow("f1", "f1", 10, None, 0.0, None, None, None))
    db.add_upload(UploadRow("u1", "f1", 16, "pending", "inbox/f1", 0.0, 0.0, None))
    yield db
    db.close()


def _seen(db: Database) -> tuple:
    row = db.get_upload("u1")
    return row.writer, row.writer_seen


def test_writer_recorded_at_most_once_per_refresh(db):
    assert db.claim("u1", "A", 100.0, LEASE, REFRESH) is None
    assert _seen(db) == ("A", 100.0)
    # within the refresh interval: granted without a write
    assert db.claim("u1", "A", 100.9, LEASE, REFRESH) is None
    assert _seen(db) == ("A", 100.0)
    assert db.claim("u1", "A", 101.0, LEASE, REFRESH) is None
    assert _seen(db) == ("A", 101.0)
    # without a refresh interval every request is recorded
    assert db.claim("u1", "A", 101.5, LEASE) is None
    assert _seen(db) == ("A", 101.5)


def test_other_writer_refused_until_the_lease_ends(db):
    assert db.claim("u1", "A", 100.0, LEASE, REFRESH) is None
    assert db.claim("u1", "A", 100.5, LEASE, REFRESH) is None  # not recorded
    held = db.claim("u1", "B", 100.0 + LEASE - 0.01, LEASE, REFRESH)
    assert held is not None and held.writer == "A" and held.writer_seen == 100.0
    assert _seen(db) == ("A", 100.0)
    assert db.claim("u1", "B", 100.0 + LEASE, LEASE, REFRESH) is None
    assert _seen(db) == ("B", 100.0 + LEASE)
    held = db.claim("u1", "A", 100.0 + LEASE + 0.5, LEASE, REFRESH)
    assert held is not None and held.writer == "B"
