"""The triage model's features: the same row for the same vitals, missing values as documented."""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.items import RiskBand
from wire.news2 import Consciousness, InvalidVital, Vitals, score
from wire.triage_features import (
    BAND_ORDER,
    CLIP,
    FEATURE_NAMES,
    HASH_TAG,
    N_FEATURES,
    REFERENCE,
    FeatureSpecMismatch,
    Normalisation,
    TimedVitals,
    band_of_probability,
    extract,
    higher_band,
    input_hash,
    latest_vitals,
    normalise,
)

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def _at(hours: float, **vitals) -> TimedVitals:
    return TimedVitals(T0 + timedelta(hours=hours), Vitals(**vitals))


def _feature(row, name):
    return row[FEATURE_NAMES.index(name)]


SERIES = (
    _at(0, respiration_rate=18, spo2=96, systolic=130, pulse=88, temperature=37.2, on_oxygen=False),
    _at(1, respiration_rate=22, spo2=94, pulse=101, consciousness=Consciousness.ALERT),
    _at(2, respiration_rate=25, systolic=104, temperature=38.4),
)


def test_latest_value_of_each_vital_and_trends_over_the_window():
    row = extract(SERIES, age_years=71)
    assert _feature(row, "respiration_rate") == 25
    assert _feature(row, "spo2") == 94
    assert _feature(row, "systolic") == 104
    assert _feature(row, "pulse") == 101
    assert _feature(row, "temperature") == 38.4
    assert _feature(row, "trend_respiration_rate") == 7
    assert _feature(row, "trend_spo2") == -2
    assert _feature(row, "trend_systolic") == -26
    assert _feature(row, "trend_pulse") == 13
    assert _feature(row, "trend_temperature") == pytest.approx(1.2)
    assert _feature(row, "age_years") == 71
    assert _feature(row, "on_oxygen") == 0
    assert _feature(row, "not_alert") == 0
    latest = latest_vitals(SERIES)
    assert _feature(row, "news2_score") == score(latest).score == 3 + 1 + 0 + 1 + 1 + 0 + 1
    assert all(_feature(row, n) == 0 for n in FEATURE_NAMES if n.startswith("missing_"))
    assert len(row) == N_FEATURES


@settings(max_examples=50)
@given(st.permutations(SERIES), st.one_of(st.none(), st.floats(0, 110)))
def test_same_vitals_give_the_same_row_in_any_order(order, age):
    assert extract(order, age_years=age) == extract(SERIES, age_years=age)
    assert latest_vitals(order) == latest_vitals(SERIES)


def test_simultaneous_sets_are_ordered_by_content_not_by_arrival():
    a = _at(0, pulse=80)
    b = _at(0, pulse=120)
    assert extract([a, b], age_years=None) == extract([b, a], age_years=None)


def test_missing_values_take_the_reference_value_and_set_their_indicator():
    row = extract([_at(0, pulse=88)], age_years=None)
    for name in ("respiration_rate", "spo2", "systolic", "temperature"):
        assert _feature(row, name) == REFERENCE[name]
        assert _feature(row, f"missing_{name}") == 1
    assert _feature(row, "missing_pulse") == 0
    assert _feature(row, "age_years") == REFERENCE["age_years"]
    assert _feature(row, "missing_age") == 1
    assert _feature(row, "on_oxygen") == 0
    assert _feature(row, "missing_on_oxygen") == 1
    assert _feature(row, "not_alert") == 0
    assert _feature(row, "missing_consciousness") == 1
    assert all(_feature(row, f"trend_{n}") == 0 for n in ("pulse", "spo2"))
    # NEWS2 of what was measured only: a lower bound, never guessed upwards or downwards.
    assert _feature(row, "news2_score") == 0


def test_an_empty_window_is_all_missing():
    row = extract([], age_years=None)
    assert all(_feature(row, n) == 1 for n in FEATURE_NAMES if n.startswith("missing_"))


def test_not_alert_and_oxygen_and_scale_2_flags():
    row = extract(
        [_at(0, spo2=89, spo2_scale=2, on_oxygen=True, consciousness=Consciousness.VOICE)],
        age_years=80,
    )
    assert _feature(row, "not_alert") == 1
    assert _feature(row, "on_oxygen") == 1
    assert _feature(row, "spo2_scale2") == 1


def test_an_impossible_value_is_refused_as_news2_refuses_it():
    with pytest.raises(InvalidVital, match="pulse"):
        extract([_at(0, pulse=400)], age_years=None)


def test_normalise_standardises_and_clips():
    spec = Normalisation(tuple([10.0] * N_FEATURES), tuple([2.0] * N_FEATURES))
    row = [10.0, 12.0, 1000.0, -1000.0] + [10.0] * (N_FEATURES - 4)
    out = normalise(row, spec)
    assert out[:4] == (0.0, 1.0, CLIP, -CLIP)
    with pytest.raises(FeatureSpecMismatch):
        normalise(row[:-1], spec)
    with pytest.raises(FeatureSpecMismatch):
        Normalisation((0.0,), (1.0,))
    with pytest.raises(FeatureSpecMismatch):
        Normalisation(tuple([0.0] * N_FEATURES), tuple([0.0] * N_FEATURES))


def test_input_hash_is_sha256_of_the_tagged_float64_row():
    row = extract(SERIES, age_years=71)
    packed = HASH_TAG + struct.pack(f"<{N_FEATURES}d", *row)
    assert input_hash(row) == "sha256:" + hashlib.sha256(packed).hexdigest()
    assert HASH_TAG == b"tecsa-triage-features/1\n"
    assert input_hash(row) != input_hash(extract(SERIES, age_years=72))
    with pytest.raises(FeatureSpecMismatch):
        input_hash(row[:-1])


THRESHOLDS = {"low": 0.0, "medium": 0.3, "high": 0.5}


@pytest.mark.parametrize(
    ("p", "band"),
    [
        (0.0, "low"),
        (0.2999, "low"),
        (0.3, "medium"),
        (0.4999, "medium"),
        (0.5, "high"),
        (1, "high"),
    ],
)
def test_band_of_probability_uses_each_bands_lowest_probability(p, band):
    assert band_of_probability(p, THRESHOLDS) is RiskBand(band)


@given(st.sampled_from(BAND_ORDER), st.sampled_from(BAND_ORDER))
def test_higher_band_is_the_more_urgent(a, b):
    top = higher_band(a, b)
    assert top in {a, b}
    assert BAND_ORDER.index(top) == max(BAND_ORDER.index(a), BAND_ORDER.index(b))
