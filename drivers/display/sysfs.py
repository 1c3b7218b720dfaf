"""The screen through the kernel's sysfs: the backlight in ``class/backlight/<name>`` and
touch panels among the evdev devices in ``class/input/event*``.

The same code runs against ``/sys`` on the Pi and against a temporary sysfs-like folder in
simulation (drivers/display/simulated.py). Writing the backlight needs write access to its
``brightness`` and ``bl_power`` files: install the udev rule from docs/drivers.md.
Each call is one small file read or write (microseconds); not thread-safe on its own (the
:class:`IdleDimmer` serialises its calls).

May import: the standard library, ``daemon.errors``, ``drivers.display``.
"""

from __future__ import annotations

import struct
from pathlib import Path

from drivers.display.interface import (
    BacklightNotFound,
    DisplayError,
    DisplaySettings,
    TouchDevice,
)

FB_BLANK_UNBLANK, FB_BLANK_POWERDOWN = 0, 4
ABS_X, ABS_MT_POSITION_X = 0x00, 0x35
INPUT_PROP_DIRECT = 0x01
#: the kernel prints evdev bitmaps in words of the machine's ``unsigned long``
LONG_BITS = struct.calcsize("L") * 8


class SysfsBacklight:
    """A :class:`Backlight` over ``<root>/class/backlight/<name>``."""

    def __init__(self, settings: DisplaySettings) -> None:
        self._settings = settings
        self._dir = _find_backlight(settings)
        try:
            self._max = int((self._dir / "max_brightness").read_text().strip())
        except (OSError, ValueError) as exc:
            raise DisplayError(
                f"cannot read the backlight's max_brightness in {self._dir} "
                f"({exc.__class__.__name__}); check the display driver, then restart.",
                reason="backlight_unreadable",
            ) from exc
        if self._max <= 0:
            raise DisplayError(f"the backlight in {self._dir} reports max_brightness 0")

    @property
    def path(self) -> Path:
        return self._dir

    @property
    def brightness(self) -> float:
        if self._read("bl_power", FB_BLANK_UNBLANK) != FB_BLANK_UNBLANK:
            return 0.0
        return self._read("brightness", 0) / self._max

    def set_brightness(self, fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"brightness {fraction} is not in [0, 1]")
        raw = round(fraction * self._max)
        if fraction > 0:
            raw = max(1, raw)  # a dim screen must stay readable, never accidentally dark
            self._write("brightness", raw)
            self._write("bl_power", FB_BLANK_UNBLANK)
        else:
            self._write("bl_power", FB_BLANK_POWERDOWN)

    def wake(self) -> None:
        self.set_brightness(self._settings.awake_brightness)

    def dim(self) -> None:
        self.set_brightness(self._settings.dim_brightness)

    def off(self) -> None:
        self.set_brightness(0.0)

    def _read(self, name: str, default: int) -> int:
        try:
            return int((self._dir / name).read_text().strip())
        except FileNotFoundError:
            return default  # bl_power is optional in the kernel's backlight class
        except (OSError, ValueError) as exc:
            raise DisplayError(
                f"cannot read the backlight's {name} ({exc.__class__.__name__}); check the "
                "display driver, then restart the kiosk service.",
                reason="backlight_unreadable",
            ) from exc

    def _write(self, name: str, value: int) -> None:
        path = self._dir / name
        if name == "bl_power" and not path.exists():
            return
        try:
            with path.open("w") as f:
                f.write(f"{value}\n")
        except PermissionError as exc:
            raise DisplayError(
                f"no permission to write {path}; install the backlight udev rule from "
                "docs/drivers.md (or add the service user to the video group) and reboot.",
                reason="backlight_permission",
            ) from exc
        except OSError as exc:
            raise DisplayError(
                f"writing {path} failed ({exc.__class__.__name__}); check the display driver.",
                reason="backlight_write",
            ) from exc


def _find_backlight(settings: DisplaySettings) -> Path:
    base = settings.sysfs_root / "class" / "backlight"
    names = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
    if settings.backlight:
        if settings.backlight in names:
            return base / settings.backlight
        raise BacklightNotFound(
            f"no backlight named {settings.backlight!r} in {base} (found: {names or 'none'}); "
            "fix [display] backlight or check the display cable and overlay.",
        )
    if len(names) == 1:
        return base / names[0]
    if not names:
        raise BacklightNotFound(
            f"no backlight in {base}; check the display's ribbon cable and that its overlay is "
            "enabled in config.txt, then reboot.",
        )
    raise BacklightNotFound(
        f"several backlights in {base} ({', '.join(names)}); name one in [display] backlight.",
    )


def _bits(text: str) -> set[int]:
    """Bit numbers set in a sysfs evdev bitmap (hex words, most significant first)."""
    bits: set[int] = set()
    for i, word in enumerate(reversed(text.split())):
        value = int(word, 16)
        bits.update(i * LONG_BITS + b for b in range(LONG_BITS) if value >> b & 1)
    return bits


def find_touch_devices(sysfs_root: Path) -> list[TouchDevice]:
    """Touch panels among the evdev devices: a direct-input device with absolute X axes.

    For diagnostics (the doctor, the health report); reads sysfs only, never opens
    ``/dev/input``. An unreadable entry is skipped, not an error.
    """
    found: list[TouchDevice] = []
    base = sysfs_root / "class" / "input"
    if not base.is_dir():
        return found
    for event in sorted(base.glob("event*")):
        dev = event / "device"
        try:
            name = (dev / "name").read_text().strip()
            abs_bits = _bits((dev / "capabilities" / "abs").read_text())
            props = _bits((dev / "properties").read_text())
        except (OSError, ValueError):
            continue
        if INPUT_PROP_DIRECT in props and {ABS_X, ABS_MT_POSITION_X} & abs_bits:
            found.append(TouchDevice(name, event.name))
    return found
