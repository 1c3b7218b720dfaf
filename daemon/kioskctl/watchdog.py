"""The hardware watchdog row of ``kioskctl doctor`` and of the boot self-test: is the SoC's
watchdog running, and is PID 1 the one feeding it?

A kiosk whose kernel or whole system hangs is reset only by the hardware watchdog, which PID 1
feeds (``RuntimeWatchdogSec=14s``, systemd/system.conf.d/kiosk-watchdog.conf; docs/systemd.md,
"Hardware watchdog"). Nothing else on the device notices when it is not armed: a missing
driver, a timeout the SoC refused (the BCM2835 tops out near 15 s; systemd#27427 leaves no
watchdog at all), or a lost drop-in. It reads:

- ``<sysfs>/class/watchdog/watchdog0/{state,timeout,max_timeout,identity}`` (the sysfs root is
  injectable: tests give a fake tree);
- PID 1's own setting, ``systemctl show --property=RuntimeWatchdogUSec`` (0: off; ``infinity``:
  fed at the driver's default timeout);
- ``<sysfs>/firmware/devicetree/base/model``, to tell a Raspberry Pi, whose SoC always has a
  watchdog (none means a missing driver), from a container or a development machine (none is
  expected there: a warning, not a failure).

For the update's self-test see :func:`for_update`: a watchdog this kiosk has never had armed
warns instead of failing, so a board without a working watchdog does not reject every update.

May import: the standard library, ``daemon.kioskctl.*``.
"""

from __future__ import annotations

import contextlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from daemon.kioskctl.context import Context
from daemon.kioskctl.report import Check, failed, passed, warned

NAME = "watchdog"
#: a file on the data partition (shared by both slots) saying this kiosk has had its watchdog
#: armed: from then on, an update that loses it is rejected
MARKER = "watchdog-armed"
DROPIN = "/etc/systemd/system.conf.d/kiosk-watchdog.conf"
FIX_PID1 = (
    f"install {DROPIN} (RuntimeWatchdogSec=14s, from the kiosk's systemd/ folder), then "
    "`sudo systemctl daemon-reexec`; `dmesg | grep -i watchdog` says what the kernel refused"
)
FIX_DRIVER = (
    "the SoC's watchdog has no driver: `dtparam=watchdog=on` in /boot/firmware/config.txt, "
    "reboot, then `dmesg | grep -i wdt`"
)
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class WatchdogState:
    """What the machine says. ``None`` is "could not be read"."""

    #: /sys/class/watchdog exists (the kernel has watchdog support)
    supported: bool
    #: /sys/class/watchdog/watchdog0 exists (a driver is bound)
    present: bool
    #: the device tree names a Raspberry Pi
    raspberry_pi: bool
    state: str | None = None  # "active" or "inactive"
    timeout_s: int | None = None
    max_timeout_s: int | None = None
    identity: str | None = None
    #: PID 1's RuntimeWatchdogUSec in seconds: 0.0 off, ``math.inf`` the driver's default,
    #: None when systemd could not be asked (not running here)
    pid1_s: float | None = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip("\x00 \n")
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def parse_timespan(text: str) -> float | None:
    """systemd's printed time span in seconds: ``14s``, ``1min 30s``, ``500ms``, ``0``,
    ``infinity`` (``math.inf``); a bare number is microseconds. None if unreadable."""
    text = text.strip()
    if text == "infinity":
        return math.inf
    if text.isdigit():
        return int(text) * 1e-6
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(us|ms|min|s|h|d)", text)
    if not parts or re.sub(r"[\d.\s]|us|ms|min|s|h|d", "", text):
        return None
    return sum(float(n) * _UNITS[unit] for n, unit in parts)


def read_state(ctx: Context) -> WatchdogState:
    """Read the watchdog's sysfs files under ``ctx.sysfs`` and ask PID 1 (via
    ``ctx.parts.run``, 5 s)."""
    root = Path(ctx.sysfs)
    wd = root / "class" / "watchdog" / "watchdog0"
    model = _read(root / "firmware" / "devicetree" / "base" / "model") or ""
    pid1: float | None = None
    got = ctx.parts.run(["systemctl", "show", "--property=RuntimeWatchdogUSec"], 5.0)
    if got is not None and got[0] == 0:
        for line in got[1].splitlines():
            key, _, value = line.partition("=")
            if key == "RuntimeWatchdogUSec":
                pid1 = parse_timespan(value)
    return WatchdogState(
        supported=(root / "class" / "watchdog").is_dir(),
        present=wd.is_dir(),
        raspberry_pi=model.startswith("Raspberry Pi"),
        state=_read(wd / "state"),
        timeout_s=_int(_read(wd / "timeout")),
        max_timeout_s=_int(_read(wd / "max_timeout")),
        identity=_read(wd / "identity"),
        pid1_s=pid1,
    )


def _span(seconds: float) -> str:
    return "the driver's default" if math.isinf(seconds) else f"{seconds:g} s"


def evaluate(w: WatchdogState) -> Check:
    """The doctor's verdict (pure)."""
    if not w.present:
        if w.raspberry_pi:
            return failed(NAME, "no watchdog device: a hung kiosk will never be reset", FIX_DRIVER)
        where = "no watchdog device" if w.supported else "no /sys/class/watchdog"
        return warned(
            NAME,
            f"{where} on this machine (a container or a development machine)",
            "nothing to do off the kiosk; on a kiosk see docs/systemd.md, 'Hardware watchdog'",
        )
    what = w.identity or "watchdog0"
    if w.pid1_s is None:
        return warned(
            NAME,
            f"{what} is {w.state or 'in an unknown state'}; PID 1 cannot be asked (systemd is "
            "not running here)",
            "run kioskctl on the kiosk itself",
        )
    if w.pid1_s == 0:
        return failed(
            NAME,
            f"PID 1 does not feed the watchdog (RuntimeWatchdogUSec=0); {what} is "
            f"{w.state or 'in an unknown state'}: a hung kiosk will not be reset",
            FIX_PID1,
        )
    if w.max_timeout_s is not None and w.pid1_s > w.max_timeout_s and not math.isinf(w.pid1_s):
        return failed(
            NAME,
            f"PID 1 asks for {_span(w.pid1_s)} but {what} tops out at {w.max_timeout_s} s, so "
            "it may not be armed at all (systemd#27427)",
            f"set RuntimeWatchdogSec to at most {w.max_timeout_s - 1}s in {DROPIN}, then "
            "`sudo systemctl daemon-reexec`",
        )
    if w.state is not None and w.state != "active":
        return failed(
            NAME,
            f"{what} is {w.state} although PID 1 asks for {_span(w.pid1_s)}: the kernel or the "
            "driver refused it, and a hung kiosk will not be reset",
            "`dmesg | grep -i watchdog` and `journalctl -b -p warning _PID=1`; " + FIX_PID1,
        )
    timeout = f", hardware timeout {w.timeout_s} s" if w.timeout_s is not None else ""
    if w.state is None:
        return warned(
            NAME,
            f"PID 1 feeds {what} ({_span(w.pid1_s)}){timeout}, but the kernel does not show "
            "its state",
            "`dmesg | grep -i watchdog` to confirm it was armed (a kernel without "
            "CONFIG_WATCHDOG_SYSFS hides it)",
        )
    return passed(NAME, f"{what} active{timeout}, fed by PID 1 ({_span(w.pid1_s)})")


def check_watchdog(ctx: Context) -> list[Check]:
    """doctor's row."""
    return [evaluate(read_state(ctx))]


def for_update(row: Check, data_dir: Path) -> Check:
    """The watchdog row as the update's self-test counts it.

    A pass is remembered (:data:`MARKER` in ``data_dir``, on the data partition both slots
    share). A failure rejects the update only when this kiosk has had its watchdog armed
    before: then the update is what lost it (a kernel without the driver, a drop-in gone, a
    timeout the SoC refuses), and going back undoes it. On a board where it has never been
    armed, going back cannot arm it, and failing would reject every update, security fixes
    included: there the row warns (the doctor still fails it, for the engineer)."""
    marker = Path(data_dir) / MARKER
    if row.status == "pass":
        if not marker.exists():
            with contextlib.suppress(OSError):
                marker.write_text(row.detail + "\n", encoding="utf-8")
        return row
    if row.status == "fail" and not marker.exists():
        return warned(
            row.name,
            row.detail + " (never armed on this kiosk: not a reason to reject an update)",
            row.fix,
        )
    return row
