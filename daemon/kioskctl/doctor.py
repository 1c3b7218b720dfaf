"""``kioskctl doctor``: every check, one table (or JSON), non-zero exit on any failure.

The order follows what an engineer fixes first: the things that stop the kiosk from taking a
check-in at all (key, disk, outbox), then the network, then the parts, then the units.

May import: ``daemon.kioskctl.*``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from daemon.kioskctl import checks_hw, checks_sys, selftest, watchdog
from daemon.kioskctl.context import Context
from daemon.kioskctl.report import Check, failed

log = logging.getLogger(__name__)
CheckFn = Callable[[Context], list[Check]]

SYSTEM_CHECKS: tuple[CheckFn, ...] = (
    checks_sys.check_key,
    checks_sys.check_disk,
    checks_sys.check_outbox,
    checks_sys.check_roster,
    checks_sys.check_clock,
    checks_sys.check_api,
    checks_hw.check_prompts,
    checks_hw.check_sound,  # reads sysfs only: nothing kiosk.service holds
)
HARDWARE_CHECKS: tuple[CheckFn, ...] = (
    checks_hw.check_sensor,
    checks_hw.check_camera,
    checks_hw.check_gpio,
    checks_hw.check_display,
    checks_hw.check_printer,
)
UNIT_CHECKS: tuple[CheckFn, ...] = (
    checks_sys.check_units,
    watchdog.check_watchdog,
    selftest.check_slots,
)


def run_checks(ctx: Context, fns: Sequence[CheckFn]) -> list[Check]:
    """Run ``fns`` in order. A check that crashes becomes a failed row naming it (a bug to
    report), so one broken check never hides the others."""
    rows: list[Check] = []
    for fn in fns:
        try:
            rows.extend(fn(ctx))
        except Exception as exc:
            log.exception("doctor check %s crashed", fn.__name__)
            rows.append(
                failed(
                    fn.__name__.removeprefix("check_"),
                    f"the check itself crashed ({exc.__class__.__name__})",
                    "report this kioskctl bug with `kioskctl bundle` attached",
                )
            )
    return rows


def doctor(ctx: Context, *, hardware: bool = True) -> list[Check]:
    fns = [*SYSTEM_CHECKS, *(HARDWARE_CHECKS if hardware else ()), *UNIT_CHECKS]
    return run_checks(ctx, fns)
