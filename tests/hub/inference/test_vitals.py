from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from hub.inference.vitals import Observations, gather
from wire.items import Component, Reading, RiskBand
from wire.news2 import Consciousness, Vitals, score

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _reading(
    n: int, kind: str, minutes_ago: float, **components: tuple[float | None, str]
) -> Reading:
    return Reading(
        id=UUID(int=n),
        device_id="dev",
        kind=kind,
        components={k: Component(value=v, unit=u) for k, (v, u) in components.items()},
        received_at=AT - timedelta(minutes=minutes_ago),
    )


def test_latest_of_each_vital_in_chart_units_with_the_readings_used():
    readings = [
        _reading(1, "blood_pressure", 30, systolic=(14.0, "kPa"), pulse=(80, "/min")),
        _reading(2, "blood_pressure", 5, systolic=(118, "mm[Hg]"), pulse=(76, "/min")),
        _reading(3, "spo2_spot_check", 2, spo2=(94, "%"), pulse=(112, "/min")),
        _reading(4, "body_temperature", 10, temperature=(101.3, "[degF]")),
        _reading(5, "body_temperature", 120, temperature=(36.0, "Cel")),  # outside the window
        _reading(6, "glucose", 1, glucose=(140, "mg/dL")),  # not a NEWS2 vital
    ]
    obs = Observations(respiration_rate=18, consciousness=Consciousness.ALERT, on_oxygen=False)
    result = gather(readings, at=AT, window=timedelta(hours=1), observations=obs)
    assert result.vitals == Vitals(
        respiration_rate=18,
        spo2=94,
        spo2_scale=1,
        on_oxygen=False,
        systolic=118,
        pulse=112,
        consciousness=Consciousness.ALERT,
        temperature=pytest.approx((101.3 - 32) * 5 / 9),
    )
    assert result.reading_ids == (UUID(int=2), UUID(int=3), UUID(int=4))
    news = score(result.vitals)
    assert news.complete
    # spo2 94 -> 1, pulse 112 -> 2, temperature 38.5 -> 1, systolic 118 -> 0, others 0
    assert (news.score, news.band) == (4, RiskBand.LOW)


def test_kpa_systolic_is_converted():
    result = gather(
        [_reading(1, "blood_pressure", 1, systolic=(12.0, "kPa"))], at=AT, window=timedelta(hours=1)
    )
    assert result.vitals.systolic == pytest.approx(90.0074, abs=1e-3)


def test_null_values_and_unknown_units_are_skipped_never_guessed():
    readings = [
        _reading(1, "spo2_spot_check", 1, spo2=(None, "%"), pulse=(70, "/min")),
        _reading(2, "body_temperature", 1, temperature=(310.0, "K")),
    ]
    result = gather(readings, at=AT, window=timedelta(hours=1))
    assert (result.vitals.spo2, result.vitals.temperature, result.vitals.pulse) == (None, None, 70)
    assert not score(result.vitals).complete
