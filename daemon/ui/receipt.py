"""The words on the printed slip, in the person's language, from the same catalogue as the
screen: that today's visit was recorded and when, the attendance reference, and the next
appointment. Nothing else about the person (no case reference, nothing about their order).
Last, one line saying where the privacy notice is (``[privacy] notice``; without one, to ask
at reception): the transparency the law asks for, on paper they take away.

May import: the standard library, daemon.ui, drivers.printer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from daemon.ui.catalog import Catalogue
from daemon.ui.present import pick, spell_datetime
from drivers.printer.interface import Receipt


def receipt_slip(
    lang: str,
    code: str,
    appointment: Mapping[str, Any] | None,
    now: dt.datetime,
    catalogue: Catalogue,
    privacy: str = "",
) -> Receipt:
    """``privacy``: where the privacy notice is, in ``lang`` (config ``[privacy]``, already
    validated: never personal data); empty for "ask at reception"."""

    def t(key: str) -> str:
        return catalogue.text(lang, key)

    lines: list[tuple[str, str]] = [
        ("title", t("slip.title")),
        ("text", t("slip.recorded")),
        ("text", spell_datetime(now.isoformat(timespec="minutes"), lang, catalogue)),
        ("small", t("done.receipt")),
        ("big", code),
    ]
    if appointment:
        lines += [
            ("small", t("done.next")),
            ("title", spell_datetime(str(appointment.get("at", "")), lang, catalogue)),
            ("text", pick(appointment.get("place"), lang)),
        ]
    lines.append(("small", t("slip.keep")))
    if privacy:
        lines.append(("small", t("slip.privacy").replace("{where}", privacy)))
    else:
        lines.append(("small", t("slip.privacy_ask")))
    return Receipt(tuple((style, text) for style, text in lines if text))
