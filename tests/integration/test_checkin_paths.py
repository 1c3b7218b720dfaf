"""Every check-in path through the daemon's composition root (KioskCore + CheckinRunner) on
simulated hardware — the emulated sensor behind the real driver, the synthetic camera,
MockFactory pins — with the records checked where they land: the real reference API."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from daemon.app import KioskCore
from daemon.clock import SystemClock
from daemon.config import load_config
from daemon.demo_script import Visit, Visitor
from daemon.demo_support import PEOPLE, DemoDevice, appointment_at, provision, publish_roster
from daemon.diskspace import MB, free_bytes
from daemon.errors import DeviceKeyError, RecordError
from daemon.flow import events, step, view
from daemon.keys import PublicKey, SigningKey
from daemon.kiosk import CheckinRunner
from daemon.records import Record, RecordSigner, receipt_code
from daemon.sealing import generate_keypair, open_sealed
from daemon.sync import SyncClient
from daemon.ui.catalog import Catalogue
from daemon.ui.present import spell_datetime
from drivers.camera import camera_sim
from drivers.printer.simulated import SimulatedPrinter
from hil.fingerprint.fingers import Condition, VirtualFinger
from hil.refapi.enrolment import apply_enrolment
from hil.refapi.server import RefApi


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> RefApi:
    ref = RefApi(tmp_path_factory.mktemp("api"))
    ref.start()
    yield ref  # type: ignore[misc]
    ref.stop()


@dataclass
class Kiosk:
    core: KioskCore
    runner: CheckinRunner
    me: Visitor
    device: DemoDevice
    api: RefApi

    async def sync(self) -> list[Record]:
        """Drain to the API and return what the API stored for this device, verified."""
        assert self.core.outbox is not None
        client = SyncClient(self.core.outbox, self.core.cfg.api, self.core.key,  # type: ignore[arg-type]
                            clock=SystemClock())  # fmt: skip
        await client.drain()
        await client.aclose()
        store = self.api.storage()
        try:
            compacts = [c for _d, _s, c in store.export(self.device.id)]
        finally:
            store.close()
        from daemon.records import verify_chain

        return verify_chain(compacts, self.device.key.load().public_key(), self.device.id)

    def blob(self, sha: str) -> bytes | None:
        store = self.api.storage()
        try:
            return store.get_blob(sha)
        finally:
            store.close()


_n = 0


@pytest.fixture
def disk_level() -> str:
    """The data disk's level the kiosk starts at (a test parametrizes it): the [outbox]
    thresholds are set around the real free space, so the kiosk reads it from statvfs."""
    return "ok"


def disk_toml(folder: Path, level: str) -> str:
    """[outbox] thresholds that put ``folder``'s real free space at ``level``: 100 GB of margin
    either side, so other writers on the machine cannot move it across a threshold."""
    folder.mkdir(parents=True, exist_ok=True)
    free_mb = free_bytes(folder) // MB
    above = free_mb + 100_000
    values = {
        "ok": (1, 1, 1),
        "low": (1, 1, above),
        "no_photo": (1, above, above),
        "full": (above, above, above),
    }[level]
    return "\n[outbox]\nmin_free_mb = {}\nno_photo_free_mb = {}\nlow_free_mb = {}\n".format(*values)


@pytest.fixture
async def kiosk(api: RefApi, tmp_path: Path, disk_level: str) -> AsyncIterator[Kiosk]:
    extra = "" if disk_level == "ok" else disk_toml(tmp_path / "kiosk", disk_level)
    async with running_kiosk(api, tmp_path / "kiosk", extra) as k:
        yield k


@contextlib.asynccontextmanager
async def running_kiosk(api: RefApi, folder: Path, extra: str = "") -> AsyncIterator[Kiosk]:
    global _n
    _n += 1
    # the demo's kiosk has a (simulated) receipt printer: every path also prints, or fails to
    device = provision(api, folder, device=f"kiosk-path-{_n:02d}", extra=extra)
    publish_roster(api, device)
    cfg = load_config(device.config_path)
    # the roster as the sync process would have stored it
    core = KioskCore(cfg)
    await core.open()
    assert core.outbox is not None
    client = SyncClient(core.outbox, cfg.api, core.key, clock=SystemClock(),  # type: ignore[arg-type]
                        roster_path=cfg.device.data_dir / "roster.json")  # fmt: skip
    assert await client.fetch_roster()
    await client.aclose()
    runner = CheckinRunner(core)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    me = Visitor(runner, core)
    for _ in range(300):
        if runner.state.roster.people:
            break
        await asyncio.sleep(0.01)
    try:
        yield Kiosk(core, runner, me, device, api)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        core.close()


def _last(records: list[Record], type_: str) -> Record:
    return [r for r in records if r.type == type_][-1]


async def test_the_more_time_question_comes_after_the_configured_idle_time(kiosk: Kiosk) -> None:
    """``[staff] warn_after_s`` reaches the screens: "do you need more time?" after that long
    untouched, and the visit ends 30 s later (nothing is recorded before identification)."""
    cfg = kiosk.core.cfg
    kiosk.core.cfg = replace(cfg, staff=replace(cfg.staff, warn_after_s=40.0))
    k = CheckinRunner(kiosk.core).state
    t = k.now
    k, _ = step(k, events.Start(now=t + 1, lang="en"))
    k, _ = step(k, events.Tick(now=t + 40))
    assert view(k)["screen"] == "identify" and "timeout" not in view(k)
    k, _ = step(k, events.Tick(now=t + 42))
    assert view(k)["timeout"] == {"warning": True, "remaining_s": 29}
    k, _ = step(k, events.Tick(now=t + 72))
    assert view(k)["screen"] == "idle"


async def test_normal_checkin_reaches_the_api_with_a_sealed_photo(kiosk: Kiosk) -> None:
    rec = await kiosk.me.visit(Visit(PEOPLE[0]))
    assert rec is not None and rec.type == "checkin"
    assert kiosk.me.screen == "idle"
    stored = _last(await kiosk.sync(), "checkin")
    assert stored.payload["person"] == PEOPLE[0].ref
    assert stored.payload["verify"]["method"] == "fingerprint"
    assert stored.payload["verify"]["score"] >= stored.payload["verify"]["threshold"]
    sha = stored.payload["photo"]
    blob = kiosk.blob(sha)
    assert blob is not None and not blob.startswith(b"\xff\xd8")  # ciphertext, not a JPEG
    _other_private, _ = generate_keypair()
    with pytest.raises(RecordError):
        open_sealed(blob, _other_private)  # not without the API's key
    jpeg = open_sealed(blob, kiosk.api.pki.seal_key.read_bytes())
    assert jpeg.startswith(b"\xff\xd8")  # the reviewer, with the API's key, sees the photo
    assert not any(kiosk.core.outbox.blob_dir.iterdir())  # type: ignore[union-attr]


async def test_the_person_leaves_with_a_reference_that_finds_their_signed_record(
    kiosk: Kiosk,
) -> None:
    """Proof of attendance: the done screen shows a short reference made from the saved
    record's chain hash; staff find exactly that signed record with it at the central API."""
    rec = await kiosk.me.visit(Visit(PEOPLE[0]), leave=False)
    assert rec is not None and kiosk.me.screen == "done"
    shown = kiosk.runner.current_view()["receipt"]
    assert shown == receipt_code(rec.compact) and len(shown) == 9 and shown[4] == "-"
    await kiosk.me.tap("continue")
    await kiosk.sync()
    with kiosk.api.admin() as admin:
        found = admin.get(f"/v1/admin/receipts/{shown.lower().replace('-', '')}").json()
    assert found["code"] == shown
    assert [(r["device"], r["seq"], r["type"]) for r in found["records"]] == [
        (kiosk.device.id, rec.seq, "checkin")
    ]
    assert "person" not in json.dumps(found) and PEOPLE[0].ref not in json.dumps(found)


def _slips(kiosk: Kiosk) -> list[str]:
    hw = kiosk.core.hardware
    assert hw is not None and isinstance(hw.printer, SimulatedPrinter)
    return [" | ".join(text for _style, text in r.lines) for r, _image in hw.printer.printed]


async def _printed(kiosk: Kiosk, n: int) -> list[str]:
    for _ in range(300):  # printing runs in a worker thread
        if len(_slips(kiosk)) >= n:
            break
        await asyncio.sleep(0.01)
    return _slips(kiosk)


async def test_the_slip_carries_the_reference_and_the_next_appointment_in_their_language(
    kiosk: Kiosk,
) -> None:
    rec = await kiosk.me.visit(Visit(PEOPLE[0]), leave=False)
    assert rec is not None
    [slip] = await _printed(kiosk, 1)
    assert receipt_code(rec.compact) in slip
    assert "Probation check-in" in slip and "Your next appointment" in slip
    when = spell_datetime(appointment_at(), "en", Catalogue.load())  # "Monday 7 December ..."
    assert when.startswith("Monday ") and when.endswith(" at 10:30")
    assert "Room 2, ground floor" in slip and when in slip
    assert "CR-" not in slip  # nothing about the person but what the screen showed them
    # where to read how their information is used: no [privacy] notice set, so reception
    assert slip.endswith("Ask at reception how we use your information.")
    await kiosk.me.tap("continue")
    rec = await kiosk.me.visit(Visit(PEOPLE[1], lang="cy"), leave=False)
    assert rec is not None
    slips = await _printed(kiosk, 2)
    assert "Cofrestru prawf" in slips[1] and receipt_code(rec.compact) in slips[1]
    assert slips[1].endswith("Gofynnwch yn y dderbynfa sut rydym yn defnyddio eich gwybodaeth.")


async def test_the_slip_says_where_the_privacy_notice_is_in_the_persons_language(
    api: RefApi, tmp_path: Path
) -> None:
    """``[privacy] notice`` (and ``notice_cy``): one line at the foot of every slip, in the
    person's language; the rest of the slip is unchanged and names nobody."""
    extra = (
        '\n[privacy]\nnotice = "gov.uk/probation-privacy"\nnotice_cy = "gov.uk/cy/preifatrwydd"\n'
    )
    async with running_kiosk(api, tmp_path / "kiosk", extra) as kiosk:
        for n, (who, lang) in enumerate(((PEOPLE[0], "en"), (PEOPLE[1], "cy")), start=1):
            rec = await kiosk.me.visit(Visit(who, lang=lang), leave=False)
            assert rec is not None
            slip = (await _printed(kiosk, n))[-1]
            assert who.ref not in slip and "CR-" not in slip
            await kiosk.me.tap("continue")
        en, cy = _slips(kiosk)
    assert en.endswith("How we use your information: gov.uk/probation-privacy")
    assert cy.endswith("Sut rydym yn defnyddio eich gwybodaeth: gov.uk/cy/preifatrwydd")
    assert en.count("How we use your information") == 1 and "dderbynfa" not in cy


async def test_a_jammed_printer_is_a_staff_alert_and_nothing_else(kiosk: Kiosk) -> None:
    hw = kiosk.core.hardware
    assert hw is not None and isinstance(hw.printer, SimulatedPrinter)
    hw.printer.jammed = True
    rec = await kiosk.me.visit(Visit(PEOPLE[0]), leave=False)
    assert rec is not None and rec.type == "checkin"
    assert kiosk.me.screen == "done"  # the person is done; the screen has the reference
    for _ in range(300):
        if "printer" in kiosk.runner.state.alerts:
            break
        await asyncio.sleep(0.01)
    assert "printer" in kiosk.runner.state.alerts
    assert kiosk.runner.current_view()["receipt"] == receipt_code(rec.compact)
    assert [r.type for r in await kiosk.sync()].count("fault") == 0  # not a check-in fault
    assert kiosk.runner.health()["faults"] == {"printer": "printer"}  # the API hears of it
    hw.printer.jammed = False  # staff cleared it: the next slip prints, the fault goes
    await kiosk.me.tap("continue")
    assert await kiosk.me.visit(Visit(PEOPLE[1])) is not None
    assert len(await _printed(kiosk, 1)) == 1
    for _ in range(300):
        if "printer" not in kiosk.runner.health()["faults"]:
            break
        await asyncio.sleep(0.01)
    assert "printer" not in kiosk.runner.health()["faults"]


async def _refresh_roster(kiosk: Kiosk) -> None:
    """What kiosk-sync does every few seconds: fetch the roster, which the runner reloads."""
    cfg = kiosk.core.cfg
    roster_path = cfg.device.data_dir / "roster.json"
    client = SyncClient(kiosk.core.outbox, cfg.api, kiosk.core.key,  # type: ignore[arg-type]
                        clock=SystemClock(), roster_path=roster_path)  # fmt: skip
    before = kiosk.runner.state.roster
    assert await client.fetch_roster()
    await client.aclose()
    for _ in range(300):
        if kiosk.runner.state.roster is not before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the runner did not load the new roster")


async def test_one_bad_roster_entry_costs_that_person_not_everyone_even_after_a_restart(
    kiosk: Kiosk,
) -> None:
    """The central system serves a roster with an empty Welsh message for one person (the
    reference API refuses to publish it, so it is put in its store directly): the kiosk takes
    everyone else, with their new data, and still does after it restarts."""
    store = kiosk.api.storage()
    try:
        held = store.get_roster(kiosk.device.id)
        assert held is not None
        roster = json.loads(held[1])
        roster["people"][1]["messages"] = [{"id": "m1", "en": "Bring your letter.", "cy": ""}]
        roster["people"][0]["in_person"] = True  # something new for someone else
        store.put_roster(kiosk.device.id, json.dumps(roster).encode())
    finally:
        store.close()
    await _refresh_roster(kiosk)
    refs = [p["ref"] for p in roster["people"]]
    expected = refs[:1] + refs[2:]
    assert [p.ref for p in kiosk.runner.state.roster.people] == expected
    assert kiosk.runner.state.roster.people[0].in_person
    restarted = CheckinRunner(kiosk.core)  # a reboot: the roster comes from the file alone
    assert not restarted.state.roster.people
    restarted._reload_roster()  # what its run() does first
    loaded = restarted.queue.get_nowait()
    assert isinstance(loaded, events.RosterLoaded)
    assert [p.ref for p in loaded.roster.people] == expected


async def _staff_until(kiosk: Kiosk, what: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(1000):
        view = kiosk.runner.current_view()
        if what(view):
            return view
        await asyncio.sleep(0.01)
    raise AssertionError(f"staff screen never got there: {kiosk.runner.current_view()}")


async def test_fingers_enrolled_at_the_kiosk_reach_the_roster_and_then_match(
    kiosk: Kiosk,
) -> None:
    """The whole enrolment: a person with no fingerprint on file falls back; staff enrol two
    fingers at the kiosk after the notice; the sealed templates and a signed record reach the
    API; the back office applies them to the roster; from the next roster the person's own
    finger checks them in, and another finger does not."""
    person = PEOPLE[4]
    publish_roster(kiosk.api, kiosk.device, not_enrolled=frozenset({person.ref}))
    await _refresh_roster(kiosk)
    before = await kiosk.me.visit(Visit(person))
    assert before is not None and before.type == "checkin_fallback"  # nothing to match yet
    hw = kiosk.core.hardware
    assert hw is not None and hw.emulator is not None
    me = kiosk.me
    await me.staff_login()  # the same reception steps the demo takes
    await me.tap("staff_enrol")
    await me.type(person.ref.removeprefix("CR-"))
    await me.tap("submit")
    await _staff_until(kiosk, lambda v: v.get("phase") == "consent")
    hw.emulator.tap(VirtualFinger(person.ref, 2, Condition.GOOD), 3)  # right index
    await me.tap("enrol_agree")
    await _staff_until(kiosk, lambda v: v.get("enrol", {}).get("taken") == 1)
    hw.emulator.tap(VirtualFinger(person.ref, 7, Condition.GOOD), 3)  # left index
    done = await _staff_until(kiosk, lambda v: v.get("result") in ("enrolled", "enrol_failed"))
    assert done["result"] == "enrolled"
    await me.tap("staff_exit")
    records = await kiosk.sync()
    enrolment = _last(records, "finger_enrolment")
    assert enrolment.payload["person"] == person.ref
    assert enrolment.payload["detail"]["fingers"] == ["right_index", "left_index"]
    sealed = kiosk.blob(enrolment.payload["templates"])
    assert sealed is not None and b"right_index" not in sealed  # sealed, not readable
    with pytest.raises(RecordError):
        open_sealed(sealed, generate_keypair()[0])  # not without the API's key
    store = kiosk.api.storage()
    try:
        private = x25519.X25519PrivateKey.from_private_bytes(kiosk.api.pki.seal_key.read_bytes())
        ref, fingers, devices, declined = apply_enrolment(
            store, kiosk.device.id, enrolment.seq, private, operator="staff-0042"
        )
    finally:
        store.close()
    assert (ref, fingers, declined) == (person.ref, ["left_index", "right_index"], False)
    assert devices[0] == kiosk.device.id  # then the other kiosks of its office on this API
    await _refresh_roster(kiosk)
    after = await kiosk.me.visit(Visit(person))
    assert after is not None and after.type == "checkin"
    assert after.payload["verify"]["method"] == "fingerprint"
    impostor = await kiosk.me.visit(Visit(replace(person, finger=5)))  # not an enrolled finger
    assert impostor is not None and impostor.type == "checkin_fallback"


async def test_a_no_at_the_enrolment_notice_becomes_a_route_of_its_own_not_an_exception(
    kiosk: Kiosk,
) -> None:
    """End to end over the real API on loopback: a person with no fingerprint falls back
    ("not yet", an identity review); at reception they say no to fingerprints; the signed
    refusal reaches the API and the back office applies it (no key); from the next roster the
    kiosk skips the fingerprint step, records a plain check-in by their chosen route, and the
    API makes no identity review of it nor counts it as a fallback."""
    person = PEOPLE[4]
    publish_roster(kiosk.api, kiosk.device, not_enrolled=frozenset({person.ref}))
    await _refresh_roster(kiosk)
    before = await kiosk.me.visit(Visit(person))
    assert before is not None and before.type == "checkin_fallback"
    assert before.payload["verify"]["fallback"] == "no_template"
    me = kiosk.me
    await me.staff_login()
    await me.tap("staff_enrol")
    await me.type(person.ref.removeprefix("CR-"))
    await me.tap("submit")
    notice = await _staff_until(kiosk, lambda v: v.get("phase") == "consent")
    assert notice["enrol"]["declined_biometric"] is False  # nothing on file said so yet
    await me.tap("enrol_decline")
    await _staff_until(kiosk, lambda v: v.get("result") == "enrol_declined")
    await me.tap("staff_exit")
    refusal = _last(await kiosk.sync(), "finger_enrolment")
    assert refusal.payload["detail"]["consent"] is False and "templates" not in refusal.payload
    store = kiosk.api.storage()
    try:
        applied = apply_enrolment(store, kiosk.device.id, refusal.seq, None, operator="po-0042")
    finally:
        store.close()
    assert applied.declined and applied.devices[0] == kiosk.device.id
    await _refresh_roster(kiosk)
    after = await kiosk.me.visit(Visit(person))
    assert after is not None and after.type == "checkin"
    chosen = {"method": "dob_photo_by_choice", "score": None, "threshold": None, "attempts": 0}
    assert after.payload["verify"] == chosen
    assert after.payload["detail"]["biometric"] == "declined"
    assert after.payload["flags"] == [] and after.payload["photo"]
    stored = await kiosk.sync()
    assert _last(stored, "checkin").seq == after.seq  # signed, chained, accepted
    with kiosk.api.admin("po-0042") as admin:
        tasks = admin.get("/v1/admin/tasks", params={"device": kiosk.device.id}).json()["tasks"]
        figures = admin.get("/v1/admin/figures", params={"days": 1}).json()
    kinds = {(t["seq"], t["kind"]) for t in tasks}
    assert (before.seq, "identity_review") in kinds  # the fallback before the choice
    assert not {k for seq, k in kinds if seq == after.seq} - {"photo_check"}  # sampled at most
    assert person.ref not in [r["ref"] for r in figures["falling_back"]]
    assert figures["by_method"].get("dob_photo_by_choice") == 1


async def test_three_failed_matches_fall_back_never_refuse(kiosk: Kiosk) -> None:
    rec = await kiosk.me.visit(Visit(PEOPLE[2], condition=Condition.DRY))
    assert rec is not None
    stored = _last(await kiosk.sync(), "checkin_fallback")
    assert "id_review" in stored.payload["flags"]
    assert stored.payload["verify"]["attempts"] == 3
    assert stored.payload.get("photo")


async def test_someone_elses_finger_is_not_a_match(kiosk: Kiosk) -> None:
    impostor = Visit(PEOPLE[0])
    hw = kiosk.core.hardware
    assert hw is not None
    # the visitor presents person 4's finger while claiming to be person 0
    original = hw.emulator.present_finger
    hw.emulator.present_finger = lambda _p, f, c: original(PEOPLE[4].ref, f, c)  # type: ignore[method-assign]
    rec = await kiosk.me.visit(impostor)
    assert rec is not None and rec.type == "checkin_fallback"
    assert "id_review" in rec.payload["flags"]


async def test_escalations_are_flagged_and_surface_first(kiosk: Kiosk) -> None:
    await kiosk.me.visit(Visit(PEOPLE[3], answers={"course_attended": "no"}))
    await kiosk.me.visit(Visit(PEOPLE[4], answers={"speak_to_someone": "yes"}))
    records = await kiosk.sync()
    escalated = [r for r in records if "see_officer" in r.payload["flags"]]
    assert len(escalated) == 2
    assert "speak_to_someone" in kiosk.runner.alerts and "see_officer" in kiosk.runner.alerts
    with kiosk.api.admin() as admin:
        first = admin.get("/v1/admin/alerts").json()[0]
    assert "see_officer" in first["flags"] or first["type"] == "tamper"


async def test_welsh_checkin(kiosk: Kiosk) -> None:
    rec = await kiosk.me.visit(Visit(PEOPLE[1], lang="cy"), leave=False)
    assert rec is not None and rec.type == "checkin"
    done = kiosk.runner.current_view()
    assert done["screen"] == "done" and done["lang"] == "cy"


async def test_sensor_fault_mid_checkin_falls_back(kiosk: Kiosk) -> None:
    hw = kiosk.core.hardware
    assert hw is not None
    hw.emulator.unplug()
    try:
        rec = await kiosk.me.visit(Visit(PEOPLE[0]))
    finally:
        hw.emulator.replug()
    assert rec is not None and rec.type == "checkin_fallback"
    assert "id_review" in rec.payload["flags"]


async def test_camera_fault_still_leaves_a_signed_attendance_record(kiosk: Kiosk) -> None:
    hw = kiosk.core.hardware
    assert hw is not None
    camera_sim(hw.camera).unplug()
    rec = await kiosk.me.visit(Visit(PEOPLE[0]))
    assert rec is not None and rec.type == "fault"
    assert "fault" in rec.payload["flags"] and rec.payload["person"] == PEOPLE[0].ref
    stored = _last(await kiosk.sync(), "fault")
    assert stored.payload["detail"]["part"] == "camera"


async def test_the_qr_code_on_a_letter_stands_in_for_typing_the_case_reference(
    kiosk: Kiosk,
) -> None:
    hw = kiosk.core.hardware
    assert hw is not None
    rec = await kiosk.me.visit(Visit(PEOPLE[0], letter=True))
    assert rec is not None and rec.type == "checkin"
    assert _last(await kiosk.sync(), "checkin").payload["person"] == PEOPLE[0].ref
    sim = camera_sim(hw.camera)
    assert sim.previews_taken >= 1 and sim.frames_taken == 1  # one evidence still: the photo


async def _wait_for(kiosk: Kiosk, field: str, timeout_s: float = 3.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if kiosk.runner.current_view().get("field") == field:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_code_that_is_not_a_case_reference_says_so_once_and_the_keypad_works(
    kiosk: Kiosk,
) -> None:
    hw = kiosk.core.hardware
    assert hw is not None
    sim = camera_sim(hw.camera)
    scanned: list[str] = []
    post = kiosk.runner.post

    def counting_post(event: events.Event) -> None:
        if isinstance(event, events.QrScanned):
            scanned.append(event.text)
        post(event)

    kiosk.runner.post = counting_post  # type: ignore[method-assign]
    await kiosk.me.tap("start", lang="en")
    assert kiosk.runner.current_view()["qr"] is True  # the screen offers the letter
    sim.hold_up_letter("https://example.invalid/leaflet")
    await asyncio.sleep(kiosk.core.cfg.camera.qr_interval_s * 6)
    view = kiosk.runner.current_view()
    assert view["error"] == "qr_unreadable" and view["field"] == "ref"
    assert len(scanned) == 1  # said once, not flashed at every look
    sim.put_letter_away()
    await kiosk.me.type(PEOPLE[0].ref.removeprefix("CR-"))
    await kiosk.me.tap("submit")
    assert kiosk.runner.current_view()["field"] == "dob"


async def test_going_back_with_the_letter_still_in_hand_does_not_bounce(kiosk: Kiosk) -> None:
    hw = kiosk.core.hardware
    assert hw is not None
    sim = camera_sim(hw.camera)
    interval = kiosk.core.cfg.camera.qr_interval_s
    await kiosk.me.tap("start", lang="en")
    sim.hold_up_letter(PEOPLE[0].ref)
    assert await _wait_for(kiosk, "dob")
    await kiosk.me.tap("back")  # to correct the reference, the letter still in hand
    looked = sim.previews_taken
    await asyncio.sleep(interval * 5)
    assert sim.previews_taken > looked  # it kept looking ...
    assert kiosk.runner.current_view()["field"] == "ref"  # ... and did not send them on again
    sim.put_letter_away()
    await asyncio.sleep(1.0 + interval * 3)
    sim.hold_up_letter(PEOPLE[0].ref)  # shown again on purpose
    assert await _wait_for(kiosk, "dob")
    sim.put_letter_away()


async def test_a_camera_that_fails_while_looking_leaves_the_keypad(kiosk: Kiosk) -> None:
    hw = kiosk.core.hardware
    assert hw is not None
    sim = camera_sim(hw.camera)
    sim.unplug()
    await kiosk.me.tap("start", lang="en")
    await asyncio.sleep(kiosk.core.cfg.camera.qr_interval_s * 3)
    assert kiosk.runner.current_view()["screen"] == "identify"  # no fault screen for a scan
    await kiosk.me.type(PEOPLE[0].ref.removeprefix("CR-"))
    await kiosk.me.tap("submit")
    assert kiosk.runner.current_view()["field"] == "dob"


async def test_with_read_qr_off_the_camera_is_not_used_and_the_screen_does_not_offer_it(
    kiosk: Kiosk,
) -> None:
    hw = kiosk.core.hardware
    assert hw is not None
    sim = camera_sim(hw.camera)
    config = kiosk.device.config_path
    text = config.read_text()
    assert "[camera]\n" in text
    config.write_text(text.replace("[camera]\n", "[camera]\nread_qr = false\n", 1))
    cfg = load_config(config)
    assert cfg.camera.read_qr is False
    kiosk.core.cfg = cfg
    runner = CheckinRunner(kiosk.core)  # a kiosk started with that configuration
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        me = Visitor(runner, kiosk.core)
        await me.tap("start", lang="en")
        assert runner.current_view()["qr"] is False
        sim.hold_up_letter(PEOPLE[0].ref)
        looked = sim.previews_taken
        await asyncio.sleep(kiosk.core.cfg.camera.qr_interval_s * 4)
        assert sim.previews_taken == looked and runner.current_view()["field"] == "ref"
    finally:
        sim.put_letter_away()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_tamper_locks_until_staff_unlock(kiosk: Kiosk) -> None:
    hw = kiosk.core.hardware
    assert hw is not None and hw.gpio_sim is not None
    hw.gpio_sim.open_enclosure()
    await asyncio.sleep(0.05)
    await kiosk.me.settle()
    assert kiosk.me.screen == "see_reception"
    hw.gpio_sim.close_enclosure()
    await kiosk.me.settle()
    assert kiosk.me.screen == "see_reception"  # closing alone does not unlock
    await kiosk.me.tap("start", lang="en")
    assert kiosk.me.screen == "see_reception"
    await kiosk.me.staff_unlock()
    assert kiosk.me.screen == "idle"
    records = await kiosk.sync()
    assert _last(records, "tamper")
    # what staff did is in the same signed chain, naming who (the demo's shared PIN: "staff")
    actions = [r.payload["detail"] for r in records if r.type == "staff_action"]
    assert actions[0] == {"action": "login", "staff": "staff", "unsaved_shown": 0}
    assert actions[1] == {"action": "unlock", "staff": "staff", "lifted": ["tamper"]}
    assert actions[2]["action"] == "acknowledge_alerts" and "tamper" in actions[2]["alerts"]


async def test_a_disk_that_fills_during_a_check_in_is_still_caught_by_the_outbox(
    kiosk: Kiosk,
) -> None:
    """The levels are read before each step, but the outbox's own reserve is the last word:
    a disk that fills between two readings still refuses the record without harm."""
    assert kiosk.core.outbox is not None
    kiosk.core.outbox._min_free = 1 << 60  # the reserve is larger than any disk
    kiosk.core.outbox._free_at = -1.0
    rec = await kiosk.me.visit(Visit(PEOPLE[0]), leave=False)
    assert rec is None
    assert kiosk.core.outbox.stats().depth == 1  # only the boot record
    view = kiosk.runner.current_view()
    assert view["screen"] == "see_reception"
    assert "commit_failed" in kiosk.runner.alerts


@pytest.mark.parametrize("disk_level", ["full"])
async def test_a_full_disk_sends_the_person_to_reception_before_their_check_in(
    kiosk: Kiosk,
) -> None:
    core, hw = kiosk.core, kiosk.core.hardware
    assert core.outbox is not None and hw is not None
    # it started all the same, to say so: a restart loop would only show a blank screen
    assert core.boot_record is None and core.boot_pending is not None
    healthy, status = core.health()
    assert healthy and "disk full" in status and "no boot record yet" in status
    await kiosk.me.settle()
    assert "disk_full" in kiosk.runner.state.alerts  # staff know before anyone arrives
    assert kiosk.runner.health()["disk"] == "full"
    await kiosk.me.tap("start", lang="cy")
    view = kiosk.runner.current_view()
    assert view["screen"] == "see_reception" and view["reason"] == "disk_full"
    assert view["checked_in"] is False and view["lang"] == "cy"
    assert kiosk.runner.state.session is None
    rec = await kiosk.me.visit(Visit(PEOPLE[0]), leave=False)  # typing on changes nothing
    assert rec is None and kiosk.me.screen == "see_reception"
    assert camera_sim(hw.camera).frames_taken == 0  # no photo taken for nothing
    assert core.outbox.stats().depth == 0


@pytest.mark.parametrize("disk_level", ["low"])
async def test_when_space_runs_low_staff_are_told_and_photos_are_still_kept(
    kiosk: Kiosk,
) -> None:
    await kiosk.me.settle()
    assert "disk_low" in kiosk.runner.state.alerts
    assert kiosk.runner.health()["disk"] == "low"
    assert "disk low" in kiosk.core.health()[1]
    rec = await kiosk.me.visit(Visit(PEOPLE[0]))
    assert rec is not None
    stored = _last(await kiosk.sync(), "checkin")
    assert "no_photo" not in stored.payload["flags"]
    assert "no_photo" not in stored.payload["detail"]
    assert kiosk.blob(stored.payload["photo"]) is not None


@pytest.mark.parametrize("disk_level", ["no_photo"])
async def test_below_the_no_photo_level_the_check_in_is_saved_without_one_and_says_why(
    kiosk: Kiosk,
) -> None:
    hw = kiosk.core.hardware
    assert hw is not None and kiosk.core.outbox is not None
    await kiosk.me.settle()
    assert "disk_no_photo" in kiosk.runner.state.alerts
    rec = await kiosk.me.visit(Visit(PEOPLE[0]), leave=False)
    assert rec is not None and kiosk.me.screen == "done"  # the check-in counts
    assert camera_sim(hw.camera).frames_taken == 0  # not taken only to be dropped
    assert not any(kiosk.core.outbox.blob_dir.iterdir())
    stored = _last(await kiosk.sync(), "checkin")
    assert stored.payload["person"] == PEOPLE[0].ref and "photo" not in stored.payload
    assert stored.payload["flags"] == ["no_photo"]
    assert stored.payload["detail"]["no_photo"] == "disk_low"  # why, for the officer


def _fill_to(folder: Path, ballast: Path, free: int) -> None:
    """Grow or shrink ``ballast`` (really allocated) until ``folder`` has ``free`` bytes."""
    size = ballast.stat().st_size if ballast.exists() else 0
    size = max(0, size + free_bytes(folder) - free)
    fd = os.open(ballast, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, 0)
        if size:
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


async def _level_seen(kiosk: Kiosk, level: str) -> None:
    for _ in range(60):  # the reading is at most 0.5 s old; a Tick comes every second
        if kiosk.runner.disk == level:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the kiosk did not see the disk {level}: {kiosk.runner.disk}")


async def test_a_real_disk_filling_up_and_emptied_again(api: RefApi) -> None:
    """On a small real file system (tmpfs), space taken by something else steps the kiosk
    down level by level and back: photos kept, then dropped with the reason, then people sent
    to reception at once; every record already queued intact throughout."""
    mnt = Path(tempfile.mkdtemp(prefix="kiosk-disk-")) / "small"
    mnt.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], check=False,
        capture_output=True,
    ).returncode == 0  # fmt: skip
    if not mounted:
        shutil.rmtree(mnt.parent, ignore_errors=True)
        pytest.skip("needs root to mount a small tmpfs (CI runs as root)")
    levels = "\n[outbox]\nmin_free_mb = 8\nno_photo_free_mb = 16\nlow_free_mb = 24\n"
    ballast = mnt / "ballast"  # something else on the disk (logs, a stray file)
    try:
        async with running_kiosk(api, mnt / "kiosk", levels) as kiosk:
            outbox, hw = kiosk.core.outbox, kiosk.core.hardware
            assert outbox is not None and hw is not None
            _fill_to(mnt, ballast, 32 * MB)
            await _level_seen(kiosk, "ok")
            first = await kiosk.me.visit(Visit(PEOPLE[0]))
            assert first is not None and "photo" in first.payload

            _fill_to(mnt, ballast, 20 * MB)
            await _level_seen(kiosk, "low")
            _fill_to(mnt, ballast, 12 * MB)
            await _level_seen(kiosk, "no_photo")
            second = await kiosk.me.visit(Visit(PEOPLE[1]))
            assert second is not None and "photo" not in second.payload
            assert second.payload["detail"]["no_photo"] == "disk_low"

            _fill_to(mnt, ballast, 4 * MB)
            await _level_seen(kiosk, "full")
            queued = [c for _s, _st, c in outbox.all_compact()]
            await kiosk.me.tap("start", lang="en")
            assert kiosk.runner.current_view()["reason"] == "disk_full"
            await kiosk.me.tap("continue")
            alerts = kiosk.runner.state.alerts
            assert tuple(a for a in alerts if a.startswith("disk_")) == (
                "disk_low",
                "disk_no_photo",
                "disk_full",
            )
            assert [c for _s, _st, c in outbox.all_compact()] == queued  # nothing harmed

            ballast.unlink()  # the engineer frees space
            await _level_seen(kiosk, "ok")
            third = await kiosk.me.visit(Visit(PEOPLE[2]))
            assert third is not None and "photo" in third.payload
            stored = await kiosk.sync()
            checkins = [r for r in stored if r.type == "checkin"]
            assert [r.seq for r in checkins] == [first.seq, second.seq, third.seq]
            assert [("photo" in r.payload, r.payload["flags"]) for r in checkins] == [
                (True, []), (False, ["no_photo"]), (True, []),
            ]  # fmt: skip
            assert kiosk.blob(third.payload["photo"]) is not None
    finally:
        gc.collect()
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(mnt.parent, ignore_errors=True)


class _FlakyToken:
    """The device key as a hardware token that can stop answering: while ``silent`` it raises
    what daemon.tokenkey.TokenKey raises when its PKCS#11 call fails."""

    def __init__(self, real: SigningKey) -> None:
        self.real = real
        self.alg = real.alg
        self.silent = False

    def sign(self, data: bytes) -> bytes:
        if self.silent:
            raise DeviceKeyError(
                "the hardware key did not sign (DeviceRemoved)", reason="hardware_key"
            )
        return self.real.sign(data)

    def public_key(self) -> PublicKey:
        return self.real.public_key()


async def test_a_hardware_key_that_stops_answering_sends_the_person_to_reception(
    kiosk: Kiosk,
) -> None:
    outbox = kiosk.core.outbox
    assert outbox is not None and outbox._key is not None
    token = _FlakyToken(outbox._key)
    outbox._signer = RecordSigner(token, outbox.device)
    token.silent = True
    rec = await kiosk.me.visit(Visit(PEOPLE[0]), leave=False)
    assert rec is None  # nothing unsigned was written, and the person is sent to a person:
    assert kiosk.runner.current_view()["screen"] == "see_reception"
    assert "commit_failed" in kiosk.runner.alerts
    assert outbox.stats().depth == 1  # only the boot record
    token.silent = False  # the token is back: the next person checks in as normal
    await kiosk.me.tap("continue")
    assert await kiosk.me.visit(Visit(PEOPLE[1])) is not None


def test_no_personal_data_on_the_idle_screen() -> None:
    from daemon.flow import initial, view

    idle = json.dumps(view(initial()))
    assert "CR-" not in idle and "person" not in idle


async def test_a_covered_camera_is_a_staff_alert_at_start_not_a_missing_photo_later(
    kiosk: Kiosk,
) -> None:
    from daemon.kioskctl import selftest

    hw = kiosk.core.hardware
    assert hw is not None
    camera_sim(hw.camera).cover_lens()
    await kiosk.runner.probe_camera()
    assert kiosk.runner.camera_probe == "camera_blank"
    await kiosk.me.settle()
    assert kiosk.runner.state.alerts  # staff are told now, before anyone stands there
    report = kiosk.runner.health()
    assert report["faults"] == {"camera": "camera_blank"}
    rows = selftest.evaluate(report, None, allow_simulated=True)
    camera = next(r for r in rows if r.name == "camera")
    assert camera.status == "fail" and "lens" in camera.fix


async def test_a_clear_camera_passes_and_the_frame_is_not_kept(kiosk: Kiosk) -> None:
    hw = kiosk.core.hardware
    assert hw is not None
    sim = camera_sim(hw.camera)
    before = sim.frames_taken
    await kiosk.runner.probe_camera()
    assert kiosk.runner.camera_probe == "ok" and "camera" not in kiosk.runner.faults
    assert sim.frames_taken == before  # a preview: no evidence photo taken or stored
    assert not any(kiosk.core.outbox.blob_dir.iterdir())  # type: ignore[union-attr]


async def test_health_says_busy_only_while_someone_is_checking_in(kiosk: Kiosk) -> None:
    """An update's reboot waits on this flag: nobody is rebooted out of a check-in."""
    assert kiosk.runner.health()["busy"] is False
    await kiosk.me.tap("start", lang="en")
    assert kiosk.runner.health()["busy"] is True
    rec = await kiosk.me.visit(Visit(PEOPLE[1]))
    assert rec is not None
    assert kiosk.me.screen == "idle" and kiosk.runner.health()["busy"] is False
    assert kiosk.runner.health()["boot_record_seq"] == kiosk.core.boot_record.seq  # type: ignore[union-attr]
