from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from uuid import UUID

import pytest
from buffer_testkit import T0, new

from hub.buffer import Buffer, BufferConfig, BufferFull, InsertResult, Priority
from hub.buffer.capacity import InsertRate, hours_left
from hub.errors import ConfigError, HubError


@pytest.fixture
async def small(config, make_reading):
    """A buffer whose cap is three readings' worth, with a reserve of two more for alerts."""
    size = len(make_reading().model_dump_json())
    buf = Buffer.open(replace(config, max_unsent_bytes=3 * size - 1, alert_reserve_bytes=2 * size))
    yield buf
    await buf.aclose()


async def test_full_buffer_refuses_routine_readings_and_stores_nothing(small, make_reading):
    for _ in range(3):
        await small.insert(make_reading(), dedupe_key=f"k{_}")
    assert small.at_capacity

    with pytest.raises(BufferFull, match="buffer full") as info:
        await small.insert(make_reading(), dedupe_key="late")

    assert info.value.retryable is True
    assert isinstance(info.value, HubError)
    assert info.value.unsent_bytes == small.unsent_bytes
    assert info.value.max_unsent_bytes == small._config.max_unsent_bytes
    assert small.stats().total == 3
    assert small.stats().at_capacity is True


async def test_alerts_use_the_reserve_until_it_is_gone(small, make_reading) -> None:
    for i in range(3):
        await small.insert(make_reading(), dedupe_key=f"k{i}")

    for i in range(2):
        result = await small.insert(make_reading(), dedupe_key=f"a{i}", priority=Priority.ALERT)
        assert result is InsertResult.STORED
    with pytest.raises(BufferFull):
        await small.insert(make_reading(), dedupe_key="a3", priority=Priority.ALERT)
    assert small.stats().total == 5


async def test_a_write_mixing_alerts_and_routine_counts_as_routine(small, make_reading):
    for i in range(3):
        await small.insert(make_reading(), dedupe_key=f"k{i}")
    alert, routine = make_reading(), make_reading()
    with pytest.raises(BufferFull):
        await small.insert_many([new(alert, priority=Priority.ALERT), new(routine)])


async def test_duplicates_are_still_answered_when_full(small, make_reading) -> None:
    readings = [make_reading() for _ in range(3)]
    for r in readings:
        await small.insert(r, dedupe_key=f"k{r.id}")

    assert await small.insert(readings[0], dedupe_key="another-key") is InsertResult.DUPLICATE
    assert (
        await small.insert_many([new(r, key=f"k{r.id}") for r in readings])
        == [InsertResult.DUPLICATE] * 3
    )


async def test_delivery_frees_capacity(small, make_reading) -> None:
    readings = [make_reading() for _ in range(3)]
    for r in readings:
        await small.insert(r, dedupe_key=f"k{r.id}")
    batch = UUID(int=9)
    await small.assign_batch(batch, [readings[0].id])

    with pytest.raises(BufferFull):  # in flight is still unsent
        await small.insert(make_reading(), dedupe_key="x")
    await small.mark_delivered(batch, at=T0)

    assert not small.at_capacity
    assert await small.insert(make_reading(), dedupe_key="x") is InsertResult.STORED


async def test_the_backlog_is_counted_again_after_a_restart(config, make_reading) -> None:
    size = len(make_reading().model_dump_json())
    cfg = replace(config, max_unsent_bytes=2 * size, alert_reserve_bytes=0)
    buf = Buffer.open(cfg)
    await buf.insert_many([new(make_reading()), new(make_reading())])
    await buf.aclose()

    buf = Buffer.open(cfg)
    try:
        assert buf.at_capacity
        with pytest.raises(BufferFull):
            await buf.insert(make_reading(), dedupe_key="x")
    finally:
        await buf.aclose()


async def test_capacity_hours_left(buffer: Buffer, make_reading) -> None:
    assert buffer.capacity_hours_left() is None  # nothing arrived yet: no estimate
    await buffer.insert_many([new(make_reading()) for _ in range(10)])

    measured = buffer.capacity_hours_left()
    planned = buffer.capacity_hours_left(readings_per_hour=100)

    assert measured is not None
    assert measured > 0
    free = buffer._config.max_unsent_bytes - buffer.unsent_bytes
    assert planned == pytest.approx(free / (100 * buffer.unsent_bytes / 10))


def test_insert_rate_over_a_sliding_hour() -> None:
    rate = InsertRate()
    assert rate.bytes_per_hour(0.0) == 0.0
    assert rate.bytes_per_reading(0.0) is None

    rate.add(0.0, 600, 2)
    rate.add(30.0, 600, 2)
    assert rate.bytes_per_hour(60.0) == 1200 * 60  # 1200 B over one minute
    assert rate.bytes_per_reading(60.0) == 300

    rate.add(1800.0, 1200, 4)
    assert rate.bytes_per_hour(3600.0) == pytest.approx(2400.0)
    assert rate.bytes_per_hour(3600.0 + 1800.0 + 60.0) == 0.0  # everything aged out


def test_hours_left() -> None:
    assert hours_left(1000, 500.0) == 2.0
    assert hours_left(0, 500.0) == 0.0
    assert hours_left(-5, 500.0) == 0.0
    assert hours_left(1000, 0.0) is None


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        BufferConfig(path=Path("x"), synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_unsent_bytes"):
        BufferConfig(path=Path("x"), max_unsent_bytes=0)
    with pytest.raises(ConfigError, match="max_batch"):
        BufferConfig(path=Path("x"), max_batch=0)
