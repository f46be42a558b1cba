"""Command figures (down/cmd): how big a full revocation list or plans snapshot is, and how long
a hub takes to verify and apply one (durably, in its buffer).

    .venv/bin/python -m bench commands

No target is set in the issue; these size the 1 MiB command cap: how many revoked tokens and
plans fit in one command, and what applying the largest of them costs a hub.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.buffer import Buffer, BufferConfig
from hub.commands import CommandHandler, plans_handler
from wire.commands import (
    CommandKind,
    RevocationList,
    RevokedToken,
    new_command,
    sign_command,
    verify_command,
)
from wire.plans import Plan, PlanKind, PlanSnapshot

HUB = "hub-bench-01"
ROUNDS = 5


def _revocations(version: int, n: int, now: datetime) -> RevocationList:
    expiry = now + timedelta(days=20)
    return RevocationList(
        version=version,
        revoked=tuple(
            RevokedToken(jti=f"0193{version:04x}-{i:08x}-7abc-8def-0123456789ab", expires_at=expiry)
            for i in range(n)
        ),
    )


def _plans(version: int, n: int, now: datetime) -> PlanSnapshot:
    return PlanSnapshot(
        version=version,
        plans=tuple(
            Plan(
                id=f"plan-{i:05d}",
                title=f"Household visit {i}",
                kind=PlanKind.VISIT,
                starts_at=now,
                ends_at=now + timedelta(days=7),
                agent_ids=(f"agent-{i % 40:03d}",),
                payload={"household": f"hh-{i:06d}", "village": "Kita", "priority": i % 3},
            )
            for i in range(n)
        ),
    )


def _command(kind: CommandKind, data: RevocationList | PlanSnapshot, key, now, n) -> bytes:  # noqa: ANN001
    command = new_command(
        kind, data, hub_id=HUB, now=now, lifetime=timedelta(days=7), rand=n.to_bytes(10, "big")
    )
    return sign_command(command, key)


async def _apply(path: Path, payloads: list[bytes], key: Ed25519PrivateKey) -> list[float]:
    buffer = Buffer.open(BufferConfig(path=path))
    handler = CommandHandler(
        hub_id=HUB,
        cloud_key=key.public_key(),
        buffer=buffer,
        handlers={CommandKind.PLANS: plans_handler(buffer)},
    )
    times = []
    try:
        for payload in payloads:
            t0 = time.perf_counter()
            handled = await handler.handle(payload)
            times.append(time.perf_counter() - t0)
            assert handled.outcome == "applied", handled  # noqa: S101 - a broken bench must say so
    finally:
        await buffer.aclose()
    return times


def main() -> None:
    """Print sizes and verify/apply times for revocation lists and plans snapshots."""
    key = Ed25519PrivateKey.generate()
    now = datetime.now(UTC)
    for kind, sizes, build in (
        (CommandKind.REVOCATIONS, (1_000, 10_000), _revocations),
        (CommandKind.PLANS, (500, 2_000), _plans),
    ):
        for n in sizes:
            payloads = [
                _command(kind, build(v + 1, n, now), key, now, v + 1) for v in range(ROUNDS)
            ]
            t0 = time.perf_counter()
            for p in payloads:
                verify_command(p, cloud_key=key.public_key(), hub_id=HUB, now=now)
            verify_ms = (time.perf_counter() - t0) / ROUNDS * 1000
            with tempfile.TemporaryDirectory() as tmp:
                applied = asyncio.run(_apply(Path(tmp) / "buffer.sqlite3", payloads, key))
            print(
                f"{kind} x{n:>6}: {len(payloads[0]) / 1024:7.1f} KiB signed,"
                f" verify {verify_ms:6.1f} ms,"
                f" verify+apply (durable) median {statistics.median(applied) * 1000:6.1f} ms"
            )
    per_token = len(_command(CommandKind.REVOCATIONS, _revocations(1, 1000, now), key, now, 1))
    print(f"revoked tokens per 1 MiB command: ~{int(1024 * 1024 / (per_token / 1000)):,}")


if __name__ == "__main__":
    main()
