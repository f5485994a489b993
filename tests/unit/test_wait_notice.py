"""Long waits are said on stderr: once they have lasted a while, then at most once a minute."""

from __future__ import annotations

import logging

from ghga_tasks.progress import WaitNotice


def test_said_after_a_while_then_at_most_every_interval(caplog):
    now = [100.0]
    notice = WaitNotice(
        logging.getLogger("ghga_tasks.test"), after=10, every=60, clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, logger="ghga_tasks.test"):
        for step in (0, 5, 5, 10, 49, 1, 30, 60):  # at 100, 105, 110, 120, 169, 170, 200, 260
            now[0] += step
            notice(f"waiting at {now[0]:.0f}")
    assert [r.getMessage() for r in caplog.records] == [
        "waiting at 110",
        "waiting at 170",
        "waiting at 260",
    ]


def test_a_short_wait_says_nothing(caplog):
    now = [0.0]
    notice = WaitNotice(logging.getLogger("ghga_tasks.test"), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="ghga_tasks.test"):
        for _ in range(9):
            notice("waiting")
            now[0] += 1
    assert caplog.records == []
