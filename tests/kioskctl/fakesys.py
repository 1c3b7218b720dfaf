"""A fake sysfs tree and systemctl for the hardware watchdog row (daemon/kioskctl/watchdog.py):
what a Raspberry Pi 5 running the kiosk image shows, changed one thing at a time."""

from __future__ import annotations

from pathlib import Path

from daemon.kioskctl.parts import Runner, RunResult

PI5 = "Raspberry Pi 5 Model B Rev 1.0"
BCM = "Broadcom BCM2835 Watchdog timer"


def fake_sysfs(
    root: Path,
    *,
    supported: bool = True,
    present: bool = True,
    state: str | None = "active",
    timeout: int = 14,
    max_timeout: int | None = 15,
    model: str | None = PI5,
) -> Path:
    """Build ``root`` as a sysfs: /class/watchdog/watchdog0/{state,timeout,max_timeout,
    identity} and /firmware/devicetree/base/model (NUL-terminated, as the kernel has it)."""
    root.mkdir(parents=True, exist_ok=True)
    if model is not None:
        dt = root / "firmware" / "devicetree" / "base"
        dt.mkdir(parents=True, exist_ok=True)
        (dt / "model").write_bytes(model.encode() + b"\x00")
    if supported:
        (root / "class" / "watchdog").mkdir(parents=True, exist_ok=True)
    if supported and present:
        wd = root / "class" / "watchdog" / "watchdog0"
        wd.mkdir()
        (wd / "identity").write_text(BCM + "\n")
        (wd / "timeout").write_text(f"{timeout}\n")
        if max_timeout is not None:
            (wd / "max_timeout").write_text(f"{max_timeout}\n")
        if state is not None:
            (wd / "state").write_text(state + "\n")
    return root


def pid1(runtime_watchdog: str | None = "14s", *, otherwise: Runner | None = None) -> Runner:
    """A runner whose PID 1 answers ``RuntimeWatchdogUSec=<value>`` (None: systemctl is not
    installed); other commands go to ``otherwise`` (default: exit 0, no output)."""

    def run(argv: list[str], timeout_s: float) -> RunResult:
        if argv == ["systemctl", "show", "--property=RuntimeWatchdogUSec"]:
            if runtime_watchdog is None:
                return None
            return 0, f"RuntimeWatchdogUSec={runtime_watchdog}\n"
        return otherwise(argv, timeout_s) if otherwise is not None else (0, "")

    return run
