"""Missed check-ins become review tasks for an officer, never a breach (requirement 5 of the
probation domain: "a missed check-in becomes a review task after a grace period").

From a kiosk's roster (who is due, and when) and the records it has sent: a person whose
appointment is more than ``grace_days`` past, with no record of them since 12 hours before it
(a check-in, a fallback, an escalation, a staff override, a check-in cut short by a fault), is
a task: someone looks at why (the kiosk may have been down, the person may have reported at
reception or be in hospital).

When a record was made: the kiosk's clock is trusted when it says it was synchronised. A
record made before that (a Pi has no battery-backed clock: after a power cut it starts from
the time it last saved, until NTP answers) is re-based on a synchronised record of the same
boot: the monotonic clock (``clock.mono_ns``) runs on unbroken through a boot
(``clock.boot_id``), so the offset between it and true time, read off any synchronised
record of that boot, dates every record of the boot. Only a boot that never synchronised
falls back to the API's receipt time. :class:`BootClock` does this.

May import: the standard library, ``daemon.records``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

from daemon.records import decode_unverified

#: records that show the person came (a fault after identification still recorded them)
ATTENDED = frozenset({"checkin", "checkin_fallback", "see_officer", "staff_override", "fault"})
EARLY_S = 12 * 3600  # a check-in up to 12 hours before the appointment counts for it


def _unix(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def attendances(records: Iterable[tuple[str, float]]) -> dict[str, list[float]]:
    """Person reference -> the times of their attendance records, from (compact JWS,
    received) pairs."""
    decoded = [(decode_unverified(compact)[1], received) for compact, received in records]
    boots = BootClock(p for p, _r in decoded)
    seen: dict[str, list[float]] = {}
    for p, received in decoded:
        person = p.get("person")
        if p.get("type") not in ATTENDED or not isinstance(person, str):
            continue
        seen.setdefault(person, []).append(boots.time_of(_when_there(p), received))
    return seen


def _when_there(payload: dict[str, Any]) -> dict[str, Any]:
    """The time and clock that date the person's visit: the record's own, except for a
    check-in cut short by a restart (``detail.identified``: when they were identified; the
    record itself was made at the restart, which may be the next day)."""
    detail = payload.get("detail")
    seen = detail.get("identified") if isinstance(detail, dict) else None
    if isinstance(seen, dict) and isinstance(seen.get("at"), str):
        return {"at": seen["at"], "clock": seen.get("clock")}
    return payload


def _clock(payload: dict[str, Any]) -> tuple[bool, str | None, int | None]:
    """(synced, boot_id, mono_ns) of a record, None where it does not say."""
    c = payload.get("clock")
    if not isinstance(c, dict):
        return False, None, None
    boot, mono = c.get("boot_id"), c.get("mono_ns")
    return (
        c.get("synced") is True,
        boot if isinstance(boot, str) else None,
        mono if isinstance(mono, int) and not isinstance(mono, bool) else None,
    )


class BootClock:
    """Dates records made before the kiosk's clock was synchronised, from the synchronised
    records of the same boot (see the module docstring). Build it from every record that may
    help (all of a kiosk's, or an office's: boot IDs are random, so never shared)."""

    def __init__(self, payloads: Iterable[dict[str, Any]]) -> None:
        #: boot ID -> (mono_ns, true Unix time at mono_ns 0), by mono_ns
        self._anchors: dict[str, list[tuple[int, float]]] = {}
        for p in payloads:
            synced, boot, mono = _clock(p)
            if not synced or boot is None or mono is None:
                continue
            try:
                at = _unix(p["at"])
            except (KeyError, TypeError, ValueError):
                continue
            self._anchors.setdefault(boot, []).append((mono, at - mono / 1e9))
        for anchors in self._anchors.values():
            anchors.sort()

    def time_of(self, payload: dict[str, Any], received: float) -> float:
        """When the record was made: its own time when synchronised; re-based on the
        nearest synchronised record of its boot; else ``received``. Never after
        ``received`` (nothing is received before it is made)."""
        synced, boot, mono = _clock(payload)
        if synced:
            return _unix(payload["at"])
        anchors = self._anchors.get(boot or "")
        if not anchors or mono is None:
            return received
        i = bisect.bisect_left(anchors, (mono,))
        near = min(anchors[max(i - 1, 0) : i + 1], key=lambda a: abs(a[0] - mono))
        return min(near[1] + mono / 1e9, received)


def appointment_times(person: dict[str, Any]) -> list[str]:
    """The person's appointment times (the roster's ``appointments`` and the older single
    ``next_appointment``), earliest first."""
    found = [a.get("at") for a in person.get("appointments") or []]
    found.append((person.get("next_appointment") or {}).get("at"))
    return sorted({at for at in found if at}, key=_unix)


#: a kiosk that heartbeats every minute is up between two heartbeats this close together
#: (kiosk uptime in the figures, the stretches a missed appointment's task lists)
HEARTBEAT_GAP_S = 5 * 60


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_running(running: Sequence[float], since: float, until: float) -> list[dict[str, str]]:
    """The stretches of ``since``..``until`` (at least :data:`HEARTBEAT_GAP_S` long) not
    covered by ``running``: the sorted times of heartbeats that said a kiosk was running
    (an office's kiosks together), two of them at most HEARTBEAT_GAP_S apart covering the
    time between. Down, switched off or offline: the API cannot tell which."""
    lo = bisect.bisect_left(running, since - HEARTBEAT_GAP_S)
    hi = bisect.bisect_right(running, until + HEARTBEAT_GAP_S)
    beats = [float("-inf"), *running[lo:hi], float("inf")]
    gaps = []
    for a, b in itertools.pairwise(beats):
        start, end = max(a, since), min(b, until)
        if b - a > HEARTBEAT_GAP_S and end - start >= HEARTBEAT_GAP_S:
            gaps.append({"from": _iso(start), "to": _iso(end)})
    return gaps


def review_tasks(
    roster: bytes,
    seen: dict[str, list[float]],
    now: float,
    grace_days: float,
    *,
    running: Sequence[float] = (),
    known_since: float = float("-inf"),
) -> list[dict[str, Any]]:
    """One task per appointment that passed more than ``grace_days`` ago unattended, oldest
    first. An appointment is attended by a record from 12 hours before it until 12 hours
    before the person's next one.

    Each task also says when, from 12 hours before the appointment to 12 hours after it, no
    kiosk of the office said it was running (``kiosk_not_running``, from ``running``: see
    :func:`not_running`), so the officer sees at once a visit the machine may have
    prevented; ``None`` when the heartbeats kept do not reach back that far
    (``known_since``)."""
    tasks = []
    for person in json.loads(roster).get("people", []):
        times = seen.get(person["ref"], [])
        appts = appointment_times(person)
        for at, after in zip(appts, [*appts[1:], None], strict=False):
            due = _unix(at)
            if now < due + grace_days * 86400:
                continue  # not due yet, or still within the grace period
            until = _unix(after) - EARLY_S if after else float("inf")
            if any(due - EARLY_S <= t < until for t in times):
                continue  # they came
            tasks.append(
                {
                    "ref": person["ref"],
                    "appointment_at": at,
                    "days_overdue": round((now - due) / 86400, 1),
                    "last_seen": max(times, default=None),
                    "kiosk_not_running": (
                        not_running(running, due - EARLY_S, min(due + EARLY_S, now))
                        if due - EARLY_S >= known_since
                        else None
                    ),
                    "action": "review",  # never "breach": a person decides
                }
            )
    return sorted(tasks, key=lambda t: _unix(t["appointment_at"]))
