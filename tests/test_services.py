"""The test services themselves: a broker a test owns can be killed and restarted in place."""

from __future__ import annotations

import socket

import pytest
from services import wait_port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_own_mosquitto_can_be_killed_and_restarted_on_the_same_port(mosquitto):
    assert _accepts(mosquitto.port)
    mosquitto.kill()
    assert not _accepts(mosquitto.port)
    mosquitto.start()
    assert _accepts(mosquitto.port)
    mosquitto.restart()
    assert _accepts(mosquitto.port)
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"


def test_wait_port_times_out_on_a_closed_port():
    with pytest.raises(TimeoutError):
        wait_port(1, timeout=0.2)
