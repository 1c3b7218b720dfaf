"""The simulated screen: a temporary sysfs-like folder with a backlight and a touch panel,
which the real sysfs code (drivers/display/sysfs.py) reads and writes unchanged.

Test control in domain terms: ``unplug_touch``, ``plug_touch``, ``break_backlight``; read
back what a person would see with ``raw_brightness`` and ``powered``.

May import: the standard library, ``drivers.display``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from drivers.display.sysfs import ABS_MT_POSITION_X, ABS_X, INPUT_PROP_DIRECT, LONG_BITS

BACKLIGHT = "sim-backlight"
TOUCH_NAME = "Simulated Touch Display"
MAX_BRIGHTNESS = 255


def _bitmap(bits: set[int]) -> str:
    words = [0] * (max(bits) // LONG_BITS + 1)
    for b in bits:
        words[b // LONG_BITS] |= 1 << (b % LONG_BITS)
    return " ".join(f"{w:x}" for w in reversed(words)) + "\n"


class SimulatedSysfs:
    """Owns a temporary folder laid out like ``/sys``; ``close()`` removes it (idempotent)."""

    def __init__(self, root: Path | None = None) -> None:
        self._owned = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="kiosk-sysfs-"))
        bl = self.backlight_dir
        bl.mkdir(parents=True, exist_ok=True)
        (bl / "max_brightness").write_text(f"{MAX_BRIGHTNESS}\n")
        (bl / "brightness").write_text(f"{MAX_BRIGHTNESS}\n")
        (bl / "bl_power").write_text("0\n")
        # a keyboard-like device that must not be mistaken for a touch panel
        self._input("event0", "Simulated Keyboard", abs_bits={ABS_X}, props=set())
        self.plug_touch()

    @property
    def backlight_dir(self) -> Path:
        return self.root / "class" / "backlight" / BACKLIGHT

    def _input(self, event: str, name: str, abs_bits: set[int], props: set[int]) -> None:
        dev = self.root / "class" / "input" / event / "device"
        (dev / "capabilities").mkdir(parents=True, exist_ok=True)
        (dev / "name").write_text(name + "\n")
        (dev / "capabilities" / "abs").write_text(_bitmap(abs_bits) if abs_bits else "0\n")
        (dev / "properties").write_text(_bitmap(props) if props else "0\n")

    def plug_touch(self, name: str = TOUCH_NAME) -> None:
        self._input("event1", name, {ABS_X, 0x01, ABS_MT_POSITION_X, 0x36}, {INPUT_PROP_DIRECT})

    def unplug_touch(self) -> None:
        shutil.rmtree(self.root / "class" / "input" / "event1", ignore_errors=True)

    def break_backlight(self) -> None:
        """The backlight's brightness file can no longer be written (a driver fault)."""
        path = self.backlight_dir / "brightness"
        path.unlink()
        path.mkdir()

    def raw_brightness(self) -> int:
        return int((self.backlight_dir / "brightness").read_text())

    def powered(self) -> bool:
        return int((self.backlight_dir / "bl_power").read_text()) == 0

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)
