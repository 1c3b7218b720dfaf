"""Events the check-in flow reacts to: taps from the touchscreen, results of the effects the
composition root carried out, hardware signals and the passage of time.

Every event carries ``now``: monotonic seconds (``time.monotonic()`` on the kiosk; any
increasing number in tests). The flow never reads a clock, so time-outs are driven by
:class:`Tick` events (the composition root sends one a second) and by ``now`` on every event.

May import: the standard library and daemon.roster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.roster import Roster


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    now: float


# --- time and configuration --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Tick(Event):
    """Time passed (send about once a second)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RosterLoaded(Event):
    """A new validated roster (daemon.roster.parse_roster). A session under way keeps the
    person it identified; new identifications use the new roster."""

    roster: Roster = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class DiskSpace(Event):
    """The data disk's level (daemon/diskspace.py): ``ok``, ``low`` (tell staff), ``no_photo``
    (save check-ins without the photo) or ``full`` (no record can be saved: send a person who
    starts to reception). Send it at start and whenever the level changes."""

    level: str


# --- the person's taps ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Start(Event):
    """Idle: begin a check-in in ``lang`` (``en`` or ``cy``)."""

    lang: str = "en"


@dataclass(frozen=True, kw_only=True, slots=True)
class SetLanguage(Event):
    """Any screen: switch language now (``en`` or ``cy``)."""

    lang: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SetLargeText(Event):
    on: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Key(Event):
    """Keypad digit ``0``-``9`` (identify, staff PIN)."""

    digit: str = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Delete(Event):
    """Keypad: remove the last digit."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Submit(Event):
    """Keypad: this entry is complete."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Back(Event):
    """Go back one step (identify: to the case reference; questions: previous question)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class QrScanned(Event):
    """The camera read a QR code on the appointment letter (identify screen only): its text is
    a case reference; the date of birth is still asked for."""

    text: str = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Help(Event):
    """ "I need to speak to someone" (a button on every screen)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class MoreTime(Event):
    """The person asked for more time (after the time-out warning, or at any time)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Cancel(Event):
    """The person chose to stop: back to idle with nothing recorded (ignored while saving)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Continue(Event):
    """Go on: fingerprint try again, fallback, done, see_reception."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CannotUseFinger(Event):
    """Fingerprint screen: "I can't use my fingerprint" (worn, injured or missing finger)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class TakePhotoNow(Event):
    """Photo screen: the person has read the notice and is ready."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer(Event):
    """Questions: ``value`` is an option id (``yes``/``no`` or a choice id)."""

    question: str
    value: str


@dataclass(frozen=True, kw_only=True, slots=True)
class MessageRead(Event):
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Finish(Event):
    """Confirm screen: save my check-in."""


# --- results of effects ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class FingerResult(Event):
    """A 1:1 match finished: ``matched`` is ``score >= threshold``."""

    matched: bool
    score: int
    threshold: int


@dataclass(frozen=True, kw_only=True, slots=True)
class FingerUnreadable(Event):
    """No usable image: ``reason`` is ``no_finger`` (nothing placed before the sensor's
    time-out; not counted as an attempt) or ``poor_image`` (counted)."""

    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class PhotoTaken(Event):
    """The photo was captured and sealed: ``photo`` is the SHA-256 hex of the sealed blob the
    composition root keeps until the record commits; ``quality_ok`` False adds
    ``photo_quality``."""

    photo: str
    quality_ok: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class PartFailed(Event):
    """A part stopped working: ``part`` is ``fingerprint``, ``camera``, ``display``, ``gpio``
    or another short name; ``reason`` is the error's reason code (no personal data)."""

    part: str
    reason: str = "fault"


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordCommitted(Event):
    commit_id: int
    #: the attendance reference shown to the person (daemon.records.receipt_code)
    receipt: str = ""
    #: the wall clock when the record was saved (Unix seconds) and whether it was synchronised:
    #: the next appointment shown is the first after the one being attended
    wall: float | None = None
    clock_synced: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class CommitFailed(Event):
    """The outbox refused the record: ``reason`` e.g. ``disk_full``, ``storage``."""

    commit_id: int
    reason: str


# --- enclosure and staff -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class EnclosureOpened(Event):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class EnclosureClosed(Event):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffRequested(Event):
    """The staff button (or key switch): ask for the staff PIN."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffAuthResult(Event):
    """Answer to :class:`daemon.flow.effects.CheckStaffCredential`: ``staff_id`` is the
    pseudonymous staff identifier from config when ``ok``."""

    ok: bool
    staff_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffUnlock(Event):
    """Staff: lift the tamper lock (only once the enclosure is closed) and any identify
    lock."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffAcknowledge(Event):
    """Staff: the alerts have been seen and dealt with."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffOverride(Event):
    """Staff: record attendance for a person with a reason code (``OVERRIDE_REASONS``).
    ``ref_digits`` are the digits of the case reference; empty means "the person whose
    check-in is under way"."""

    reason: str
    ref_digits: str = field(default="", repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffOtherPerson(Event):
    """Staff: record attendance for someone who is not checking in at the kiosk (sent to
    reception by a fault, not on the roster, unable to use the screen): type their case
    reference, then choose a reason."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffEnrol(Event):
    """Staff: enrol a person's fingerprints (they are on the roster and here): type their case
    reference, show them the notice, take two fingers."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EnrolConsent(Event):
    """The person's answer to the fingerprint notice: ``agree`` or not."""

    agree: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class FingerEnrolled(Event):
    """The sensor's answer to EnrolFinger: ``ok``, or ``reason`` (``duplicate_finger``,
    ``enrol_failed``, ``poor_image``, ``no_finger``, a sensor fault)."""

    finger: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class StaffExit(Event):
    pass


OVERRIDE_REASONS = frozenset(
    {"identity_checked_by_staff", "cannot_use_kiosk", "kiosk_fault", "assisted_check_in"}
)
