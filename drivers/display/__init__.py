"""The kiosk screen: backlight power and brightness through sysfs, idle dimming, and touch
panel presence for diagnostics. :func:`open_display` is the one factory the composition root
calls.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import TracebackType

from drivers.display.dimmer import IdleDimmer
from drivers.display.interface import (
    Backlight,
    BacklightNotFound,
    DisplayError,
    DisplaySettings,
    MonotonicClock,
    ScreenState,
    TouchDevice,
)
from drivers.display.simulated import SimulatedSysfs
from drivers.display.sysfs import SysfsBacklight, find_touch_devices


@dataclass(frozen=True, slots=True)
class Display:
    """The opened screen. ``sim`` is the test control of a simulated screen (None on a Pi)."""

    backlight: SysfsBacklight
    dimmer: IdleDimmer
    settings: DisplaySettings
    sim: SimulatedSysfs | None = None

    def touch_devices(self) -> list[TouchDevice]:
        """Touch panels the kernel sees now (diagnostics; empty list when none)."""
        return find_touch_devices(self.settings.sysfs_root)

    def close(self) -> None:
        """Leave the backlight on (a kiosk that stops must not look dead) and clean up."""
        if self.sim is not None:
            self.sim.close()

    def __enter__(self) -> Display:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_display(settings: DisplaySettings, clock: MonotonicClock) -> Display:
    """Find the backlight, wake the screen and start the idle countdown.

    ``backend = "simulated"`` builds a temporary sysfs-like folder (removed by ``close``).
    Raises BacklightNotFound, DisplayError.
    """
    sim: SimulatedSysfs | None = None
    if settings.backend == "simulated":
        sim = SimulatedSysfs()
        settings = dataclasses.replace(settings, sysfs_root=sim.root, backlight="")
    try:
        backlight = SysfsBacklight(settings)
        dimmer = IdleDimmer(backlight, clock, settings)
        dimmer.start()
    except BaseException:
        if sim is not None:
            sim.close()
        raise
    return Display(backlight, dimmer, settings, sim)


__all__ = [
    "Backlight",
    "BacklightNotFound",
    "Display",
    "DisplayError",
    "DisplaySettings",
    "IdleDimmer",
    "ScreenState",
    "SimulatedSysfs",
    "SysfsBacklight",
    "TouchDevice",
    "find_touch_devices",
    "open_display",
]
