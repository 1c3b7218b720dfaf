"""``kioskctl selftest`` and ``kioskctl update``: an update is kept only after the running
kiosk has proved itself, and nobody is rebooted out of the middle of a check-in.

The self-test asks the *running* system (the services own the hardware): the three services
are up; kiosk.service's health report is fresh; its ``boot`` record was
committed (the outbox took a durable write); the fingerprint sensor answered; the camera gave
a real frame; the browser is showing the screen (its heartbeat is recent); no part is
simulated on a real kiosk; and the hardware watchdog is armed and fed by PID 1 (a failure
there rejects an update only on a kiosk that has had it armed: daemon/kioskctl/watchdog.py).

``--commit`` acts on the result (docs/updates.md):

- trial boot of an update, passed: ``rauc status mark-good booted`` (our backend then points
  the firmware's ``[all]`` at this slot: the update is kept);
- trial boot, failed: ``rauc status mark-bad booted`` and a plain reboot, which the firmware
  sends back to the old slot;
- back on the old slot after a trial that never reported (crash, hang, power cut): the new
  slot is marked bad and the field engineer is told;
- an ordinary boot: mark-good when it passed; when it failed, nothing to fall back to, so it
  says so and exits 1 (the kiosk keeps running on its fallbacks).

May import: the standard library, ``daemon.*``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import health
from daemon.bootslots import BootSlotError, TrybootSlots, from_env
from daemon.kioskctl import watchdog
from daemon.kioskctl.context import Context
from daemon.kioskctl.progress import Progress
from daemon.kioskctl.report import Check, exit_status, failed, passed, warned

SERVICES = ("kiosk.service", "kiosk-ui.service", "kiosk-sync.service")
FRESH_S = 20.0  # the report is rewritten every 3 s
UI_BEAT_S = 30.0  # the page beats every 10 s
PART_FIX = {
    "fingerprint": "check the sensor's cable and power (kioskctl doctor shows the detail)",
    "camera": "check the camera ribbon and that nothing covers the lens",
    "display": "check the display cable and its power",
}


def evaluate(
    report: Mapping[str, Any] | None,
    services: tuple[int, str] | None,
    *,
    allow_simulated: bool,
    now: float | None = None,
) -> list[Check]:
    """The self-test's verdict from what the system reports (pure: tests give it inputs)."""
    rows: list[Check] = []
    if services is None:
        rows.append(warned("services", "systemd is not available here", "run on the kiosk"))
    else:
        states = dict(zip(SERVICES, services[1].split(), strict=False))
        down = [f"{u} {states.get(u, '?')}" for u in SERVICES if states.get(u) != "active"]
        if down:
            rows.append(
                failed(
                    "services",
                    "not running: " + ", ".join(down),
                    "journalctl -b -u kiosk.service -u kiosk-ui.service -u kiosk-sync.service",
                )
            )
        else:
            rows.append(passed("services", "kiosk, kiosk-ui and kiosk-sync are running"))
    if report is None:
        rows.append(
            failed(
                "health report",
                "kiosk.service has written no health report",
                "is kiosk.service running? journalctl -b -u kiosk.service",
            )
        )
        return rows
    age = health.age_s(report, now)
    # Fresh is enough to be this boot's: under systemd the report is on tmpfs (/run), and a
    # stale one is rejected. (The boot ID is not compared: a container's services and a shell
    # in it can see different ones.)
    if age > FRESH_S:
        rows.append(
            failed(
                "health report",
                f"stale (written {age:.0f} s ago)",
                "kiosk.service is hung or stopped: journalctl -b -u kiosk.service",
            )
        )
        return rows
    rows.append(passed("health report", f"fresh ({age:.0f} s old), version {report.get('app')}"))
    seq = report.get("boot_record_seq")
    if isinstance(seq, int):
        rows.append(passed("outbox", f"this boot's record is stored durably (seq {seq})"))
    else:
        rows.append(failed("outbox", "no boot record was stored", "kioskctl doctor"))
    faults: Mapping[str, str] = report.get("faults") or {}
    for part in ("fingerprint", "camera", "display"):
        if part in faults:
            rows.append(failed(part, f"failed: {faults[part]}", PART_FIX[part]))
        elif part == "camera" and report.get("camera_probe") != "ok":
            rows.append(failed("camera", "no test frame taken yet", PART_FIX["camera"]))
        else:
            what = {"fingerprint": "the sensor answered", "camera": "took a real frame"}
            rows.append(passed(part, what.get(part, "no fault")))
    beat = report.get("ui_beat_age_s")
    if beat is None or beat > UI_BEAT_S:
        rows.append(
            failed(
                "screen",
                "the browser is not showing the check-in screen"
                + ("" if beat is None else f" (last heartbeat {beat:.0f} s ago)"),
                "journalctl -b -u kiosk-ui.service; check the display",
            )
        )
    else:
        rows.append(passed("screen", f"the check-in screen is up (heartbeat {beat:.0f} s ago)"))
    simulated = report.get("simulated") or []
    if simulated and not allow_simulated:
        rows.append(
            failed(
                "real hardware",
                "simulated: " + ", ".join(simulated),
                "set real backends in /etc/kiosk/kiosk.toml",
            )
        )
    return rows


def gather(ctx: Context) -> list[Check]:
    found = health.read(health.candidates(ctx.cfg.device.data_dir))
    services = ctx.parts.run(["systemctl", "is-active", *SERVICES], 5.0)
    rows = evaluate(
        found[1] if found else None,
        services,
        allow_simulated=ctx.cfg.device.allow_simulated,
    )
    # the hardware watchdog: a failure rejects an update only on a kiosk that has had it armed
    # (watchdog.for_update; docs/updates.md, "What the self-test checks")
    return [*rows, watchdog.for_update(watchdog.evaluate(watchdog.read_state(ctx)),
                                       ctx.cfg.device.data_dir)]  # fmt: skip


def wait_for_pass(
    ctx: Context,
    wait_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[Check]:
    """Re-run the checks every 2 s until they pass or ``wait_s`` is up (a kiosk that has just
    booted needs some seconds before the browser's first heartbeat)."""
    deadline = monotonic() + wait_s
    while True:
        rows = gather(ctx)
        if exit_status(rows) == 0 or monotonic() >= deadline:
            return rows
        sleep(2.0)


@dataclass(frozen=True)
class Decision:
    action: str  # committed | confirmed | rolled_back | failed | no_slots
    message: str
    exit: int


def _mark(ctx: Context, slots: TrybootSlots, slot: str, good: bool) -> str:
    """Through RAUC when it is installed (it keeps its own status and calls our backend);
    straight to the slots when it is not."""
    word = "mark-good" if good else "mark-bad"
    got = ctx.parts.run(["rauc", "status", word, "booted"], 60.0)
    if got is not None and got[0] == 0:
        return "rauc"
    if got is not None:
        raise BootSlotError(f"rauc status {word} failed: {got[1].strip()[:200]}")
    slots.set_state(slot, good)
    return "direct"


def decide(
    ctx: Context,
    rows: list[Check],
    slots: TrybootSlots | None,
    *,
    until_idle: Callable[[Context], bool] | None = None,
) -> Decision:
    """Act on the self-test (module docstring). ``until_idle`` blocks until nobody is
    mid-check-in (default: :func:`wait_until_idle`, up to 10 minutes): a failed update is
    rolled back, but not out from under someone reporting on it."""
    ok = exit_status(rows) == 0
    if slots is None:
        return Decision(
            "no_slots",
            "self-test " + ("passed" if ok else "FAILED") + "; this machine has no A/B slots",
            0 if ok else 1,
        )
    notes = []
    gone = slots.pending_failure()
    if gone is not None:
        slots.give_up_trial(gone)
        notes.append(
            f"the update in slot {gone} never passed its trial boot, so the kiosk came back on "
            f"slot {slots.booted()}; slot {gone} is marked bad. Send `kioskctl bundle` to the "
            "central team."
        )
    booted, trial = slots.booted(), slots.is_trial()
    if ok:
        _mark(ctx, slots, booted, True)
        what = (
            f"update kept: slot {booted} passed its self-test and now boots by default"
            if trial
            else f"slot {booted} confirmed good"
        )
        return Decision("committed" if trial else "confirmed", " ".join([*notes, what]), 0)
    if trial:
        _mark(ctx, slots, booted, False)  # from now on, any reboot is back to the old slot
        (until_idle or (lambda c: wait_until_idle(c, 600.0)))(ctx)
        ctx.parts.run(["systemctl", "reboot"], 30.0)
        return Decision(
            "rolled_back",
            " ".join(
                [
                    *notes,
                    f"update REJECTED: slot {booted} failed its self-test; rebooting into slot "
                    f"{slots.committed()}, which is unchanged",
                ]
            ),
            1,
        )
    return Decision(
        "failed",
        " ".join(
            [
                *notes,
                f"self-test FAILED on slot {booted}, the only working system: the kiosk keeps "
                "running on its fallbacks. Fix what the table says, or call the field engineer.",
            ]
        ),
        1,
    )


def check_slots(ctx: Context) -> list[Check]:
    """doctor's row for the A/B slots (none on a machine that is not the kiosk image)."""
    slots = open_slots()
    if slots is None:
        return []
    try:
        booted, trial, committed = slots.booted(), slots.is_trial(), slots.committed()
        bad = [n for n in sorted(slots.partitions) if slots.state(n) == "bad"]
        failure = slots.pending_failure()
    except BootSlotError as exc:
        return [failed("update slots", str(exc), "see docs/updates.md")]
    where = f"running slot {booted}"
    if failure is not None:
        return [
            warned(
                "update slots",
                f"{where}: the update in slot {failure} never passed its trial boot",
                "kioskctl selftest --commit records it; send `kioskctl bundle` to the central team",
            )
        ]
    if trial:
        return [
            warned(
                "update slots",
                f"{where} as an unproven trial; slot {committed} is the fallback",
                "kioskctl selftest --commit (kiosk-boot-check.service does this after a boot)",
            )
        ]
    detail = f"{where}, the default" + (
        f"; slot {', '.join(bad)} marked bad (a rejected update)" if bad else ""
    )
    if bad:
        return [warned("update slots", detail, "install a fixed update: kioskctl update BUNDLE")]
    return [passed("update slots", detail)]


def open_slots(env: Mapping[str, str] | None = None) -> TrybootSlots | None:
    """This card's slots, or None when it is not an A/B kiosk image (a laptop, the demo)."""
    slots = from_env(env)
    if not slots.path.exists():
        return None
    return slots


def wait_until_idle(
    ctx: Context,
    max_wait_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> bool:
    """True once nobody is mid-check-in (or the kiosk is not running); False if someone still
    is after ``max_wait_s``."""
    deadline = monotonic() + max_wait_s
    while True:
        found = health.read(health.candidates(ctx.cfg.device.data_dir))
        report = found[1] if found else None
        if report is None or health.age_s(report) > FRESH_S or not report.get("busy"):
            return True
        if monotonic() >= deadline:
            return False
        sleep(1.0)


def update(
    ctx: Context,
    bundle: Path,
    slots: TrybootSlots,
    *,
    reboot: bool = True,
    max_wait_s: float = 600.0,
    say: Callable[[str], None] = print,
    progress: Progress | None = None,
) -> int:
    """Install ``bundle`` with RAUC into the other slot, then (when nobody is checking in)
    reboot once into it as a trial. ``progress``: a bar (0-100) fed from RAUC's own
    percentages."""
    if slots.is_trial():
        say(
            "this boot is itself an unproven update: run `kioskctl selftest --commit` first "
            "(it keeps or rejects it), then install the next one"
        )
        return 1
    say(f"installing {bundle.name} into the other slot (the running system is not touched)")
    bar = progress or Progress("install", 100, enabled=False)

    def on_line(line: str) -> None:  # rauc prints "  40% Checking bundle done."
        pct, _, _rest = line.strip().partition("%")
        if pct.isdigit() and int(pct) > bar.done:
            bar.advance(int(pct) - bar.done)

    with bar:
        got = ctx.parts.stream(["rauc", "install", str(bundle)], 1800.0, on_line)
    if got is None:
        say("rauc is not installed or did not finish in 30 minutes; nothing was changed")
        return 1
    if got[0] != 0:
        tail = got[1].strip().splitlines()[-3:]
        say("rauc refused the bundle; nothing will boot from it:\n  " + "\n  ".join(tail))
        return 1
    target = slots.primary()
    say(f"installed into slot {target}")
    if not reboot:
        say("not rebooting (--no-reboot): the next `kioskctl update --reboot-only` tries it")
        return 0
    return reboot_into_trial(ctx, slots, max_wait_s=max_wait_s, say=say)


def reboot_into_trial(
    ctx: Context,
    slots: TrybootSlots,
    *,
    max_wait_s: float = 600.0,
    say: Callable[[str], None] = print,
) -> int:
    if not wait_until_idle(ctx, max_wait_s):
        say(
            f"someone has been checking in for over {max_wait_s:.0f} s; not rebooting. The "
            "update stays installed: run `kioskctl update --reboot-only` later."
        )
        return 1
    target = slots.start_trial()
    say(f"rebooting once into slot {target}; it is kept only if its self-test passes")
    ctx.parts.run(["systemctl", "reboot", "0 tryboot"], 30.0)
    return 0
