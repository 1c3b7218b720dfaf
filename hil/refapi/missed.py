"""Missed check-ins become review tasks for an officer, never a breach (requirement 5 of the
probation domain: "a missed check-in becomes a review task after a grace period").

From a kiosk's roster (who is due, and when) and the records it has sent: a person whose
appointment is more than ``grace_days`` past, with no record of them since 12 hours before it
(a check-in, a fallback, an escalation, a staff override, a check-in cut short by a fault), is
a task: someone looks at why (the kiosk may have been down, the person may have reported at
reception or be in hospital). The kiosk's clock is trusted for a record's time only when it
says it was synchronised; otherwise the API's receipt time stands in.

May import: the standard library, ``daemon.records``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
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
    seen: dict[str, list[float]] = {}
    for compact, received in records:
        p = decode_unverified(compact)[1]
        person = p.get("person")
        if p.get("type") not in ATTENDED or not isinstance(person, str):
            continue
        seen.setdefault(person, []).append(visit_time(p, received))
    return seen


def visit_time(payload: dict[str, Any], received: float) -> float:
    """When a record was made: the kiosk's time when its clock was synchronised, else the
    API's receipt time."""
    synced = isinstance(payload.get("clock"), dict) and payload["clock"].get("synced") is True
    return _unix(payload["at"]) if synced else received


def appointment_times(person: dict[str, Any]) -> list[str]:
    """The person's appointment times (the roster's ``appointments`` and the older single
    ``next_appointment``), earliest first."""
    found = [a.get("at") for a in person.get("appointments") or []]
    found.append((person.get("next_appointment") or {}).get("at"))
    return sorted({at for at in found if at}, key=_unix)


def review_tasks(
    roster: bytes, seen: dict[str, list[float]], now: float, grace_days: float
) -> list[dict[str, Any]]:
    """One task per appointment that passed more than ``grace_days`` ago unattended, oldest
    first. An appointment is attended by a record from 12 hours before it until 12 hours
    before the person's next one."""
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
                    "action": "review",  # never "breach": a person decides
                }
            )
    return sorted(tasks, key=lambda t: _unix(t["appointment_at"]))
