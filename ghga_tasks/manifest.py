"""A batch's list of files: the TSV manifest (`file_id`, and `file_path` for uploads) and the
checks of its entries before anything moves."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .errors import InputError, UsageError
from .partial import check_file_id
from .upload_steps import source_facts

MANIFEST_COLUMNS = ("file_id", "file_path")


def read_manifest(path: str, need_path: bool) -> List[Tuple[str, Optional[str]]]:
    """A TSV manifest with a header naming `file_id` (and `file_path` for uploads): the rows
    as (file_id, file_path or None), paths relative to the manifest's dir made absolute.
    Blank lines and lines starting with # are skipped. Raises InputError (66) when the
    manifest can't be read, UsageError (2) when it is malformed."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            lines = [
                line
                for line in fh.read().splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise InputError(f"cannot read manifest {path}: {reason}") from None
    if not lines:
        raise UsageError(f"manifest {path} is empty (expected a header: file_id<TAB>file_path)")
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [name.strip() for name in rows[0]]
    wanted = MANIFEST_COLUMNS if need_path else MANIFEST_COLUMNS[:1]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise UsageError(
            f"manifest {path}: the header lacks column {', '.join(missing)} "
            f"(expected tab-separated: {chr(9).join(wanted)}; found {header!r})"
        )
    if len(rows) < 2:
        raise UsageError(f"manifest {path} lists no files")
    id_col = header.index("file_id")
    path_col = header.index("file_path") if "file_path" in header else None
    base = Path(os.path.abspath(path)).parent
    entries = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise UsageError(
                f"manifest {path}, row {number}: {len(row)} columns, the header has {len(header)}"
            )
        file_path = None
        if path_col is not None and need_path:
            file_path = row[path_col]
            if not file_path:
                raise UsageError(f"manifest {path}, row {number}: empty file_path")
            file_path = str(base / file_path)  # an absolute path stays as it is
        entries.append((row[id_col], file_path))
    return entries


def check_entries(entries: Sequence[Tuple[str, Optional[str]]]) -> None:
    """Every id a valid file name and listed once; every upload source readable."""
    if not entries:
        raise UsageError("no files given")
    seen = set()
    for file_id, file_path in entries:
        try:
            check_file_id(file_id)
        except UsageError as exc:
            raise UsageError(f"{exc.message} (in the batch)") from None
        if file_id in seen:
            raise UsageError(f"file id {file_id!r} is listed more than once")
        seen.add(file_id)
        if file_path is not None:
            source_facts(file_path)
