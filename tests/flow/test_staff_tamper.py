"""Tamper lock, staff mode (PIN, unlock, acknowledge, override)."""

from __future__ import annotations

from daemon.flow import FlowConfig
from daemon.flow import events as ev
from daemon.flow.effects import (
    AlertStaff,
    CheckStaffCredential,
    ClearAlerts,
    Commit,
    DiscardEnrolment,
    DiscardPhoto,
    EnrolFinger,
    StatusLight,
)
from tests.flow.kit import ALICE, Run


def staff_login(run: Run, pin: str = "2468", *, ok: bool = True) -> list[object]:
    run.send(ev.StaffRequested)
    assert run.screen == "staff" and run.view["phase"] == "pin"
    run.type_digits(pin)
    assert run.view["entered"] == len(pin) and pin not in str(run.view)
    fx = run.send(ev.Submit)
    assert fx == [CheckStaffCredential(pin=pin)]
    return list(run.send(ev.StaffAuthResult, ok=ok, staff_id="staff-7" if ok else None))


def test_tamper_locks_until_staff_unlock_and_closing_alone_does_not_unlock() -> None:
    run = Run()
    fx = run.send(ev.EnclosureOpened)
    commits = [e for e in fx if isinstance(e, Commit)]
    assert len(commits) == 1 and commits[0].type == "tamper" and commits[0].person is None
    assert AlertStaff(reason="tamper") in fx and StatusLight(state="tamper") in fx
    assert run.screen == "see_reception" and run.view["reason"] == "tamper"
    assert run.view["can_continue"] is False
    run.send(ev.RecordCommitted, commit_id=commits[0].commit_id)
    run.send(ev.EnclosureClosed)
    for event in (ev.Continue, ev.Cancel, ev.Help):
        run.send(event)
    run.send(ev.Start, lang="en")
    run.tick(10_000)
    assert run.screen == "see_reception" and run.view["reason"] == "tamper"
    staff_login(run)
    run.send(ev.StaffUnlock)
    assert run.view["result"] == "unlocked"
    fx = run.send(ev.StaffAcknowledge)
    assert ClearAlerts() in fx and StatusLight(state="idle") in fx
    run.send(ev.StaffExit)
    assert run.screen == "idle"


def test_what_staff_do_on_the_kiosk_leaves_signed_records() -> None:
    """Lifting the tamper and identify locks and clearing alerts are acts someone may have
    to answer for: each is a staff_action record in the chain, naming the staff member and
    what changed, never a person checking in."""
    run = Run()
    run.send(ev.Start, lang="en")
    for i in range(5):  # a stranger guessing references locks identification
        run.type_digits(f"99999{i}")
        run.send(ev.Submit)
        run.type_digits("01011990")
        run.send(ev.Submit)
    assert run.view["reason"] == "identify_locked"
    run.send(ev.Continue)
    run.send(ev.EnclosureOpened)
    run.send(ev.RecordCommitted, commit_id=run.last_commit().commit_id)
    run.send(ev.EnclosureClosed)
    staff_login(run)
    before = len(run.commits())
    run.send(ev.StaffUnlock)
    unlock = run.last_commit()
    assert unlock.type == "staff_action" and unlock.person is None
    assert unlock.detail == {
        "action": "unlock",
        "staff": "staff-7",
        "lifted": ["tamper", "identify"],
    }
    alerts = list(run.view["alerts"])
    assert "tamper" in alerts
    run.send(ev.StaffAcknowledge)
    ack = run.last_commit()
    assert ack.detail == {"action": "acknowledge_alerts", "staff": "staff-7", "alerts": alerts}
    assert len(run.commits()) == before + 2
    run.send(ev.RecordCommitted, commit_id=unlock.commit_id)
    fx = run.send(ev.CommitFailed, commit_id=ack.commit_id, reason="disk_full")
    assert AlertStaff(reason="commit_failed") in fx  # a lost audit record is not silent


def test_staff_cannot_unlock_while_the_enclosure_is_open() -> None:
    run = Run()
    run.send(ev.EnclosureOpened)
    staff_login(run)
    run.send(ev.StaffUnlock)
    assert run.view["result"] == "close_enclosure_first" and run.view["tamper"] is True
    run.send(ev.StaffExit)
    assert run.view["reason"] == "tamper"
    run.send(ev.EnclosureClosed)
    staff_login(run)
    run.send(ev.StaffUnlock)
    run.send(ev.StaffExit)
    assert run.screen == "idle"


def test_tamper_mid_checkin_records_the_interrupted_person_and_ends_the_session() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.photo()
    fx = run.send(ev.EnclosureOpened)
    commit = run.last_commit()
    assert commit.type == "tamper" and commit.person == "CR-900101"
    assert commit.detail == {"interrupted_checkin": True}
    assert DiscardPhoto(photo="ab" * 32) in fx
    assert run.k.session is None and run.view["reason"] == "tamper"
    assert "900101" not in str(run.view)


def test_tamper_commit_failure_raises_an_alert() -> None:
    run = Run()
    run.send(ev.EnclosureOpened)
    fx = run.send(ev.CommitFailed, commit_id=run.last_commit().commit_id, reason="disk_full")
    assert AlertStaff(reason="commit_failed") in fx


def test_wrong_staff_pin_three_times_locks_staff_mode_and_alerts() -> None:
    run = Run()
    staff_login(run, ok=False)
    assert run.view["result"] == "wrong_pin"
    run.send(ev.StaffExit)
    staff_login(run, ok=False)
    run.send(ev.StaffExit)
    fx = staff_login(run, ok=False)
    assert AlertStaff(reason="staff_pin_locked") in fx
    [locked] = [e for e in fx if isinstance(e, Commit)]  # guessing the PIN leaves a record
    assert (locked.type, locked.person, locked.session) == ("staff_action", None, None)
    assert locked.detail == {"action": "pin_locked", "attempts": 3, "locked_s": 300}
    assert run.screen == "idle"
    run.send(ev.StaffRequested)
    assert run.screen == "idle"
    run.tick(FlowConfig().staff_lock_s)
    run.send(ev.StaffRequested)
    assert run.screen == "staff"


def test_staff_view_shows_nothing_before_the_pin_is_accepted() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.StaffRequested)
    assert set(run.view) == {
        "screen",
        "lang",
        "large_text",
        "help_available",
        "phase",
        "result",
        "entered",
    }


def test_staff_override_for_the_person_at_the_kiosk_completes_their_checkin() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.CannotUseFinger)
    run.send(ev.Continue)
    run.photo()
    staff_login(run)
    assert run.view["session"] == {"stage": "questions", "identified": True, "ref": "CR-900101"}
    run.send(ev.StaffOverride, reason="no_such_reason")
    assert run.view["result"] == "bad_reason"
    fx = run.send(ev.StaffOverride, reason="identity_checked_by_staff")
    commit = next(e for e in fx if isinstance(e, Commit))
    assert commit.type == "staff_override" and commit.person == "CR-900101"
    assert commit.session is not None
    assert commit.verify is not None and commit.verify["method"] == "staff"
    assert commit.verify["staff"] == "staff-7"
    detail = dict(commit.detail or {})
    assert detail.pop("duration_s") > 0
    assert detail == {
        "reason": "identity_checked_by_staff",
        "staff": "staff-7",
        "lang": "en",  # the person's own visit: their language and what they read
        "messages_read": [],
    }
    assert commit.photo == "ab" * 32
    assert "id_review" not in commit.flags
    run.send(ev.StaffExit)  # not while saving
    assert run.screen == "staff"
    run.send(ev.RecordCommitted, commit_id=commit.commit_id)
    assert run.view["result"] == "override_recorded"
    run.send(ev.StaffExit)
    assert run.screen == "idle"
    assert [c.type for c in run.commits()] == ["staff_action", "staff_override"]  # the login


def test_staff_override_by_typed_reference_with_no_session() -> None:
    run = Run()
    staff_login(run)
    run.send(ev.StaffOverride, reason="kiosk_fault")
    assert run.view["result"] == "ref_needed"
    run.send(ev.StaffOverride, reason="kiosk_fault", ref_digits="12")
    assert run.view["result"] == "ref_incomplete"
    fx = run.send(ev.StaffOverride, reason="kiosk_fault", ref_digits="900103")
    commit = next(e for e in fx if isinstance(e, Commit))
    assert (commit.type, commit.person, commit.session) == ("staff_override", "CR-900103", None)
    run.send(ev.CommitFailed, commit_id=commit.commit_id, reason="disk_full")
    assert run.view["result"] == "override_failed" and "commit_failed" in run.view["alerts"]


def test_staff_record_attendance_for_someone_not_at_the_kiosk_on_the_keypad() -> None:
    """A person sent to reception (a fault before they were identified, not on the roster,
    cannot use the screen): staff type their case reference, choose why, and the attendance
    is a signed record like any other, never a missed appointment."""
    run = Run()
    staff_login(run)
    run.send(ev.StaffOtherPerson)
    assert run.view["phase"] == "ref" and run.view["field"] == "ref"
    assert run.view["ref"]["prefix"] == "CR-" and run.view["ref"]["entered"] == 0
    run.type_digits("12")
    run.send(ev.Submit)
    assert run.view["result"] == "ref_incomplete" and run.view["phase"] == "ref"
    run.send(ev.Delete)
    assert run.view["ref"]["digits"] == "1"
    run.type_digits("0000000")  # one too many: the keypad stops at the reference's length
    assert run.view["ref"]["digits"] == "100000"
    run.send(ev.Back)
    assert run.view["phase"] == "menu"  # back to the menu: the typing is forgotten
    run.send(ev.StaffOtherPerson)
    assert run.view["ref"]["entered"] == 0
    run.type_digits("900103")
    assert not run.send(ev.StaffOverride, reason="kiosk_fault")  # no reason before OK
    run.send(ev.Submit)
    assert run.view["phase"] == "reason" and run.view["ref"]["digits"] == "900103"
    run.send(ev.Back)
    assert run.view["phase"] == "ref" and run.view["ref"]["digits"] == "900103"
    run.send(ev.Submit)
    fx = run.send(ev.StaffOverride, reason="cannot_use_kiosk")
    commit = next(e for e in fx if isinstance(e, Commit))
    assert (commit.type, commit.person, commit.session) == ("staff_override", "CR-900103", None)
    assert commit.detail == {"reason": "cannot_use_kiosk", "staff": "staff-7"}
    assert run.view["phase"] == "saving"
    run.send(ev.RecordCommitted, commit_id=commit.commit_id)
    assert run.view["phase"] == "menu" and run.view["result"] == "override_recorded"
    assert "ref" not in run.view  # nothing of the reference stays on the screen
    run.send(ev.StaffExit)
    assert run.screen == "idle"
    assert [c.type for c in run.commits()] == ["staff_action", "staff_override"]


def test_staff_mode_pauses_the_session_timeout_and_times_out_itself() -> None:
    cfg = FlowConfig(session_timeout_s=120, warn_s=30, staff_timeout_s=180)
    run = Run(cfg)
    run.identify(ALICE)
    staff_login(run)
    run.tick(170)
    assert run.screen == "staff"
    run.tick(20)
    assert run.screen == "fingerprint" and "timeout" not in run.view


def test_acknowledging_alerts_turns_the_light_back() -> None:
    run = Run()
    run.send(ev.Help)
    assert run.k.alerts == ("help",)
    staff_login(run)
    fx = run.send(ev.StaffAcknowledge)
    assert ClearAlerts() in fx and StatusLight(state="idle") in fx
    run.send(ev.StaffExit)
    assert run.screen == "idle"


def test_opening_staff_mode_is_recorded_with_who_and_what_the_menu_showed() -> None:
    """DPA 2018 s.62: a consultation of personal data is logged with who did it. The staff
    menu lists the references of check-ins that could not be saved."""
    run = Run()
    run.to_confirm(ALICE)
    run.send(ev.Finish)
    run.send(ev.CommitFailed, commit_id=run.last_commit().commit_id, reason="disk_full")
    run.send(ev.Continue)
    staff_login(run)
    login = run.last_commit()
    assert login.type == "staff_action" and login.person is None
    assert login.detail == {"action": "login", "staff": "staff-7", "unsaved_shown": 1}
    assert "CR-900101" in run.view["unsaved"]  # what it shows; the record says only how many
    assert "CR-900101" not in repr(login)


def test_override_never_makes_a_second_record_for_a_session_already_saving() -> None:
    """Found by the random walks: a part failed while staff mode was open (the paused
    check-in's fault record was saving), then staff asked for an override."""
    run = Run()
    run.identify(ALICE)
    run.send(ev.CannotUseFinger)
    staff_login(run)
    run.send(ev.PartFailed, part="display", reason="fault")
    assert run.last_commit().type == "fault"
    run.send(ev.StaffOverride, reason="assisted_check_in")
    assert run.view["result"] == "ref_needed"
    assert [c.type for c in run.commits()] == ["staff_action", "fault"]  # the login, the fault
    run.commit_ok()
    run.send(ev.StaffExit)
    assert run.screen == "see_reception" and run.view["reason"] == "fault"


def test_results_that_arrive_while_staff_mode_is_open_reach_the_paused_checkin() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=99, threshold=60)
    run.send(ev.TakePhotoNow)
    staff_login(run)
    fx = run.send(ev.PhotoTaken, photo="cd" * 32)
    assert fx == [] and run.screen == "staff"
    run.send(ev.StaffExit)
    assert run.screen == "questions"
    run.answer_all()
    run.read_messages()
    run.send(ev.Finish)
    assert run.last_commit().photo == "cd" * 32


def _enrol_start(run: Run, digits: str = "900103") -> None:
    staff_login(run)
    run.send(ev.StaffEnrol)
    assert run.view["phase"] == "ref" and run.view["purpose"] == "enrol"
    run.type_digits(digits)
    run.send(ev.Submit)


def test_enrolment_takes_two_fingers_after_consent_and_makes_one_record() -> None:
    run = Run()
    _enrol_start(run, "999999")
    assert run.view["result"] == "not_on_roster" and run.view["phase"] == "ref"
    for _ in range(6):
        run.send(ev.Delete)
    run.type_digits("900103")
    assert not run.send(ev.Submit) and run.view["phase"] == "consent"
    fx = run.send(ev.EnrolConsent, agree=True)
    assert fx == [EnrolFinger(finger="right_index")] and run.view["phase"] == "capture"
    run.tick(10_000)  # waiting for the sensor: staff mode does not time out under the person
    assert run.screen == "staff"
    fx = run.send(ev.FingerEnrolled, finger="right_index", ok=True)
    assert fx == [EnrolFinger(finger="left_index")]
    assert run.view["enrol"] == {"finger": "left_index", "taken": 1, "keep": 2}
    fx = run.send(ev.FingerEnrolled, finger="left_index", ok=False, reason="duplicate_finger")
    assert run.view["phase"] == "capture_ready" and run.view["result"] == "duplicate_finger"
    assert run.view["enrol"]["finger"] == "right_middle"  # the next finger, not the same one
    fx = run.send(ev.Submit)
    assert fx == [EnrolFinger(finger="right_middle")]
    fx = run.send(ev.FingerEnrolled, finger="right_middle", ok=True)
    [commit] = [e for e in fx if isinstance(e, Commit)]
    assert (commit.type, commit.person, commit.session) == ("finger_enrolment", "CR-900103", None)
    assert commit.detail == {
        "consent": True,
        "fingers": ["right_index", "right_middle"],
        "staff": "staff-7",
    }
    assert run.view["phase"] == "saving"
    run.send(ev.RecordCommitted, commit_id=commit.commit_id, receipt="7K2M-9QXD")
    assert run.view["phase"] == "menu" and run.view["result"] == "enrolled"


def test_a_person_who_says_no_is_recorded_and_nothing_is_taken() -> None:
    run = Run()
    _enrol_start(run)
    fx = run.send(ev.EnrolConsent, agree=False)
    [commit] = [e for e in fx if isinstance(e, Commit)]
    assert commit.type == "finger_enrolment" and commit.detail == {
        "consent": False,
        "staff": "staff-7",
    }
    assert not [e for e in fx if isinstance(e, EnrolFinger)]
    assert run.view["phase"] == "menu" and run.view["result"] == "enrol_declined"


def test_staff_are_told_before_the_notice_that_the_person_chose_not_to_enrol() -> None:
    """The kiosk never asks someone who declined to enrol; if staff open enrolment for them,
    the screen says they chose not to before the notice is handed over. The person can still
    change their mind (agree), or say no again (recorded, as before)."""
    run = Run()
    _enrol_start(run, "900104")
    assert run.view["phase"] == "consent" and run.view["enrol"]["declined_biometric"] is True
    fx = run.send(ev.EnrolConsent, agree=False)
    [commit] = [e for e in fx if isinstance(e, Commit)]
    assert commit.detail == {"consent": False, "staff": "staff-7"}
    run.send(ev.StaffEnrol)
    run.type_digits("900104")
    run.send(ev.Submit)
    assert run.send(ev.EnrolConsent, agree=True) == [EnrolFinger(finger="right_index")]
    plain = Run()
    _enrol_start(plain)  # someone with no choice on file: the notice with nothing above it
    assert plain.view["phase"] == "consent" and plain.view["enrol"]["declined_biometric"] is False


def test_an_enrolment_given_up_forgets_the_fingers_taken() -> None:
    run = Run()
    _enrol_start(run)
    run.send(ev.EnrolConsent, agree=True)
    run.send(ev.FingerEnrolled, finger="right_index", ok=True)
    for _ in range(3):  # the second finger fails three times: the next one is offered
        run.send(ev.FingerEnrolled, finger="left_index", ok=False, reason="poor_image")
        if run.view["enrol"]["finger"] == "left_index":
            assert run.view["result"] == "poor_image"
            run.send(ev.Submit)
    assert run.view["enrol"]["finger"] == "right_middle"
    fx = run.send(ev.Back)  # staff stop here
    assert DiscardEnrolment() in fx
    assert run.view["phase"] == "menu" and run.view["result"] == "enrol_cancelled"
    assert not [c for c in run.commits() if c.type == "finger_enrolment"]
    run.send(ev.StaffEnrol)
    run.type_digits("900103")
    run.send(ev.Submit)
    assert run.view["phase"] == "consent"
    fx = run.send(ev.StaffExit)  # leaving during the notice also forgets everything
    assert DiscardEnrolment() in fx and run.screen == "idle"
