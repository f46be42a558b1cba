"""A virtual device that speaks a health profile but sends malformed frames (vectors.md INVALID)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.ble.virtual.peripheral import P, VirtualPeripheral

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bumble import gatt
    from bumble.device import Connection

DEFAULT_GARBAGE = (
    bytes.fromhex("01 02 03 04 05 06"),  # BP4: shorter than 7 bytes
    bytes.fromhex("03 02 03 04 05 06 07"),  # BP5: time stamp flagged, missing
    bytes.fromhex("56 6A 00 47 00 00 00 EA 07 08 0B 12 1F 00 00 3F 00 00 00"),  # BP10: Beurer quirk
    b"",
    bytes(range(256))[:200],
)


class GarbageDevice(VirtualPeripheral):
    """Advertises ``service``; sends ``frames`` on ``characteristic`` right after subscription."""

    def __init__(
        self,
        *,
        address: str,
        name: str = "TECSA JUNK",
        service: int = 0x1810,
        characteristic: int = 0x2A35,
        indicate: bool = True,
        frames: Iterable[bytes] = DEFAULT_GARBAGE,
        **kwargs: Any,  # noqa: ANN401 - VirtualPeripheral options
    ) -> None:
        self.service_uuid = service
        self.measurement_uuid = characteristic
        self.indicate = indicate
        self.frames = [bytes(frame) for frame in frames]
        super().__init__(address=address, name=name, **kwargs)

    def profile_characteristics(self) -> list[gatt.Characteristic[bytes]]:
        """The one characteristic, indicate or notify, plus a read that returns the first frame."""
        properties = (P.INDICATE if self.indicate else P.NOTIFY) | P.READ
        first = self.frames[0] if self.frames else b""
        return [self.characteristic(self.measurement_uuid, properties, value=first)]

    async def on_subscribed(self, connection: Connection, uuid: int, cccd: int) -> None:
        """Send every malformed frame."""
        if uuid == self.measurement_uuid and cccd:
            for frame in self.frames:
                await self.send(uuid, frame, connection)
