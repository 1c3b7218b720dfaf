"""The check-in runner: the pure flow (daemon/flow) driven by real events, its effects carried
out on the hardware and the outbox, its views pushed to the local UI.

One asyncio queue of events. The loop takes an event, steps the flow, publishes the new view,
and carries out the effects in order: quick ones inline (status light, alert, commit — a
commit is a few milliseconds of SQLite), slow ones (a fingerprint match, a photo, a staff PIN
check) as tasks that put their result back on the queue, so the screen never freezes.

Hardware signals (enclosure opened/closed, a finger on the glass, motion) and a Tick every
second are events too. The roster file written by the sync process is reloaded when it
changes. While the identify screen asks for the case reference, a task looks at a camera
preview frame every ``[camera] qr_interval_s`` for the QR code on an appointment letter.

May import: daemon.*, drivers.*.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from daemon import __version__, health
from daemon.app import KioskCore
from daemon.clock import rfc3339
from daemon.config import StaffConfig
from daemon.diskspace import MB, Level
from daemon.errors import DeviceKeyError, DriverError, KioskError, StorageError
from daemon.flow import FlowConfig, Stage, effects, events, initial, step, taps, view
from daemon.flow.machine import record_verify
from daemon.flow.state import Kiosk
from daemon.records import receipt_code
from daemon.roster import RosterInvalid, parse_roster
from daemon.ui.catalog import Catalogue
from daemon.ui.receipt import receipt_slip
from drivers.fingerprint.interface import NoFinger, PoorImage
from drivers.gpio import LightState, Pattern

log = logging.getLogger(__name__)

_LIGHTS = {
    "idle": LightState.READY,
    "busy": LightState.BUSY,
    "ok": LightState.SUCCESS,
    "alert": LightState.ATTENTION,
    "tamper": LightState.ATTENTION,
    "fault": LightState.FAULT,
}


def check_pin(pin: str, pin_hash: str) -> bool:
    """``pin_hash`` is ``pbkdf2$<iterations>$<salt b64>$<hash b64>`` (PBKDF2-SHA256)."""
    try:
        scheme, iterations, salt, expected = pin_hash.split("$")
        if scheme != "pbkdf2":
            return False
        got = hashlib.pbkdf2_hmac("sha256", pin.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(got, base64.b64decode(expected))
    except (ValueError, TypeError):
        return False


def check_staff(pin: str, staff: StaffConfig) -> str | None:
    """The staff id whose PIN this is: a member's id, ``"staff"`` for the shared PIN, or None.
    Every hash is checked, whichever matches, so the time taken does not say which one did."""
    found = None
    for member in staff.members:
        if check_pin(pin, member.pin_hash) and found is None:
            found = member.id
    if staff.pin_hash and check_pin(pin, staff.pin_hash) and found is None:
        found = "staff"
    return found


def hash_pin(pin: str, iterations: int = 200_000) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return (
        f"pbkdf2${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    )


class CheckinRunner:
    """Runs the flow on a :class:`KioskCore`; implements the UI's bridge."""

    def __init__(self, core: KioskCore, flow_config: FlowConfig | None = None) -> None:
        self.core = core
        self.queue: asyncio.Queue[events.Event] = asyncio.Queue()
        if flow_config is None:
            warn = FlowConfig().warn_s  # the warning's own 30 s
            flow_config = FlowConfig(
                qr_scan=core.cfg.camera.read_qr,
                session_timeout_s=core.cfg.staff.warn_after_s + warn,
            )
        self.state: Kiosk = initial(flow_config, now=time.monotonic())
        self._photos: dict[str, bytes] = {}
        self._subscribers: list[asyncio.Queue[dict[str, Any]]] = []
        self._last_view: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._roster_mtime = 0.0
        self.alerts: list[str] = []
        self.last_ui_beat = 0.0
        #: when this runner started (monotonic): with no browser heartbeat yet, how long the
        #: screen has been dark
        self.started = time.monotonic()
        self._catalogue: Catalogue | None = None  # for the printed slip's words, when needed
        #: templates taken in the enrolment under way, by finger (memory only, until sealed)
        self._enrolling: dict[str, bytes] = {}
        self.processed = 0
        self._scanner: asyncio.Task[None] | None = None
        self._qr = _QrMemory()
        self._qr_paused_until = 0.0
        #: part -> reason, for the health report (parts that failed since the start)
        self.faults: dict[str, str] = {}
        #: the boot camera probe: None not yet run, "ok", or the failure's reason
        self.camera_probe: str | None = None
        #: the data disk's level as last told to the flow (None: not yet read)
        self.disk: Level | None = None
        self._disk_unreadable = False
        #: the check-in under way as last noted in the outbox (Outbox.mark_session), or None
        self._marked: dict[str, Any] | None = None
        #: a check-in cut short by the last restart whose fault record could not be saved
        #: yet: its note must not be replaced by the next one
        self._owed = False

    # --- the UI bridge ------------------------------------------------------------------------
    def current_view(self) -> dict[str, Any]:
        v = view(self.state)
        hw = self.core.hardware
        if hw is not None and hw.simulated:
            v["simulated"] = True
        return v

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=64)
        self._subscribers.append(q)

        async def gen() -> AsyncIterator[dict[str, Any]]:
            try:
                while True:
                    yield await q.get()
            finally:
                with contextlib.suppress(ValueError):
                    self._subscribers.remove(q)

        return gen()

    async def tap(self, action: str, data: Mapping[str, Any]) -> None:
        hw = self.core.hardware
        if hw is not None:
            hw.display.dimmer.activity()  # a touch wakes the screen
        event = self.tap_event(action, data, time.monotonic())
        if event is not None:
            self.post(event)

    def ui_heartbeat(self) -> None:
        self.last_ui_beat = time.monotonic()

    @staticmethod
    def tap_event(action: str, data: Mapping[str, Any], now: float) -> events.Event | None:
        """Translate a tap from the page into the flow's event (None: nothing to do)."""
        return taps.tap_event(action, data, now)

    # --- events in ----------------------------------------------------------------------------
    def post(self, event: events.Event) -> None:
        if isinstance(event, events.PartFailed):
            self.faults[event.part] = event.reason
        self.queue.put_nowait(event)

    def health(self) -> dict[str, Any]:
        """What the boot self-test (``kioskctl selftest``) and an update's reboot wait need:
        no personal data, no case references, nothing from a session but "busy"."""
        core, hw = self.core, self.core.hardware
        beat = self.last_ui_beat
        return {
            "v": 1,
            "at": time.time(),
            "boot_id": core.clock.boot_id(),
            "pid": os.getpid(),
            "app": __version__,
            "boot_record_seq": core.boot_record.seq if core.boot_record else None,
            "faults": dict(sorted(self.faults.items())),
            "camera_probe": self.camera_probe,
            "simulated": list(hw.simulated) if hw is not None else [],
            "ui_beat_age_s": round(time.monotonic() - beat, 1) if beat else None,
            "up_s": round(time.monotonic() - self.started, 1),
            "busy": self.state.session is not None or self.state.staff is not None,
            "disk": str(self.disk) if self.disk is not None else None,
        }

    async def probe_camera(self) -> None:
        """Take one preview frame at start, so a dead or covered camera is a staff alert at
        boot rather than a missing photo during someone's check-in."""
        hw = self.core.hardware
        assert hw is not None
        if "camera" in self.faults:
            self.camera_probe = self.faults["camera"]
            return
        try:
            await asyncio.to_thread(hw.camera.probe)
        except (DriverError, KioskError) as exc:
            reason = exc.reason
            log.error("camera self-test failed: %s", exc, extra={"kiosk_reason": reason})
        except Exception as exc:  # a fault in the check must not pass for a working camera
            reason = "camera_check_error"
            log.error("camera self-test could not run (%s)", exc.__class__.__name__)
        else:
            self.camera_probe = "ok"
            return
        self.camera_probe = reason
        self.post(events.PartFailed(now=time.monotonic(), part="camera", reason=reason))

    def _watch_hardware(self, loop: asyncio.AbstractEventLoop) -> None:
        hw = self.core.hardware
        assert hw is not None

        def threadsafe(make: type[events.Event]) -> Any:
            def cb() -> None:  # pin-event thread
                loop.call_soon_threadsafe(self.post, make(now=time.monotonic()))

            return cb

        hw.gpio.tamper.on_open(threadsafe(events.EnclosureOpened))
        hw.gpio.tamper.on_close(threadsafe(events.EnclosureClosed))
        if hw.gpio.tamper.is_open:
            self.post(events.EnclosureOpened(now=time.monotonic()))

        def wake(_active: bool = True) -> None:
            loop.call_soon_threadsafe(hw.display.dimmer.activity)

        hw.gpio.finger_wake.subscribe(wake)
        if hw.gpio.motion is not None:
            hw.gpio.motion.subscribe(wake)
        for part, reason in hw.faults.items():
            self.post(events.PartFailed(now=time.monotonic(), part=part, reason=reason))

    def _reload_roster(self) -> None:
        path: Path = self.core.cfg.device.data_dir / "roster.json"
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return
        if mtime == self._roster_mtime:
            return
        self._roster_mtime = mtime
        try:
            roster = parse_roster(json.loads(path.read_bytes()), drop_bad_people=True)
        except (RosterInvalid, ValueError) as exc:
            log.error("the roster file is not valid (%s); keeping the previous one", exc)
            return
        if roster.dropped:  # kiosk-sync reports them in its heartbeat; paths only, no values
            log.warning(
                "%d roster entries left out (not valid): %s; those people check in at reception",
                len(roster.dropped),
                "; ".join(str(d) for d in roster.dropped[:10]),
            )
        self.post(events.RosterLoaded(now=time.monotonic(), roster=roster))

    # --- QR codes ----------------------------------------------------------------------------
    def _wants_code(self) -> bool:
        k = self.state
        s = k.session
        return (
            k.config.qr_scan
            and s is not None
            and s.stage == Stage.IDENTIFY
            and s.entry_field == "ref"
            and k.staff is None
            and time.monotonic() >= self._qr_paused_until
        )

    def _scan_if_wanted(self) -> None:
        if self._scanner is None and self.core.hardware is not None and self._wants_code():
            self._scanner = self._spawn(self._scan_codes())

    async def _scan_codes(self) -> None:
        """Look for a QR code while the case reference is asked for; post what is read.

        A code is posted once per showing: the same code again only after a second out of view
        (so going Back to the reference, letter still in hand, does not bounce the
        person straight to the date of birth, and a leaflet's QR code does not flash the error
        over and over). A camera that fails stops the looking for 30 s; the keypad is always
        there, and the photo step reports the fault if it lasts."""
        hw = self.core.hardware
        assert hw is not None
        interval = self.core.cfg.camera.qr_interval_s
        try:
            while self._wants_code():
                session = self.state.session
                assert session is not None
                try:
                    text = await asyncio.to_thread(hw.camera.read_code)
                except DriverError as exc:
                    self._qr_paused_until = time.monotonic() + 30.0
                    log.warning(
                        "QR codes are not being read for 30 s: the camera failed (%s); the "
                        "keypad still works", exc.reason, extra={"kiosk_reason": exc.reason},
                    )  # fmt: skip
                    return
                now = time.monotonic()
                if self._qr.should_post(session.id, text, now) and self._wants_code():
                    assert text is not None
                    self.post(events.QrScanned(now=now, text=text))
                await asyncio.sleep(interval)
        finally:
            self._scanner = None

    # --- effects out --------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _verify(self, eff: effects.VerifyFinger) -> None:
        core = self.core
        hw = core.hardware
        assert hw is not None and core.roster_key is not None
        threshold = core.cfg.fingerprint.threshold
        best: events.Event | None = None
        try:
            for sealed in eff.templates:
                template = core.roster_key.open_template(sealed.sealed)
                try:
                    match = await hw.fingerprint.verify(template, threshold=threshold)
                finally:
                    del template
                best = events.FingerResult(
                    now=time.monotonic(), matched=match.matched, score=match.score,
                    threshold=match.threshold,
                )  # fmt: skip
                if match.matched:
                    break
        except (NoFinger, PoorImage) as exc:
            best = events.FingerUnreadable(now=time.monotonic(), reason=exc.reason)
        except KioskError as exc:
            best = events.PartFailed(now=time.monotonic(), part="fingerprint", reason=exc.reason)
        if best is None:  # a roster entry without templates: nothing to match against
            best = events.FingerUnreadable(now=time.monotonic(), reason="no_template")
        self.post(best)

    async def _photo(self) -> None:
        core = self.core
        hw = core.hardware
        assert hw is not None and core.sealer is not None
        try:
            photo = await asyncio.to_thread(hw.camera.capture_still)
            sealed = core.sealer.seal_photo(photo.jpeg)
            del photo
        except (DriverError, KioskError) as exc:
            self.post(events.PartFailed(now=time.monotonic(), part="camera", reason=exc.reason))
            return
        self._photos[sealed.sha256] = sealed.blob
        self.post(events.PhotoTaken(now=time.monotonic(), photo=sealed.sha256, quality_ok=True))

    async def _staff(self, pin: str) -> None:
        staff_id = await asyncio.to_thread(check_staff, pin, self.core.cfg.staff)
        self.post(
            events.StaffAuthResult(now=time.monotonic(), ok=staff_id is not None, staff_id=staff_id)
        )

    async def _print(self, eff: effects.PrintReceipt) -> None:
        printer = self.core.hardware.printer if self.core.hardware else None
        if printer is None:
            return
        if self._catalogue is None:
            self._catalogue = Catalogue.load()
        now = dt.datetime.now(dt.UTC)  # spelled in UK time, as on the screen
        privacy = self.core.cfg.privacy.where(eff.lang)  # where the notice is: no person
        slip = receipt_slip(eff.lang, eff.receipt, eff.appointment, now, self._catalogue, privacy)
        try:
            await asyncio.to_thread(printer.print, slip)
            self.faults.pop("printer", None)  # paper fitted, jam cleared: healthy again
        except DriverError as exc:  # paper out, jam, unplugged: staff fix it; the person has
            # the same reference on the screen
            log.warning("receipt not printed: %s", exc.reason, extra={"kiosk_reason": exc.reason})
            self.post(events.PartFailed(now=time.monotonic(), part="printer", reason=exc.reason))
        except Exception as exc:  # a fault in making the slip is still only a printer fault
            log.error("receipt not printed (%s)", exc.__class__.__name__)
            self.post(events.PartFailed(now=time.monotonic(), part="printer", reason="printer"))

    async def _enrol_finger(self, eff: effects.EnrolFinger) -> None:
        """One finger for enrolment: the sensor takes several presses and merges them, refusing
        a finger that matches one already taken. The template stays in memory only."""
        hw = self.core.hardware
        assert hw is not None
        try:
            enrolment = await hw.fingerprint.enrol(others=tuple(self._enrolling.values()))
        except (DriverError, KioskError) as exc:
            self.post(
                events.FingerEnrolled(
                    now=time.monotonic(), finger=eff.finger, ok=False, reason=exc.reason
                )
            )
            return
        self._enrolling[eff.finger] = enrolment.template
        self.post(events.FingerEnrolled(now=time.monotonic(), finger=eff.finger, ok=True))

    def _commit(self, eff: effects.Commit) -> None:
        blob = self._photos.pop(eff.photo, None) if eff.photo else None
        blob_field = "photo"
        if eff.type == "finger_enrolment" and self._enrolling:
            templates, self._enrolling = self._enrolling, {}
            sealer = self.core.sealer  # None only when the kiosk was never provisioned
            try:
                if sealer is None:
                    raise DeviceKeyError("no sealing key is configured", reason="seal_key")
                blob = sealer.seal_enrolment(templates).blob
            except DeviceKeyError as exc:
                reason = exc.reason
                self.post(
                    events.CommitFailed(
                        now=time.monotonic(), commit_id=eff.commit_id, reason=reason
                    )
                )
                return
            blob_field = "templates"
        marked = self._marked
        ends = eff.session is not None and marked is not None and marked["session"] == eff.session
        try:
            record = self.core.commit(
                eff.type, eff.fields(), blob=blob, blob_field=blob_field, end_session=ends
            )
        except (StorageError, DeviceKeyError) as exc:  # a full disk; a token that stopped
            self.post(
                events.CommitFailed(
                    now=time.monotonic(), commit_id=eff.commit_id, reason=exc.reason
                )
            )
            return
        if ends:
            self._marked = None  # gone with the record, in the same transaction
        self.post(
            events.RecordCommitted(
                now=time.monotonic(),
                commit_id=eff.commit_id,
                receipt=receipt_code(record.compact),
                wall=self.core.clock.wall(),
                clock_synced=self.core.clock.synced(),
            )
        )

    def _carry_out(self, eff: effects.Effect) -> None:
        hw = self.core.hardware
        assert hw is not None
        if isinstance(eff, effects.VerifyFinger):
            self._spawn(self._verify(eff))
        elif isinstance(eff, effects.TakePhoto):
            self._spawn(self._photo())
        elif isinstance(eff, effects.DiscardPhoto):
            self._photos.pop(eff.photo, None)
        elif isinstance(eff, effects.Commit):
            self._commit(eff)
        elif isinstance(eff, effects.StatusLight):
            hw.gpio.light.show(_LIGHTS.get(eff.state, LightState.READY))
        elif isinstance(eff, effects.AlertStaff):
            self.alerts.append(eff.reason)
            hw.gpio.buzzer.play(Pattern.ATTENTION)
            log.warning("staff alert: %s", eff.reason, extra={"kiosk_reason": eff.reason})
        elif isinstance(eff, effects.ClearAlerts):
            self.alerts.clear()
        elif isinstance(eff, effects.CheckStaffCredential):
            self._spawn(self._staff(eff.pin))
        elif isinstance(eff, effects.EnrolFinger):
            self._spawn(self._enrol_finger(eff))
        elif isinstance(eff, effects.DiscardEnrolment):
            self._enrolling.clear()
        elif isinstance(eff, effects.PrintReceipt):
            if hw.printer is not None:  # optional: no printer, no slip, nothing else changes
                self._spawn(self._print(eff))
        else:
            log.error("unknown effect %s", type(eff).__name__)

    def _publish(self) -> None:
        """Push the view to the page when it changed (a tick that changes nothing visible must
        not re-render the screen under a person's finger)."""
        v = self.current_view()
        if v == self._last_view:
            return
        self._last_view = v
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(v)

    # --- the loop -----------------------------------------------------------------------------
    def _disk_changed(self) -> events.DiskSpace | None:
        """The DiskSpace event to step when the data disk's level changed since the flow was
        last told. Asked before every event, so the flow decides each step (a Start, the
        photo, the commit) on a reading at most 0.5 s old; the outbox's amortised reading
        makes that free (no system call per event or per check-in)."""
        try:
            level, free = self.core.disk_level()
        except StorageError as exc:
            if not self._disk_unreadable:  # once; the commit reports a real failure
                log.error("cannot read the data disk's free space: %s", exc.reason)
            self._disk_unreadable = True
            return None
        self._disk_unreadable = False
        if level == self.disk:
            return None
        previous, self.disk = self.disk, level
        if level == Level.OK and previous is not None:
            log.info("data disk back to normal: %d MB free", free // MB)
        elif level != Level.OK:
            log.warning(
                "data disk level %s: %d MB free (docs/faults.md)", level, free // MB,
                extra={"kiosk_reason": f"disk_{level}"},
            )  # fmt: skip
        return events.DiskSpace(now=time.monotonic(), level=str(level))

    def _step(self, event: events.Event) -> None:
        self.state, effs = step(self.state, event)
        self.processed += 1
        self._publish()
        for eff in effs:
            self._carry_out(eff)
        self._note_session()

    # --- a check-in a restart would cut short -------------------------------------------------
    def _session_mark(self) -> dict[str, Any] | None:
        """What the record of the check-in under way would say if the kiosk restarted now
        (who, how verified so far, in which language; :meth:`_note_session` adds when they
        were identified), or None when there is nothing to lose: nobody identified yet, or
        the check-in's own record is being or was saved."""
        k = self.state
        s = k.session
        if s is None or s.person is None or s.commit_id is not None or s.committed:
            return None
        return {"session": s.id, "person": s.person.ref, "lang": k.lang,
                "verify": record_verify(s, k)}  # fmt: skip

    def _note_session(self) -> None:
        """Keep the outbox's note of the check-in under way in step with the flow: written
        when a person is identified (and when their verification changes), removed when the
        check-in ends without a record of its own. A note that cannot be written is logged,
        never a reason to stop the check-in."""
        want = self._session_mark()
        marked = self._marked
        if want is not None:  # when they were identified, in the terms a record uses
            if marked is not None and marked["session"] == want["session"]:
                want["at"], want["clock"] = marked["at"], marked["clock"]
            else:
                clock = self.core.clock
                want["at"] = rfc3339(clock.wall())
                want["clock"] = {"synced": clock.synced(), "boot_id": clock.boot_id(),
                                 "mono_ns": clock.monotonic_ns()}  # fmt: skip
            if want == marked:
                return
        elif marked is None:
            return
        if self._owed:
            self._resume_interrupted()  # try again; its note is the only copy
            if self._owed:
                return
        outbox = self.core.outbox
        assert outbox is not None
        try:
            if want is None:
                outbox.clear_session()
            else:
                outbox.mark_session(want)
        except StorageError as exc:
            log.error(
                "could not note the check-in under way (%s): a restart now would leave no "
                "record of it",
                exc.reason,
                extra={"kiosk_reason": exc.reason},
            )
        self._marked = want

    def _resume_interrupted(self) -> None:
        """A check-in the last run noted and never saved (a crash, a power cut, an update in
        the middle of it): save a ``fault`` record for the person, so an officer follows it
        up and the visit counts, and alert the staff. Exactly once: the record and the
        note's removal are one transaction."""
        outbox = self.core.outbox
        assert outbox is not None
        body = outbox.open_session()
        if body is None:
            return
        person, verify = body.get("person"), body.get("verify")
        if not isinstance(person, str) or not isinstance(verify, dict):
            outbox.clear_session()  # not ours to read: nothing to say about anyone
            return
        flags = ["fault", "no_photo"]  # the photo, if one was taken, was in memory only
        if verify.get("method") != "fingerprint":
            flags.insert(0, "id_review")
        # ``identified``: when the person was at the kiosk (this record is made later, at
        # the restart, perhaps the next day): the API credits the visit to that time
        identified = {"at": body.get("at"), "clock": body.get("clock")}
        detail = {"part": "kiosk", "reason": "restarted", "interrupted_checkin": True,
                  "lang": body.get("lang"), "identified": identified}  # fmt: skip
        try:
            self.core.commit(
                "fault",
                {"person": person, "verify": verify, "flags": flags, "detail": detail},
                end_session=True,
            )
        except (StorageError, DeviceKeyError) as exc:  # kept: tried again before the next
            self._owed = True  # check-in's note would replace it, and at the next start
            log.error("a check-in cut short by a restart could not be saved yet (%s)",
                      exc.reason, extra={"kiosk_reason": exc.reason})  # fmt: skip
            return
        self._owed = False
        log.warning(
            "a check-in was cut short by a restart; saved as a fault for an officer to follow up",
            extra={"kiosk_reason": "interrupted_checkin"},
        )
        self.post(events.PartFailed(now=time.monotonic(), part="kiosk", reason="restarted"))

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._resume_interrupted()
        self._watch_hardware(loop)
        self._reload_roster()
        disk = self._disk_changed()
        if disk is not None:
            self._step(disk)
        ticker = asyncio.create_task(self._tick(stop))
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(self.queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                try:
                    done, _ = await asyncio.wait(
                        {getter, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:  # cancelled too: leave no waiter behind
                    stopper.cancel()
                    if not getter.done():
                        getter.cancel()
                if getter not in done or getter.cancelled():
                    break
                event = getter.result()
                disk = self._disk_changed()
                if disk is not None:
                    self._step(disk)
                self._step(event)
                self._scan_if_wanted()
        finally:
            ticker.cancel()
            for t in [ticker, *self._tasks]:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def _tick(self, stop: asyncio.Event) -> None:
        hw = self.core.hardware
        while not stop.is_set():
            await asyncio.sleep(1.0)
            self._reload_roster()
            self.post(events.Tick(now=time.monotonic()))
            if hw is not None:
                try:
                    hw.display.dimmer.tick()  # dim when nobody has been there for a while
                except DriverError as exc:
                    self.post(events.PartFailed(now=time.monotonic(), part="display",
                                                reason=exc.reason))  # fmt: skip


class _QrMemory:
    """Which code was last posted in which session, and since when the camera has seen it gone.
    The same code counts as shown again only after ``away_s`` seen out of view: a decoder
    misses the odd frame of a code that never moved, and time spent on another screen is not
    time seen (see :meth:`CheckinRunner._scan_codes`)."""

    def __init__(self, away_s: float = 1.0) -> None:
        self.away_s = away_s
        self.session = -1
        self.text: str | None = None
        self.gone_since: float | None = None

    def should_post(self, session: int, text: str | None, now: float) -> bool:
        if session != self.session:
            self.session, self.text, self.gone_since = session, None, None
        if text is None:
            if self.gone_since is None:
                self.gone_since = now
            return False
        if text == self.text:
            shown_again = self.gone_since is not None and now - self.gone_since >= self.away_s
            self.gone_since = None
            return shown_again
        self.text, self.gone_since = text, None
        return True


async def serve_checkins(core: KioskCore, stop: asyncio.Event) -> None:
    """kiosk.service's work once the core is open: the flow and the local UI on 127.0.0.1.

    The start URL (it carries the per-boot token) goes to ``<data_dir>/ui-url``, mode 0640,
    for kiosk-ui.service (group kiosk). The spoken prompts are the ones installed with the
    software (daemon.ui.audio.INSTALLED_DIR, made by firmware/rootfs/install-kiosk.sh)."""
    from daemon.ui.server import AUDIO_DIR, create_ui_app, new_token, serve_ui
    from daemon.ui.shell import write_start_url

    runner = CheckinRunner(core)
    token = new_token()
    app = create_ui_app(runner, token=token, audio_dir=AUDIO_DIR)
    ui = await serve_ui(app, core.cfg.ui.port)
    url_file = core.cfg.device.data_dir / "ui-url"
    write_start_url(url_file, ui.url(token))
    log.info("local UI on 127.0.0.1:%d", ui.port)
    health_file = health.path_for(core.cfg.device.data_dir)
    side = [
        asyncio.create_task(runner.probe_camera()),
        asyncio.create_task(health.keep_writing(health_file, runner.health, stop)),
    ]
    try:
        await runner.run(stop)
    finally:
        for t in side:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        health_file.unlink(missing_ok=True)
        await ui.close()
        url_file.unlink(missing_ok=True)
