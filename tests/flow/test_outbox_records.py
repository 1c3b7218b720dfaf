"""The flow's Commit effects carried out by the real outbox: every record type the flow makes
is signed, chained and verifies with only the device's public key."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from daemon.clock import SystemClock
from daemon.flow import events as ev
from daemon.flow.effects import Commit, TakePhoto
from daemon.keys import SoftwareKey, generate
from daemon.outbox import Outbox
from daemon.records import verify_chain
from tests.flow.kit import ALICE, PLAIN, Run

SEALED = b"\x01sealed photo bytes (synthetic)"
SHA = hashlib.sha256(SEALED).hexdigest()


class Root:
    """The part of the composition root under test here: photos and commits."""

    def __init__(self, outbox: Outbox, run: Run) -> None:
        self.outbox = outbox
        self.run = run
        self.blobs: dict[str, bytes] = {}

    def send(self, event_type: type[ev.Event], **fields: Any) -> None:
        queue = list(self.run.send(event_type, **fields))
        while queue:
            effect = queue.pop(0)
            if isinstance(effect, TakePhoto):
                self.blobs[SHA] = SEALED
                queue += self.run.send(ev.PhotoTaken, photo=SHA)
            elif isinstance(effect, Commit):
                blob = self.blobs.pop(effect.photo) if effect.photo else None
                self.outbox.append(effect.type, effect.fields(), blob=blob)
                queue += self.run.send(ev.RecordCommitted, commit_id=effect.commit_id)


def test_every_record_type_the_flow_makes_is_accepted_and_verifies(tmp_path: Path) -> None:
    key = SoftwareKey(generate("ES256"))
    run = Run()
    with Outbox(tmp_path, device="kiosk-flow", key=key, clock=SystemClock()) as outbox:
        root = Root(outbox, run)

        def walk(who: tuple[str, str], matched: bool, **answers: str) -> None:
            root.send(ev.Start, lang="en")
            for d in who[0]:
                root.send(ev.Key, digit=d)
            root.send(ev.Submit)
            for d in who[1]:
                root.send(ev.Key, digit=d)
            root.send(ev.Submit)
            if matched:
                root.send(ev.FingerResult, matched=True, score=140, threshold=60)
            else:
                root.send(ev.CannotUseFinger)
                root.send(ev.Continue)
            root.send(ev.TakePhotoNow)
            while run.screen == "questions":
                qid = run.view["question"]["id"]
                default = (
                    "good" if qid == "wellbeing" else "yes" if qid == "course_attended" else "no"
                )
                root.send(ev.Answer, question=qid, value=answers.get(qid, default))
            while run.screen == "messages":
                root.send(ev.MessageRead, message=run.view["message"]["id"])
            root.send(ev.Finish)
            root.send(ev.Continue)

        walk(ALICE, True)
        walk(PLAIN, False)
        walk(PLAIN, True, wellbeing="struggling")
        root.send(ev.Start, lang="cy")  # a part fails mid check-in
        for d in ALICE[0]:
            root.send(ev.Key, digit=d)
        root.send(ev.Submit)
        for d in ALICE[1]:
            root.send(ev.Key, digit=d)
        root.send(ev.Submit)
        root.send(ev.PartFailed, part="camera", reason="device_timeout")
        root.send(ev.Continue)
        root.send(ev.EnclosureOpened)
        root.send(ev.EnclosureClosed)
        root.send(ev.StaffRequested)
        for d in "2468":
            root.send(ev.Key, digit=d)
        root.send(ev.Submit)
        root.send(ev.StaffAuthResult, ok=True, staff_id="staff-3")
        root.send(ev.StaffOverride, reason="identity_checked_by_staff", ref_digits="900103")
        compacts = [c for _, _, c in outbox.all_compact()]

    records = verify_chain(compacts, key.public_key(), "kiosk-flow")
    got = [
        (r.payload["type"], r.payload.get("person"), sorted(r.payload["flags"])) for r in records
    ]
    assert got == [
        ("checkin", "CR-900101", []),
        ("checkin_fallback", "CR-900103", ["id_review"]),
        ("see_officer", "CR-900103", ["see_officer"]),
        ("fault", "CR-900101", ["fault", "id_review", "no_photo"]),  # failed before the match
        ("tamper", None, []),
        ("staff_action", None, []),  # staff-3 opened staff mode
        ("staff_override", "CR-900103", ["no_photo"]),
    ]
    assert records[0].payload["photo"] == SHA
    assert records[0].payload["verify"]["method"] == "fingerprint"
    assert records[2].payload["answers"]["wellbeing"] == "struggling"
    assert records[6].payload["detail"] == {
        "reason": "identity_checked_by_staff",
        "staff": "staff-3",
    }
