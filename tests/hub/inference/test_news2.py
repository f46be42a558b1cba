"""NEWS2 against the chart of the Royal College of Physicians (2017), edge by edge."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from hub.inference.cli import triage_app
from wire.items import RiskBand
from wire.news2 import Consciousness, InvalidVital, News2, Vitals, score

ALL_NORMAL = Vitals(
    respiration_rate=16,
    spo2=98,
    spo2_scale=1,
    on_oxygen=False,
    systolic=125,
    pulse=72,
    consciousness=Consciousness.ALERT,
    temperature=36.8,
)


def _one(field: str, value, **extra) -> int:
    vitals = Vitals(
        **(
            {k: getattr(ALL_NORMAL, k) for k in Vitals.__dataclass_fields__}
            | {field: value}
            | extra
        )
    )
    result = score(vitals)
    return result.subscores[{"on_oxygen": "air_or_oxygen"}.get(field, field)]


@pytest.mark.parametrize(
    ("value", "points"),
    [(0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3)],
)
def test_respiration_rate(value, points):
    assert _one("respiration_rate", value) == points


@pytest.mark.parametrize(
    ("value", "points"), [(85, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
)
def test_spo2_scale_1(value, points):
    assert _one("spo2", value) == points


@pytest.mark.parametrize(
    ("value", "on_oxygen", "points"),
    [
        (83, False, 3), (84, False, 2), (85, False, 2), (86, False, 1), (87, False, 1),
        (88, False, 0), (92, False, 0), (93, False, 0), (97, False, 0), (100, False, 0),
        (88, True, 0), (92, True, 0), (93, True, 1), (94, True, 1), (95, True, 2), (96, True, 2),
        (97, True, 3), (100, True, 3),
    ],
)  # fmt: skip
def test_spo2_scale_2_with_the_air_oxygen_rule(value, on_oxygen, points):
    assert _one("spo2", value, spo2_scale=2, on_oxygen=on_oxygen) == points


def test_supplemental_oxygen_scores_two():
    assert _one("on_oxygen", value=True) == 2
    assert _one("on_oxygen", value=False) == 0


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (70, 3),
        (90, 3),
        (91, 2),
        (100, 2),
        (101, 1),
        (110, 1),
        (111, 0),
        (219, 0),
        (220, 3),
        (250, 3),
    ],
)
def test_systolic(value, points):
    assert _one("systolic", value) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (30, 3),
        (40, 3),
        (41, 1),
        (50, 1),
        (51, 0),
        (90, 0),
        (91, 1),
        (110, 1),
        (111, 2),
        (130, 2),
        (131, 3),
    ],
)
def test_pulse(value, points):
    assert _one("pulse", value) == points


@pytest.mark.parametrize(("value", "points"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_acvpu(value, points):
    assert _one("consciousness", Consciousness(value)) == points


@pytest.mark.parametrize(
    ("value", "points"),
    [
        (34.0, 3),
        (35.0, 3),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.1, 1),
        (39.0, 1),
        (39.1, 2),
        (41.0, 2),
    ],
)
def test_temperature(value, points):
    assert _one("temperature", value) == points


def test_values_are_rounded_as_the_chart_is_written():
    assert _one("temperature", 38.05) == 1  # 38.1
    assert _one("temperature", 38.04) == 0  # 38.0
    assert _one("pulse", 90.5) == 1  # 91
    assert _one("respiration_rate", 20.4) == 0  # 20


def test_the_issue_example_is_high():
    vitals = Vitals(22, 93, 1, on_oxygen=True, systolic=105, pulse=115, temperature=38.5)
    result = score(dataclasses.replace(vitals, consciousness=Consciousness.ALERT))
    assert result == News2(
        score=10,
        band=RiskBand.HIGH,
        subscores={
            "respiration_rate": 2, "spo2": 2, "air_or_oxygen": 2, "systolic": 1, "pulse": 2,
            "consciousness": 0, "temperature": 1,
        },
        complete=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "total", "expected"),
    [
        ({}, 0, RiskBand.LOW),
        ({"pulse": 95, "temperature": 38.5}, 2, RiskBand.LOW),
        ({"consciousness": Consciousness.VOICE}, 3, RiskBand.LOW_MEDIUM),  # a single red score
        ({"respiration_rate": 22, "pulse": 95, "temperature": 38.5}, 4, RiskBand.LOW),
        ({"respiration_rate": 22, "pulse": 115, "temperature": 38.5}, 5, RiskBand.MEDIUM),
        (
            {"respiration_rate": 22, "pulse": 115, "spo2": 95, "temperature": 38.5},
            6,
            RiskBand.MEDIUM,
        ),
        ({"respiration_rate": 25, "pulse": 115, "spo2": 95, "temperature": 38.5}, 7, RiskBand.HIGH),
    ],
)
def test_bands(changes, total, expected):
    vitals = Vitals(**({k: getattr(ALL_NORMAL, k) for k in Vitals.__dataclass_fields__} | changes))
    result = score(vitals)
    assert (result.score, result.band) == (total, expected)


def test_missing_parameters_are_never_a_complete_score():
    result = score(Vitals(pulse=135, systolic=85))
    assert result.score == 6
    assert not result.complete
    assert result.missing == (
        "respiration_rate",
        "spo2",
        "air_or_oxygen",
        "consciousness",
        "temperature",
    )


@pytest.mark.parametrize(
    ("vitals", "reason"),
    [
        (Vitals(pulse=400), "pulse"),
        (Vitals(spo2=101), "spo2"),
        (Vitals(temperature=47.0), "temperature"),
        (Vitals(respiration_rate=-1), "respiration_rate"),
        (Vitals(spo2=90, spo2_scale=2), "on oxygen"),
        (Vitals(spo2_scale=3), "scale"),
    ],
)
def test_impossible_or_contradictory_inputs_are_refused(vitals, reason):
    with pytest.raises(InvalidVital, match=reason):
        score(vitals)


@given(
    rr=st.none() | st.floats(0, 80),
    spo2=st.none() | st.floats(30, 100),
    oxygen=st.none() | st.booleans(),
    sbp=st.none() | st.floats(30, 300),
    hr=st.none() | st.floats(15, 300),
    temp=st.none() | st.floats(25, 45),
)
def test_every_plausible_input_gives_a_bounded_consistent_score(rr, spo2, oxygen, sbp, hr, temp):
    result = score(Vitals(rr, spo2, 1, oxygen, sbp, hr, None, temp))
    assert 0 <= result.score <= 20
    assert result.score == sum(result.subscores.values())
    assert all(0 <= s <= 3 for s in result.subscores.values())
    assert not result.complete  # consciousness is missing


def test_cli_prints_the_json_and_refuses_bad_input():
    runner = CliRunner()
    ok = runner.invoke(
        triage_app,
        ["news2", "--resp-rate", "22", "--spo2", "93", "--scale", "1", "--oxygen", "--systolic",
         "105", "--pulse", "115", "--consciousness", "A", "--temp", "38.5"],
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.stdout)
    assert (out["score"], out["band"], out["complete"], out["missing"]) == (10, "high", True, [])
    bad = runner.invoke(triage_app, ["news2", "--pulse", "500"])
    assert bad.exit_code == 2
    assert "pulse 500.0 is outside" in bad.stderr
