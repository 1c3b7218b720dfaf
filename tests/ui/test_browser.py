"""End to end in a real browser: Debian's Chromium (headless, Playwright) on the real UI
server, over the real check-in flow (daemon.flow) with scripted effects (daemon.ui.preview:
a finger matches when the test says so; commits are kept, not signed). Each test is what a
person at the kiosk would see and do; the records the flow commits are asserted at the end.
tests/ui/test_daemon_e2e.py drives the real daemon and the reference API the same way.

Every screen is also checked for touch targets (≥ 48 CSS px) and rendered text contrast
(≥ 4.5:1), by axe-core for the WCAG 2.2 A and AA rules it can test (names, roles, languages,
structure: see :data:`AXE_RULES`), and photographed in both languages for docs/screenshots.
"""

from __future__ import annotations

import time
import wave
from pathlib import Path
from typing import Any

import pytest

from daemon.ui.catalog import Catalogue
from daemon.ui.preview import (
    DECLINED,
    NO_TEMPLATE,
    PERSON,
    PLAIN,
    STAFF_PIN,
    LiveUi,
    PreviewBridge,
)
from hil.bench.ui import answer_questions, identify, seq, tap, wait_answer_ready, wait_screen
from tests.ui.conftest import Kiosk, axe_violations, needs_browser
from tests.ui.contrast import contrast

pytestmark = needs_browser
CAT = Catalogue.load()

# Every visible button's size, and every text element's colour over its painted background.
AUDIT_JS = """() => {
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && !el.closest('[hidden]');
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const bg = getComputedStyle(e).backgroundColor;
      if (bg && bg !== 'transparent' && !bg.endsWith(', 0)')) return bg;
    }
    return 'rgb(255, 255, 255)';
  };
  const buttons = [...document.querySelectorAll('button')].filter(visible).map((b) => {
    const r = b.getBoundingClientRect();
    return { label: b.textContent.trim(), w: r.width, h: r.height, bottom: r.bottom,
             right: r.right };
  });
  const texts = [...document.querySelectorAll('body *')].filter((el) => visible(el) &&
      [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
    .map((el) => ({ text: el.textContent.trim().slice(0, 30), fg: getComputedStyle(el).color,
                    bg: background(el) }));
  const doc = document.documentElement;
  return { buttons, texts, overflowX: doc.scrollWidth > doc.clientWidth,
           width: innerWidth, height: innerHeight };
}"""


def audit(k: Kiosk) -> None:
    """WCAG checks on what is on screen now."""
    assert axe_violations(k.page) == []
    found = k.page.evaluate(AUDIT_JS)
    assert found["buttons"], "every screen has something to touch"
    for b in found["buttons"]:
        assert b["w"] >= 48 and b["h"] >= 48, b
        # On screen without scrolling: a person should never have to find a hidden button.
        assert b["bottom"] <= found["height"] and b["right"] <= found["width"], b
    for t in found["texts"]:
        assert contrast(t["fg"], t["bg"]) >= 4.5, t
    assert not found["overflowX"]


def shot(k: Kiosk, shots: Path, name: str) -> None:
    audit(k)
    lang = k.page.eval_on_selector("#screen", "m => m.dataset.lang")
    k.page.screenshot(path=str(shots / f"{lang}-{name}.png"))


def text_of(k: Kiosk, selector: str) -> str:
    return str(k.page.inner_text(selector)).strip()


def control(k: Kiosk, fn: Any, expect: str) -> None:
    """Do something to the flow from outside (a finger, a fault) and wait for ``expect``."""
    before = seq(k.page)
    k.live.call(fn)
    wait_screen(k.page, expect, after_seq=before)


def type_digits(k: Kiosk, digits: str, screen: str) -> None:
    for d in digits:
        tap(k.page, f"button[data-digit='{d}']", screen)


def finish_after_photo(
    k: Kiosk, shots: Path | None, answers: dict[str, str] | None = None, end: str = "done"
) -> None:
    tap(k.page, "button[data-action=photo]", "questions")
    if shots is not None:
        shot(k, shots, "questions")
    answer_questions(k.page, answers)
    if k.page.eval_on_selector("#screen", "m => m.dataset.screen") == "messages":
        if shots is not None:
            shot(k, shots, "messages")
        tap(k.page, "button[data-action=read]", "confirm")
    if shots is not None:
        shot(k, shots, "confirm")
    tap(k.page, "button[data-action=finish]", end)


def checkins(k: Kiosk) -> list[dict[str, Any]]:
    return [
        r for r in k.bridge.records if r["type"] in ("checkin", "checkin_fallback", "see_officer")
    ]


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_normal_checkin(kiosk: Kiosk, screenshot_dir: Path, lang: str) -> None:
    k = kiosk
    t = CAT.table(lang)
    wait_screen(k.page, "idle")
    audit(k)
    k.page.screenshot(path=str(screenshot_dir / "idle.png"))  # one screen, both languages
    # The idle screen names nobody and offers both languages side by side, Welsh first.
    assert text_of(k, "#screen").splitlines()[0] == "Cofrestrwch yma"
    assert "Check in here" in text_of(k, "#screen")
    tap(k.page, f"button[data-lang-arg={lang}]", "identify")
    assert k.page.evaluate("document.documentElement.lang") == lang
    assert text_of(k, "#screen h1") == t["identify.title"]
    # A wrong reference and date of birth say so, in plain words, and start again.
    type_digits(k, "999999", "identify")
    tap(k.page, "button[data-action=submit]", "identify")
    assert text_of(k, "#screen h1") == t["identify.dob_title"]
    type_digits(k, "01011990", "identify")
    assert text_of(k, "output.entry") == "01 01 1990"
    tap(k.page, "button[data-action=submit]", "identify")
    assert text_of(k, "#screen .error") == t["identify.error.no_match"]
    if lang == "en":
        shot(k, screenshot_dir, "identify-no-match")
    type_digits(k, PERSON[0][:5], "identify")
    tap(k.page, "button[data-action=delete]", "identify")
    type_digits(k, PERSON[0][4:], "identify")
    assert text_of(k, "output.entry") == "CR-" + PERSON[0]
    shot(k, screenshot_dir, "identify")
    tap(k.page, "button[data-action=submit]", "identify")
    type_digits(k, PERSON[1], "identify")
    shot(k, screenshot_dir, "identify-dob")
    tap(k.page, "button[data-action=submit]", "fingerprint")
    assert text_of(k, "#screen .status") == t["fingerprint.scanning"]
    shot(k, screenshot_dir, "fingerprint")
    control(k, lambda: k.bridge.present_finger(matches=True), "photo")
    # The photo notice says what is taken and why before anything is taken.
    body = text_of(k, "#screen")
    for key in ("photo.what", "photo.why", "photo.locked"):
        assert t[key] in body
    shot(k, screenshot_dir, "photo")
    finish_after_photo(k, screenshot_dir)
    when = {"en": "Monday 30 November 2026 at 10:30", "cy": "Dydd Llun 30 Tachwedd 2026 am 10:30"}
    assert text_of(k, "#screen .when") == when[lang]
    place = {"en": "Room 2, ground floor", "cy": "Ystafell 2, llawr gwaelod"}
    assert text_of(k, "#screen .place") == place[lang]
    assert k.page.query_selector("#screen .note") is None  # not flagged
    receipt = text_of(k, "#screen .receipt .code")  # proof of attendance to take away
    assert receipt == k.bridge.current_view()["receipt"] and len(receipt) == 9
    assert CAT.text(lang, "done.receipt") in text_of(k, "#screen .receipt")
    shot(k, screenshot_dir, "done")
    tap(k.page, "button[data-action=continue]", "idle")
    [record] = checkins(k)
    assert record["person"] == "CR-123456"
    assert record["verify"]["method"] == "fingerprint"
    assert record["flags"] == []
    assert record["answers"]["wellbeing"] == "good"


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_fallback_after_three_misses_still_checks_in(
    kiosk: Kiosk, screenshot_dir: Path, lang: str
) -> None:
    k = kiosk
    t = CAT.table(lang)
    identify(k.page, lang, *PLAIN)
    control(k, lambda: k.bridge.present_finger(matches=False), "fingerprint")
    assert text_of(k, "#screen .status") == t["fingerprint.retry"]
    assert text_of(k, "#screen .muted") == t["fingerprint.attempt"].format(attempt=2, max=3)
    shot(k, screenshot_dir, "fingerprint-retry")
    tap(k.page, "button[data-action=continue]", "fingerprint")
    control(k, lambda: k.bridge.present_finger(matches=False), "fingerprint")
    tap(k.page, "button[data-action=continue]", "fingerprint")
    control(k, lambda: k.bridge.present_finger(matches=False), "fallback")
    assert text_of(k, "#screen .status") == t["fallback.fingerprint_failed"]
    shot(k, screenshot_dir, "fallback")
    tap(k.page, "button[data-action=continue]", "photo")
    finish_after_photo(k, None)
    # Still a check-in, flagged for a person to review, never a refusal.
    assert text_of(k, "#screen .note") == t["done.flagged"]
    assert text_of(k, "#screen").count(t["done.no_next"]) == 1  # PLAIN has no appointment
    [record] = checkins(k)
    assert record["type"] == "checkin_fallback"
    assert "id_review" in record["flags"]
    assert record["verify"]["method"] == "dob_photo"
    assert record["verify"]["fallback"] == "fingerprint_failed"


def test_i_cannot_use_my_fingerprint(kiosk: Kiosk) -> None:
    k = kiosk
    identify(k.page, "cy", *PERSON)
    tap(k.page, "button[data-action=cannot_use_finger]", "fallback")
    assert text_of(k, "#screen .status") == CAT.text("cy", "fallback.cannot_use_finger")
    tap(k.page, "button[data-action=continue]", "photo")
    finish_after_photo(k, None)
    assert "id_review" in checkins(k)[0]["flags"]


def test_no_fingerprint_on_file_goes_straight_to_the_other_way(kiosk: Kiosk) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=en]", "identify")
    type_digits(k, NO_TEMPLATE[0], "identify")
    tap(k.page, "button[data-action=submit]", "identify")
    type_digits(k, NO_TEMPLATE[1], "identify")
    tap(k.page, "button[data-action=submit]", "fallback")
    assert text_of(k, "#screen .status") == CAT.text("en", "fallback.no_template")


@pytest.mark.parametrize(("lang", "large_text"), [("en", False), ("cy", True)])
def test_someone_who_declined_fingerprints_is_never_asked_for_one(
    kiosk: Kiosk, screenshot_dir: Path, lang: str, large_text: bool
) -> None:
    """Their chosen route, not an exception: straight from the date of birth to the photo,
    one neutral line saying this photo and their date of birth are their way in, no "not yet"
    and no "not your fault", and the usual done screen without "staff will look at this".
    In Welsh with large text everything still fits."""
    k = kiosk
    t = CAT.table(lang)
    wait_screen(k.page, "idle")
    tap(k.page, f"button[data-lang-arg={lang}]", "identify")
    if large_text:
        tap(k.page, "button[data-action=large_text]", "identify")
    type_digits(k, DECLINED[0], "identify")
    tap(k.page, "button[data-action=submit]", "identify")
    type_digits(k, DECLINED[1], "identify")
    tap(k.page, "button[data-action=submit]", "photo")  # never the fingerprint screen
    body = text_of(k, "#screen")
    assert t["photo.by_choice"] in body
    for key in ("photo.what", "photo.why", "photo.locked"):
        assert t[key] in body
    fallback_words = [v for key, v in t.items() if key.startswith(("fallback.", "fingerprint."))]
    assert not [w for w in fallback_words if w in body]
    if lang == "en":
        assert " yet" not in body and "fault" not in body
    line = k.page.query_selector("#screen .facts li")  # the first fact, above the button
    box = line.bounding_box() if line is not None else None
    assert box is not None and box["y"] + box["height"] <= k.page.evaluate("window.innerHeight")
    shot(k, screenshot_dir, "photo-by-choice" + ("-large-text" if large_text else ""))
    finish_after_photo(k, None)
    assert k.page.query_selector("#screen .note") is None  # no "a member of staff will look"
    assert t["done.title"] in text_of(k, "#screen h1")
    audit(k)
    [record] = checkins(k)
    assert record["type"] == "checkin" and record["person"] == "CR-222333"
    assert record["verify"]["method"] == "dob_photo_by_choice"
    assert "fallback" not in record["verify"]
    assert record["flags"] == [] and record["detail"]["biometric"] == "declined"


def test_staff_see_that_a_person_chose_not_to_enrol_before_the_notice(
    kiosk: Kiosk, screenshot_dir: Path
) -> None:
    k = kiosk
    _staff_login(k, "cy")
    tap(k.page, "button[data-action=staff_enrol]", "staff")
    type_digits(k, DECLINED[0], "staff")
    tap(k.page, "button[data-action=submit]", "staff")
    assert text_of(k, "#screen .note") == CAT.text("cy", "staff.enrol_declined_before")
    assert CAT.text("cy", "enrol.notice") in text_of(k, "#screen")  # still theirs to choose
    shot(k, screenshot_dir, "staff-enrol-notice-declined-before")  # the audit: all on screen
    tap(k.page, "button[data-action=enrol_decline]", "staff")
    [record] = [r for r in k.bridge.records if r["type"] == "finger_enrolment"]
    assert record["detail"]["consent"] is False


def test_escalation_by_answer_sends_the_person_to_reception(
    kiosk: Kiosk, screenshot_dir: Path
) -> None:
    k = kiosk
    identify(k.page, "en", *PERSON)
    control(k, lambda: k.bridge.present_finger(matches=True), "photo")
    finish_after_photo(k, None, {"police_contact": "yes"}, end="see_reception")
    assert text_of(k, "#screen .status") == CAT.text("en", "reception.escalation")
    assert CAT.text("en", "reception.recorded") in text_of(k, "#screen")
    shot(k, screenshot_dir, "see_reception")
    [record] = checkins(k)
    assert record["type"] == "see_officer"
    assert "see_officer" in record["flags"]
    assert record["answers"]["police_contact"] is True
    assert "see_officer" in k.bridge.alerts


def test_i_need_to_speak_to_someone_during_a_welsh_check_in(
    kiosk: Kiosk, screenshot_dir: Path
) -> None:
    k = kiosk
    identify(k.page, "cy", *PERSON)
    control(k, lambda: k.bridge.present_finger(matches=True), "photo")
    tap(k.page, "button[data-action=help]", "photo")
    # The check-in carries on; the person is told staff will talk to them at the end.
    assert k.page.locator("#help-requested").is_visible()
    assert text_of(k, "#help-requested") == CAT.text("cy", "common.help_requested")
    shot(k, screenshot_dir, "photo-help-requested")
    finish_after_photo(k, None, end="see_reception")
    assert text_of(k, "#screen .status") == CAT.text("cy", "reception.escalation")
    shot(k, screenshot_dir, "see_reception")
    assert "see_officer" in checkins(k)[0]["flags"]
    assert "speak_to_someone" in k.bridge.alerts


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_fault_tamper_and_staff_mode(kiosk: Kiosk, screenshot_dir: Path, lang: str) -> None:
    k = kiosk
    identify(k.page, lang, *PERSON)
    control(k, lambda: k.bridge.present_finger(matches=True), "photo")
    # The camera dies: the check-in is still recorded, flagged, and the person sent to staff.
    control(k, lambda: k.bridge.fault("camera"), "see_reception")
    assert text_of(k, "#screen .status") == CAT.text(lang, "reception.fault")
    assert CAT.text(lang, "reception.recorded") in text_of(k, "#screen")
    shot(k, screenshot_dir, "see_reception-fault")
    assert [r["type"] for r in k.bridge.records] == ["fault"]
    tap(k.page, "button[data-action=continue]", "idle")
    control(k, k.bridge.open_enclosure, "see_reception")
    # Back at idle the kiosk speaks English again until someone chooses.
    assert text_of(k, "#screen .status") == CAT.text("en", "reception.tamper")
    assert k.page.query_selector("button[data-action=continue]") is None  # locked
    shot(k, screenshot_dir, "see_reception-tamper")
    control(k, k.bridge.enter_staff_mode, "staff")
    assert CAT.text("en", "staff.pin") in text_of(k, "#screen")
    type_digits(k, "1111", "staff")
    assert text_of(k, "output.entry") == "••••"
    tap(k.page, "button[data-action=submit]", "staff")
    assert text_of(k, "#screen .error") == CAT.text("en", "staff.result.wrong_pin")
    type_digits(k, STAFF_PIN, "staff")
    tap(k.page, "button[data-action=submit]", "staff")
    assert CAT.text("en", "staff.tamper") in text_of(k, "#screen")
    listed = text_of(k, "#screen ul.alerts")  # what each alert is, not only how many
    assert CAT.text("en", "staff.alert.tamper") in listed
    assert CAT.text("en", "staff.alert.fault") in listed
    shot(k, screenshot_dir, "staff")
    tap(k.page, "button[data-action=language]", "staff")  # staff may use either language
    shot(k, screenshot_dir, "staff")
    tap(k.page, "button[data-action=staff_unlock]", "staff")
    other = "cy" if k.bridge.state.lang == "cy" else "en"
    assert text_of(k, "#screen .error") == CAT.text(other, "staff.result.close_enclosure_first")
    k.live.call(k.bridge.close_enclosure)
    tap(k.page, "button[data-action=staff_unlock]", "staff")
    assert text_of(k, "#screen .error") == CAT.text(other, "staff.result.unlocked")
    tap(k.page, "button[data-action=staff_acknowledge]", "staff")
    tap(k.page, "button[data-action=staff_exit]", "idle")
    assert k.bridge.alerts == []


def _staff_login(k: Kiosk, lang: str) -> None:
    """Reception opens staff mode (in the person's language, for what follows) with the PIN."""
    control(k, k.bridge.enter_staff_mode, "staff")
    if lang == "cy":
        tap(k.page, "button[data-action=language]", "staff")
    type_digits(k, STAFF_PIN, "staff")
    tap(k.page, "button[data-action=submit]", "staff")


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_staff_record_attendance_for_someone_who_could_not_use_the_kiosk(
    kiosk: Kiosk, screenshot_dir: Path, lang: str
) -> None:
    """Nobody was identified at the kiosk (a fault sent them to reception, or the screen is
    not for them): staff type the person's case reference on the keypad, choose why, and the
    attendance is recorded, signed, like any other."""
    k = kiosk
    _staff_login(k, lang)
    tap(k.page, "button[data-action=staff_other]", "staff")
    assert CAT.text(lang, "staff.other_body") in text_of(k, "#screen")
    type_digits(k, "1234", "staff")
    assert text_of(k, "output.entry") == "CR-1234"
    tap(k.page, "button[data-action=submit]", "staff")
    assert text_of(k, "#screen .error") == CAT.text(lang, "staff.result.ref_incomplete")
    tap(k.page, "button[data-action=delete]", "staff")
    type_digits(k, "567", "staff")
    assert text_of(k, "output.entry") == "CR-123567"
    shot(k, screenshot_dir, "staff-other-person")
    tap(k.page, "button[data-action=submit]", "staff")
    assert CAT.text(lang, "staff.override_other") in text_of(k, "#screen")
    assert text_of(k, "output.entry") == "CR-123567"
    shot(k, screenshot_dir, "staff-other-person-reason")
    assert [r["detail"]["action"] for r in k.bridge.records] == ["login"]  # nothing else yet
    tap(k.page, "button[data-action=staff_override][data-reason=cannot_use_kiosk]", "staff")
    k.page.wait_for_selector("#screen .error", timeout=10_000)
    assert text_of(k, "#screen .error") == CAT.text(lang, "staff.result.override_recorded")
    [record] = [r for r in k.bridge.records if r["type"] != "staff_action"]
    assert record["type"] == "staff_override" and record["person"] == "CR-123567"
    assert record["detail"]["reason"] == "cannot_use_kiosk"
    assert "CR-123567" not in text_of(k, "#screen")  # the reference leaves the screen
    tap(k.page, "button[data-action=staff_exit]", "idle")


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_staff_enrol_fingerprints_with_the_notice_in_the_persons_language(
    kiosk: Kiosk, screenshot_dir: Path, lang: str
) -> None:
    k = kiosk
    _staff_login(k, lang)
    tap(k.page, "button[data-action=staff_enrol]", "staff")
    assert CAT.text(lang, "staff.enrol_body") in text_of(k, "#screen")
    type_digits(k, PERSON[0], "staff")
    tap(k.page, "button[data-action=submit]", "staff")
    assert CAT.text(lang, "enrol.notice") in text_of(k, "#screen")
    shot(k, screenshot_dir, "staff-enrol-notice")  # the audit: the whole notice and both buttons
    tap(k.page, "button[data-action=enrol_agree]", "staff")
    assert CAT.text(lang, "enrol.finger.right_index") in text_of(k, "#screen")
    control(k, lambda: k.bridge.take_enrol_finger(ok=False, reason="poor_image"), "staff")
    assert text_of(k, "#screen .error") == CAT.text(lang, "staff.result.poor_image")
    shot(k, screenshot_dir, "staff-enrol-retry")
    tap(k.page, "button[data-action=submit]", "staff")  # try again
    control(k, k.bridge.take_enrol_finger, "staff")
    assert CAT.text(lang, "enrol.finger.left_index") in text_of(k, "#screen")
    control(k, k.bridge.take_enrol_finger, "staff")
    k.page.wait_for_selector("#screen .error", timeout=10_000)
    assert text_of(k, "#screen .error") == CAT.text(lang, "staff.result.enrolled")
    [record] = [r for r in k.bridge.records if r["type"] != "staff_action"]  # not the login
    assert record["type"] == "finger_enrolment" and record["detail"]["consent"] is True
    assert record["detail"]["fingers"] == ["right_index", "left_index"]


def test_a_bounced_tap_does_not_answer_the_next_question(kiosk: Kiosk) -> None:
    """A tremor or a double tap: the second touch lands where the next question's answer now
    is. It must not answer a question the person has not read."""
    k = kiosk
    identify(k.page, "en", *PERSON)
    control(k, lambda: k.bridge.present_finger(matches=True), "photo")
    tap(k.page, "button[data-action=photo]", "questions")
    first = k.page.eval_on_selector("[data-options]", "el => el.dataset.question")
    wait_answer_ready(k.page)
    before = seq(k.page)
    k.page.click("button[data-value=no]")
    k.page.wait_for_function(
        "n => Number(document.getElementById('screen').dataset.seq) > n", arg=before
    )
    second = k.page.eval_on_selector("[data-options]", "el => el.dataset.question")
    assert second != first
    k.page.click("button[data-value=no]")  # the bounce, at once on the new question
    k.page.wait_for_timeout(300)
    assert k.page.eval_on_selector("[data-options]", "el => el.dataset.question") == second
    pressed = k.page.eval_on_selector_all(
        "[data-options] button", "bs => bs.map(b => b.ariaPressed)"
    )
    assert "true" not in pressed  # the second question is still unanswered
    assert k.page.evaluate("window.kioskMetrics.bouncedAnswers") == 1
    answer_questions(k.page)  # read, then answered: taken as normal
    assert k.page.eval_on_selector("#screen", "m => m.dataset.screen") in ("messages", "confirm")


def test_switching_language_mid_check_in_keeps_progress(kiosk: Kiosk) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=en]", "identify")
    type_digits(k, "123", "identify")
    tap(k.page, "button[data-action=language]", "identify")
    assert text_of(k, "#screen h1") == CAT.text("cy", "identify.title")
    assert text_of(k, "button[data-action=language]") == "English"
    assert text_of(k, "output.entry") == "CR-123"
    assert k.page.evaluate("document.documentElement.lang") == "cy"
    tap(k.page, "button[data-action=language]", "identify")
    assert text_of(k, "#screen h1") == CAT.text("en", "identify.title")


def test_large_text_mode_grows_text_and_every_control_still_fits(
    kiosk: Kiosk, screenshot_dir: Path
) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=cy]", "identify")
    size = "parseFloat(getComputedStyle(document.querySelector('#screen h1')).fontSize)"
    normal = k.page.evaluate(size)
    tap(k.page, "button[data-action=large_text]", "identify")
    assert k.page.evaluate("document.body.classList.contains('large')")
    assert k.page.evaluate(size) >= 1.35 * normal
    assert text_of(k, "button[data-action=large_text]") == CAT.text("cy", "common.normal_text")
    shot(k, screenshot_dir, "identify-large-text")
    type_digits(k, PERSON[0], "identify")
    tap(k.page, "button[data-action=submit]", "identify")
    type_digits(k, PERSON[1], "identify")
    tap(k.page, "button[data-action=submit]", "fingerprint")
    audit(k)
    control(k, lambda: k.bridge.present_finger(matches=True), "photo")
    shot(k, screenshot_dir, "photo-large-text")
    tap(k.page, "button[data-action=photo]", "questions")
    audit(k)
    answer_questions(k.page)
    audit(k)
    tap(k.page, "button[data-action=read]", "confirm")
    shot(k, screenshot_dir, "confirm-large-text")
    tap(k.page, "button[data-action=finish]", "done")
    audit(k)
    tap(k.page, "button[data-action=large_text]", "done")
    assert not k.page.evaluate("document.body.classList.contains('large')")


def to_photo(k: Kiosk, lang: str, *, large_text: bool = False) -> None:
    """Idle → ``PERSON`` identified in ``lang`` (large text if asked) → the finger matches →
    the photo screen."""
    wait_screen(k.page, "idle")
    tap(k.page, f"button[data-lang-arg={lang}]", "identify")
    if large_text:
        tap(k.page, "button[data-action=large_text]", "identify")
    type_digits(k, PERSON[0], "identify")
    tap(k.page, "button[data-action=submit]", "identify")
    type_digits(k, PERSON[1], "identify")
    tap(k.page, "button[data-action=submit]", "fingerprint")
    control(k, lambda: k.bridge.present_finger(matches=True), "photo")


def test_the_fullest_reception_screen_still_fits_in_large_text(
    kiosk: Kiosk, screenshot_dir: Path
) -> None:
    """Sent to reception after a part failed, in Welsh and large text: the reason, "recorded",
    the attendance reference and the next appointment, and the OK button still on screen."""
    k = kiosk
    to_photo(k, "cy", large_text=True)
    control(k, lambda: k.bridge.fault("camera"), "see_reception")
    code = k.page.query_selector("#screen .receipt .code")
    assert code is not None and k.page.query_selector("#screen .appointment") is not None
    box = code.bounding_box()
    assert box is not None and box["height"] < 60  # one line: never split at its dash
    shot(k, screenshot_dir, "see_reception-fault-large-text")  # the audit: all on screen


def test_someone_struggling_is_shown_where_to_get_help_now_in_large_text_too(
    kiosk: Kiosk, screenshot_dir: Path
) -> None:
    """ "I am struggling" sends them to reception (an officer sees them) and the screen says
    where to get help now: NHS 111's mental health option, Samaritans, 999. In Welsh, with the
    Welsh-language Samaritans line, and in large text with everything still on screen."""
    k = kiosk
    to_photo(k, "cy", large_text=True)
    tap(k.page, "button[data-action=photo]", "questions")
    answer_questions(k.page, {"wellbeing": "struggling"})
    tap(k.page, "button[data-action=read]", "confirm")
    tap(k.page, "button[data-action=finish]", "see_reception")
    signpost = text_of(k, "#screen .signpost")
    assert CAT.text("cy", "signpost.crisis.title") in signpost
    assert "111" in signpost and "116 123" in signpost and "0808 164 0123" in signpost
    box = k.page.query_selector("#screen .signpost").bounding_box()  # type: ignore[union-attr]
    height = k.page.evaluate("window.innerHeight")
    assert box is not None and box["y"] + box["height"] <= height  # not cut off
    shot(k, screenshot_dir, "see_reception-struggling-large-text")  # OK still on screen
    tap(k.page, "button[data-action=continue]", "idle")
    # nobody else sees it: a calm visit has no signpost
    to_photo(k, "en")
    tap(k.page, "button[data-action=photo]", "questions")
    answer_questions(k.page)
    tap(k.page, "button[data-action=read]", "confirm")
    tap(k.page, "button[data-action=finish]", "done")
    assert k.page.query_selector("#screen .signpost") is None


def test_time_out_warns_and_i_need_more_time_extends(kiosk: Kiosk, screenshot_dir: Path) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=en]", "identify")
    control(k, k.bridge.warn_timeout, "identify")
    dialog = k.page.locator("#timeout")
    assert dialog.is_visible()
    assert "This check-in will stop in 29 seconds." in dialog.inner_text()
    k.page.wait_for_function(
        "() => document.querySelector('#timeout p').textContent.includes('28 seconds')",
        timeout=3000,
    )
    shot(k, screenshot_dir, "timeout-warning")
    tap(k.page, "button[data-action=more_time]", "identify")
    assert not dialog.is_visible()
    assert ("more_time", {}) in k.bridge.taps
    assert k.bridge.current_view().get("timeout") is None


def _listen(k: Kiosk, button: str = "button[data-action=listen]") -> tuple[str, float]:
    """Touch Listen; return what the page played and how long it lasts."""
    k.page.evaluate("document.getElementById('prompt').removeAttribute('src')")
    k.page.click(button)
    k.page.wait_for_function(
        "() => document.getElementById('prompt').readyState >= 1 &&"
        " isFinite(document.getElementById('prompt').duration)",
        timeout=10_000,
    )
    src: str = k.page.evaluate("document.getElementById('prompt').currentSrc")
    return src, float(k.page.evaluate("document.getElementById('prompt').duration"))


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def test_listen_speaks_the_screen_with_its_own_words_in_the_current_language(
    kiosk: Kiosk, audio_dir: Path
) -> None:
    """A person who cannot read hears the screen: on identify the prompt; on a question the
    prompt, then the question and its answers, so it lasts longer than the prompt alone."""
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=cy]", "identify")
    src, seconds = _listen(k)
    assert "/say.wav?seq=" in src
    assert abs(seconds - _wav_seconds(audio_dir / "cy" / "identify.wav")) < 0.6  # same words
    tap(k.page, "button[data-action=cancel]", "idle")
    identify(k.page, "cy", *PERSON)
    control(k, lambda: k.bridge.present_finger(matches=True), "photo")
    tap(k.page, "button[data-action=photo]", "questions")
    src, seconds = _listen(k)
    assert "/say.wav?seq=" in src
    assert seconds > _wav_seconds(audio_dir / "cy" / "questions.wav") + 1.0


def test_the_page_cannot_reach_beyond_the_machine(kiosk: Kiosk) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    outcome = k.page.evaluate(
        """async () => {
          const violations = [];
          document.addEventListener('securitypolicyviolation', (e) =>
            violations.push(e.violatedDirective));
          let fetched = 'allowed';
          try { await fetch('http://192.0.2.1/x'); } catch (e) { fetched = 'blocked'; }
          const img = new Image(); img.src = 'http://192.0.2.1/pixel.png';
          await new Promise((r) => setTimeout(r, 200));
          return { fetched, violations };
        }"""
    )
    assert outcome["fetched"] == "blocked"
    assert "connect-src" in outcome["violations"] and "img-src" in outcome["violations"]
    assert k.reached == []  # nothing answered: CSP stopped both before they left
    k.external.clear()  # the attempts themselves were the point of this test
    k.errors.clear()  # the console reports the blocked attempts, as it should


def test_heartbeats_flow_and_a_lost_server_shows_reconnecting(kiosk: Kiosk) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    k.page.wait_for_timeout(2200)
    assert k.live.call(lambda: k.bridge.heartbeats) >= 1
    k.live.stop()
    k.page.wait_for_selector("#reconnecting:not([hidden])", timeout=5000)
    assert text_of(k, "#reconnecting") == CAT.text("en", "common.reconnecting")
    k.errors.clear()  # failed reconnects are logged by the browser


def test_a_daemon_that_stays_away_sends_the_person_to_reception_until_it_is_back(
    browser: Any, audio_dir: Path, screenshot_dir: Path
) -> None:
    """kiosk.service crash-looping, or stopped on a configuration or device error, while the
    shell keeps the browser up: "please wait" first, then, after ``lost_after_s`` (60 s on a
    kiosk, 3 s here), the words for a fault in Welsh and English: not your fault, go to
    reception, staff will check you in. When the daemon answers again the page carries on by
    itself."""
    with LiveUi(PreviewBridge(), audio_dir=audio_dir, lost_after_s=3.0) as live:
        k = Kiosk(browser.new_page(), live)
        try:
            k.page.goto(live.url)
            wait_screen(k.page, "idle")
            tap(k.page, "button[data-lang-arg=en]", "identify")
            gone = time.monotonic()
            live.stop()
            k.page.wait_for_selector("#reconnecting:not([hidden])", timeout=5000)
            assert k.page.is_hidden("#lost")  # not before the time is up
            k.page.wait_for_selector("#lost:not([hidden])", timeout=10_000)
            assert time.monotonic() - gone >= 3.0
            shown = text_of(k, "#lost")
            for lang in ("cy", "en"):
                assert CAT.text(lang, "reception.title") in shown
                assert CAT.text(lang, "reception.fault") in shown
            assert shown.index(CAT.text("cy", "reception.title")) < shown.index(
                CAT.text("en", "reception.title")
            )  # Welsh first, as on the idle screen
            assert k.page.is_hidden("#reconnecting")
            # it covers the screen: nothing left from before the fault can be tapped
            top = k.page.evaluate(
                "() => { const r = document.querySelector('button[data-digit]')"
                ".getBoundingClientRect(); return document.elementFromPoint("
                "r.x + r.width / 2, r.y + r.height / 2).closest('#lost') !== null; }"
            )
            assert top
            # and it is spoken, for people who read poorly: each panel's Listen plays its own
            # language's words, kept by the page while the daemon was there (nothing to fetch
            # them from now)
            for lang in ("cy", "en"):
                button = f"#lost button[data-action=listen_lost][data-lang-arg={lang}]"
                assert text_of(k, button) == CAT.text(lang, "common.listen")
                src, seconds = _listen(k, button)
                assert src.startswith("blob:")
                assert abs(seconds - _wav_seconds(audio_dir / lang / "lost.wav")) < 0.05
            audit(k)
            k.page.screenshot(path=str(screenshot_dir / "lost.png"))
            k.page.wait_for_timeout(2500)  # still shown while the daemon stays away
            assert k.page.is_visible("#lost")

            live.start()  # the daemon is back: the page carries on by itself

            k.page.wait_for_function(
                "() => document.getElementById('lost').hidden"
                " && document.getElementById('reconnecting').hidden"
                " && document.getElementById('screen').dataset.screen === 'identify'",
                timeout=15_000,
            )
            tap(k.page, "button[data-digit='4']", "identify")
            assert text_of(k, "output.entry").endswith("4")
            k.errors.clear()  # failed reconnects are logged by the browser
            assert k.external == [] and k.errors == []
        finally:
            k.page.close()


def test_tap_to_render_is_fast(kiosk: Kiosk) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=en]", "identify")
    for _ in range(10):
        tap(k.page, "button[data-digit='1']", "identify")
        tap(k.page, "button[data-action=delete]", "identify")
    # The last sample lands on the frame after the last render.
    k.page.wait_for_function("() => window.kioskMetrics.tapToRender.length >= 21")
    samples: list[Any] = k.page.evaluate("window.kioskMetrics.tapToRender")
    assert len(samples) == 21
    assert sorted(samples)[int(0.95 * len(samples))] <= 100
