"""The touchscreen against the REAL daemon: ``run_kiosk`` (the composition root) with
simulated hardware (the fingerprint emulator speaking its byte protocol, the synthetic camera,
mock GPIO), ``serve_checkins`` mounting this UI on 127.0.0.1, the real outbox and a real
``kiosk sync`` process delivering to the reference central API over HTTPS. Debian's Chromium
(headless, Playwright) taps through the check-ins; the records are then read back from the
API and their signatures and chain verified.

Four check-ins: a normal one in English, a Welsh one with an officer's message, a fallback
(a finger too dry to read, three times) and an escalation (a flagged answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from daemon.app import KioskCore, run_kiosk
from daemon.config import load_config
from daemon.demo_support import PEOPLE, DemoDevice, appointment_at, provision, publish_roster
from daemon.records import Record, verify_chain
from daemon.ui.catalog import Catalogue
from daemon.ui.present import spell_datetime
from daemon.ui.shell import page_alive
from hil.bench.ui import answer_questions, seq, tap, wait_screen
from hil.fingerprint.fingers import Condition
from hil.refapi.server import RefApi, free_loopback_port
from tests.ui.conftest import needs_browser

pytestmark = [needs_browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RealKiosk:
    api: RefApi
    device: DemoDevice
    core: KioskCore
    loop: asyncio.AbstractEventLoop
    url: str

    def present_finger(self, ref: str, condition: Condition = Condition.GOOD) -> None:
        person = next(p for p in PEOPLE if p.ref == ref)
        assert self.core.hardware is not None
        self.core.hardware.emulator.present_finger(ref, person.finger, condition)

    def lift_finger(self) -> None:
        assert self.core.hardware is not None
        self.core.hardware.emulator.lift_finger()

    def records_at_api(self, at_least: int, timeout_s: float = 30.0) -> list[Record]:
        """Wait until the API holds ``at_least`` records from this kiosk; verify them all
        (signature and hash chain) with the device's public key."""
        deadline = time.monotonic() + timeout_s
        while True:
            store = self.api.storage()
            try:
                compacts = [c for _d, _s, c in store.export(self.device.id)]
            finally:
                store.close()
            if len(compacts) >= at_least or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(compacts) >= at_least, f"only {len(compacts)} records reached the API"
        public = self.device.key.load().public_key()
        return verify_chain(compacts, public, self.device.id, head_seq=len(compacts))


@pytest.fixture(scope="module")
def real_kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealKiosk]:
    folder = tmp_path_factory.mktemp("real-kiosk")
    api = RefApi(folder / "api")
    api.start()
    sync: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None
    box: dict[str, Any] = {}
    try:
        device = provision(api, folder / "kiosk", extra=f"\n[ui]\nport = {free_loopback_port()}\n")
        publish_roster(api, device)
        with (folder / "sync.log").open("wb") as log:
            sync = subprocess.Popen(
                [sys.executable, "-m", "daemon", "sync", "--config", str(device.config_path)],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            )  # fmt: skip
        _wait(lambda: (device.data_dir / "roster.json").exists(), 30, "the roster to arrive")
        cfg = load_config(device.config_path)

        async def serve(core: KioskCore, stop: asyncio.Event) -> None:
            from daemon.kiosk import serve_checkins

            box["core"], box["stop"] = core, stop
            await serve_checkins(core, stop)

        def main() -> None:
            loop = asyncio.new_event_loop()
            box["loop"] = loop
            try:
                loop.run_until_complete(run_kiosk(cfg, serve=serve))
            except BaseException as exc:  # reported to the test below
                box["error"] = exc
            finally:
                loop.close()

        thread = threading.Thread(target=main, name="kiosk", daemon=True)
        thread.start()
        url_file = device.data_dir / "ui-url"
        _wait(lambda: url_file.exists() or "error" in box, 30, "kiosk.service to publish its UI")
        if "error" in box:
            raise box["error"]
        yield RealKiosk(api, device, box["core"], box["loop"], url_file.read_text().strip())
    finally:
        if "stop" in box:
            box["loop"].call_soon_threadsafe(box["stop"].set)
        if thread is not None:
            thread.join(15)
        if sync is not None:
            sync.terminate()
            sync.wait(10)
        api.stop()


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def page(real_kiosk: RealKiosk, browser: Any) -> Iterator[Any]:
    p = browser.new_page()
    external: list[str] = []
    origin = real_kiosk.url.split("/k/")[0]
    p.on("request", lambda r: None if r.url.startswith(origin) else external.append(r.url))
    p.goto(real_kiosk.url)
    wait_screen(p, "idle", timeout_ms=15000)
    yield p
    p.close()
    assert external == []


def screen(page: Any) -> str:
    return str(page.eval_on_selector("#screen", "m => m.dataset.screen"))


def check_in(
    page: Any,
    kiosk: RealKiosk,
    ref: str,
    dob: str,
    *,
    lang: str,
    condition: Condition = Condition.GOOD,
    answers: dict[str, str] | None = None,
) -> str:
    """Tap through one check-in as the person would; returns the final screen."""
    wait_screen(page, "idle", timeout_ms=15000)
    tap(page, f"button[data-lang-arg={lang}]", "identify")
    for d in ref.removeprefix("CR-"):
        tap(page, f"button[data-digit='{d}']", "identify")
    tap(page, "button[data-action=submit]", "identify")
    yyyy, mm, dd = dob.split("-")
    for d in dd + mm + yyyy:
        tap(page, f"button[data-digit='{d}']", "identify")
    kiosk.present_finger(ref, condition)
    page.click("button[data-action=submit]")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = screen(page)
            if now in ("done", "see_reception"):
                return now
            if now == "fingerprint" and page.query_selector("button[data-action=continue]"):
                # try again; the screen may move on between seeing the button and the click
                # (a new view re-renders it), so look again rather than wait 30 s for it
                with contextlib.suppress(PlaywrightTimeout):
                    page.click("button[data-action=continue]", timeout=2000)
            elif now == "fallback":
                # a tap meant for the fingerprint screen's "continue" may already have landed
                # on this one (same button, re-rendered) and moved on: look again, not 30 s
                with contextlib.suppress(PlaywrightTimeout):
                    page.click("button[data-action=continue]", timeout=2000)
            elif now == "photo" and page.query_selector("button[data-action=photo]"):
                kiosk.lift_finger()
                tap(page, "button[data-action=photo]", "questions")
            elif now == "questions":
                answer_questions(page, answers)
            elif now == "messages":
                tap(page, "button[data-action=read]", "confirm")
            elif now == "confirm" and page.query_selector("button[data-action=finish]"):
                before = seq(page)
                page.click("button[data-action=finish]")
                page.wait_for_function(
                    "n => Number(document.getElementById('screen').dataset.seq) > n", arg=before
                )
            else:
                page.wait_for_timeout(50)
        raise AssertionError(f"stuck on {screen(page)}")
    finally:
        kiosk.lift_finger()


def person(ref: str) -> Any:
    return next(p for p in PEOPLE if p.ref == ref)


def _when(lang: str) -> str:
    """The synthetic people's next appointment as the screen spells it, e.g. "Monday 7
    December 2026 at 10:30" (a Monday a week or more ahead, so it is never past)."""
    return spell_datetime(appointment_at(), lang, Catalogue.load())


def test_four_check_ins_through_the_browser_reach_the_api_signed_and_chained(
    real_kiosk: RealKiosk, page: Any, screenshot_dir: Path
) -> None:
    k = real_kiosk
    # A simulated kiosk says so on screen.
    assert page.locator("#simulated").is_visible()
    # 1. Normal, in English.
    p = person("CR-900101")
    assert check_in(page, k, p.ref, p.dob, lang="en") == "done"
    assert page.inner_text("#screen .when").strip() == _when("en")
    page.screenshot(path=str(screenshot_dir / "real-daemon-en-done.png"))
    tap(page, "button[data-action=continue]", "idle")
    # 2. In Welsh, with a message from the officer.
    p = person("CR-900102")
    assert check_in(page, k, p.ref, p.dob, lang="cy") == "done"
    assert page.inner_text("#screen .when").strip() == _when("cy")
    assert page.evaluate("document.documentElement.lang") == "cy"
    page.screenshot(path=str(screenshot_dir / "real-daemon-cy-done.png"))
    tap(page, "button[data-action=continue]", "idle")
    # 3. A finger too dry to read: three tries, then the other way; still a check-in.
    p = person("CR-900103")
    assert check_in(page, k, p.ref, p.dob, lang="en", condition=Condition.DRY) == "done"
    assert page.locator("#screen .note").is_visible()  # flagged for review, not refused
    tap(page, "button[data-action=continue]", "idle")
    # 4. A flagged answer: recorded, then "please see reception".
    p = person("CR-900104")
    final = check_in(page, k, p.ref, p.dob, lang="en", answers={"course_attended": "no"})
    assert final == "see_reception"
    tap(page, "button[data-action=continue]", "idle")

    records = k.records_at_api(at_least=5)  # boot + four check-ins
    people = {r.payload.get("person"): r for r in records if r.payload.get("person")}
    assert people["CR-900101"].type == "checkin"
    assert people["CR-900101"].payload["verify"]["method"] == "fingerprint"
    assert people["CR-900102"].type == "checkin"
    assert people["CR-900103"].type == "checkin_fallback"
    assert "id_review" in people["CR-900103"].payload["flags"]
    assert people["CR-900104"].type == "see_officer"
    assert people["CR-900104"].payload["answers"]["course_attended"] is False
    assert [r.type for r in records].count("boot") == 1
    boot = next(r for r in records if r.type == "boot")
    assert boot.payload["detail"]["slots"] is None  # not an A/B card: no slot to report
    # The page's heartbeat reached the daemon all along: the shell would keep it running.
    assert page_alive(k.url) is True


def test_the_running_kiosk_passes_the_self_test_an_update_is_judged_by(
    real_kiosk: RealKiosk, page: Any
) -> None:
    """What ``kioskctl selftest --commit`` reads after an update's trial boot, from this real
    daemon with the real browser on its screen: every part passes (the services row is a
    warning only because this test runs the daemon without systemd)."""
    from daemon import health
    from daemon.kioskctl import selftest

    since = time.time()  # the page is loaded and idle: a report written from now on

    def fresh_with_heartbeat() -> bool:
        found = health.read(health.candidates(real_kiosk.device.data_dir))
        return (
            found is not None
            and found[1]["at"] > since
            and found[1].get("ui_beat_age_s") is not None
        )

    _wait(fresh_with_heartbeat, 15, "a health report with the page's heartbeat")
    found = health.read(health.candidates(real_kiosk.device.data_dir))
    assert found is not None
    path, report = found
    assert path.parent == real_kiosk.device.data_dir  # no $RUNTIME_DIRECTORY outside systemd
    assert (path.stat().st_mode & 0o777) == 0o640
    rows = selftest.evaluate(report, None, allow_simulated=True)
    verdict = {r.name: r.status for r in rows}
    assert verdict == {
        "services": "warn",
        "health report": "pass",
        "outbox": "pass",
        "fingerprint": "pass",
        "camera": "pass",
        "display": "pass",
        "screen": "pass",
    }, rows
    assert report["camera_probe"] == "ok"
    assert report["busy"] is False  # idle: an update may reboot now
    assert not {"person", "ref", "case", "name"} & set(report)  # nothing about anyone
