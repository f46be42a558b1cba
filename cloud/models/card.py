"""Write the model card (docs/models/<version>.md) from a manifest: the pipeline's numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

_UNITS = {
    "respiration_rate": "breaths/min",
    "spo2": "%",
    "systolic": "mmHg",
    "pulse": "beats/min",
    "temperature": "°C",
    "age_years": "years",
}


def write_card(manifest: dict[str, Any], path: Path) -> None:
    """Render `manifest` as the model card at `path` (overwritten)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(manifest))


def render(manifest: dict[str, Any]) -> str:
    """The model card's Markdown."""
    m = manifest["metrics"]
    data = manifest["training_data"]
    files = manifest["files"]
    q = manifest["int8_input"]
    clip = manifest["features"]["clip"]
    i8, fl = files["model_int8.tflite"], files["model_float.tflite"]
    rows = "\n".join(
        f"| {r['low']:.1f}-{r['high']:.1f} | {int(r['patients'])} | {r['predicted']:.3f} "
        f"| {r['observed']:.3f} |"
        for r in manifest["calibration"]["reliability_int8"]
    )
    resolution = "\n".join(
        f"| {name} | {q['resolution'][name]} {_UNITS[name]} | "
        f"{q['clinical_range'][name][0]} to {q['clinical_range'][name][1]} |"
        for name in _UNITS
    )
    thresholds = ", ".join(
        f"{band} from p >= {t}" for band, t in manifest["band_thresholds"].items()
    )
    return f"""# Model card: {manifest["version"]} (on-site triage)

> **All data behind this model and every figure below is SYNTHETIC.** It comes from a seeded
> generator (`cloud/models/cohort.py`), not from patients. The figures show that the pipeline,
> the int8 conversion and the edge runtime behave as designed; they say nothing about clinical
> performance. Do not use this model on people before it is trained and validated on real data.

Written by `python -m cloud.models train` on {manifest["created_at"]}; do not edit by hand.

Reproduce every number on this page:

    {manifest["reproduce"]}

and re-derive the evaluation from the committed models without TensorFlow:

    .venv/bin/python -m cloud.models evaluate

## Intended use and the safety rule

The hub scores each patient's recent vitals with NEWS2 (`wire/news2.py`, exact) and with this
model (int8 LiteRT, `hub/inference/runtime.py`). **The final band is the higher of NEWS2's band and
the model's band: the model may escalate a case, never de-escalate it.** The cloud runs the float
model of the same release on the same features.

## Data (synthetic)

Generator `{data["generator"]}`, seed {data["seed"]}: {data["patients"]} synthetic patients,
the last {int(data["validation_share"] * 100)} % held back for early stopping. Evaluation: a
separate cohort of {data["held_out_patients"]} patients from seed {data["held_out_seed"]}.
Training data digest (SHA-256 of the feature rows and labels as little-endian float64):
`{manifest["training_data_digest"]}`.

The generative story (details in the module docstring): age; a latent severity that grows with
age; a hidden per-hour trajectory (sick patients tend to worsen); 1-4 sets of vitals 0.5-2 h
apart following the severity, with patient noise, instrument error, motion and cold-probe
artefacts, device rounding and missing values (respiration rate 20 %, SpO2 8 %, systolic 10 %,
pulse 5 %, temperature 10 %, oxygen 15 %, consciousness 12 %, age 8 %); 5 % chronic lung disease
(SpO2 scale 2), 40 % infection. Label: deterioration within 24 h, drawn from the last severity,
the trajectory and frailty. Prevalence in the held-out cohort: {m["prevalence"]:.1%}.

## Features (`wire/triage_features.py`, {manifest["feature_spec"]})

{len(manifest["features"]["names"])} inputs, computed by the same pure code on the hub and in the
cloud: the latest value of respiration rate, SpO2, systolic BP, pulse and temperature; on
oxygen, not alert (ACVPU other than A), SpO2 scale 2; age; the trend (latest minus earliest) of
each vital over the window; the NEWS2 aggregate of the latest vitals; one missing-indicator per
input that can be absent. The same set of vitals gives the same row in any order.

**Missing values**: a missing vital takes a normal reference value (NEWS2 scores it 0) and its
indicator is 1; a missing oxygen or consciousness observation counts as air / alert with its
indicator set; a missing age counts as 50 years with its indicator set; a vital seen once has
trend 0. NEWS2 itself never guesses: its result is marked incomplete.

**Normalisation, and why int8 loses no clinical resolution.** An int8 model quantises its whole
input tensor with one scale. Raw clinical units side by side (systolic up to 300 mmHg next to
0/1 flags) would leave about a whole unit per step: 1 °C of temperature. The rows are therefore
standardised outside the graph, `x' = clip((x - mean) / std, -{clip}, {clip})`, with the
training means and standard deviations shipped in the manifest, and the representative dataset
pins the input range to exactly ±{clip}.
The int8 input scale is {q["scale"]:.5f} standard deviations per step (zero point
{q["zero_point"]}), which in clinical units is:

| input | int8 step | range the model sees (beyond: clipped) |
|---|---|---|
{resolution}

Every step is finer than the chart's resolution (1 unit for rates, SpO2 and pressure, 0.1 °C).
Values beyond the clipped range saturate in the model only; NEWS2 still scores them exactly
(e.g. systolic >= 220 mmHg scores 3) and the final band can only be as high as NEWS2's or higher.

## Model and conversion

A small MLP (two hidden ReLU layers of 32 and 16 units, sigmoid output; `cloud/models/train.py`,
tensorflow-cpu 2.21.0, Adam, binary cross-entropy, early stopping; seeded, with TensorFlow's op
determinism on, so a rerun on the same machine writes the same files). Converted
(`cloud/models/convert.py`) to full-integer int8 LiteRT with a representative dataset (int8
weights, activations, input and output) for the hub, and to float32 LiteRT for the cloud.

| file | bytes | sha256 |
|---|---|---|
| model_int8.tflite | {i8["bytes"]} | `{i8["sha256"]}` |
| model_float.tflite | {fl["bytes"]} | `{fl["sha256"]}` |

Model bands: {thresholds}.

## Evaluation (held-out synthetic cohort, {int(m["patients"])} patients)

| figure | value |
|---|---|
| AUROC, model int8 | {m["auroc_model_int8"]:.4f} |
| AUROC, model float | {m["auroc_model_float"]:.4f} |
| AUROC, NEWS2 aggregate alone | {m["auroc_news2"]:.4f} |
| AUROC, final band (NEWS2 + int8 model, ordinal) | {m["auroc_final_band_int8"]:.4f} |
| sensitivity for the high band: NEWS2 alone | {m["sensitivity_high_news2"]:.1%} |
| sensitivity for the high band: model alone | {m["sensitivity_high_model_int8"]:.1%} |
| sensitivity for the high band: final (higher of both) | {m["sensitivity_high_final"]:.1%} |
| specificity for the high band: NEWS2 / model / final | \
{m["specificity_high_news2"]:.1%} / {m["specificity_high_model_int8"]:.1%} / \
{m["specificity_high_final"]:.1%} |
| patients called high: NEWS2 / model / final | \
{m["alert_rate_high_news2"]:.1%} / {m["alert_rate_high_model_int8"]:.1%} / \
{m["alert_rate_high_final"]:.1%} |
| cases the model escalated above NEWS2's band | {m["escalated_by_model"]:.1%} |
| Brier score int8 / float (no-skill reference) | \
{m["brier_int8"]:.4f} / {m["brier_float"]:.4f} ({m["brier_no_skill"]:.4f}) |
| int8 vs float: model band agreement | {m["band_agreement_int8_float"]:.2%} |
| int8 vs float: final band agreement | {m["final_band_agreement_int8_float"]:.2%} |
| int8 vs float: max / mean abs probability difference | \
{m["max_abs_probability_diff"]:.4f} / {m["mean_abs_probability_diff"]:.5f} |

How to read it: the model's probability discriminates better than NEWS2's aggregate on this
synthetic cohort (it also sees trends, age and missingness). The final band's AUROC is lower than
either because four ordered bands carry less information than a 0-20 score or a probability; the
clinically relevant figures are the high band's sensitivity and alert rate, NEWS2 alone against
the final band. Thresholds trade sensitivity for alerts; they live in the manifest.

Calibration of the int8 model (reliability table):

| predicted probability | patients | mean predicted | observed rate |
|---|---|---|---|
{rows}

## Self-test

The manifest carries {len(manifest["self_test"]["vectors"])} vectors (normalised inputs, the
int8 model's expected probability and band, tolerance {manifest["self_test"]["tolerance"]}), the
same for the float model, and the raw feature rows they come from. None lies within 0.03 of a
band threshold. The hub runs them before it activates a model.

## Limitations

- Synthetic data only: the relation between vitals and outcome is the generator's, by design
  learnable; real deterioration is not this tidy.
- The model sees at most the clipped range above; extremes are left to NEWS2.
- No fairness analysis is possible without real populations.
- Runtimes: the tests load both models in ai-edge-litert 2.3.0. tflite-runtime 2.14.0 (its last
  release) loads both and passes every self-test vector with numpy 1.26 (checked by hand in a
  separate environment); with numpy 2, which the hub's environment has, it installs but cannot
  load any model, so the project's tests skip it.
"""
