"""A SIGKILL never loses a reading that was acknowledged, and never corrupts the file."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import asyncio, random, sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from hub.buffer import Buffer, BufferConfig
    from wire.samples import sample_reading

    async def main():
        buf = Buffer.open(BufferConfig(path=Path(sys.argv[1])))
        rng = random.Random(7)
        t0 = datetime(2026, 5, 1, tzinfo=UTC)

        async def produce(k):
            for i in range(10**9):
                r = sample_reading(rng, t0 + timedelta(milliseconds=i * 50 + k), device=k,
                                   patient=1)
                await buf.insert(r, dedupe_key=f"{k}/{i}")
                sys.stdout.write(f"ack {r.id}\\n")  # acknowledged: committed
                sys.stdout.flush()

        await asyncio.gather(*(produce(k) for k in range(16)))

    asyncio.run(main())
    """
)


def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "buffer.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("ack "):
                acknowledged.append(line[4:].strip())
            if len(acknowledged) >= 2000:
                break
        assert child.poll() is None  # still writing: the kill lands mid-stream
        os.kill(child.pid, signal.SIGKILL)
        # Lines written before the kill are still in the pipe: they were acknowledged too.
        acknowledged += [
            line[4:].strip()
            for line in child.stdout
            if line.startswith("ack ") and line[-1] == "\n"
        ]
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in conn.execute("SELECT id FROM readings")}
    assert len(acknowledged) >= 2000
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged readings lost"
