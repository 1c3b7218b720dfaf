"""The roster: who may check in at this kiosk, parsed and validated from the API's JSON.

The roster (docs/api.md, "Roster") lists the people due at this office by case reference, with
an HMAC of their date of birth (never the date itself), their fingerprint templates sealed to
the device's roster key (or ``biometric: "declined"`` for someone who chose not to give
fingerprints), their appointments, officer messages and per-person questions. It
carries no names. This module turns that JSON into frozen dataclasses, refusing anything
malformed with an error that names the field, and answers one question: "do this case
reference and this date of birth belong to someone on the roster?" in constant time with
respect to which part was wrong and whether the reference exists.

One parser for everyone who judges a roster: the kiosk loading its file, the sync process
before it replaces the file (daemon/sync.py), and the reference API before it publishes one
(hil/refapi/app.py). ``drop_bad_people=True`` is the kiosk's reading: a fault in one person's
entry leaves that person out (listed in :attr:`Roster.dropped`, by index and field) instead of
refusing everyone; the API uses the same reading and refuses the upload when anything was
left out, so a roster it publishes is one the kiosk takes whole (docs/checkin-flow.md).

It also holds the standard kiosk questions (one place) and :class:`IdentifyLimiter`, the
kiosk-wide brake on guessing case references.

Pure: no I/O, no clock reads, no threads; times are passed in (monotonic seconds).

May import: the standard library and daemon.errors.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from daemon.errors import ApiProtocolError

#: The most per-person questions an officer may set for one check-in (HMPPS uses 3).
MAX_PERSON_QUESTIONS = 5
#: The most officer messages shown in one check-in.
MAX_MESSAGES = 5
MAX_TEXT = 500
_REF = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,31}$")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: how a person confirms who they are at the kiosk (the roster's ``biometric``; absent means
#: ``fingerprint``): ``fingerprint`` matches their templates when they have some (and falls back
#: to date of birth + photo when they have none or it fails); ``declined`` is a person who chose
#: not to give fingerprints: date of birth + photo is their route, by choice, not a fallback
BIOMETRIC_FINGERPRINT = "fingerprint"
BIOMETRIC_DECLINED = "declined"
BIOMETRIC_CHOICES = (BIOMETRIC_FINGERPRINT, BIOMETRIC_DECLINED)
_FINGERS = frozenset(
    f"{side}_{finger}"
    for side in ("left", "right")
    for finger in ("thumb", "index", "middle", "ring", "little")
)


class RosterInvalid(ApiProtocolError):
    """The roster from the API does not match docs/api.md. The kiosk keeps using the roster it
    already has; tell the service desk (the message names the field, never a person)."""

    reason = "roster_invalid"

    def __init__(self, message: str, *, field: str = "roster", what: str = "") -> None:
        super().__init__(message)
        #: where the fault is (``people[3].messages[0].cy``), and what is wrong there; never a
        #: value from the roster
        self.field = field
        self.what = what


#: ``verify.method`` of a visit by the route a person who declined fingerprints chose (date of
#: birth and photo): not a fallback, and the central API treats it as such (docs/privacy.md)
BY_CHOICE_METHOD = "dob_photo_by_choice"


@dataclass(frozen=True, slots=True)
class Dropped:
    """One person's entry left out of the roster (``parse_roster(drop_bad_people=True)``):
    its index in ``people``, the first bad field and what is wrong with it. Never a value from
    the entry, so it may be logged, reported in a heartbeat and shown to an engineer."""

    index: int
    field: str
    what: str

    def __str__(self) -> str:
        return f"{self.field}: {self.what}"


@dataclass(frozen=True, slots=True)
class Text:
    """A string in both languages; neither may be empty (English and Welsh are equal)."""

    en: str
    cy: str

    def get(self, lang: str) -> str:
        return self.cy if lang == "cy" else self.en

    def as_dict(self) -> dict[str, str]:
        return {"en": self.en, "cy": self.cy}


@dataclass(frozen=True, slots=True)
class Option:
    id: str
    text: Text


YES_NO: tuple[Option, ...] = (
    Option("yes", Text("Yes", "Ydw")),
    Option("no", Text("No", "Nac ydw")),
)


@dataclass(frozen=True, slots=True)
class Question:
    """One question. ``kind`` is ``yes_no`` or ``choice`` (``options`` then lists the answers);
    an answer equal to ``flag_if`` (one of the option ids, or None) raises ``see_officer``."""

    id: str
    text: Text
    kind: str = "yes_no"
    flag_if: str | None = None
    options: tuple[Option, ...] = YES_NO
    standard: bool = False


#: The standard kiosk questions, asked of everyone, in this order, before any per-person ones.
#: ``speak_to_someone`` is asked last among them; the "I need to speak to someone" button is
#: also on every screen.
STANDARD_QUESTIONS: tuple[Question, ...] = (
    Question(
        "address_changed",
        Text(
            "Have you moved home since you last reported?",
            "Ydych chi wedi symud tŷ ers i chi adrodd ddiwethaf?",
        ),
        standard=True,
    ),
    Question(
        "phone_changed",
        Text("Has your phone number changed?", "Ydy eich rhif ffôn wedi newid?"),
        standard=True,
    ),
    Question(
        "work_changed",
        Text(
            "Have you started, stopped or changed work or training?",
            "Ydych chi wedi dechrau, gorffen neu newid gwaith neu hyfforddiant?",
        ),
        standard=True,
    ),
    Question(
        "police_contact",
        Text(
            "Have you had any contact with the police?",
            "Ydych chi wedi cael unrhyw gysylltiad â'r heddlu?",
        ),
        flag_if="yes",
        standard=True,
    ),
    Question(
        "wellbeing",
        Text("How are you coping at the moment?", "Sut ydych chi'n ymdopi ar hyn o bryd?"),
        kind="choice",
        flag_if="struggling",
        options=(
            Option("good", Text("Well", "Yn dda")),
            Option("ok", Text("OK", "Iawn")),
            Option("struggling", Text("I am struggling", "Rwy'n cael trafferth")),
        ),
        standard=True,
    ),
    Question(
        "speak_to_someone",
        Text("Do you want to speak to someone today?", "Ydych chi eisiau siarad â rhywun heddiw?"),
        flag_if="yes",
        standard=True,
    ),
)
STANDARD_IDS = frozenset(q.id for q in STANDARD_QUESTIONS)


#: an appointment up to this long after a check-in is the one the check-in is for (the
#: reference API's missed-check-in rule counts a check-in up to 12 hours early)
ATTENDING_S = 12 * 3600.0
MAX_APPOINTMENTS = 10


@dataclass(frozen=True, slots=True)
class Appointment:
    at: str  # RFC 3339, as the API sent it
    place: Text

    @property
    def unix(self) -> float:
        return _unix(self.at)


def _unix(rfc3339: str) -> float:
    """Unix seconds of an RFC 3339 date-time; ValueError without a time zone (a local time
    means a different moment on a kiosk set to another zone)."""
    when = dt.datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("no time zone")
    return when.timestamp()


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    text: Text


@dataclass(frozen=True, slots=True)
class SealedTemplate:
    """A fingerprint template sealed (HPKE) to the device's roster key; opened only by the
    composition root, in memory, for one 1:1 match (daemon.sealing.RosterKey)."""

    finger: str
    sealed: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Person:
    """Someone due at this kiosk. ``repr`` hides the reference and the DOB HMAC so a logged
    object never carries them."""

    ref: str = field(repr=False)
    dob_hmac: bytes = field(repr=False)
    templates: tuple[SealedTemplate, ...] = ()
    #: the person's known appointments, earliest first (the one due may be among them)
    appointments: tuple[Appointment, ...] = ()
    messages: tuple[Message, ...] = ()
    questions: tuple[Question, ...] = ()
    #: the officer's policy says this visit must include seeing them in person (the kiosk is
    #: never the only channel): the check-in is recorded, then the person waits at reception
    in_person: bool = False
    #: :data:`BIOMETRIC_CHOICES`: ``declined`` skips the fingerprint step altogether
    biometric: str = BIOMETRIC_FINGERPRINT

    @property
    def declined_biometric(self) -> bool:
        """They chose not to give fingerprints: never asked for one, never offered enrolment."""
        return self.biometric == BIOMETRIC_DECLINED

    def all_questions(self) -> tuple[Question, ...]:
        """The standard questions, then the officer's questions for this person."""
        return STANDARD_QUESTIONS + self.questions

    def next_appointment(self, present: float | None) -> Appointment | None:
        """The appointment to tell the person about as they leave: the first one after the
        appointment they are attending now (anything up to :data:`ATTENDING_S` from
        ``present``, Unix seconds, is that one or already past). ``present`` None (the time
        is not known at all): the first one the roster gives."""
        if present is None:
            return self.appointments[0] if self.appointments else None
        return next((a for a in self.appointments if a.unix > present + ATTENDING_S), None)


@dataclass(frozen=True, slots=True)
class Roster:
    office: str
    generated_at: str
    dob_salt: bytes = field(repr=False)
    people: tuple[Person, ...] = field(default=(), repr=False)
    #: entries left out because they were not valid (``drop_bad_people=True`` only), by index
    dropped: tuple[Dropped, ...] = ()
    #: the references of those entries, where the reference itself could be read: the kiosk
    #: cannot check such a person in, and must not tell them their details are wrong
    unusable: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def generated_unix(self) -> float | None:
        """When the API made this roster, if it said so in RFC 3339: the present is no
        earlier than that, whatever a kiosk clock that never synchronised says."""
        try:
            return _unix(self.generated_at)
        except ValueError:
            return None

    @classmethod
    def empty(cls) -> Roster:
        """The roster before the first sync: nobody can be identified (staff override still
        works)."""
        return cls(office="", generated_at="", dob_salt=b"\0" * 16)

    def lookup(self, ref: str, dob: dt.date) -> Person | None:
        """The person whose case reference is ``ref`` and whose date of birth is ``dob``, or
        None. Every person is compared, with constant-time comparisons, whatever the input,
        so the time taken does not say whether the reference exists or which part was wrong.
        Cost: one HMAC plus two comparisons per person (about 1 µs each)."""
        mac = dob_hmac(self.dob_salt, dob)
        want_ref = ref.encode("utf-8")
        found: Person | None = None
        for person in self.people:
            ref_ok = hmac.compare_digest(person.ref.encode("utf-8"), want_ref)
            dob_ok = hmac.compare_digest(person.dob_hmac, mac)
            if ref_ok & dob_ok:
                found = person
        return found

    def unusable_entry(self, ref: str) -> bool:
        """Whether ``ref``'s entry was left out as faulty (:attr:`dropped`): the fault is the
        roster's, not the person's. Asked only after :meth:`lookup` found nobody; it says no
        more than that a reference with a faulty entry exists."""
        return ref in self.unusable

    def find(self, ref: str) -> Person | None:
        """The person with case reference ``ref`` (staff mode only: staff have already
        checked who is in front of them; identification by the person uses :meth:`lookup`)."""
        return next((p for p in self.people if p.ref == ref), None)

    def __len__(self) -> int:
        return len(self.people)


def dob_hmac(salt: bytes, dob: dt.date) -> bytes:
    """HMAC-SHA256(salt, "YYYY-MM-DD") as docs/api.md defines it (raw 32 bytes)."""
    return hmac.new(salt, dob.isoformat().encode("ascii"), hashlib.sha256).digest()


# --- parsing -----------------------------------------------------------------------------------


def _fail(path: str, what: str) -> RosterInvalid:
    return RosterInvalid(
        f"roster field {path}: {what}. The kiosk keeps its previous roster; report this to the "
        "service desk so the roster can be re-issued.",
        field=path,
        what=what,
    )


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, "must be an object")
    return value


def _list(value: Any, path: str, *, limit: int | None = None) -> Sequence[Any]:
    if not isinstance(value, list):
        raise _fail(path, "must be a list")
    if limit is not None and len(value) > limit:
        raise _fail(path, f"has {len(value)} entries; at most {limit} are allowed")
    return value


def _str(obj: Mapping[str, Any], key: str, path: str, *, pattern: re.Pattern[str] | None = None,
         limit: int = MAX_TEXT) -> str:  # fmt: skip
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{path}.{key}", "must be a non-empty string")
    if len(value) > limit:
        raise _fail(f"{path}.{key}", f"is longer than {limit} characters")
    if pattern is not None and not pattern.match(value):
        raise _fail(f"{path}.{key}", "has characters that are not allowed")
    return value


def _b64(obj: Mapping[str, Any], key: str, path: str) -> bytes:
    text = _str(obj, key, path, limit=1 << 20)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(f"{path}.{key}", "is not base64") from exc


def _text(obj: Mapping[str, Any], prefix: str, path: str) -> Text:
    return Text(_str(obj, f"{prefix}en", path), _str(obj, f"{prefix}cy", path))


def _question(raw: Any, path: str) -> Question:
    q = _obj(raw, path)
    qid = _str(q, "id", path, pattern=_ID)
    if qid in STANDARD_IDS:
        raise _fail(f"{path}.id", "repeats a standard question id")
    kind = q.get("kind", "yes_no")
    if kind == "yes_no":
        options = YES_NO
    elif kind == "choice":
        opts = _list(q.get("options"), f"{path}.options", limit=6)
        if len(opts) < 2:
            raise _fail(f"{path}.options", "needs at least 2 options")
        options = tuple(
            Option(
                _str(_obj(o, f"{path}.options[{i}]"), "id", f"{path}.options[{i}]", pattern=_ID),
                _text(_obj(o, f"{path}.options[{i}]"), "", f"{path}.options[{i}]"),
            )
            for i, o in enumerate(opts)
        )
    else:
        raise _fail(f"{path}.kind", "must be yes_no or choice")
    flag_if = q.get("flag_if")
    if flag_if is not None and flag_if not in {o.id for o in options}:
        raise _fail(f"{path}.flag_if", "must be one of the question's answers")
    return Question(qid, _text(q, "", path), kind, flag_if, options)


def _person(raw: Any, path: str, seen: set[str]) -> Person:
    p = _obj(raw, path)
    ref = _str(p, "ref", path, pattern=_REF, limit=32)
    if ref in seen:
        raise _fail(f"{path}.ref", "repeats a reference already on the roster")
    seen.add(ref)
    mac = _b64(p, "dob_hmac", path)
    if len(mac) != 32:
        raise _fail(f"{path}.dob_hmac", "must be a 32-byte HMAC-SHA256")
    templates = []
    for i, t in enumerate(_list(p.get("templates", []), f"{path}.templates", limit=10)):
        tp = f"{path}.templates[{i}]"
        finger = _str(_obj(t, tp), "finger", tp)
        if finger not in _FINGERS:
            raise _fail(f"{tp}.finger", "must name a finger such as right_index")
        templates.append(SealedTemplate(finger, _b64(t, "sealed", tp)))
    listed = [
        (f"{path}.appointments[{i}]", a)
        for i, a in enumerate(
            _list(p.get("appointments", []), f"{path}.appointments", limit=MAX_APPOINTMENTS)
        )
    ]
    if p.get("next_appointment") is not None:  # the older single-appointment form
        listed.append((f"{path}.next_appointment", p["next_appointment"]))
    appts: dict[float, Appointment] = {}
    for ap, raw in listed:
        at = _str(_obj(raw, ap), "at", ap)
        try:
            when = _unix(at)
        except ValueError as exc:
            raise _fail(f"{ap}.at", "must be an RFC 3339 date-time with a zone (Z)") from exc
        appts.setdefault(when, Appointment(at, _text(raw, "place_", ap)))
    messages = tuple(
        Message(
            _str(_obj(m, f"{path}.messages[{i}]"), "id", f"{path}.messages[{i}]", pattern=_ID),
            _text(m, "", f"{path}.messages[{i}]"),
        )
        for i, m in enumerate(_list(p.get("messages", []), f"{path}.messages", limit=MAX_MESSAGES))
    )
    questions = tuple(
        _question(q, f"{path}.questions[{i}]")
        for i, q in enumerate(
            _list(p.get("questions", []), f"{path}.questions", limit=MAX_PERSON_QUESTIONS)
        )
    )
    if len({q.id for q in questions}) != len(questions):
        raise _fail(f"{path}.questions", "has two questions with the same id")
    in_person = p.get("in_person", False)
    if not isinstance(in_person, bool):
        raise _fail(f"{path}.in_person", "must be true or false")
    biometric = p.get("biometric")
    if biometric is None:  # absent (older rosters) or null: as before
        biometric = BIOMETRIC_FINGERPRINT
    if biometric not in BIOMETRIC_CHOICES:
        raise _fail(f"{path}.biometric", "must be fingerprint or declined")
    if biometric == BIOMETRIC_DECLINED:
        templates = []  # never used for someone who said no, so not kept either
    appointments = tuple(appts[t] for t in sorted(appts))
    return Person(
        ref, mac, tuple(templates), appointments, messages, questions, in_person, biometric
    )


def parse_roster(data: Any, *, drop_bad_people: bool = False) -> Roster:
    """Validate the decoded roster JSON (docs/api.md) and return a :class:`Roster`.

    Raises :class:`RosterInvalid` naming the first bad field by path (``people[3].dob_hmac``);
    messages never contain a case reference or any other value from the roster.

    ``drop_bad_people``: a fault inside one person's entry (or a reference listed twice: every
    entry with it) leaves that person out and is listed in :attr:`Roster.dropped` instead of
    refusing the whole roster; a fault outside the entries (``office``, ``dob_salt``, ``people``
    not a list) still raises. Someone left out cannot identify at the kiosk: the references
    of the entries left out are kept (:attr:`Roster.unusable`), so the flow sends them to
    reception at once as the roster's fault, never as wrong details."""
    root = _obj(data, "roster")
    office = _str(root, "office", "roster", limit=64)
    generated = _str(root, "generated_at", "roster", limit=64)
    salt = _b64(root, "dob_salt", "roster")
    if len(salt) < 16:
        raise _fail("roster.dob_salt", "must be at least 16 bytes")
    entries = _list(root.get("people"), "roster.people")
    if not drop_bad_people:
        seen: set[str] = set()
        people = tuple(_person(p, f"people[{i}]", seen) for i, p in enumerate(entries))
        return Roster(office, generated, salt, people)
    kept: dict[int, Person] = {}
    first: dict[str, int] = {}  # reference -> index of its first entry
    dropped: list[Dropped] = []
    unusable: set[str] = set()
    for i, raw in enumerate(entries):
        try:
            person = _person(raw, f"people[{i}]", set())
        except RosterInvalid as exc:
            dropped.append(Dropped(i, exc.field, exc.what))
            ref = raw.get("ref") if isinstance(raw, dict) else None
            if isinstance(ref, str) and 0 < len(ref) <= 32:
                unusable.add(ref)
            continue
        j = first.setdefault(person.ref, i)
        if j == i:
            kept[i] = person
            continue
        unusable.add(person.ref)
        # which of two entries for one reference is right is anyone's guess: neither is used
        if kept.pop(j, None) is not None:
            dropped.append(Dropped(j, f"people[{j}].ref", "is repeated further down the roster"))
        dropped.append(Dropped(i, f"people[{i}].ref", "repeats a reference already on the roster"))
    return Roster(
        office,
        generated,
        salt,
        tuple(kept[i] for i in sorted(kept)),
        tuple(sorted(dropped, key=lambda d: d.index)),
        frozenset(unusable),
    )


# --- identify attempt limiter --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentifyLimiter:
    """A kiosk-wide brake on guessing case references (pure; times in monotonic seconds).

    Identification locks for ``lock_s`` after ``per_session`` failures in one session, or after
    ``per_window`` failures across all sessions within ``window_s``. While locked, every
    identify attempt is refused without being checked, so the answer never depends on whether
    a reference exists. Only failures count; a success resets the session count.
    """

    per_session: int = 5
    per_window: int = 10
    window_s: float = 60.0
    lock_s: float = 300.0
    failures: tuple[float, ...] = ()  # recent failure times, oldest first
    locked_until: float = 0.0

    def locked(self, now: float) -> bool:
        return now < self.locked_until

    def failed(self, now: float, session_failures: int) -> IdentifyLimiter:
        """Count one failure at ``now``; ``session_failures`` includes it."""
        recent = (*(t for t in self.failures if now - t < self.window_s), now)
        locked_until = self.locked_until
        if session_failures >= self.per_session or len(recent) >= self.per_window:
            locked_until = max(locked_until, now + self.lock_s)
            recent = ()
        return IdentifyLimiter(
            self.per_session, self.per_window, self.window_s, self.lock_s, recent, locked_until
        )

    def unlock(self) -> IdentifyLimiter:
        """Staff lifted the lock."""
        return IdentifyLimiter(self.per_session, self.per_window, self.window_s, self.lock_s)
