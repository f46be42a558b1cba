"""The uplink alone in a process of its own, for the kill -9 test.

Usage: hub_process.py DB HUB_KEY INGEST_KEY SIGNING_KEY HUB_ID PORT. Runs until killed (or
SIGTERM).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hub.buffer import Buffer, BufferConfig
from hub.uplink import Backoff, BatchLimits, UplinkConfig, UplinkKeys, UplinkService


async def main(argv: list[str]) -> None:
    db, hub_key, ingest, signing, hub_id, port = argv
    keys = UplinkKeys.from_files(
        hub_identity=Path(hub_key), cloud_ingest=Path(ingest), cloud_signing=Path(signing)
    )
    config = UplinkConfig(
        hub_id=hub_id,
        broker_url=f"mqtt://127.0.0.1:{port}",
        batch=BatchLimits(max_items=20, max_age=0.05),
        window=4,
        ack_timeout_s=2.0,
        idle_poll_s=0.05,
        reconnect=Backoff(base=0.05, cap=0.3),
        probe=Backoff(base=0.1, cap=0.5),
        timeout_s=3.0,
    )
    async with Buffer.open(BufferConfig(path=Path(db))) as buffer:
        service = UplinkService(config, buffer, keys)
        await service.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
