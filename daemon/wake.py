"""Wake the sync process when a record is committed (another process, same data directory).

``kiosk.service`` calls :func:`poke` after each commit; ``kiosk-sync.service`` listens with
:class:`WakeListener`. A lost poke costs nothing but latency: the sync loop also wakes on its
own every few seconds.

May import: the standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path

#: the wake-up socket's name in the data directory. Here, not in daemon.syncd, so that
#: kiosk.service, which only pokes it, does not import the sync client and httpx with it
WAKE_SOCKET = "sync.wake"


def poke(path: Path) -> None:
    """Send one wake-up datagram, never blocking and never failing."""
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s,
    ):
        s.setblocking(False)
        s.sendto(b"!", str(path))


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, event: asyncio.Event) -> None:
        self.event = event

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.event.set()


class WakeListener:
    """Binds ``path`` and sets ``event`` on every datagram. Use inside a running loop."""

    def __init__(self, path: Path, event: asyncio.Event) -> None:
        self.path = path
        self.event = event
        self._transport: asyncio.BaseTransport | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o660)
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self.event), sock=sock
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
