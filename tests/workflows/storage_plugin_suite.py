"""snakemake-interface-storage-plugins' own TestStorageBase, run on snakemake-storage-plugin-ghga.

Not collected by the main suite (no test_ prefix): test_storage_plugin.py runs it with the
Python of the workflow venv (where Snakemake and the plugin are installed), against the live
reference server whose URLs it passes in GHGA_PLUGIN_* variables.
"""

import asyncio
import hashlib
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import requests
from snakemake_interface_storage_plugins.tests import TestStorageBase
from snakemake_storage_plugin_ghga import StorageProvider, StorageProviderSettings, _timestamp

DRS_API = os.environ["GHGA_PLUGIN_DRS_API"]
UPLOAD_API = os.environ["GHGA_PLUGIN_UPLOAD_API"]
ADMIN_API = os.environ["GHGA_PLUGIN_ADMIN_API"]
STATE_DIR = os.environ["GHGA_PLUGIN_STATE_DIR"]
ACCEPTED_ID = os.environ["GHGA_PLUGIN_FILE_ID"]  # uploaded and accepted by the caller
ACCEPTED_SHA256 = os.environ["GHGA_PLUGIN_FILE_SHA256"]
TIMEOUT = 30


def settings(**extra) -> StorageProviderSettings:
    return StorageProviderSettings(
        drs_api=DRS_API, upload_api=UPLOAD_API, state_dir=STATE_DIR, parallel=2, **extra
    )


def register(content: bytes) -> str:
    """A new file id on the server for `content` (TestStorageBase stores b"test")."""
    file_id = f"plugin-{uuid.uuid4().hex[:12]}"
    body = {"file_id": file_id, "size": len(content)}
    body["sha256"] = hashlib.sha256(content).hexdigest()
    r = requests.post(f"{ADMIN_API}/files", json=body, timeout=TIMEOUT)
    r.raise_for_status()
    return file_id


def configure(**knobs) -> None:
    requests.patch(f"{ADMIN_API}/config", json=knobs, timeout=TIMEOUT).raise_for_status()


class TestStoreAndRetrieve(TestStorageBase):
    """store_object (upload, wait for acceptance), then exists/size/mtime/checksum/inventory
    from DRS, then retrieve_object (download). GHGA files are not deleted by clients."""

    __test__ = True
    delete = False

    def get_storage_provider_cls(self):
        return StorageProvider

    def get_storage_provider_settings(self):
        return settings()

    def get_query(self, tmp_path) -> str:
        return f"ghga://{register(b'test')}"

    def get_query_not_existing(self, tmp_path) -> str:
        return f"ghga://plugin-missing-{uuid.uuid4().hex[:12]}"


class TestRetrieveOnly(TestStorageBase):
    """A file that was uploaded with ghga-cli: retrieved and verified."""

    __test__ = True
    retrieve_only = True

    def get_storage_provider_cls(self):
        return StorageProvider

    def get_storage_provider_settings(self):
        return settings()

    def get_query(self, tmp_path) -> str:
        return f"ghga://{ACCEPTED_ID}"

    def get_query_not_existing(self, tmp_path) -> str:
        return "ghga://plugin-never-registered"

    def test_facts_from_drs(self, tmp_path):
        obj = self._get_obj(tmp_path, self.get_query(tmp_path))
        assert obj.exists()
        assert obj.checksum() == f"sha256:{ACCEPTED_SHA256}"
        assert obj.size() == 2 * 1024 * 1024
        assert obj.mtime() > 1.7e9  # the server's created_time (acceptance)
        obj.retrieve_object()
        data = obj.local_path().read_bytes()
        assert hashlib.sha256(data).hexdigest() == ACCEPTED_SHA256
        # the client's state went to the state dir, not next to Snakemake's copy
        assert list(Path(STATE_DIR).glob("downloads/*"))
        assert sorted(p.name for p in obj.local_path().parent.iterdir()) == [ACCEPTED_ID]


def stored(provider: StorageProvider, content: bytes):
    """A new file id, stored (uploaded and accepted) through the plugin; (the object that
    stored it, its source's mtime)."""
    obj = provider.object(f"ghga://{register(content)}")
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    obj.local_path().write_bytes(content)
    source_mtime = obj.local_path().stat().st_mtime
    obj.store_object()
    obj.local_path().unlink()
    return obj, source_mtime


def empty_inventory():
    """What Snakemake's IOCache gives StorageObject.inventory."""
    return SimpleNamespace(exists_in_storage={}, mtime={}, size={}, checksum={})


def test_staging_counts_as_existing(tmp_path):
    """While DRS answers 202 the object exists at once; its size, mtime and checksum wait
    for the staging to end (Retry-After), and so does retrieval; the inventory does not."""
    provider = StorageProvider(
        local_prefix=tmp_path / "prefix", logger=None, settings=settings(max_wait=60.0)
    )
    content = os.urandom(1000)
    checksum = f"sha256:{hashlib.sha256(content).hexdigest()}"
    facts_first, source_mtime = stored(provider, content)
    retrieved_first, _ = stored(provider, content)
    inventoried, _ = stored(provider, content)
    configure(staging_delay=3)
    try:
        obj = provider.object(facts_first.query)  # a fresh object: nothing known
        assert obj.exists()  # 202 while staging
        assert obj._staged is None  # exists() did not wait for the staging
        assert obj.size() == len(content)  # waited
        assert obj._staged is not None
        assert obj.mtime() > source_mtime
        assert obj.checksum() == checksum

        obj = provider.object(inventoried.query)
        cache = empty_inventory()
        asyncio.run(obj.inventory(cache))
        assert cache.exists_in_storage == {obj.cache_key(): True}
        assert cache.mtime == cache.size == cache.checksum == {}  # left to managed_*
        assert obj._staged is None  # not waited for

        obj = provider.object(retrieved_first.query)
        assert obj.exists() and obj._staged is None
        obj.retrieve_object()  # waits for staging (Retry-After), then downloads
    finally:
        configure(staging_delay=0)
    assert obj.local_path().read_bytes() == content
    # staged now: the inventory has every fact
    obj = provider.object(inventoried.query)
    cache = empty_inventory()
    asyncio.run(obj.inventory(cache))
    key = obj.cache_key()
    assert cache.exists_in_storage == {key: True} and cache.size == {key: len(content)}
    assert cache.checksum == {key: checksum} and cache.mtime[key].storage() > source_mtime


def test_stored_object_is_newer_than_its_source(tmp_path):
    """Snakemake re-runs a rule whose output is older than its input: an uploaded file's
    mtime (DRS created_time) is later than its source's, even within the same second."""
    provider = StorageProvider(local_prefix=tmp_path / "prefix", logger=None, settings=settings())
    obj, source_mtime = stored(provider, os.urandom(1000))
    obj = provider.object(obj.query)  # a fresh object: asks DRS
    assert obj.mtime() > source_mtime, (obj.mtime(), source_mtime)
    assert obj._staged is not None


def test_stored_facts_while_being_staged(tmp_path):
    """After storing, Snakemake asks the output's mtime at once: while DRS stages the file
    (here for an hour) the plugin answers with what it stored instead of waiting."""
    provider = StorageProvider(
        local_prefix=tmp_path / "prefix", logger=None, settings=settings(max_wait=5.0)
    )
    content = os.urandom(1000)
    configure(staging_delay=3600)
    try:
        obj, source_mtime = stored(provider, content)
        assert obj.exists() and obj._staged is None  # DRS: 202
        assert obj.mtime() > source_mtime
        assert obj.size() == len(content)
        assert obj.checksum() == f"sha256:{hashlib.sha256(content).hexdigest()}"
        # another process (a fresh object) waits for the staging, up to max_wait
        fresh = provider.object(obj.query)
        try:
            fresh.mtime()
        except Exception as exc:
            assert "still being staged" in str(exc), exc
        else:
            raise AssertionError("mtime() of an object being staged did not wait")
    finally:
        configure(staging_delay=0)


def test_whole_second_times_stand_for_the_end_of_their_second():
    base = datetime(2026, 12, 2, 11, 4, 5, tzinfo=timezone.utc).timestamp()
    assert _timestamp("2026-12-02T11:04:05Z") == base + 0.999999
    assert _timestamp("2026-12-02T11:04:05.250000Z") == base + 0.25
    assert _timestamp("2026-12-02T11:04:05.000000Z") == base
    assert _timestamp(None) is None and _timestamp("yesterday") is None


def test_settings_are_required_where_used(tmp_path):
    provider = StorageProvider(
        local_prefix=tmp_path / "prefix", logger=None, settings=StorageProviderSettings()
    )
    obj = provider.object("ghga://F1")
    try:
        obj.exists()
    except Exception as exc:
        assert "--storage-ghga-drs-api" in str(exc)
        assert "SNAKEMAKE_STORAGE_GHGA_DRS_API" in str(exc)
    else:
        raise AssertionError("exists() without a DRS API URL")


def test_query_validation():
    assert StorageProvider.is_valid_query("ghga://GHGAF1")
    assert StorageProvider.is_valid_query("ghga://{sample}")
    assert not StorageProvider.is_valid_query("ghga://a/b")
    assert not StorageProvider.is_valid_query("s3://bucket/key")
    assert not StorageProvider.is_valid_query("ghga://")
