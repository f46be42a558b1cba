"""The buffer's own configuration: a small frozen value the composition root builds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path  # noqa: TC003 - a dataclass field type, resolved at runtime
from typing import Literal

from hub.errors import ConfigError

Synchronous = Literal["NORMAL", "FULL"]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BufferConfig:
    """Where the buffer lives and how it trades durability, capacity and latency."""

    path: Path
    """The SQLite file; its directory must exist. `-wal` and `-shm` files appear next to it."""
    synchronous: Synchronous = "NORMAL"
    """NORMAL: a commit survives a crash of the process (kill -9, OOM), not a power cut.
    FULL: it also survives a power cut, at the cost of an fsync per group commit."""
    max_unsent_bytes: int = 1024 * MIB
    """Cap on the JSON bytes of readings not yet acknowledged by the cloud."""
    alert_reserve_bytes: int = 16 * MIB
    """Extra room above the cap that only alert-priority (0) readings may use."""
    retention: timedelta = timedelta(days=30)
    """Delivered readings older than this are pruned; unsent ones are never."""
    max_batch: int = 2000
    """Most readings the writer puts in one transaction (group commit)."""
    busy_timeout: timedelta = timedelta(seconds=5)
    """How long a connection waits for a lock held by another process before `BufferBusy`."""

    def __post_init__(self) -> None:
        if self.synchronous not in {"NORMAL", "FULL"}:
            raise ConfigError(
                f"buffer synchronous must be NORMAL or FULL, not {self.synchronous!r}"
            )
        if self.max_unsent_bytes <= 0:
            raise ConfigError("buffer max_unsent_bytes must be positive")
        if self.alert_reserve_bytes < 0:
            raise ConfigError("buffer alert_reserve_bytes must not be negative")
        if self.retention < timedelta(0):
            raise ConfigError("buffer retention must not be negative")
        if not 1 <= self.max_batch <= 100_000:  # noqa: PLR2004 - a sanity bound, not a tunable
            raise ConfigError("buffer max_batch must be between 1 and 100000")
        if self.busy_timeout < timedelta(0):
            raise ConfigError("buffer busy_timeout must not be negative")
