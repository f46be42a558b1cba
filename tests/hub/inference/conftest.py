"""Fixtures of the triage engine's tests: the committed int8 model and a real buffer."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.buffer import Buffer, BufferConfig
from hub.inference.runtime import load_model

MODEL_DIR = Path(__file__).parents[3] / "cloud" / "models" / "artifacts" / "triage-v1"


@pytest.fixture(scope="module")
def model():
    """The committed int8 model in LiteRT (loaded once a module)."""
    return load_model(MODEL_DIR)


@pytest.fixture
async def buffer(tmp_path):
    """A buffer at `tmp_path / "buffer.sqlite3"` (the engine reads that path too)."""
    buf = Buffer.open(BufferConfig(path=tmp_path / "buffer.sqlite3"))
    yield buf
    await buf.aclose()
