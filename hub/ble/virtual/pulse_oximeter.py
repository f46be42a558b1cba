"""A virtual pulse oximeter (Pulse Oximeter Service 0x1822)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.ble.virtual import encode
from hub.ble.virtual._stored import StoredReadingsPeripheral
from hub.ble.virtual.peripheral import P

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bumble import gatt

PULSE_OXIMETER_SERVICE = 0x1822
PLX_SPOT_CHECK = 0x2A5E
PLX_CONTINUOUS = 0x2A5F
PLX_FEATURES = 0x2A60


class PulseOximeter(StoredReadingsPeripheral):
    """Indicates stored spot-checks on subscription; ``stream`` notifies continuous values."""

    service_uuid = PULSE_OXIMETER_SERVICE
    measurement_uuid = PLX_SPOT_CHECK

    def __init__(
        self,
        *,
        address: str,
        name: str = "TECSA OXI",
        frames: Iterable[bytes] = (),
        features: bytes = encode.plx_features(0x0008),  # spot-check time stamp
        **kwargs: Any,  # noqa: ANN401 - VirtualPeripheral options
    ) -> None:
        super().__init__(address=address, name=name, frames=frames, **kwargs)
        self.features = features

    def profile_characteristics(self) -> list[gatt.Characteristic[bytes]]:
        """0x2A5E indicate, 0x2A5F notify, 0x2A60 read."""
        return [
            self.characteristic(PLX_SPOT_CHECK, P.INDICATE),
            self.characteristic(PLX_CONTINUOUS, P.NOTIFY),
            self.characteristic(PLX_FEATURES, P.READ, value=self.features),
        ]

    async def measure(self, spo2: float, pulse_rate: float) -> bytes:
        """Take a spot-check, indicate it if subscribed, return it."""
        frame = encode.plx_spot_check(
            spo2, pulse_rate, timestamp=self.clock_time().replace(microsecond=0)
        )
        return await self.record(frame)

    async def stream(self, spo2: float, pulse_rate: float) -> bytes:
        """Notify one continuous measurement; return it."""
        frame = encode.plx_continuous(spo2, pulse_rate)
        await self.send(PLX_CONTINUOUS, frame)
        return frame
