"""systemd's notification protocol (sd_notify), in pure Python.

``READY=1`` once the daemon can really serve, ``WATCHDOG=1`` from the main loop after a health
probe, ``STATUS=`` for ``systemctl status``, ``STOPPING=1`` on the way out. A no-op when
``$NOTIFY_SOCKET`` is absent (tests, the demo, a shell). Supports abstract sockets (``@...``).

May import: the standard library only.
"""

from __future__ import annotations

import contextlib
import os
import socket


def _send(message: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s,
    ):
        s.sendto(message.encode(), address)
        return True
    return False


def ready(status: str | None = None) -> bool:
    return _send("READY=1" + (f"\nSTATUS={status}" if status else ""))


def status(text: str) -> bool:
    return _send(f"STATUS={text}")


def watchdog() -> bool:
    return _send("WATCHDOG=1")


def stopping() -> bool:
    return _send("STOPPING=1")


def watchdog_interval() -> float | None:
    """The watchdog period in seconds when systemd asked for pings for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6
    except ValueError:
        return None
