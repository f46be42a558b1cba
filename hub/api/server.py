"""Serving the phones' API over TLS inside the daemon's event loop (uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import structlog
import uvicorn

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fastapi import FastAPI

    from hub.api.tls import TlsIdentity


log = structlog.get_logger("hub.api")


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_api(
    app: FastAPI, *, host: str, port: int, tls: TlsIdentity, stop: asyncio.Event
) -> None:
    """Serve `app` on https://host:port until `stop` is set, then finish requests in hand."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        ssl_certfile=str(tls.cert_path),
        ssl_keyfile=str(tls.key_path),
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    serving = asyncio.create_task(_serve(server, host, port))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving


async def _serve(server: uvicorn.Server, host: str, port: int) -> None:
    # uvicorn calls sys.exit() when it cannot listen; raised in a task, that SystemExit would end
    # the whole daemon's event loop. Caught here, the rest of the hub goes on without its API.
    try:
        await server.serve()
    except SystemExit:
        log.error("api_unavailable", host=host, port=port, reason="cannot listen (port in use?)")
