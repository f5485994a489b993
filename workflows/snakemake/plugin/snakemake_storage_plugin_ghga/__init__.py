"""Snakemake storage plugin for GHGA: `storage.ghga("ghga://FILE_ID")`.

A thin adapter over ghga_tasks: existence, size, mtime and checksum come from the DRS API
(GET /objects/FILE_ID; a 202 "being staged" counts as existing, and the other facts wait
for the staging to end), retrieval is a resumable, verified `download_by_id`, storing is
`upload_by_id(wait=True)`. The client's
resumable state lives in its own state dir (setting `state_dir`, default the user cache
dir), outside `.snakemake/` and the workflow's outputs, so a retrieval that failed or was
killed continues where it stopped on the next run.
"""

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, List, Optional, Tuple

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_common.logging import get_logger
from snakemake_interface_storage_plugins.common import Operation
from snakemake_interface_storage_plugins.io import IOCacheStorageInterface, Mtime
from snakemake_interface_storage_plugins.settings import StorageProviderSettingsBase
from snakemake_interface_storage_plugins.storage_object import (
    StorageObjectRead,
    StorageObjectWrite,
)
from snakemake_interface_storage_plugins.storage_provider import (
    ExampleQuery,
    QueryType,
    StorageProviderBase,
    StorageQueryValidationResult,
)

SCHEME = "ghga://"
# a file id becomes a file name (ghga_tasks.partial.check_file_id); braces allow wildcards
QUERY = re.compile(r"ghga://([^/\\:<>|?*\"\s]+)")
TRANSIENT = (75, 130, 143)  # ghga-cli's "run again, it resumes" exit codes


def _setting(help_text: str, **metadata: Any):
    return field(default=None, metadata={"help": help_text, "env_var": True, **metadata})


@dataclass
class StorageProviderSettings(StorageProviderSettingsBase):
    """`--storage-ghga-NAME` flags, or `SNAKEMAKE_STORAGE_GHGA_NAME` variables. Unset ones
    fall back to ghga_tasks' own config file and GHGA_TASKS_* variables."""

    drs_api: Optional[str] = _setting(
        "DRS3 API base URL for retrieving inputs, e.g. https://host/ga4gh/drs/v1."
    )
    upload_api: Optional[str] = _setting(
        "Upload Controller API base URL for storing outputs, e.g. https://host/upload."
    )
    token: Optional[str] = _setting("Bearer token for both APIs (default: GHGA_TASKS_TOKEN).")
    parallel: Optional[int] = _setting("Concurrent connections per file [4].", type=int)
    state_dir: Optional[str] = _setting(
        "ghga_tasks' resumable state dir; keep it out of .snakemake/ and of any rule's "
        "outputs (default: the user cache dir, ~/.cache/ghga_tasks)."
    )
    max_wait: Optional[float] = _setting(
        "Longest wait for staging (retrieve) or acceptance (store), in seconds [3600].",
        type=float,
    )


class StorageProvider(StorageProviderBase):
    settings: StorageProviderSettings

    def __post_init__(self):
        self._client_settings = None

    def client_settings(self):
        """ghga_tasks Settings: its config file and GHGA_TASKS_* env, then our settings."""
        if self._client_settings is None:
            from ghga_tasks import load_settings

            own = self.settings
            overrides = {
                name: getattr(own, name, None) if own is not None else None
                for name in ("token", "parallel", "state_dir", "max_wait")
            }
            if overrides["state_dir"]:
                overrides["state_dir"] = os.path.abspath(
                    os.path.expandvars(os.path.expanduser(overrides["state_dir"]))
                )
            self._client_settings = _call(lambda: load_settings(quiet=True, **overrides))
        return self._client_settings

    def api(self, name: str) -> str:
        url = getattr(self.settings, name, None) if self.settings is not None else None
        if not url:
            flag = f"--storage-ghga-{name.replace('_', '-')}"
            env = f"SNAKEMAKE_STORAGE_GHGA_{name.upper()}"
            raise WorkflowError(f"ghga storage: set {flag} (or {env})")
        return url

    @classmethod
    def example_queries(cls) -> List[ExampleQuery]:
        return [
            ExampleQuery(
                query="ghga://GHGAF12345678901234",
                description="A GHGA file by its id: retrieved from the DRS API "
                "(--storage-ghga-drs-api), stored through the Upload API "
                "(--storage-ghga-upload-api; the id must be registered there).",
                type=QueryType.ANY,
            )
        ]

    def rate_limiter_key(self, query: str, operation: Operation) -> Any:
        return "upload" if operation == Operation.STORE else "drs"

    def default_max_requests_per_second(self) -> float:
        return 10.0

    def use_rate_limiter(self) -> bool:
        return True

    @classmethod
    def is_valid_query(cls, query: str) -> StorageQueryValidationResult:
        if QUERY.fullmatch(query):
            return StorageQueryValidationResult(query=query, valid=True)
        return StorageQueryValidationResult(
            query=query,
            valid=False,
            reason='expected ghga://FILE_ID (a file id without /, \\, :, <, >, |, ?, *, " '
            "or whitespace)",
        )


def _call(fn):
    """Run a ghga_tasks call; its errors become WorkflowErrors that keep the exit code."""
    from ghga_tasks import GhgaError

    try:
        return fn()
    except GhgaError as exc:
        code = int(exc.exit_code)
        hint = (
            "transient, the client's state is kept: run again to resume"
            if code in TRANSIENT
            else "permanent"
        )
        raise WorkflowError(f"ghga: {exc} (exit code {code}, {hint})") from exc


def _moved(verb: str, query: str, result) -> None:
    """One line in Snakemake's log: what a transfer moved and what it resumed."""
    get_logger().info(
        f"ghga: {verb} {query}: {result.size} bytes, {result.bytes_transferred} moved now, "
        f"{result.bytes_resumed} resumed from an earlier attempt"
    )


def _timestamp(value: Optional[str]) -> float:
    """An RFC 3339 time as a Unix time. A time in whole seconds stands for the end of its
    second: the file was accepted within it, after the source Snakemake compares it with."""
    if not value:
        return 0.0
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if when.microsecond == 0 and "." not in value:
        return when.timestamp() + 0.999999
    return when.timestamp()


class StorageObject(StorageObjectRead, StorageObjectWrite):
    provider: StorageProvider

    def __post_init__(self):
        match = QUERY.fullmatch(self.query)
        self.file_id = match.group(1) if match else self.query[len(SCHEME) :]
        self._object: Optional[dict] = None  # a DRS object once it answered 200

    # DRS facts

    def _drs(self, wait: bool) -> Tuple[bool, Optional[dict]]:
        """(exists, DRS object or None while staging); a 200 answer is kept (immutable).
        With `wait`, a 202 (being staged) is asked again as Retry-After says, up to max_wait:
        size, mtime and checksum are only known once the object is staged."""
        if self._object is not None:
            return True, self._object
        from ghga_tasks.clients import DrsClient
        from ghga_tasks.errors import ApiRefused

        client = DrsClient(self.provider.api("drs_api"), self.provider.client_settings())
        try:
            if wait:
                obj = client.wait_for_object(self.file_id, on_wait=self._staging_notice)
            else:
                obj, _wait = client.get_object(self.file_id)
        except ApiRefused as exc:
            if exc.status == 404:
                return False, None
            raise
        finally:
            client.close()
        self._object = obj
        return True, obj

    def _staging_notice(self, seconds: float) -> None:
        get_logger().info(
            f"ghga: {self.query} is being staged; asking DRS again in {seconds:g} s for its "
            "size, time and checksum (up to --storage-ghga-max-wait)"
        )

    def _facts(self, wait: bool = True) -> Tuple[bool, Optional[dict]]:
        return _call(lambda: self._drs(wait))

    def exists(self) -> bool:
        """One DRS request: 200 or 202 (being staged) exist, 404 does not; never waits."""
        return self._facts(wait=False)[0]

    def size(self) -> int:
        obj = self._facts()[1]
        return int(obj["size"]) if obj else 0

    def mtime(self) -> float:
        """The DRS created_time (when the file was accepted); waits while it is staged, so
        that an uploaded output is never taken for one older than its inputs."""
        obj = self._facts()[1]
        return _timestamp(obj.get("created_time")) if obj else 0.0

    def checksum(self) -> Optional[str]:
        obj = self._facts()[1]
        if not obj:
            return None
        sums = {c["type"].lower().replace("-", ""): c["checksum"] for c in obj["checksums"]}
        for algorithm in ("sha256", "md5"):
            if algorithm in sums:
                return f"{algorithm}:{sums[algorithm].lower()}"
        return None

    async def inventory(self, cache: IOCacheStorageInterface):
        """One DRS request fills existence, mtime, size and checksum."""
        if self._overwrite_local_path is not None:
            return
        key = self.cache_key()
        if key in cache.exists_in_storage:
            return
        try:
            exists, _obj = self._facts(wait=False)
            if exists:
                mtime, size, checksum = self.mtime(), self.size(), self.checksum()
        except WorkflowError:
            return  # the managed_* calls ask again and report it
        cache.exists_in_storage[key] = exists
        if exists:
            cache.mtime[key] = Mtime(storage=mtime)
            cache.size[key] = size
            cache.checksum[key] = checksum

    def get_inventory_parent(self) -> Optional[str]:
        return None

    def local_suffix(self) -> str:
        return self.file_id

    def cleanup(self):
        # the partial download (.FILE_ID.ghga-part) stays: the next retrieval resumes it
        pass

    # transfers

    def retrieve_object(self):
        from ghga_tasks import download_by_id

        local = self.local_path()
        result = _call(
            lambda: download_by_id(
                self.provider.api("drs_api"),
                self.file_id,
                str(local.parent),
                overwrite=True,  # Snakemake only retrieves what is missing or stale
                settings=self.provider.client_settings(),
            )
        )
        if os.path.abspath(result.path) != os.path.abspath(local):
            os.replace(result.path, local)
        _moved("retrieved", self.query, result)

    def store_object(self):
        from ghga_tasks import upload_by_id

        result = _call(
            lambda: upload_by_id(
                self.provider.api("upload_api"),
                self.file_id,
                str(self.local_path()),
                wait=True,
                settings=self.provider.client_settings(),
            )
        )
        self._object = None
        _moved("stored", self.query, result)

    def remove(self):
        raise WorkflowError(
            f"ghga: {self.query} cannot be removed: GHGA files are not deleted by clients "
            "(an accepted file id is final; ask the data steward)"
        )
