"""The polling thread's policy follows the ring buffer's fill level (SCHED_IDLE while it
keeps up, SCHED_BATCH while it catches up), with hysteresis."""

from __future__ import annotations

import os
import threading

import pytest

from collectors.ebpf import scheduling

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling only"),
    pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() != 0,
                       reason="leaving SCHED_IDLE needs root (CAP_SYS_NICE)"),
]

IDLE, BATCH = getattr(os, "SCHED_IDLE", -1), getattr(os, "SCHED_BATCH", -1)

CASES = [
    ("keeps up", [0.0, 0.01, 1 / 32], [IDLE, IDLE, IDLE]),
    ("falls behind, drains", [0.5, 0.2, 0.01, 0.001, 0.0], [BATCH, BATCH, BATCH, IDLE, IDLE]),
    ("behind twice", [0.04, 0.0, 0.9, 0.002], [BATCH, IDLE, BATCH, IDLE]),
]


@pytest.mark.parametrize(("case", "fills", "expected"), CASES, ids=[c[0] for c in CASES])
def test_policy_follows_the_fill_level(case: str, fills: list[float],
                                       expected: list[int]) -> None:
    seen: list[int] = []
    failure: list[BaseException] = []

    def polling() -> None:  # policies are per thread: a thread of its own
        try:
            policy = scheduling.PollingPolicy()
            assert policy.idle, "SCHED_IDLE refused"
            for used in fills:
                policy.follow(used)
                seen.append(os.sched_getscheduler(0))
        except BaseException as exc:  # reported below, in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=polling)
    thread.start()
    thread.join()
    assert not failure, failure
    assert seen == expected


def test_shipper_policy() -> None:
    seen: list[int] = []
    thread = threading.Thread(target=lambda: (scheduling.background(),
                                              seen.append(os.sched_getscheduler(0))))
    thread.start()
    thread.join()
    assert seen == [BATCH]
