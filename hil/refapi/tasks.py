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
  officer checks nothing was lost with the person. Also made by a ``blob_lost`` record: the
  kiosk lost a visit's sealed photo (or an enrolment's templates) before sending it, so the
  record came without it. Due by the end of the next working day.

Working days are Monday to Friday except bank holidays in England and Wales, ending at
17:00 UK time; a record that arrives after 16:00 (or on a day the office is closed) is due at
the end of the next working day. The bank holidays come from the ``holidays`` package, which
follows gov.uk's list, substitute days and one-off holidays included. A service adds its own
closures, or a holiday announced after the installed package was released, with
``kiosk-refapi serve --closed-days FILE`` (:meth:`Calendar.from_file`).

May import: the standard library, ``holidays``, ``daemon.records``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import holidays

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


class CalendarError(ValueError):
    """A closed-days file that cannot be read; the message names the line and what to do."""


class Calendar:
    """The days probation offices work: Monday to Friday, except the bank holidays of England
    and Wales and the ``closed`` days a service adds."""

    def __init__(self, closed: Iterable[dt.date] = ()) -> None:
        # England and Wales share one list; the package adds years as they are asked for
        self._bank = holidays.country_holidays("GB", subdiv="ENG")
        self._closed = frozenset(closed)

    @classmethod
    def from_file(cls, path: Path) -> Calendar:
        """A text file of extra closed days: one ``YYYY-MM-DD`` per line, ``#`` comments."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CalendarError(f"cannot read the closed-days file {path} ({exc})") from exc
        days = []
        for n, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            try:
                days.append(dt.date.fromisoformat(text))
            except ValueError:
                raise CalendarError(
                    f"{path}, line {n}: {text[:40]!r} is not a date; write one closed day "
                    "per line as YYYY-MM-DD (a '#' starts a comment)"
                ) from None
        return cls(days)

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() < 5 and day not in self._bank and day not in self._closed

    def next_working_day(self, day: dt.date) -> dt.date:
        day += dt.timedelta(days=1)
        while not self.is_working_day(day):
            day += dt.timedelta(days=1)
        return day


#: bank holidays only, no closures of the service's own
ENGLAND_AND_WALES = Calendar()


def working_day_end(
    received: float, *, days_after: int = 0, calendar: Calendar = ENGLAND_AND_WALES
) -> float:
    """The end (17:00 UK time) of the working day a record received at ``received`` falls
    due on: the same working day, or the next when it arrives after 16:00 or on a day the
    office is closed; then ``days_after`` more working days."""
    tz = _uk()
    local = dt.datetime.fromtimestamp(received, tz)
    day = local.date()
    if not calendar.is_working_day(day) or local.time() > LATE_FROM:
        day = calendar.next_working_day(day)
    for _ in range(days_after):
        day = calendar.next_working_day(day)
    return dt.datetime.combine(day, DAY_ENDS, tzinfo=tz).timestamp()


def tasks_of(
    device: str,
    seq: int,
    payload: dict[str, Any],
    received: float,
    calendar: Calendar = ENGLAND_AND_WALES,
) -> list[Task]:
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
    if payload.get("type") in ("fault", "blob_lost"):
        kinds.append(("fault_followup", 1))
    return [
        Task(
            device,
            seq,
            kind,
            received,
            working_day_end(received, days_after=after, calendar=calendar),
        )
        for kind, after in kinds
    ]


def lost_blobs(payloads: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The blobs a kiosk said it lost (its ``blob_lost`` records): hash -> ``{"seq", "kind",
    "reason"}`` (the ``blob_lost`` record's seq; ``photo`` or ``templates``; ``damaged`` or
    ``missing``), so a task on the record that named the blob says why it has none."""
    lost: dict[str, dict[str, Any]] = {}
    for p in payloads:
        detail = p.get("detail")
        if p.get("type") != "blob_lost" or not isinstance(detail, dict):
            continue
        sha = detail.get("blob")
        if isinstance(sha, str):
            lost.setdefault(sha, {"seq": p.get("seq"), "kind": detail.get("kind"),
                                  "reason": detail.get("reason")})  # fmt: skip
    return lost
