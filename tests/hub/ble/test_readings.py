from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from hub.ble.parsers import parse
from hub.ble.readings import dedupe_key, measured_at, to_reading
from wire.items import Component, Reading

RECEIVED = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)
ENCOUNTER = UUID("019ac99f-0000-7000-8000-000000000001")
BP1 = bytes.fromhex("1E8A00580078000000041114293B3C00012700")
T1 = bytes.fromhex("06B00E00FEDC070C050B321B04")
G1 = bytes.fromhex("1B0100E307021B0B0A1EFBFF1E00120501")


def _convert(raw, char, **kw):
    args = {
        "address": "c0:ff:ee:00:00:02",
        "raw": raw,
        "received_at": RECEIVED,
        "clock_offset_s": None,
        "device_tz": UTC,
        "patient": ("pat-42", ENCOUNTER),
        "rand": bytes(10),
    } | kw
    return to_reading(parse(char, raw), **args)


def test_thermometer_reading_whole_value():
    converted = _convert(T1, "2a1c", clock_offset_s=120.0)
    assert converted is not None
    assert converted.reading == Reading(
        id=converted.reading.id,
        device_id="C0:FF:EE:00:00:02",
        kind="body_temperature",
        components={"temperature": Component(value=37.6, unit="Cel")},
        device_time=datetime(2012, 12, 5, 11, 50, 27),
        measured_at=datetime(2012, 12, 5, 11, 48, 27, tzinfo=UTC),
        received_at=RECEIVED,
        quality=(),
        patient_id="pat-42",
        encounter_id=ENCOUNTER,
        device_seq=None,
    )
    assert converted.reading.id.version == 7
    assert converted.dedupe_key.startswith("C0:FF:EE:00:00:02|2a1c|t:2012-12-05T11:50:27|h:")


def test_device_time_is_read_in_the_devices_time_zone():
    at = measured_at(
        datetime(2026, 6, 1, 12, 0), clock_offset_s=-30, device_tz=ZoneInfo("Africa/Nairobi")
    )
    assert at == datetime(2026, 6, 1, 9, 0, 30, tzinfo=UTC)


def test_glucose_record_is_keyed_by_its_sequence():
    converted = _convert(G1, "2a18")
    assert converted is not None
    assert converted.reading.device_seq == 1
    assert converted.dedupe_key == "C0:FF:EE:00:00:02|2a18|seq:1"


def test_unknown_device_time_gives_a_per_receipt_key_and_no_measured_at():
    converted = _convert(BP1, "2a35")  # BP1 has year 0: device time unknown
    assert converted is not None
    assert converted.reading.measured_at is None
    later = dedupe_key(
        parse("2a35", BP1), address="x", raw=BP1, received_at=RECEIVED + timedelta(seconds=1)
    )
    assert converted.dedupe_key != later


def test_same_record_downloaded_twice_has_the_same_key():
    first = _convert(T1, "2a1c", received_at=RECEIVED)
    again = _convert(T1, "2a1c", received_at=RECEIVED + timedelta(hours=3), rand=b"\1" * 10)
    assert first is not None
    assert again is not None
    assert first.dedupe_key == again.dedupe_key
    assert first.reading.id != again.reading.id


@pytest.mark.parametrize(
    ("char", "hex_bytes"),
    [
        ("2a36", "1E0400000000000000041114293B3C00012700"),  # intermediate cuff pressure
        ("2a9d", "01FFFF"),  # weight: measurement unsuccessful
        ("2a5e", "10FF07FF07"),  # SpO2 NaN
    ],
)
def test_non_patient_measurements_never_become_readings(char, hex_bytes):
    assert _convert(bytes.fromhex(hex_bytes), char) is None


def test_rr_intervals_are_not_components():
    raw = bytes.fromhex("10" + "48" + "0004" + "1004")  # HR 72 with two RR intervals
    converted = _convert(raw, "2a37")
    assert converted is not None
    assert set(converted.reading.components) == {"heart_rate"}


def test_no_patient_without_an_encounter():
    converted = _convert(T1, "2a1c", patient=None)
    assert converted is not None
    assert (converted.reading.patient_id, converted.reading.encounter_id) == (None, None)
