"""The GPIO devices, built on gpiozero with an explicit pin factory per device.

The same classes run on the Pi (lgpio pin factory) and in simulation and tests (gpiozero's
MockFactory): the pin factory is the seam, and it is always passed per device, never set as
gpiozero's global default. Constructing a device claims its pin; ``close()`` releases it and
is idempotent.

Threads: gpiozero calls input callbacks on its pin-event thread; blinking runs on a gpiozero
background thread; a buzzer pattern runs on a short-lived thread of its own.

May import: the standard library, ``gpiozero``, ``daemon.errors``, ``drivers.gpio``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from gpiozero import RGBLED, DigitalInputDevice, DigitalOutputDevice, GPIOZeroError

from drivers.gpio.interface import LIGHT_LOOK, Callback, GpioError, LightState, Pattern
from drivers.gpio.pinmap import Signal

log = logging.getLogger(__name__)


def _claim(what: str, signal: Signal, build: Any) -> Any:
    try:
        return build()
    except (GPIOZeroError, OSError, RuntimeError) as exc:
        raise GpioError(
            f"cannot set up the {what} on BCM {signal.bcm} ({exc.__class__.__name__}); check "
            "that no other program holds the pin, that the service user is in the gpio group "
            "and that the pin map matches the wiring (docs/drivers.md).",
            reason="gpio_setup",
        ) from exc


def _input_pull(signal: Signal) -> dict[str, Any]:
    if signal.pull == "up":
        return {"pull_up": True}
    if signal.pull == "down":
        return {"pull_up": False}
    return {"pull_up": None, "active_state": signal.active_high}


class _Subscribers:
    """Fan one gpiozero callback out to several subscribers; one failing does not stop the
    others (it is logged, without personal data: there is none at this level)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._callbacks: list[Callback] = []
        self._lock = threading.Lock()

    def add(self, callback: Callback) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def fire(self) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("a %s callback failed", self._what)


class GpioStatusLight:
    """The RGB status LED (three plain on/off channels; blinking for some states)."""

    def __init__(self, red: Signal, green: Signal, blue: Signal, factory: Any, blink_s: float):
        if not red.active_high == green.active_high == blue.active_high:
            raise GpioError(
                "the status light's three channels disagree on active_high in the pin map; "
                "a common-anode LED has all three active low, a common-cathode all high.",
                reason="gpio_setup",
            )
        self._blink_s = blink_s
        self._state = LightState.OFF
        self._lock = threading.Lock()
        self._led = _claim(
            "status light",
            red,
            lambda: RGBLED(
                red.bcm,
                green.bcm,
                blue.bcm,
                active_high=red.active_high,
                pwm=False,
                pin_factory=factory,
            ),
        )

    @property
    def state(self) -> LightState:
        return self._state

    def show(self, state: LightState) -> None:
        colour, blink = LIGHT_LOOK[state]
        rgb = (int(colour.red), int(colour.green), int(colour.blue))
        with self._lock:  # the flow and the tamper/sync watchers may all set it
            if blink:
                self._led.blink(
                    on_time=self._blink_s, off_time=self._blink_s, on_color=rgb, background=True
                )
            else:
                self._led.color = rgb  # also stops a running blink
            self._state = state

    def close(self) -> None:
        self._led.close()


class GpioBuzzer:
    """An active buzzer on one output; patterns play on a background thread."""

    def __init__(self, signal: Signal, factory: Any) -> None:
        self._out = _claim(
            "buzzer",
            signal,
            lambda: DigitalOutputDevice(
                signal.bcm, active_high=signal.active_high, initial_value=False, pin_factory=factory
            ),
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def play(self, pattern: Pattern) -> None:
        """Start ``pattern`` (returns at once), cutting short any pattern still playing."""
        with self._lock:
            self._halt()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(pattern, self._stop), name="buzzer", daemon=True
            )
            self._thread.start()

    def _run(self, pattern: Pattern, stop: threading.Event) -> None:
        try:
            for on_s, off_s in pattern.steps:
                self._out.on()
                if stop.wait(on_s):
                    return
                self._out.off()
                if off_s and stop.wait(off_s):
                    return
        finally:
            self._out.off()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
        self._thread = None

    def wait_idle(self, timeout_s: float) -> bool:
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def silence(self) -> None:
        with self._lock:
            self._halt()

    def close(self) -> None:
        self.silence()
        self._out.close()


class GpioTamperSwitch:
    """The enclosure microswitch. Open (or a cut wire) reads as inactive: fail-safe."""

    def __init__(self, signal: Signal, factory: Any, debounce_s: float) -> None:
        self._in = _claim(
            "tamper switch",
            signal,
            lambda: DigitalInputDevice(
                signal.bcm,
                bounce_time=debounce_s or None,
                pin_factory=factory,
                **_input_pull(signal),
            ),
        )
        self._opened = _Subscribers("tamper open")
        self._closed = _Subscribers("tamper close")
        # the switch is *active* while the lid holds it closed
        self._in.when_deactivated = self._opened.fire
        self._in.when_activated = self._closed.fire

    @property
    def is_open(self) -> bool:
        return not self._in.is_active

    def on_open(self, callback: Callback) -> None:
        self._opened.add(callback)

    def on_close(self, callback: Callback) -> None:
        self._closed.add(callback)

    def close(self) -> None:
        self._in.close()


class GpioWakeInput:
    """A wake line: the fingerprint sensor's touch-wake output or a PIR sensor's output."""

    def __init__(self, what: str, signal: Signal, factory: Any) -> None:
        self._in = _claim(
            what,
            signal,
            lambda: DigitalInputDevice(signal.bcm, pin_factory=factory, **_input_pull(signal)),
        )
        self._subscribers = _Subscribers(what)
        self._in.when_activated = self._subscribers.fire

    @property
    def active(self) -> bool:
        return bool(self._in.is_active)

    def subscribe(self, callback: Callback) -> None:
        self._subscribers.add(callback)

    def close(self) -> None:
        self._in.close()
