"""Server settings (fixed at start) and fault knobs (changeable at run time)."""

from __future__ import annotations

import dataclasses
import math
import re
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..parts import MAX_PARTS
from ..units import GiB, MiB

MIN_COPY_PART = 5 * MiB  # S3 minimum part size (all parts but the last)
MAX_COPY_PART = 5 * GiB  # S3 maximum part size
MAX_FILE_SIZE = MAX_PARTS * 4 * GiB  # largest part size we hand out is 4 GiB
DEFAULT_COPY_THRESHOLD = 5 * GiB  # CopyObject refuses larger sources

FILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,254}$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def copy_ranges(size: int, threshold: int) -> List[Tuple[int, int]]:
    """Byte ranges (first, last) for a multipart copy of `size` bytes.

    The part size is the threshold clamped to S3's limits (5 MiB .. 512 MiB),
    doubled until there are at most 10,000 parts.
    """
    part = min(max(threshold, MIN_COPY_PART), 512 * MiB)
    while part * MAX_PARTS < size:
        part *= 2
    part = min(part, MAX_COPY_PART)
    return [(start, min(start + part, size) - 1) for start in range(0, size, part)]


MAX_API_DELAY = 60.0  # s; a client's read timeout is 60 s by default


@dataclasses.dataclass
class Knobs:
    """Fault and timing knobs; JSON keys of GET/PATCH /admin/config."""

    retry_after: int = 2
    staging_delay: float = 0.0
    url_lifetime: int = 3600
    outbox_lifetime: Optional[float] = None
    list_parts_page_size: int = 1000
    error_rate: float = 0.0
    writer_lease: float = 600.0
    api_delay: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def check_knobs(values: Dict[str, Any]) -> Dict[str, Any]:
    """Validate a partial knob update; returns normalised values or raises ValueError."""
    names = {f.name for f in dataclasses.fields(Knobs)}
    out: Dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"unknown knob {key!r}; known: {', '.join(sorted(names))}")
        if key == "outbox_lifetime" and value is None:
            out[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{key} must be a finite number >= 0")
        if key in ("retry_after", "url_lifetime", "list_parts_page_size"):
            if value != int(value):
                raise ValueError(f"{key} must be an integer")
            value = int(value)
        if key == "url_lifetime" and not 1 <= value <= 604800:
            raise ValueError("url_lifetime must be within 1..604800 seconds")
        if key == "list_parts_page_size" and not 1 <= value <= 1000:
            raise ValueError("list_parts_page_size must be within 1..1000")
        if key == "error_rate" and value > 1:
            raise ValueError("error_rate must be within 0..1")
        if key == "api_delay" and value > MAX_API_DELAY:
            raise ValueError(f"api_delay must be within 0..{MAX_API_DELAY:g} seconds")
        out[key] = value
    return out


class KnobBox:
    """Thread-safe holder of the current knobs."""

    def __init__(self, knobs: Knobs):
        self._knobs = knobs
        self._lock = threading.Lock()

    def get(self) -> Knobs:
        with self._lock:
            return dataclasses.replace(self._knobs)

    def update(self, values: Dict[str, Any]) -> Knobs:
        checked = check_knobs(values)
        with self._lock:
            self._knobs = dataclasses.replace(self._knobs, **checked)
            return dataclasses.replace(self._knobs)


@dataclasses.dataclass(frozen=True)
class S3Settings:
    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


@dataclasses.dataclass(frozen=True)
class Registration:
    file_id: str
    size: int
    sha256: Optional[str] = None
    file_name: Optional[str] = None


def parse_registration(text: str) -> Registration:
    """Parse `ID=SIZE` or `ID=SIZE:SHA256` (from `serve --register`)."""
    file_id, sep, rest = text.rpartition("=")
    if not sep or not file_id:
        raise ValueError(f"expected ID=SIZE or ID=SIZE:SHA256, got {text!r}")
    size_text, _, sha = rest.partition(":")
    try:
        size = int(size_text)
    except ValueError:
        raise ValueError(f"size in {text!r} is not an integer") from None
    reg = Registration(file_id, size, sha.lower() or None)
    check_registration(reg)
    return reg


def check_registration(reg: Registration) -> None:
    if not FILE_ID.match(reg.file_id):
        raise ValueError(f"file id {reg.file_id!r} must match {FILE_ID.pattern}")
    if not 0 <= reg.size <= MAX_FILE_SIZE:
        raise ValueError(f"size must be within 0..{MAX_FILE_SIZE}")
    if reg.sha256 is not None and not SHA256.match(reg.sha256):
        raise ValueError("sha256 must be 64 hex digits")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything `ghga-cli serve` fixes at start."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    s3: Optional[S3Settings] = None  # None: embedded SeaweedFS
    bucket_prefix: str = ""
    copy_threshold: int = DEFAULT_COPY_THRESHOLD
    auth_token: Optional[str] = None
    knobs: Knobs = dataclasses.field(default_factory=Knobs)
    registrations: Tuple[Registration, ...] = ()
    workers: int = 4  # background threads (acceptance, staging)
    weed: Optional[str] = None
    accept_delay: float = 0.0  # test hook: hold acceptance this long
    orphan_sweep: float = 600.0  # seconds between sweeps for unrecorded inbox uploads

    def buckets(self) -> Dict[str, str]:
        return {name: f"{self.bucket_prefix}{name}" for name in ("inbox", "permanent", "outbox")}
