"""bleak's scanner interface on a virtual radio's central adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner

from hub.ble.bumble_backend.advertising import parse_advertising_data
from hub.ble.bumble_backend.details import VirtualDeviceDetails

if TYPE_CHECKING:
    from collections.abc import Callable

    from bumble.device import Advertisement

    from hub.ble.bumble_backend.radio import VirtualRadio


class BumbleScanner(BaseBleakScanner):
    """A bleak scanner backend; use the subclass bound to a radio, ``radio.scanner_backend``."""

    radio: ClassVar[VirtualRadio]

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: Any,  # noqa: ANN401 - bleak passes platform arguments (bluez=, cb=) we ignore
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        del scanning_mode, kwargs  # the virtual air carries the whole advertisement either way
        self._remove_listener: Callable[[], None] | None = None

    async def start(self) -> None:
        """Start receiving advertisements (clears ``seen_devices``, as bleak requires)."""
        if self._remove_listener is not None:
            return
        self.seen_devices = {}
        self._remove_listener = self.radio.add_advertisement_listener(self._on_advertisement)
        try:
            await self.radio.acquire_scanning()
        except BaseException:
            self._remove_listener()
            self._remove_listener = None
            raise

    async def stop(self) -> None:
        """Stop receiving advertisements."""
        if self._remove_listener is None:
            return
        self._remove_listener()
        self._remove_listener = None
        await self.radio.release_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        parsed = parse_advertising_data(advertisement.data_bytes)
        if not self.is_allowed_uuid(list(parsed.service_uuids)):
            return
        address = advertisement.address.to_string(with_type_qualifier=False)
        data = AdvertisementData(
            local_name=parsed.local_name,
            manufacturer_data=dict(parsed.manufacturer_data),
            service_data=dict(parsed.service_data),
            service_uuids=list(parsed.service_uuids),
            tx_power=parsed.tx_power,
            rssi=advertisement.rssi,
            platform_data=(advertisement,),
        )
        device = self.create_or_update_device(
            address,
            address,
            parsed.local_name,
            VirtualDeviceDetails(address=address, radio_name=self.radio.name),
            data,
        )
        self.call_detection_callbacks(device, data)
