"""``kioskctl status``: one screen for the front desk — up, last check-in, last sync, queue,
alerts. Reads the outbox and asks systemd; touches no hardware and no network.

May import: the standard library, ``daemon.*``.
"""

from __future__ import annotations

import calendar
import contextlib
import time
from dataclasses import dataclass, field

from daemon.diskspace import Level, Levels, free_bytes
from daemon.errors import OutboxCorrupt, StorageError
from daemon.kioskctl import access, checks_sys
from daemon.kioskctl.access import DataAccessError
from daemon.kioskctl.context import Context
from daemon.outbox import ANCHOR_HINT
from daemon.records import decode_unverified

CHECKIN_TYPES = ("checkin", "checkin_fallback", "staff_override")
DISK_ALERTS = {
    Level.LOW: "the kiosk's storage is running low: call the field engineer",
    Level.NO_PHOTO: "the kiosk's storage is nearly full: check-ins are saved without photos; "
    "call the field engineer",
    Level.FULL: "the kiosk's storage is full: it cannot save check-ins and sends people to "
    "reception; record their attendance in the case system and call the field engineer",
}

READ_ONLY = "the kiosk's storage is read-only: it cannot save check-ins; call the field engineer"


@dataclass
class Status:
    device: str
    up: str
    last_checkin: float | None = None
    last_sync: float | None = None
    queue: int | None = None
    oldest_unsent_s: float | None = None
    alerts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.alerts


def _service_state(ctx: Context) -> str:
    got = ctx.parts.run(["systemctl", "is-active", "kiosk.service", "kiosk-sync.service"], 5.0)
    if got is None:
        return "unknown (systemd not available)"
    states = got[1].split()
    if not states:  # systemctl is there but cannot ask systemd (not PID 1: a container)
        return "unknown (systemctl is not available here)"
    if all(s == "active" for s in states):
        return "yes"
    return "NO (" + ", ".join(states or ["?"]) + ")"


def gather(ctx: Context) -> Status:
    cfg = ctx.cfg
    st = Status(device=cfg.device.id, up=_service_state(ctx))
    if not st.up.startswith(("yes", "unknown")):
        st.alerts.append("the kiosk service is not running: call the field engineer")
    outbox = None
    try:
        outbox = checks_sys.open_outbox_readonly(ctx)
    except DataAccessError as exc:
        st.alerts.append(
            f"kioskctl may not read the record store as {access.whoami()}: run it as root "
            "(sudo kioskctl status) or as the kiosk user"
            if exc.reason == "data_permission"
            else READ_ONLY
        )
    except OutboxCorrupt:
        st.alerts.append("the record store is damaged: call the field engineer")
    except StorageError:
        st.alerts.append("the record store cannot be opened: call the field engineer")
    if outbox is not None:
        with outbox:
            stats = outbox.stats()
            st.queue, st.oldest_unsent_s = stats.depth, stats.oldest_unsent_s
            if stats.parked:
                st.alerts.append(f"{stats.parked} records were refused by the central system")
            for _seq, _state, compact in reversed(list(outbox.all_compact())):
                _h, p, _si, _sig = decode_unverified(compact)
                if p.get("type") in CHECKIN_TYPES:
                    st.last_checkin = _parse_at(str(p["at"]))
                    break
    hint = cfg.device.data_dir / ANCHOR_HINT
    with contextlib.suppress(OSError):  # missing, or out of this user's sight
        st.last_sync = hint.stat().st_mtime
    if access.read_only(cfg.device.data_dir) is not None and READ_ONLY not in st.alerts:
        st.alerts.append(READ_ONLY)
    if st.oldest_unsent_s is not None and st.oldest_unsent_s > 3600:
        st.alerts.append("check-ins have not reached the central system for over an hour")
    try:
        level = Levels.from_config(cfg.outbox).level(free_bytes(cfg.device.data_dir))
    except OSError:
        st.alerts.append("the kiosk's data storage is missing: call the field engineer")
    else:
        if level != Level.OK:
            st.alerts.append(DISK_ALERTS[level])
    if not ctx.clock.synced():
        st.alerts.append("the kiosk's clock is not synchronised")
    return st


def _parse_at(at: str) -> float:
    return calendar.timegm(time.strptime(at[:19], "%Y-%m-%dT%H:%M:%S"))


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "never"
    s = max(0.0, now - then)
    when = time.strftime("%H:%M %d %b", time.localtime(then))
    if s < 120:
        return f"{when} (just now)"
    if s < 7200:
        return f"{when} ({s / 60:.0f} minutes ago)"
    if s < 172800:
        return f"{when} ({s / 3600:.0f} hours ago)"
    return f"{when} ({s / 86400:.0f} days ago)"


def render(st: Status, now: float) -> str:
    lines = [
        f"Kiosk {st.device}",
        f"  Running:          {st.up}",
        f"  Last check-in:    {_ago(now, st.last_checkin)}",
        f"  Last sync:        {_ago(now, st.last_sync)}",
        f"  Waiting to send:  {'-' if st.queue is None else st.queue}",
    ]
    if st.alerts:
        lines.append("  Alerts:")
        lines.extend(f"    ! {a}" for a in st.alerts)
    else:
        lines.append("  Alerts:           none")
    return "\n".join(lines)
