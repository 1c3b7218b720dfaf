"""Opening the kiosk's hardware from configuration: part of the composition root, the only
place (with daemon/app.py) that knows which concrete backends exist.

Simulated backends (the fingerprint emulator, synthetic camera, MockFactory pins, a temporary
sysfs folder) are only built when ``device.allow_simulated`` is true (config.py enforces it)
and :attr:`Hardware.simulated` lists them so the kiosk can say so (systemd STATUS, UI banner).

May import: daemon.*, drivers.*, and hil.fingerprint for the emulator backend only.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from daemon.clock import Clock
from daemon.config import Config
from daemon.errors import DriverError
from drivers.camera import open_camera
from drivers.camera.gated import GatedCamera
from drivers.display import Display, open_display
from drivers.fingerprint.aio import AsyncSensor
from drivers.fingerprint.factory import build_fingerprint
from drivers.fingerprint.interface import FingerprintError
from drivers.gpio import GpioBoard, GpioSim, open_gpio
from drivers.printer import PrinterError, ReceiptPrinter, open_printer

log = logging.getLogger(__name__)


@dataclass
class Hardware:
    fingerprint: AsyncSensor
    camera: GatedCamera
    gpio: GpioBoard
    display: Display
    simulated: list[str]
    #: the emulated sensor (test and demo control: present_finger, lift_finger, inject)
    emulator: Any = None
    gpio_sim: GpioSim | None = None
    faults: dict[str, str] = field(default_factory=dict)
    #: the optional receipt printer (None: the kiosk has none, or it could not be reached)
    printer: ReceiptPrinter | None = None

    def close(self) -> None:
        if self.printer is not None:
            with contextlib.suppress(Exception):
                self.printer.close()
        for closer in (
            self.display.close,
            self.gpio.close,
            self.camera.close,
        ):
            with contextlib.suppress(Exception):
                closer()
        if self.emulator is not None:
            with contextlib.suppress(Exception):
                self.emulator.close()


async def open_hardware(cfg: Config, clock: Clock) -> Hardware:
    """Open every part. A part that fails to open does not stop the kiosk: it is recorded in
    ``faults`` (the flow then uses its fallback) — except the GPIO board and display, which
    the kiosk cannot run without and whose errors propagate."""
    gpio = open_gpio(cfg.gpio)
    gpio_sim = GpioSim(gpio) if cfg.gpio.backend == "mock" else None
    display = open_display(cfg.display, clock)
    emulator = None
    if cfg.fingerprint.backend == "emulator":
        from hil.fingerprint.emulator import SensorEmulator

        emulator = SensorEmulator(
            cfg.fingerprint.emulator_model, time_scale=cfg.fingerprint.emulator_time_scale
        )
    sensor = build_fingerprint(
        cfg.fingerprint,
        emulator=emulator,
        pin_factory=gpio.pin_factory if cfg.fingerprint.wake_pin is not None else None,
    )
    faults: dict[str, str] = {}
    fingerprint = AsyncSensor(sensor)
    try:
        await fingerprint.open()
    except (FingerprintError, DriverError) as exc:
        faults["fingerprint"] = exc.reason
        log.error("fingerprint sensor not available: %s", exc, extra={"kiosk_reason": exc.reason})
    camera = open_camera(cfg.camera)
    printer = None
    try:
        printer = open_printer(cfg.printer)
    except PrinterError as exc:  # optional: the kiosk runs on, staff are told
        faults["printer"] = exc.reason
        log.error("receipt printer not available: %s", exc, extra={"kiosk_reason": exc.reason})
    return Hardware(
        fingerprint=fingerprint,
        camera=camera,
        gpio=gpio,
        display=display,
        simulated=cfg.simulated_parts,
        emulator=emulator,
        gpio_sim=gpio_sim,
        faults=faults,
        printer=printer,
    )
