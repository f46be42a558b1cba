"""A phone's zeroconf side, as a separate process: advertise, find the hub, withdraw on stdin EOF.

Prints one JSON line per event: {"hub": {...}} when it resolved the hub, then {"bye": true}.
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from hub.discovery.records import AGENT_SERVICE, HUB_SERVICE, parse_hub


async def main(agent: str) -> None:
    zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    info = AsyncServiceInfo(
        AGENT_SERVICE,
        f"phone-{agent}.{AGENT_SERVICE}",
        addresses=[socket.inet_aton("127.0.0.1")],
        port=9,
        properties={"agent": agent, "app": "ref-1.0"},
        server=f"phone-{agent}.local.",
    )
    await zc.async_register_service(info)
    loop = asyncio.get_running_loop()

    tasks = set()

    def on_change(zeroconf, service_type, name, state_change):  # zeroconf passes these by name
        del service_type
        if state_change is ServiceStateChange.Added:
            task = loop.create_task(resolve(zeroconf, name))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def resolve(zeroconf, name):
        hub = AsyncServiceInfo(HUB_SERVICE, name)
        if await hub.async_request(zeroconf, 3000):
            record = parse_hub(name, hub.port, dict(hub.properties))
            print(json.dumps({"hub": record.txt() | {"port": record.port}}), flush=True)  # noqa: T201 - the report

    browser = AsyncServiceBrowser(zc.zeroconf, HUB_SERVICE, handlers=[on_change])
    await loop.run_in_executor(None, sys.stdin.read)  # until the test closes stdin
    await browser.async_cancel()
    await (await zc.async_unregister_service(info))  # sends the goodbye packets
    await asyncio.sleep(0.5)  # let the last goodbye leave before the socket closes
    await zc.async_close()
    print(json.dumps({"bye": True}), flush=True)  # noqa: T201 - the report


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
