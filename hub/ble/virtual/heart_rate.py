"""A virtual heart-rate strap (Heart Rate Service 0x180D)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.ble.virtual import encode
from hub.ble.virtual.peripheral import P, VirtualPeripheral

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bumble import gatt
    from bumble.device import Connection

HEART_RATE_SERVICE = 0x180D
HEART_RATE_MEASUREMENT = 0x2A37
BODY_SENSOR_LOCATION = 0x2A38


class HeartRateStrap(VirtualPeripheral):
    """Notifies ``samples`` as soon as the hub subscribes, then one frame per ``beat``."""

    service_uuid = HEART_RATE_SERVICE

    def __init__(
        self,
        *,
        address: str,
        name: str = "TECSA HR",
        samples: Iterable[bytes] = (),
        **kwargs: Any,  # noqa: ANN401 - VirtualPeripheral options
    ) -> None:
        super().__init__(address=address, name=name, **kwargs)
        self.samples = [bytes(sample) for sample in samples]

    def profile_characteristics(self) -> list[gatt.Characteristic[bytes]]:
        """0x2A37 notify, 0x2A38 read (chest)."""
        return [
            self.characteristic(HEART_RATE_MEASUREMENT, P.NOTIFY),
            self.characteristic(BODY_SENSOR_LOCATION, P.READ, value=b"\x01"),
        ]

    async def on_subscribed(self, connection: Connection, uuid: int, cccd: int) -> None:
        """Stream the queued samples."""
        if uuid == HEART_RATE_MEASUREMENT and cccd:
            for sample in self.samples:
                await self.send(HEART_RATE_MEASUREMENT, sample, connection)

    async def beat(self, bpm: int, *, rr_intervals: tuple[int, ...] = ()) -> bytes:
        """Notify one measurement with sensor contact detected; return it."""
        frame = encode.heart_rate_measurement(
            bpm, sensor_contact=encode.SENSOR_CONTACT_DETECTED, rr_intervals=rr_intervals
        )
        await self.send(HEART_RATE_MEASUREMENT, frame)
        return frame
