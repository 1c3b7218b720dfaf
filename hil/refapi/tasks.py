"""Officer tasks from the records kiosks send: what a person must do, and by when.

The kiosk never decides anything about a person; each exception becomes a task for an officer
(requirements 2, 3, 7, 8 and 9 of the probation domain):

- ``callback``: the person touched "I need to speak to someone" or answered yes to "do you
  want to speak to someone today?". Due the same working day.
- ``attention``: another answer asked for the officer (police contact, "I am struggling", an
  officer's own question). Due the same working day.
- ``identity_review``: the visit was checked in without a fingerprint match (fallback, staff
  override by a witness is not one). Due by the end of the next working day. Its outcome is
  the manual ID check's decision (``confirmed``, ``confirmed_with_concern``, ``rejected``).
- ``fault_followup``: a part of the kiosk failed during the visit; the visit counts, and the
  officer checks nothing was lost with the person. Due by the end of the next working day.

Working days are Monday to Friday, ending at 17:00 UK time; a record that arrives after 16:00
(or at a weekend) is due at the end of the next working day. Bank holidays are not known here:
a real service takes them from its own calendar.

May import: the standard library, ``daemon.records``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

KINDS = ("callback", "attention", "identity_review", "fault_followup")
#: how a task was closed; ``identity_review`` takes the review outcomes instead
OUTCOMES = ("called_back", "seen", "no_answer", "not_needed")
#: outcomes that count as the person having been reached (callback fulfilment)
REACHED = frozenset({"called_back", "seen"})

UK = "Europe/London"
DAY_ENDS = dt.time(17, 0)
LATE_FROM = dt.time(16, 0)  # later than this, "the same working day" is the next one


@dataclass(frozen=True, slots=True)
class Task:
    device: str
    seq: int
    kind: str
    received: float  # when the API received the record (Unix seconds)
    due: float  # Unix seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "seq": self.seq,
            "kind": self.kind,
            "received": self.received,
            "due": self.due,
        }


def _uk() -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(UK)
    except zoneinfo.ZoneInfoNotFoundError:  # no tzdata: UTC is right half the year
        return dt.UTC


def working_day_end(received: float, *, days_after: int = 0) -> float:
    """The end (17:00 UK time) of the working day a record received at ``received`` falls
    due on: the same working day, or the next when it arrives after 16:00 or at a weekend;
    then ``days_after`` more working days."""
    tz = _uk()
    local = dt.datetime.fromtimestamp(received, tz)
    day = local.date()
    if local.weekday() >= 5 or local.time() > LATE_FROM:
        day = _next_working_day(day)
    for _ in range(days_after):
        day = _next_working_day(day)
    return dt.datetime.combine(day, DAY_ENDS, tzinfo=tz).timestamp()


def _next_working_day(day: dt.date) -> dt.date:
    day += dt.timedelta(days=1)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return day


def tasks_of(device: str, seq: int, payload: dict[str, Any], received: float) -> list[Task]:
    """The tasks one stored record makes (none for most)."""
    flags = set(payload.get("flags") or [])
    raw = payload.get("detail")
    detail: dict[str, Any] = raw if isinstance(raw, dict) else {}
    kinds: list[tuple[str, int]] = []
    if "see_officer" in flags:
        flagged = [q for q in detail.get("flagged", []) if isinstance(q, str)]
        if detail.get("asked_for_help") or "speak_to_someone" in flagged:
            kinds.append(("callback", 0))
        if any(q != "speak_to_someone" for q in flagged) or not (
            flagged or detail.get("asked_for_help")
        ):  # a record from before kiosks said why: the officer looks at it
            kinds.append(("attention", 0))
    if "id_review" in flags:
        kinds.append(("identity_review", 1))
    if payload.get("type") == "fault":
        kinds.append(("fault_followup", 1))
    return [
        Task(device, seq, kind, received, working_day_end(received, days_after=after))
        for kind, after in kinds
    ]
