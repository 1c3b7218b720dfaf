"""What ``kiosk run`` serves once the core is open: the enclosure watch and, as they land,
the check-in flow and the local UI (daemon/app.py composes them).

Tamper: opening the enclosure commits a ``tamper`` record at once (flagged for staff), turns
the status light to ATTENTION and sounds the attention pattern; closing it again does not
clear the alert without a staff action.

May import: daemon.*, drivers.*.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from daemon.app import KioskCore
from daemon.errors import StorageError
from drivers.gpio import LightState, Pattern

log = logging.getLogger(__name__)


async def serve_checkins(core: KioskCore, stop: asyncio.Event) -> None:
    hw = core.hardware
    assert hw is not None
    loop = asyncio.get_running_loop()
    opened = asyncio.Event()

    def tampered() -> None:  # runs on the pin-event thread
        loop.call_soon_threadsafe(opened.set)

    hw.gpio.tamper.on_open(tampered)
    hw.gpio.light.show(LightState.READY)
    while not stop.is_set():
        waiter = asyncio.ensure_future(opened.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for t in (waiter, stopper):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if opened.is_set():
            opened.clear()
            try:
                core.commit(
                    "tamper", {"flags": ["see_officer"], "detail": {"event": "enclosure_opened"}}
                )
            except StorageError as exc:
                log.error("could not record the tamper event: %s", exc)
            hw.gpio.light.show(LightState.ATTENTION)
            hw.gpio.buzzer.play(Pattern.ATTENTION)
            log.warning("enclosure opened: tamper recorded, staff alerted")
