"""The GPIO factory: ``open_gpio(settings)`` builds every GPIO device from the pin map, and
:class:`GpioSim` drives a MockFactory board in domain terms for simulation and tests.

May import: the standard library, ``gpiozero`` (``gpiozero.pins.lgpio`` only inside
:func:`open_gpio`), ``daemon.errors``, ``drivers.gpio``.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from gpiozero.pins.mock import MockFactory

from daemon.errors import DeviceNotFound
from drivers.gpio.devices import GpioBuzzer, GpioStatusLight, GpioTamperSwitch, GpioWakeInput
from drivers.gpio.interface import Colour, GpioError, GpioSettings
from drivers.gpio.pinmap import PinMap, load_pinmap


@dataclass(frozen=True, slots=True)
class GpioBoard:
    """Every GPIO device of the kiosk. ``motion`` is None when no PIR is fitted or enabled.
    ``close()`` releases every pin (idempotent)."""

    light: GpioStatusLight
    buzzer: GpioBuzzer
    tamper: GpioTamperSwitch
    finger_wake: GpioWakeInput
    motion: GpioWakeInput | None
    pinmap: PinMap
    pin_factory: Any

    def close(self) -> None:
        for device in (self.buzzer, self.light, self.tamper, self.finger_wake, self.motion):
            if device is not None:
                device.close()

    def __enter__(self) -> GpioBoard:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _lgpio_factory() -> Any:
    try:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    except ImportError as exc:
        raise DeviceNotFound(
            "the lgpio library is not installed; on Raspberry Pi OS install python3-lgpio and "
            "create the venv with --system-site-packages (docs/drivers.md).",
            reason="gpio_missing",
        ) from exc
    except Exception as exc:  # lgpio raises its own error type when no gpiochip is found
        raise DeviceNotFound(
            f"no GPIO chip could be opened ({exc.__class__.__name__}); check that this is a "
            "Raspberry Pi and that the service user is in the gpio group.",
            reason="gpio_missing",
        ) from exc


def open_gpio(settings: GpioSettings, pin_factory: Any = None) -> GpioBoard:
    """Build the status light, buzzer, tamper switch, touch-wake input and (when enabled) the
    motion sensor from the pin map.

    ``pin_factory``: given, it is used for every device (tests pass a ``MockFactory``);
    otherwise ``settings.backend`` decides: ``lgpio`` opens the Pi's GPIO chip, ``mock`` makes
    a fresh ``MockFactory`` whose enclosure starts closed. Never gpiozero's global default.

    Raises :class:`ConfigError` (bad pin map), :class:`DeviceNotFound` (no lgpio/GPIO chip),
    :class:`GpioError` (a pin could not be claimed). Pins claimed before a failure are released.
    """
    pinmap = load_pinmap(settings.pinmap)
    fresh_mock = pin_factory is None and settings.backend == "mock"
    if pin_factory is None:
        pin_factory = MockFactory() if fresh_mock else _lgpio_factory()
    built: list[Any] = []
    try:
        light = GpioStatusLight(
            pinmap["status_red"],
            pinmap["status_green"],
            pinmap["status_blue"],
            pin_factory,
            settings.blink_s,
        )
        built.append(light)
        buzzer = GpioBuzzer(pinmap["buzzer"], pin_factory)
        built.append(buzzer)
        tamper = GpioTamperSwitch(pinmap["tamper"], pin_factory, settings.tamper_debounce_s)
        built.append(tamper)
        finger = GpioWakeInput("fingerprint touch-wake input", pinmap["finger_wake"], pin_factory)
        built.append(finger)
        motion: GpioWakeInput | None = None
        if settings.motion_enabled:
            sig = pinmap.get("motion")
            if sig is None:
                raise GpioError(
                    "motion_enabled is true but the pin map has no motion signal; add it or "
                    "set [gpio] motion_enabled = false.",
                    reason="gpio_setup",
                )
            motion = GpioWakeInput("motion sensor", sig, pin_factory)
            built.append(motion)
    except BaseException:
        for device in reversed(built):
            with contextlib.suppress(Exception):
                device.close()
        raise
    board = GpioBoard(light, buzzer, tamper, finger, motion, pinmap, pin_factory)
    if fresh_mock:
        GpioSim(board)  # a simulated kiosk starts closed, with no finger and nobody near
    return board


class GpioSim:
    """Drive a board built on a ``MockFactory`` in domain terms, and read back what a person
    would see and hear. Pin changes run the board's callbacks on the calling thread.
    Creating one puts the enclosure in the closed state (a bare MockFactory pin with a
    pull-up reads as an open lid)."""

    def __init__(self, board: GpioBoard) -> None:
        if not isinstance(board.pin_factory, MockFactory):
            raise GpioError(
                "GpioSim drives simulated boards only (open_gpio with backend 'mock').",
                reason="gpio_not_simulated",
            )
        self._board = board
        self._factory: Any = board.pin_factory
        self.close_enclosure()

    def _drive(self, name: str, active: bool) -> None:
        sig = self._board.pinmap[name]
        pin = self._factory.pin(sig.bcm)
        if active == sig.active_high:
            pin.drive_high()
        else:
            pin.drive_low()

    def open_enclosure(self) -> None:
        self._drive("tamper", False)

    def close_enclosure(self) -> None:
        self._drive("tamper", True)

    def cut_tamper_wire(self) -> None:
        """A cut wire floats to the pull-up: it must read exactly like an open enclosure."""
        self._drive("tamper", False)

    def touch_finger(self) -> None:
        self._drive("finger_wake", True)

    def lift_finger(self) -> None:
        self._drive("finger_wake", False)

    def motion(self) -> None:
        """Someone walks up: the PIR output goes active (and stays so until ``motion_ends``)."""
        self._drive("motion", True)

    def motion_ends(self) -> None:
        self._drive("motion", False)

    def _lit(self, name: str) -> bool:
        sig = self._board.pinmap[name]
        return bool(self._factory.pin(sig.bcm).state) == sig.active_high

    def lit_colour(self) -> Colour:
        """The colour the LED shows at this instant (off during a blink's dark half)."""
        return Colour(self._lit("status_red"), self._lit("status_green"), self._lit("status_blue"))

    def buzzer_on(self) -> bool:
        return self._lit("buzzer")

    def buzzer_beeps(self) -> int:
        """How many times the buzzer has sounded since the board was opened."""
        sig = self._board.pinmap["buzzer"]
        states = [bool(s.state) == sig.active_high for s in self._factory.pin(sig.bcm).states]
        return sum(1 for a, b in itertools.pairwise(states) if b and not a)
