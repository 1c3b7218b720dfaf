"""The check-in flow, path by path, as the person at the kiosk and the records see it."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from daemon.flow import FlowConfig, Screen
from daemon.flow import events as ev
from daemon.flow.effects import (
    AlertStaff,
    Commit,
    DiscardPhoto,
    PrintReceipt,
    StatusLight,
    TakePhoto,
    VerifyFinger,
)
from daemon.records import GENESIS
from daemon.roster import parse_roster
from tests.flow.kit import ALICE, DECLINED, NO_TEMPLATE, PLAIN, Run, roster_json


def _record_payload(commit: Commit) -> dict[str, Any]:
    """The record the outbox would make of ``commit`` (fixed envelope, the commit's fields)."""
    return {
        "v": 1,
        "id": "019a0000-0000-7000-8000-000000000000",
        "device": "kiosk-test",
        "seq": 1,
        "prev": GENESIS,
        "type": commit.type,
        "at": "2026-11-23T09:00:00Z",
        "clock": {"synced": True, "boot_id": "b", "mono_ns": 1},
        "app": "0.1.0",
        "photo": commit.photo,
        **commit.fields(),
    }


def test_normal_checkin_commits_once_and_shows_the_appointment_only_after_commit() -> None:
    run = Run()
    fx = run.identify(ALICE)
    assert run.screen == "fingerprint"
    verify = [e for e in fx if isinstance(e, VerifyFinger)]
    assert len(verify) == 1 and verify[0].attempt == 1 and verify[0].templates
    run.send(ev.FingerResult, matched=True, score=143, threshold=60)
    assert run.screen == "photo" and run.view["phase"] == "notice"
    assert any(isinstance(e, TakePhoto) for e in run.send(ev.TakePhotoNow))
    run.send(ev.PhotoTaken, photo="cd" * 32)
    # standard questions first, then the officer's own question
    seen = []
    while run.screen == "questions":
        q = run.view["question"]
        seen.append(q["id"])
        assert q["text"]["en"] and q["text"]["cy"]
        value = (
            "good" if q["id"] == "wellbeing" else ("yes" if q["id"] == "course_attended" else "no")
        )
        run.send(ev.Answer, question=q["id"], value=value)
    assert seen == [
        "address_changed",
        "phone_changed",
        "work_changed",
        "police_contact",
        "wellbeing",
        "speak_to_someone",
        "course_attended",
    ]
    run.read_messages()
    assert run.screen == "confirm"
    assert "appointment" not in run.view
    assert not run.commits()
    run.send(ev.Finish)
    assert run.screen == "confirm" and run.view["saving"] is True
    assert "appointment" not in json.dumps(run.view)
    commit = run.last_commit()
    assert commit.type == "checkin"
    assert commit.person == "CR-900101"
    assert commit.verify == {"method": "fingerprint", "score": 143, "threshold": 60, "attempts": 1}
    assert commit.photo == "cd" * 32
    assert commit.answers["address_changed"] is False
    assert commit.answers["course_attended"] is True
    assert commit.answers["wellbeing"] == "good"
    assert commit.flags == ()
    run.send(ev.Finish)  # a second tap while saving does nothing
    run.commit_ok()
    assert run.screen == "done"
    assert run.view["appointment"] == {
        "at": "2026-12-07T10:30:00Z",
        "place": {"en": "Room 2, ground floor", "cy": "Ystafell 2, llawr gwaelod"},
    }
    assert len(run.commits()) == 1
    run.send(ev.Continue)
    assert run.screen == "idle"


def test_commit_fields_are_accepted_by_the_record_schema() -> None:
    from daemon.records import validate_payload

    run = Run()
    run.to_confirm()
    run.send(ev.Finish)
    commit = run.last_commit()
    payload = _record_payload(commit)
    validate_payload(payload)


def test_three_failed_matches_fall_back_to_dob_and_photo_flagged_for_review() -> None:
    run = Run()
    run.identify(ALICE)
    for attempt in (1, 2):
        assert run.view["attempt"] == attempt
        run.send(ev.FingerResult, matched=False, score=12, threshold=60)
        assert run.screen == "fingerprint" and run.view["phase"] == "retry"
        fx = run.send(ev.Continue)
        assert [e.attempt for e in fx if isinstance(e, VerifyFinger)] == [attempt + 1]
    run.send(ev.FingerResult, matched=False, score=20, threshold=60)
    assert run.screen == "fallback" and run.view["reason"] == "fingerprint_failed"
    run.send(ev.Continue)
    assert run.screen == "photo" and run.view["fallback"] is True
    run.photo()
    run.answer_all()
    run.read_messages()
    run.send(ev.Finish)
    commit = run.last_commit()
    assert commit.type == "checkin_fallback"
    assert "id_review" in commit.flags
    assert commit.verify == {
        "method": "dob_photo",
        "score": 20,
        "threshold": 60,
        "attempts": 3,
        "fallback": "fingerprint_failed",
    }
    run.commit_ok()
    assert run.screen == "done" and run.view["id_review"] is True


def test_no_finger_placed_is_not_counted_as_an_attempt() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerUnreadable, reason="no_finger")
    assert run.view["phase"] == "no_finger" and run.view["attempt"] == 1
    run.send(ev.Continue)
    run.send(ev.FingerUnreadable, reason="poor_image")
    assert run.view["phase"] == "retry" and run.view["attempt"] == 2


@pytest.mark.parametrize(
    ("event", "fields", "reason"),
    [
        (ev.CannotUseFinger, {}, "cannot_use_finger"),
        (ev.PartFailed, {"part": "fingerprint", "reason": "sensor_not_answering"}, "sensor_fault"),
    ],
)
def test_worn_finger_or_sensor_fault_falls_back_without_refusal(
    event: type[ev.Event], fields: dict[str, Any], reason: str
) -> None:
    run = Run()
    run.identify(ALICE)
    run.send(event, **fields)
    assert run.screen == "fallback" and run.view["reason"] == reason
    run.send(ev.Continue)
    run.photo()
    run.answer_all()
    run.read_messages()
    run.send(ev.Finish)
    commit = run.last_commit()
    assert commit.type == "checkin_fallback"
    assert commit.verify is not None and commit.verify["fallback"] == reason
    assert "id_review" in commit.flags


def test_person_without_templates_goes_straight_to_fallback() -> None:
    run = Run()
    fx = run.identify(NO_TEMPLATE)
    assert not any(isinstance(e, VerifyFinger) for e in fx)
    assert run.screen == "fallback" and run.view["reason"] == "no_template"


def test_someone_who_declined_fingerprints_checks_in_by_date_of_birth_and_photo_by_choice() -> None:
    """UK GDPR Art. 9 and the ICO's Serco Leisure notice: the non-biometric route must be real
    and carry no detriment. No fingerprint step, no fallback screen ("not yet", "not your
    fault"), a plain check-in that says it was their choice, and no next-day identity task."""
    run = Run()
    fx = run.identify(DECLINED)
    assert not any(isinstance(e, VerifyFinger) for e in fx)  # not even with templates sent
    assert run.screen == "photo"
    assert run.view["by_choice"] is True and run.view["fallback"] is False
    run.photo("ef" * 32)
    run.answer_all()
    assert run.screen == "confirm" and run.view["fallback"] is False
    run.send(ev.Finish)
    commit = run.last_commit()
    assert commit.type == "checkin"  # not checkin_fallback: nothing failed
    assert commit.verify == {
        "method": "dob_photo_by_choice",
        "score": None,
        "threshold": None,
        "attempts": 0,
    }  # no "fallback" reason: the API tells a choice from a failure
    assert commit.flags == ()  # no id_review
    assert commit.detail is not None and commit.detail["biometric"] == "declined"
    assert commit.photo == "ef" * 32
    run.commit_ok()
    assert run.screen == "done" and run.view["id_review"] is False  # no "staff will look"
    run.send(ev.Continue)
    # everyone else is as before: a person with no templates is still the fallback
    run.identify(NO_TEMPLATE)
    assert run.screen == "fallback" and run.view["reason"] == "no_template"


def test_a_chosen_route_without_a_photo_still_gets_an_identity_check() -> None:
    """The disk is too full for photos: only the date of birth confirmed who came, so an
    officer checks, as for anyone else without a fingerprint match; the record says why."""
    run = Run()
    run.send(ev.DiskSpace, level="no_photo")
    run.identify(DECLINED)
    assert run.screen == "questions"  # no photo step, and no fingerprint step either
    run.answer_all()
    run.send(ev.Finish)
    commit = run.last_commit()
    assert commit.type == "checkin" and commit.verify is not None
    assert commit.verify["method"] == "dob_photo_by_choice"
    assert set(commit.flags) == {"id_review", "no_photo"}
    assert commit.detail is not None and commit.detail["no_photo"] == "disk_low"


def test_a_chosen_route_record_is_accepted_by_the_record_schema() -> None:
    from daemon.records import validate_payload

    run = Run()
    run.identify(DECLINED)
    run.photo()
    run.answer_all()
    run.send(ev.Finish)
    commit = run.last_commit()
    validate_payload(_record_payload(commit))


def test_flagged_answer_alerts_staff_at_once_and_records_see_officer() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.photo()
    while run.view["question"]["id"] != "police_contact":
        run.send(ev.Answer, question=run.view["question"]["id"], value="no")
    fx = run.send(ev.Answer, question="police_contact", value="yes")
    assert AlertStaff(reason="see_officer") in fx
    assert StatusLight(state="alert") in fx
    run.answer_all()
    run.read_messages()
    run.send(ev.Finish)
    commit = run.last_commit()
    assert commit.type == "see_officer" and "see_officer" in commit.flags
    assert commit.answers["police_contact"] is True
    run.commit_ok()
    assert run.screen == "see_reception"
    assert run.view["reason"] == "escalation" and run.view["checked_in"] is True
    assert run.view["appointment"] is not None


def test_officer_question_flag_if_no_escalates() -> None:
    run = Run()
    run.to_confirm(course_attended="no")
    run.send(ev.Finish)
    assert run.last_commit().type == "see_officer"


def test_speak_to_someone_button_mid_checkin_alerts_and_lets_the_person_finish() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    fx = run.send(ev.Help)
    assert AlertStaff(reason="speak_to_someone") in fx
    assert run.screen == "photo" and run.view["help_requested"] is True
    assert run.send(ev.Help) == []  # one alert, not one per tap
    run.photo()
    run.answer_all()
    run.read_messages()
    run.send(ev.Finish)
    assert run.last_commit().type == "see_officer"


def test_help_before_identification_sends_to_reception_without_a_record() -> None:
    run = Run()
    run.send(ev.Start, lang="en")
    run.type_digits("9001")
    fx = run.send(ev.Help)
    assert AlertStaff(reason="help") in fx
    assert run.screen == "see_reception" and run.view["reason"] == "help"
    assert run.commits() == []
    assert "9001" not in json.dumps(run.view)


def test_officer_messages_are_shown_in_order_in_both_languages() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.photo()
    run.answer_all()
    assert run.screen == "messages"
    assert (run.view["index"], run.view["count"]) == (1, 2)
    assert run.view["message"]["text"]["cy"] == "Dewch â'ch slipiau cyflog."
    run.send(ev.MessageRead, message="m2")  # not the one showing: ignored
    assert run.view["message"]["id"] == "m1"
    run.send(ev.MessageRead, message="m1")
    assert run.view["message"]["id"] == "m2"
    run.send(ev.MessageRead, message="m2")
    assert run.screen == "confirm"


def test_person_with_no_messages_or_appointment() -> None:
    run = Run()
    run.identify(PLAIN)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.photo()
    run.answer_all()
    assert run.screen == "confirm"
    run.send(ev.Finish)
    run.commit_ok()
    assert run.screen == "done" and run.view["appointment"] is None


def _iso_unix(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize(
    ("wall", "synced", "told"),
    [
        # on time for today's 10:30 (the roster still names it): told the one after it
        ("2026-11-23T10:20:00Z", True, "2026-12-07T10:30:00Z"),
        # offline for weeks, the roster stale: every appointment it knows is past
        ("2026-12-20T10:20:00Z", True, None),
        # a Pi that never synchronised starts from the time it last saved, behind; the
        # roster was made at 08:00 today, so today's 10:30 is not "next"
        ("2026-01-01T00:00:00Z", False, "2026-12-07T10:30:00Z"),
    ],
)
def test_the_person_leaves_with_their_next_appointment_never_a_past_one(
    wall: str, synced: bool, told: str | None
) -> None:
    data = roster_json()  # made at 2026-11-23T08:00:00Z
    data["people"][0]["next_appointment"] = None
    data["people"][0]["appointments"] = [
        {"at": at, "place_en": f"Room {i}", "place_cy": f"Ystafell {i}"}
        for i, at in enumerate(("2026-12-07T10:30:00Z", "2026-11-23T10:30:00Z"), 1)
    ]
    run = Run(with_roster=False)
    run.send(ev.RosterLoaded, roster=parse_roster(data))
    run.to_confirm(ALICE)
    run.send(ev.Finish)
    run.send(
        ev.RecordCommitted,
        commit_id=run.last_commit().commit_id,
        receipt="7K2M-9QXD",
        wall=_iso_unix(wall),
        clock_synced=synced,
    )
    assert run.screen == "done"
    slip = [e for e in run.effects if isinstance(e, PrintReceipt)][-1].appointment
    if told is None:
        assert run.view["appointment"] is None and slip is None  # "your officer will tell you"
    else:
        assert run.view["appointment"]["at"] == told
        assert slip is not None and slip["at"] == told  # the slip says the same


def test_back_changes_an_answer() -> None:
    run = Run()
    run.identify(PLAIN)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.photo()
    run.send(ev.Answer, question="address_changed", value="yes")
    run.send(ev.Back)
    assert run.view["question"]["answer"] == "yes"
    run.send(ev.Answer, question="address_changed", value="no")
    run.answer_all()
    run.send(ev.Finish)
    assert run.last_commit().answers["address_changed"] is False


def test_the_record_says_which_messages_were_read_and_in_which_language() -> None:
    run = Run()
    started = run.t + run.step_s  # the Start event's time
    run.identify(ALICE, lang="cy")
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.photo()
    run.answer_all()
    assert run.screen == "messages"
    run.send(ev.MessageRead, message="m1")
    run.send(ev.Back)  # back to the first message, read again: listed once
    run.send(ev.MessageRead, message="m1")
    run.send(ev.MessageRead, message="m2")
    run.send(ev.Finish)
    assert run.last_commit().detail == {
        "lang": "cy",
        "messages_read": ["m1", "m2"],
        "duration_s": run.t - started,  # Start to saving: the service's 3-minute target
    }
    run.commit_ok()
    # someone with no messages: only the language
    run.send(ev.Continue)
    run.identify(PLAIN)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.photo()
    run.answer_all()
    run.send(ev.Finish)
    detail = dict(run.last_commit().detail or {})
    assert detail.pop("duration_s") > 0 and detail == {"lang": "en"}


def test_the_record_says_what_asked_for_the_officer() -> None:
    """The API turns these into tasks: "speak to someone" and the help button are a callback
    the same working day; another flagged answer needs the officer's attention. An answer
    changed back still counts: the alert went out and is not withdrawn."""
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.photo()
    run.answer_all({"police_contact": "yes", "wellbeing": "struggling"})
    run.send(ev.Back)  # back from the messages to the last question, then to wellbeing
    while run.view["question"]["id"] != "wellbeing":
        run.send(ev.Back)
    run.send(ev.Answer, question="wellbeing", value="ok")
    run.answer_all()
    run.read_messages()
    run.send(ev.Help)
    run.send(ev.Finish)
    detail = run.last_commit().detail or {}
    assert detail["flagged"] == ["police_contact", "wellbeing"]
    assert detail["asked_for_help"] is True
    assert run.last_commit().type == "see_officer"


def test_part_failure_mid_checkin_still_commits_a_fault_record() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.send(ev.TakePhotoNow)
    fx = run.send(ev.PartFailed, part="camera", reason="device_timeout")
    assert AlertStaff(reason="fault") in fx
    commit = run.last_commit()
    assert commit.type == "fault"
    assert commit.person == "CR-900101"
    assert set(commit.flags) >= {"fault", "no_photo"}
    assert "id_review" not in commit.flags  # the fingerprint did match
    detail = dict(commit.detail or {})
    assert detail.pop("duration_s") > 0
    assert detail == {
        "part": "camera",
        "reason": "device_timeout",
        "stage": "photo",
        "lang": "en",
        "messages_read": [],  # the officer's two messages were never reached
    }
    run.commit_ok()
    assert run.screen == "see_reception"
    assert run.view["reason"] == "fault" and run.view["checked_in"] is True


def test_part_failure_before_identification_makes_no_record() -> None:
    run = Run()
    run.send(ev.Start, lang="en")
    run.send(ev.PartFailed, part="display", reason="fault")
    assert run.commits() == []
    assert run.screen == "see_reception" and run.view["reason"] == "fault"


def test_a_check_in_cut_short_by_a_restart_tells_staff_not_the_next_person() -> None:
    # posted by the runner once it has saved the cut-short visit's fault record at start
    run = Run()
    fx = run.send(ev.PartFailed, part="kiosk", reason="restarted")
    assert AlertStaff(reason="interrupted") in fx
    assert StatusLight(state="alert") in fx  # someone may be waiting: not a broken part
    assert run.screen == "idle" and run.commits() == []  # the next person starts as usual


def test_commit_failure_sends_to_reception_and_keeps_the_attendance_for_staff() -> None:
    run = Run()
    run.to_confirm()
    run.send(ev.Finish)
    commit = run.last_commit()
    fx = run.send(ev.CommitFailed, commit_id=commit.commit_id, reason="disk_full")
    assert AlertStaff(reason="commit_failed") in fx
    assert DiscardPhoto(photo="ab" * 32) in fx
    assert StatusLight(state="fault") in fx
    assert run.screen == "see_reception" and run.view["reason"] == "commit_failed"
    assert run.view["checked_in"] is False
    run.send(ev.StaffRequested)
    run.type_digits("2468")
    run.send(ev.Submit)
    run.send(ev.StaffAuthResult, ok=True, staff_id="staff-7")
    assert run.view["unsaved"] == ["CR-900101"]
    assert "commit_failed" in run.view["alerts"]


def test_qr_code_fills_the_case_reference() -> None:
    run = Run()
    run.send(ev.Start, lang="en")
    run.send(ev.QrScanned, text="CR-900101")
    assert run.view["field"] == "dob"
    run.type_digits(ALICE[1])
    run.send(ev.Submit)
    assert run.screen == "fingerprint"
    run2 = Run()
    run2.send(ev.Start, lang="en")
    run2.send(ev.QrScanned, text="https://example.invalid/x")
    assert run2.view["error"] == "qr_unreadable" and run2.view["field"] == "ref"


def test_case_reference_is_masked_once_typed_and_dob_validated() -> None:
    run = Run()
    run.send(ev.Start, lang="en")
    run.type_digits("9001")
    assert run.view["ref"]["digits"] == "9001"
    run.send(ev.Submit)
    assert run.view["error"] == "ref_incomplete"
    run.type_digits("01")
    run.send(ev.Submit)
    assert run.view["ref"]["digits"] is None and run.view["ref"]["entered"] == 6
    assert "900101" not in json.dumps(run.view)
    run.type_digits("31021990")
    run.send(ev.Submit)
    assert run.view["error"] == "dob_invalid"
    assert run.k.session is not None and run.k.session.identify_failures == 0


def test_unknown_reference_and_wrong_dob_look_the_same() -> None:
    a, b = Run(), Run()
    a.identify(("999999", ALICE[1]))
    b.identify((ALICE[0], "01011990"))
    assert a.view == b.view
    assert a.view["error"] == "no_match" and a.view["ref"]["entered"] == 0


def test_identify_locks_after_five_failures_in_a_session() -> None:
    run = Run()
    run.send(ev.Start, lang="en")
    for i in range(5):
        run.type_digits(f"99999{i}")
        run.send(ev.Submit)
        run.type_digits("01011990")
        fx = run.send(ev.Submit)
    assert AlertStaff(reason="identify_locked") in fx
    assert run.screen == "see_reception" and run.view["reason"] == "identify_locked"
    run.send(ev.Continue)
    assert run.screen == "idle"
    run.send(ev.Start, lang="en")  # still locked, even for a real person
    assert run.screen == "see_reception" and run.view["reason"] == "identify_locked"
    run.tick(FlowConfig().result_s)
    assert run.screen == "idle"
    run.tick(300)
    run.identify(ALICE)
    assert run.screen == "fingerprint"


def test_identify_locks_after_too_many_failures_across_sessions() -> None:
    run = Run(step_s=0.2)  # ten people, one wrong try each, all within the minute
    for i in range(9):
        run.identify((f"99990{i}", "01011990"))
        assert run.view["error"] == "no_match"
        run.send(ev.Cancel)
    fx = run.identify(("999909", "01011990"))
    assert AlertStaff(reason="identify_locked") in fx
    assert run.view["reason"] == "identify_locked"
    slow = Run(step_s=2.0)  # the same ten tries spread over minutes never lock
    for i in range(10):
        slow.identify((f"99990{i}", "01011990"))
        assert slow.view["error"] == "no_match"
        slow.send(ev.Cancel)


def test_timeout_warns_then_more_time_extends_then_abandons_without_a_record() -> None:
    cfg = FlowConfig(session_timeout_s=120, warn_s=30)
    run = Run(cfg)
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.photo()
    run.tick(80)
    assert "timeout" not in run.view
    run.tick(15)
    assert run.view["timeout"] == {"warning": True, "remaining_s": 25}
    run.send(ev.MoreTime)
    assert "timeout" not in run.view
    run.tick(100)
    assert run.view["timeout"]["warning"] is True and run.screen == "questions"
    fx = run.tick(25)
    assert run.screen == "idle"
    assert DiscardPhoto(photo="ab" * 32) in fx
    assert run.commits() == []


def test_no_timeout_while_saving() -> None:
    run = Run()
    run.to_confirm()
    run.send(ev.Finish)
    run.tick(10_000)
    assert run.screen == "confirm" and run.view["saving"] is True
    run.commit_ok()
    assert run.screen == "done"
    run.tick(FlowConfig().result_s)
    assert run.screen == "idle"


def _reach(run: Run, target: str) -> None:
    if target == "idle":
        return
    if target == "see_reception":
        run.send(ev.Help)
        return
    if target == "staff":
        run.send(ev.StaffRequested)
        return
    run.send(ev.Start, lang="en")
    if target == "identify":
        return
    run.type_digits(ALICE[0])
    run.send(ev.Submit)
    run.type_digits(ALICE[1])
    run.send(ev.Submit)
    if target == "fingerprint":
        return
    if target == "fallback":
        run.send(ev.CannotUseFinger)
        return
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    if target == "photo":
        return
    run.photo()
    if target == "questions":
        return
    run.answer_all()
    if target == "messages":
        return
    run.read_messages()
    if target == "confirm":
        return
    run.send(ev.Finish)
    run.commit_ok()


@pytest.mark.parametrize("target", [s.value for s in Screen])
def test_language_and_large_text_switch_on_every_screen(target: str) -> None:
    run = Run()
    _reach(run, target)
    assert run.screen == target
    before = run.view
    run.send(ev.SetLanguage, lang="cy")
    run.send(ev.SetLargeText, on=True)
    after = run.view
    assert after["lang"] == "cy" and after["large_text"] is True
    assert {k: v for k, v in after.items() if k not in ("lang", "large_text")} == {
        k: v for k, v in before.items() if k not in ("lang", "large_text")
    }
    run.send(ev.SetLanguage, lang="fr")
    assert run.view["lang"] == "cy"


def test_welsh_chosen_at_idle_is_kept_and_reset_for_the_next_person() -> None:
    run = Run()
    run.identify(ALICE, lang="cy")
    assert run.view["lang"] == "cy"
    run.send(ev.Cancel)
    assert run.view == {
        "screen": "idle",
        "lang": "en",
        "large_text": False,
        "help_available": True,
    }


def test_idle_view_has_nothing_personal_after_any_outcome() -> None:
    run = Run()
    run.to_confirm()
    run.send(ev.Finish)
    run.commit_ok()
    run.send(ev.Continue)
    text = json.dumps(run.view)
    assert run.view == {"screen": "idle", "lang": "en", "large_text": False, "help_available": True}
    for secret in ("900101", "1990", "Room", "payslips"):
        assert secret not in text


def test_ui_taps_drive_a_whole_checkin() -> None:
    """The UI's action names (daemon/ui/bridge.py) map onto the flow's events."""
    from daemon.flow.taps import TAP_NAMES, tap_event

    run = Run()
    taps: list[tuple[str, dict[str, Any]]] = [("start", {"lang": "cy"})]
    taps += [("key", {"digit": d}) for d in ALICE[0]] + [("submit", {})]
    taps += [("key", {"digit": d}) for d in ALICE[1]] + [("submit", {})]
    taps += [("cannot_use_finger", {}), ("continue", {}), ("photo", {})]
    for action, data in taps:
        event = tap_event(action, data, run.t + 1)
        assert event is not None
        run.feed(event)
    assert run.screen == "photo" and run.view["lang"] == "cy"
    assert tap_event("answer", {"id": 3}, 0.0) is None
    assert tap_event("self_destruct", {}, 0.0) is None
    assert {"start", "help", "more_time", "finish", "staff_exit"} <= TAP_NAMES


def test_the_done_screen_shows_the_saved_records_reference_and_only_then() -> None:
    run = Run()
    run.to_confirm(ALICE)
    run.send(ev.Finish)
    assert "receipt" not in run.view  # nothing until the record is saved
    run.send(ev.RecordCommitted, commit_id=run.last_commit().commit_id, receipt="7K2M-9QXD")
    assert run.screen == "done" and run.view["receipt"] == "7K2M-9QXD"
    run.send(ev.Continue)
    failed = Run()
    failed.to_confirm(ALICE)
    failed.send(ev.Finish)
    failed.send(ev.CommitFailed, commit_id=failed.last_commit().commit_id, reason="disk_full")
    assert failed.screen == "see_reception" and "receipt" not in failed.view


def test_a_visit_that_must_include_the_officer_is_recorded_then_sent_to_reception() -> None:
    """The kiosk is never the only channel: when the officer's policy says today's visit is in
    person, the check-in still counts (recorded, signed) and the person is asked to wait."""
    roster = roster_json()
    roster["people"][0]["in_person"] = True
    run = Run()
    run.send(ev.RosterLoaded, roster=parse_roster(roster))
    run.to_confirm(ALICE)
    fx = run.send(ev.Finish)
    commit = next(e for e in fx if isinstance(e, Commit))
    assert commit.type == "checkin" and "in_person" in commit.flags
    fx = run.send(ev.RecordCommitted, commit_id=commit.commit_id, receipt="7K2M-9QXD")
    assert AlertStaff(reason="in_person") in fx  # reception calls the officer
    assert run.screen == "see_reception" and run.view["reason"] == "in_person"
    assert run.view["checked_in"] is True and run.view["receipt"] == "7K2M-9QXD"
    plain = Run()  # without the field: the usual done screen
    plain.to_confirm(ALICE)
    plain.send(ev.Finish)
    plain.commit_ok()
    assert plain.screen == "done" and "in_person" not in plain.commits()[-1].flags
