"""Long waits are said on stderr: at their first round, then at most once a minute."""

from __future__ import annotations

import logging

from ghga_tasks.progress import WaitNotice


def test_said_first_then_at_most_every_interval(caplog):
    now = [100.0]
    notice = WaitNotice(logging.getLogger("ghga_tasks.test"), every=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="ghga_tasks.test"):
        for step in (0, 10, 49, 1, 30, 60):  # at 100, 110, 159, 160, 190, 250
            now[0] += step
            notice(f"waiting at {now[0]:.0f}")
    assert [r.getMessage() for r in caplog.records] == [
        "waiting at 100",
        "waiting at 160",
        "waiting at 250",
    ]
