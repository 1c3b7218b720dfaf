"""Officer tasks from records, and when they fall due (hil/refapi/tasks.py)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from hil.refapi.__main__ import main
from hil.refapi.tasks import Calendar, lost_blobs, tasks_of, working_day_end

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


@pytest.mark.parametrize(
    ("received", "days_after", "due"),
    [
        # Christmas Eve, late: Christmas Day (Friday), the weekend, Boxing Day's substitute
        ("2026-12-24 16:30", 0, "2026-12-29 17:00"),
        ("2026-12-24 10:00", 1, "2026-12-29 17:00"),
        # the Thursday before Easter: Good Friday and Easter Monday are not working days
        ("2027-03-25 10:00", 1, "2027-03-30 17:00"),
        # a record that arrives on a bank holiday is the next working day's
        ("2026-05-04 09:00", 0, "2026-05-05 17:00"),
        # a substitute day: New Year's Day 2028 is a Saturday, Monday the 3rd is the holiday
        ("2027-12-31 16:30", 0, "2028-01-04 17:00"),
    ],
)
def test_bank_holidays_in_england_and_wales_are_not_working_days(
    received: str, days_after: int, due: str
) -> None:
    assert working_day_end(_uk(received), days_after=days_after) == _uk(due)


def test_a_service_adds_its_own_closed_days_from_a_file(tmp_path: Path) -> None:
    days = tmp_path / "closed.txt"
    days.write_text("# office closures 2026\n2026-11-24  # staff training\n\n2026-11-25\n")
    calendar = Calendar.from_file(days)
    late_monday = _uk("2026-11-23 16:30")
    assert working_day_end(late_monday, calendar=calendar) == _uk("2026-11-26 17:00")
    assert working_day_end(late_monday) == _uk("2026-11-24 17:00")  # the default: bank only
    record = {"type": "checkin_fallback", "flags": ["id_review"]}
    (task,) = tasks_of("kiosk-t1", 3, record, _uk("2026-11-23 10:00"), calendar)
    assert task.due == _uk("2026-11-26 17:00")


def test_a_bad_closed_days_file_stops_the_api_before_it_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    days = tmp_path / "closed.txt"
    days.write_text("2026-11-24\n24/12/2026\n")
    args = ["serve", "--data", str(tmp_path / "api"), "--tls-cert", "c.pem", "--tls-key", "k.pem"]
    assert main([*args, "--closed-days", str(days)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "'24/12/2026'" in err and "YYYY-MM-DD" in err
    assert not (tmp_path / "api").exists()  # nothing was created
    assert main([*args, "--closed-days", str(tmp_path / "missing.txt")]) == 2
    assert "cannot read the closed-days file" in capsys.readouterr().err


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
        # the kiosk lost a visit's photo before sending it: someone follows it up
        (_record("blob_lost", ("photo_lost",), blob="ab" * 32, kind="photo"), ["fault_followup"]),
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


def _chosen(record_id: str, *flags: str, photo: bool = True) -> dict[str, Any]:
    """A visit by someone who declined fingerprints, as the kiosk records it."""
    out: dict[str, Any] = {
        "id": record_id,
        "type": "checkin",
        "flags": list(flags),
        "verify": {"method": "dob_photo_by_choice", "attempts": 0},
        "detail": {"biometric": "declined"},
    }
    if photo:
        out["photo"] = "ab" * 32
    return out


def test_a_chosen_route_is_never_an_identity_review_but_a_sample_of_its_photos_is_checked() -> None:
    """Someone who declined fingerprints is not an exception at every visit: no identity
    review, no task at all for most visits, and for about one in four (picked by the record's
    random id: the same record always gives the same answer) a photo check due within five
    working days."""
    from daemon.records import uuid7
    from hil.refapi.tasks import PHOTO_CHECK_ONE_IN, photo_check_sampled

    monday = _uk("2026-11-23 10:00")
    kinds = []
    for _ in range(400):
        record = _chosen(uuid7())
        found = tasks_of("kiosk-t1", 3, record, monday)
        assert [t.kind for t in found] in ([], ["photo_check"])
        assert bool(found) == photo_check_sampled("kiosk-t1", 3, record)  # deterministic
        kinds.append(bool(found))
        if found:
            assert found[0].due == _uk("2026-11-30 17:00")  # five working days, not tomorrow
    assert PHOTO_CHECK_ONE_IN == 4 and 60 <= sum(kinds) <= 140, sum(kinds)
    fallback = {"type": "checkin_fallback", "flags": ["id_review"],
                "verify": {"method": "dob_photo", "fallback": "no_template"}}  # fmt: skip
    assert [t.kind for t in tasks_of("kiosk-t1", 4, fallback, monday)] == ["identity_review"]


def test_a_poor_photo_by_the_chosen_route_is_always_checked_and_no_photo_is_a_review() -> None:
    monday = _uk("2026-11-23 10:00")
    ids = [f"019a0000-0000-7000-8000-{n:012x}" for n in range(40)]
    unsampled = next(
        i for i in ids if not tasks_of("kiosk-t1", 1, _chosen(i), monday)
    )  # an ordinary visit with no task
    poor = _chosen(unsampled, "photo_quality")
    assert [t.kind for t in tasks_of("kiosk-t1", 1, poor, monday)] == ["photo_check"]
    # the kiosk flags id_review when no photo backs the date of birth (a low disk, a fault)
    bare = _chosen(unsampled, "id_review", "no_photo", photo=False)
    assert [t.kind for t in tasks_of("kiosk-t1", 1, bare, monday)] == ["identity_review"]


def test_the_blobs_a_kiosk_lost_are_known_by_hash() -> None:
    detail = {"blob": "ab" * 32, "kind": "photo", "reason": "damaged", "seqs": [3]}
    lost = {"type": "blob_lost", "seq": 9, "detail": detail}
    others = [_record(), _record("fault", ("fault",), blob="cd" * 32)]
    assert lost_blobs([*others, lost]) == {"ab" * 32: {"seq": 9, "kind": "photo",
                                                       "reason": "damaged"}}  # fmt: skip
