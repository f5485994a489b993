"""Pure logic: part planning, settings precedence, Retry-After, redaction, ledgers."""

from __future__ import annotations

import json

import pytest

from ghga_tasks import parts, settings, state
from ghga_tasks.answers import expected_checksum
from ghga_tasks.api_calls import parse_retry_after, redact
from ghga_tasks.errors import ConfigError
from ghga_tasks.units import MiB


def test_upload_part_size_fits_10000_parts():
    assert parts.upload_part_size(1) == 16 * MiB
    assert parts.upload_part_size(200 * 10**9) == 32 * MiB
    for size in (0, 160 * 1024**3, 200 * 10**9, 5 * 1024**4):
        assert len(parts.upload_parts(size, parts.upload_part_size(size))) <= 10_000


def test_upload_parts_cover_the_file_exactly():
    plan = parts.upload_parts(100, 30)
    assert [(p.number, p.offset, p.length) for p in plan] == [
        (1, 0, 30),
        (2, 30, 30),
        (3, 60, 30),
        (4, 90, 10),
    ]
    assert parts.upload_parts(0, 30) == [parts.Part(1, 0, 0)]
    with pytest.raises(ValueError):
        parts.upload_parts(10_001 * 16, 16)


def test_missing_ranges_fill_gaps_only():
    got = parts.missing_ranges(100, 30, [(0, 10), (40, 20), (95, 5)])
    assert [(p.offset, p.length) for p in got] == [(10, 30), (60, 30), (90, 5)]
    assert parts.missing_ranges(10, 4, [(0, 10)]) == []
    assert parts.contiguous_prefix([(10, 5), (0, 10), (20, 1)]) == 15
    assert parts.done_bytes([(0, 10), (5, 10)]) == 15


def test_settings_precedence(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("parallel = 3\nretries = 7\nmax_rate = '10MiB'\n")
    env = {"GHGA_TASKS_RETRIES": "9", "GHGA_TASKS_TIMEOUT": "5"}
    s = settings.load(str(config), env=env, retries=None, timeout=2.5)
    assert s.parallel == 3  # config file
    assert s.retries == 9  # environment beats config
    assert s.timeout == 2.5  # flag beats environment
    assert s.max_rate == 10 * MiB
    assert s.part_size == 64 * MiB  # default


def test_settings_errors():
    with pytest.raises(ConfigError, match="unknown setting"):
        settings.load(env={"GHGA_TASKS_PARALEL": "1", "GHGA_TASKS_X": "1"}, bogus=1)
    with pytest.raises(ConfigError, match="bad value for parallel"):
        settings.load(env={"GHGA_TASKS_PARALLEL": "many"})
    with pytest.raises(ConfigError, match="parallel must be"):
        settings.load(env={}, parallel=0)
    assert settings.parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert settings.parse_size("10M") == 10_000_000


def test_retry_after_parsing():
    assert parse_retry_after("3", cap=300) == 3
    assert parse_retry_after(None, cap=300) == 5.0
    assert parse_retry_after("-4", cap=300) == 5.0
    assert parse_retry_after("junk", cap=300) == 5.0
    assert parse_retry_after("99999", cap=60) == 60
    assert parse_retry_after("0", cap=60) == 0.2
    now = 1_700_000_000
    date = "Tue, 14 Nov 2023 22:13:30 GMT"  # now + 10 s
    assert parse_retry_after(date, cap=300, now=now) == pytest.approx(10, abs=1)


def test_redact_drops_signatures_and_userinfo():
    url = "https://user:pw@s3.example.org/bucket/key?X-Amz-Signature=abc&X-Amz-Credential=k"
    assert redact(url) == "https://s3.example.org/bucket/key?<redacted>"
    assert redact("http://h/p") == "http://h/p"


def test_checksum_choice_prefers_sha256():
    obj = {"checksums": [{"type": "md5", "checksum": "AB"}, {"type": "sha-256", "checksum": "CD"}]}
    assert expected_checksum(obj) == ("sha256", "cd")
    assert expected_checksum({"checksums": [{"type": "md5", "checksum": "ab"}]}) == ("md5", "ab")
    assert expected_checksum({}) == (None, None)


def test_ledger_ignores_torn_tail_and_foreign_header(tmp_path):
    path = tmp_path / "l.jsonl"
    ledger = state.Ledger(path, {"upload_id": "u1"})
    ledger.append([{"n": 1}, {"n": 2}])
    ledger.close()
    with open(path, "a") as fh:
        fh.write('{"n": 3')  # the process died mid-line
    again = state.Ledger(path, {"upload_id": "u1"})
    assert again.entries == [{"n": 1}, {"n": 2}]
    again.append([{"n": 3}])
    again.close()
    assert [json.loads(x) for x in path.read_text().splitlines()][-1] == {"n": 3}
    other = state.Ledger(path, {"upload_id": "u2"})
    assert other.entries == []


def test_transfer_dirs_are_distinct_per_api_and_id(tmp_path):
    a = state.transfer_dir(tmp_path, "downloads", "http://h/api/", "F1")
    assert a == state.transfer_dir(tmp_path, "downloads", "http://h/api", "F1")
    assert a != state.transfer_dir(tmp_path, "downloads", "http://other/api", "F1")
    assert (
        state.transfer_dir(tmp_path, "downloads", "http://h", "../x").parent
        == tmp_path / "downloads"
    )
