"""An asyncio face for the blocking sensor: every call runs in one dedicated worker thread.

The daemon's event loop awaits these; the sensor itself stays single-threaded (the worker is
the only thread that touches it). Each call is bounded by the driver's own timeouts.

May import: the standard library and drivers.fingerprint.interface.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from drivers.fingerprint.interface import (
    Enrolment,
    FingerprintSensor,
    LedColour,
    LedMode,
    Match,
    SensorInfo,
)

T = TypeVar("T")


class AsyncSensor:
    """Awaitable wrappers around a :class:`FingerprintSensor` (same errors, same semantics)."""

    def __init__(self, sensor: FingerprintSensor) -> None:
        self.sensor = sensor
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fingerprint")

    async def _run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def open(self) -> None:
        await self._run(self.sensor.open)

    async def close(self) -> None:
        """Close the sensor and stop the worker thread; idempotent."""
        try:
            await self._run(self.sensor.close)
        except RuntimeError:  # pool already shut down
            return
        self._pool.shutdown(wait=True)

    async def info(self) -> SensorInfo:
        return await self._run(self.sensor.info)

    async def verify(self, template: bytes, *, threshold: int | None = None) -> Match:
        return await self._run(self.sensor.verify, template, threshold=threshold)

    async def enrol(self, *, others: Sequence[bytes] = ()) -> Enrolment:
        return await self._run(self.sensor.enrol, others=others)

    async def set_led(
        self, mode: LedMode, colour: LedColour = LedColour.BLUE, *, speed: int = 0
    ) -> None:
        await self._run(self.sensor.set_led, mode, colour, speed=speed)

    async def library_count(self) -> int:
        return await self._run(self.sensor.library_count)

    async def clear_library(self) -> None:
        await self._run(self.sensor.clear_library)
