"""Triage inputs shared by the hub and the cloud: reading components and agents' observations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wire.news2 import Consciousness, Vitals
from wire.triage_inputs import KPA_TO_MMHG, chart_value, observations

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("kind", "name", "value", "unit", "expected"),
    [
        ("blood_pressure", "systolic", 120, "mm[Hg]", ("systolic", 120.0)),
        ("blood_pressure", "systolic", 16.0, "kPa", ("systolic", 16.0 * KPA_TO_MMHG)),
        ("blood_pressure", "pulse", 71, "/min", ("pulse", 71.0)),
        ("heart_rate", "heart_rate", 88, "/min", ("pulse", 88.0)),
        ("spo2_continuous", "spo2", 93, "%", ("spo2", 93.0)),
        ("body_temperature", "temperature", 98.6, "[degF]", ("temperature", pytest.approx(37.0))),
        ("body_temperature", "temperature", 37.2, "Cel", ("temperature", 37.2)),
    ],
)
def test_vital_components_are_converted_to_the_charts_units(kind, name, value, unit, expected):
    assert chart_value(kind, name, value, unit) == expected


@pytest.mark.parametrize(
    ("kind", "name", "value", "unit"),
    [
        ("blood_pressure", "diastolic", 80, "mm[Hg]"),  # not a NEWS2 vital
        ("body_weight", "weight", 70, "kg"),
        ("body_temperature", "temperature", 37, "K"),  # a unit NEWS2 is not charted in
        ("blood_pressure", "systolic", True, "mm[Hg]"),  # not a number
        ("blood_pressure", "systolic", "120", "mm[Hg]"),
    ],
)
def test_anything_else_is_not_a_vital(kind, name, value, unit):
    assert chart_value(kind, name, value, unit) is None


def test_observations_within_the_window_age_from_any_earlier_record_latest_scale_wins():
    records = [
        (AT - 3 * HOUR, {"patient": {"age_years": 71}}),  # outside the window: age still counts
        (AT - 2 * HOUR, {"observations": {"resp_rate": 30}}),  # outside: ignored
        (AT - 30 * timedelta(minutes=1), {"observations": {"resp_rate": 22, "spo2_scale": 2}}),
        (AT - 10 * timedelta(minutes=1), {"observations": {"consciousness": "v"}}),
        (AT - 5 * timedelta(minutes=1), {"observations": {"on_oxygen": True, "spo2_scale": 1}}),
        (AT + timedelta(minutes=1), {"observations": {"resp_rate": 40}}),  # after `at`: ignored
    ]
    seen = observations(records, at=AT, window=HOUR)
    assert seen.age_years == 71.0
    assert seen.spo2_scale == 1
    assert [entry.vitals for entry in seen.series] == [
        Vitals(respiration_rate=22.0),
        Vitals(consciousness=Consciousness.VOICE),
        Vitals(on_oxygen=True),
    ]
    assert seen.bad == ()


def test_values_of_the_wrong_type_are_ignored_and_reported():
    records = [
        (AT, {"patient": {"age_years": -3}}),
        (
            AT,
            {
                "observations": {
                    "resp_rate": "22",
                    "consciousness": "Z",
                    "on_oxygen": "yes",
                    "spo2_scale": True,
                }
            },
        ),
        (AT, {"observations": "not an object"}),
    ]
    seen = observations(records, at=AT, window=HOUR)
    assert (seen.series, seen.spo2_scale, seen.age_years) == ((), 1, None)
    assert seen.bad == (
        (0, "patient.age_years"),
        (1, "observations.resp_rate"),
        (1, "observations.consciousness"),
        (1, "observations.on_oxygen"),
        (1, "observations.spo2_scale"),
    )
