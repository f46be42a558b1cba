"""Wire figures (issue 2): seal+open throughput on one core and bytes on the wire per reading.

    make bench            # or: .venv/bin/python -m bench wire

Targets: >= 50,000 readings/s for seal + open of 500-reading batches on one core;
<= 64 bytes per reading for a realistic mixed vitals batch of 500, sealed and compressed.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from wire import Body, Compression, Priority, open_sealed, seal, uuid7
from wire.samples import sample_body

BATCH = 500
BATCHES = 40
ROUNDS = 5


def _seal(
    body: Body, hub: Ed25519PrivateKey, cloud: X25519PrivateKey, seq: int, now: datetime
) -> bytes:
    return seal(
        body,
        hub_id="hub-bench-01",
        batch_id=uuid7(now, os.urandom(10)),
        seq=seq,
        now=now,
        priority=Priority.ROUTINE,
        hub_key=hub,
        cloud_key=cloud.public_key(),
        ephemeral_key=X25519PrivateKey.generate(),
        nonce=os.urandom(12),
        compression=Compression.ZSTD,
    )


def main() -> None:
    """Print readings/s for seal, open and both, and bytes per reading."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    now = datetime.now(UTC)
    rng = random.Random(20261128)
    hub, cloud = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    bodies = [sample_body(BATCH, rng, now) for _ in range(BATCHES)]
    sizes = [len(_seal(b, hub, cloud, 0, now)) for b in bodies]
    seal_rates, open_rates, both_rates = [], [], []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        sealed = [_seal(b, hub, cloud, i, now) for i, b in enumerate(bodies)]
        t1 = time.perf_counter()
        for s in sealed:
            open_sealed(s, hub_key=hub.public_key(), cloud_keys=cloud)
        t2 = time.perf_counter()
        n = BATCH * BATCHES
        seal_rates.append(n / (t1 - t0))
        open_rates.append(n / (t2 - t1))
        both_rates.append(n / (t2 - t0))
    per_reading = statistics.mean(sizes) / BATCH
    print(
        f"batches of {BATCH} mixed vitals readings, {BATCHES} batches x {ROUNDS} rounds, one core"
    )
    print(f"seal          {statistics.median(seal_rates):>10,.0f} readings/s (median)")
    print(f"open          {statistics.median(open_rates):>10,.0f} readings/s (median)")
    print(
        f"seal + open   {statistics.median(both_rates):>10,.0f} readings/s "
        f"(median; best {max(both_rates):,.0f})   target >= 50,000"
    )
    print(
        f"wire size     {per_reading:>10.1f} bytes/reading "
        f"(sealed batch {statistics.mean(sizes):,.0f} bytes; zstd, AES-GCM, Ed25519)   target <= 64"
    )


if __name__ == "__main__":
    main()
