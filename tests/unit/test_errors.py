"""Typed errors survive the trip through failure.json with every field, and failure_of() of a
task run in this process gives the very error it raised."""

from __future__ import annotations

import json

import pytest

from ghga_tasks.errors import (
    ApiRefused,
    ExitCode,
    GhgaError,
    LockedError,
    PartsNotStored,
    error_from_dict,
    error_to_dict,
)


@pytest.mark.parametrize(
    "error",
    [
        ApiRefused("refused", status=409, exception_id="uploadInProgress", data={"retry_after": 3}),
        PartsNotStored("u1", [2, 7]),
        LockedError("held"),
        GhgaError("plain"),
    ],
)
def test_round_trip_keeps_type_message_code_and_fields(error):
    back = error_from_dict(json.loads(json.dumps(error_to_dict(error))))
    assert type(back) is type(error) and back.message == error.message
    assert back.exit_code == error.exit_code
    assert {k: v for k, v in vars(back).items() if k != "exit_code"} == vars(error)


def test_an_unexpected_exception_is_an_internal_error():
    back = error_from_dict(error_to_dict(KeyError("x")))
    assert back.exit_code == ExitCode.INTERNAL and "KeyError" in back.message


def test_failure_of_a_task_run_in_this_process(tmp_path):
    luigi = pytest.importorskip("luigi")
    from ghga_tasks.settings import Settings
    from ghga_tasks.tasks import failure_of
    from ghga_tasks.tasks.download import PollOutbox

    task = PollOutbox(
        api_url="http://127.0.0.1:9/x",
        file_id="F1",
        state_dir=str(tmp_path),
        settings=Settings(retries=0),
    )
    assert not luigi.build([task], local_scheduler=True, no_lock=True)
    failure = failure_of(task)
    assert failure is task.failure and failure.exit_code == ExitCode.TRANSIENT
    # another process reads it from failure.json, fields included
    task.failure = None
    again = failure_of(task)
    assert type(again) is type(failure) and again.message == failure.message
