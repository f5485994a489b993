"""ghga_tasks: resumable, parallel up- and download client for the GHGA file services.

    from ghga_tasks import upload_by_id, download_by_id
    result = download_by_id("https://host/ga4gh/drs/v1", "FILE_ID", "out/")
"""

__version__ = "0.1.0"

from .api import Result, download_by_id, upload_by_id  # noqa: E402
from .errors import ExitCode, GhgaError  # noqa: E402
from .settings import Settings, load as load_settings  # noqa: E402

__all__ = ["upload_by_id", "download_by_id", "Result", "Settings", "load_settings",
           "GhgaError", "ExitCode", "__version__"]
