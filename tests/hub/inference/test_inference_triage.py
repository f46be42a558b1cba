"""Triage with the committed int8 model: the escalation-only rule and what every result records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.models.cohort import generate
from hub.inference.runtime import load_model
from hub.inference.triage import NEWS2_ONLY, Case, combine, triage
from wire.items import RiskBand
from wire.news2 import Consciousness, News2, Vitals, band, score
from wire.triage_features import BAND_ORDER, TimedVitals, extract, input_hash, latest_vitals

MODEL_DIR = Path(__file__).parents[3] / "cloud" / "models" / "artifacts" / "triage-v1"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL_DIR)


@pytest.fixture(scope="module")
def cohort_cases():
    people = generate(3000, seed=777)  # held out: neither the training nor the card's seed
    return [Case(p.series, p.age_years, f"p{i}") for i, p in enumerate(people)]


def _ids(n):
    return [UUID(int=i + 1) for i in range(n)]


subscores = st.dictionaries(
    st.sampled_from(["respiration_rate", "spo2", "air_or_oxygen", "systolic", "pulse"]),
    st.integers(0, 3),
)


@given(subscores, st.sampled_from(BAND_ORDER) | st.none())
def test_the_final_band_is_the_higher_never_lower_than_news2(parts, model_band):
    total = sum(parts.values())
    news2 = News2(total, band(total, parts), parts, complete=False)
    final = combine(news2, model_band)
    assert BAND_ORDER.index(final) >= BAND_ORDER.index(news2.band)
    if model_band is not None:
        assert BAND_ORDER.index(final) >= BAND_ORDER.index(model_band)
        assert final in {news2.band, model_band}
    else:
        assert final is news2.band
    if news2.band is RiskBand.HIGH:
        assert final is RiskBand.HIGH


def test_the_model_can_raise_low_to_high():
    news2 = score(Vitals(pulse=80))
    assert news2.band is RiskBand.LOW
    assert combine(news2, RiskBand.HIGH) is RiskBand.HIGH


def test_with_the_real_model_no_case_is_ever_lowered_and_some_are_raised(model, cohort_cases):
    results = triage(cohort_cases, model, now=NOW, ids=_ids(len(cohort_cases)))
    raised = 0
    for case, result in zip(cohort_cases, results, strict=True):
        news2_band = score(latest_vitals(case.series)).band
        assert BAND_ORDER.index(result.band) >= BAND_ORDER.index(news2_band)
        if news2_band is RiskBand.HIGH:
            assert result.band is RiskBand.HIGH
        if news2_band is RiskBand.LOW and result.band is RiskBand.HIGH:
            raised += 1
    assert raised > 0  # the model escalates low to high for some synthetic patients


def test_a_result_records_version_input_hash_and_news2(model):
    series = (
        TimedVitals(NOW - timedelta(hours=2), Vitals(respiration_rate=18, pulse=92)),
        TimedVitals(
            NOW,
            Vitals(
                respiration_rate=26,
                spo2=91,
                on_oxygen=False,
                systolic=98,
                pulse=124,
                consciousness=Consciousness.ALERT,
                temperature=38.9,
            ),
        ),
    )
    reading = UUID(int=99)
    [result] = triage(
        [Case(series, 74, "patient-1", (reading,))], model, now=NOW, ids=[UUID(int=7)]
    )
    news2 = score(latest_vitals(series))
    row = extract(series, age_years=74)
    assert result.id == UUID(int=7)
    assert result.patient_id == "patient-1"
    assert result.reading_ids == (reading,)
    assert result.computed_at == NOW
    assert result.model_version == "triage-v1"
    assert result.input_hash == input_hash(row)
    assert result.news2_score == news2.score
    assert result.news2_subscores == news2.subscores
    assert result.complete is True
    assert result.band is RiskBand.HIGH  # NEWS2 alone says high here
    [output] = model.predict([row])
    assert result.score == output.probability


def test_the_same_vitals_in_another_order_give_the_same_input_hash(model):
    a = TimedVitals(NOW - timedelta(hours=1), Vitals(pulse=88, systolic=120))
    b = TimedVitals(NOW, Vitals(pulse=101))
    one, two = triage([Case((a, b), 60), Case((b, a), 60)], model, now=NOW, ids=_ids(2))
    assert one.input_hash == two.input_hash
    assert one.band is two.band
    assert one.score == two.score


def test_without_a_model_triage_is_news2_alone(cohort_cases):
    cases = cohort_cases[:50]
    results = triage(cases, None, now=NOW, ids=_ids(len(cases)))
    for case, result in zip(cases, results, strict=True):
        news2 = score(latest_vitals(case.series))
        assert result.model_version == NEWS2_ONLY
        assert result.band is news2.band
        assert result.score == news2.score


def test_incomplete_vitals_are_marked_incomplete(model):
    [result] = triage(
        [Case((TimedVitals(NOW, Vitals(pulse=135)),), None)], model, now=NOW, ids=_ids(1)
    )
    assert result.complete is False
    assert result.news2_subscores == {"pulse": 3}
    assert BAND_ORDER.index(result.band) >= BAND_ORDER.index(RiskBand.LOW_MEDIUM)


def test_ids_must_match_the_cases(model):
    with pytest.raises(ValueError, match="result ids"):
        triage([Case(())], model, now=NOW, ids=[])
