"""Dim the screen when nobody is there; wake it on touch, motion or a finger.

Driven, not threaded: the daemon calls :meth:`IdleDimmer.tick` from its loop (sleeping
:meth:`IdleDimmer.seconds_to_next_change` in between) and wires :meth:`IdleDimmer.activity`
to the touch screen, the PIR and the fingerprint touch-wake line. Time comes from an injected
monotonic clock. Thread-safe: ``activity`` may be called from the GPIO pin-event thread.

May import: the standard library, ``drivers.display``.
"""

from __future__ import annotations

import threading

from drivers.display.interface import Backlight, DisplaySettings, MonotonicClock, ScreenState


class IdleDimmer:
    def __init__(
        self, backlight: Backlight, clock: MonotonicClock, settings: DisplaySettings
    ) -> None:
        self._backlight = backlight
        self._clock = clock
        self._settings = settings
        self._lock = threading.Lock()
        self._last_ns = clock.monotonic_ns()
        self._state = ScreenState.AWAKE
        self._wakes = 0

    @property
    def state(self) -> ScreenState:
        return self._state

    @property
    def wakes(self) -> int:
        """How many times activity brought the screen back from dimmed or off."""
        return self._wakes

    def start(self) -> None:
        """Full brightness now; the idle countdown starts. Raises DisplayError."""
        with self._lock:
            self._last_ns = self._clock.monotonic_ns()
            self._backlight.wake()
            self._state = ScreenState.AWAKE

    def activity(self) -> None:
        """Someone is there (touch, motion, finger): restart the countdown, wake if needed."""
        with self._lock:
            self._last_ns = self._clock.monotonic_ns()
            if self._state is not ScreenState.AWAKE:
                self._backlight.wake()
                self._state = ScreenState.AWAKE
                self._wakes += 1

    def _idle_s(self) -> float:
        return (self._clock.monotonic_ns() - self._last_ns) / 1e9

    def tick(self) -> ScreenState:
        """Dim or switch off if idle long enough; returns the state. Raises DisplayError."""
        s = self._settings
        with self._lock:
            idle = self._idle_s()
            if s.off_after_s and idle >= s.off_after_s:
                if self._state is not ScreenState.OFF:
                    self._backlight.off()
                    self._state = ScreenState.OFF
            elif idle >= s.dim_after_s and self._state is ScreenState.AWAKE:
                self._backlight.dim()
                self._state = ScreenState.DIMMED
            return self._state

    def seconds_to_next_change(self) -> float | None:
        """Seconds until ``tick`` would next change something; None when nothing is due
        (off, or dimmed with no off time)."""
        s = self._settings
        with self._lock:
            idle = self._idle_s()
            if self._state is ScreenState.AWAKE:
                return max(0.0, s.dim_after_s - idle)
            if self._state is ScreenState.DIMMED and s.off_after_s:
                return max(0.0, s.off_after_s - idle)
            return None
