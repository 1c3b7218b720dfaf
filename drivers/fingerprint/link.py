"""Byte links under the fingerprint driver: pyserial for a device, an in-memory pipe for tests.

A link moves bytes and nothing else; framing is the codec's job. ``read`` returns whatever is
available (at least one byte) or ``b""`` when the timeout runs out; a vanished device raises
:class:`LinkLost`.

May import: the standard library and pyserial (lazily, inside :class:`SerialLink`).
"""

from __future__ import annotations

import contextlib
import termios
import threading
import time
from typing import Protocol


class LinkLost(OSError):
    """The byte link went away (USB adapter unplugged, pty closed, pipe cut)."""


class ByteLink(Protocol):
    def write(self, data: bytes) -> None:
        """Send all of ``data`` (one call per packet). Raises LinkLost."""
        ...

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        """Up to ``max_bytes`` bytes, waiting at most ``timeout_s``; ``b""`` on timeout."""
        ...

    def reset_input(self) -> None:
        """Drop everything received and not yet read."""
        ...

    def set_baud(self, baud: int) -> None: ...

    def close(self) -> None: ...


class SerialLink:
    """A pyserial port, 8N1, no flow control. Opening raises LinkLost if the port is absent."""

    def __init__(self, port: str, baud: int) -> None:
        import serial  # pyserial: imported here so importing the driver never touches a port

        self._errors: tuple[type[BaseException], ...] = (
            serial.SerialException,
            OSError,
            termios.error,  # tcflush/tcsetattr on a pty whose master went away
            TypeError,  # pyserial's read() on an fd closed under it
        )
        self._baud_errors: tuple[type[BaseException], ...] = (*self._errors, ValueError)
        try:
            self._port = serial.Serial(port=port, baudrate=baud, timeout=0, write_timeout=2.0)
        except (serial.SerialException, OSError) as exc:
            raise LinkLost(f"cannot open {port}: {exc}") from exc
        self._timeout = 0.0

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except self._errors as exc:
            raise LinkLost(str(exc)) from exc

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        timeout = max(0.0, timeout_s)
        try:
            waiting = self._port.in_waiting
            if waiting:
                return bytes(self._port.read(min(max_bytes, waiting)))
            if abs(timeout - self._timeout) > 0.0005:
                self._port.timeout = timeout
                self._timeout = timeout
            got = bytes(self._port.read(1))
            if got and max_bytes > 1:
                waiting = self._port.in_waiting
                if waiting:
                    got += bytes(self._port.read(min(max_bytes - 1, waiting)))
            return got
        except self._errors as exc:
            raise LinkLost(str(exc)) from exc

    def reset_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except self._errors as exc:
            raise LinkLost(str(exc)) from exc

    def set_baud(self, baud: int) -> None:
        try:
            self._port.baudrate = baud
        except self._baud_errors as exc:
            raise LinkLost(str(exc)) from exc

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._port.close()


class _Queue:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.closed = False


class MemoryLink:
    """One end of an in-memory full-duplex byte pipe (see :func:`memory_pipe`). Thread-safe."""

    def __init__(self, rx: _Queue, tx: _Queue, bauds: list[int]) -> None:
        self._rx = rx
        self._tx = tx
        self._bauds = bauds  # shared: [host baud]; the device side reads it like a UART would

    @property
    def host_baud(self) -> int:
        return self._bauds[0]

    @property
    def closed(self) -> bool:
        return self._rx.closed

    def write(self, data: bytes) -> None:
        with self._tx.cond:
            if self._tx.closed:
                raise LinkLost("memory link closed")
            self._tx.buf += data
            self._tx.cond.notify_all()

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._rx.cond:
            while not self._rx.buf:
                if self._rx.closed:
                    raise LinkLost("memory link closed")
                left = deadline - time.monotonic()
                if left <= 0:
                    return b""
                self._rx.cond.wait(left)
            got = bytes(self._rx.buf[:max_bytes])
            del self._rx.buf[:max_bytes]
            return got

    def reset_input(self) -> None:
        with self._rx.cond:
            self._rx.buf.clear()

    def set_baud(self, baud: int) -> None:
        self._bauds[0] = baud

    def close(self) -> None:
        for q in (self._rx, self._tx):
            with q.cond:
                q.closed = True
                q.cond.notify_all()


def memory_pipe(baud: int = 57600) -> tuple[MemoryLink, MemoryLink]:
    """A connected (host, device) pair. Closing either end cuts both directions."""
    a, b = _Queue(), _Queue()
    bauds = [baud]
    return MemoryLink(a, b, bauds), MemoryLink(b, a, bauds)
