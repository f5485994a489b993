"""Checkpointer: when the partial file is synced, on a fake clock, with syncs that take as
long as the test says."""

from __future__ import annotations

import threading

from ghga_tasks import state
from ghga_tasks.partial import Checkpointer


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _checkpointer(tmp_path, clock, took):
    syncs = []

    def sync(fd):
        syncs.append(clock.now)
        clock.now += took[0]

    ledger = state.Ledger(tmp_path / "ledger", {"file": "x"})
    ledger.append_later([{"offset": 0, "size": 8}])
    return Checkpointer(-1, ledger, clock=clock, sync=sync), ledger, syncs


def _tick_at(checkpointer, clock, when):
    clock.now = when
    checkpointer.tick()
    checkpointer.close()  # the sync thread is done before the test looks


def test_the_gap_after_a_sync_is_thirty_times_what_it_took_within_bounds(tmp_path):
    clock, took = Clock(), [0.5]
    checkpointer, ledger, syncs = _checkpointer(tmp_path, clock, took)
    start = clock.now
    _tick_at(checkpointer, clock, start + Checkpointer.CHECKPOINT - 0.1)
    assert syncs == []
    _tick_at(checkpointer, clock, start + Checkpointer.CHECKPOINT)
    assert syncs == [start + Checkpointer.CHECKPOINT]
    assert ledger.entries[-1] == {"durable": 1}
    assert checkpointer.interval == Checkpointer.CHECKPOINT  # 15 s is below the floor

    took[0] = 4.0  # a slow sync: the next one comes 120 s after its start
    _tick_at(checkpointer, clock, syncs[-1] + Checkpointer.CHECKPOINT)
    assert len(syncs) == 2 and checkpointer.interval == 120.0
    _tick_at(checkpointer, clock, syncs[-1] + 119.9)
    assert len(syncs) == 2
    took[0] = 20.0
    _tick_at(checkpointer, clock, syncs[-1] + 120.0)
    assert len(syncs) == 3
    assert checkpointer.interval == Checkpointer.MAX_CHECKPOINT  # 600 s capped
    assert ledger.entries[-3:] == [{"durable": 1}, {"durable": 2}, {"durable": 3}]


def test_a_sync_in_flight_is_not_started_twice(tmp_path):
    clock = Clock()
    ledger = state.Ledger(tmp_path / "ledger", {"file": "x"})
    release, calls = threading.Event(), []

    def sync(fd):
        calls.append(fd)
        release.wait(60)

    checkpointer = Checkpointer(-1, ledger, clock=clock, sync=sync)
    clock.now += 10 * Checkpointer.MAX_CHECKPOINT
    checkpointer.tick()
    clock.now += 10 * Checkpointer.MAX_CHECKPOINT
    checkpointer.tick()  # the first is still syncing
    release.set()
    checkpointer.close()
    assert calls == [-1]
