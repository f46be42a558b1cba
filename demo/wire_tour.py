"""`tecsa-demo wire`: a tour of the sealed envelope alone, no services needed.

A hub seals a realistic batch of readings for the cloud, the cloud verifies and opens it, and a
copy with one flipped bit is refused.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from wire import Compression, IntegrityError, Priority, open_sealed, peek_header, seal, uuid7
from wire.keys import key_id
from wire.samples import sample_body
from wire.topics import batch_topic


def wire(
    readings: Annotated[
        int, typer.Option(min=1, max=20_000, help="Readings in the sample batch.")
    ] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the sample data, for a repeatable run.")] = 1,
) -> None:
    """Seal a batch of readings on a hub, open it in the cloud, and refuse a forged copy.

    Exits 0 when every reading arrived intact and the forgery was refused, 1 otherwise.
    """
    rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
    now = datetime.now(UTC)
    hub_key, cloud_key = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    body = sample_body(readings, rng, now)
    hub_id = "hub-demo-01"
    start = time.perf_counter()
    sealed = seal(
        body,
        hub_id=hub_id,
        batch_id=uuid7(now, os.urandom(10)),
        seq=1,
        now=now,
        priority=Priority.ROUTINE,
        hub_key=hub_key,
        cloud_key=cloud_key.public_key(),
        ephemeral_key=X25519PrivateKey.generate(),
        nonce=os.urandom(12),
        compression=Compression.ZSTD,
    )
    sealed_ms = (time.perf_counter() - start) * 1000
    header = peek_header(sealed)
    typer.echo(f"hub {hub_id} (key {key_id(hub_key)}) sealed {readings} readings")
    typer.echo(
        f"  batch {header.batch_id} seq {header.seq}: {len(sealed)} bytes on the wire "
        f"({len(sealed) / readings:.1f} bytes/reading, body {header.body_len} bytes before zstd) "
        f"in {sealed_ms:.1f} ms"
    )
    typer.echo(f"  would publish to {batch_topic(hub_id)} (QoS 1)")
    start = time.perf_counter()
    opened = open_sealed(sealed, hub_key=hub_key.public_key(), cloud_keys=cloud_key)
    opened_ms = (time.perf_counter() - start) * 1000
    intact = opened.body == body
    typer.echo(
        f"cloud verified the signature, decrypted and validated {opened.header.counts.readings} "
        f"readings in {opened_ms:.1f} ms: {'intact' if intact else 'MISMATCH'}"
    )
    first = opened.body.readings[0]
    parts = ", ".join(f"{k}={c.value} {c.unit}" for k, c in first.components.items())
    typer.echo(f"  first reading: {first.kind} from {first.device_id}: {parts}")
    forged = bytearray(sealed)
    forged[len(forged) // 2] ^= 0x01
    try:
        open_sealed(bytes(forged), hub_key=hub_key.public_key(), cloud_keys=cloud_key)
        refused = False
    except IntegrityError as exc:
        refused = True
        typer.echo(f"a copy with one flipped bit was refused: {exc}")
    ok = intact and refused
    typer.echo(f"captured={readings} stored={len(opened.body.readings)} forged_refused={refused}")
    raise typer.Exit(0 if ok else 1)
