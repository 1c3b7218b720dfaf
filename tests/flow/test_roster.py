"""Roster parsing (errors name the field, never a person), identify lookup, the limiter."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from daemon.errors import KioskError
from daemon.roster import (
    MAX_PERSON_QUESTIONS,
    STANDARD_QUESTIONS,
    IdentifyLimiter,
    RosterInvalid,
    parse_roster,
)
from tests.flow.kit import roster, roster_json


def test_parses_the_documented_shape() -> None:
    r = roster()
    assert (r.office, len(r)) == ("test-office", 4)
    alice = r.people[0]
    assert alice.templates[0].finger == "right_index"
    assert [a.at for a in alice.appointments] == ["2026-12-07T10:30:00Z"]
    assert alice.appointments[0].place.get("cy") == "Ystafell 2, llawr gwaelod"
    assert [m.id for m in alice.messages] == ["m1", "m2"]
    assert [q.id for q in alice.all_questions()][-1] == "course_attended"
    assert alice.all_questions()[: len(STANDARD_QUESTIONS)] == STANDARD_QUESTIONS
    assert "900101" not in repr(alice) and "900101" not in repr(r)


def test_the_demo_roster_parses() -> None:
    """The roster the lead's demo publishes (same JSON builder as the API) is accepted."""
    from daemon.demo_support import PEOPLE, dob_hmac

    salt = b"s" * 16
    data = {
        "office": "demo",
        "generated_at": "2026-11-23T08:00:00Z",
        "dob_salt": base64.b64encode(salt).decode(),
        "people": [
            {
                "ref": p.ref,
                "dob_hmac": dob_hmac(salt, p.dob),
                "templates": [],
                "next_appointment": None,
                "messages": list(p.messages),
                "questions": list(p.questions),
            }
            for p in PEOPLE
        ],
    }
    r = parse_roster(data)
    p = PEOPLE[0]
    assert r.lookup(p.ref, dt.date.fromisoformat(p.dob)) is not None


Mutator = Callable[[dict[str, Any]], None]


def _set(path: list[Any], value: Any) -> Mutator:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return mutate


_DELETE = object()


BAD_ROSTERS = pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (_set(["people", 1, "dob_hmac"], _DELETE), "people[1].dob_hmac"),
        (_set(["people", 1, "dob_hmac"], "not base64!"), "people[1].dob_hmac"),
        (_set(["people", 1, "dob_hmac"], "AAAA"), "people[1].dob_hmac"),
        (_set(["people", 2, "ref"], "CR-900101"), "people[2].ref"),
        (_set(["people", 0, "ref"], "cr 1; drop"), "people[0].ref"),
        (_set(["people", 0, "questions", 0, "flag_if"], "maybe"), "people[0].questions[0].flag_if"),
        (_set(["people", 0, "questions", 0, "cy"], ""), "people[0].questions[0].cy"),
        (_set(["people", 0, "questions", 0, "kind"], "free_text"), "people[0].questions[0].kind"),
        (_set(["people", 0, "questions", 0, "id"], "police_contact"), "people[0].questions[0].id"),
        (
            _set(
                ["people", 0, "questions"],
                [{"id": f"q{i}", "en": "?", "cy": "?"} for i in range(MAX_PERSON_QUESTIONS + 1)],
            ),
            "people[0].questions",
        ),
        (_set(["people", 0, "messages", 1, "en"], _DELETE), "people[0].messages[1].en"),
        (_set(["people", 0, "templates", 0, "finger"], "tail"), "people[0].templates[0].finger"),
        (_set(["people", 0, "next_appointment", "at"], "soon"), "people[0].next_appointment.at"),
        (  # a time without a zone is a different moment on a kiosk set to another zone
            _set(["people", 0, "next_appointment", "at"], "2026-12-07T10:30:00"),
            "people[0].next_appointment.at",
        ),
        (_set(["people", 0, "appointments"], [{"at": "x"}]), "people[0].appointments[0].at"),
        (
            _set(["people", 0, "appointments"], [{"at": "2026-12-07T10:30:00Z"}] * 11),
            "people[0].appointments",
        ),
        (_set(["people", 0, "in_person"], "yes"), "people[0].in_person"),
        (_set(["people", 0, "biometric"], "refused"), "people[0].biometric"),
        (_set(["people", 0, "biometric"], True), "people[0].biometric"),
        (_set(["dob_salt"], "AAAA"), "roster.dob_salt"),
        (_set(["people"], {}), "roster.people"),
        (_set(["office"], _DELETE), "roster.office"),
    ],
)


@BAD_ROSTERS
def test_invalid_rosters_are_refused_naming_the_field(mutate: Mutator, field: str) -> None:
    doc = copy.deepcopy(roster_json())
    mutate(doc)
    with pytest.raises(RosterInvalid) as info:
        parse_roster(json.loads(json.dumps(doc)))
    message = str(info.value)
    assert field in message
    assert "CR-9001" not in message  # never a person's reference
    assert isinstance(info.value, KioskError) and info.value.reason == "roster_invalid"
    assert info.value.field == field


@BAD_ROSTERS
def test_the_kiosk_leaves_out_only_the_person_whose_entry_is_bad(
    mutate: Mutator, field: str
) -> None:
    """The kiosk's reading (drop_bad_people): a fault inside one person's entry costs that
    person, not everyone; a reference listed twice costs both entries (which one is right is
    anyone's guess); a fault outside the entries still refuses the roster."""
    doc = copy.deepcopy(roster_json())
    mutate(doc)
    data = json.loads(json.dumps(doc))
    if not field.startswith("people["):
        with pytest.raises(RosterInvalid, match=re.escape(field)):
            parse_roster(data, drop_bad_people=True)
        return
    r = parse_roster(data, drop_bad_people=True)
    index = int(field[len("people[") : field.index("]")])
    out = {index} | ({0} if field == "people[2].ref" else set())  # CR-900101 twice
    assert [d.index for d in r.dropped] == sorted(out)
    assert field in [d.field for d in r.dropped]
    kept = [p["ref"] for i, p in enumerate(roster_json()["people"]) if i not in out]
    assert [p.ref for p in r.people] == kept
    assert all("CR-9001" not in str(d) for d in r.dropped)  # never a person's reference


def test_a_good_roster_reads_the_same_either_way() -> None:
    strict = parse_roster(roster_json())
    lenient = parse_roster(roster_json(), drop_bad_people=True)
    assert lenient == strict and lenient.dropped == ()


def test_a_person_who_declined_fingerprints_is_marked_and_older_rosters_stay_valid() -> None:
    """``biometric: "declined"``: the person chose not to give fingerprints. Absent (every
    roster before the field existed), null or ``fingerprint``: as before."""
    doc = roster_json()
    doc["people"][0]["biometric"] = "declined"  # templates sent by mistake are not kept
    doc["people"][1]["biometric"] = "fingerprint"
    doc["people"][2]["biometric"] = None
    people = parse_roster(json.loads(json.dumps(doc))).people
    assert people[0].declined_biometric and people[0].biometric == "declined"
    assert people[0].templates == ()
    assert [p.declined_biometric for p in people[1:3]] == [False, False]
    older = copy.deepcopy(roster_json())
    older["people"] = [p for p in older["people"] if "biometric" not in p]  # before the field
    assert not any(p.declined_biometric for p in parse_roster(older).people)
    assert parse_roster(older).people[0].templates  # templates still used for everyone else


def test_choice_questions_are_accepted() -> None:
    doc = roster_json()
    doc["people"][0]["questions"] = [
        {
            "id": "housing",
            "en": "Where are you staying?",
            "cy": "Ble rydych chi'n aros?",
            "kind": "choice",
            "options": [
                {"id": "same", "en": "Same place", "cy": "Yr un lle"},
                {"id": "none", "en": "Nowhere", "cy": "Unman"},
            ],
            "flag_if": "none",
        }
    ]
    q = parse_roster(doc).people[0].questions[0]
    assert [o.id for o in q.options] == ["same", "none"] and q.flag_if == "none"


def test_lookup_needs_both_reference_and_date_of_birth() -> None:
    r = roster()
    dob = dt.date(1990, 4, 12)
    person = r.lookup("CR-900101", dob)
    assert person is not None and person.ref == "CR-900101"
    assert r.lookup("CR-900101", dt.date(1990, 4, 13)) is None
    assert r.lookup("CR-900102", dob) is None  # right date, someone else's reference
    assert r.lookup("CR-999999", dob) is None
    assert r.lookup("", dob) is None


def test_limiter_session_window_and_expiry() -> None:
    lim = IdentifyLimiter(per_session=5, per_window=10, window_s=60, lock_s=300)
    for n in range(1, 5):
        lim = lim.failed(100.0 + n, n)
        assert not lim.locked(100.0 + n)
    lim = lim.failed(106.0, 5)
    assert lim.locked(106.0) and lim.locked(405.9) and not lim.locked(406.0)
    lim = IdentifyLimiter(per_session=5, per_window=3, window_s=60, lock_s=300)
    lim = lim.failed(0.0, 1).failed(30.0, 1)
    lim = lim.failed(61.0, 1)  # the first failure has left the window
    assert not lim.locked(61.0)
    lim = lim.failed(62.0, 1)
    assert lim.locked(62.0)
    assert not lim.unlock().locked(62.0)


def test_appointments_are_read_in_time_order_with_the_older_single_form_merged() -> None:
    doc = roster_json()
    place = {"place_en": "Room 1", "place_cy": "Ystafell 1"}
    doc["people"][0]["appointments"] = [
        {"at": "2027-01-04T09:00:00Z", **place},
        {"at": "2026-11-23T10:30:00Z", **place},
        {"at": "2026-12-07T10:30:00Z", **place},  # the same as next_appointment: kept once
    ]
    alice = parse_roster(doc).people[0]
    assert [a.at for a in alice.appointments] == [
        "2026-11-23T10:30:00Z",
        "2026-12-07T10:30:00Z",
        "2027-01-04T09:00:00Z",
    ]


@pytest.mark.parametrize(
    ("present", "shown"),
    [
        ("2026-11-23T10:20:00Z", "2026-12-07T10:30:00Z"),  # early for today's: the one after
        ("2026-11-23T11:45:00Z", "2026-12-07T10:30:00Z"),  # late for today's: the same
        ("2026-11-22T22:45:00Z", "2026-12-07T10:30:00Z"),  # late the evening before: counts
        ("2026-11-22T21:00:00+00:00", "2026-11-23T10:30:00Z"),  # 13.5 hours early: not yet
        ("2026-11-21T10:00:00Z", "2026-11-23T10:30:00Z"),  # two days early: today's is next
        ("2026-12-07T10:00:00Z", None),  # the last one they know of: nothing to show
    ],
)
def test_the_appointment_to_tell_them_about_is_never_past_nor_the_one_attended(
    present: str, shown: str | None
) -> None:
    doc = roster_json()
    doc["people"][0]["appointments"] = [
        {"at": "2026-11-23T10:30:00Z", "place_en": "Room 1", "place_cy": "Ystafell 1"}
    ]
    alice = parse_roster(doc).people[0]
    when = dt.datetime.fromisoformat(present.replace("Z", "+00:00")).timestamp()
    got = alice.next_appointment(when)
    assert (got.at if got else None) == shown
    assert alice.next_appointment(None) == alice.appointments[0]  # no idea of the time


def test_someone_whose_entry_was_left_out_is_sent_to_reception_not_told_they_are_wrong() -> None:
    """A fault in one person's roster entry leaves them out (the rest of the roster stands);
    that is the roster's fault, so at the kiosk they are not told "your details do not match"
    five times and locked out: they go to reception at once, told it is not their fault, and
    staff are alerted. Someone merely mistyping still gets "no match"."""
    from dataclasses import replace

    from tests.flow.kit import ALICE, Run, person_json, roster_json

    doc = roster_json()
    broken = person_json("CR-900199", "1991-01-01")
    broken["messages"] = [{"id": "m1", "en": "Bring ID.", "cy": ""}]  # no Welsh: invalid
    doc["people"].append(broken)
    roster = parse_roster(doc, drop_bad_people=True)
    assert roster.find("CR-900199") is None and [d.index for d in roster.dropped] == [4]
    assert "CR-900199" not in repr(roster)

    run = Run()
    run.k = replace(run.k, roster=roster)
    run.identify(("900199", "01011991"))
    assert run.screen == "see_reception" and run.view["reason"] == "fault"
    assert "roster_entry" in run.k.alerts
    assert run.k.session is not None and run.k.session.identify_failures == 0

    other = Run()
    other.k = replace(other.k, roster=roster)
    other.identify(("900198", ALICE[1]))  # a typing mistake: the usual answer
    assert other.view["error"] == "no_match"
