"""Discovery hands each phone change to the daemon, which keeps it in the buffer."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from hub.buffer import Buffer, BufferConfig
from hub.discovery import Discovery, HubRecord, PhoneSeen

PEER = Path(__file__).with_name("phone_peer.py")
FINGERPRINT = "ab" * 32


async def test_a_phone_seen_then_gone_is_kept_in_the_buffer(tmp_path):
    buffer = Buffer.open(BufferConfig(path=tmp_path / "buffer.sqlite3"))

    async def save(phone: PhoneSeen) -> None:
        await buffer.phone_seen(
            phone.name, agent=phone.agent, app=phone.app, at=phone.last_seen, present=phone.present
        )

    hub = Discovery(
        HubRecord("hub-disc-02", 8443, FINGERPRINT), interfaces=["127.0.0.1"], on_phone=save
    )
    await hub.start()
    peer = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER), "agent-23", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip

    async def until(predicate) -> None:
        async def wait() -> None:
            while not predicate():
                hub.changed.clear()
                await hub.changed.wait()

        await asyncio.wait_for(wait(), 15)

    try:
        await until(lambda: [p.present for p in buffer.phones()] == [True])
        (phone,) = buffer.phones()
        assert phone.name.endswith("._tecsa-agent._tcp.local.")
        assert (phone.agent, phone.app) == ("agent-23", "ref-1.0")
        peer.stdin.close()  # the phone leaves: goodbye packets
        await until(lambda: [p.present for p in buffer.phones()] == [False])
        (gone,) = buffer.phones()
        assert (gone.agent, gone.first_seen) == ("agent-23", phone.first_seen)
        assert gone.last_seen >= phone.last_seen
    finally:
        if peer.returncode is None:
            peer.kill()
        await peer.wait()
        await hub.close()
        await buffer.aclose()


async def test_a_failing_save_does_not_stop_discovery(tmp_path):
    del tmp_path
    calls: list[str] = []

    async def broken(phone: PhoneSeen) -> None:
        calls.append(phone.name)
        raise OSError("disk on fire")

    hub = Discovery(
        HubRecord("hub-disc-03", 8443, FINGERPRINT), interfaces=["127.0.0.1"], on_phone=broken
    )
    await hub.start()
    peer = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER), "agent-24", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:

        async def wait() -> None:
            while not any(p.present and p.agent == "agent-24" for p in hub.phones):
                hub.changed.clear()
                await hub.changed.wait()

        await asyncio.wait_for(wait(), 15)
        assert calls  # it was asked, failed, and the phone is still listed in memory
    finally:
        if peer.returncode is None:
            peer.kill()
        await peer.wait()
        await hub.close()
