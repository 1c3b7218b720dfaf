"""End to end in a real browser: Debian's Chromium (headless, Playwright) on the real UI
server, over the scripted preview flow (daemon.ui.preview). Each test is what a person at the
kiosk would see and do; the check-ins the flow would record are asserted at the end.

Every screen is also checked for touch targets (≥ 48 CSS px) and rendered text contrast
(≥ 4.5:1), and photographed in both languages for docs/screenshots.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import pytest

from daemon.ui.catalog import Catalogue
from hil.bench.ui import seq, tap, wait_screen
from tests.ui.conftest import Kiosk, needs_browser
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


def finger(k: Kiosk, *, matches: bool, expect: str) -> None:
    before = seq(k.page)
    k.live.call(lambda: k.bridge.present_finger(matches=matches))
    wait_screen(k.page, expect, after_seq=before)


def type_digits(k: Kiosk, digits: str, screen: str) -> None:
    for d in digits:
        tap(k.page, f"button[data-digit='{d}']", screen)


def walk_to_fingerprint(k: Kiosk, lang: str, shots: Path | None = None) -> None:
    wait_screen(k.page, "idle")
    if shots is not None and lang == "en":
        shot(k, shots, "idle")
    tap(k.page, f"button[data-lang-arg={lang}]", "identify")
    type_digits(k, "123456", "identify")
    if shots is not None:
        shot(k, shots, "identify")
    tap(k.page, "button[data-action=submit]", "fingerprint")


def questions_to_done(
    k: Kiosk, shots: Path | None, answers: tuple[str, str] = ("no", "no")
) -> None:
    tap(k.page, "button[data-action=photo]", "questions")
    if shots is not None:
        shot(k, shots, "questions")
    tap(k.page, f"button[data-value={answers[0]}]", "questions")
    tap(k.page, f"button[data-value={answers[1]}]", "messages")
    if shots is not None:
        shot(k, shots, "messages")
    tap(k.page, "button[data-action=read]", "confirm")
    if shots is not None:
        shot(k, shots, "confirm")


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
    # A mistyped number says so, in plain words, and lets the person try again.
    type_digits(k, "999999", "identify")
    tap(k.page, "button[data-action=submit]", "identify")
    assert text_of(k, "#screen .error") == t["identify.not_found"]
    if lang == "en":
        shot(k, screenshot_dir, "identify-not-found")
    type_digits(k, "12345", "identify")
    tap(k.page, "button[data-action=delete]", "identify")
    type_digits(k, "56", "identify")
    assert text_of(k, "output.entry") == "123456"
    shot(k, screenshot_dir, "identify")
    tap(k.page, "button[data-action=submit]", "fingerprint")
    assert text_of(k, "#screen .status") == t["fingerprint.place"]
    shot(k, screenshot_dir, "fingerprint")
    finger(k, matches=True, expect="photo")
    # The photo notice says what is taken and why before anything is taken.
    body = text_of(k, "#screen")
    for key in ("photo.what", "photo.why", "photo.locked"):
        assert t[key] in body
    shot(k, screenshot_dir, "photo")
    questions_to_done(k, screenshot_dir)
    tap(k.page, "button[data-action=finish]", "done")
    when = {"en": "Monday 30 November 2026 at 10:30", "cy": "Dydd Llun 30 Tachwedd 2026 am 10:30"}
    assert text_of(k, "#screen .when") == when[lang]
    assert k.page.query_selector("#screen .note") is None  # not flagged
    shot(k, screenshot_dir, "done")
    tap(k.page, "button[data-action=continue]", "idle")
    assert k.bridge.records == [
        {
            "type": "checkin",
            "person": "123456",
            "lang": lang,
            "fallback": False,
            "answers": {"address": "no", "police": "no"},
            "escalation": False,
            "requested_contact": False,
        }
    ]


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_fallback_after_three_misses_still_checks_in(
    kiosk: Kiosk, screenshot_dir: Path, lang: str
) -> None:
    k = kiosk
    t = CAT.table(lang)
    walk_to_fingerprint(k, lang)
    finger(k, matches=False, expect="fingerprint")
    assert text_of(k, "#screen .status") == t["fingerprint.retry"]
    assert text_of(k, "#screen .muted") == t["fingerprint.attempt"].format(attempt=2, max=3)
    shot(k, screenshot_dir, "fingerprint-retry")
    finger(k, matches=False, expect="fingerprint")
    finger(k, matches=False, expect="fallback")
    assert t["fallback.body"] in text_of(k, "#screen")
    shot(k, screenshot_dir, "fallback")
    type_digits(k, "01011990", "fallback")
    tap(k.page, "button[data-action=submit]", "fallback")
    assert text_of(k, "#screen .error") == t["fallback.no_match"]
    type_digits(k, "01021990", "fallback")
    tap(k.page, "button[data-action=submit]", "photo")
    questions_to_done(k, None)
    tap(k.page, "button[data-action=finish]", "done")
    # Still a check-in, flagged for a person to review, never a refusal.
    assert text_of(k, "#screen .note") == t["done.flagged"]
    assert [(r["fallback"], r["lang"]) for r in k.bridge.records] == [(True, lang)]


def test_escalation_by_answer_sends_the_person_to_reception(
    kiosk: Kiosk, screenshot_dir: Path
) -> None:
    k = kiosk
    walk_to_fingerprint(k, "en")
    finger(k, matches=True, expect="photo")
    questions_to_done(k, None, answers=("no", "yes"))
    tap(k.page, "button[data-action=finish]", "see_reception")
    assert text_of(k, "#screen .status") == CAT.text("en", "reception.escalation")
    assert CAT.text("en", "reception.recorded") in text_of(k, "#screen")
    shot(k, screenshot_dir, "see_reception")
    assert k.bridge.records[0]["escalation"] is True
    assert k.bridge.records[0]["answers"] == {"address": "no", "police": "yes"}


def test_i_need_to_speak_to_someone_from_any_step_in_welsh(
    kiosk: Kiosk, screenshot_dir: Path
) -> None:
    k = kiosk
    walk_to_fingerprint(k, "cy")
    tap(k.page, "button[data-action=help]", "see_reception")
    assert text_of(k, "#screen .status") == CAT.text("cy", "reception.requested")
    shot(k, screenshot_dir, "see_reception")
    assert [(r["requested_contact"], r["lang"]) for r in k.bridge.records] == [(True, "cy")]


@pytest.mark.parametrize("lang", ["en", "cy"])
def test_fault_and_staff_screens(kiosk: Kiosk, screenshot_dir: Path, lang: str) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, f"button[data-lang-arg={lang}]", "identify")
    before = seq(k.page)
    k.live.call(lambda: k.bridge.fault("tamper"))
    wait_screen(k.page, "see_reception", after_seq=before)
    assert text_of(k, "#screen .status") == CAT.text(lang, "reception.tamper")
    shot(k, screenshot_dir, "see_reception-tamper")
    before = seq(k.page)
    k.live.call(k.bridge.enter_staff_mode)
    wait_screen(k.page, "staff", after_seq=before)
    assert CAT.text(lang, "staff.queue").format(depth=0) in text_of(k, "#screen")
    shot(k, screenshot_dir, "staff")
    tap(k.page, "button[data-action=staff_exit]", "idle")


def test_switching_language_mid_check_in_keeps_progress(kiosk: Kiosk) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=en]", "identify")
    type_digits(k, "123", "identify")
    tap(k.page, "button[data-action=language]", "identify")
    assert text_of(k, "#screen h1") == CAT.text("cy", "identify.title")
    assert text_of(k, "button[data-action=language]") == "English"
    assert text_of(k, "output.entry") == "123"
    assert k.page.evaluate("document.documentElement.lang") == "cy"
    tap(k.page, "button[data-action=language]", "identify")
    assert text_of(k, "#screen h1") == CAT.text("en", "identify.title")


def test_large_text_mode_grows_text_and_targets_and_still_fits(
    kiosk: Kiosk, screenshot_dir: Path
) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=cy]", "identify")
    size = "parseFloat(getComputedStyle(document.querySelector('#screen h1')).fontSize)"
    normal = k.page.evaluate(size)
    tap(k.page, "button[data-action=large_text]", "identify")
    shot(k, screenshot_dir, "identify-large-text")
    type_digits(k, "123456", "identify")
    tap(k.page, "button[data-action=submit]", "fingerprint")
    audit(k)
    finger(k, matches=True, expect="photo")
    assert k.page.evaluate("document.body.classList.contains('large')")
    assert k.page.evaluate(size) >= 1.35 * normal
    assert text_of(k, "button[data-action=large_text]") == CAT.text("cy", "common.normal_text")
    shot(k, screenshot_dir, "photo-large-text")
    tap(k.page, "button[data-action=photo]", "questions")
    audit(k)
    tap(k.page, "button[data-value=no]", "questions")
    tap(k.page, "button[data-value=no]", "messages")
    audit(k)
    tap(k.page, "button[data-action=read]", "confirm")
    tap(k.page, "button[data-action=finish]", "done")
    audit(k)
    tap(k.page, "button[data-action=large_text]", "done")
    assert k.page.evaluate(size) == normal


def test_time_out_warns_and_i_need_more_time_extends(kiosk: Kiosk, screenshot_dir: Path) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=en]", "identify")
    before = seq(k.page)
    k.live.call(lambda: k.bridge.warn_timeout(30))
    wait_screen(k.page, "identify", after_seq=before)
    dialog = k.page.locator("#timeout")
    assert dialog.is_visible()
    assert "This check-in will stop in 30 seconds." in dialog.inner_text()
    k.page.wait_for_function(
        "() => document.querySelector('#timeout p').textContent.includes('29 seconds')",
        timeout=3000,
    )
    shot(k, screenshot_dir, "timeout-warning")
    tap(k.page, "button[data-action=more_time]", "identify")
    assert not dialog.is_visible()
    assert ("more_time", {}) in k.bridge.taps


def test_listen_plays_the_screen_prompt_in_the_current_language(
    kiosk: Kiosk, audio_dir: Path
) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=cy]", "identify")
    k.page.click("button[data-action=listen]")
    k.page.wait_for_function(
        "() => document.getElementById('prompt').readyState >= 1 &&"
        " isFinite(document.getElementById('prompt').duration)",
        timeout=5000,
    )
    src: str = k.page.evaluate("document.getElementById('prompt').currentSrc")
    assert src.endswith("/audio/cy/identify.wav")
    with wave.open(str(audio_dir / "cy" / "identify.wav")) as w:
        seconds = w.getnframes() / w.getframerate()
    assert abs(k.page.evaluate("document.getElementById('prompt').duration") - seconds) < 0.1


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


def test_tap_to_render_is_fast(kiosk: Kiosk) -> None:
    k = kiosk
    wait_screen(k.page, "idle")
    tap(k.page, "button[data-lang-arg=en]", "identify")
    for _ in range(10):
        tap(k.page, "button[data-digit='1']", "identify")
        tap(k.page, "button[data-action=delete]", "identify")
    samples: list[Any] = k.page.evaluate("window.kioskMetrics.tapToRender")
    assert len(samples) == 21
    assert sorted(samples)[int(0.95 * len(samples))] <= 100
