"""Snakemake storage plugin for GHGA: `storage.ghga("ghga://FILE_ID")`.

A thin adapter over ghga_tasks: existence, size, mtime and checksum come from the DRS API
(GET /objects/FILE_ID; a 202 "being staged" counts as existing, and the other facts wait
for the staging to end), retrieval is a resumable, verified `download_by_id`, storing is
`upload_by_id(wait=True)`. The client's resumable state lives in its own state dir
(setting `state_dir`, default the user cache dir), outside `.snakemake/` and the
workflow's outputs, so a retrieval that failed or was killed continues where it stopped
on the next run.
"""

import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, List, Optional

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
        "Longest wait for staging (retrieve; size, mtime or checksum of a file being "
        "staged) or acceptance (store), in seconds [3600].",
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


def _timestamp(value: Optional[str]) -> Optional[float]:
    """An RFC 3339 time as a Unix time, None when missing or malformed. A time in whole
    seconds stands for the end of its second: the file was accepted within it, after the
    source Snakemake compares it with."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.microsecond == 0 and "." not in value:
        return when.timestamp() + 0.999999
    return when.timestamp()


@dataclass(frozen=True)
class Facts:
    """What Snakemake compares: a staged DRS object's, or those of a file this process
    stored (until DRS has staged it)."""

    size: int
    mtime: float
    checksum: Optional[str]


def _drs_facts(obj: dict, query: str) -> Facts:
    sums = {c["type"].lower().replace("-", ""): c["checksum"] for c in obj["checksums"]}
    checksum = next(
        (f"{a}:{sums[a].lower()}" for a in ("sha256", "md5") if a in sums),
        None,
    )
    mtime = _timestamp(obj.get("created_time"))
    if mtime is None:
        # GA4GH DRS requires created_time; without it the file counts as old
        get_logger().warning(
            f"ghga: DRS gave {query} no valid created_time ({obj.get('created_time')!r}); "
            "taking it as older than any file"
        )
        mtime = 0.0
    return Facts(int(obj["size"]), mtime, checksum)


class StorageObject(StorageObjectRead, StorageObjectWrite):
    provider: StorageProvider

    def __post_init__(self):
        match = QUERY.fullmatch(self.query)
        self.file_id = match.group(1) if match else self.query[len(SCHEME) :]
        self._staged: Optional[Facts] = None  # from a DRS 200 (the object is immutable)
        self._stored: Optional[Facts] = None  # of the file this process stored
        self._notice = None  # a ghga_tasks WaitNotice, once a wait began

    # DRS facts

    def _ask_drs(self, wait: bool) -> bool:
        """Whether the object exists (200, or 202: being staged); a 200 fills `_staged`.
        With `wait`, a 202 is asked again as Retry-After says, up to max_wait."""
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
                return False
            raise
        finally:
            client.close()
        if obj is not None:
            self._staged = _drs_facts(obj, self.query)
        return True

    def _staging_notice(self, seconds: float) -> None:
        if self._notice is None:
            from ghga_tasks.progress import WaitNotice

            self._notice = WaitNotice(get_logger())
        self._notice(
            f"ghga: {self.query} is being staged; asking DRS again in {seconds:.0f} s for "
            "its size, time and checksum (up to --storage-ghga-max-wait)"
        )

    def _facts(self) -> Facts:
        """A staged object's facts (asked once). While DRS stages it: those of the file this
        process stored, else wait for the staging."""
        if self._staged is None:
            exists = _call(lambda: self._ask_drs(wait=self._stored is None))
            if not exists:
                raise WorkflowError(f"ghga: {self.query} does not exist (DRS answered 404)")
        return self._staged or self._stored

    def exists(self) -> bool:
        """One DRS request: 200 or 202 (being staged) exist, 404 does not; never waits."""
        return self._staged is not None or _call(lambda: self._ask_drs(wait=False))

    def size(self) -> int:
        return self._facts().size

    def mtime(self) -> float:
        """The DRS created_time (acceptance). An mtime of 0 while DRS stages the object
        would make an uploaded output look older than its inputs, so this waits instead,
        unless this process stored the file: then it is the time of the acceptance."""
        return self._facts().mtime

    def checksum(self) -> Optional[str]:
        return self._facts().checksum

    async def inventory(self, cache: IOCacheStorageInterface):
        """One DRS request. A staged object fills existence, mtime, size and checksum; one
        being staged only existence (the managed_* calls wait for the rest if needed)."""
        if self._overwrite_local_path is not None:
            return
        key = self.cache_key()
        if key in cache.exists_in_storage:
            return
        try:
            exists = self.exists()
        except WorkflowError:
            return  # the managed_* calls ask again and report it
        cache.exists_in_storage[key] = exists
        if self._staged is not None:
            cache.mtime[key] = Mtime(storage=self._staged.mtime)
            cache.size[key] = self._staged.size
            cache.checksum[key] = self._staged.checksum

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
        # DRS stages the file on its first request; until then these are its facts
        self._staged = None
        checksum = f"sha256:{result.sha256}" if result.sha256 else None
        self._stored = Facts(result.size, time.time(), checksum)
        _moved("stored", self.query, result)

    def remove(self):
        raise WorkflowError(
            f"ghga: {self.query} cannot be removed: GHGA files are not deleted by clients "
            "(an accepted file id is final; ask the data steward)"
        )
