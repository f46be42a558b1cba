from __future__ import annotations

import sqlite3
from datetime import timedelta
from uuid import UUID

import pytest
from buffer_testkit import T0

from hub.buffer import (
    BondState,
    Buffer,
    EncounterAlreadyEnded,
    EncounterOverlap,
    InvalidEncounter,
    PatientMatch,
    UnknownDevice,
    UnknownEncounter,
)

CUFF = "AA:BB:CC:DD:EE:01"
H = timedelta(hours=1)


async def test_encounters_resolve_the_patient_by_time(buffer) -> None:
    morning = await buffer.start_encounter(CUFF, "pat-1", started_at=T0, ended_at=T0 + 2 * H)
    afternoon = await buffer.start_encounter(CUFF, "pat-2", started_at=T0 + 3 * H)

    assert buffer.patient_for(CUFF, T0 - H) is None
    assert buffer.patient_for(CUFF, T0) == PatientMatch("pat-1", morning.id)
    patient, encounter = buffer.patient_for(CUFF, T0 + H)
    assert (patient, encounter) == ("pat-1", morning.id)
    assert buffer.patient_for(CUFF, T0 + 2 * H) is None  # the end is exclusive
    assert buffer.patient_for(CUFF, T0 + 30 * H) == ("pat-2", afternoon.id)
    assert buffer.patient_for("AA:BB:CC:DD:EE:99", T0 + H) is None
    assert buffer.stats().open_encounters == 1


async def test_overlapping_encounters_are_refused(buffer) -> None:
    first = await buffer.start_encounter(CUFF, "pat-1", started_at=T0, ended_at=T0 + 2 * H)

    for start, end in [(T0 + H, None), (T0 - H, T0 + H), (T0 - H, None), (T0, T0 + 2 * H)]:
        with pytest.raises(EncounterOverlap, match="already bound") as info:
            await buffer.start_encounter(CUFF, "pat-2", started_at=start, ended_at=end)
        assert info.value.existing_id == str(first.id)
        assert info.value.device_address == CUFF

    # Back to back is fine, and so is another device at the same time.
    await buffer.start_encounter(CUFF, "pat-2", started_at=T0 + 2 * H, ended_at=T0 + 3 * H)
    await buffer.start_encounter("AA:BB:CC:DD:EE:02", "pat-2", started_at=T0)


async def test_an_open_encounter_blocks_later_ones_until_ended(buffer) -> None:
    enc = await buffer.start_encounter(CUFF, "pat-1", started_at=T0)
    with pytest.raises(EncounterOverlap):
        await buffer.start_encounter(CUFF, "pat-2", started_at=T0 + 5 * H)

    ended = await buffer.end_encounter(enc.id, ended_at=T0 + H)

    assert ended.ended_at == T0 + H
    assert buffer.encounter(enc.id) == ended
    await buffer.start_encounter(CUFF, "pat-2", started_at=T0 + 5 * H)


async def test_encounter_errors(buffer) -> None:
    with pytest.raises(InvalidEncounter):
        await buffer.start_encounter(CUFF, "pat-1", started_at=T0, ended_at=T0)
    enc = await buffer.start_encounter(CUFF, "pat-1", started_at=T0)
    with pytest.raises(InvalidEncounter):
        await buffer.end_encounter(enc.id, ended_at=T0 - H)
    with pytest.raises(UnknownEncounter):
        await buffer.end_encounter(UUID(int=1), ended_at=T0 + H)
    await buffer.end_encounter(enc.id, ended_at=T0 + H)
    with pytest.raises(EncounterAlreadyEnded):
        await buffer.end_encounter(enc.id, ended_at=T0 + 2 * H)


async def test_the_schema_refuses_overlaps_even_without_the_check(buffer) -> None:
    await buffer.start_encounter(CUFF, "pat-1", started_at=T0)
    with sqlite3.connect(buffer._config.path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO encounters (id, device_address, patient_id, started_at, ended_at)"
            " VALUES ('x', ?, 'pat-2', '2026-05-02T00:00:00.000000+00:00', NULL)",
            (CUFF,),
        )


async def test_devices_are_registered_and_updated(buffer) -> None:
    seen = await buffer.device_seen(CUFF, profile="omron_bp", name="BP7000", at=T0)
    assert seen.first_seen == seen.last_seen == T0
    assert seen.bond_state is BondState.UNKNOWN
    assert (seen.last_racp_seq, seen.clock_offset_s, seen.battery_pct) == (None, None, None)

    again = await buffer.device_seen(CUFF, profile="omron_bp", at=T0 + H)
    assert (again.first_seen, again.last_seen, again.name) == (T0, T0 + H, "BP7000")

    updated = await buffer.update_device(
        CUFF, bond_state=BondState.BONDED, last_racp_seq=42, clock_offset_s=-3.5, battery_pct=80
    )
    assert updated.bond_state is BondState.BONDED
    assert (updated.last_racp_seq, updated.clock_offset_s, updated.battery_pct) == (42, -3.5, 80)

    cleared = await buffer.update_device(CUFF, clock_offset_s=None)
    assert cleared.clock_offset_s is None
    assert cleared.last_racp_seq == 42  # untouched

    await buffer.device_seen("AA:BB:CC:DD:EE:02", profile="nipro_glucose", at=T0 + 2 * H)
    assert [d.address for d in buffer.devices()] == ["AA:BB:CC:DD:EE:02", CUFF]
    assert buffer.device(CUFF) == cleared
    assert buffer.device("nope") is None
    assert buffer.stats().devices == 2


async def test_unknown_device_update_is_refused(buffer) -> None:
    with pytest.raises(UnknownDevice):
        await buffer.update_device(CUFF, battery_pct=50)


def test_sync_device_seen(config) -> None:
    with Buffer.open(config) as buf:
        device = buf.sync.device_seen(CUFF, profile="omron_bp", at=T0)
    assert device.address == CUFF
