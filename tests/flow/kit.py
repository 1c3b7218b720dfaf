"""Test helpers for the flow: a synthetic roster and a driver that feeds events with an
advancing fake monotonic time. Synthetic data only (CR-9xxxxx, made-up dates of birth)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from daemon.flow import FlowConfig, Kiosk, initial, step, view
from daemon.flow import events as ev
from daemon.flow.effects import Commit, Effect
from daemon.roster import Roster, dob_hmac, parse_roster

SALT = bytes(range(16))
FAKE_SEALED = base64.b64encode(b"sealed-template-bytes").decode()


def person_json(
    ref: str,
    dob: str,
    *,
    templates: bool = True,
    appointment: bool = True,
    messages: list[dict[str, str]] | None = None,
    questions: list[dict[str, Any]] | None = None,
    biometric: str | None = None,
) -> dict[str, Any]:
    extra = {"biometric": biometric} if biometric is not None else {}
    return extra | {
        "ref": ref,
        "dob_hmac": base64.b64encode(dob_hmac(SALT, dt.date.fromisoformat(dob))).decode(),
        "templates": [{"finger": "right_index", "sealed": FAKE_SEALED}] if templates else [],
        "next_appointment": {
            "at": "2026-12-07T10:30:00Z",
            "place_en": "Room 2, ground floor",
            "place_cy": "Ystafell 2, llawr gwaelod",
        }
        if appointment
        else None,
        "messages": messages or [],
        "questions": questions or [],
    }


def roster_json() -> dict[str, Any]:
    return {
        "office": "test-office",
        "generated_at": "2026-11-23T08:00:00Z",
        "dob_salt": base64.b64encode(SALT).decode(),
        "people": [
            person_json(
                "CR-900101",
                "1990-04-12",
                messages=[
                    {"id": "m1", "en": "Bring your payslips.", "cy": "Dewch â'ch slipiau cyflog."},
                    {
                        "id": "m2",
                        "en": "Your officer is Room 3.",
                        "cy": "Mae eich swyddog yn Ystafell 3.",
                    },
                ],
                questions=[
                    {
                        "id": "course_attended",
                        "en": "Did you go to your course this week?",
                        "cy": "Aethoch chi i'ch cwrs yr wythnos hon?",
                        "kind": "yes_no",
                        "flag_if": "no",
                    }
                ],
            ),
            person_json("CR-900102", "1985-11-30", templates=False),
            person_json("CR-900103", "1979-02-02", appointment=False),
            # chose not to give fingerprints; the templates a careless case system still sends
            # are ignored
            person_json("CR-900104", "1972-06-15", biometric="declined"),
        ],
    }


def roster() -> Roster:
    return parse_roster(json.loads(json.dumps(roster_json())))


# Keypad forms of the synthetic people (case-reference digits, DDMMYYYY).
ALICE = ("900101", "12041990")  # templates, 2 messages, 1 own question
NO_TEMPLATE = ("900102", "30111985")
PLAIN = ("900103", "02021979")  # no messages, no own question, no appointment
DECLINED = ("900104", "15061972")  # declined fingerprints: date of birth + photo by choice
STANDARD_ANSWERS = {
    "address_changed": "no",
    "phone_changed": "no",
    "work_changed": "no",
    "police_contact": "no",
    "wellbeing": "good",
    "speak_to_someone": "no",
}


class Run:
    """Feeds events to the flow one at a time, advancing fake time by ``dt`` seconds per
    event, and keeps every effect emitted."""

    def __init__(
        self, config: FlowConfig | None = None, *, with_roster: bool = True, step_s: float = 1.0
    ) -> None:
        self.k: Kiosk = initial(config, roster() if with_roster else None)
        self.t = 1000.0
        self.step_s = step_s
        self.effects: list[Effect] = []

    def send(
        self, event_type: type[ev.Event], *, dt_s: float | None = None, **fields: Any
    ) -> list[Effect]:
        self.t += self.step_s if dt_s is None else dt_s
        self.k, fx = step(self.k, event_type(now=self.t, **fields))
        self.effects.extend(fx)
        return fx

    def feed(self, event: ev.Event) -> list[Effect]:
        """Step an event built elsewhere (its ``now`` becomes the run's time)."""
        self.t = max(self.t, event.now)
        self.k, fx = step(self.k, event)
        self.effects.extend(fx)
        return fx

    def tick(self, seconds: float) -> list[Effect]:
        return self.send(ev.Tick, dt_s=seconds)

    @property
    def view(self) -> dict[str, Any]:
        return view(self.k)

    @property
    def screen(self) -> str:
        return str(self.view["screen"])

    def commits(self) -> list[Commit]:
        return [e for e in self.effects if isinstance(e, Commit)]

    def last_commit(self) -> Commit:
        commits = self.commits()
        assert commits, "no commit was emitted"
        return commits[-1]

    def type_digits(self, digits: str) -> None:
        for d in digits:
            self.send(ev.Key, digit=d)

    def identify(self, who: tuple[str, str], *, lang: str = "en") -> list[Effect]:
        self.send(ev.Start, lang=lang)
        self.type_digits(who[0])
        self.send(ev.Submit)
        self.type_digits(who[1])
        return self.send(ev.Submit)

    def photo(self, sha: str = "ab" * 32) -> None:
        self.send(ev.TakePhotoNow)
        self.send(ev.PhotoTaken, photo=sha)

    def answer_all(self, overrides: dict[str, str] | None = None) -> None:
        answers = {**STANDARD_ANSWERS, "course_attended": "yes", **(overrides or {})}
        while self.screen == "questions":
            qid = self.view["question"]["id"]
            self.send(ev.Answer, question=qid, value=answers[qid])

    def read_messages(self) -> None:
        while self.screen == "messages":
            self.send(ev.MessageRead, message=self.view["message"]["id"])

    def to_confirm(self, who: tuple[str, str] = ALICE, **answers: str) -> None:
        """Identify, match on the first try, photo, answer, read: stops on confirm."""
        self.identify(who)
        self.send(ev.FingerResult, matched=True, score=150, threshold=60)
        self.photo()
        self.answer_all(answers)
        self.read_messages()
        assert self.screen == "confirm"

    def commit_ok(self) -> None:
        self.send(ev.RecordCommitted, commit_id=self.last_commit().commit_id)
