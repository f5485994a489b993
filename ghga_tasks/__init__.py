"""ghga_tasks: resumable, parallel up- and download client for the GHGA file services.

from ghga_tasks import upload_by_id, download_by_id
result = download_by_id("https://host/ga4gh/drs/v1", "FILE_ID", "out/")
"""

__version__ = "0.1.0"

__all__ = [
    "upload_by_id",
    "download_by_id",
    "Result",
    "upload_batch",
    "download_batch",
    "BatchResult",
    "Settings",
    "load_settings",
    "GhgaError",
    "ExitCode",
    "__version__",
]

_LAZY = {  # imported on first use, so `ghga-cli serve` and `--help` don't load luigi
    "upload_by_id": ("api", "upload_by_id"),
    "download_by_id": ("api", "download_by_id"),
    "Result": ("api", "Result"),
    "upload_batch": ("batch", "upload_batch"),
    "download_batch": ("batch", "download_batch"),
    "BatchResult": ("batch", "BatchResult"),
    "Settings": ("settings", "Settings"),
    "load_settings": ("settings", "load"),
    "GhgaError": ("errors", "GhgaError"),
    "ExitCode": ("errors", "ExitCode"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
