"""The kiosk shell: Chromium's kiosk flags, the start-URL hand-off, and the supervisor that
restarts the browser when it dies, when the page stops talking, or when the URL changes."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import FakeClock
from daemon.ui.catalog import Catalogue
from daemon.ui.heartbeat import HeartbeatWatch
from daemon.ui.preview import LiveUi, PreviewBridge
from daemon.ui.shell import (
    ShellError,
    Supervisor,
    browser_command,
    check_url,
    page_alive,
    write_fallback_page,
    write_start_url,
)
from hil.bench.ui import CHROMIUM, CHROMIUM_FLAGS
from tests.ui.conftest import axe_violations, needs_browser

CAT = Catalogue.load()

URL = "http://127.0.0.1:8765/k/abcdefghijklmnopqrstuvwxyz/"


def test_kiosk_flags_stop_bubbles_zoom_swipes_and_first_run() -> None:
    cmd = browser_command(URL, Path("/run/kiosk-ui/p"))
    assert cmd[:4] == ["/usr/bin/cage", "-d", "--", "/usr/bin/chromium"]
    for flag in [
        "--kiosk",
        "--noerrdialogs",
        "--disable-session-crashed-bubble",
        "--disable-pinch",
        "--overscroll-history-navigation=0",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--password-store=basic",
        "--user-data-dir=/run/kiosk-ui/p",
    ]:
        assert flag in cmd, flag
    assert cmd[-1] == URL
    assert browser_command(URL, Path("/p"), cage=False)[0] == "/usr/bin/chromium"


@pytest.mark.parametrize(
    "url",
    [
        "http://192.168.1.5:8765/k/abcdefghijklmnopqrstuvwxyz/",
        "https://127.0.0.1:8765/k/abcdefghijklmnopqrstuvwxyz/",
        "http://127.0.0.1:8765/",
        "http://127.0.0.1:x/k/abcdefghijklmnopqrstuvwxyz/",
        "file:///etc/passwd",
    ],
)
def test_only_the_local_ui_is_accepted(url: str) -> None:
    with pytest.raises(ShellError, match=r"restart kiosk\.service"):
        check_url(url)


def test_start_url_is_published_atomically_for_owner_and_group(tmp_path: Path) -> None:
    path = tmp_path / "ui-url"
    write_start_url(path, URL)
    assert path.read_text() == URL + "\n"
    assert stat.S_IMODE(path.stat().st_mode) & 0o777 == 0o640 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["ui-url"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def stand_in_browser(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )


def test_a_page_that_stops_talking_gets_the_browser_restarted(
    tmp_path: Path, notify: socket.socket
) -> None:
    clock = FakeClock()
    watch = HeartbeatWatch(clock, stale_after_s=15, start_grace_s=60)
    with LiveUi(PreviewBridge(), watch=watch) as ui:
        write_start_url(tmp_path / "ui-url", ui.url)
        children: list[subprocess.Popen[bytes]] = []
        messages: list[str] = []
        polls = 0

        def spawn(url: str) -> subprocess.Popen[bytes]:
            children.append(stand_in_browser(url))
            return children[-1]

        def sleep(_s: float) -> None:
            nonlocal polls
            # Read as systemd does: a unix datagram queue holds only ~10 messages.
            messages.extend(received(notify))
            polls += 1
            if 3 <= polls <= 5:
                watch.beat()  # the new page beats from its third poll, three times
            clock.advance(10)

        # A browser that was stale before this one started: its first polls fall in the
        # start grace, so the new page gets time to load before anything counts.
        clock.advance(100)
        sup = Supervisor(
            url_file=tmp_path / "ui-url",
            spawn=spawn,
            sleep=sleep,
            clock=lambda: clock.monotonic_ns() / 1e9,
            start_grace_s=25,
        )
        why = sup.run()
    assert why == "page_stale"
    assert polls == 6  # two in the grace, three each 10 s after a beat, then 20 s without one

    assert children[0].poll() is not None, "the old browser is stopped"
    messages.extend(received(notify))
    assert messages[0].startswith("READY=1")
    assert messages.count("WATCHDOG=1") == 5  # none once the page went quiet


def test_a_new_url_restarts_the_browser(tmp_path: Path, notify: socket.socket) -> None:
    with LiveUi(PreviewBridge()) as ui:
        write_start_url(tmp_path / "ui-url", ui.url)

        def sleep(_s: float) -> None:
            write_start_url(tmp_path / "ui-url", URL)  # kiosk.service restarted

        why = Supervisor(url_file=tmp_path / "ui-url", spawn=stand_in_browser, sleep=sleep).run()
    assert why == "new_url"


def test_no_url_from_the_daemon_is_an_error_that_says_what_to_check(tmp_path: Path) -> None:
    t = [0.0]

    def sleep(s: float) -> None:
        t[0] += s

    sup = Supervisor(
        url_file=tmp_path / "missing",
        spawn=stand_in_browser,
        sleep=sleep,
        clock=lambda: t[0],
        url_wait_s=5,
    )
    with pytest.raises(ShellError, match=r"check that kiosk\.service is running"):
        sup.run()


def test_the_reception_page_is_the_uis_own_words_in_both_languages(tmp_path: Path) -> None:
    url = write_fallback_page(tmp_path, audio_dir=tmp_path / "no-prompts-made")
    assert url == (tmp_path / "reception.html").as_uri()
    page = (tmp_path / "reception.html").read_text()
    assert page.index("Ewch i’r dderbynfa") < page.index("Please go to reception")  # Welsh first
    assert "This is not your fault" in page and "Nid eich bai chi yw hyn" in page
    assert "<script" not in page and "http" not in page  # nothing to run, nothing to fetch
    assert browser_command(url, tmp_path / "p")[-1] == url  # the browser may be sent there
    with pytest.raises(ShellError):
        browser_command((tmp_path / "elsewhere.html").as_uri(), tmp_path / "p")


def test_while_the_daemon_does_not_answer_the_browser_says_go_to_reception(
    tmp_path: Path, notify: socket.socket
) -> None:
    """kiosk.service is down (a URL from its last run is still on disk): after a short wait
    the browser shows the reception page, READY and WATCHDOG go to systemd (nothing is
    wrong with the shell), and when kiosk.service answers the browser moves to the live UI."""
    write_start_url(tmp_path / "ui-url", URL)  # stale: nothing listens there
    fallback = write_fallback_page(tmp_path)
    t = [0.0]
    spawned: list[str] = []
    children: list[subprocess.Popen[bytes]] = []
    messages: list[str] = []
    with LiveUi(PreviewBridge()) as ui:

        def spawn(url: str) -> subprocess.Popen[bytes]:
            spawned.append(url)
            children.append(stand_in_browser(url))
            return children[-1]

        def sleep(s: float) -> None:
            messages.extend(received(notify))  # as systemd would: the queue holds ~10
            t[0] += s
            if t[0] > 60:  # a minute later kiosk.service is back, on a new address
                write_start_url(tmp_path / "ui-url", ui.url)
            if len(spawned) == 2:
                sup.stop_requested = True

        sup = Supervisor(url_file=tmp_path / "ui-url", spawn=spawn, sleep=sleep,
                         clock=lambda: t[0], fallback_url=fallback,
                         fallback_after_s=15)  # fmt: skip
        assert sup.run() == "stopped"
    assert spawned == [fallback, ui.url]
    assert children[0].poll() is not None, "the reception page is closed for the live UI"
    messages.extend(received(notify))
    assert messages[0].startswith("READY=1") and "WATCHDOG=1" in messages


def test_a_short_wait_for_the_daemon_shows_nothing(tmp_path: Path) -> None:
    """A normal start takes seconds: no "go to reception" flashes by."""
    t = [0.0]
    spawned: list[str] = []
    with LiveUi(PreviewBridge()) as ui:

        def sleep(s: float) -> None:
            t[0] += s
            if t[0] >= 5:
                write_start_url(tmp_path / "ui-url", ui.url)
            if spawned:
                sup.stop_requested = True

        def spawn(url: str) -> subprocess.Popen[bytes]:
            spawned.append(url)
            return stand_in_browser(url)

        fallback = write_fallback_page(tmp_path)
        sup = Supervisor(url_file=tmp_path / "ui-url", spawn=spawn, sleep=sleep,
                         clock=lambda: t[0], fallback_url=fallback)  # fmt: skip
        assert sup.run() == "stopped"
    assert spawned == [ui.url]


@needs_browser
def test_the_reception_page_speaks_its_words_in_each_language(
    tmp_path: Path, audio_dir: Path, browser: Any
) -> None:
    """For people who read poorly: each panel's Listen, in its own language, plays the words
    the page shows (the prompts install-kiosk.sh made), from the local file, in real Chromium,
    while there is no daemon to ask. The page passes axe-core's WCAG rules like the UI's."""
    url = write_fallback_page(tmp_path, audio_dir=audio_dir)
    page_text = (tmp_path / "reception.html").read_text()
    assert "http" not in page_text  # nothing from the network, the sounds are local files
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url)
        assert axe_violations(page) == []
        for lang in ("cy", "en"):
            button = page.locator(f"button[data-play={lang}]")
            assert button.inner_text().strip() == CAT.text(lang, "common.listen")
            icon = button.locator("svg").bounding_box()  # the UI's speaker, not an emoji
            assert icon is not None and icon["width"] >= 20 and icon["height"] >= 20
            button.click()
            page.wait_for_function(
                "(l) => { const a = document.getElementById('say-' + l);"
                " return !a.error && isFinite(a.duration) && a.played.length > 0; }",
                arg=lang,
                timeout=10_000,
            )
            seconds = page.evaluate(f"document.getElementById('say-{lang}').duration")
            with wave.open(str(audio_dir / lang / "lost.wav")) as w:
                assert abs(seconds - w.getnframes() / w.getframerate()) < 0.05
    finally:
        page.close()
    assert errors == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium missing: run hil/test_deps.sh")
def test_real_chromium_shows_the_reception_page(tmp_path: Path) -> None:
    url = write_fallback_page(tmp_path)
    dom = subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "Please go to reception" in dom and "Ewch i’r dderbynfa" in dom


def test_daemon_down_is_not_a_page_fault() -> None:
    assert page_alive("http://127.0.0.1:9/k/abcdefghijklmnopqrstuvwxyz/", 0.5) is None


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium missing: run hil/test_deps.sh")
def test_real_chromium_heartbeats_then_its_death_is_noticed(tmp_path: Path) -> None:
    """The real browser loads the page, whose heartbeat keeps the watchdog fed; killing the
    browser ends the run so systemd can restart it."""
    bridge = PreviewBridge()
    with LiveUi(bridge) as ui:
        write_start_url(tmp_path / "ui-url", ui.url)
        children: list[subprocess.Popen[bytes]] = []

        def spawn(url: str) -> subprocess.Popen[bytes]:
            children.append(
                subprocess.Popen(
                    [
                        str(CHROMIUM),
                        *CHROMIUM_FLAGS,
                        f"--user-data-dir={tmp_path / 'profile'}",
                        url,
                    ],
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            return children[-1]

        def sleep(_s: float) -> None:
            deadline = time.monotonic() + 20
            while ui.call(lambda: bridge.heartbeats) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            os.killpg(children[0].pid, 9)
            children[0].wait(5)

        why = Supervisor(url_file=tmp_path / "ui-url", spawn=spawn, sleep=sleep).run()
    assert why == "browser_exited"
    assert bridge.heartbeats >= 2
