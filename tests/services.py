"""Real services for tests, on 127.0.0.1 only: throwaway PostgreSQL databases and Mosquitto
brokers that a test owns (so it may kill and restart them), by PID, never by name."""

from __future__ import annotations

import os
import pwd
import re
import secrets
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Self

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

if TYPE_CHECKING:
    from pathlib import Path

ADMIN_CONNINFO = os.environ.get(
    "TECSA_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
MOSQUITTO = os.environ.get("TECSA_TEST_MOSQUITTO", "/usr/sbin/mosquitto")


def conninfo(dbname: str) -> str:
    """Connection string of a database on the test server."""
    return make_conninfo(ADMIN_CONNINFO, dbname=dbname)


def create_database(*, template: str = "template0") -> str:
    """A new database `tecsa_test_<random>`; its name."""
    name = f"tecsa_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_CONNINFO, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return name


def drop_database(name: str) -> None:
    """Drop a test database, disconnecting whoever is still in it."""
    with psycopg.connect(ADMIN_CONNINFO, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, *, up: bool = True, timeout: float = 10.0) -> None:
    """Wait until 127.0.0.1:`port` accepts connections (or, with up=False, refuses them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.02)
    state = "listening" if up else "closed"
    raise TimeoutError(f"127.0.0.1:{port} not {state} after {timeout} s")


class MosquittoBroker:
    """A Mosquitto of the test's own on 127.0.0.1:<free port>, persistent across restarts."""

    def __init__(self, workdir: Path, *, port: int | None = None, extra_config: str = "") -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            f"log_dest file {workdir}/mosquitto.log\n"
            # Started as root, Mosquitto drops to the 'mosquitto' user and then cannot read or
            # write the test's private directory (log, persistence, TLS files): stay who we are.
            + (f"user {pwd.getpwuid(os.geteuid()).pw_name}\n" if os.geteuid() == 0 else "")
            + extra_config,
            encoding="utf-8",
        )
        listeners = re.findall(r"^listener (\d+)", extra_config, re.MULTILINE)
        self.extra_ports = [int(p) for p in listeners]

    @property
    def url(self) -> str:
        """mqtt://127.0.0.1:<port>"""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it listens."""
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)
        for port in self.extra_ports:
            wait_port(port)

    def stop(self) -> None:
        """SIGTERM (it saves its persistence file) and wait for it to exit."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing saved beyond the last autosave."""
        self._signal(signal.SIGKILL)

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    def _signal(self, sig: signal.Signals) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)
        wait_port(self.port, up=False)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.kill()
