"""Manifest parsing, the severity order and the connection budget of the batch commands."""

from __future__ import annotations

import pytest

from ghga_tasks.batch import SEVERITY, connections_per_file, most_severe
from ghga_tasks.errors import ExitCode, InputError, UsageError
from ghga_tasks.manifest import check_entries, read_manifest


def test_manifest_paths_relative_to_its_dir_comments_and_extra_columns(tmp_path):
    (tmp_path / "d").mkdir()
    manifest = tmp_path / "d" / "m.tsv"
    manifest.write_text(
        "# a comment\nname\tfile_path\tfile_id\nx\ta.bam\tF1\n\ny\t/abs/b.bam\tF2\n"
    )
    assert read_manifest(str(manifest), need_path=True) == [
        ("F1", str(tmp_path / "d" / "a.bam")),
        ("F2", "/abs/b.bam"),
    ]
    assert read_manifest(str(manifest), need_path=False) == [("F1", None), ("F2", None)]


@pytest.mark.parametrize(
    "text,need_path,error,word",
    [
        ("", True, UsageError, "empty"),
        ("# only a comment\n", False, UsageError, "empty"),
        ("file_id\n", False, UsageError, "no files"),
        ("file_id\nF1\n", True, UsageError, "file_path"),
        ("file\tpath\nF1\ta\n", False, UsageError, "file_id"),
        ("file_id\tfile_path\nF1\n", True, UsageError, "columns"),
        ("file_id\tfile_path\nF1\t\n", True, UsageError, "empty file_path"),
        (b"file_id\n\xff\n", False, InputError, "cannot read"),
    ],
)
def test_bad_manifests(tmp_path, text, need_path, error, word):
    manifest = tmp_path / "m.tsv"
    manifest.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(error) as exc:
        read_manifest(str(manifest), need_path)
    assert word in str(exc.value)


def test_missing_manifest_is_input_error(tmp_path):
    with pytest.raises(InputError):
        read_manifest(str(tmp_path / "nope.tsv"), True)


def test_entries_checked(tmp_path):
    src = tmp_path / "a"
    src.write_bytes(b"1")
    check_entries([("F1", str(src)), ("F2", None)])
    with pytest.raises(UsageError, match="more than once"):
        check_entries([("F1", None), ("F1", None)])
    with pytest.raises(UsageError, match="file name"):
        check_entries([("../x", None)])
    with pytest.raises(UsageError, match="no files"):
        check_entries([])
    with pytest.raises(InputError):
        check_entries([("F1", str(tmp_path / "missing"))])


def test_severity_order():
    assert most_severe([]) == ExitCode.OK
    assert most_severe([0, 75, 69, 0]) == ExitCode.REFUSED
    assert most_severe([75, 65]) == ExitCode.INTEGRITY
    assert most_severe([65, 66, 73]) == ExitCode.CANNOT_WRITE
    assert most_severe([73, 77, 78]) == ExitCode.CONFIG
    assert most_severe([2, 1]) == ExitCode.INTERNAL
    assert most_severe([1, 130]) == ExitCode.INTERRUPTED
    assert most_severe([42]) == ExitCode.INTERNAL  # an unknown code counts as a bug
    assert set(SEVERITY) == set(ExitCode)


@pytest.mark.parametrize(
    "parallel,workers,connections,expected",
    [
        (4, 4, 16, (4, 4)),
        (8, 4, 16, (4, 4)),
        (2, 4, 16, (4, 2)),
        (4, 3, 16, (3, 4)),
        (8, 3, 16, (3, 5)),
        (4, 32, 16, (16, 1)),
        (4, 1, 1, (1, 1)),
    ],
)
def test_connection_budget(parallel, workers, connections, expected):
    got = connections_per_file(parallel, workers, connections)
    assert got == expected
    assert got[0] * got[1] <= connections
