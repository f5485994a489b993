"""pycurl names that older pycurl or libcurl builds lack, in one place.

The floor in pyproject.toml (pycurl 7.45.4, whose wheels bundle libcurl 8.11) and Debian 12's
python3-pycurl 7.45.2 (libcurl 7.88) have no SIZE_DOWNLOAD_T / SIZE_UPLOAD_T: their float
twins count the same bytes (exact up to 2^53). A pycurl built against libcurl < 7.62 (the
7.45.3 wheels bundle 7.61) has no UPLOAD_BUFFERSIZE and refuses option 280 by number:
None here, and libcurl's default upload buffer is used.
Every other pycurl name the package uses exists in all of these.
"""

import pycurl

SIZE_DOWNLOAD_T = getattr(pycurl, "SIZE_DOWNLOAD_T", pycurl.SIZE_DOWNLOAD)
SIZE_UPLOAD_T = getattr(pycurl, "SIZE_UPLOAD_T", pycurl.SIZE_UPLOAD)
UPLOAD_BUFFERSIZE = getattr(pycurl, "UPLOAD_BUFFERSIZE", None)
