"""The real check-in flow with scripted effects, for developing and testing the UI alone.

:class:`PreviewBridge` implements :class:`daemon.ui.bridge.UiBridge` over the pure state
machine in :mod:`daemon.flow` (the same ``step`` and ``view`` kiosk.service runs) and the same
tap → event mapping as :class:`daemon.kiosk.CheckinRunner`, but carries out the effects
itself: a finger matches or not when a test says so (:meth:`PreviewBridge.present_finger`),
a photo is "taken" at once, a commit lands in :attr:`PreviewBridge.records` (plain dicts:
nothing signed, nothing sent), the staff PIN is :data:`STAFF_PIN`. Time is a fake monotonic
clock moved by :meth:`PreviewBridge.tick`. The roster is synthetic (:func:`preview_roster`).

:class:`LiveUi` serves the UI over any bridge from a background thread, for synchronous
callers (browser tests, the benchmark, screenshots).

It is a development seam only; nothing here runs on a kiosk. Synthetic data only.

May import: the standard library, starlette, daemon.flow, daemon.roster, daemon.kiosk (for
the tap mapping, imported lazily) and daemon.ui.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as dt
import json
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette

from daemon.flow import FlowConfig, Kiosk, effects, events, initial, step, view
from daemon.records import receipt_code
from daemon.roster import Roster, dob_hmac, parse_roster
from daemon.ui.bridge import View
from daemon.ui.heartbeat import HeartbeatWatch
from daemon.ui.server import (
    AUDIO_DIR,
    LOST_AFTER_S,
    UiServer,
    create_ui_app,
    new_token,
    serve_ui,
)

T = TypeVar("T")

STAFF_PIN = "2468"
SALT = bytes(range(16, 48))
#: Keypad forms (case-reference digits, DDMMYYYY) of the synthetic people.
PERSON = ("123456", "01021990")  # appointment, one message, one own question
PLAIN = ("654321", "15071985")  # no appointment, no message
NO_TEMPLATE = ("111222", "03031970")  # no fingerprint enrolled
DECLINED = ("222333", "04041980")  # chose not to give fingerprints (roster biometric)


def _person(
    ref: str,
    dob: str,
    *,
    appointment: bool,
    templates: bool = True,
    extra: bool = False,
    declined: bool = False,
) -> dict[str, Any]:
    return ({"biometric": "declined"} if declined else {}) | {
        "ref": ref,
        "dob_hmac": base64.b64encode(dob_hmac(SALT, dt.date.fromisoformat(dob))).decode(),
        "templates": [{"finger": "right_index", "sealed": base64.b64encode(b"t").decode()}]
        if templates
        else [],
        "next_appointment": {
            "at": "2026-11-30T10:30:00Z",
            "place_en": "Room 2, ground floor",
            "place_cy": "Ystafell 2, llawr gwaelod",
        }
        if appointment
        else None,
        "messages": [
            {
                "id": "m1",
                "en": "Please bring your payslips next time.",
                "cy": "Dewch â’ch slipiau cyflog y tro nesaf os gwelwch yn dda.",
            }
        ]
        if extra
        else [],
        "questions": [
            {
                "id": "course_attended",
                "en": "Did you go to your course this week?",
                "cy": "Aethoch chi i’ch cwrs yr wythnos hon?",
                "kind": "yes_no",
                "flag_if": "no",
            }
        ]
        if extra
        else [],
    }


def preview_roster() -> Roster:
    """Four synthetic people (see :data:`PERSON`, :data:`PLAIN`, :data:`NO_TEMPLATE`,
    :data:`DECLINED`)."""
    return parse_roster(
        {
            "office": "preview",
            "generated_at": "2026-11-23T08:00:00Z",
            "dob_salt": base64.b64encode(SALT).decode(),
            "people": [
                _person("CR-123456", "1990-02-01", appointment=True, extra=True),
                _person("CR-654321", "1985-07-15", appointment=False),
                _person("CR-111222", "1970-03-03", appointment=True, templates=False),
                _person(
                    "CR-222333", "1980-04-04", appointment=True, templates=False, declined=True
                ),
            ],
        }
    )


class PreviewBridge:
    """The real flow, scripted effects. All methods on one event loop thread."""

    def __init__(self, *, simulated: bool = True, config: FlowConfig | None = None) -> None:
        self.now = 1000.0
        self.state: Kiosk = initial(config or FlowConfig(), preview_roster(), now=self.now)
        self.simulated = simulated
        self.records: list[dict[str, Any]] = []
        self.alerts: list[str] = []
        self.heartbeats = 0
        self.taps: list[tuple[str, dict[str, Any]]] = []
        self.verifying = False
        self.enrolling: list[str] = []  # EnrolFinger asked, not yet answered
        self._queues: list[asyncio.Queue[View]] = []

    # --- UiBridge ---------------------------------------------------------------------------
    def current_view(self) -> View:
        v = view(self.state)
        if self.simulated:
            v["simulated"] = True
        return v

    def subscribe(self) -> AsyncIterator[View]:
        queue: asyncio.Queue[View] = asyncio.Queue()
        self._queues.append(queue)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[View]) -> AsyncIterator[View]:
        try:
            while True:
                yield await queue.get()
        finally:
            if queue in self._queues:
                self._queues.remove(queue)

    async def tap(self, action: str, data: Mapping[str, Any]) -> None:
        from daemon.kiosk import CheckinRunner

        self.taps.append((action, dict(data)))
        event = CheckinRunner.tap_event(action, data, self._advance(0.5))
        if event is not None:
            self.send(event)

    def ui_heartbeat(self) -> None:
        self.heartbeats += 1

    # --- test control, in domain terms ------------------------------------------------------
    def send(self, event: events.Event) -> None:
        """Step the flow with ``event``, publish the view if it changed, carry out effects."""
        before = self.state
        self.state, effs = step(self.state, event)
        if self.state is not before:
            self._publish()
        for eff in effs:
            self._carry_out(eff)

    def present_finger(self, *, matches: bool) -> None:
        """A finger on the sensor while a match is running: it matches or not."""
        if not self.verifying:
            return
        self.verifying = False
        self.send(
            events.FingerResult(
                now=self._advance(1.0), matched=matches, score=150 if matches else 12, threshold=60
            )
        )

    def no_finger(self) -> None:
        """Nobody put a finger on the sensor before its time-out."""
        if self.verifying:
            self.verifying = False
            self.send(events.FingerUnreadable(now=self._advance(5.0), reason="no_finger"))

    def tick(self, seconds: float) -> None:
        """Let ``seconds`` pass (the runner's one-second Tick)."""
        self.send(events.Tick(now=self._advance(seconds)))

    def warn_timeout(self) -> None:
        """Idle until the flow shows its time-out warning."""
        cfg = self.state.config
        self.tick(cfg.session_timeout_s - cfg.warn_s + 1)

    def enter_staff_mode(self) -> None:
        self.send(events.StaffRequested(now=self._advance(0.5)))

    def fault(self, part: str = "camera") -> None:
        self.send(events.PartFailed(now=self._advance(0.5), part=part, reason="device_timeout"))

    def open_enclosure(self) -> None:
        self.send(events.EnclosureOpened(now=self._advance(0.5)))

    def close_enclosure(self) -> None:
        self.send(events.EnclosureClosed(now=self._advance(0.5)))

    # --- internals --------------------------------------------------------------------------
    def _advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now

    def _carry_out(self, eff: effects.Effect) -> None:
        if isinstance(eff, effects.VerifyFinger):
            self.verifying = True
        elif isinstance(eff, effects.TakePhoto):
            self.send(events.PhotoTaken(now=self._advance(0.3), photo="ab" * 32))
        elif isinstance(eff, effects.Commit):
            self.records.append({"type": eff.type, **eff.fields()})
            # no signed record here: a reference made the same way from the preview's dict
            receipt = receipt_code(json.dumps(self.records[-1], sort_keys=True, default=str))
            self.send(
                events.RecordCommitted(
                    now=self._advance(0.01), commit_id=eff.commit_id, receipt=receipt
                )
            )
        elif isinstance(eff, effects.CheckStaffCredential):
            ok = eff.pin == STAFF_PIN
            self.send(
                events.StaffAuthResult(
                    now=self._advance(0.2), ok=ok, staff_id="staff" if ok else None
                )
            )
        elif isinstance(eff, effects.AlertStaff):
            self.alerts.append(eff.reason)
        elif isinstance(eff, effects.ClearAlerts):
            self.alerts.clear()
        elif isinstance(eff, effects.EnrolFinger):
            self.enrolling.append(eff.finger)  # the test or the preview takes the finger

    def take_enrol_finger(self, *, ok: bool = True, reason: str = "") -> None:
        """The finger being enrolled was taken (or not, for ``reason``)."""
        finger = self.enrolling.pop(0)
        self.send(
            events.FingerEnrolled(now=self._advance(2.0), finger=finger, ok=ok, reason=reason)
        )

    def _publish(self) -> None:
        v = self.current_view()
        for queue in list(self._queues):
            queue.put_nowait(copy.deepcopy(v))


class LiveUi:
    """Serve the UI over ``bridge`` from a background thread with its own event loop, for
    synchronous callers (browser tests, the benchmark, screenshots). Not used by the daemon,
    which serves the UI on its own loop.

    ``start()`` returns the start URL (with a fresh token); ``call(fn, *args)`` runs ``fn``
    on the server's loop thread (the bridge is not thread-safe) and returns its result;
    ``stop()`` closes the server and joins the thread (5 s timeout); ``start()`` again serves
    the same address and token (the daemon coming back, to a page still open). Context
    manager. ``configure(app)`` may add middleware before the server starts (the bench counts
    bytes); ``lost_after_s`` is passed to :func:`create_ui_app`.
    """

    def __init__(
        self,
        bridge: PreviewBridge,
        *,
        audio_dir: Path | None = None,
        configure: Callable[[Starlette], None] | None = None,
        watch: HeartbeatWatch | None = None,
        lost_after_s: float = LOST_AFTER_S,
    ) -> None:
        self.bridge = bridge
        self.watch = watch
        self.lost_after_s = lost_after_s
        self.port = 0
        self.audio_dir = audio_dir
        self.configure = configure
        self.token = new_token()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: UiServer | None = None
        self._stopped: asyncio.Event | None = None

    def start(self, timeout_s: float = 10.0) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def run() -> None:
            self._stopped = asyncio.Event()
            try:
                app = create_ui_app(
                    self.bridge,
                    token=self.token,
                    audio_dir=self.audio_dir or AUDIO_DIR,
                    watch=self.watch,
                    lost_after_s=self.lost_after_s,
                )
                if self.configure is not None:
                    self.configure(app)
                self._server = await serve_ui(app, self.port)
                self.port = self._server.port
                self.url = self._server.url(self.token)
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            await self._stopped.wait()
            await self._server.close()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            try:
                self._loop.run_until_complete(run())
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=main, name="ui-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise TimeoutError("the UI server did not start in time")
        if failure:
            raise failure[0]
        return self.url

    def call(self, fn: Callable[..., T], *args: Any, timeout_s: float = 5.0) -> T:
        assert self._loop is not None
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            try:
                box.append((True, fn(*args)))
            except BaseException as exc:
                box.append((False, exc))
            done.set()

        self._loop.call_soon_threadsafe(run)
        if not done.wait(timeout_s):
            raise TimeoutError("the UI server loop did not answer")
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(5.0)
        self._thread = None

    def __enter__(self) -> LiveUi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _serve_forever(port: int, audio_dir: Path) -> None:
    bridge = PreviewBridge()
    token = new_token()
    server = await serve_ui(create_ui_app(bridge, token=token, audio_dir=audio_dir), port)
    print(f"kiosk UI preview (the real flow, simulated effects): {server.url(token)}", flush=True)
    print(f"case reference {PERSON[0]}, date of birth {PERSON[1]}; staff PIN {STAFF_PIN}")
    try:
        while True:  # a finger "matches" 1.5 s after the flow asks for one; time passes
            await asyncio.sleep(0.5)
            if bridge.verifying:
                await asyncio.sleep(1.5)
                bridge.present_finger(matches=True)
            bridge.tick(0.5)
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m daemon.ui.preview [--port 8088] [--audio DIR]``: serve the UI over the
    preview flow on 127.0.0.1 for a person to click through (Ctrl-C to stop)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m daemon.ui.preview", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--audio", type=Path, default=AUDIO_DIR, help="from daemon.ui.audio")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.port, args.audio))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
