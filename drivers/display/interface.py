"""What the kiosk sees of its screen, in kiosk words: a backlight it can wake and dim, and
whether a touch panel is present (for diagnostics).

May import: the standard library, ``daemon.errors``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from daemon.errors import DeviceNotFound, DriverError


class DisplayError(DriverError):
    reason = "display"


class BacklightNotFound(DeviceNotFound):
    reason = "backlight_not_found"


class ScreenState(enum.Enum):
    AWAKE = "awake"
    DIMMED = "dimmed"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class TouchDevice:
    """A touch panel the kernel exposes as an evdev device (``event`` e.g. ``event3``)."""

    name: str
    event: str


class Backlight(Protocol):
    @property
    def brightness(self) -> float:
        """The current brightness, 0.0-1.0 (read back from the device)."""
        ...

    def set_brightness(self, fraction: float) -> None:
        """Set brightness 0.0-1.0 (0.0 powers the backlight off). Raises DisplayError."""
        ...

    def wake(self) -> None:
        """Full (configured) brightness."""
        ...

    def dim(self) -> None:
        """The configured idle brightness."""
        ...

    def off(self) -> None: ...


class MonotonicClock(Protocol):
    """The part of ``daemon.clock.Clock`` the dimmer needs."""

    def monotonic_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DisplaySettings:
    """The ``[display]`` configuration section.

    ``backend``: ``sysfs`` on a Pi; ``simulated`` builds a temporary sysfs-like folder
    (refused by the composition root unless ``allow_simulated``). ``sysfs_root``: where
    ``class/backlight`` and ``class/input`` live (``/sys``). ``backlight``: the device name
    under ``class/backlight`` (empty: the only one there). ``awake_brightness`` and
    ``dim_brightness``: 0.0-1.0. ``dim_after_s``: idle seconds before dimming;
    ``off_after_s``: idle seconds before the backlight goes off (0: never).
    """

    backend: Literal["sysfs", "simulated"] = "sysfs"
    sysfs_root: Path = Path("/sys")
    backlight: str = ""
    awake_brightness: float = 1.0
    dim_brightness: float = 0.15
    dim_after_s: float = 60.0
    off_after_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.awake_brightness <= 1:
            raise ValueError(f"awake_brightness: {self.awake_brightness} is not in (0, 1]")
        if not 0 <= self.dim_brightness <= self.awake_brightness:
            raise ValueError(f"dim_brightness: {self.dim_brightness} is not in [0, awake]")
        if self.dim_after_s <= 0:
            raise ValueError(f"dim_after_s: {self.dim_after_s} must be > 0")
        if self.off_after_s and self.off_after_s <= self.dim_after_s:
            raise ValueError("off_after_s: must be 0 (never) or longer than dim_after_s")
        if "/" in self.backlight or self.backlight in (".", ".."):
            raise ValueError(f"backlight: {self.backlight!r} is not a device name")
