"""The check-in flow as a pure state machine: ``step(kiosk, event) -> (kiosk, [effects])``.

Identify (case reference + date of birth, or a QR code for the reference) → 1:1 fingerprint
(up to ``max_finger_attempts``) or the fallback (date of birth + photo, flagged ``id_review``)
→ photo → questions → officer messages → confirm → commit → done (the next appointment shows
only after RecordCommitted). Someone who declined fingerprints (the roster's ``biometric``)
goes from identify straight to the photo: date of birth + photo is their route by choice.
Escalation, tamper, part faults, commit failure, the identify limiter, time-outs and staff
mode are described in docs/checkin-flow.md.

Pure: no I/O, no clock reads, no threads, no randomness. The same state and event always give
the same answer, so the composition root may call :func:`step` from one thread only (its event
loop) and carry out the effects in order.

May import: the standard library, daemon.roster and daemon.flow.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from daemon.flow import events as ev
from daemon.flow.effects import (
    AlertStaff,
    CheckStaffCredential,
    ClearAlerts,
    Commit,
    DiscardEnrolment,
    DiscardPhoto,
    Effect,
    EnrolFinger,
    PrintReceipt,
    StatusLight,
    TakePhoto,
    VerifyFinger,
)
from daemon.flow.state import (
    ENROL_FINGERS,
    ENROL_KEEP,
    ENROL_TRIES,
    LANGS,
    Kiosk,
    Session,
    Staff,
    Stage,
)
from daemon.roster import BY_CHOICE_METHOD, Question

Result = tuple[Kiosk, list[Effect]]

#: Stages in which the person is expected to act, so inactivity time-outs apply.
INTERACTIVE = frozenset(
    {
        Stage.IDENTIFY,
        Stage.FINGERPRINT,
        Stage.FALLBACK,
        Stage.PHOTO,
        Stage.QUESTIONS,
        Stage.MESSAGES,
        Stage.CONFIRM,
    }
)
_RESULT = frozenset({Stage.DONE, Stage.SEE_RECEPTION})
#: the data disk's levels, best first (events.DiskSpace; daemon/diskspace.py)
DISK_LEVELS = ("ok", "low", "no_photo", "full")
#: levels at which a check-in keeps no photo: the sealed photo is nearly all of its bytes
_NO_PHOTO_LEVELS = frozenset({"no_photo", "full"})
#: what a record kept without its photo for that reason says in ``detail.no_photo``
NO_PHOTO_REASON = "disk_low"
#: ``verify.method`` of a visit by someone who declined fingerprints: the same evidence as the
#: fallback (date of birth + photo), but chosen, so the API never mistakes it for a failure
_PERSON_INPUT = (
    ev.Key,
    ev.Delete,
    ev.Submit,
    ev.Back,
    ev.QrScanned,
    ev.Help,
    ev.MoreTime,
    ev.Continue,
    ev.CannotUseFinger,
    ev.TakePhotoNow,
    ev.Answer,
    ev.MessageRead,
    ev.Finish,
    ev.SetLanguage,
    ev.SetLargeText,
)


def step(k: Kiosk, event: ev.Event) -> Result:
    """Apply one event; return the new state and the effects to carry out, in order.

    Events that do not apply to the current state are ignored (no effects). ``event.now`` is
    monotonic seconds; a value lower than the last seen is treated as the last seen."""
    before = light(k)
    k = replace(k, now=max(k.now, event.now))
    k, fx = _dispatch(k, event)
    after = light(k)
    if after != before:
        fx.append(StatusLight(state=after))
    return k, fx


def light(k: Kiosk) -> str:
    """What the status light should show for this state."""
    if k.tamper:
        return "tamper"
    if "fault" in k.alerts or "commit_failed" in k.alerts or "disk_full" in k.alerts:
        return "fault"
    if k.alerts:
        return "alert"
    if k.session is not None:
        return "ok" if k.session.stage == Stage.DONE else "busy"
    return "idle"


# --- dispatch ----------------------------------------------------------------------------------


def _dispatch(k: Kiosk, e: ev.Event) -> Result:
    if isinstance(e, ev.RosterLoaded):
        return replace(k, roster=e.roster), []
    if isinstance(e, ev.DiskSpace):
        return _disk(k, e)
    if isinstance(e, ev.SetLanguage):
        if e.lang not in LANGS:
            return k, []
        return _touch(replace(k, lang=e.lang)), []
    if isinstance(e, ev.SetLargeText):
        return _touch(replace(k, large_text=e.on)), []
    if isinstance(e, ev.EnclosureOpened):
        return _tamper(k)
    if isinstance(e, ev.EnclosureClosed):
        return replace(k, enclosure_open=False), []
    if isinstance(e, ev.RecordCommitted | ev.CommitFailed):
        return _commit_result(k, e)
    if isinstance(e, ev.PartFailed):
        return _part_failed(k, e)
    if isinstance(e, ev.PhotoTaken) and not _expecting_photo(k):
        return k, [DiscardPhoto(photo=e.photo)]
    if isinstance(e, ev.StaffRequested):
        return _staff_enter(k)
    if isinstance(e, ev.FingerResult | ev.FingerUnreadable | ev.PhotoTaken):
        # results reach the session even while staff mode is open over it
        s = k.session
        handler = _HANDLERS.get(s.stage) if s is not None else None
        return handler(k, s, e) if handler is not None and s is not None else (k, [])
    if k.staff is not None:
        return _staff(k, e)
    if isinstance(e, ev.Tick):
        return _tick(k)
    if k.tamper:
        return k, []
    if k.session is None:
        return _idle(k, e)
    return _session(k, e)


def _disk(k: Kiosk, e: ev.DiskSpace) -> Result:
    """Remember the disk's level; tell staff each time it gets worse (not when it recovers:
    the alert they have not yet acknowledged still stands)."""
    if e.level not in DISK_LEVELS or e.level == k.disk:
        return k, []
    worse = DISK_LEVELS.index(e.level) > DISK_LEVELS.index(k.disk)
    k = replace(k, disk=e.level)
    if not worse:
        return k, []
    if e.level == "low":
        return _alert(k, "disk_low")
    if e.level == "no_photo":
        return _alert(k, "disk_no_photo")
    return _alert(k, "disk_full")


def _touch(k: Kiosk) -> Kiosk:
    """The person did something: restart the inactivity period and drop any warning."""
    s = k.session
    if s is None or s.stage not in INTERACTIVE or k.staff is not None:
        return k
    return replace(k, session=replace(s, last_input=k.now, warned=False))


def _alert(k: Kiosk, reason: str) -> Result:
    if reason in k.alerts:
        return k, []
    return replace(k, alerts=(*k.alerts, reason)), [AlertStaff(reason=reason)]


def _staff_action(k: Kiosk, action: str, **detail: object) -> Result:
    """A signed ``staff_action`` record of something done in staff mode (lifting a lock,
    clearing alerts, a PIN lockout), committed in the background: the audit trail of the
    kiosk's own staff, as tamper-evident as the check-ins."""
    return _background_commit(k, "staff_action", None, {"action": action, **detail})


def _end_session(k: Kiosk) -> Result:
    """Back to idle with nothing recorded; the next person starts in the default language."""
    fx: list[Effect] = []
    s = k.session
    if s is not None and s.photo is not None and not s.committed:
        fx.append(DiscardPhoto(photo=s.photo))
    return replace(k, session=None, lang="en", large_text=False), fx


# --- time --------------------------------------------------------------------------------------


def _tick(k: Kiosk) -> Result:
    s = k.session
    if s is None:
        if k.notice is not None and k.now - k.notice_since >= k.config.result_s:
            return replace(k, notice=None), []
        return k, []
    cfg = k.config
    if s.stage in _RESULT and k.now - s.last_input >= cfg.result_s:
        return _end_session(k)
    if s.stage in INTERACTIVE:
        idle_for = k.now - s.last_input
        if idle_for >= cfg.session_timeout_s:
            return _end_session(k)
        if idle_for >= cfg.session_timeout_s - cfg.warn_s and not s.warned:
            return replace(k, session=replace(s, warned=True)), []
    return k, []


def deadline(k: Kiosk) -> float | None:
    """When the current session will be abandoned for inactivity (monotonic seconds), or None
    when no time-out is running."""
    s = k.session
    if s is None or k.staff is not None or s.stage not in INTERACTIVE:
        return None
    return s.last_input + k.config.session_timeout_s


# --- idle --------------------------------------------------------------------------------------


def _idle(k: Kiosk, e: ev.Event) -> Result:
    if isinstance(e, ev.Help):
        k2, fx = _alert(k, "help")
        return replace(k2, notice="help", notice_since=k.now), fx
    if k.notice is not None:
        if isinstance(e, ev.Continue):
            return replace(k, notice=None), []
        return k, []
    if isinstance(e, ev.Start):
        lang = e.lang if e.lang in LANGS else k.lang
        if k.disk == "full":
            # nothing could be saved: say so now, not after the whole check-in; a person at
            # reception records the attendance (a machine fault is never a missed report)
            k = replace(k, lang=lang, notice="disk_full", notice_since=k.now)
            return _alert(k, "disk_full")
        if k.limiter.locked(k.now):
            return replace(k, lang=lang, notice="identify_locked", notice_since=k.now), []
        s = Session(id=k.next_session, stage=Stage.IDENTIFY, last_input=k.now, started=k.now)
        return replace(k, lang=lang, session=s, next_session=k.next_session + 1), []
    return k, []


# --- a session -----------------------------------------------------------------------------


def _session(k: Kiosk, e: ev.Event) -> Result:
    s = k.session
    assert s is not None
    if isinstance(e, _PERSON_INPUT):
        k = _touch(k)
        s = k.session
        assert s is not None
    if isinstance(e, ev.MoreTime):
        return k, []
    if isinstance(e, ev.Help) and s.stage not in (Stage.COMMITTING, *_RESULT):
        return _help(k, s)
    if isinstance(e, ev.Cancel) and s.stage in INTERACTIVE:
        return _end_session(k)
    if s.stage in _RESULT:
        if isinstance(e, ev.Continue):
            return _end_session(k)
        return k, []
    handler = _HANDLERS.get(s.stage)
    return handler(k, s, e) if handler else (k, [])


def _help(k: Kiosk, s: Session) -> Result:
    if not s.identified:
        k2, fx = _end_session(k)
        k3, fx2 = _alert(k2, "help")
        return replace(k3, notice="help", notice_since=k.now), fx + fx2
    k2, fx = _alert(k, "speak_to_someone")
    flags = s.flags if "see_officer" in s.flags else (*s.flags, "see_officer")
    return replace(k2, session=replace(s, help_requested=True, flags=flags)), fx


def _identify(k: Kiosk, s: Session, e: ev.Event) -> Result:
    cfg = k.config
    if isinstance(e, ev.Key):
        if len(e.digit) != 1 or not e.digit.isdigit() or not e.digit.isascii():
            return k, []
        if s.entry_field == "ref" and len(s.ref_digits) < cfg.ref_digits:
            s = replace(s, ref_digits=s.ref_digits + e.digit, identify_error=None)
        elif s.entry_field == "dob" and len(s.dob_digits) < 8:
            s = replace(s, dob_digits=s.dob_digits + e.digit, identify_error=None)
        return replace(k, session=s), []
    if isinstance(e, ev.Delete):
        if s.entry_field == "ref":
            return replace(k, session=replace(s, ref_digits=s.ref_digits[:-1])), []
        return replace(k, session=replace(s, dob_digits=s.dob_digits[:-1])), []
    if isinstance(e, ev.Back):
        return replace(k, session=replace(s, entry_field="ref", identify_error=None)), []
    if isinstance(e, ev.QrScanned):
        digits = qr_digits(e.text, cfg.ref_prefix, cfg.ref_digits)
        if digits is None:
            return replace(k, session=replace(s, identify_error="qr_unreadable")), []
        s = replace(s, ref_digits=digits, entry_field="dob", identify_error=None)
        return replace(k, session=s), []
    if not isinstance(e, ev.Submit):
        return k, []
    if s.entry_field == "ref":
        if len(s.ref_digits) != cfg.ref_digits:
            return replace(k, session=replace(s, identify_error="ref_incomplete")), []
        return replace(k, session=replace(s, entry_field="dob", identify_error=None)), []
    dob = parse_dob(s.dob_digits)
    if dob is None:
        return replace(k, session=replace(s, identify_error="dob_invalid")), []
    if k.limiter.locked(k.now):
        return _identify_locked(k, s)
    person = k.roster.lookup(cfg.ref_prefix + s.ref_digits, dob)
    if person is None and k.roster.unusable_entry(cfg.ref_prefix + s.ref_digits):
        # their roster entry was left out as faulty: the roster's fault, never "your details
        # do not match" (and no lockout); reception records the attendance
        s = replace(s, stage=Stage.SEE_RECEPTION, reception_reason="fault", ref_digits="",
                    dob_digits="", identify_error=None)  # fmt: skip
        return _alert(replace(k, session=s), "roster_entry")
    if person is None:
        failures = s.identify_failures + 1
        limiter = k.limiter.failed(k.now, failures)
        s = replace(
            s,
            identify_failures=failures,
            ref_digits="",
            dob_digits="",
            entry_field="ref",
            identify_error="no_match",
        )
        k = replace(k, limiter=limiter, session=s)
        if limiter.locked(k.now):
            return _identify_locked(k, s)
        return k, []
    s = replace(s, person=person, ref_digits="", dob_digits="", identify_error=None)
    if person.declined_biometric:
        # their chosen route: no fingerprint step, and nothing that reads as a fallback or fault
        return _to_photo(k, replace(s, by_choice=True))
    if not person.templates:
        return replace(k, session=replace(s, stage=Stage.FALLBACK, fallback="no_template")), []
    s = replace(s, stage=Stage.FINGERPRINT, finger_phase="scanning")
    return replace(k, session=s), [VerifyFinger(templates=person.templates, attempt=1)]


def _identify_locked(k: Kiosk, s: Session) -> Result:
    s = replace(s, stage=Stage.SEE_RECEPTION, reception_reason="identify_locked")
    return _alert(replace(k, session=s), "identify_locked")


def _fingerprint(k: Kiosk, s: Session, e: ev.Event) -> Result:
    cfg = k.config
    if isinstance(e, ev.CannotUseFinger):
        return _to_fallback(k, s, "cannot_use_finger")
    if isinstance(e, ev.Continue) and s.finger_phase in ("retry", "no_finger"):
        person = s.person
        assert person is not None
        s = replace(s, finger_phase="scanning")
        effect = VerifyFinger(templates=person.templates, attempt=s.finger_attempts + 1)
        return replace(k, session=s), [effect]
    if s.finger_phase != "scanning":
        return k, []
    if isinstance(e, ev.FingerUnreadable) and e.reason == "no_finger":
        return replace(k, session=replace(s, finger_phase="no_finger", last_input=k.now)), []
    if isinstance(e, ev.FingerResult | ev.FingerUnreadable):
        attempts = s.finger_attempts + 1
        s = replace(s, finger_attempts=attempts, last_input=k.now, warned=False)
        if isinstance(e, ev.FingerResult):
            s = replace(s, score=e.score, threshold=e.threshold)
            if e.matched:
                return _to_photo(k, replace(s, verified=True))
        if attempts >= cfg.max_finger_attempts:
            return _to_fallback(k, s, "fingerprint_failed")
        return replace(k, session=replace(s, finger_phase="retry")), []
    return k, []


def _to_fallback(k: Kiosk, s: Session, why: str) -> Result:
    s = replace(s, stage=Stage.FALLBACK, fallback=why, last_input=k.now, warned=False)
    return replace(k, session=s), []


def _fallback(k: Kiosk, s: Session, e: ev.Event) -> Result:
    if isinstance(e, ev.Continue):
        return _to_photo(k, s)
    return k, []


def _to_photo(k: Kiosk, s: Session) -> Result:
    """The photo step, unless the disk is too full to keep a photo: then straight on to the
    questions, and the record says why it has none (no photo is taken only to be dropped)."""
    if k.disk in _NO_PHOTO_LEVELS:
        return _to_questions(k, replace(s, no_photo=NO_PHOTO_REASON), 0)
    return replace(k, session=replace(s, stage=Stage.PHOTO, photo_phase="notice")), []


def _keep_photo(k: Kiosk, s: Session) -> tuple[Session, list[Effect]]:
    """At the commit: a photo taken before the disk fell below the no-photo level is dropped
    (DiscardPhoto) and the record says why."""
    if s.photo is None or k.disk not in _NO_PHOTO_LEVELS:
        return s, []
    return replace(s, photo=None, no_photo=NO_PHOTO_REASON), [DiscardPhoto(photo=s.photo)]


def _expecting_photo(k: Kiosk) -> bool:
    s = k.session
    return s is not None and s.stage == Stage.PHOTO and s.photo_phase == "capturing"


def _photo(k: Kiosk, s: Session, e: ev.Event) -> Result:
    if isinstance(e, ev.TakePhotoNow) and s.photo_phase == "notice":
        return replace(k, session=replace(s, photo_phase="capturing")), [TakePhoto()]
    if isinstance(e, ev.PhotoTaken):  # only reaches here while capturing
        flags = s.flags if e.quality_ok else (*s.flags, "photo_quality")
        s = replace(s, photo=e.photo, flags=flags, last_input=k.now, warned=False)
        return _to_questions(k, s, 0)
    return k, []


def questions(s: Session) -> tuple[Question, ...]:
    return s.person.all_questions() if s.person is not None else ()


def _to_questions(k: Kiosk, s: Session, index: int) -> Result:
    if index < len(questions(s)):
        return replace(k, session=replace(s, stage=Stage.QUESTIONS, q_index=index)), []
    return _to_messages(k, s, 0)


def _questions(k: Kiosk, s: Session, e: ev.Event) -> Result:
    qs = questions(s)
    q = qs[s.q_index]
    if isinstance(e, ev.Back):
        if s.q_index == 0:
            return k, []
        return replace(k, session=replace(s, q_index=s.q_index - 1)), []
    if not isinstance(e, ev.Answer) or e.question != q.id:
        return k, []
    if e.value not in {o.id for o in q.options}:
        return k, []
    answers = (*((a, v) for a, v in s.answers if a != q.id), (q.id, e.value))
    s = replace(s, answers=answers)
    fx: list[Effect] = []
    if q.flag_if is not None and e.value == q.flag_if:
        reason = "speak_to_someone" if q.id == "speak_to_someone" else "see_officer"
        if "see_officer" not in s.flags:
            s = replace(s, flags=(*s.flags, "see_officer"))
        if q.id not in s.flagged_by:
            s = replace(s, flagged_by=(*s.flagged_by, q.id))
        k, fx = _alert(replace(k, session=s), reason)
    k2, fx2 = _to_questions(replace(k, session=s), s, s.q_index + 1)
    return k2, fx + fx2


def _to_messages(k: Kiosk, s: Session, index: int) -> Result:
    assert s.person is not None
    if index < len(s.person.messages):
        return replace(k, session=replace(s, stage=Stage.MESSAGES, m_index=index)), []
    return replace(k, session=replace(s, stage=Stage.CONFIRM)), []


def _messages(k: Kiosk, s: Session, e: ev.Event) -> Result:
    assert s.person is not None
    if isinstance(e, ev.Back):
        if s.m_index > 0:
            return replace(k, session=replace(s, m_index=s.m_index - 1)), []
        return _back_to_last_question(k, s)
    if isinstance(e, ev.MessageRead) and e.message == s.person.messages[s.m_index].id:
        if e.message not in s.messages_read:
            s = replace(s, messages_read=(*s.messages_read, e.message))
        return _to_messages(k, s, s.m_index + 1)
    return k, []


def _back_to_last_question(k: Kiosk, s: Session) -> Result:
    s = replace(s, stage=Stage.QUESTIONS, q_index=len(questions(s)) - 1)
    return replace(k, session=s), []


def _confirm(k: Kiosk, s: Session, e: ev.Event) -> Result:
    assert s.person is not None
    if isinstance(e, ev.Back):
        if s.person.messages:
            return _to_messages(k, s, len(s.person.messages) - 1)
        return _back_to_last_question(k, s)
    if isinstance(e, ev.Finish):
        extra = ("in_person",) if s.person.in_person else ()
        return _commit_session(k, s, checkin_type(s), s.flags, extra=extra)
    return k, []


_HANDLERS = {
    Stage.IDENTIFY: _identify,
    Stage.FINGERPRINT: _fingerprint,
    Stage.FALLBACK: _fallback,
    Stage.PHOTO: _photo,
    Stage.QUESTIONS: _questions,
    Stage.MESSAGES: _messages,
    Stage.CONFIRM: _confirm,
}


# --- records -----------------------------------------------------------------------------------


def checkin_type(s: Session) -> str:
    """``see_officer`` (the API surfaces it first) beats ``checkin_fallback`` beats
    ``checkin``; the flags keep both facts."""
    if "see_officer" in s.flags:
        return "see_officer"
    return "checkin_fallback" if s.fallback else "checkin"


def record_flags(s: Session, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``id_review`` (an officer checks who came, by the next working day) when no fingerprint
    matched, except for someone who declined fingerprints and has a photo: their route is
    not an exception (the API samples their photos instead; docs/privacy.md). Without a
    photo (a low disk, a camera fault) only the date of birth was checked, so it is one."""
    flags = list(s.flags)
    if not s.verified and not (s.by_choice and s.photo is not None):
        flags.append("id_review")
    if s.photo is None:
        flags.append("no_photo")
    flags.extend(extra)
    return tuple(dict.fromkeys(flags))


def record_answers(s: Session) -> dict[str, bool | str]:
    """yes/no answers as booleans (docs/api.md), choices as the option id."""
    kinds = {q.id: q.kind for q in questions(s)}
    return {
        qid: (value == "yes") if kinds.get(qid) == "yes_no" else value for qid, value in s.answers
    }


def record_verify(s: Session, k: Kiosk) -> dict[str, object]:
    if s.by_choice:  # not a fallback: no ``fallback`` reason, no attempts
        return {"method": BY_CHOICE_METHOD, "score": None, "threshold": None, "attempts": 0}
    out: dict[str, object] = {
        "method": "fingerprint" if s.verified else "dob_photo",
        "score": s.score,
        "threshold": s.threshold,
        "attempts": s.finger_attempts,
    }
    if s.fallback is not None:
        out["fallback"] = s.fallback
    return out


def record_detail(s: Session, k: Kiosk) -> dict[str, object]:
    """What the visit's record says besides the answers: the language the person used (an
    officer writes to them in it; the Welsh Language Standards ask that it be recorded), how
    long the visit took from Start to saving (seconds; the service's target is under three
    minutes), what asked for the officer (``flagged`` questions, ``asked_for_help``) and,
    when the officer left messages, which ones the person read, so the case system knows an
    instruction was delivered and can stop showing it; ``no_photo`` (``disk_low``) when the
    kiosk kept no photo for lack of disk space; ``biometric: "declined"`` when the person
    declined fingerprints (the roster said so), beside ``verify.method``."""
    out: dict[str, object] = {"lang": k.lang, "duration_s": round(max(0.0, k.now - s.started))}
    if s.by_choice:
        out["biometric"] = "declined"
    if s.person is not None and s.person.messages:
        out["messages_read"] = list(s.messages_read)
    # why the officer is asked to act: the questions whose answer raised see_officer, and
    # the "I need to speak to someone" button (a callback the same working day)
    if s.flagged_by:
        out["flagged"] = list(s.flagged_by)
    if s.help_requested:
        out["asked_for_help"] = True
    if s.no_photo is not None:  # kept no photo although none failed: why, for the officer
        out["no_photo"] = s.no_photo
    return out


def _commit_session(
    k: Kiosk,
    s: Session,
    type_: str,
    flags: tuple[str, ...],
    *,
    extra: tuple[str, ...] = (),
    detail: dict[str, object] | None = None,
) -> Result:
    s, fx = _keep_photo(k, s)
    assert s.person is not None
    cid = k.next_commit
    effect = Commit(
        commit_id=cid,
        type=type_,
        session=s.id,
        person=s.person.ref,
        verify=record_verify(s, k),
        photo=s.photo,
        answers=record_answers(s),
        flags=record_flags(replace(s, flags=flags), extra),
        detail=record_detail(s, k) | (detail or {}),
    )
    s = replace(s, stage=Stage.COMMITTING, commit_id=cid)
    return replace(k, session=s, next_commit=cid + 1), [*fx, effect]


def _present(k: Kiosk, e: ev.RecordCommitted) -> float | None:
    """The earliest the present can be, in Unix seconds: the wall clock when it is
    synchronised; otherwise no earlier than the roster's making (a Pi without a real-time
    clock starts from the time it last saved, which is behind, never ahead). None when
    neither is known."""
    if e.wall is not None and e.clock_synced:
        return e.wall
    known = [t for t in (e.wall, k.roster.generated_unix) if t is not None]
    return max(known) if known else None


def _commit_result(k: Kiosk, e: ev.RecordCommitted | ev.CommitFailed) -> Result:
    ok = isinstance(e, ev.RecordCommitted)
    if e.commit_id in k.background:
        k = replace(k, background=tuple(c for c in k.background if c != e.commit_id))
        return (k, []) if ok else _alert(k, "commit_failed")
    st = k.staff
    if st is not None and st.commit_id == e.commit_id and st.phase == "saving":
        st = replace(st, phase="menu", commit_id=None, ref="", last_input=k.now)
        s = k.session
        if s is not None and s.commit_id == e.commit_id:
            k = replace(k, session=None, lang="en", large_text=False)
        if ok and st.purpose == "enrol":
            st = replace(st, result="enrolled", enrolled=(), purpose="override")
            return replace(k, staff=st), []
        if ok:
            receipt = e.receipt if isinstance(e, ev.RecordCommitted) else ""
            return replace(k, staff=replace(st, result="override_recorded", receipt=receipt)), []
        return _alert(replace(k, staff=replace(st, result="override_failed")), "commit_failed")
    s = k.session
    if s is None or s.commit_id != e.commit_id or s.stage != Stage.COMMITTING:
        return k, []
    if isinstance(e, ev.CommitFailed):
        s = replace(
            s, stage=Stage.SEE_RECEPTION, reception_reason="commit_failed", last_input=k.now
        )
        assert s.person is not None
        k = replace(k, session=s, unsaved=(*k.unsaved, s.person.ref))
        k, alert = _alert(k, "commit_failed")
        return k, ([DiscardPhoto(photo=s.photo)] if s.photo else []) + alert
    appt = s.person.next_appointment(_present(k, e)) if s.person is not None else None
    s = replace(
        s, committed=True, receipt=e.receipt, appointment=appt, last_input=k.now, warned=False
    )
    fx: list[Effect] = []
    if e.receipt:  # the slip to take away, if the kiosk has a printer
        appointment = {"at": appt.at, "place": appt.place.as_dict()} if appt else None
        fx.append(PrintReceipt(lang=k.lang, receipt=e.receipt, appointment=appointment))
    if s.fault is not None:
        s = replace(s, stage=Stage.SEE_RECEPTION, reception_reason="fault")
    elif "see_officer" in s.flags:
        s = replace(s, stage=Stage.SEE_RECEPTION, reception_reason="escalation")
    elif s.person is not None and s.person.in_person:
        # recorded, and today's visit includes the officer in person: reception calls them
        s = replace(s, stage=Stage.SEE_RECEPTION, reception_reason="in_person")
        k, fx2 = _alert(replace(k, session=s), "in_person")
        return k, fx + fx2
    else:
        s = replace(s, stage=Stage.DONE)
    return replace(k, session=s), fx


# --- faults and tamper -------------------------------------------------------------------------


def _part_failed(k: Kiosk, e: ev.PartFailed) -> Result:
    s = k.session
    if e.part == "printer":  # optional: staff fit paper; nobody's check-in changes
        return _alert(k, "printer")
    if e.part == "kiosk":  # the kiosk restarted mid-check-in: that visit is saved as a fault;
        return _alert(k, "interrupted")  # the person may still be nearby, unsure it counted
    if e.part == "fingerprint":
        if s is not None and s.stage == Stage.FINGERPRINT and k.staff is None:
            k2, fx = _to_fallback(k, s, "sensor_fault")
            return k2, fx
        return k, []
    k, fx = _alert(k, "fault")
    if s is None or s.stage in (Stage.COMMITTING, *_RESULT):
        return k, fx
    if e.part == "camera" and s.photo is not None:
        return k, fx  # the photo is already taken: the check-in does not need the camera
    if not s.identified:
        k2, fx2 = _end_session(k)
        return replace(k2, notice="fault", notice_since=k.now), fx + fx2
    s = replace(s, fault=e.part)
    detail: dict[str, object] = {"part": e.part, "reason": e.reason, "stage": str(s.stage)}
    k2, fx2 = _commit_session(k, s, "fault", s.flags, extra=("fault",), detail=detail)
    return k2, fx + fx2


def _tamper(k: Kiosk) -> Result:
    if k.enclosure_open:
        return k, []
    k = replace(k, enclosure_open=True, tamper=True)
    s = k.session
    person = None
    fx: list[Effect] = []
    if s is not None and s.stage not in (Stage.COMMITTING,) and not s.committed:
        person = s.person.ref if s.person is not None else None
        k, fx = _end_session(k)
    cid = k.next_commit
    detail: dict[str, object] = {"interrupted_checkin": person is not None}
    fx.append(Commit(commit_id=cid, type="tamper", session=None, person=person, detail=detail))
    k = replace(k, next_commit=cid + 1, background=(*k.background, cid), notice=None)
    k, fx2 = _alert(k, "tamper")
    return k, fx + fx2


# --- staff -------------------------------------------------------------------------------------


def _staff_enter(k: Kiosk) -> Result:
    s = k.session
    if k.staff is not None or (s is not None and s.stage == Stage.COMMITTING):
        return k, []
    if k.now < k.staff_locked_until:
        return k, []
    return replace(k, staff=Staff(last_input=k.now)), []


def _staff(k: Kiosk, e: ev.Event) -> Result:
    st = k.staff
    assert st is not None
    cfg = k.config
    if isinstance(e, ev.Tick):
        if st.phase not in _STAFF_BUSY and k.now - st.last_input >= cfg.staff_timeout_s:
            return _staff_leave(k)
        return k, []
    if isinstance(e, ev.StaffExit | ev.Cancel) and st.phase not in _STAFF_BUSY:
        return _staff_leave(k)
    st = replace(st, last_input=k.now)
    k = replace(k, staff=st)
    if st.phase == "pin":
        if isinstance(e, ev.Key) and e.digit.isdigit() and len(st.pin) < cfg.staff_pin_max:
            return replace(k, staff=replace(st, pin=st.pin + e.digit, result=None)), []
        if isinstance(e, ev.Delete):
            return replace(k, staff=replace(st, pin=st.pin[:-1])), []
        if isinstance(e, ev.Submit) and len(st.pin) >= 4:
            return replace(k, staff=replace(st, pin="", phase="checking")), [
                CheckStaffCredential(pin=st.pin)
            ]
        return k, []
    if st.phase == "checking":
        if not isinstance(e, ev.StaffAuthResult):
            return k, []
        if e.ok:
            st = replace(st, phase="menu", staff_id=e.staff_id or "staff", result=None)
            # the audit trail of who opened staff mode, and whether the menu showed them the
            # references of check-ins that could not be saved (a consultation of personal data)
            return _staff_action(
                replace(k, staff=st, staff_failures=0),
                "login",
                staff=st.staff_id,
                unsaved_shown=len(k.unsaved),
            )
        failures = k.staff_failures + 1
        if failures >= cfg.staff_pin_attempts:
            k = replace(k, staff_failures=0, staff_locked_until=k.now + cfg.staff_lock_s)
            k2, fx = _staff_leave(k)
            k3, fx2 = _alert(k2, "staff_pin_locked")
            k4, fx3 = _staff_action(
                k3, "pin_locked", attempts=failures, locked_s=int(cfg.staff_lock_s)
            )
            return k4, fx + fx2 + fx3
        st = replace(st, phase="pin", result="wrong_pin")
        return replace(k, staff=st, staff_failures=failures), []
    if st.phase == "ref":  # typing the case reference of someone not using the kiosk
        if isinstance(e, ev.Key) and e.digit.isdigit() and len(st.ref) < cfg.ref_digits:
            return replace(k, staff=replace(st, ref=st.ref + e.digit, result=None)), []
        if isinstance(e, ev.Delete):
            return replace(k, staff=replace(st, ref=st.ref[:-1], result=None)), []
        if isinstance(e, ev.Submit):
            if len(st.ref) != cfg.ref_digits:
                return replace(k, staff=replace(st, result="ref_incomplete")), []
            if st.purpose == "enrol":
                if k.roster.find(cfg.ref_prefix + st.ref) is None:
                    return replace(k, staff=replace(st, result="not_on_roster")), []
                return replace(k, staff=replace(st, phase="consent", result=None)), []
            return replace(k, staff=replace(st, phase="reason", result=None)), []
        if isinstance(e, ev.Back):
            return replace(k, staff=replace(st, phase="menu", ref="", result=None)), []
        return k, []
    if st.phase in ("consent", "capture", "capture_ready"):
        return _enrol(k, st, e)
    if st.phase == "reason":  # the reference is typed: why staff record it
        if isinstance(e, ev.Back):
            return replace(k, staff=replace(st, phase="ref", result=None)), []
        if isinstance(e, ev.StaffOverride):
            return _override(k, st, replace(e, ref_digits=st.ref))
        return k, []
    if st.phase != "menu":
        return k, []
    if isinstance(e, ev.StaffOtherPerson | ev.StaffEnrol):
        purpose = "enrol" if isinstance(e, ev.StaffEnrol) else "override"
        st = replace(st, phase="ref", ref="", result=None, purpose=purpose, enrolled=())
        return replace(k, staff=st), []
    if isinstance(e, ev.StaffUnlock):
        if k.enclosure_open:
            return replace(k, staff=replace(st, result="close_enclosure_first")), []
        lifted = [
            n for n, on in (("tamper", k.tamper), ("identify", k.limiter.locked(k.now))) if on
        ]
        k = replace(k, tamper=False, limiter=k.limiter.unlock(), notice=None)
        k = replace(k, staff=replace(st, result="unlocked"))
        return _staff_action(k, "unlock", staff=st.staff_id, lifted=lifted)
    if isinstance(e, ev.StaffAcknowledge):
        cleared = list(k.alerts)
        k = replace(k, alerts=(), notice=None, staff=replace(st, result="acknowledged"))
        k, fx = _staff_action(k, "acknowledge_alerts", staff=st.staff_id, alerts=cleared)
        return k, [ClearAlerts(), *fx]
    if isinstance(e, ev.StaffOverride):
        return _override(k, st, e)
    return k, []


def _staff_leave(k: Kiosk) -> Result:
    st = k.staff
    fx: list[Effect] = []
    if st is not None and st.purpose == "enrol" and st.phase in ("capture_ready", "consent"):
        fx.append(DiscardEnrolment())  # abandoned: the fingers taken are forgotten
    k = replace(k, staff=None)
    s = k.session
    if s is not None and s.stage in INTERACTIVE:
        k = replace(k, session=replace(s, last_input=k.now, warned=False))
    return k, fx


#: staff phases that wait for the kiosk (a PIN check, a save, the sensor), not for a person
_STAFF_BUSY = ("checking", "saving", "capture")


def _enrol(k: Kiosk, st: Staff, e: ev.Event) -> Result:
    """Fingerprint enrolment, in staff mode with the person at the kiosk: the notice, then
    two fingers (ENROL_FINGERS, ENROL_KEEP), then one signed ``finger_enrolment`` record."""
    ref = k.config.ref_prefix + st.ref

    def to_menu(result: str, fx: list[Effect]) -> Result:
        return replace(k, staff=replace(st, phase="menu", ref="", enrolled=(), result=result)), fx

    if st.phase == "consent":
        if isinstance(e, ev.Back):
            return to_menu("enrol_cancelled", [])
        if not isinstance(e, ev.EnrolConsent):
            return k, []
        if not e.agree:  # recorded, so the officer knows; the kiosk's fallback still works
            k, fx = _background_commit(
                k, "finger_enrolment", ref, {"consent": False, "staff": st.staff_id}
            )
            st = replace(st, phase="menu", ref="", result="enrol_declined")
            return replace(k, staff=st), fx
        st = replace(st, phase="capture", finger=0, tries=0, enrolled=(), result=None)
        return replace(k, staff=st), [EnrolFinger(finger=ENROL_FINGERS[0])]
    if st.phase == "capture_ready":
        if isinstance(e, ev.Back):
            return to_menu("enrol_cancelled", [DiscardEnrolment()])
        if isinstance(e, ev.Submit):
            st = replace(st, phase="capture", result=None)
            return replace(k, staff=st), [EnrolFinger(finger=ENROL_FINGERS[st.finger])]
        return k, []
    # capture: waiting for the sensor
    if not isinstance(e, ev.FingerEnrolled) or e.finger != ENROL_FINGERS[st.finger]:
        return k, []
    if e.ok:
        st = replace(st, enrolled=(*st.enrolled, e.finger), finger=st.finger + 1, tries=0)
        if len(st.enrolled) >= ENROL_KEEP:
            cid = k.next_commit
            commit = Commit(
                commit_id=cid,
                type="finger_enrolment",
                session=None,
                person=ref,
                detail={"consent": True, "fingers": list(st.enrolled), "staff": st.staff_id},
            )
            st = replace(st, phase="saving", commit_id=cid, result=None)
            return replace(k, staff=st, next_commit=cid + 1), [commit]
        if st.finger >= len(ENROL_FINGERS):
            return to_menu("enrol_failed", [DiscardEnrolment()])
        st = replace(st, phase="capture", result="finger_taken")
        return replace(k, staff=st), [EnrolFinger(finger=ENROL_FINGERS[st.finger])]
    tries = st.tries + 1
    if e.reason == "duplicate_finger" or tries >= ENROL_TRIES:  # try the next finger
        st = replace(st, finger=st.finger + 1, tries=0)
    else:
        st = replace(st, tries=tries)
    if st.finger >= len(ENROL_FINGERS):
        return to_menu("enrol_failed", [DiscardEnrolment()])
    result = e.reason if e.reason in ENROL_RESULTS else "enrol_retry"
    return replace(k, staff=replace(st, phase="capture_ready", result=result)), []


#: why a finger was not taken, as the staff screen says it
ENROL_RESULTS = frozenset({"duplicate_finger", "no_finger", "poor_image"})


def _background_commit(
    k: Kiosk, type_: str, person: str | None, detail: dict[str, object]
) -> Result:
    """A record committed in the background (no screen waits for it)."""
    cid = k.next_commit
    commit = Commit(commit_id=cid, type=type_, session=None, person=person, detail=detail)
    return replace(k, next_commit=cid + 1, background=(*k.background, cid)), [commit]


def _override(k: Kiosk, st: Staff, e: ev.StaffOverride) -> Result:
    cfg = k.config
    if e.reason not in ev.OVERRIDE_REASONS:
        return replace(k, staff=replace(st, result="bad_reason")), []
    s = k.session
    open_session = s is not None and not s.committed and s.stage != Stage.COMMITTING
    live = s if open_session and s is not None and s.identified else None
    if e.ref_digits:
        if len(e.ref_digits) != cfg.ref_digits or not e.ref_digits.isdigit():
            return replace(k, staff=replace(st, result="ref_incomplete")), []
        ref = cfg.ref_prefix + e.ref_digits
        if live is not None and live.person is not None and live.person.ref != ref:
            live = None
    elif live is not None and live.person is not None:
        ref = live.person.ref
    else:
        return replace(k, staff=replace(st, result="ref_needed")), []
    cid = k.next_commit
    detail: dict[str, object] = {"reason": e.reason, "staff": st.staff_id}
    fx: list[Effect] = []
    if live is not None:
        verify = dict(record_verify(live, k), method="staff", staff=st.staff_id)
        live, fx = _keep_photo(k, live)
        flags = tuple(f for f in live.flags if f != "id_review")
        if live.no_photo is not None:
            flags = (*flags, "no_photo")
        commit = Commit(
            commit_id=cid,
            type="staff_override",
            session=live.id,
            person=ref,
            verify=verify,
            photo=live.photo,
            answers=record_answers(live),
            flags=flags,
            detail=record_detail(live, k) | detail,
        )
        k = replace(k, session=replace(live, stage=Stage.COMMITTING, commit_id=cid))
    else:
        if open_session:  # someone else's unfinished session gives way to the override
            k, fx = _end_session(k)
        verify = {"method": "staff", "staff": st.staff_id, "attempts": 0}
        commit = Commit(
            commit_id=cid,
            type="staff_override",
            session=None,
            person=ref,
            verify=verify,
            flags=("no_photo",),
            detail=detail,
        )
    st = replace(st, phase="saving", commit_id=cid, result=None, receipt="")
    return replace(k, staff=st, next_commit=cid + 1), [*fx, commit]


# --- helpers shared with the view ------------------------------------------------------------


def parse_dob(digits: str) -> dt.date | None:
    """DDMMYYYY as typed on the keypad → a date, or None if it is not a real date between
    1900 and 2100."""
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        day = dt.date(int(digits[4:]), int(digits[2:4]), int(digits[:2]))
    except ValueError:
        return None
    return day if 1900 <= day.year <= 2100 else None


def qr_digits(text: str, prefix: str, length: int) -> str | None:
    """The case-reference digits in a QR code's text (``CR-123456`` or ``123456``), or
    None."""
    t = text.strip().upper()
    if t.startswith(prefix.upper()):
        t = t[len(prefix) :]
    return t if len(t) == length and t.isdigit() and t.isascii() else None
