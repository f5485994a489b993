"""snakemake-interface-storage-plugins' own TestStorageBase, run on snakemake-storage-plugin-ghga.

Not collected by the main suite (no test_ prefix): test_storage_plugin.py runs it with the
Python of the workflow venv (where Snakemake and the plugin are installed), against the live
reference server whose URLs it passes in GHGA_PLUGIN_* variables.
"""

import hashlib
import os
import uuid
from pathlib import Path

import requests
from snakemake_interface_storage_plugins.tests import TestStorageBase
from snakemake_storage_plugin_ghga import StorageProvider, StorageProviderSettings

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


def test_staging_counts_as_existing(tmp_path):
    """While DRS answers 202 the object exists (size 0, no checksum yet); retrieval waits."""
    content = os.urandom(1000)
    provider = StorageProvider(
        local_prefix=tmp_path / "prefix", logger=None, settings=settings(max_wait=60.0)
    )
    stored = provider.object(f"ghga://{register(content)}")
    stored.local_path().parent.mkdir(parents=True, exist_ok=True)
    stored.local_path().write_bytes(content)
    stored.store_object()
    stored.local_path().unlink()

    configure(staging_delay=3)
    try:
        obj = provider.object(stored.query)  # a fresh object: no cached DRS answer
        assert obj.exists()  # 202 while staging
        assert obj.size() == 0 and obj.checksum() is None and obj.mtime() == 0.0
    finally:
        configure(staging_delay=0)
    obj.retrieve_object()  # waits for staging (Retry-After), then downloads
    assert obj.local_path().read_bytes() == content
    assert obj.checksum() == f"sha256:{hashlib.sha256(content).hexdigest()}"


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
