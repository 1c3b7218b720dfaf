"""English and Welsh are equal: every key in both, none empty, same placeholders, and no
words in the page that bypass the catalogue."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from daemon.flow.state import ENROL_FINGERS
from daemon.ui.bridge import Screen
from daemon.ui.catalog import LOCALE_DIR, Catalogue, CatalogueError, compile_mo, parse_po
from daemon.ui.server import STATIC_DIR

PLACEHOLDER = re.compile(r"\{(\w+)\}")
FLOW = Path(__file__).resolve().parents[2] / "daemon" / "flow"


def flow_values(pattern: str) -> set[str]:
    """Every literal the flow assigns with ``pattern`` (one regex group), read from its
    source, so a reason the flow gains without a text here fails this test."""
    source = (FLOW / "machine.py").read_text() + (FLOW / "view.py").read_text()
    found = set(re.findall(pattern, source))
    assert found, pattern
    return found


def t_from_values() -> dict[str, set[str]]:
    """Values the flow puts in the fields the page turns into keys (data-t-from)."""
    return {
        "identify.error.": flow_values(r'identify_error="(\w+)"'),
        "fingerprint.": flow_values(r'finger_phase="(\w+)"') | {"place"},
        "fallback.": flow_values(r'_to_fallback\(k2?, s, "(\w+)"\)')
        | flow_values(r'fallback="(\w+)"'),
        "reception.": flow_values(r'reception_reason="(\w+)"')
        | flow_values(r'notice="(\w+)"')
        | {"tamper"},
        "staff.result.": flow_values(r'result="(\w+)"'),
        # staff alerts: every code the flow raises, and the two an answer raises by variable
        "staff.alert.": flow_values(r'_alert\(.*, "(\w+)"\)') | {"see_officer", "speak_to_someone"},
        "enrol.finger.": set(ENROL_FINGERS),
    }


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def test_every_key_has_a_non_empty_english_and_welsh_text(catalogue: Catalogue) -> None:
    assert catalogue.languages == ("en", "cy")
    assert len(catalogue.keys) > 90
    assert catalogue.problems() == []


def test_both_catalogues_declare_the_same_keys() -> None:
    keys = {}
    for lang in ("en", "cy"):
        po = (LOCALE_DIR / lang / "LC_MESSAGES" / "kiosk.po").read_text(encoding="utf-8")
        keys[lang] = {k for k in parse_po(po) if k}
    assert keys["en"] == keys["cy"]


def test_placeholders_match_between_languages(catalogue: Catalogue) -> None:
    for key in catalogue.keys:
        en = set(PLACEHOLDER.findall(catalogue.text("en", key)))
        cy = set(PLACEHOLDER.findall(catalogue.text("cy", key)))
        assert en == cy, key


def test_welsh_is_a_translation_not_a_copy(catalogue: Catalogue) -> None:
    # Language names and a few universal words may be equal; the prose must not be.
    same = [k for k in catalogue.keys if catalogue.text("en", k) == catalogue.text("cy", k)]
    assert set(same) <= {"idle.english", "idle.cymraeg", "date.month.5", "common.staff"}, same


def test_every_screen_has_a_spoken_prompt_in_both_languages(catalogue: Catalogue) -> None:
    for screen in Screen:
        for lang in ("en", "cy"):
            assert len(catalogue.text(lang, f"audio.{screen.value}")) > 20, (lang, screen)


def test_a_missing_or_empty_welsh_string_is_caught(tmp_path: Path) -> None:
    shutil.copytree(LOCALE_DIR, tmp_path / "locale")
    cy = tmp_path / "locale" / "cy" / "LC_MESSAGES" / "kiosk.po"
    text = cy.read_text(encoding="utf-8")
    text = text.replace('msgstr "Gwrando"', 'msgstr ""')
    text = re.sub(r'msgid "done.bye"\nmsgstr "[^"]*"\n', "", text)
    cy.write_text(text, encoding="utf-8")
    problems = Catalogue.load(tmp_path / "locale").problems()
    assert problems == ["cy: common.listen has no translation", "cy: done.bye has no translation"]


def test_malformed_po_is_refused_with_the_line() -> None:
    with pytest.raises(CatalogueError, match=":3: duplicate msgid"):
        parse_po('msgid "a"\nmsgstr "x"\nmsgid "a"\nmsgstr "y"\n')
    with pytest.raises(CatalogueError, match="plurals"):
        parse_po('msgid "a"\nmsgid_plural "as"\nmsgstr[0] "x"\n')
    with pytest.raises(CatalogueError, match=":1: expected a double-quoted string"):
        parse_po("msgid 'a'\n")
    with pytest.raises(CatalogueError, match=":2: not PO syntax"):
        parse_po('msgid "a"\nhello\nmsgstr "x"\n')


def test_continuation_lines_and_escapes() -> None:
    entries = parse_po('msgid ""\n"long."\n"key"\nmsgstr "a \\"b\\"\\n"\n"c"\n')
    assert entries == {"long.key": 'a "b"\nc'}


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU msgfmt (gettext) not installed")
def test_our_mo_matches_gnu_msgfmt(tmp_path: Path) -> None:
    for lang in ("en", "cy"):
        po = LOCALE_DIR / lang / "LC_MESSAGES" / "kiosk.po"
        gnu = tmp_path / f"{lang}.mo"
        subprocess.run(["msgfmt", "--no-hash", "-o", str(gnu), str(po)], check=True)
        assert compile_mo(parse_po(po.read_text(encoding="utf-8"))) == gnu.read_bytes()


class _PageText(HTMLParser):
    """Collects literal text and the i18n keys the page template uses."""

    def __init__(self) -> None:
        super().__init__()
        self.literal: list[str] = []
        self.keys: set[str] = set()
        self.prefixes: set[str] = set()
        self.bad_attrs: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("data-t", "data-t-large", "data-t-aria"):
            if a.get(name):
                self.keys.add(str(a[name]))
        if a.get("data-t-prefix"):
            self.prefixes.add(str(a["data-t-prefix"]))
        for name in ("title", "alt", "aria-label", "placeholder", "value"):
            if a.get(name):
                self.bad_attrs.append(f"<{tag} {name}=...>")

    def handle_data(self, data: str) -> None:
        text = data.strip()
        if text and not text.isdigit():
            self.literal.append(text)


def test_page_has_no_words_outside_the_catalogue(catalogue: Catalogue) -> None:
    page = _PageText()
    page.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    assert page.literal == []
    assert page.bad_attrs == []
    assert page.keys, "the page uses data-t keys"
    assert page.keys <= catalogue.keys, page.keys - catalogue.keys
    values = t_from_values()
    assert page.prefixes == set(values)
    for prefix, found in values.items():
        for value in found:
            assert prefix + value in catalogue.keys, prefix + value


def test_every_staff_override_reason_has_a_button_and_a_text(catalogue: Catalogue) -> None:
    from daemon.flow.events import OVERRIDE_REASONS

    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    for reason in OVERRIDE_REASONS:
        assert f'data-reason="{reason}"' in page
        assert f"staff.reason.{reason}" in catalogue.keys


def test_every_button_on_the_page_is_a_tap_the_kiosk_takes() -> None:
    """The bridge's allow-list and the flow's taps are one set, and the page has no button
    the bridge would refuse with a 400 (only "listen" and the lost cover's "listen_lost" stay
    in the page: they play audio)."""
    from daemon.flow.taps import TAP_NAMES
    from daemon.ui.bridge import TAP_ACTIONS

    assert TAP_ACTIONS == TAP_NAMES
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    actions = set(re.findall(r'data-action="([a-z_]+)"', page))
    assert actions - TAP_ACTIONS == {"listen", "listen_lost"}


def test_script_has_no_user_visible_strings() -> None:
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    code = re.sub(r"//[^\n]*", "", js)
    assert "innerHTML" not in code
    literals = re.findall(r'"((?:[^"\\]|\\.)*)"', code)
    prose = [s for s in literals if re.search(r"[A-Za-z]{2,} +[A-Za-z]{2,}", s)]
    prose.remove("use strict")
    assert prose == []
    # Text reaches the page only through the catalogue tables.
    # ... or as the roster's own bilingual texts, picked by the server (present.py).
    assert re.findall(r"textContent\s*=\s*([^;]+);", code) == [
        "option.text",
        "row.question",
        "row.answer",
        'format(table(el)[key] || "", el, view)',
        'value === undefined || value === null ? "" : String(value)',
        'msg.derived[el.dataset.derived] || ""',
    ]


def test_committed_screenshots_cover_every_screen_in_both_languages() -> None:
    shots = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    assert (shots / "idle.png").is_file()  # one bilingual screen
    for screen in Screen:
        if screen is not Screen.IDLE:
            for lang in ("en", "cy"):
                assert (shots / f"{lang}-{screen.value}.png").is_file(), (lang, screen)
