"""Touchscreen taps → flow events: the one translation from the UI's action names
(daemon/ui/bridge.py ``TAP_ACTIONS``) to :mod:`daemon.flow.events`.

A tap is an action name and a small flat dict. Unknown actions or malformed data give None
(the caller drops the tap); the flow itself ignores taps that do not apply to the screen.

Pure. May import: the standard library and daemon.flow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from daemon.flow import events as ev

Maker = Callable[[float, Mapping[str, Any]], ev.Event]


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(key)
    return value


_TAPS: dict[str, Maker] = {
    "start": lambda now, d: ev.Start(now=now, lang=str(d.get("lang", "en"))),
    "language": lambda now, d: ev.SetLanguage(now=now, lang=_str(d, "lang")),
    "large_text": lambda now, d: ev.SetLargeText(now=now, on=bool(d.get("on", True))),
    "help": lambda now, d: ev.Help(now=now),
    "more_time": lambda now, d: ev.MoreTime(now=now),
    "key": lambda now, d: ev.Key(now=now, digit=_str(d, "digit")),
    "delete": lambda now, d: ev.Delete(now=now),
    "submit": lambda now, d: ev.Submit(now=now),
    "back": lambda now, d: ev.Back(now=now),
    "restart": lambda now, d: ev.Back(now=now),
    "cancel": lambda now, d: ev.Cancel(now=now),
    "cannot_use_finger": lambda now, d: ev.CannotUseFinger(now=now),
    "photo": lambda now, d: ev.TakePhotoNow(now=now),
    "answer": lambda now, d: ev.Answer(now=now, question=_str(d, "id"), value=_str(d, "value")),
    "read": lambda now, d: ev.MessageRead(now=now, message=_str(d, "id")),
    "finish": lambda now, d: ev.Finish(now=now),
    "continue": lambda now, d: ev.Continue(now=now),
    "staff": lambda now, d: ev.StaffRequested(now=now),
    "staff_unlock": lambda now, d: ev.StaffUnlock(now=now),
    "staff_acknowledge": lambda now, d: ev.StaffAcknowledge(now=now),
    "staff_override": lambda now, d: ev.StaffOverride(
        now=now, reason=_str(d, "reason"), ref_digits=str(d.get("ref", ""))
    ),
    "staff_other": lambda now, d: ev.StaffOtherPerson(now=now),
    "staff_enrol": lambda now, d: ev.StaffEnrol(now=now),
    "enrol_agree": lambda now, d: ev.EnrolConsent(now=now, agree=True),
    "enrol_decline": lambda now, d: ev.EnrolConsent(now=now, agree=False),
    "staff_exit": lambda now, d: ev.StaffExit(now=now),
}
TAP_NAMES = frozenset(_TAPS)


def tap_event(action: str, data: Mapping[str, Any], now: float) -> ev.Event | None:
    """The event for a tap at monotonic time ``now``, or None if the tap is unknown or its
    data is malformed."""
    make = _TAPS.get(action)
    if make is None:
        return None
    try:
        return make(now, data)
    except ValueError:
        return None
