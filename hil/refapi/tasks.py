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
- ``photo_check``: a visit by someone who chose not to give fingerprints
  (``verify.method: "dob_photo_by_choice"``) is not an exception, so it raises no identity
  review; instead one such visit in :data:`PHOTO_CHECK_ONE_IN`, picked from the record's
  random id (the person cannot tell or steer which), and every one whose photo the camera
  judged poor, has its photo compared with the person's file. Due within
  :data:`PHOTO_CHECK_DAYS` working days; closed by the same decision as an identity review.
  A visit by that route with no photo carries ``id_review`` from the kiosk (only the date of
  birth was checked) and is an identity review instead. docs/privacy.md gives the reasons.
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

May import: the standard library, ``holidays``, ``daemon.records``, ``daemon.roster``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import holidays

from daemon.roster import BY_CHOICE_METHOD

#: tasks closed by an identity decision (``PUT .../records/{seq}/review``), not an outcome
REVIEW_KINDS = frozenset({"identity_review", "photo_check"})
#: ``verify.method`` of a visit by someone who declined fingerprints (daemon/flow/machine.py)
BY_CHOICE = BY_CHOICE_METHOD
#: one visit in this many by that route has its photo checked (docs/privacy.md says why)
PHOTO_CHECK_ONE_IN = 4
#: working days after the visit by which a sampled photo check is due (a week, not next day)
PHOTO_CHECK_DAYS = 5
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


def chose_alternative(payload: dict[str, Any]) -> bool:
    """The visit was by the route the person chose instead of fingerprints."""
    verify = payload.get("verify")
    return isinstance(verify, dict) and verify.get("method") == BY_CHOICE


def photo_check_sampled(device: str, seq: int, payload: dict[str, Any]) -> bool:
    """Whether this visit is one of the sampled :data:`PHOTO_CHECK_ONE_IN`: decided by the
    record's id (a UUIDv7 whose low bits are random), so the same record always gives the same
    answer and nobody at the kiosk can know or choose it."""
    key = str(payload.get("id") or f"{device}/{seq}").encode()
    digest = hashlib.sha256(b"probation-kiosk/photo-check\0" + key).digest()
    return int.from_bytes(digest[:4], "big") % PHOTO_CHECK_ONE_IN == 0


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
    elif (
        chose_alternative(payload)
        and payload.get("photo")
        and ("photo_quality" in flags or photo_check_sampled(device, seq, payload))
    ):
        kinds.append(("photo_check", PHOTO_CHECK_DAYS))
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
