"""Typed errors and the exit-code table (sysexits), mapped in one place by the CLI."""

from __future__ import annotations

import enum
import json


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    INTEGRITY = 65
    NO_INPUT = 66
    REFUSED = 69
    CANNOT_WRITE = 73
    TRANSIENT = 75
    NOT_ALLOWED = 77
    CONFIG = 78
    INTERRUPTED = 130


EXIT_MEANINGS = {
    ExitCode.OK: "done, including already complete",
    ExitCode.INTERNAL: "internal error (a bug: please report it)",
    ExitCode.USAGE: "usage error (bad flag or value, an option given twice)",
    ExitCode.INTEGRITY: "integrity: size or checksum mismatch, other bytes, upload rejected",
    ExitCode.NO_INPUT: "local input missing, unreadable or not a regular file",
    ExitCode.REFUSED: "the API refuses permanently or answers outside the protocol",
    ExitCode.CANNOT_WRITE: "cannot write the output or the state (disk full, no locks, ...)",
    ExitCode.TRANSIENT: "transient failure after retries, or another client holds the "
    "file; run again",
    ExitCode.NOT_ALLOWED: "not allowed (401/403)",
    ExitCode.CONFIG: "configuration error (config file, environment, TLS, token file)",
    ExitCode.INTERRUPTED: "interrupted; state kept",
}


class GhgaError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(GhgaError):
    """Bad arguments, e.g. a file id that would escape the output dir."""

    exit_code = ExitCode.USAGE


class IntegrityError(GhgaError):
    """Size or checksum mismatch, or the server rejected the upload."""

    exit_code = ExitCode.INTEGRITY


class InputError(GhgaError):
    """The local input file is missing or unreadable."""

    exit_code = ExitCode.NO_INPUT


class ApiRefused(GhgaError):
    """The API refuses permanently (unknown id, conflict, junk answers)."""

    exit_code = ExitCode.REFUSED

    def __init__(
        self,
        message: str,
        status: int | None = None,
        exception_id: str | None = None,
        data: dict | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.exception_id = exception_id
        self.data = data or {}


class OutputError(GhgaError):
    """The output cannot be written: exists, not writable, disk full."""

    exit_code = ExitCode.CANNOT_WRITE


class TransientError(GhgaError):
    """Failed after retries; the state is kept and a re-run resumes."""

    exit_code = ExitCode.TRANSIENT


class LockedError(TransientError):
    """Another process is transferring the same file."""


class PartsNotStored(TransientError):
    """The server does not hold the confirmed bytes of these parts: send them again."""

    def __init__(self, upload_id: str, parts: list):
        shown = ", ".join(map(str, parts[:10])) + (", ..." if len(parts) > 10 else "")
        super().__init__(
            f"the server does not hold {len(parts)} part(s) of upload {upload_id} "
            f"as they were sent (part {shown}); run again to send them"
        )
        self.parts = list(parts)


class WaitTimeout(TransientError):
    """Staging or acceptance took longer than the user's --max-wait."""


class NotStagedYet(WaitTimeout):
    """A batch asked DRS once and the object is still being staged: its worker moves on to
    other files and the batch asks again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class NotAllowed(GhgaError):
    """401/403 from the API."""

    exit_code = ExitCode.NOT_ALLOWED


class ConfigError(GhgaError):
    """Bad configuration file, environment variable or setting."""

    exit_code = ExitCode.CONFIG


class Interrupted(GhgaError):
    exit_code = ExitCode.INTERRUPTED


_BY_NAME = {
    cls.__name__: cls
    for cls in (
        GhgaError,
        UsageError,
        IntegrityError,
        InputError,
        ApiRefused,
        OutputError,
        TransientError,
        LockedError,
        PartsNotStored,
        WaitTimeout,
        NotStagedYet,
        NotAllowed,
        ConfigError,
        Interrupted,
    )
}


def error_to_dict(exc: BaseException) -> dict:
    """A failed task's error as JSON (failure.json): its type, message, exit code and every
    field it carries (an ApiRefused's status, exception_id and data, ...)."""
    if isinstance(exc, GhgaError):
        fields = {k: v for k, v in vars(exc).items() if k != "message" and _is_json(v)}
        return {
            "type": type(exc).__name__,
            "message": exc.message,
            "exit_code": int(exc.exit_code),
            "fields": fields,
        }
    return {
        "type": "InternalError",
        "message": f"{type(exc).__name__}: {exc}",
        "exit_code": int(ExitCode.INTERNAL),
    }


def error_from_dict(data: dict) -> GhgaError:
    """The error error_to_dict() wrote, of its type and with its fields."""
    cls = _BY_NAME.get(data.get("type", ""), GhgaError)
    err = GhgaError.__new__(cls)
    GhgaError.__init__(err, str(data.get("message", "unknown error")))
    fields = data.get("fields")
    for name, value in fields.items() if isinstance(fields, dict) else ():
        if name != "exit_code":
            setattr(err, name, value)
    if cls is GhgaError:
        err.exit_code = ExitCode(int(data.get("exit_code", 1)))
    return err


def _is_json(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
