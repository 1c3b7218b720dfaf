"""The data disk filling up, as the person at the kiosk, staff and the records see it: staff
are told as each level is reached; below the no-photo level check-ins are saved without the
photo and say why; below the reserve a person who starts is sent to reception at once, not
after a check-in that cannot be saved."""

from __future__ import annotations

from daemon.flow import events as ev
from daemon.flow.effects import AlertStaff, Commit, DiscardPhoto, StatusLight, TakePhoto
from tests.flow.kit import ALICE, NO_TEMPLATE, PLAIN, Run
from tests.flow.test_staff_tamper import staff_login


def test_a_full_disk_sends_the_person_to_reception_when_they_start() -> None:
    run = Run()
    fx = run.send(ev.DiskSpace, level="full")
    assert AlertStaff(reason="disk_full") in fx and StatusLight(state="fault") in fx
    run.send(ev.Start, lang="cy")
    # at once: no identification, no fingerprint, nothing typed for nothing
    assert run.screen == "see_reception"
    assert run.view["reason"] == "disk_full" and run.view["checked_in"] is False
    assert run.view["lang"] == "cy" and run.view["can_continue"] is True
    assert run.k.session is None and run.commits() == []
    run.type_digits(ALICE[0])  # the keypad is not there: nothing happens
    assert run.screen == "see_reception"
    run.send(ev.Continue)
    assert run.screen == "idle"
    run.send(ev.Start, lang="en")  # still full: the next person too
    assert run.view["reason"] == "disk_full"
    run.tick(run.k.config.result_s)
    assert run.screen == "idle"


def test_staff_who_cleared_the_alert_are_told_again_by_the_next_person_sent_to_them() -> None:
    run = Run()
    run.send(ev.DiskSpace, level="full")
    staff_login(run)
    run.send(ev.StaffAcknowledge)
    run.send(ev.StaffExit)
    assert run.k.alerts == ()
    fx = run.send(ev.Start, lang="en")
    assert AlertStaff(reason="disk_full") in fx
    assert run.view["reason"] == "disk_full"


def test_check_ins_start_again_once_space_is_back() -> None:
    run = Run()
    run.send(ev.DiskSpace, level="full")
    fx = run.send(ev.DiskSpace, level="low")
    assert not any(isinstance(e, AlertStaff) for e in fx)  # better is not news
    run.send(ev.Start, lang="en")
    assert run.screen == "identify"


def test_a_session_under_way_is_not_cut_short_when_the_disk_fills() -> None:
    """The reserve is met mid-session (rare: photos stopped long before). The person
    finishes; the outbox refuses, and the existing commit-failure path sends them to
    reception with their reference kept for staff."""
    run = Run()
    run.identify(ALICE)
    run.send(ev.DiskSpace, level="full")
    assert run.screen == "fingerprint"
    run.send(ev.FingerResult, matched=True, score=150, threshold=60)
    assert run.screen == "questions"  # no photo is taken that could not be kept
    run.answer_all()
    run.read_messages()
    run.send(ev.Finish)
    run.send(ev.CommitFailed, commit_id=run.last_commit().commit_id, reason="disk_full")
    assert run.view["reason"] == "commit_failed"
    assert run.k.unsaved == ("CR-900101",)


def test_each_step_down_tells_staff_once() -> None:
    run = Run()
    alerts = []
    for level in ("low", "low", "no_photo", "low", "no_photo", "full", "ok", "low"):
        alerts += [e.reason for e in run.send(ev.DiskSpace, level=level)
                   if isinstance(e, AlertStaff)]  # fmt: skip
    assert alerts == ["disk_low", "disk_no_photo", "disk_full"]
    assert run.k.disk == "low"
    run.send(ev.DiskSpace, level="nonsense")
    assert run.k.disk == "low"


def test_above_the_no_photo_level_the_photo_is_kept() -> None:
    run = Run()
    fx = run.send(ev.DiskSpace, level="low")
    assert AlertStaff(reason="disk_low") in fx
    run.to_confirm()
    run.send(ev.Finish)
    commit = run.last_commit()
    assert commit.photo == "ab" * 32
    assert "no_photo" not in commit.flags
    assert commit.detail is not None and "no_photo" not in commit.detail
    run.commit_ok()
    assert run.screen == "done"


def test_below_the_no_photo_level_no_photo_is_taken_and_the_record_says_why() -> None:
    run = Run()
    fx = run.send(ev.DiskSpace, level="no_photo")
    assert AlertStaff(reason="disk_no_photo") in fx
    run.identify(ALICE)
    fx = run.send(ev.FingerResult, matched=True, score=150, threshold=60)
    assert run.screen == "questions"
    assert not any(isinstance(e, TakePhoto) for e in run.effects)
    run.answer_all()
    run.read_messages()
    assert run.view["photo_taken"] is False
    run.send(ev.Finish)
    commit = run.last_commit()
    assert commit.type == "checkin" and commit.photo is None
    assert commit.flags == ("no_photo",)
    assert commit.detail is not None and commit.detail["no_photo"] == "disk_low"
    run.commit_ok()
    assert run.screen == "done"  # still a check-in: it counts


def test_a_photo_taken_before_the_disk_fell_is_dropped_at_the_commit() -> None:
    run = Run()
    run.to_confirm()  # photo taken while there was room
    run.send(ev.DiskSpace, level="no_photo")
    fx = run.send(ev.Finish)
    commit = next(e for e in fx if isinstance(e, Commit))
    assert fx.index(DiscardPhoto(photo="ab" * 32)) < fx.index(commit)
    assert commit.photo is None and "no_photo" in commit.flags
    assert commit.detail is not None and commit.detail["no_photo"] == "disk_low"
    run.commit_ok()
    assert run.screen == "done"


def test_a_fallback_check_in_below_the_no_photo_level_is_flagged_for_review() -> None:
    run = Run()
    run.send(ev.DiskSpace, level="no_photo")
    run.identify(NO_TEMPLATE)
    assert run.screen == "fallback"
    run.send(ev.Continue)
    assert run.screen == "questions"
    run.answer_all()
    run.read_messages()
    run.send(ev.Finish)
    commit = run.last_commit()
    assert commit.type == "checkin_fallback"
    assert set(commit.flags) == {"id_review", "no_photo"}
    assert commit.detail is not None and commit.detail["no_photo"] == "disk_low"


def test_a_fault_record_below_the_no_photo_level_keeps_both_reasons() -> None:
    run = Run()
    run.identify(PLAIN)
    run.send(ev.FingerResult, matched=True, score=150, threshold=60)
    run.photo()
    run.send(ev.DiskSpace, level="no_photo")
    fx = run.send(ev.PartFailed, part="display", reason="fault")
    assert DiscardPhoto(photo="ab" * 32) in fx
    commit = run.last_commit()
    assert commit.type == "fault" and commit.photo is None
    assert {"fault", "no_photo"} <= set(commit.flags)
    assert commit.detail is not None
    assert {k: commit.detail[k] for k in ("part", "reason", "stage", "no_photo")} == {
        "part": "display", "reason": "fault", "stage": "questions", "no_photo": "disk_low",
    }  # fmt: skip


def test_a_staff_override_below_the_no_photo_level_drops_the_photo_and_says_why() -> None:
    run = Run()
    run.to_confirm()
    staff_login(run)  # the level arrives while staff mode is open over the session
    run.send(ev.DiskSpace, level="no_photo")
    fx = run.send(ev.StaffOverride, reason="assisted_check_in")
    assert DiscardPhoto(photo="ab" * 32) in fx
    commit = run.last_commit()
    assert commit.type == "staff_override" and commit.photo is None
    assert "no_photo" in commit.flags
    assert commit.detail is not None
    assert {k: commit.detail[k] for k in ("reason", "staff", "no_photo")} == {
        "reason": "assisted_check_in", "staff": "staff-7", "no_photo": "disk_low",
    }  # fmt: skip


def test_the_fallback_screen_promises_no_photo_when_none_will_be_taken() -> None:
    """Below the no-photo level the fallback cannot rest on a photo: the screen says staff
    will check it is them instead (the record is flagged id_review and no_photo)."""
    run = Run()
    run.identify(ALICE)
    run.send(ev.CannotUseFinger)
    assert run.screen == "fallback" and run.view["photo"] is True
    run.send(ev.DiskSpace, level="no_photo")
    assert run.view["photo"] is False
