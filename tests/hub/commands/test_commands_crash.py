"""A hub killed (SIGKILL) while applying revocation lists keeps exactly one whole list."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.buffer import Buffer, BufferConfig

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
HUB = "hub-crash-01"


@pytest.mark.slow
@pytest.mark.parametrize("after", [2, 5, 9])
def test_a_kill_during_apply_leaves_one_whole_list(tmp_path, after):
    path = tmp_path / "buffer.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "apply_forever.py"), str(path), HUB],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    committed = 0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("RESULT "):
                continue  # the handler's own log lines
            _, outcome, version = line.split()
            assert outcome == "applied"
            committed = int(version)
            if committed >= after:
                break
        # Land the kill somewhere inside the next apply (or between two).
        for _ in range(random.Random(after).randint(0, 4)):
            proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert committed >= after, "the process stopped before applying anything"
    with Buffer.open(BufferConfig(path=path)) as buffer:
        status = buffer.command_status()
        version = status.versions["revocations"].version
        assert version >= committed
        revoked = buffer.revoked_token_ids(now=datetime.now(UTC))
        assert revoked == {f"v{version}-{i}" for i in range(2000)}
        assert status.outcomes == {"applied": version}
