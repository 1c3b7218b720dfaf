"""The seam between the check-in flow (owned by the daemon) and the touchscreen UI.

The daemon owns the state; the UI only renders views pushed to it and sends taps back. The
composition root (daemon/app.py) adapts the flow to :class:`UiBridge`; the UI server
(daemon/ui/server.py) is the only consumer.

A *view* is the JSON-serialisable dict of ``daemon.flow``'s ``view(state)``: at least
``screen`` (one of :class:`Screen`) and ``lang`` (``en``/``cy``), optionally ``large_text``,
``simulated`` and the fields each screen uses (docs/ui.md lists them). A *tap* is an action
name from :data:`TAP_ACTIONS` and a small flat dict of data.

May import: the standard library and daemon.errors.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from daemon.errors import KioskError

View = dict[str, Any]


class Screen(enum.StrEnum):
    """Every screen the flow can ask for (the same names as the flow's screen enum)."""

    IDLE = "idle"
    IDENTIFY = "identify"
    FINGERPRINT = "fingerprint"
    PHOTO = "photo"
    QUESTIONS = "questions"
    MESSAGES = "messages"
    CONFIRM = "confirm"
    DONE = "done"
    FALLBACK = "fallback"
    SEE_RECEPTION = "see_reception"
    STAFF = "staff"


# What the page may send. Semantics (docs/ui.md): the flow decides what each means in the
# current state and ignores taps that do not apply.
TAP_ACTIONS: frozenset[str] = frozenset(
    {
        "start",  # idle: {"lang": "en"|"cy"} begin a check-in in that language
        "language",  # any screen: {"lang": "en"|"cy"} switch language now
        "large_text",  # any screen: {"on": bool}
        "help",  # any screen: "I need to speak to someone"
        "more_time",  # time-out warning: extend
        "key",  # identify / fallback entry: {"digit": "0".."9"}
        "delete",  # identify / fallback entry: remove the last digit
        "submit",  # identify / fallback entry: the number is complete
        "back",  # identify: back to the case reference; questions: previous question
        "restart",  # identify: back to the case reference (same as back)
        "cancel",  # stop this check-in, nothing recorded (back to idle)
        "cannot_use_finger",  # fingerprint: "I can't use my fingerprint"
        "photo",  # photo: take the photo now
        "answer",  # questions: {"id": str, "value": "yes"|"no"|option id}
        "read",  # messages: {"id": str} acknowledged
        "finish",  # confirm: commit the check-in
        "continue",  # fallback, done, see_reception, fingerprint feedback: go on
        "staff",  # idle: ask for the staff PIN
        "staff_unlock",  # staff menu: lift the tamper / identify lock
        "staff_acknowledge",  # staff menu: alerts dealt with
        "staff_override",  # staff menu: {"reason": code, "ref": digits or ""}
        "staff_other",  # staff menu: record someone not at the kiosk (type their reference)
        "staff_enrol",  # staff menu: enrol a person's fingerprints
        "enrol_agree",  # fingerprint notice: the person agrees
        "enrol_decline",  # fingerprint notice: the person does not agree
        "staff_exit",  # staff: leave staff mode
    }
)
#: Taps that mean the same on every screen: taken even when made on a screen that has just
#: changed. Any other tap carries the screen it was made on and is dropped if that screen has
#: gone (docs/ui.md, *Stale taps*).
ANY_SCREEN_ACTIONS: frozenset[str] = frozenset({"language", "large_text", "help", "more_time"})
LANGS: frozenset[str] = frozenset({"en", "cy"})
MAX_TAP_FIELDS = 8
MAX_TAP_TEXT = 64


class TapRejected(KioskError):
    """The page sent a tap the UI does not accept (unknown action or malformed data); the
    page is out of date or something else is talking to the server. Reload the page."""

    reason = "ui_tap_rejected"


class UiBridge(Protocol):
    """What the UI server needs from the daemon. All methods are called on the daemon's event
    loop thread; none may block for longer than a few milliseconds."""

    def current_view(self) -> View:
        """The view of the current state (a fresh dict the caller may keep)."""
        ...

    def subscribe(self) -> AsyncIterator[View]:
        """A new iterator that yields every view produced after this call (one per state
        change). It must register at call time, not at first iteration, so that a view sent
        between ``subscribe()`` and ``current_view()`` is not lost. Closing the iterator
        (``aclose()`` or garbage) unsubscribes."""
        ...

    async def tap(self, action: str, data: Mapping[str, Any]) -> None:
        """Feed a tap to the flow as its event. ``action`` is in :data:`TAP_ACTIONS` and
        ``data`` passed :func:`check_tap`. May raise a KioskError subclass whose ``reason``
        the page shows as a fault."""
        ...

    def ui_heartbeat(self) -> None:
        """The page is alive (called about every 2 s while the page runs)."""
        ...


def check_tap(action: object, data: object) -> tuple[str, dict[str, str | int | bool | None]]:
    """Validate a tap from the page: a known action and a flat dict of at most
    :data:`MAX_TAP_FIELDS` short scalars. Returns them typed; raises TapRejected."""
    if not isinstance(action, str) or action not in TAP_ACTIONS:
        raise TapRejected("unknown tap action; reload the kiosk page")
    if data is None:
        data = {}
    if not isinstance(data, dict) or len(data) > MAX_TAP_FIELDS:
        raise TapRejected("tap data must be a small object; reload the kiosk page")
    clean: dict[str, str | int | bool | None] = {}
    for key, value in data.items():
        if not isinstance(key, str) or len(key) > MAX_TAP_TEXT:
            raise TapRejected("tap data has a bad field name; reload the kiosk page")
        if isinstance(value, str) and len(value) > MAX_TAP_TEXT:
            raise TapRejected("tap data has an over-long value; reload the kiosk page")
        if value is not None and not isinstance(value, str | int | bool):
            raise TapRejected("tap data values must be scalars; reload the kiosk page")
        clean[key] = value
    if action in ("start", "language") and clean.get("lang") not in LANGS:
        raise TapRejected("language must be en or cy; reload the kiosk page")
    if action == "key":
        digit = clean.get("digit")
        if not (isinstance(digit, str) and len(digit) == 1 and digit.isdigit()):
            raise TapRejected("a key tap carries one digit; reload the kiosk page")
    return action, clean
