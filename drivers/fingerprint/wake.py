"""The R503's finger-detect (WAKEUP) output read through a gpiozero input.

The pin factory is passed in (lgpio on the Pi, gpiozero's MockFactory in tests), never the
global default. Waiting blocks the calling thread on gpiozero's edge event: no busy polling.

May import: the standard library and gpiozero (lazily, in the constructor).
"""

from __future__ import annotations

from typing import Any


class GpioTouchWake:
    """:class:`drivers.fingerprint.kiosk.TouchWake` on a BCM pin.

    ``active_high``: the output is high while a finger touches (the R503 drives it so; set
    False for a board that inverts it). Raises SensorMissing if the pin cannot be claimed.
    """

    def __init__(self, pin: int, *, pin_factory: Any, active_high: bool = True) -> None:
        from gpiozero import DigitalInputDevice, GPIOZeroError

        from drivers.fingerprint.interface import SensorMissing

        try:
            self._dev = DigitalInputDevice(
                pin, pull_up=None, active_state=active_high, pin_factory=pin_factory
            )
        except GPIOZeroError as exc:
            raise SensorMissing(
                f"the sensor's wake pin GPIO{pin} cannot be used: check fingerprint.wake_pin"
            ) from exc

    def wait(self, touched: bool, timeout_s: float) -> bool:
        """Block until touched/released (seconds); True at once if already so."""
        timeout = max(0.0, timeout_s)
        if touched:
            return bool(self._dev.wait_for_active(timeout))
        return bool(self._dev.wait_for_inactive(timeout))

    def close(self) -> None:
        self._dev.close()
