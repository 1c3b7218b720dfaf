"""The kiosk shell run by ``kiosk-ui.service``: ``cage`` with ``chromium --kiosk`` on the
local UI, supervised.

1. waits for the start URL (with the per-boot token) that kiosk.service writes with
   :func:`write_start_url` (default ``/var/lib/kiosk/ui-url``, mode 0640) and for the daemon
   to answer on it. If it has not after :data:`FALLBACK_AFTER_S` (kiosk.service crash-looping,
   or stopped on a configuration or device error), the browser shows a page of its own
   (:func:`write_fallback_page`: "please go to reception; this is not your fault" in Welsh and
   English) until it does, so a person never meets a blank screen or the browser's error
   page, and the browser moves to the live screen once it answers;
2. starts ``cage -- chromium --kiosk <flags> <url>`` (:func:`browser_command`) with a fresh
   profile in ``$RUNTIME_DIRECTORY``, so no restore-session or crash bubble can ever show;
3. every :data:`POLL_S` asks the UI server's ``health`` whether the page still sends its
   heartbeat; ``WATCHDOG=1`` goes to systemd only while it does (or while the daemon is down,
   which no browser restart can fix: the page shows "reconnecting");
4. exits non-zero, and systemd (``Restart=always``) starts everything again, when the
   browser exits, the page stops talking, or the daemon hands out a new URL (it restarted
   with a new token).

Run: ``python -m daemon.ui.shell [--url-file PATH] [--browser-only]``. Blocking, one thread.

May import: the standard library and daemon.sdnotify / daemon.ui.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon import sdnotify
from daemon.errors import ConfigError
from daemon.ui.audio import INSTALLED_DIR, LOST, LOST_KEYS
from daemon.ui.catalog import LANGUAGES, Catalogue
from daemon.ui.server import LOOPBACK

log = logging.getLogger(__name__)

URL_FILE = Path("/var/lib/kiosk/ui-url")
POLL_S = 5.0
URL_WAIT_S = 120.0
START_GRACE_S = 45.0
HEALTH_TIMEOUT_S = 2.0
#: how long the shell waits for kiosk.service before the browser shows the fallback page (a
#: normal start takes a few seconds; a person should not see "go to reception" flash by)
FALLBACK_AFTER_S = 15.0
FALLBACK_NAME = "reception.html"

# Chromium as a kiosk: no crash bubbles or error dialogs, no first-run or default-browser
# prompts, no pinch-zoom, no swipe back/forward, no translate bar, no background traffic,
# no keyring prompt, audio prompts allowed without a gesture.
CHROMIUM_KIOSK_FLAGS: tuple[str, ...] = (
    "--kiosk",
    "--noerrdialogs",
    "--disable-session-crashed-bubble",
    "--disable-infobars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-pinch",
    "--overscroll-history-navigation=0",
    "--disable-features=TouchpadOverscrollHistoryNavigation,Translate,MediaRouter",
    "--disable-translate",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--password-store=basic",
    "--autoplay-policy=no-user-gesture-required",
    "--hide-scrollbars",
    "--touch-events=enabled",
    "--ozone-platform=wayland",
)


class ShellError(ConfigError):
    """The kiosk shell cannot start: no start URL from kiosk.service, or a URL that is not
    the local UI. Check that kiosk.service is running (systemctl status kiosk)."""

    reason = "ui_shell"


def write_start_url(path: Path, url: str) -> None:
    """Called by kiosk.service after serve_ui: publish the start URL (it holds the token)
    atomically, readable by the owner and group only (mode 0640)."""
    check_url(url)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, url.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def check_url(url: str) -> str:
    """Accept only the local UI (http://127.0.0.1:<port>/k/<token>/); raise ShellError."""
    prefix = f"http://{LOOPBACK}:"
    rest = url[len(prefix) :] if url.startswith(prefix) else ""
    port, _, path = rest.partition("/")
    if not (port.isdigit() and path.startswith("k/") and path.endswith("/") and len(path) > 20):
        raise ShellError("the UI start URL is not the local kiosk UI; restart kiosk.service")
    return url


def read_start_url(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return check_url(text) if text else None


#: plays a panel's words when its Listen button is touched (the page's only script: no fetch,
#: no network; the sound is a local file)
_FALLBACK_SCRIPT = (
    "<script>document.addEventListener('click',function(e){"
    "var b=e.target.closest('button[data-play]');if(!b)return;"
    "var a=document.getElementById('say-'+b.dataset.play);a.currentTime=0;a.play()})</script>"
)


def _speaker_icon() -> str:
    """The UI's own speaker pictogram (its ``i-speaker`` symbol in index.html), inline: the
    page is a file with nothing beside it, and an emoji would need a colour-emoji font that
    the image does not carry (it showed as an empty box). Empty when index.html lacks it."""
    page = (Path(__file__).resolve().parent / "static" / "index.html").read_text("utf-8")
    found = re.search(r'<symbol id="i-speaker" viewBox="0 0 24 24">(.*?)</symbol>', page)
    if found is None:
        return ""
    return f'<svg viewBox="0 0 24 24" aria-hidden="true">{found.group(1)}</svg>'


def write_fallback_page(
    folder: Path, catalogue: Catalogue | None = None, audio_dir: Path = INSTALLED_DIR
) -> str:
    """Write the page the browser shows while kiosk.service does not answer, from the UI's
    own catalogue (the words of the page's "lost" cover, Welsh first as on every screen);
    return its ``file://`` URL. Nothing is fetched from the network. Each panel has a Listen
    button that speaks its words when ``audio_dir`` holds that language's ``lost.wav`` (made
    by ``python -m daemon.ui.audio``, as the page's own cover does), for people who read
    poorly; without it the panel shows the words only."""
    catalogue = catalogue or Catalogue.load()
    panels: list[str] = []
    spoken = False
    for lang in sorted(LANGUAGES, key=lambda lang: lang != "cy"):
        sound = audio_dir / lang / f"{LOST}.wav"
        listen = (
            f'<button data-play="{lang}">{_speaker_icon()}'
            f"{html.escape(catalogue.text(lang, 'common.listen'))}</button>"
            f'<audio id="say-{lang}" preload="auto" '
            f'src="{html.escape(sound.resolve().as_uri())}"></audio>'
            if sound.is_file()
            else ""
        )
        spoken = spoken or bool(listen)
        panels.append(
            f'<section lang="{lang}"><h1>{html.escape(catalogue.text(lang, LOST_KEYS[0]))}</h1>'
            f"<p>{html.escape(catalogue.text(lang, LOST_KEYS[1]))}</p>{listen}</section>"
        )
    page = (
        '<!doctype html><html lang="cy"><meta charset="utf-8"><title>Kiosk</title><style>'
        "body{margin:0;font:1.6rem/1.4 sans-serif;background:#fff;color:#111;"
        "cursor:none;user-select:none}main{display:flex;min-height:100vh;align-items:center;"
        "justify-content:center;gap:4rem}section{max-width:40%}h1{font-size:2.6rem;margin:0 0 1rem}"
        "button{font:inherit;min-height:4rem;min-width:12rem;margin-top:1.5rem;padding:0 1.5rem;"
        "border:3px solid #111;border-radius:.75rem;background:#fff;color:#111;display:inline-flex;"
        "align-items:center;gap:.5em}svg{width:1.3em;height:1.3em;fill:none;stroke:currentColor;"
        "stroke-width:2;stroke-linecap:round;stroke-linejoin:round}"
        f"</style><body><main>{''.join(panels)}</main>{_FALLBACK_SCRIPT if spoken else ''}"
        "</body></html>"
    )
    path = folder / FALLBACK_NAME
    path.write_text(page, encoding="utf-8")
    return path.as_uri()


def _page_url(url: str) -> str:
    """The local UI, or the fallback page (a ``file://`` URL of :data:`FALLBACK_NAME`)."""
    if url.startswith("file:///") and url.endswith("/" + FALLBACK_NAME):
        return url
    return check_url(url)


def browser_command(url: str, profile: Path, *, cage: bool = True) -> list[str]:
    """The command line: ``cage -d -- chromium <flags> --user-data-dir=<profile> <url>``."""
    chromium = [
        "/usr/bin/chromium",
        *CHROMIUM_KIOSK_FLAGS,
        f"--user-data-dir={profile}",
        _page_url(url),
    ]
    return ["/usr/bin/cage", "-d", "--", *chromium] if cage else chromium


def page_alive(url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool | None:
    """The UI server's verdict on the page heartbeat: True/False, or None when the daemon
    does not answer (down or restarting)."""
    try:
        with urllib.request.urlopen(url + "health", timeout=timeout_s) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return bool(answer.get("page_alive"))


@dataclass
class Supervisor:
    """One run of the shell. ``spawn`` starts the browser for a URL; ``clock`` is monotonic
    seconds; ``sleep`` waits. Injected so tests can run it with a stand-in browser process."""

    url_file: Path
    spawn: Callable[[str], subprocess.Popen[bytes]]
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    poll_s: float = POLL_S
    url_wait_s: float = URL_WAIT_S
    #: a new browser gets this long to load the page and beat before "stale" counts (the
    #: daemon's heartbeat age still reflects the previous browser)
    start_grace_s: float = START_GRACE_S
    #: the page shown while kiosk.service does not answer (:func:`write_fallback_page`);
    #: without one, the shell gives up after ``url_wait_s`` as it always did
    fallback_url: str | None = None
    fallback_after_s: float = FALLBACK_AFTER_S
    stop_requested: bool = False

    def wait_for_daemon(self) -> str:
        """The start URL once the daemon answers on it (a URL left from an earlier run does
        not count until it does). After ``fallback_after_s`` the browser shows the fallback
        page meanwhile, for as long as it takes; without a fallback, ShellError after
        ``url_wait_s``."""
        began = self.clock()
        shown: subprocess.Popen[bytes] | None = None
        try:
            while not self.stop_requested:
                url = read_start_url(self.url_file)
                if url and page_alive(url) is not None:
                    return url
                waited = self.clock() - began
                if self.fallback_url is None:
                    if waited > self.url_wait_s:
                        raise ShellError(
                            f"kiosk.service did not answer on a UI start URL from "
                            f"{self.url_file} for {self.url_wait_s:.0f} s; check that "
                            "kiosk.service is running",
                        )
                elif shown is None and waited >= self.fallback_after_s:
                    log.warning("kiosk.service does not answer; showing the reception page")
                    shown = self.spawn(self.fallback_url)
                    sdnotify.ready("kiosk.service not answering: showing the reception page")
                elif shown is not None:
                    if shown.poll() is not None:  # the browser died: show it again
                        shown = self.spawn(self.fallback_url)
                    sdnotify.watchdog()
                    sdnotify.status("kiosk.service not answering: showing the reception page")
                self.sleep(0.5 if shown is None else self.poll_s)
            raise ShellError("stopped before kiosk.service published the UI")
        finally:
            if shown is not None:
                _stop(shown)

    def run(self) -> str:
        """Run until something needs a restart; returns why (``browser_exited``,
        ``page_stale``, ``new_url``, ``stopped``). The browser is stopped on return."""
        url = self.wait_for_daemon()
        child = self.spawn(url)
        started = self.clock()
        sdnotify.ready("browser started")
        try:
            while not self.stop_requested:
                self.sleep(self.poll_s)
                if child.poll() is not None:
                    log.warning("the browser exited (status %s); restarting", child.returncode)
                    return "browser_exited"
                current = read_start_url(self.url_file)
                if current and current != url:
                    log.info("kiosk.service published a new UI address; restarting the browser")
                    return "new_url"
                alive = page_alive(url)
                if alive is False and self.clock() - started > self.start_grace_s:
                    log.warning("the page stopped sending heartbeats; restarting the browser")
                    sdnotify.status("page stopped talking; restarting")
                    return "page_stale"
                sdnotify.watchdog()
                sdnotify.status("page alive" if alive else "waiting for kiosk.service")
            return "stopped"
        finally:
            _stop(child)


def _stop(child: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    if child.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout_s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon.ui.shell", description=__doc__)
    parser.add_argument("--url-file", type=Path, default=URL_FILE)
    parser.add_argument(
        "--browser-only", action="store_true", help="run Chromium without cage (development)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    runtime = Path(os.environ.get("RUNTIME_DIRECTORY", tempfile.gettempdir()))
    profile = runtime / "chromium-profile"

    def spawn(url: str) -> subprocess.Popen[bytes]:
        shutil.rmtree(profile, ignore_errors=True)  # a fresh profile: nothing to restore
        return subprocess.Popen(
            browser_command(url, profile, cage=not args.browser_only), start_new_session=True
        )

    try:
        fallback = write_fallback_page(runtime)
    except (OSError, ConfigError) as exc:  # no words to show: the shell still runs the UI
        log.error("cannot write the reception page (%s); none will be shown", exc)
        fallback = None
    supervisor = Supervisor(url_file=args.url_file, spawn=spawn, fallback_url=fallback)

    def on_term(signum: int, frame: object) -> None:
        supervisor.stop_requested = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        why = supervisor.run()
    except ShellError as exc:
        log.error("%s", exc)
        return 1
    sdnotify.stopping()
    return 0 if why == "stopped" else 1


if __name__ == "__main__":
    raise SystemExit(main())
