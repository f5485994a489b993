"""A second shared server for the server tests that restart it or need special start flags.

`special_stack` runs with a bucket prefix, a 5 MiB multipart-copy threshold and two
registrations given as flags; tests may restart or kill it (it is started again if dead).
"""

from __future__ import annotations

import uuid

import pytest
from stack import Stack, env_backend, start_stack

from .protocol import PART, MiB

REGISTERED = {
    "flag-a-" + uuid.uuid4().hex[:8]: (10, None),
    "flag-b-" + uuid.uuid4().hex[:8]: (PART, "0f" * 32),
}
COPY_THRESHOLD = 5 * MiB


@pytest.fixture(scope="session")
def _special_stack(tmp_path_factory) -> Stack:
    args = [
        "--bucket-prefix",
        "pfx-" if not env_backend()["s3_endpoint"] else f"t{uuid.uuid4().hex[:10]}-",
        "--multipart-copy-threshold",
        str(COPY_THRESHOLD),
    ]
    for file_id, (size, sha) in REGISTERED.items():
        args += ["--register", f"{file_id}={size}" + (f":{sha}" if sha else "")]
    s = start_stack(tmp_path_factory.mktemp("special"), *args, **env_backend())
    yield s
    s.stop()


@pytest.fixture
def special_stack(_special_stack: Stack) -> Stack:
    if _special_stack.proc.poll() is not None:
        _special_stack.start()
    _special_stack.reset()
    yield _special_stack
