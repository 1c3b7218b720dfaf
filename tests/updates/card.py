"""A Raspberry Pi's SD card as the boot code sees it, for the update tests.

``Card.power_on(tryboot=...)`` does what the Pi firmware does with ``autoboot.txt`` (Raspberry
Pi documentation, "autoboot.txt" and "chosen/bootloader"): with ``tryboot_a_b=1`` it boots
the ``[tryboot]`` partition when the previous reboot asked for a tryboot, else the ``[all]``
one, and reports what it did in the device tree as 4-byte big-endian cells (``partition``,
``tryboot``). The tryboot request is one-shot: the next power-on without it boots ``[all]``.
"""

from __future__ import annotations

from pathlib import Path

from daemon.bootslots import Autoboot, TrybootSlots

FRESH = Autoboot(committed=2, trial=2).render()


class Card:
    def __init__(self, root: Path) -> None:
        self.autoboot_dir = root / "autoboot"
        self.devicetree = root / "proc-device-tree-chosen-bootloader"
        self.autoboot_dir.mkdir(parents=True)
        self.devicetree.mkdir(parents=True)
        (self.autoboot_dir / "autoboot.txt").write_text(FRESH)
        self.power_on()

    @property
    def autoboot(self) -> Path:
        return self.autoboot_dir / "autoboot.txt"

    def slots(self) -> TrybootSlots:
        return TrybootSlots(self.autoboot_dir, self.devicetree)

    def env(self) -> dict[str, str]:
        return {
            "KIOSK_AUTOBOOT_DIR": str(self.autoboot_dir),
            "KIOSK_DEVICETREE": str(self.devicetree),
        }

    def power_on(self, *, tryboot: bool = False) -> int:
        """Boot as the firmware would; return the partition booted."""
        section, parts, ab = "all", {}, False
        for line in self.autoboot.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            if key == "tryboot_a_b":
                ab = value == "1"
            elif key == "boot_partition":
                parts[section] = int(value)
        assert ab, "the firmware model only covers tryboot_a_b=1 cards"
        chosen = parts["tryboot"] if tryboot and "tryboot" in parts else parts["all"]
        (self.devicetree / "partition").write_bytes(chosen.to_bytes(4, "big"))
        (self.devicetree / "tryboot").write_bytes(int(tryboot).to_bytes(4, "big"))
        return chosen
