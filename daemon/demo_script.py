"""The demo's scripted morning: people checking in at a simulated kiosk, driven through the
real drivers (the emulated sensor speaking its byte protocol, the synthetic camera, HPKE
sealing, the durable outbox) with the kiosk's own commit path.

Synthetic people only (daemon/demo_support.py).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daemon.app import KioskCore
from daemon.config import Config
from daemon.demo_support import PEOPLE, Person
from drivers.fingerprint.interface import FingerprintError
from hil.fingerprint.fingers import Condition

MAX_TRIES = 3


class Scene(enum.Enum):
    MORNING = "morning"


@dataclass
class Visit:
    person: Person
    dob: str | None = None
    condition: Condition = Condition.GOOD
    answers: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def _roster(core: KioskCore) -> dict[str, Any]:
    path = core.cfg.device.data_dir / "roster.json"
    return dict(json.loads(path.read_text()))


def _lookup(roster: dict[str, Any], ref: str, dob: str) -> dict[str, Any] | None:
    salt = base64.b64decode(roster["dob_salt"])
    mac = base64.b64encode(hmac.new(salt, dob.encode(), hashlib.sha256).digest()).decode()
    for entry in roster["people"]:
        if hmac.compare_digest(entry["ref"], ref) and hmac.compare_digest(entry["dob_hmac"], mac):
            return dict(entry)
    return None


async def checkin(core: KioskCore, visit: Visit) -> str:
    """One check-in: identify, 1:1 verify (up to 3 tries, then the fallback), photo, sealed,
    answers, record committed. Returns the record type."""
    hw = core.hardware
    assert hw is not None and core.sealer is not None and core.roster_key is not None
    person = visit.person
    entry = _lookup(_roster(core), person.ref, visit.dob or person.dob)
    if entry is None:
        return "not_identified"
    template = core.roster_key.open_template(base64.b64decode(entry["templates"][0]["sealed"]))
    threshold = core.cfg.fingerprint.threshold
    score, tries, matched, reason = 0, 0, False, ""
    for tries in range(1, MAX_TRIES + 1):  # noqa: B007 - the count is recorded
        hw.emulator.present_finger(person.ref, person.finger, visit.condition)
        try:
            match = await hw.fingerprint.verify(template, threshold=threshold)
            score, matched = match.score, match.matched
        except FingerprintError as exc:
            reason = exc.reason
        finally:
            hw.emulator.lift_finger()
        if matched:
            break
    del template
    photo = hw.camera.capture_still()
    sealed = core.sealer.seal_photo(photo.jpeg)
    flags: list[str] = []
    if photo.flagged:
        flags.append("photo_quality")
    if not matched:
        flags.append("id_review")
    for q in entry.get("questions", []):
        if str(visit.answers.get(q["id"], "")).lower() == q.get("flag_if"):
            flags.append("see_officer")
    if visit.answers.get("speak_to_someone") and "see_officer" not in flags:
        flags.append("see_officer")
    kind = "checkin" if matched else "checkin_fallback"
    core.commit(
        kind,
        {
            "person": person.ref,
            "verify": {
                "method": "fingerprint" if matched else "dob_photo",
                "score": score,
                "threshold": threshold,
                "attempts": tries,
                **({"failure": reason} if reason and not matched else {}),
            },
            "answers": visit.answers,
            "flags": flags,
        },
        blob=sealed.blob,
    )
    return kind


async def run_scene(
    cfg: Config,
    scene: Scene,
    *,
    say: Callable[[str], None],
    offline: Callable[[], None],
    online: Callable[[], None],
) -> int:
    """Play ``scene`` on a kiosk built from ``cfg``; return how many records it made."""
    del scene
    core = KioskCore(cfg)
    await core.open()
    try:
        assert core.hardware is not None and core.outbox is not None
        sim = core.hardware.gpio_sim
        assert sim is not None
        standard = {"address_changed": False, "police_contact": False}
        morning = [
            Visit(PEOPLE[0], answers=dict(standard), note="a normal check-in"),
            Visit(PEOPLE[1], answers=dict(standard), note="reads a message from their officer"),
            Visit(PEOPLE[2], condition=Condition.DRY, answers=dict(standard),
                  note="a finger that will not read: falls back to date of birth + photo"),
            Visit(PEOPLE[3], answers={**standard, "course_attended": "no"},
                  note="an answer that needs an officer"),
        ]  # fmt: skip
        later = [
            Visit(PEOPLE[4], answers={**standard, "speak_to_someone": True},
                  note="asks to speak to someone"),
            Visit(PEOPLE[0], answers=dict(standard), note="a second visit"),
        ]  # fmt: skip
        for visit in morning:
            kind = await checkin(core, visit)
            say(f"{visit.person.ref[:5]}***: {visit.note} -> {kind}")
        offline()
        say("the central API goes away (network down) ...")
        for visit in later:
            kind = await checkin(core, visit)
            say(f"{visit.person.ref[:5]}***: {visit.note} -> {kind} (queued on the kiosk)")
        sim.open_enclosure()
        core.commit("tamper", {"flags": ["see_officer"], "detail": {"event": "enclosure_opened"}})
        say("someone opens the enclosure -> tamper record, screen locked for staff")
        sim.close_enclosure()
        depth = core.outbox.stats().depth
        say(f"{depth} records waiting on the kiosk")
        online()
        say("the central API is back")
        return core.outbox.head()[0]
    finally:
        core.close()
