"""The committed models under tflite-runtime, the runtime many Raspberry Pi images still ship.

tflite-runtime 2.14 is built against numpy 1 and cannot share the project's environment (numpy 2,
for ai-edge-litert), so this test builds its own small one once (`.venv-tflite`, about 10 s from
the package index, with the project's base dependencies) and runs the hub's own runtime code
there with `runtime="tflite_runtime"`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VENV = ROOT / ".venv-tflite"
BASE = tuple(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
PACKAGES = ("tflite-runtime==2.14.0", "numpy<2", *BASE)  # the project's own base dependencies
STAMP = VENV / f"installed-{hashlib.sha256(repr(PACKAGES).encode()).hexdigest()[:12]}"

CHECK = """
import json, sys
from pathlib import Path
from hub.inference.runtime import load_model, self_test, interpreter_for
directory = Path(sys.argv[1])
manifest = json.loads((directory / "manifest.json").read_text())
out = {"runtime": interpreter_for("tflite_runtime").__module__}
for variant, key in (("int8", "self_test"), ("float", "self_test_float")):
    model = load_model(directory, variant=variant, runtime="tflite_runtime")
    out[variant] = {"version": model.version, "vectors": self_test(model, manifest, key=key)}
print(json.dumps(out))
"""


def _environment() -> Path:
    python = VENV / "bin" / "python"
    if STAMP.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *PACKAGES],
        capture_output=True,
        text=True,
        check=False,
    )
    if pip.returncode != 0:
        pytest.skip(f"tflite-runtime is not installable here: {pip.stderr.strip()[-400:]}")
    STAMP.touch()
    return python


@pytest.mark.parametrize("version", ["triage-v1"])
def test_the_committed_models_pass_their_self_tests_under_tflite_runtime(version):
    python = _environment()
    directory = ROOT / "cloud" / "models" / "artifacts" / version
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    run = subprocess.run(
        [str(python), "-c", CHECK, str(directory)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env | {"PYTHONPATH": str(ROOT)},
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["runtime"].startswith("tflite_runtime")
    for variant in ("int8", "float"):
        assert result[variant]["version"] == version
        assert result[variant]["vectors"] > 0  # every shipped vector passed (self_test raises)
