"""What a ``BLEDevice`` found on a virtual radio carries in ``details``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class VirtualDeviceDetails:
    """``BLEDevice.details`` of a virtual device: no BlueZ D-Bus path, so nothing asks D-Bus."""

    address: str
    radio_name: str
