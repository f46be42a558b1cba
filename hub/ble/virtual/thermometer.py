"""A virtual thermometer (Health Thermometer Service 0x1809)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from hub.ble.virtual import encode
from hub.ble.virtual._stored import StoredReadingsPeripheral
from hub.ble.virtual.peripheral import P

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bumble import gatt

HEALTH_THERMOMETER_SERVICE = 0x1809
TEMPERATURE_MEASUREMENT = 0x2A1C
TEMPERATURE_TYPE = 0x2A1D


class Thermometer(StoredReadingsPeripheral):
    """Indicates stored temperatures on subscription; ``measure`` takes a new one."""

    service_uuid = HEALTH_THERMOMETER_SERVICE
    measurement_uuid = TEMPERATURE_MEASUREMENT

    def __init__(
        self,
        *,
        address: str,
        name: str = "TECSA THERMO",
        frames: Iterable[bytes] = (),
        temperature_type: int = 1,  # armpit (vectors.md section 3)
        seed: int = 0,
        **kwargs: Any,  # noqa: ANN401 - VirtualPeripheral options
    ) -> None:
        super().__init__(address=address, name=name, frames=frames, **kwargs)
        self.temperature_type = temperature_type
        self._rng = random.Random(seed)  # noqa: S311 - plausible readings, not cryptography

    def profile_characteristics(self) -> list[gatt.Characteristic[bytes]]:
        """0x2A1C indicate, 0x2A1D read."""
        return [
            self.characteristic(TEMPERATURE_MEASUREMENT, P.INDICATE),
            self.characteristic(TEMPERATURE_TYPE, P.READ, value=bytes([self.temperature_type])),
        ]

    async def measure(self, celsius: float | None = None) -> bytes:
        """Take a temperature in degrees Celsius (0.01 resolution), indicate it if subscribed."""
        value = celsius if celsius is not None else self._rng.randint(3600, 3850) / 100
        frame = encode.temperature_measurement(
            value,
            timestamp=self.clock_time().replace(microsecond=0),
            temperature_type=self.temperature_type,
        )
        return await self.record(frame)
