from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from hub.buffer import Buffer, BufferConfig

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "buffer.sqlite3"


@pytest.fixture
async def buffer(db: Path) -> AsyncIterator[Buffer]:
    buf = Buffer.open(BufferConfig(path=db))
    yield buf
    await buf.aclose()
