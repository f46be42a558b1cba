"""The hub uplink: batches of unsent readings, sealed, over MQTT, delivered on the cloud's ack.

The composition root builds `UplinkService(UplinkConfig.from_settings(...), buffer,
UplinkKeys.from_files(...), registry=...)` and runs `await service.run()` in a task; see
docs/uplink.md.
"""

from hub.uplink.batcher import Batch, Batcher, BatchLimits, CloseReason
from hub.uplink.breaker import Backoff, Breaker, BreakerState
from hub.uplink.config import UplinkConfig, UplinkKeys
from hub.uplink.errors import (
    UplinkConfigError,
    UplinkError,
    UplinkRefused,
    UplinkTimeout,
    UplinkUnavailable,
)
from hub.uplink.metrics import UplinkMetrics
from hub.uplink.service import UplinkService

__all__ = [
    "Backoff",
    "Batch",
    "BatchLimits",
    "Batcher",
    "Breaker",
    "BreakerState",
    "CloseReason",
    "UplinkConfig",
    "UplinkConfigError",
    "UplinkError",
    "UplinkKeys",
    "UplinkMetrics",
    "UplinkRefused",
    "UplinkService",
    "UplinkTimeout",
    "UplinkUnavailable",
]
