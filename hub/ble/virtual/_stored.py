"""Devices that keep readings in memory and upload them right after the hub enables indications."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from hub.ble.virtual.peripheral import VirtualPeripheral

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bumble.device import Connection

_CCCD_INDICATE = 0x02


class StoredReadingsPeripheral(VirtualPeripheral):
    """Keeps frames for ``measurement_uuid``; sends them on the CCCD write, drops confirmed ones.

    This is how cuffs and scales behave: the stored readings go out immediately after the hub
    subscribes, which is exactly when bleak/BlueZ 2.0 lost them (hbldh/bleak#1885).
    """

    measurement_uuid: int

    def __init__(self, *, frames: Iterable[bytes] = (), **kwargs: Any) -> None:  # noqa: ANN401 - forwarded to VirtualPeripheral
        super().__init__(**kwargs)
        self.memory: list[bytes] = [bytes(frame) for frame in frames]
        self.sent: list[bytes] = []
        self._upload_lock = asyncio.Lock()

    async def on_subscribed(self, connection: Connection, uuid: int, cccd: int) -> None:
        """Upload the memory when the hub enables indications on the measurement."""
        if uuid == self.measurement_uuid and cccd:
            await self.upload(connection)

    async def upload(self, connection: Connection | None = None) -> None:
        """Send every stored frame, oldest first; a frame stays stored until it was delivered."""
        async with self._upload_lock:
            while self.memory:
                frame = self.memory[0]
                if not await self.send(self.measurement_uuid, frame, connection):
                    return
                self.memory.pop(0)
                self.sent.append(frame)
                self.notify_change()

    async def record(self, frame: bytes) -> bytes:
        """Store a new frame and upload it at once if the hub is subscribed."""
        self.memory.append(frame)
        if self.is_subscribed(self.measurement_uuid):
            await self.upload()
        return frame
