"""A virtual blood-pressure cuff (Blood Pressure Service 0x1810) that only talks to a bonded hub."""

from __future__ import annotations

import dataclasses
import random
from typing import TYPE_CHECKING, Any

from hub.ble.virtual import encode
from hub.ble.virtual._stored import StoredReadingsPeripheral
from hub.ble.virtual.peripheral import P

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    from bumble import gatt

BLOOD_PRESSURE_SERVICE = 0x1810
BLOOD_PRESSURE_MEASUREMENT = 0x2A35
INTERMEDIATE_CUFF_PRESSURE = 0x2A36
BLOOD_PRESSURE_FEATURE = 0x2A49


@dataclasses.dataclass(frozen=True)
class BloodPressureReading:
    """One cuff reading in mmHg; MAP defaults to diastolic + (systolic - diastolic) / 3."""

    systolic: float
    diastolic: float
    pulse: float | None = None
    mean_arterial: float | None = None
    timestamp: dt.datetime | None = None
    user_id: int | None = None
    status: int | None = None

    def encode(self) -> bytes:
        """Return the 0x2A35 value."""
        mean = self.mean_arterial
        if mean is None:
            mean = round(self.diastolic + (self.systolic - self.diastolic) / 3)
        return encode.blood_pressure_measurement(
            self.systolic,
            self.diastolic,
            mean,
            timestamp=self.timestamp,
            pulse=self.pulse,
            user_id=self.user_id,
            status=self.status,
        )


class BloodPressureCuff(StoredReadingsPeripheral):
    """Requires bonding; indicates its stored readings right after the CCCD write."""

    service_uuid = BLOOD_PRESSURE_SERVICE
    measurement_uuid = BLOOD_PRESSURE_MEASUREMENT

    def __init__(
        self,
        *,
        address: str,
        name: str = "TECSA BP",
        readings: Iterable[BloodPressureReading] = (),
        features: int = 0x0007,  # body movement, cuff fit, irregular pulse detection
        requires_bonding: bool = True,
        seed: int = 0,
        **kwargs: Any,  # noqa: ANN401 - VirtualPeripheral options
    ) -> None:
        super().__init__(
            address=address,
            name=name,
            requires_bonding=requires_bonding,
            frames=[reading.encode() for reading in readings],
            **kwargs,
        )
        self.features = features
        self._rng = random.Random(seed)  # noqa: S311 - plausible readings, not cryptography

    def profile_characteristics(self) -> list[gatt.Characteristic[bytes]]:
        """0x2A35 indicate, 0x2A36 notify, 0x2A49 read."""
        return [
            self.characteristic(BLOOD_PRESSURE_MEASUREMENT, P.INDICATE),
            self.characteristic(INTERMEDIATE_CUFF_PRESSURE, P.NOTIFY),
            self.characteristic(
                BLOOD_PRESSURE_FEATURE, P.READ, value=self.features.to_bytes(2, "little")
            ),
        ]

    async def measure(
        self,
        sys: float | None = None,
        dia: float | None = None,
        pulse: float | None = None,
        *,
        mean_arterial: float | None = None,
        user_id: int | None = None,
        status: int | None = None,
    ) -> bytes:
        """Take a reading (plausible values where omitted), indicate it if subscribed, return it."""
        reading = BloodPressureReading(
            systolic=sys if sys is not None else self._rng.randint(105, 150),
            diastolic=dia if dia is not None else self._rng.randint(65, 95),
            pulse=pulse if pulse is not None else self._rng.randint(55, 95),
            mean_arterial=mean_arterial,
            timestamp=self.clock_time().replace(microsecond=0),
            user_id=user_id,
            status=status,
        )
        return await self.record(reading.encode())

    async def inflate(self, cuff_pressure: float) -> bytes:
        """Notify an Intermediate Cuff Pressure frame while the cuff inflates; return it."""
        frame = encode.intermediate_cuff_pressure(cuff_pressure)
        await self.send(INTERMEDIATE_CUFF_PRESSURE, frame)
        return frame
