"""The demo's scripted morning, played through the real kiosk: the check-in flow (the pure
state machine) run by :class:`daemon.kiosk.CheckinRunner`, with taps sent the way the
touchscreen sends them, fingers placed on the emulated sensor (which speaks its byte
protocol to the real driver), the synthetic camera, HPKE sealing and the durable outbox.

Synthetic people only (daemon/demo_support.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon import health
from daemon.app import KioskCore
from daemon.config import Config
from daemon.demo_support import PEOPLE, STAFF_PIN, Person
from daemon.flow import Stage
from daemon.kiosk import CheckinRunner
from daemon.records import Record, receipt_code
from drivers.printer.simulated import SimulatedPrinter
from hil.fingerprint.fingers import Condition

DEFAULT_ANSWERS = {
    "address_changed": "no",
    "phone_changed": "no",
    "work_changed": "no",
    "police_contact": "no",
    "wellbeing": "good",
    "speak_to_someone": "no",
}


@dataclass
class Visit:
    person: Person
    condition: Condition = Condition.GOOD
    answers: dict[str, str] = field(default_factory=dict)
    lang: str = "en"
    note: str = ""
    #: holds up the QR code on their appointment letter instead of typing the case reference
    letter: bool = False


class Visitor:
    """Acts at the kiosk as a person would: taps and a finger on the glass."""

    def __init__(self, runner: CheckinRunner, core: KioskCore, *, pace_s: float = 0.0) -> None:
        self.runner = runner
        self.core = core
        self.pace_s = pace_s
        self.committed: list[Record] = []
        core.commit_listeners.append(self.committed.append)

    @property
    def screen(self) -> str:
        return str(self.runner.current_view()["screen"])

    async def tap(self, action: str, **data: Any) -> None:
        await self.runner.tap(action, data)
        await self.settle()
        if self.pace_s:
            await asyncio.sleep(self.pace_s)  # so a person watching can follow

    async def settle(self) -> None:
        """Let the runner process everything queued so far."""
        for _ in range(200):
            await asyncio.sleep(0)
            if self.runner.queue.empty():
                break
        await asyncio.sleep(0.005)

    async def type(self, digits: str) -> None:
        for d in digits:
            await self.tap("key", digit=d)

    async def visit(
        self, v: Visit, timeout_s: float = 30.0, *, leave: bool = True, until: str = ""
    ) -> Record | None:
        """One check-in from idle to done; returns the record it committed (None if none).
        ``leave`` taps on from the last screen (done / see reception) back to idle; ``until``
        names a screen to stop on, mid-check-in, the person still at the kiosk."""
        hw = self.core.hardware
        assert hw is not None
        before = len(self.committed)
        await self.tap("start", lang=v.lang)
        if v.letter:
            if (await self.show_letter(v.person.ref)).get("field") != "dob":
                raise RuntimeError("the kiosk did not read the QR code on the letter")
        else:
            await self.type(v.person.ref.removeprefix("CR-"))
            await self.tap("submit")
        yyyy, mm, dd = v.person.dob.split("-")
        await self.type(dd + mm + yyyy)
        hw.emulator.present_finger(v.person.ref, v.person.finger, v.condition)
        await self.tap("submit")
        answers = {**DEFAULT_ANSWERS, **v.answers}
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                s = self.runner.state.session
                scr = self.screen
                if s is None or scr in ("done", "see_reception", "idle", until):
                    break
                retry = scr == "fingerprint" and s.finger_phase in ("retry", "no_finger")
                if retry or scr == "fallback":
                    await self.tap("continue")
                elif s.stage == Stage.PHOTO and s.photo_phase == "notice":
                    hw.emulator.lift_finger()
                    await self.tap("photo")
                elif scr == "questions":
                    q = self.runner.current_view()["question"]
                    await self.tap("answer", id=q["id"], value=answers.get(q["id"], "yes"))
                elif scr == "messages":
                    await self.tap("read", id=self.runner.current_view()["message"]["id"])
                elif scr == "confirm" and not self.runner.current_view().get("saving"):
                    await self.tap("finish")
                else:
                    await asyncio.sleep(0.01)
        finally:
            if self.screen != until:
                hw.emulator.lift_finger()
        if leave and self.screen in ("done", "see_reception") and self.runner.state.session:
            await self.tap("continue")
        return self.committed[-1] if len(self.committed) > before else None

    async def show_letter(self, qr_text: str, timeout_s: float = 5.0) -> dict[str, Any]:
        """Hold the appointment letter up to the camera until the kiosk has read its QR code
        (the screen moves on to the date of birth, or says the code is not a case reference),
        then put it away. Returns the screen's view at that point."""
        hw = self.core.hardware
        assert hw is not None
        from drivers.camera import camera_sim

        cam = camera_sim(hw.camera)
        cam.hold_up_letter(qr_text)
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                view = self.runner.current_view()
                if view.get("field") == "dob" or view.get("error"):
                    break
                await asyncio.sleep(0.02)
            await self.settle()
            return self.runner.current_view()
        finally:
            cam.put_letter_away()

    async def staff_login(self) -> None:
        """Reception opens staff mode with the PIN."""
        self.runner.post(_event("StaffRequested"))
        await self.settle()
        await self.type(STAFF_PIN)
        await self.tap("submit")
        await self._staff_until(lambda st: st.phase == "menu")

    async def _staff_until(self, done: Callable[[Any], bool], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # PIN checks and the sensor run in worker threads
            st = self.runner.state.staff
            if st is not None and done(st):
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"staff mode did not get there: {self.runner.current_view()}")

    async def staff_unlock(self) -> None:
        """Reception: staff PIN, lift the tamper lock, acknowledge alerts, leave."""
        await self.staff_login()
        await self.tap("staff_unlock")
        await self.tap("staff_acknowledge")
        await self.tap("staff_exit")

    async def enrol(self, person: Person) -> Record | None:
        """Reception enrols the person's right and left index fingers, after the notice (the
        person agrees). Returns the finger_enrolment record."""
        hw = self.core.hardware
        assert hw is not None and hw.emulator is not None
        from hil.fingerprint.fingers import VirtualFinger

        before = len(self.committed)
        await self.staff_login()
        await self.tap("staff_enrol")
        await self.type(person.ref.removeprefix("CR-"))
        await self.tap("submit")
        await self._staff_until(lambda st: st.phase == "consent")
        for taken, finger in enumerate((person.finger, 7)):  # right index, then left index
            hw.emulator.tap(VirtualFinger(person.ref, finger, Condition.GOOD), 3)
            if taken == 0:
                await self.tap("enrol_agree")
            await self._staff_until(_past(taken))
        await self._staff_until(lambda st: st.phase == "menu")
        await self.tap("staff_exit")
        return self.committed[-1] if len(self.committed) > before else None


def _past(taken: int) -> Callable[[Any], bool]:
    """Staff state: more than ``taken`` fingers enrolled, or back at the menu (done or not)."""

    def done(st: Any) -> bool:
        return len(st.enrolled) > taken or st.phase == "menu"

    return done


def _event(name: str) -> Any:
    from daemon.flow import events

    return getattr(events, name)(now=time.monotonic())


async def run_scene(
    cfg: Config,
    *,
    say: Callable[[str], None],
    offline: Callable[[], None],
    online: Callable[[], None],
    back_office: Callable[[int], None] | None = None,
    watch: bool = False,
) -> int:
    """Play the morning on a kiosk built from ``cfg``; return how many records it made.
    ``watch`` serves the touchscreen UI on 127.0.0.1 and slows the taps down so a person can
    follow the check-ins in a browser."""
    core = KioskCore(cfg)
    await core.open()
    stop = asyncio.Event()
    runner = CheckinRunner(core)
    task = asyncio.create_task(runner.run(stop))
    # the health report kiosk.service keeps writing: kiosk-sync's heartbeats carry it, so the
    # API sees this kiosk running (its parts, its screen), as it would a real one
    health_file = health.path_for(cfg.device.data_dir)
    reporting = asyncio.create_task(health.keep_writing(health_file, runner.health, stop))
    ui = None
    if watch:
        from daemon.ui.audio import AudioPromptError, generate
        from daemon.ui.server import AUDIO_DIR, create_ui_app, new_token, serve_ui

        audio = cfg.device.data_dir.parent / "audio"
        try:
            generate(audio)  # spoken prompts, English and Welsh (espeak-ng)
        except AudioPromptError as exc:
            say(f"(no spoken prompts: {exc})")
            audio = AUDIO_DIR
        token = new_token()
        app = create_ui_app(runner, token=token, audio_dir=audio)
        ui = await serve_ui(app, cfg.ui.port)
        say(f"watch it: open {ui.url(token)} in a browser on this machine (20 s to get ready)")
        await asyncio.sleep(20)
    try:
        assert core.hardware is not None and core.outbox is not None
        sim = core.hardware.gpio_sim
        assert sim is not None
        me = Visitor(runner, core, pace_s=0.6 if watch else 0.0)
        for _ in range(300):  # the roster the sync process downloaded
            if runner.state.roster.people:
                break
            await asyncio.sleep(0.01)
        morning = [
            Visit(PEOPLE[0], note="a normal check-in"),
            Visit(PEOPLE[1], lang="cy", note="in Welsh, reads a message from their officer"),
            Visit(PEOPLE[2], condition=Condition.DRY,
                  note="a finger that will not read: falls back to date of birth + photo"),
            Visit(PEOPLE[3], answers={"course_attended": "no"}, letter=True,
                  note="shows the QR code on their letter; an answer that needs an officer"),
        ]  # fmt: skip
        later = [
            Visit(PEOPLE[4], answers={"speak_to_someone": "yes"}, note="asks to speak to someone"),
        ]
        for v in morning:
            rec = await me.visit(v)
            say(f"{v.person.ref[:5]}***: {v.note} -> {_describe(rec)}")
        offline()
        say("the central API goes away (network down) ...")
        for v in later:
            rec = await me.visit(v)
            say(f"{v.person.ref[:5]}***: {v.note} -> {_describe(rec)} (queued on the kiosk)")
        sim.open_enclosure()
        await me.settle()
        for _ in range(100):
            if len(me.committed) and me.committed[-1].type == "tamper":
                break
            await asyncio.sleep(0.01)
        say(f"someone opens the enclosure -> {_describe(me.committed[-1])}, screen locked")
        sim.close_enclosure()
        await me.staff_unlock()
        say(f"reception unlocks it with the staff PIN -> screen now '{me.screen}'")
        say(f"{core.outbox.stats().depth} records waiting on the kiosk")
        online()
        say("the central API is back")
        if back_office is not None:
            await _enrolment_scene(me, runner, back_office, say)
        people = sum(r.type != "finger_enrolment" and bool(r.payload.get("person"))
                     for r in me.committed)  # fmt: skip
        _save_slips(core, cfg.device.data_dir.parent / "slips", say, people)
    finally:
        if ui is not None:
            await ui.close()
        stop.set()
        for running in (task, reporting):
            with contextlib.suppress(asyncio.CancelledError):
                await running
        health_file.unlink(missing_ok=True)  # as kiosk.service does when it stops
        core.close()
    return await _power_cut_scene(cfg, say)


async def _power_cut_scene(cfg: Config, say: Callable[[str], None]) -> int:
    """The power goes while someone is checking in (their finger has matched): the kiosk's
    process dies with the flow's state in memory. When it is back, the note it kept of the
    check-in under way becomes a fault record: the visit counts and an officer follows it
    up. Returns the outbox's head seq."""
    person = PEOPLE[0]
    core = KioskCore(cfg)
    await core.open()
    runner = CheckinRunner(core)
    task = asyncio.create_task(runner.run(asyncio.Event()))
    try:
        me = Visitor(runner, core)
        for _ in range(300):
            if runner.state.roster.people:
                break
            await asyncio.sleep(0.01)
        await me.visit(Visit(person), until="photo", leave=False)
    finally:  # the power goes: no clean stop, nothing is tidied away
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        core.close()
    core = KioskCore(cfg)  # the power is back: kiosk.service starts again
    await core.open()
    stop = asyncio.Event()
    runner = CheckinRunner(core)
    saved: list[Record] = []
    core.commit_listeners.append(saved.append)
    task = asyncio.create_task(runner.run(stop))
    try:
        for _ in range(500):
            if saved:
                break
            await asyncio.sleep(0.01)
        say(f"{person.ref[:5]}***: the power goes in the middle of the check-in; when the "
            f"kiosk is back -> {_describe(saved[0] if saved else None)} (the visit counts; "
            "an officer follows it up)")  # fmt: skip
        assert core.outbox is not None
        return core.outbox.head()[0]
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        core.close()


async def _enrolment_scene(
    me: Visitor,
    runner: CheckinRunner,
    back_office: Callable[[int], None],
    say: Callable[[str], None],
) -> None:
    """Someone with no fingerprint on file (they checked in by date of birth and photo) is
    enrolled at the kiosk; the back office puts the templates into the roster; their finger
    checks them in from then on."""
    person = PEOPLE[4]
    rec = await me.enrol(person)
    say(f"{person.ref[:5]}***: had no fingerprint on file; reception enrols two fingers after "
        f"the notice -> {_describe(rec)}")  # fmt: skip
    if rec is None or rec.type != "finger_enrolment":
        return
    await asyncio.to_thread(back_office, rec.seq)
    say("the back office puts the sealed templates into the roster (kiosk-refapi apply-enrolment)")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kiosk-sync fetches it, the kiosk loads it
        known = next((p for p in runner.state.roster.people if p.ref == person.ref), None)
        if known is not None and known.templates:
            break
        await asyncio.sleep(0.1)
    again = await me.visit(Visit(person, note="back again"))
    method = again.payload.get("verify", {}).get("method") if again else None
    say(f"{person.ref[:5]}***: back again -> {_describe(again)}, identified by {method}")


def _save_slips(core: KioskCore, folder: Path, say: Callable[[str], None], expected: int) -> None:
    """What the (simulated) receipt printer printed, as images a person can open."""
    printer = core.hardware.printer if core.hardware else None
    if not isinstance(printer, SimulatedPrinter):
        return
    for _ in range(300):  # slips print in a worker thread, after each record is saved
        if len(printer.printed) >= expected:
            break
        time.sleep(0.01)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (_slip, image) in enumerate(printer.printed, 1):
        image.save(folder / f"slip-{i}.png")
    say(f"{len(printer.printed)} slips printed for people to take away (images in {folder})")


def _describe(rec: Record | None) -> str:
    if rec is None:
        return "no record"
    flags = rec.payload.get("flags") or []
    said = rec.type + (f" [{', '.join(flags)}]" if flags else "")
    if rec.payload.get("person"):  # what the person saw on the screen to take away
        said += f", reference {receipt_code(rec.compact)}"
    return said
