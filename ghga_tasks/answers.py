"""The answers of both APIs as typed values (PROTOCOL.md § 1, § 2), checked once, where they
are parsed: a field of another type, or an access URL that is not http(s), is not the
protocol (ApiRefused)."""

from __future__ import annotations

import logging
import re
from typing import Any, List, Optional, Tuple, TypedDict, cast

from .api_calls import is_http_url, redact
from .errors import (
    ApiRefused,
)

log = logging.getLogger("ghga_tasks")


class FileMetadata(TypedDict):
    """PROTOCOL.md § 1; only file_id and size are required."""

    file_id: str
    size: int
    file_name: Optional[str]
    sha256: Optional[str]
    latest_upload_id: Optional[str]


class UploadAttempt(TypedDict):
    """PROTOCOL.md § 1."""

    upload_id: str
    file_id: str
    part_size: int
    status: str


class Checksum(TypedDict):
    type: str
    checksum: str


class AccessUrl(TypedDict):
    url: str


class AccessMethod(TypedDict, total=False):
    type: str  # always there
    access_url: AccessUrl  # http(s) for the types s3 and https


class DrsObject(TypedDict):
    """PROTOCOL.md § 2; checksums and access_methods are lists, empty when not sent."""

    id: str
    size: int
    checksums: List[Checksum]
    access_methods: List[AccessMethod]
    name: Optional[str]
    created_time: Optional[str]
    self_uri: Optional[str]


ATTEMPT_KEYS = ("upload_id", "file_id", "part_size", "status")
ATTEMPT_STATUSES = ("pending", "uploaded", "cancelled", "failed", "accepted", "rejected")
HEX_DIGITS = {"sha256": 64, "md5": 32}
_ABSENT = object()


def _json_kind(value: Any) -> str:
    if value is _ABSENT:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), "unknown")


class AnswerCheck:
    """Checks the fields of one JSON answer; the first that does not fit refuses the answer.

    Messages name the field and what was wrong with it, never a value that could be a
    pre-signed URL."""

    def __init__(self, what: str, base: str):
        self.what = what
        self.base = base

    def refuse(self, problem: str) -> ApiRefused:
        return ApiRefused(
            f"{self.what}: the answer of the API at {redact(self.base)} is not "
            f"the protocol: {problem}"
        )

    def _field(self, where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def object(self, value: Any, field: str) -> dict:
        if not isinstance(value, dict):
            raise self.refuse(f"{field} is {_json_kind(value)}, not an object")
        return value

    def string(
        self, data: dict, key: str, where: str = "", optional: bool = False
    ) -> Optional[str]:
        value = data.get(key, _ABSENT)
        if optional and (value is None or value is _ABSENT):
            return None
        if not isinstance(value, str):
            raise self.refuse(f"{self._field(where, key)} is {_json_kind(value)}, not a string")
        if not value and not optional:
            raise self.refuse(f"{self._field(where, key)} is an empty string")
        return value

    def integer(self, data: dict, key: str, minimum: int) -> int:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.refuse(
                f"invalid {key} {repr(value)[:40]} (an integer >= {minimum} expected)"
            )
        return value

    def items(self, data: dict, key: str) -> list:
        """A list; missing or null is an empty one."""
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.refuse(f"{key} is {_json_kind(value)}, not a list")
        return value

    def http_url(self, url: str, field: str) -> str:
        if not is_http_url(url):
            raise self.refuse(f"{field} is not an http(s) URL: {redact(url)}")
        return url


def file_metadata(data: dict, check: AnswerCheck) -> FileMetadata:
    check.string(data, "file_id")
    check.integer(data, "size", 0)
    check.string(data, "file_name", optional=True)
    check.string(data, "latest_upload_id", optional=True)
    sha256 = check.string(data, "sha256", optional=True)
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise check.refuse("sha256 is not 64 hex digits")
    return cast(FileMetadata, data)


def upload_attempt(data: dict, check: AnswerCheck) -> UploadAttempt:
    check.string(data, "upload_id")
    check.string(data, "file_id")
    check.integer(data, "part_size", 1)
    status = check.string(data, "status")
    if status not in ATTEMPT_STATUSES:
        raise check.refuse(f"status {status[:40]!r} is none of {', '.join(ATTEMPT_STATUSES)}")
    return cast(UploadAttempt, data)


def signed_url(data: dict, check: AnswerCheck) -> str:
    return check.http_url(check.string(data, "url"), "url")


def drs_object(data: dict, check: AnswerCheck) -> DrsObject:
    check.string(data, "id")
    check.integer(data, "size", 0)
    for key in ("name", "created_time", "self_uri"):
        check.string(data, key, optional=True)
    checksums = check.items(data, "checksums")
    for i, item in enumerate(checksums):
        where = f"checksums[{i}]"
        check.object(item, where)
        kind = check.string(item, "type", where)
        value = check.string(item, "checksum", where)
        digits = HEX_DIGITS.get(kind.lower().replace("-", ""))
        if digits and not re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", value):
            raise check.refuse(f"{where}.checksum is not {digits} hex digits")
    methods = check.items(data, "access_methods")
    for i, item in enumerate(methods):
        where = f"access_methods[{i}]"
        check.object(item, where)
        kind = check.string(item, "type", where)
        if item.get("access_url") is None:
            continue  # e.g. an access_id, which this client does not use
        check.object(item["access_url"], f"{where}.access_url")
        url = check.string(item["access_url"], "url", f"{where}.access_url")
        if kind in ("s3", "https"):
            check.http_url(url, f"{where}.access_url.url")
    return cast(DrsObject, {**data, "checksums": checksums, "access_methods": methods})


def access_url(obj: DrsObject) -> str:
    """The first access method of type s3, else https (PROTOCOL.md § 2); drs_object() has
    checked that its URL is http(s)."""
    for kind in ("s3", "https"):
        for method in obj["access_methods"]:
            if method["type"] == kind and method.get("access_url"):
                return method["access_url"]["url"]
    raise ApiRefused(f"object {obj['id']!r} has no s3 or https access URL")


def expected_checksum(obj: dict) -> Tuple[Optional[str], Optional[str]]:
    """('sha256' | 'md5', hex) from the DRS checksums, preferring SHA-256."""
    found = {}
    for item in obj.get("checksums") or []:
        if isinstance(item, dict) and item.get("checksum"):
            kind = str(item.get("type", "")).lower().replace("-", "")
            found.setdefault(kind, str(item["checksum"]).lower())
    for kind in ("sha256", "md5"):
        if kind in found:
            return kind, found[kind]
    return None, None
