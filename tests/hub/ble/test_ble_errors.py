from __future__ import annotations

import pytest
from bleak.exc import BleakDeviceNotFoundError, BleakError

from hub.ble.errors import (
    BluetoothUnavailable,
    BondingRefused,
    DeviceUnreachable,
    GattFailure,
    translate,
)


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (FileNotFoundError(2, "No such file"), BluetoothUnavailable, "no D-Bus system bus"),
        (BleakDeviceNotFoundError("AA", "not found"), DeviceUnreachable, "out of range or off"),
        (TimeoutError(), DeviceUnreachable, "did not answer in time"),
        (BleakError("Bluetooth adapter hci0 not found"), BluetoothUnavailable, "adapter not found"),
        (BleakError("Insufficient authentication"), BondingRefused, "refused pairing"),
        (BleakError("Characteristic 2a35 was not found!"), GattFailure, "connecting failed"),
        (EOFError(), DeviceUnreachable, "link lost"),
        (RuntimeError("boom"), GattFailure, "RuntimeError: boom"),
    ],
)
def test_bleak_and_os_errors_become_hub_errors_a_technician_can_act_on(exc, kind, words):
    error = translate(exc, address="C0:FF:EE:00:00:01", doing="connecting")
    assert type(error) is kind
    assert words in str(error)


def test_retryable_means_try_again_when_seen():
    assert translate(TimeoutError(), address="x", doing="y").retryable
    assert not translate(FileNotFoundError(), address="x", doing="y").retryable
