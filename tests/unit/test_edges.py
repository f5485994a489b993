"""Edges of the library: long file ids, stale partial files, luigi's signal handler, echoed
answers."""

from __future__ import annotations

import os
import signal

import pytest

from ghga_tasks.clients import UploadClient
from ghga_tasks.errors import ApiRefused, TransientError, UsageError
from ghga_tasks.partial import check_file_id, open_partial
from ghga_tasks.server.stub import StubServer
from ghga_tasks.settings import Settings


def test_a_file_id_longer_than_a_file_name_is_a_usage_error():
    assert check_file_id("a" * 255) == "a" * 255
    with pytest.raises(UsageError, match="cannot be used as a file name"):
        check_file_id("a" * 256)


def test_a_stale_partial_of_a_larger_object_is_cut_to_size(tmp_path):
    part = tmp_path / ".F1.ghga-part"
    part.write_bytes(os.urandom(1000))
    fd = open_partial(part, 100)
    os.close(fd)
    assert part.stat().st_size == 100


def test_a_run_leaves_the_process_signal_handlers_alone(tmp_path):
    from ghga_tasks.runner import run_dag
    from ghga_tasks.tasks.download import PollOutbox

    before = signal.getsignal(signal.SIGUSR1)
    settings = Settings(retries=0, task_retries=0)
    task = PollOutbox(
        api_url="http://127.0.0.1:9/x", file_id="F1", state_dir=str(tmp_path), settings=settings
    )
    with pytest.raises(TransientError):
        run_dag(task, settings)
    assert signal.getsignal(signal.SIGUSR1) is before


def test_an_answer_that_is_not_json_is_quoted_without_signatures():
    url = "https://store/bucket/key?X-Amz-Signature=deadbeef&X-Amz-Credential=me"
    stub = StubServer(lambda method, path, headers: (200, {}, f"see {url}".encode()))
    try:
        client = UploadClient(stub.url, Settings(retries=0))
        with pytest.raises(ApiRefused) as raised:
            client.get_file("F1")
        assert "not JSON" in raised.value.message
        assert "deadbeef" not in raised.value.message and "Credential" not in raised.value.message
    finally:
        stub.close()
