"""A small bleak backend on bumble: the hub's real bleak code talks to virtual BLE devices.

Create one :class:`VirtualRadio` per event loop, put virtual peripherals on it, and pass its bound
backend classes to bleak::

    async with VirtualRadio() as radio:
        await radio.add(cuff)
        device = await BleakScanner.find_device_by_filter(..., backend=radio.scanner_backend)
        async with BleakClient(device, backend=radio.client_backend) as client:
            ...
"""

from hub.ble.bumble_backend.advertising import ParsedAdvertisement, parse_advertising_data
from hub.ble.bumble_backend.client import BumbleClient
from hub.ble.bumble_backend.details import VirtualDeviceDetails
from hub.ble.bumble_backend.radio import (
    CENTRAL_ADDRESS,
    DEFAULT_RSSI,
    LINK_LOST,
    REMOTE_POWER_OFF,
    REMOTE_TERMINATED,
    Attachable,
    VirtualRadio,
)
from hub.ble.bumble_backend.scanner import BumbleScanner

__all__ = [
    "CENTRAL_ADDRESS",
    "DEFAULT_RSSI",
    "LINK_LOST",
    "REMOTE_POWER_OFF",
    "REMOTE_TERMINATED",
    "Attachable",
    "BumbleClient",
    "BumbleScanner",
    "ParsedAdvertisement",
    "VirtualDeviceDetails",
    "VirtualRadio",
    "parse_advertising_data",
]
