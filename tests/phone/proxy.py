"""A TCP proxy that can cut one connection after the request went through, before the answer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class CutProxy:
    """Forwards 127.0.0.1:port to the hub; the first connection that sends more than `threshold`
    bytes is cut as soon as the hub answers it (after `committed()` is true), the answer dropped.
    Later connections pass through."""

    def __init__(self, upstream: int, *, threshold: int, committed: Callable[[], bool]) -> None:
        self._upstream = upstream
        self._threshold = threshold
        self._committed = committed
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.armed = True
        self.cuts = 0
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            hub = socket.create_connection(("127.0.0.1", self._upstream))
            cut = self.armed
            self.armed = False
            sent = [0]
            threading.Thread(target=self._up, args=(client, hub, sent), daemon=True).start()
            threading.Thread(target=self._down, args=(hub, client, sent, cut), daemon=True).start()

    def _up(self, client: socket.socket, hub: socket.socket, sent: list[int]) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                sent[0] += len(data)
                hub.sendall(data)
        with contextlib.suppress(OSError):
            hub.shutdown(socket.SHUT_WR)

    def _down(self, hub: socket.socket, client: socket.socket, sent: list[int], cut: bool) -> None:
        with contextlib.suppress(OSError):
            while data := hub.recv(65536):
                if cut and sent[0] > self._threshold:
                    deadline = time.monotonic() + 30
                    while not self._committed() and time.monotonic() < deadline:
                        time.sleep(0.02)
                    self.cuts += 1
                    client.shutdown(socket.SHUT_RDWR)
                    client.close()
                    hub.close()
                    return
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
