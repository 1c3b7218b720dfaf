"""A scripted stand-in for the check-in flow, for developing and testing the UI alone.

:class:`PreviewBridge` implements :class:`daemon.ui.bridge.UiBridge` with a small state
machine that produces views in the shape docs/ui.md documents, plus a test-control API in
domain terms (``present_finger``, ``warn_timeout``, ``enter_staff_mode``, ``fault``). It keeps
the check-ins it would have recorded in :attr:`PreviewBridge.records` (plain dicts, nothing
signed, nothing sent). It is a development seam only: the daemon mounts the UI on the real
flow (daemon.flow); nothing here is used in production.

All methods run on one event loop thread. Synthetic data only.

May import: the standard library and daemon.ui (server included).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from starlette.applications import Starlette

from daemon.ui.bridge import View
from daemon.ui.heartbeat import HeartbeatWatch
from daemon.ui.server import AUDIO_DIR, UiServer, create_ui_app, new_token, serve_ui

T = TypeVar("T")

MAX_FINGER_ATTEMPTS = 3


@dataclass(frozen=True)
class PreviewPerson:
    """A synthetic person on the preview roster."""

    number: str
    dob: str  # DDMMYYYY as typed on the keypad
    appointment: str | None  # ISO local date-time of the next appointment
    messages: tuple[Mapping[str, str], ...] = ()


DEFAULT_QUESTIONS: tuple[dict[str, Any], ...] = (
    {
        "id": "address",
        "text": {
            "en": "Have you changed your address?",
            "cy": "Ydych chi wedi newid eich cyfeiriad?",
        },
        "escalate_on": "yes",
    },
    {
        "id": "police",
        "text": {
            "en": "Have you had any contact with the police?",
            "cy": "Ydych chi wedi cael unrhyw gysylltiad â’r heddlu?",
        },
        "escalate_on": "yes",
    },
)
DEFAULT_PEOPLE: tuple[PreviewPerson, ...] = (
    PreviewPerson(
        number="123456",
        dob="01021990",
        appointment="2026-11-30T10:30",
        messages=(
            {
                "en": "Please bring your payslips next time.",
                "cy": "Dewch â’ch slipiau cyflog y tro nesaf os gwelwch yn dda.",
            },
        ),
    ),
    PreviewPerson(number="654321", dob="15071985", appointment=None),
)


@dataclass
class _Session:
    person: PreviewPerson | None = None
    digits: str = ""
    error: str | None = None
    attempts: int = 0
    fallback: bool = False
    answers: dict[str, str] = field(default_factory=dict)
    question: int = 0
    message: int = 0
    escalate: bool = False


class PreviewBridge:
    """The scripted flow. Screens: idle → identify → fingerprint (→ fallback after
    :data:`MAX_FINGER_ATTEMPTS` misses) → photo → questions → messages → confirm → done;
    ``help`` or a flagged answer → see_reception (escalation) after the record is kept."""

    def __init__(
        self,
        *,
        people: tuple[PreviewPerson, ...] = DEFAULT_PEOPLE,
        questions: tuple[dict[str, Any], ...] = DEFAULT_QUESTIONS,
        simulated: bool = True,
    ) -> None:
        self.people = {p.number: p for p in people}
        self.questions = questions
        self.simulated = simulated
        self.records: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.taps: list[tuple[str, dict[str, Any]]] = []
        self._queues: list[asyncio.Queue[View]] = []
        self._lang = "en"
        self._large = False
        self._timeout: int | None = None
        self._screen = "idle"
        self._extra: dict[str, Any] = {}
        self._s = _Session()
        self._published = False

    # --- UiBridge ---------------------------------------------------------------------------
    def current_view(self) -> View:
        view: View = {
            "screen": self._screen,
            "lang": self._lang,
            "large_text": self._large,
            "simulated": self.simulated,
            **copy.deepcopy(self._extra),
        }
        if self._timeout is not None:
            view["timeout"] = {"warning": True, "remaining_s": self._timeout}
        return view

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
        self.taps.append((action, dict(data)))
        before = self.current_view()
        self._published = False
        handler = getattr(self, f"_tap_{action}", None)
        if handler is not None:
            handler(data)
        if not self._published and self.current_view() != before:
            self._publish()

    def ui_heartbeat(self) -> None:
        self.heartbeats += 1

    # --- test control -----------------------------------------------------------------------
    def present_finger(self, *, matches: bool) -> None:
        """A finger is placed and lifted; the 1:1 verify matches or not."""
        if self._screen != "fingerprint":
            return
        s = self._s
        if matches:
            self._go("photo", phase="notice")
            return
        s.attempts += 1
        if s.attempts >= MAX_FINGER_ATTEMPTS:
            s.fallback = True
            self._go("fallback", reason="fingerprint", entry={"kind": "dob", "digits": ""})
        else:
            self._go(
                "fingerprint",
                phase="retry",
                attempt=s.attempts + 1,
                max_attempts=MAX_FINGER_ATTEMPTS,
            )

    def warn_timeout(self, seconds: int) -> None:
        """The flow's inactivity timer would end the session in ``seconds``."""
        self._timeout = seconds
        self._publish()

    def enter_staff_mode(self) -> None:
        self._s = _Session()
        self._go("staff", queue_depth=len(self.records), faults=[])

    def fault(self, reason: str = "fault") -> None:
        """A device fault or tamper: ``reason`` is ``fault`` or ``tamper``."""
        self._go("see_reception", reason=reason)

    # --- taps -------------------------------------------------------------------------------
    def _tap_start(self, data: Mapping[str, Any]) -> None:
        self._lang = str(data["lang"])
        self._s = _Session()
        self._go("identify", digits="", length=6)

    def _tap_language(self, data: Mapping[str, Any]) -> None:
        self._lang = str(data["lang"])

    def _tap_large_text(self, data: Mapping[str, Any]) -> None:
        self._large = bool(data.get("on", not self._large))

    def _tap_more_time(self, data: Mapping[str, Any]) -> None:
        self._timeout = None

    def _tap_help(self, data: Mapping[str, Any]) -> None:
        if self._screen in ("idle", "staff"):
            return
        self._record(escalation=True, requested=True)
        self._go("see_reception", reason="requested")

    def _entry(self) -> dict[str, Any] | None:
        if self._screen == "identify":
            return self._extra
        entry = self._extra.get("entry")
        return entry if self._screen == "fallback" and isinstance(entry, dict) else None

    def _tap_key(self, data: Mapping[str, Any]) -> None:
        entry = self._entry()
        limit = 6 if self._screen == "identify" else 8
        if entry is not None and len(entry["digits"]) < limit:
            entry["digits"] += str(data["digit"])
            entry.pop("error", None)

    def _tap_delete(self, data: Mapping[str, Any]) -> None:
        entry = self._entry()
        if entry is not None:
            entry["digits"] = entry["digits"][:-1]

    def _tap_restart(self, data: Mapping[str, Any]) -> None:
        self._go("identify", digits="", length=6)

    def _tap_submit(self, data: Mapping[str, Any]) -> None:
        entry = self._entry()
        if entry is None:
            return
        s = self._s
        if self._screen == "identify":
            person = self.people.get(entry["digits"])
            if person is None:
                self._go("identify", digits="", length=6, error="not_found")
                return
            s.person = person
            self._go("fingerprint", phase="place", attempt=1, max_attempts=MAX_FINGER_ATTEMPTS)
        elif s.person is not None and entry["digits"] == s.person.dob:
            self._go("photo", phase="notice", fallback=True)
        else:
            entry["digits"] = ""
            entry["error"] = "no_match"

    def _tap_photo(self, data: Mapping[str, Any]) -> None:
        if self._screen == "photo":
            self._next_question()

    def _next_question(self) -> None:
        s = self._s
        if s.question < len(self.questions):
            q = self.questions[s.question]
            self._go(
                "questions",
                index=s.question + 1,
                count=len(self.questions),
                question={"id": q["id"], "text": q["text"], "kind": "yes_no"},
            )
        else:
            self._next_message()

    def _tap_answer(self, data: Mapping[str, Any]) -> None:
        if self._screen != "questions":
            return
        s = self._s
        q = self.questions[s.question]
        value = str(data.get("value"))
        s.answers[q["id"]] = value
        if value == q.get("escalate_on"):
            s.escalate = True
        s.question += 1
        self._next_question()

    def _next_message(self) -> None:
        s = self._s
        assert s.person is not None
        if s.message < len(s.person.messages):
            self._go(
                "messages",
                index=s.message + 1,
                count=len(s.person.messages),
                message={"id": f"m{s.message + 1}", "text": dict(s.person.messages[s.message])},
            )
        else:
            self._go("confirm")

    def _tap_read(self, data: Mapping[str, Any]) -> None:
        if self._screen == "messages":
            self._s.message += 1
            self._next_message()

    def _tap_finish(self, data: Mapping[str, Any]) -> None:
        s = self._s
        if self._screen != "confirm" or s.person is None:
            return
        self._record(escalation=s.escalate, requested=False)
        if s.escalate:
            self._go("see_reception", reason="escalation")
            return
        appointment = {"when": s.person.appointment} if s.person.appointment else None
        self._go("done", appointment=appointment, flagged=s.fallback)

    def _tap_continue(self, data: Mapping[str, Any]) -> None:
        if self._screen in ("done", "see_reception"):
            self._lang = "en"
            self._large = False
            self._s = _Session()
            self._go("idle")

    def _tap_staff_exit(self, data: Mapping[str, Any]) -> None:
        if self._screen == "staff":
            self._go("idle")

    # --- internals --------------------------------------------------------------------------
    def _record(self, *, escalation: bool, requested: bool) -> None:
        s = self._s
        self.records.append(
            {
                "type": "checkin",
                "person": s.person.number if s.person else None,
                "lang": self._lang,
                "fallback": s.fallback,
                "answers": dict(s.answers),
                "escalation": escalation,
                "requested_contact": requested,
            }
        )

    def _go(self, screen: str, **extra: Any) -> None:
        self._screen = screen
        self._extra = extra
        self._timeout = None
        self._publish()

    def _publish(self) -> None:
        self._published = True
        view = self.current_view()
        for queue in list(self._queues):
            queue.put_nowait(copy.deepcopy(view))


class LiveUi:
    """Serve the UI over ``bridge`` from a background thread with its own event loop, for
    synchronous callers (browser tests, the benchmark, screenshots). Not used by the daemon,
    which serves the UI on its own loop.

    ``start()`` returns the start URL (with a fresh token); ``call(fn, *args)`` runs ``fn``
    on the server's loop thread (the bridge is not thread-safe) and returns its result;
    ``stop()`` closes the server and joins the thread (5 s timeout). Context manager.
    ``configure(app)`` may add middleware before the server starts (the bench counts bytes).
    """

    def __init__(
        self,
        bridge: PreviewBridge,
        *,
        audio_dir: Path | None = None,
        configure: Callable[[Starlette], None] | None = None,
        watch: HeartbeatWatch | None = None,
    ) -> None:
        self.bridge = bridge
        self.watch = watch
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
                )
                if self.configure is not None:
                    self.configure(app)
                self._server = await serve_ui(app, 0)
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
