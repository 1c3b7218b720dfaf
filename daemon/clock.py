"""Time, injected: wall clock, monotonic clock, boot id and whether the clock is synced.

A Pi 4 has no RTC, so every record carries wall time plus ``clock.synced``, the boot id and the
monotonic time; the server can re-base times from a boot that never saw NTP. Tests use
:class:`FakeClock` instead of wall-clock tolerances.

May import: the standard library only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
import uuid
from pathlib import Path
from typing import Protocol

_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


class Clock(Protocol):
    def wall(self) -> float:
        """Unix time in seconds."""
        ...

    def monotonic_ns(self) -> int: ...

    def boot_id(self) -> str: ...

    def synced(self) -> bool: ...


def rfc3339(unix_s: float) -> str:
    """``2026-11-23T09:15:02.123Z`` (UTC, millisecond precision)."""
    second, ms = divmod(int(unix_s * 1000), 1000)
    return f"{_up_to_second(second)}{ms:03d}Z"


@functools.lru_cache(maxsize=4)
def _up_to_second(second: int) -> str:
    """``2026-11-23T09:15:02.``: kept for the stamps made in the same second (a check-in makes
    several, and this is on the check-in's durable path)."""
    t = time.gmtime(second)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
    )


class SystemClock:
    """The real clocks. ``synced()`` asks the kernel (adjtimex) whether NTP has set the time."""

    def __init__(self, boot_id_path: Path = Path("/proc/sys/kernel/random/boot_id")) -> None:
        try:
            self._boot_id = boot_id_path.read_text().strip()
        except OSError:
            self._boot_id = str(uuid.uuid4())
        self._libc: ctypes.CDLL | None = None
        self._synced_at = -1.0
        self._synced = False

    def wall(self) -> float:
        return time.time()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def boot_id(self) -> str:
        return self._boot_id

    def synced(self) -> bool:
        """Asks the kernel at most once a second (it changes rarely; this is on the hot path)."""
        now = time.monotonic()
        if now - self._synced_at < 1.0:
            return self._synced
        self._synced_at = now
        self._synced = self._ask_kernel()
        return self._synced

    def _ask_kernel(self) -> bool:
        if self._libc is None:
            name = ctypes.util.find_library("c")
            if name is None:
                return False
            self._libc = ctypes.CDLL(name, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = self._libc.adjtimex(buf)
        return bool(state >= 0 and state != _TIME_ERROR)


class FakeClock:
    """A clock for tests: time moves only when told to."""

    def __init__(self, wall: float = 1_795_000_000.0, *, synced: bool = True) -> None:
        self._wall = wall
        self._mono_ns = 1_000_000_000
        self._synced = synced
        self._boot = "00000000-0000-4000-8000-000000000001"

    def wall(self) -> float:
        return self._wall

    def monotonic_ns(self) -> int:
        return self._mono_ns

    def boot_id(self) -> str:
        return self._boot

    def synced(self) -> bool:
        return self._synced

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono_ns += int(seconds * 1e9)

    def step_wall(self, seconds: float) -> None:
        """Jump the wall clock only (an NTP step or a bad RTC), monotonic time unchanged."""
        self._wall += seconds

    def set_synced(self, synced: bool) -> None:
        self._synced = synced

    def reboot(self, boot_id: str) -> None:
        self._boot = boot_id
        self._mono_ns = 1_000_000_000
