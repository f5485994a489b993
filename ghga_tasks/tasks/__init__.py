"""The luigi tasks (namespace `ghga`): upload.RequestURL → TransferParts → ConfirmUpload and
download.PollOutbox → FetchFile. failure_of(task) tells why a run failed, with its exit code."""

from .base import failure_of

__all__ = ["failure_of"]
