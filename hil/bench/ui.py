"""UI benchmark: tap → next screen rendered, and page weight, measured in Debian's Chromium.

Figures (``make bench``):

- ``ui.tap_to_render_p95_ms`` (target ≤ 100) and ``ui.tap_to_render_p50_ms``: from the tap's
  event timestamp to the first animation frame showing the new view, measured by the page
  itself (``window.kioskMetrics``), over full check-ins and keypad taps through the real
  server (HTTP POST → bridge → server-sent event → render).
- ``ui.page_weight_kb`` (target ≤ 300): every byte the server sends to load the page and
  show its first screen (headers and bodies: HTML, JS, CSS, icon, the first event), counted
  by an ASGI wrapper around the real app.
- ``ui.screen_update_kb``: bytes per later screen (one event).
- ``ui.external_requests`` (target 0): requests the page made to anything but the server.

The browser is the system's ``/usr/bin/chromium`` driven by Playwright (``pip install
playwright``; never ``playwright install``); hil/ui_deps.sh installs Chromium on Debian.
The view source is :class:`daemon.ui.preview.PreviewBridge`, so this measures the UI, not the
flow. Runs in about 10 s.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.bench import Figure

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page, Playwright

    from daemon.ui.preview import LiveUi

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--autoplay-policy=no-user-gesture-required",
]
VIEWPORT = {"width": 1280, "height": 720}  # the 7" Touch Display 2 in landscape


def launch_chromium(pw: Playwright, user_data_dir: Path) -> BrowserContext:
    """Debian's Chromium, headless, with a throw-away profile. Raises FileNotFoundError with
    what to do when it is not installed."""
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing; run hil/ui_deps.sh as root")
    return pw.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_FLAGS,
        viewport=VIEWPORT,  # type: ignore[arg-type]
        has_touch=True,
    )


def wait_screen(page: Page, screen: str, *, after_seq: int = -1, timeout_ms: int = 5000) -> int:
    """Wait until the page shows ``screen`` with a sequence number above ``after_seq``;
    returns that sequence number."""
    page.wait_for_function(
        "([s, n]) => { const m = document.getElementById('screen');"
        " return m.dataset.screen === s && Number(m.dataset.seq) > n; }",
        arg=[screen, after_seq],
        timeout=timeout_ms,
    )
    return int(page.eval_on_selector("#screen", "m => m.dataset.seq"))


def seq(page: Page) -> int:
    return int(page.eval_on_selector("#screen", "m => m.dataset.seq"))


def tap(page: Page, selector: str, screen: str) -> None:
    """Tap a button and wait for the next view showing ``screen``."""
    before = seq(page)
    page.click(selector)
    wait_screen(page, screen, after_seq=before)


#: Answers that raise no flag (``course_attended`` is flagged when ``no``).
CALM_ANSWERS = {
    "address_changed": "no",
    "phone_changed": "no",
    "work_changed": "no",
    "police_contact": "no",
    "wellbeing": "good",
    "speak_to_someone": "no",
    "course_attended": "yes",
}


def wait_answer_ready(page: Page) -> None:
    """Wait out the page's guard against a tap bouncing onto a new question (docs/ui.md), as a
    person who reads the question does."""
    page.wait_for_function(
        "() => performance.now() >= Number(document.getElementById('screen')"
        ".dataset.answerReadyAt || 0)"
    )


def answer_questions(page: Page, answers: dict[str, str] | None = None) -> None:
    """Answer every question on the questions screen by tapping (calm answers by default;
    the page names the question's id on its options)."""
    chosen = {**CALM_ANSWERS, **(answers or {})}
    while page.eval_on_selector("#screen", "m => m.dataset.screen") == "questions":
        qid = page.eval_on_selector("[data-options]", "el => el.dataset.question")
        before = seq(page)
        wait_answer_ready(page)
        page.click(f"button[data-value={chosen[qid]}]")
        page.wait_for_function(
            "n => Number(document.getElementById('screen').dataset.seq) > n", arg=before
        )


def identify(page: Page, lang: str, ref: str, dob: str) -> None:
    """Idle → the fingerprint screen: language, case reference, date of birth."""
    wait_screen(page, "idle")
    tap(page, f"button[data-lang-arg={lang}]", "identify")
    for digit in ref:
        tap(page, f"button[data-digit='{digit}']", "identify")
    tap(page, "button[data-action=submit]", "identify")
    for digit in dob:
        tap(page, f"button[data-digit='{digit}']", "identify")
    tap(page, "button[data-action=submit]", "fingerprint")


def normal_checkin(page: Page, live: LiveUi, lang: str = "en") -> None:
    """Idle → done → idle through the real flow (preview effects), by taps and a finger."""
    from daemon.ui.preview import PERSON

    identify(page, lang, *PERSON)
    before = seq(page)
    live.call(lambda: live.bridge.present_finger(matches=True))
    wait_screen(page, "photo", after_seq=before)
    tap(page, "button[data-action=photo]", "questions")
    answer_questions(page)
    tap(page, "button[data-action=read]", "confirm")
    tap(page, "button[data-action=finish]", "done")
    tap(page, "button[data-action=continue]", "idle")


class ByteCounter:
    """ASGI middleware adding every response byte (status line and headers approximated by
    their raw lengths, plus bodies) to ``sink.bytes``."""

    def __init__(self, app: Callable[..., Awaitable[None]], sink: Tally) -> None:
        self.app = app
        self.sink = sink

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        async def counting(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.sink.bytes += 17 + sum(len(k) + len(v) + 4 for k, v in message["headers"])
            elif message["type"] == "http.response.body":
                self.sink.bytes += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting)


class Tally:
    bytes = 0


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def figures() -> dict[str, Figure]:
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="kiosk-ui-bench-") as tmp,
        sync_playwright() as pw,
    ):
        from daemon.ui.preview import LiveUi, PreviewBridge

        counter = Tally()
        live = LiveUi(
            PreviewBridge(), configure=lambda app: app.add_middleware(ByteCounter, sink=counter)
        )
        live.start()
        context = launch_chromium(pw, Path(tmp))
        try:
            page = context.new_page()
            external: list[str] = []
            origin = live.url.split("/k/")[0]
            page.on(
                "request", lambda r: None if r.url.startswith(origin) else external.append(r.url)
            )
            page.goto(live.url)
            wait_screen(page, "idle")
            time.sleep(0.2)  # let the favicon request land
            weight = counter.bytes
            for _ in range(5):
                normal_checkin(page, live)
            tap(page, "button[data-lang-arg=en]", "identify")
            before_updates = counter.bytes
            updates = 0
            for i in range(40):
                if i % 2:
                    tap(page, "button[data-action=delete]", "identify")
                else:
                    tap(page, "button[data-digit='7']", "identify")
                updates += 1
            per_update = (counter.bytes - before_updates) / updates
            taps = page.evaluate("window.kioskMetrics.taps")
            page.wait_for_function(
                "n => window.kioskMetrics.tapToRender.length >= n", arg=taps, timeout=2000
            )
            samples: list[float] = page.evaluate("window.kioskMetrics.tapToRender")
        finally:
            context.close()
            live.stop()
    return {
        "ui.tap_to_render_p95_ms": {
            "value": round(_p(samples, 0.95), 1),
            "unit": "ms",
            "target": "<= 100",
            "note": f"{len(samples)} taps in headless Chromium through the real server",
        },
        "ui.tap_to_render_p50_ms": {"value": round(statistics.median(samples), 1), "unit": "ms"},
        "ui.page_weight_kb": {
            "value": round(weight / 1024, 1),
            "unit": "KB",
            "target": "<= 300",
            "note": "page load to first screen: HTML, JS, CSS, icon, first event",
        },
        "ui.screen_update_kb": {"value": round(per_update / 1024, 1), "unit": "KB"},
        "ui.external_requests": {"value": float(len(external)), "unit": "requests", "target": "0"},
    }


if __name__ == "__main__":
    for name, fig in figures().items():
        print(f"{name:32s} {fig['value']:>10} {fig['unit']}")
