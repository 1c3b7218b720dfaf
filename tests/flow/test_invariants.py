"""Random event sequences against the flow, with a simulated composition root that answers
effects late, out of order, with failures, and invariants checked after every step."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from daemon.flow import Kiosk, initial, step, view
from daemon.flow import events as ev
from daemon.flow.effects import CheckStaffCredential, Commit, Effect, TakePhoto, VerifyFinger
from tests.flow.kit import ALICE, DECLINED, NO_TEMPLATE, PLAIN, roster

CHECKIN_TYPES = {"checkin", "checkin_fallback", "see_officer", "fault"}
IDLE_VIEW_KEYS = {"screen", "lang", "large_text", "help_available"}

TAPS: list[tuple[type[ev.Event], dict[str, Any]]] = [
    (ev.Start, {"lang": "en"}),
    (ev.Start, {"lang": "cy"}),
    (ev.SetLanguage, {"lang": "cy"}),
    (ev.SetLanguage, {"lang": "en"}),
    (ev.SetLargeText, {"on": True}),
    (ev.Key, {"digit": "9"}),
    (ev.Key, {"digit": "0"}),
    (ev.Delete, {}),
    (ev.Submit, {}),
    (ev.Back, {}),
    (ev.QrScanned, {"text": "CR-900101"}),
    (ev.Help, {}),
    (ev.MoreTime, {}),
    (ev.Cancel, {}),
    (ev.Continue, {}),
    (ev.CannotUseFinger, {}),
    (ev.TakePhotoNow, {}),
    (ev.Answer, {"question": "police_contact", "value": "yes"}),
    (ev.Finish, {}),
    (ev.EnclosureOpened, {}),
    (ev.EnclosureClosed, {}),
    (ev.StaffRequested, {}),
    (ev.StaffUnlock, {}),
    (ev.StaffAcknowledge, {}),
    (ev.StaffOverride, {"reason": "kiosk_fault", "ref_digits": "900103"}),
    (ev.StaffOverride, {"reason": "assisted_check_in"}),
    (ev.StaffOtherPerson, {}),
    (ev.StaffEnrol, {}),
    (ev.EnrolConsent, {"agree": True}),
    (ev.EnrolConsent, {"agree": False}),
    (ev.FingerEnrolled, {"finger": "right_index", "ok": True}),
    (ev.FingerEnrolled, {"finger": "left_index", "ok": False, "reason": "duplicate_finger"}),
    (ev.StaffExit, {}),
    (ev.PartFailed, {"part": "camera", "reason": "device_timeout"}),
    (ev.PartFailed, {"part": "fingerprint", "reason": "sensor_not_answering"}),
    (ev.PartFailed, {"part": "display", "reason": "fault"}),
    (ev.PhotoTaken, {"photo": "ee" * 32}),  # a stray result nobody asked for
    (ev.RecordCommitted, {"commit_id": 1}),  # likewise
    (ev.DiskSpace, {"level": "ok"}),
    (ev.DiskSpace, {"level": "low"}),
    (ev.DiskSpace, {"level": "no_photo"}),
    (ev.DiskSpace, {"level": "full"}),
]


class Harness:
    """Feeds events, plays the composition root, checks the invariants after each step."""

    def __init__(self) -> None:
        self.k: Kiosk = initial(None, roster())
        self.now = 0.0
        self.pending: list[tuple[str, Any]] = []
        # commits per session that have not failed: after a failed save (a full disk) the
        # person is at reception and staff may record the attendance again by override
        self.commits_by_session: dict[int, int] = {}
        self.session_of_commit: dict[int, int] = {}
        self.delivered_ok: set[int] = set()
        self.tamper_locked = False

    def feed(self, event: ev.Event) -> None:
        before = self.k
        self.k, fx = step(before, event)
        if isinstance(event, ev.RecordCommitted):
            self.delivered_ok.add(event.commit_id)
        if isinstance(event, ev.CommitFailed) and event.commit_id in self.session_of_commit:
            self.commits_by_session[self.session_of_commit.pop(event.commit_id)] -= 1
        if isinstance(event, ev.EnclosureOpened):
            self.tamper_locked = True
        if self.tamper_locked and not self.k.tamper:
            # only a staff unlock, from the staff menu, with the enclosure closed, may do this
            assert isinstance(event, ev.StaffUnlock)
            assert before.staff is not None and before.staff.phase == "menu"
            assert not before.enclosure_open
            self.tamper_locked = False
        if isinstance(event, ev.Start) and before.disk == "full" and before.session is None:
            # nothing could be saved: nobody starts a check-in that cannot end in a record
            assert self.k.session is None
        for effect in fx:
            self.effect(before, effect)
        self.check()

    def effect(self, before: Kiosk, effect: Effect) -> None:
        if isinstance(effect, Commit):
            if effect.session is not None:
                n = self.commits_by_session.get(effect.session, 0) + 1
                assert n == 1, "more than one commit in a session"
                self.commits_by_session[effect.session] = n
                self.session_of_commit[effect.commit_id] = effect.session
            if effect.type in CHECKIN_TYPES:
                s = before.session
                assert s is not None and s.identified, "commit before identification"
                assert effect.person is not None
                if s.person is not None and s.person.declined_biometric:
                    # their own route: recorded as chosen, never as a fallback; an officer's
                    # next-day identity check only when no photo backs the date of birth
                    assert effect.type != "checkin_fallback", effect
                    assert effect.verify is not None
                    assert effect.verify["method"] == "dob_photo_by_choice", effect
                    assert ("id_review" in effect.flags) == (effect.photo is None), effect
            if effect.session is not None and self.k.disk in ("no_photo", "full"):
                # too little room for a photo: none is kept; a check-in says it has none, and
                # one whose photo was dropped or skipped for the disk says why
                assert effect.photo is None, effect
                if effect.type in CHECKIN_TYPES:
                    assert "no_photo" in effect.flags, effect
                s = before.session
                if s is not None and (s.photo is not None or s.no_photo is not None):
                    assert "no_photo" in effect.flags, effect
                    assert effect.detail is not None and effect.detail["no_photo"] == "disk_low"
            self.pending.append(("commit", effect.commit_id))
        elif isinstance(effect, VerifyFinger):
            s = self.k.session
            assert s is not None and s.person is not None
            assert not s.person.declined_biometric, "a finger asked of someone who said no"
            self.pending.append(("finger", None))
        elif isinstance(effect, TakePhoto):
            self.pending.append(("photo", None))
        elif isinstance(effect, CheckStaffCredential):
            self.pending.append(("staff", None))

    def check(self) -> None:
        v = view(self.k)
        json.dumps(v)
        assert v["lang"] in ("en", "cy")
        if v["screen"] == "idle":
            assert set(v) == IDLE_VIEW_KEYS, v
        s = self.k.session
        if s is not None and s.person is not None and s.person.declined_biometric:
            assert v["screen"] not in ("fingerprint", "fallback"), v
        if v["screen"] == "done" or "appointment" in v:
            assert s is not None and s.commit_id in self.delivered_ok
        if self.tamper_locked:
            assert v["screen"] in ("see_reception", "staff")
            if v["screen"] == "see_reception":
                assert v["reason"] == "tamper"


def _result(kind: str, arg: Any, choice: int, now: float) -> ev.Event:
    if kind == "commit":
        if choice == 0:
            return ev.CommitFailed(now=now, commit_id=arg, reason="disk_full")
        return ev.RecordCommitted(now=now, commit_id=arg)
    if kind == "finger":
        return [
            ev.FingerResult(now=now, matched=True, score=99, threshold=60),
            ev.FingerResult(now=now, matched=False, score=5, threshold=60),
            ev.FingerUnreadable(now=now, reason="no_finger"),
            ev.FingerUnreadable(now=now, reason="poor_image"),
        ][choice % 4]
    if kind == "photo":
        if choice == 0:
            return ev.PartFailed(now=now, part="camera", reason="device_timeout")
        return ev.PhotoTaken(now=now, photo="ab" * 32, quality_ok=choice != 1)
    return ev.StaffAuthResult(now=now, ok=choice != 0, staff_id="staff-1" if choice else None)


def _identify(h: Harness, who: tuple[str, str]) -> None:
    for digit in who[0]:
        h.now += 0.5
        h.feed(ev.Key(now=h.now, digit=digit))
    h.feed(ev.Submit(now=h.now))
    for digit in who[1]:
        h.now += 0.5
        h.feed(ev.Key(now=h.now, digit=digit))
    h.feed(ev.Submit(now=h.now))


ACTIONS = st.one_of(
    st.tuples(st.just("tap"), st.integers(0, len(TAPS) - 1)),
    st.tuples(st.just("result"), st.integers(0, 50)),
    st.tuples(st.just("tick"), st.sampled_from([1, 10, 30, 95, 130, 400])),
    st.tuples(st.just("identify"), st.integers(0, 3)),
    st.tuples(st.just("answer"), st.integers(0, 3)),
    st.tuples(st.just("read"), st.just(0)),
    *[st.tuples(st.just("advance"), st.integers(0, 3))] * 40,  # mostly go forward
)


def _advance(h: Harness, arg: int) -> None:
    """Do the sensible thing for the screen showing, so random runs get deep into the flow."""
    v = view(h.k)
    scr = v["screen"]
    if scr == "idle":
        h.feed(ev.Start(now=h.now, lang="cy" if arg else "en"))
    elif scr == "identify":
        _identify(h, [ALICE, PLAIN, NO_TEMPLATE, DECLINED][arg])
    elif scr in ("fallback", "done", "see_reception") or (
        scr == "fingerprint" and v["phase"] != "scanning"
    ):
        h.feed(ev.Continue(now=h.now))
    elif scr == "photo" and v["phase"] == "notice":
        h.feed(ev.TakePhotoNow(now=h.now))
    elif scr == "questions":
        q = v["question"]
        options = [o["id"] for o in q["options"]]
        calm = "good" if "good" in options else ("yes" if q["id"] == "course_attended" else "no")
        value = calm if arg < 3 else options[arg % len(options)]
        h.feed(ev.Answer(now=h.now, question=q["id"], value=value))
    elif scr == "messages":
        h.feed(ev.MessageRead(now=h.now, message=v["message"]["id"]))
    elif scr == "confirm" and not v["saving"]:
        h.feed(ev.Finish(now=h.now))
    elif scr == "staff" and v["phase"] == "pin":
        for digit in "2468":
            h.feed(ev.Key(now=h.now, digit=digit))
        h.feed(ev.Submit(now=h.now))
    elif h.pending:  # waiting on the composition root: answer the oldest request
        what, payload = h.pending.pop()
        h.feed(_result(what, payload, arg + 1 if arg < 3 else 0, h.now))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=st.lists(ACTIONS, min_size=30, max_size=200),
    choices=st.lists(st.integers(0, 3), min_size=200, max_size=200),
)
def test_random_sequences_keep_the_invariants(
    actions: list[tuple[str, int]], choices: list[int]
) -> None:
    h = Harness()
    for i, (kind, arg) in enumerate(actions):
        event(f"reached {view(h.k)['screen']}")
        h.now += 1.0
        if kind == "tap":
            cls, fields = TAPS[arg]
            h.feed(cls(now=h.now, **fields))
        elif kind == "result" and h.pending:
            what, payload = h.pending.pop(arg % len(h.pending))
            h.feed(_result(what, payload, choices[i], h.now))
        elif kind == "tick":
            h.now += arg
            h.feed(ev.Tick(now=h.now))
        elif kind == "identify":
            _identify(h, [ALICE, DECLINED, NO_TEMPLATE, ("999999", "01011990")][arg])
        elif kind == "answer":
            v = view(h.k)
            if v["screen"] == "questions":
                q = v["question"]
                options = [o["id"] for o in q["options"]]
                h.feed(ev.Answer(now=h.now, question=q["id"], value=options[arg % len(options)]))
        elif kind == "advance":
            _advance(h, arg)
        elif kind == "read":
            v = view(h.k)
            if v["screen"] == "messages":
                h.feed(ev.MessageRead(now=h.now, message=v["message"]["id"]))


@settings(max_examples=150, deadline=None)
@given(rnd=st.randoms(use_true_random=False), forward=st.sampled_from([0.6, 0.8, 0.95]))
def test_long_random_walks_keep_the_invariants(rnd: random.Random, forward: float) -> None:
    """Long walks (200 steps) that mostly move the check-in forward, with random taps,
    hardware events, staff actions, results and time in between: reaches every screen."""
    h = Harness()
    for _ in range(200):
        h.now += rnd.choice([0.5, 1.0, 1.0, 5.0])
        roll = rnd.random()
        if roll < forward:
            _advance(h, rnd.randint(0, 3))
        elif roll < forward + (1 - forward) * 0.6:
            cls, fields = rnd.choice(TAPS)
            h.feed(cls(now=h.now, **fields))
        elif h.pending and roll < forward + (1 - forward) * 0.9:
            what, payload = h.pending.pop(rnd.randrange(len(h.pending)))
            h.feed(_result(what, payload, rnd.randint(0, 3), h.now))
        else:
            h.now += rnd.choice([10, 95, 130, 400])
            h.feed(ev.Tick(now=h.now))
        event(f"reached {view(h.k)['screen']}")
