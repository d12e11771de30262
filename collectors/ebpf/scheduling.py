"""How the agent's threads are scheduled: out of the observed applications' way.

The shipper runs under SCHED_BATCH: its fair share of CPU, but its wake-ups
never preempt anyone. The polling thread runs under SCHED_IDLE, so that any
application waking up preempts it at once, for as long as it keeps up: when
the ring buffer gets more than 1/32 full it moves to SCHED_BATCH (a fair
share) until it has drained the buffer, so a busy machine cannot starve it
into losing events. Linux only; elsewhere, or when refused, threads keep the
default policy (logged once).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("topology.agent")

# Fractions of the ring buffer in use. A thread under SCHED_IDLE on a saturated
# machine runs rarely, so it must take its fair share early: 1/32 of the default
# 16 MiB is about 5,000 requests, a tenth of a second at full speed.
BUSY_ABOVE = 1 / 32
IDLE_BELOW = 1 / 256  # back in the background once drained below this


def _set(policy_name: str) -> bool:
    policy = getattr(os, policy_name, None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return False
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as exc:
        log.warning("cannot use %s, agent threads keep the default policy: %s", policy_name, exc)
        return False
    return True


def background() -> None:
    """The calling thread: SCHED_BATCH."""
    _set("SCHED_BATCH")


class PollingPolicy:
    """SCHED_IDLE for the calling (polling) thread while the ring buffer keeps up."""

    def __init__(self) -> None:
        self.idle = _set("SCHED_IDLE")
        self.switches = 0

    def follow(self, used: float) -> None:
        """used: the fraction of the ring buffer holding records not yet read."""
        if self.idle and used > BUSY_ABOVE:
            log.info("agent behind (ring buffer %.0f%% full): fair share of CPU until drained",
                     used * 100)
            self.idle = not _set("SCHED_BATCH")
            self.switches += 1
        elif not self.idle and used < IDLE_BELOW and self.switches:
            self.idle = _set("SCHED_IDLE")
