"""Officer tasks from records, and when they fall due (hil/refapi/tasks.py)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest

from hil.refapi.tasks import tasks_of, working_day_end

UK = zoneinfo.ZoneInfo("Europe/London")


def _uk(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UK).timestamp()


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-11-23 09:15", "2026-11-23 17:00"),  # Monday morning: the same day
        ("2026-11-23 15:59", "2026-11-23 17:00"),
        ("2026-11-23 16:30", "2026-11-24 17:00"),  # too late to call back today
        ("2026-11-27 16:30", "2026-11-30 17:00"),  # Friday late: Monday
        ("2026-11-28 10:00", "2026-11-30 17:00"),  # a Saturday: Monday
        ("2026-07-06 09:00", "2026-07-06 17:00"),  # summer time: 17:00 on the office's clock
    ],
)
def test_same_working_day_is_what_the_office_would_say(received: str, due: str) -> None:
    assert working_day_end(_uk(received)) == _uk(due)


def test_the_next_working_day_skips_the_weekend() -> None:
    assert working_day_end(_uk("2026-11-27 10:00"), days_after=1) == _uk("2026-11-30 17:00")


def _record(type_: str = "checkin", flags: tuple[str, ...] = (), **detail: Any) -> dict[str, Any]:
    return {"type": type_, "flags": list(flags), "detail": detail}


@pytest.mark.parametrize(
    ("record", "kinds"),
    [
        (_record(), []),
        (_record("see_officer", ("see_officer",), flagged=["speak_to_someone"]), ["callback"]),
        (_record("see_officer", ("see_officer",), asked_for_help=True), ["callback"]),
        (_record("see_officer", ("see_officer",), flagged=["police_contact"]), ["attention"]),
        (
            _record(
                "see_officer",
                ("see_officer", "id_review"),
                flagged=["wellbeing", "speak_to_someone"],
            ),
            ["callback", "attention", "identity_review"],
        ),
        (_record("see_officer", ("see_officer",)), ["attention"]),  # an older kiosk: no reason
        (_record("checkin_fallback", ("id_review",)), ["identity_review"]),
        (_record("fault", ("fault", "no_photo")), ["fault_followup"]),
        (_record("tamper"), []),  # for the field engineer, not an officer
    ],
)
def test_each_exception_becomes_the_right_task(record: dict[str, Any], kinds: list[str]) -> None:
    received = _uk("2026-11-23 10:00")
    tasks = tasks_of("kiosk-t1", 7, record, received)
    assert [t.kind for t in tasks] == kinds
    for t in tasks:
        same_day = t.kind in ("callback", "attention")
        assert t.due == _uk("2026-11-23 17:00" if same_day else "2026-11-24 17:00"), t.kind
