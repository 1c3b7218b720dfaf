"""The check-in flow's state: immutable values, replaced (never mutated) by each step.

:class:`Kiosk` is the whole state: settings, roster, language, locks, alerts, and the
:class:`Session` of the person checking in (None when idle). :class:`Screen` lists every
screen the UI draws; :func:`daemon.flow.view.view` says which one applies.

May import: the standard library and daemon.roster.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from daemon.roster import Appointment, IdentifyLimiter, Person, Roster

LANGS = ("en", "cy")


class Screen(enum.StrEnum):
    """Every screen the UI draws (docs/checkin-flow.md documents each view's fields)."""

    IDLE = "idle"
    IDENTIFY = "identify"
    FINGERPRINT = "fingerprint"
    PHOTO = "photo"
    QUESTIONS = "questions"
    MESSAGES = "messages"
    CONFIRM = "confirm"
    DONE = "done"
    FALLBACK = "fallback"
    SEE_RECEPTION = "see_reception"
    STAFF = "staff"


class Stage(enum.StrEnum):
    """Where a session is. ``COMMITTING`` waits for RecordCommitted/CommitFailed."""

    IDENTIFY = "identify"
    FINGERPRINT = "fingerprint"
    FALLBACK = "fallback"
    PHOTO = "photo"
    QUESTIONS = "questions"
    MESSAGES = "messages"
    CONFIRM = "confirm"
    COMMITTING = "committing"
    DONE = "done"
    SEE_RECEPTION = "see_reception"


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Settings (seconds are monotonic seconds).

    ``session_timeout_s``: inactivity before a session is abandoned; the warning shows
    ``warn_s`` before that and MoreTime restarts the full period. ``result_s``: how long done
    and see_reception stay before returning to idle (nothing is lost then, so no warning).
    ``qr_scan``: the camera looks for the QR code on an appointment letter while the case
    reference is asked for (the screen then says so)."""

    ref_prefix: str = "CR-"
    ref_digits: int = 6
    max_finger_attempts: int = 3
    session_timeout_s: float = 120.0
    warn_s: float = 30.0
    result_s: float = 20.0
    staff_timeout_s: float = 180.0
    staff_pin_max: int = 12
    staff_pin_attempts: int = 3
    staff_lock_s: float = 300.0
    qr_scan: bool = True


@dataclass(frozen=True, slots=True)
class Session:
    """One person's visit, from Start to idle. Holds the person only after identification."""

    id: int
    stage: Stage
    last_input: float
    warned: bool = False
    started: float = 0.0  # when the person touched Start (monotonic seconds)
    # identify
    entry_field: str = "ref"  # "ref" | "dob"
    ref_digits: str = field(default="", repr=False)
    dob_digits: str = field(default="", repr=False)
    identify_error: str | None = None
    identify_failures: int = 0
    person: Person | None = field(default=None, repr=False)
    # fingerprint
    finger_phase: str = "place"  # place | scanning | retry | no_finger
    finger_attempts: int = 0
    score: int | None = None
    threshold: int | None = None
    fallback: str | None = None  # why: fingerprint_failed | cannot_use_finger | sensor_fault
    verified: bool = False
    #: the person declined fingerprints (roster ``biometric: "declined"``): date of birth and
    #: photo is their own route, chosen, so never a fallback and never a fingerprint step
    by_choice: bool = False
    # photo
    photo_phase: str = "notice"  # notice | capturing
    photo: str | None = None
    #: why the record keeps no photo although none failed (``disk_low``), for detail.no_photo
    no_photo: str | None = None
    # questions and messages
    q_index: int = 0
    answers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    m_index: int = 0
    flags: tuple[str, ...] = ()
    help_requested: bool = False
    #: the questions whose answer asked for the officer, in order (kept if changed back: the
    #: alert was raised and is not withdrawn)
    flagged_by: tuple[str, ...] = ()
    # outcome
    fault: str | None = None  # the part that failed
    commit_id: int | None = None
    committed: bool = False
    receipt: str = ""  # the saved record's attendance reference, for the person to keep
    #: the officer's messages the person has seen and touched "I have read this" on, in order
    messages_read: tuple[str, ...] = ()
    #: the appointment to tell them about as they leave, chosen when the record is saved
    appointment: Appointment | None = field(default=None, repr=False)
    reception_reason: str | None = None

    @property
    def identified(self) -> bool:
        return self.person is not None

    def answer(self, qid: str) -> str | None:
        for k, v in self.answers:
            if k == qid:
                return v
        return None


#: the fingers offered for enrolment, in order; two are kept (a cut or a plaster on one
#: still leaves the other). A finger that fails three times or repeats one already enrolled
#: gives way to the next.
ENROL_FINGERS = ("right_index", "left_index", "right_middle", "left_middle")
ENROL_KEEP = 2
ENROL_TRIES = 3


@dataclass(frozen=True, slots=True)
class Staff:
    """Staff mode, layered over whatever the kiosk was doing (which is paused)."""

    #: pin | checking | menu | ref | reason | consent | capture | saving
    phase: str = "pin"
    pin: str = field(default="", repr=False)
    #: what the typed reference is for: "override" (record attendance) or "enrol" (fingers)
    purpose: str = "override"
    #: enrolment: fingers enrolled so far, the finger being tried (index into ENROL_FINGERS),
    #: failed tries on it
    enrolled: tuple[str, ...] = ()
    finger: int = 0
    tries: int = 0
    #: the attendance reference of the last override saved, to give to the person
    receipt: str = ""
    #: case reference digits typed by staff for someone not using the kiosk (phases ref, reason)
    ref: str = field(default="", repr=False)
    staff_id: str | None = None
    last_input: float = 0.0
    result: str | None = None  # outcome of the last action, for the staff screen
    commit_id: int | None = None


@dataclass(frozen=True, slots=True)
class Kiosk:
    """The whole state of the flow. Build the first one with :func:`initial`."""

    config: FlowConfig
    roster: Roster = field(repr=False)
    limiter: IdentifyLimiter
    now: float = 0.0
    lang: str = "en"
    large_text: bool = False
    session: Session | None = None
    notice: str | None = None  # see_reception with no session: help | fault | identify_locked
    notice_since: float = 0.0
    tamper: bool = False
    enclosure_open: bool = False
    alerts: tuple[str, ...] = ()
    #: the data disk's level (events.DiskSpace): ok | low | no_photo | full
    disk: str = "ok"
    unsaved: tuple[str, ...] = field(default=(), repr=False)  # refs whose record failed
    staff: Staff | None = None
    staff_failures: int = 0
    staff_locked_until: float = 0.0
    next_commit: int = 1
    next_session: int = 1
    background: tuple[int, ...] = ()  # kiosk records (tamper) awaiting their result


def initial(
    config: FlowConfig | None = None,
    roster: Roster | None = None,
    limiter: IdentifyLimiter | None = None,
    *,
    now: float = 0.0,
) -> Kiosk:
    """The idle kiosk (the roster is empty until RosterLoaded)."""
    return Kiosk(
        config=config or FlowConfig(),
        roster=roster or Roster.empty(),
        limiter=limiter or IdentifyLimiter(),
        now=now,
    )
