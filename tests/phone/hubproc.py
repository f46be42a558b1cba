"""A real hub daemon (`tecsa-hub run`) in a subprocess, for the phone client's tests and bench."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wire.keys import save_public_key
from wire.tokens import Role, issue

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    """`tecsa-hub run` with API and discovery on 127.0.0.1, BLE and uplink off."""

    def __init__(self, workdir: Path, hub_id: str, *, synchronous: str = "NORMAL") -> None:
        self.workdir = workdir
        self.hub_id = hub_id
        self.cloud = Ed25519PrivateKey.generate()
        self.port = free_port()
        self.db = workdir / "buffer.sqlite3"
        keys = workdir / "keys"
        save_public_key(self.cloud, keys / "cloud-signing.pub.pem")
        self.config = workdir / "hub.toml"
        self.config.write_text(
            f'[identity]\nhub_id = "{hub_id}"\nkey_dir = "{keys}"\n'
            f'cloud_signing_key = "{keys}/cloud-signing.pub.pem"\n'
            f'[buffer]\npath = "{self.db}"\nsynchronous = "{synchronous}"\n'
            f'[api]\nhost = "127.0.0.1"\nport = {self.port}\n'
            '[discovery]\ninterfaces = ["127.0.0.1"]\n'
            "[ble]\nenabled = false\n[uplink]\nenabled = false\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[str] | None = None
        self._tokens = 0

    def start(self) -> HubProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TECSA_HUB_")}
        self.proc = subprocess.Popen(
            [str(BIN / "tecsa-hub"), "run", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited: {self.proc.stderr.read()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return self
            time.sleep(0.1)
        raise RuntimeError("the hub's API did not start listening in 60 s")

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=30)
        if self.proc.returncode != 0:
            raise RuntimeError(f"hub exited {self.proc.returncode}: {stderr[-2000:]}")
        return self.proc.returncode

    def token(
        self, agent: str = "agent-17", role: Role = Role.AGENT, *, expired: bool = False
    ) -> str:
        self._tokens += 1
        now = datetime.now(UTC) - (timedelta(days=2) if expired else timedelta(0))
        return issue(
            self.cloud,
            agent_id=agent,
            role=role,
            now=now,
            lifetime=timedelta(hours=1),
            token_id=f"tok-{self._tokens}",
        )

    def fingerprint(self) -> str:
        from hub.api.tls import fingerprint  # noqa: PLC0415 - tests may read the hub's side

        return fingerprint((self.workdir / "keys" / "tls.crt.pem").read_bytes())

    def stored(self) -> dict[tuple[str, int], int]:
        """(id, revision) -> how many versions the hub stored."""
        if not self.db.exists():
            return {}
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            try:
                rows = conn.execute(
                    "SELECT id, revision, count(*) FROM records GROUP BY id, revision"
                ).fetchall()
            except sqlite3.OperationalError:
                return {}
        return {(str(i), int(r)): int(n) for i, r, n in rows}
