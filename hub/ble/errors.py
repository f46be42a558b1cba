"""Errors of the BLE central, phrased for a technician; bleak and BlueZ errors stop here."""

from __future__ import annotations

import asyncio

from bleak.exc import BleakDeviceNotFoundError, BleakError

from hub.errors import HubError, RetryableHubError


class BleError(HubError):
    """Base of the central's errors."""


class BluetoothUnavailable(BleError):
    """No usable Bluetooth adapter or BlueZ on this machine: nothing will work until fixed."""


class DeviceUnreachable(BleError, RetryableHubError):
    """The device did not answer, went away, or the link dropped: try again when it is seen."""


class BondingRefused(BleError, RetryableHubError):
    """The device requires pairing and refused it (not in pairing mode, or keys were lost)."""


class GattFailure(BleError, RetryableHubError):
    """A GATT request failed (read, write, subscribe or a record download)."""


def translate(exc: BaseException, *, address: str, doing: str) -> BleError:  # noqa: PLR0911 - a flat table of cases
    """The hub error for a bleak/BlueZ/asyncio failure while `doing` something with `address`."""
    if isinstance(exc, BleError):
        return exc
    if isinstance(exc, FileNotFoundError | PermissionError):
        # bleak on Linux raises a bare FileNotFoundError when the D-Bus system socket is missing.
        return BluetoothUnavailable(
            "Bluetooth is not available: no D-Bus system bus (is the 'dbus' and 'bluetooth' "
            f"service running, and is there an adapter? `bluetoothctl list`) [{exc}]"
        )
    if isinstance(exc, BleakDeviceNotFoundError):
        return DeviceUnreachable(f"{address} was not found while {doing}: out of range or off?")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return DeviceUnreachable(f"{address} did not answer in time while {doing}")
    if isinstance(exc, BleakError):
        text = str(exc)
        if "adapter" in text.lower() and "not found" in text.lower():
            return BluetoothUnavailable(f"Bluetooth adapter not found: {text}")
        if "auth" in text.lower() or "pair" in text.lower() or "encrypt" in text.lower():
            return BondingRefused(f"{address} refused pairing or encryption while {doing}: {text}")
        return GattFailure(f"{address}: {doing} failed: {text}")
    if isinstance(exc, EOFError | ConnectionError):
        return DeviceUnreachable(f"{address}: link lost while {doing}")
    return GattFailure(f"{address}: {doing} failed: {type(exc).__name__}: {exc}")
