"""Apply revocation lists v1, v2, ... to a buffer until killed; print each version committed.

Run by test_commands_crash.py: `python apply_forever.py BUFFER HUB_ID`. Each list holds 2,000
tokens named after its version, so a half-applied list is visible after a kill.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.buffer import Buffer, BufferConfig
from hub.commands import CommandHandler
from wire.commands import CommandKind, RevocationList, RevokedToken, new_command, sign_command

CLOUD = Ed25519PrivateKey.from_private_bytes(bytes(range(129, 161)))
TOKENS = 2000


async def main(path: Path, hub_id: str) -> None:
    now = datetime.now(UTC)
    expiry = now + timedelta(days=3)
    buffer = Buffer.open(BufferConfig(path=path))
    handler = CommandHandler(hub_id=hub_id, cloud_key=CLOUD.public_key(), buffer=buffer)
    version = 0
    while True:
        version += 1
        data = RevocationList(
            version=version,
            revoked=tuple(
                RevokedToken(jti=f"v{version}-{i}", expires_at=expiry) for i in range(TOKENS)
            ),
        )
        command = new_command(
            CommandKind.REVOCATIONS,
            data,
            hub_id=hub_id,
            now=now,
            lifetime=timedelta(days=1),
            rand=version.to_bytes(10, "big"),
        )
        handled = await handler.handle(sign_command(command, CLOUD))
        print("RESULT", handled.outcome, version, flush=True)  # noqa: T201 - the test reads it


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
