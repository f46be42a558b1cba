from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from buffer_testkit import ReadingFactory, reading_factory

from hub.buffer import Buffer, BufferConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture
def config(tmp_path: Path) -> BufferConfig:
    return BufferConfig(path=tmp_path / "buffer.sqlite3")


@pytest.fixture
async def buffer(config: BufferConfig) -> AsyncIterator[Buffer]:
    buf = Buffer.open(config)
    yield buf
    await buf.aclose()


@pytest.fixture
def make_reading() -> ReadingFactory:
    return reading_factory()
