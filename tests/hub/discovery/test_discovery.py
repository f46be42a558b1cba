"""Zeroconf between processes on 127.0.0.1: the phone finds the hub, the hub lists the phone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.discovery import Discovery, HubRecord
from hub.discovery.records import RecordError, parse_hub, parse_phone

PEER = Path(__file__).with_name("phone_peer.py")
FINGERPRINT = "ab" * 32


def test_hub_record_round_trip():
    record = HubRecord("hub-ke-0042", 8443, FINGERPRINT)
    props = {k.encode(): v.encode() for k, v in record.txt().items()}
    assert parse_hub(record.instance(), 8443, props) == record


@pytest.mark.parametrize(
    ("props", "port", "reason"),
    [
        ({b"api": b"1", b"tls": FINGERPRINT.encode()}, 8443, "no hub_id"),
        ({b"hub_id": b"Hub/1", b"tls": FINGERPRINT.encode()}, 8443, "invalid hub id"),
        ({b"hub_id": b"hub-1", b"tls": b"short"}, 8443, "fingerprint"),
        ({b"hub_id": b"hub-1", b"tls": FINGERPRINT.encode()}, None, "port"),
    ],
)
def test_bad_hub_records_are_refused(props, port, reason):
    with pytest.raises(RecordError, match=reason):
        parse_hub("x._tecsa-hub._tcp.local.", port, props)


def test_phone_values_that_are_not_safe_text_are_dropped():
    phone = parse_phone(
        "p._tecsa-agent._tcp.local.", {b"agent": b"agent 17\x00", b"app": b"1.2", b"x": None}
    )
    assert (phone.agent, phone.app) == (None, "1.2")
    with pytest.raises(RecordError):
        parse_phone("p._other._tcp.local.", {})


@given(
    st.dictionaries(st.binary(max_size=300), st.none() | st.binary(max_size=300), max_size=6),
    st.none() | st.integers(-5, 70000),
)
def test_any_properties_parse_or_raise_record_error(props, port):
    for attempt in (
        lambda: parse_hub("h._tecsa-hub._tcp.local.", port, props),
        lambda: parse_phone("p._tecsa-agent._tcp.local.", props),
    ):
        with contextlib.suppress(RecordError):
            attempt()


async def _until(hub: Discovery, predicate, timeout=15.0):
    async def wait():
        while not predicate():
            hub.changed.clear()
            await hub.changed.wait()

    await asyncio.wait_for(wait(), timeout)


async def test_phone_and_hub_find_each_other_across_processes():
    hub = Discovery(HubRecord("hub-disc-01", 8443, FINGERPRINT), interfaces=["127.0.0.1"])
    await hub.start()
    peer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PEER),
        "agent-17",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(peer.stdout.readline(), 15)
        assert json.loads(line)["hub"] == {
            "hub_id": "hub-disc-01",
            "api": "1",
            "tls": FINGERPRINT,
            "port": 8443,
        }
        await _until(hub, lambda: any(p.present for p in hub.phones))
        (phone,) = hub.phones
        assert (phone.agent, phone.app, phone.present) == ("agent-17", "ref-1.0", True)
        peer.stdin.close()  # the phone leaves: goodbye packets
        await _until(hub, lambda: not hub.phones[0].present)
        assert hub.phones[0].last_seen >= phone.last_seen
    finally:
        if peer.returncode is None:
            peer.kill()
        await peer.wait()
        await hub.close()
