"""Browser fixtures: Debian's Chromium (headless) driven by Playwright's sync API, the UI
served over a :class:`PreviewBridge` from a background thread.

Screenshots go to ``$KIOSK_UI_SCREENSHOTS`` when set (``docs/screenshots`` to refresh the
committed ones), else to a temporary folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.base import AXE_SCRIPT

from daemon.ui.audio import generate
from daemon.ui.preview import LiveUi, PreviewBridge
from hil.bench.ui import CHROMIUM, launch_chromium

needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which("espeak-ng") is None,
    reason="Chromium or espeak-ng missing: run hil/test_deps.sh as root (make test does)",
)


#: What axe-core checks on every screen: the WCAG 2.0-2.2 A and AA rules and its best
#: practices. One rule is off, on purpose: ``meta-viewport`` asks that pinch-zoom be allowed.
#: On a shared kiosk a zoom would stay for the next person, half the screen out of reach, with
#: no browser controls to undo it; text is enlarged by the page's own Bigger text button
#: instead, which keeps every control on screen (tests/ui/test_browser.py, large text).
AXE_RULES = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "rules": {"meta-viewport": {"enabled": False}},
    "resultTypes": ["violations"],
}


def axe_violations(page: Any) -> list[str]:
    """axe-core's findings on the page as it is now, one line per rule and element."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SCRIPT)  # axe-core, from the axe-playwright-python wheel
    found = page.evaluate("(rules) => axe.run(document, rules)", AXE_RULES)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {' '.join(n['target'])}"
        for v in found["violations"]
        for n in v["nodes"]
    ]


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audio")
    generate(out)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = launch_chromium(pw, tmp_path_factory.mktemp("chromium-profile"))
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def live(audio_dir: Path) -> Iterator[LiveUi]:
    with LiveUi(PreviewBridge(), audio_dir=audio_dir) as ui:
        yield ui


class Kiosk:
    """One page on the live UI, recording what a test must never see."""

    def __init__(self, page: Any, live: LiveUi) -> None:
        self.page = page
        self.live = live
        self.bridge = live.bridge
        self.origin = live.url.split("/k/")[0]
        self.external: list[str] = []  # attempted
        self.reached: list[str] = []  # answered
        self.errors: list[str] = []
        page.on("request", self._request)
        page.on(
            "requestfinished",
            lambda r: None if self._local(r.url) else self.reached.append(r.url),
        )
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on(
            "console",
            lambda m: self.errors.append(m.text) if m.type == "error" else None,
        )

    def _local(self, url: str) -> bool:
        # blob:<origin>/<uuid> is memory the page made from its own answers (the lost cover's
        # words), not a request: it stays on the machine. Any other blob: would be counted.
        return url.removeprefix("blob:").startswith(self.origin)

    def _request(self, request: Any) -> None:
        if not self._local(request.url):
            self.external.append(request.url)


@pytest.fixture
def kiosk(browser: Any, live: LiveUi) -> Iterator[Kiosk]:
    page = browser.new_page()
    k = Kiosk(page, live)
    page.goto(live.url)
    try:
        yield k
    finally:
        page.close()
    assert k.external == [], "the page must make no request off the machine"
    assert k.reached == []
    assert k.errors == [], k.errors


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("KIOSK_UI_SCREENSHOTS")
    out = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out
