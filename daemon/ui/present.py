"""Turn a flow view into what the page receives: the view plus server-side text.

Everything a person reads comes from the gettext catalogues (:mod:`daemon.ui.catalog`) or
from the view's own bilingual data (question and message texts arrive as ``{"en": ..,
"cy": ..}`` from the roster); dates are spelled out here with the catalogue's month and
day names, so the browser's locale data never matters.

May import: the standard library and daemon.ui.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Mapping
from typing import Any

from daemon.ui.bridge import LANGS, Screen, View
from daemon.ui.catalog import Catalogue

log = logging.getLogger(__name__)

DISPLAY_TZ = "Europe/London"


def display_tz() -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(DISPLAY_TZ)
    except zoneinfo.ZoneInfoNotFoundError:  # no tzdata: UTC is right half the year
        return dt.UTC


def pick(value: object, lang: str) -> str:
    """A bilingual field in ``lang``: ``{"en": .., "cy": ..}`` → that language. If the roster
    sent only the other language, that text is shown rather than nothing (the person must
    still read their question) and a warning is logged so the gap gets fixed upstream; a
    plain string passes through."""
    if isinstance(value, Mapping):
        text = value.get(lang)
        if isinstance(text, str) and text.strip():
            return text
        for other in sorted(LANGS - {lang}):
            text = value.get(other)
            if isinstance(text, str) and text.strip():
                log.warning("a roster text has no %s version; showing %s", lang, other)
                return text
        return ""
    return value if isinstance(value, str) else ""


def spell_datetime(when: str, lang: str, catalogue: Catalogue) -> str:
    """``2026-11-30T10:30`` → ``Monday 30 November 2026 at 10:30`` (or the Welsh). A time
    with a zone (``...Z``, as the roster sends) is shown in UK time (:data:`DISPLAY_TZ`); a
    naive one as given. Returns ``""`` for an unparseable value."""
    try:
        moment = dt.datetime.fromisoformat(when)
    except (TypeError, ValueError):
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(display_tz())
    day = catalogue.text(lang, f"date.weekday.{moment.weekday()}")
    month = catalogue.text(lang, f"date.month.{moment.month}")
    date_text = f"{day} {moment.day} {month} {moment.year}"
    if "T" not in when and " " not in when:
        return date_text
    return (
        catalogue.text(lang, "date.at")
        .replace("{date}", date_text)
        .replace("{time}", f"{moment.hour:02d}:{moment.minute:02d}")
    )


def _entry(view: View) -> str:
    """What the identify keypad has typed so far: ``CR-1234`` or ``12 04 1990``."""
    field = view.get("field")
    box = view.get(field) if isinstance(field, str) else None
    if not isinstance(box, Mapping):
        return ""
    digits = str(box.get("digits") or "")
    if field == "ref":
        return str(box.get("prefix") or "") + digits
    return " ".join(p for p in (digits[:2], digits[2:4], digits[4:]) if p)


def present(view: View, catalogue: Catalogue, *, seq: int) -> dict[str, Any]:
    """The message pushed to the page for one view (JSON-serialisable).

    Keys: ``seq`` (increasing per connection), ``screen`` (a :class:`Screen` value; an
    unknown screen is shown as ``see_reception`` with reason ``fault``, never as a blank
    page), ``lang``, ``large_text``, ``simulated``, ``view`` (the flow's dict), ``text`` (every
    catalogue string in ``lang``), ``alt`` (the same in the other language, on the
    side-by-side idle screen only; empty elsewhere) and ``derived`` (dates and bilingual
    fields in ``lang``).
    """
    raw_screen = view.get("screen")
    try:
        screen = Screen(str(raw_screen))
    except ValueError:
        log.warning("the flow asked for a screen the UI does not know; showing see_reception")
        screen = Screen.SEE_RECEPTION
        view = {**view, "reason": "fault"}
    lang = view.get("lang") if view.get("lang") in LANGS else "en"
    assert isinstance(lang, str)
    other = "cy" if lang == "en" else "en"
    derived: dict[str, Any] = {}
    appointment = view.get("appointment")
    if isinstance(appointment, Mapping):
        when = appointment.get("at", appointment.get("when", ""))
        derived["appointment"] = spell_datetime(str(when), lang, catalogue)
        derived["place"] = pick(appointment.get("place"), lang)
    question = view.get("question")
    if isinstance(question, Mapping):
        derived["question"] = pick(question.get("text"), lang)
        derived["options"] = [
            {"id": str(opt.get("id", "")), "text": pick(opt.get("text"), lang)}
            for opt in question.get("options") or []
            if isinstance(opt, Mapping)
        ]
    message = view.get("message")
    if isinstance(message, Mapping):
        derived["message"] = pick(message.get("text"), lang)
    answers = view.get("answers")
    if isinstance(answers, list):
        derived["answers"] = [
            {"question": pick(a.get("text"), lang), "answer": pick(a.get("answer"), lang)}
            for a in answers
            if isinstance(a, Mapping)
        ]
    derived["entry"] = _entry(view)
    if isinstance(view.get("entered"), int):  # staff PIN: only how many digits, as dots
        derived["pin"] = "•" * min(int(view["entered"]), 32)
    return {
        "seq": seq,
        "screen": screen.value,
        "lang": lang,
        "large_text": bool(view.get("large_text", False)),
        "simulated": bool(view.get("simulated", False)),
        "view": view,
        "text": catalogue.table(lang),
        "alt": catalogue.table(other) if screen is Screen.IDLE else {},
        "derived": derived,
    }
