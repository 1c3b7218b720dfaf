"""Effects: what the check-in flow asks the composition root (daemon/app.py) to do.

The flow never does I/O; it returns these. The composition root carries each out and feeds the
outcome back as an event (named on each effect). Effects are carried out in the order given.

May import: the standard library and daemon.roster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.roster import SealedTemplate


@dataclass(frozen=True, kw_only=True, slots=True)
class Effect:
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyFinger(Effect):
    """Open the sealed templates (RosterKey), run one 1:1 match on the sensor, drop the
    plaintext. Answer with FingerResult, FingerUnreadable or PartFailed(part="fingerprint")."""

    templates: tuple[SealedTemplate, ...] = field(repr=False)
    attempt: int


@dataclass(frozen=True, kw_only=True, slots=True)
class TakePhoto(Effect):
    """Capture a still, seal it to the API key, keep the sealed blob in memory. Answer with
    PhotoTaken(photo=sha256 hex) or PartFailed(part="camera")."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DiscardPhoto(Effect):
    """Forget the sealed blob ``photo`` (the session ended without using it). No answer."""

    photo: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Commit(Effect):
    """Append one record to the outbox (Outbox.append(type, fields, blob=<sealed photo>)).

    ``fields()`` is what the outbox needs besides what it adds itself (id, seq, prev, at,
    clock, device, app). ``photo`` names the sealed blob to attach (the composition root holds
    it since PhotoTaken). ``session`` is the check-in session this record closes, or None for a
    kiosk record (tamper). Answer with RecordCommitted(commit_id) or CommitFailed(commit_id,
    reason)."""

    commit_id: int
    type: str
    session: int | None
    person: str | None = field(repr=False)
    verify: Mapping[str, Any] | None = None
    photo: str | None = None
    answers: Mapping[str, Any] = field(default_factory=dict, repr=False)
    flags: tuple[str, ...] = ()
    detail: Mapping[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        """The ``fields`` argument for Outbox.append (the blob is passed separately)."""
        out: dict[str, Any] = {"flags": list(self.flags)}
        if self.person is not None:
            out["person"] = self.person
        if self.verify is not None:
            out["verify"] = dict(self.verify)
        if self.answers:
            out["answers"] = dict(self.answers)
        if self.detail is not None:
            out["detail"] = dict(self.detail)
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusLight(Effect):
    """Set the status light: ``idle``, ``busy``, ``ok``, ``alert``, ``tamper``, ``fault``."""

    state: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertStaff(Effect):
    """Raise a staff-visible alert now (reception notice, heartbeat). ``reason`` is a code
    (``see_officer``, ``speak_to_someone``, ``tamper``, ``fault``, ``commit_failed``,
    ``identify_locked``, ``help``, ``staff_pin_locked``, ``in_person``, ``printer``,
    ``disk_low``, ``disk_no_photo``, ``disk_full``); never personal data. The staff screen
    lists each with its text (``staff.alert.<code>``)."""

    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class PrintReceipt(Effect):
    """Print the person's slip, when the kiosk has a printer: the attendance reference and the
    next appointment in ``lang``. Fire and forget: a printer that fails becomes
    PartFailed("printer") (a staff alert), never a change to the person's screen."""

    lang: str
    receipt: str = field(repr=False)
    appointment: dict[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class EnrolFinger(Effect):
    """Take one finger for enrolment (several presses, merged on the sensor), checked against
    the fingers already taken in this enrolment. The template stays with the composition
    root; answer with FingerEnrolled. The Commit of type ``finger_enrolment`` that follows
    carries the templates, sealed for the central API."""

    finger: str


@dataclass(frozen=True, kw_only=True, slots=True)
class DiscardEnrolment(Effect):
    """Forget the templates taken in an enrolment that was abandoned."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ClearAlerts(Effect):
    """Staff acknowledged the alerts."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckStaffCredential(Effect):
    """Check the staff PIN against the hash in config (slowly, constant time). Answer with
    StaffAuthResult. The PIN is never logged."""

    pin: str = field(repr=False)
