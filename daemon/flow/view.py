"""What the touchscreen shows: ``view(kiosk) -> dict`` (JSON-serialisable).

Every view has ``screen`` (a :class:`~daemon.flow.state.Screen` value), ``lang``,
``large_text`` and ``help_available``; a ``timeout`` object while the inactivity warning is
showing; and the fields that screen needs (docs/checkin-flow.md lists them). Nothing about
any other person ever appears; the idle view carries nothing personal at all; the case
reference and date of birth are shown only while being typed.

Pure. May import: the standard library, daemon.roster and daemon.flow.
"""

from __future__ import annotations

import math
from typing import Any

from daemon.flow.events import OVERRIDE_REASONS
from daemon.flow.machine import deadline, questions, record_flags
from daemon.flow.state import ENROL_FINGERS, ENROL_KEEP, Kiosk, Screen, Session, Stage
from daemon.roster import Appointment

_STAGE_SCREEN = {
    Stage.IDENTIFY: Screen.IDENTIFY,
    Stage.FINGERPRINT: Screen.FINGERPRINT,
    Stage.FALLBACK: Screen.FALLBACK,
    Stage.PHOTO: Screen.PHOTO,
    Stage.QUESTIONS: Screen.QUESTIONS,
    Stage.MESSAGES: Screen.MESSAGES,
    Stage.CONFIRM: Screen.CONFIRM,
    Stage.COMMITTING: Screen.CONFIRM,
    Stage.DONE: Screen.DONE,
    Stage.SEE_RECEPTION: Screen.SEE_RECEPTION,
}


def screen(k: Kiosk) -> Screen:
    """Which screen the state shows (staff mode, then the tamper lock, win)."""
    if k.staff is not None:
        return Screen.STAFF
    if k.tamper or k.notice is not None:
        return Screen.SEE_RECEPTION
    if k.session is None:
        return Screen.IDLE
    return _STAGE_SCREEN[k.session.stage]


def view(k: Kiosk) -> dict[str, Any]:
    """The view of ``k`` for the UI (a fresh dict)."""
    scr = screen(k)
    out: dict[str, Any] = {
        "screen": str(scr),
        "lang": k.lang,
        "large_text": k.large_text,
        "help_available": scr not in (Screen.STAFF, Screen.SEE_RECEPTION),
    }
    if scr == Screen.STAFF:
        out.update(_staff(k))
        return out
    if k.tamper:
        out.update(reason="tamper", checked_in=False, can_continue=False)
        return out
    s = k.session
    if s is None:
        if k.notice is not None:
            out.update(reason=k.notice, checked_in=False, can_continue=True)
        return out
    end = deadline(k)
    if s.warned and end is not None:
        out["timeout"] = {"warning": True, "remaining_s": max(0, math.ceil(end - k.now))}
    if s.help_requested:
        out["help_requested"] = True
    out.update(_SESSION_VIEWS[s.stage](k, s))
    return out


def _identify(k: Kiosk, s: Session) -> dict[str, Any]:
    typing_ref = s.entry_field == "ref"
    cfg = k.config
    return {
        "field": s.entry_field,
        "ref": {
            "prefix": cfg.ref_prefix,
            "length": cfg.ref_digits,
            "entered": len(s.ref_digits),
            "digits": s.ref_digits if typing_ref else None,
        },
        "dob": {
            "format": "DDMMYYYY",
            "length": 8,
            "entered": len(s.dob_digits),
            "digits": s.dob_digits if not typing_ref else None,
        },
        "error": s.identify_error,
        "qr": cfg.qr_scan,
    }


def _fingerprint(k: Kiosk, s: Session) -> dict[str, Any]:
    return {
        "phase": s.finger_phase,
        "attempt": min(s.finger_attempts + 1, k.config.max_finger_attempts),
        "max_attempts": k.config.max_finger_attempts,
        "can_skip": True,
    }


def _fallback(k: Kiosk, s: Session) -> dict[str, Any]:
    # below the no-photo disk level no photo will be taken: the screen must not promise one
    return {"reason": s.fallback, "photo": k.disk not in ("no_photo", "full")}


def _photo(k: Kiosk, s: Session) -> dict[str, Any]:
    # by_choice: say, neutrally, that date of birth and this photo are their way to check in
    return {"phase": s.photo_phase, "fallback": s.fallback is not None, "by_choice": s.by_choice}


def _questions(k: Kiosk, s: Session) -> dict[str, Any]:
    qs = questions(s)
    q = qs[s.q_index]
    return {
        "index": s.q_index + 1,
        "count": len(qs),
        "question": {
            "id": q.id,
            "standard": q.standard,
            "kind": q.kind,
            "text": q.text.as_dict(),
            "options": [{"id": o.id, "text": o.text.as_dict()} for o in q.options],
            "answer": s.answer(q.id),
        },
        "can_go_back": s.q_index > 0,
    }


def _messages(k: Kiosk, s: Session) -> dict[str, Any]:
    assert s.person is not None
    m = s.person.messages[s.m_index]
    return {
        "index": s.m_index + 1,
        "count": len(s.person.messages),
        "message": {"id": m.id, "text": m.text.as_dict()},
    }


def _confirm(k: Kiosk, s: Session) -> dict[str, Any]:
    answered = dict(s.answers)
    return {
        "saving": s.stage == Stage.COMMITTING,
        "answers": [
            {
                "id": q.id,
                "text": q.text.as_dict(),
                "answer": next(
                    (o.text.as_dict() for o in q.options if o.id == answered.get(q.id)), None
                ),
            }
            for q in questions(s)
        ],
        "photo_taken": s.photo is not None,
        "fallback": s.fallback is not None,
    }


def _appointment(s: Session) -> dict[str, Any] | None:
    appt: Appointment | None = s.appointment
    if appt is None:
        return None
    return {"at": appt.at, "place": appt.place.as_dict()}


def _done(k: Kiosk, s: Session) -> dict[str, Any]:
    return {
        "appointment": _appointment(s),
        "id_review": "id_review" in record_flags(s),
        "receipt": s.receipt or None,
    }


def _see_reception(k: Kiosk, s: Session) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reason": s.reception_reason,
        "checked_in": s.committed,
        "can_continue": True,
    }
    if s.committed:
        out["appointment"] = _appointment(s)
        out["receipt"] = s.receipt or None
    if dict(s.answers).get("wellbeing") == "struggling":
        out["signpost"] = "crisis"  # where to get help now, before and after staff see them
    return out


_SESSION_VIEWS = {
    Stage.IDENTIFY: _identify,
    Stage.FINGERPRINT: _fingerprint,
    Stage.FALLBACK: _fallback,
    Stage.PHOTO: _photo,
    Stage.QUESTIONS: _questions,
    Stage.MESSAGES: _messages,
    Stage.CONFIRM: _confirm,
    Stage.COMMITTING: _confirm,
    Stage.DONE: _done,
    Stage.SEE_RECEPTION: _see_reception,
}


def _staff(k: Kiosk) -> dict[str, Any]:
    st = k.staff
    assert st is not None
    out: dict[str, Any] = {"phase": st.phase, "result": st.result}
    if st.receipt and st.result == "override_recorded":
        out["receipt"] = st.receipt
    if st.phase in ("pin", "checking"):
        out["entered"] = len(st.pin)
        return out  # nothing else until the PIN is accepted
    s = k.session
    out.update(
        alerts=list(k.alerts),
        tamper=k.tamper,
        enclosure_open=k.enclosure_open,
        identify_locked=k.limiter.locked(k.now),
        unsaved=list(k.unsaved),
        session={
            "stage": str(s.stage),
            "identified": s.identified,
            "ref": s.person.ref if s.person is not None else None,
        }
        if s is not None
        else None,
        override_reasons=sorted(OVERRIDE_REASONS),
    )
    if st.phase in ("consent", "capture", "capture_ready"):
        enrol: dict[str, Any] = {
            "finger": ENROL_FINGERS[min(st.finger, len(ENROL_FINGERS) - 1)],
            "taken": len(st.enrolled),
            "keep": ENROL_KEEP,
        }
        if st.phase == "consent":
            # they chose not to give fingerprints: the kiosk never asks them, so staff see so
            # beside the notice (go on only if the person asked to enrol)
            person = k.roster.find(k.config.ref_prefix + st.ref)
            enrol["declined_biometric"] = person is not None and person.declined_biometric
        out.update(purpose=st.purpose, enrol=enrol)
    if st.phase in ("ref", "reason"):  # the keypad's entry, shown as on the identify screen
        cfg = k.config
        out.update(
            purpose=st.purpose,
            field="ref",
            ref={
                "prefix": cfg.ref_prefix,
                "length": cfg.ref_digits,
                "entered": len(st.ref),
                "digits": st.ref,
            },
        )
    return out
