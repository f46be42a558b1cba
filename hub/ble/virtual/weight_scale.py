"""A virtual weight scale (Weight Scale Service 0x181D)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.ble.virtual import encode
from hub.ble.virtual._stored import StoredReadingsPeripheral
from hub.ble.virtual.peripheral import P

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bumble import gatt

WEIGHT_SCALE_SERVICE = 0x181D
WEIGHT_MEASUREMENT = 0x2A9D
WEIGHT_SCALE_FEATURE = 0x2A9E


class WeightScale(StoredReadingsPeripheral):
    """Indicates stored weights on subscription; ``weigh`` takes a new one."""

    service_uuid = WEIGHT_SCALE_SERVICE
    measurement_uuid = WEIGHT_MEASUREMENT

    def __init__(
        self,
        *,
        address: str,
        name: str = "TECSA SCALE",
        frames: Iterable[bytes] = (),
        features: int = 0x0000_003B,  # time stamp, multiple users, 0.005 kg resolution
        **kwargs: Any,  # noqa: ANN401 - VirtualPeripheral options
    ) -> None:
        super().__init__(address=address, name=name, frames=frames, **kwargs)
        self.features = features

    def profile_characteristics(self) -> list[gatt.Characteristic[bytes]]:
        """0x2A9D indicate, 0x2A9E read."""
        return [
            self.characteristic(WEIGHT_MEASUREMENT, P.INDICATE),
            self.characteristic(
                WEIGHT_SCALE_FEATURE, P.READ, value=encode.weight_scale_feature(self.features)
            ),
        ]

    async def weigh(self, kg: float | None, *, user_id: int | None = None) -> bytes:
        """Weigh (``None`` is an unsuccessful measurement), indicate it if subscribed, return it."""
        frame = encode.weight_measurement(
            kg, timestamp=self.clock_time().replace(microsecond=0), user_id=user_id
        )
        return await self.record(frame)
