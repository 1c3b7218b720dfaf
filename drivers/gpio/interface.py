"""What the kiosk sees of its GPIO devices, in kiosk words.

Consumers (the check-in flow, the tamper watcher, the screen dimmer) depend on these
protocols and values only, never on gpiozero. Callbacks registered with ``subscribe`` run on
the pin-event thread (lgpio's callback thread on a Pi; the thread that drives the pin in
simulation), so they must be quick and must not block: hand work to a queue or an event.

May import: the standard library, ``daemon.errors``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from daemon.errors import DriverError

Callback = Callable[[], None]


class GpioError(DriverError):
    """A GPIO device could not be set up or driven."""

    reason = "gpio"


class LightState(enum.Enum):
    """What the status light tells a person. Colour plus blinking, so that the states stay
    distinguishable for people who cannot tell red from green."""

    OFF = "off"
    READY = "ready"  # steady green: come and check in
    BUSY = "busy"  # steady blue: working, please wait
    SUCCESS = "success"  # blinking green: check-in recorded
    ATTENTION = "attention"  # blinking amber: look at the screen / try again
    FAULT = "fault"  # blinking red: the kiosk cannot take check-ins; see reception
    OFFLINE = "offline"  # steady cyan: working, records queued until the network returns


@dataclass(frozen=True, slots=True)
class Colour:
    red: bool
    green: bool
    blue: bool


#: colour and whether it blinks, per state
LIGHT_LOOK: dict[LightState, tuple[Colour, bool]] = {
    LightState.OFF: (Colour(False, False, False), False),
    LightState.READY: (Colour(False, True, False), False),
    LightState.BUSY: (Colour(False, False, True), False),
    LightState.SUCCESS: (Colour(False, True, False), True),
    LightState.ATTENTION: (Colour(True, True, False), True),
    LightState.FAULT: (Colour(True, False, False), True),
    LightState.OFFLINE: (Colour(False, True, True), False),
}


class Pattern(enum.Enum):
    """The named buzzer patterns; each value is its steps of (on seconds, off seconds).
    Short on purpose: a lobby is a shared space."""

    KEYPRESS = ((0.03, 0.0),)
    SUCCESS = ((0.12, 0.0),)
    ATTENTION = ((0.08, 0.08), (0.08, 0.0))
    FAULT = ((0.4, 0.2), (0.4, 0.2), (0.4, 0.0))

    @property
    def steps(self) -> tuple[tuple[float, float], ...]:
        steps: tuple[tuple[float, float], ...] = self.value
        return steps

    @property
    def duration_s(self) -> float:
        return sum(on + off for on, off in self.steps)


class StatusLight(Protocol):
    def show(self, state: LightState) -> None:
        """Show ``state`` (returns at once; blinking runs on a gpiozero background thread)."""
        ...

    @property
    def state(self) -> LightState: ...


class Buzzer(Protocol):
    def play(self, pattern: Pattern) -> None:
        """Start ``pattern`` on a background thread, cutting short any pattern playing."""
        ...

    def wait_idle(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` seconds for the pattern to finish; True if it did."""
        ...

    def silence(self) -> None: ...


class TamperSwitch(Protocol):
    @property
    def is_open(self) -> bool:
        """True when the enclosure is open (or the switch wire is cut)."""
        ...

    def on_open(self, callback: Callback) -> None:
        """Call ``callback`` (on the pin-event thread) each time the enclosure opens."""
        ...

    def on_close(self, callback: Callback) -> None: ...


class WakeInput(Protocol):
    """A digital input that wakes the kiosk: the fingerprint touch-wake line, the PIR."""

    @property
    def active(self) -> bool: ...

    def subscribe(self, callback: Callback) -> None:
        """Call ``callback`` (on the pin-event thread) each time the input becomes active."""
        ...


@dataclass(frozen=True, slots=True)
class GpioSettings:
    """The ``[gpio]`` configuration section.

    ``backend``: ``lgpio`` on a Pi; ``mock`` is gpiozero's MockFactory (simulation, tests;
    the composition root refuses it unless ``allow_simulated``). ``pinmap``: the pin-map file
    (default: the packaged ``drivers/gpio/pinmap.toml``). ``tamper_debounce_s``: the tamper
    switch ignores changes closer together than this (seconds). ``blink_s``: half-period of a
    blinking status light (seconds).
    """

    backend: Literal["lgpio", "mock"] = "lgpio"
    pinmap: Path | None = None
    motion_enabled: bool = False
    tamper_debounce_s: float = 0.05
    blink_s: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.tamper_debounce_s <= 1:
            raise ValueError(f"tamper_debounce_s: {self.tamper_debounce_s} is not in [0, 1]")
        if not 0.05 <= self.blink_s <= 5:
            raise ValueError(f"blink_s: {self.blink_s} is not in [0.05, 5]")
