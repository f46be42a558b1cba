"""Circuit breaker and reconnect backoff: pure state and arithmetic, times passed in.

The breaker opens after `threshold` consecutive failures (a connection attempt that failed, a
publication without PUBACK, a batch without an ack in time). While open the uplink sends no new
batches; when a probe is due it sends exactly one (half open). A verified ack closes it; a probe
that fails opens it again with a longer wait, capped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random


class BreakerState(StrEnum):
    """The three states of the circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BREAKER_GAUGE = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}
"""The value the breaker-state gauge exports for each state."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits a random share of min(cap, base * 2^n)."""

    base: float = 0.5
    cap: float = 60.0
    jitter: float = 0.5
    """The share of the delay that is random: 0.5 waits between half and all of it."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before attempt number `attempt` (0 is the first retry)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt, 32))
        share: float = rng.random()
        return ceiling * (1.0 - self.jitter * share)


class Breaker:
    """Counts consecutive failures and decides when the uplink may send."""

    def __init__(self, *, threshold: int, probe: Backoff) -> None:
        if threshold < 1:
            raise ValueError("the breaker threshold must be at least 1")
        self._threshold = threshold
        self._probe = probe
        self.state = BreakerState.CLOSED
        self.failures = 0
        """Consecutive failures since the last success."""
        self._opened = 0
        """How many times it opened in a row without closing (lengthens the probe wait)."""
        self.next_probe_at = 0.0

    def failure(self, now: float, rng: random.Random) -> bool:
        """Record a failure; True if this opened the breaker (or re-opened it after a probe)."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.failures >= self._threshold
        ):
            self.state = BreakerState.OPEN
            self.next_probe_at = now + self._probe.delay(self._opened, rng)
            self._opened += 1
            return True
        return False

    def success(self) -> bool:
        """Record a success (a verified ack from the cloud); True if it closed the breaker."""
        self.failures = 0
        self._opened = 0
        if self.state is BreakerState.CLOSED:
            return False
        self.state = BreakerState.CLOSED
        return True

    def probe_due(self, now: float) -> bool:
        """True when open and the time for the next probe has come."""
        return self.state is BreakerState.OPEN and now >= self.next_probe_at

    def probing(self) -> None:
        """The uplink sent its one probe: half open until it succeeds or fails."""
        if self.state is BreakerState.OPEN:
            self.state = BreakerState.HALF_OPEN
