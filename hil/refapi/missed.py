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


def last_seen(records: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Person reference -> the time of their newest attendance record, from (compact JWS,
    received) pairs."""
    seen: dict[str, float] = {}
    for compact, received in records:
        p = decode_unverified(compact)[1]
        person = p.get("person")
        if p.get("type") not in ATTENDED or not isinstance(person, str):
            continue
        synced = isinstance(p.get("clock"), dict) and p["clock"].get("synced") is True
        when = _unix(p["at"]) if synced else received
        seen[person] = max(when, seen.get(person, 0.0))
    return seen


def review_tasks(
    roster: bytes, seen: dict[str, float], now: float, grace_days: float
) -> list[dict[str, Any]]:
    """One task per person whose appointment passed more than ``grace_days`` ago unattended,
    oldest first."""
    tasks = []
    for person in json.loads(roster).get("people", []):
        appt = person.get("next_appointment") or {}
        if not appt.get("at"):
            continue
        due = _unix(appt["at"])
        if now < due + grace_days * 86400:
            continue  # not due yet, or still within the grace period
        if seen.get(person["ref"], 0.0) >= due - EARLY_S:
            continue  # they came
        tasks.append(
            {
                "ref": person["ref"],
                "appointment_at": appt["at"],
                "days_overdue": round((now - due) / 86400, 1),
                "last_seen": seen.get(person["ref"]),
                "action": "review",  # never "breach": a person decides
            }
        )
    return sorted(tasks, key=lambda t: t["appointment_at"])
