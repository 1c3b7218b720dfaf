"""The real kiosk.service process, driven from outside the way its screen and sensor drive it.

``python -m daemon run`` (kiosk.service's command line) on a simulated kiosk, with nothing of
the bench inside it:

- the fingerprint sensor is the emulator in *this* process, served on a pty; the daemon opens
  that pty with its ``serial`` backend, as it opens ``/dev/serial0`` on a Pi, and speaks the
  sensor's byte protocol to it;
- taps go to the daemon's local UI on 127.0.0.1 as the page sends them (``POST tap``, with the
  screen they were made on), screens are read from its event stream, and the page's heartbeat
  is sent every two seconds;
- the camera is the synthetic one and GPIO the mock (``allow_simulated``);
- nothing listens at the API address: records stay in the outbox, as they do offline.

It can be killed (SIGKILL, as a crash or a power cut) and started again on the same data.
Used for ``daemon.ready_s`` and ``daemon.rss_mb`` (hil/bench/checkin.py), by the tests that
check people in through it (tests/integration/test_kiosk_process.py) and by the campaign that
kills it mid-check-in (tests/faults/test_process_kill.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from daemon.demo_script import DEFAULT_ANSWERS
from daemon.demo_support import Person, dob_hmac
from daemon.keys import FileKeyBackend
from daemon.outbox import Outbox
from daemon.records import decode_unverified
from daemon.sealing import (
    RosterKey,
    generate_keypair,
    public_from_private,
    public_to_b64,
    roster_key_path,
    seal_template,
)
from hil.fingerprint.emulator import SensorEmulator
from hil.fingerprint.fingers import make_template
from hil.refapi.server import free_loopback_port

ROOT = Path(__file__).resolve().parents[2]
#: screens a check-in ends on
ENDS = ("done", "see_reception")


class KioskProcessError(RuntimeError):
    """The daemon did not start, or a check-in did not get where it should."""


def simulated_device(folder: Path, *, fingerprint: str, ui_port: int = 8088) -> Path:
    """A simulated kiosk's keys and kiosk.toml (not enrolled: nothing here talks to an API);
    ``fingerprint`` is the body of its ``[fingerprint]`` table. Returns the config's path."""
    data = folder / "data"
    kb = FileKeyBackend(data / "device-key.pem")
    kb.create()
    RosterKey.create(roster_key_path(kb.path))
    private, _ = generate_keypair()
    cfg = folder / "kiosk.toml"
    cfg.write_text(
        f'[device]\nid = "kiosk-bench"\ndata_dir = "{data}"\nallow_simulated = true\n'
        f'[api]\nurl = "https://127.0.0.1:9/"\n'
        f'seal_public_key = "{public_to_b64(public_from_private(private))}"\n'
        f"[ui]\nport = {ui_port}\n"
        f"[fingerprint]\n{fingerprint}\n"
        '[camera]\nbackend = "simulated"\n[gpio]\nbackend = "mock"\n'
        '[display]\nbackend = "simulated"\n'
    )
    return cfg


def write_roster(data_dir: Path, people: list[Person]) -> None:
    """The roster kiosk-sync would have downloaded: each person's date of birth (salted HMAC)
    and one fingerprint template, sealed to this kiosk's roster key."""
    roster_pub = RosterKey.load(roster_key_path(data_dir / "device-key.pem")).public_bytes()
    salt = os.urandom(16)
    roster = {
        "office": "bench", "generated_at": "2026-11-23T08:00:00Z",
        "dob_salt": base64.b64encode(salt).decode(),
        "people": [
            {"ref": p.ref, "dob_hmac": dob_hmac(salt, p.dob),
             "templates": [{"finger": "right_index", "sealed": base64.b64encode(
                 seal_template(make_template(p.ref, p.finger, 1536), roster_pub)).decode()}],
             "next_appointment": None, "messages": [], "questions": []}
            for p in people
        ],
    }  # fmt: skip
    (data_dir / "roster.json").write_text(json.dumps(roster))


class KioskProcess:
    """One ``python -m daemon run`` process on a simulated kiosk in ``folder``.

    Use as a context manager: on entry the process is started and READY (``ready_s`` says how
    long that took), the event stream is open and the page's heartbeat runs; on exit it is
    stopped with SIGTERM, as systemd stops it. In between, :meth:`kill` or :meth:`stop` and
    :meth:`start` restart it; the emulated sensor stays plugged in throughout.
    """

    def __init__(self, folder: Path, people: list[Person]) -> None:
        self.folder = folder
        self.people = people
        self.emulator = SensorEmulator("R503", time_scale=0.0)
        self.cfg_path = folder / "kiosk.toml"
        self.data_dir = folder / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        #: start → READY=1 on the notify socket; start → the page served on 127.0.0.1
        self.ready_s = self.ui_ready_s = 0.0
        #: the daemon's exit status once closed (0: it stopped cleanly on SIGTERM)
        self.returncode: int | None = None
        self._http: httpx.Client | None = None
        self._base = ""
        self._cond = threading.Condition()
        self._event: dict[str, Any] = {"seq": -1, "screen": "", "view": {}}
        #: every screen the page was shown, in order, across restarts
        self.screens: list[str] = []
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- start and stop ---------------------------------------------------------------------
    def __enter__(self) -> KioskProcess:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            port = self.emulator.start_pty(self.folder / "sensor")
            serial = f'backend = "serial"\nport = "{port}"'  # the driver a Pi uses, on the pty
            simulated_device(self.folder, fingerprint=serial, ui_port=free_loopback_port())
            write_roster(self.data_dir, self.people)
            self._http = httpx.Client(timeout=10)
            beat = threading.Thread(target=self._heartbeat, daemon=True)
            beat.start()
            self._threads.append(beat)
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the daemon (again, after :meth:`kill` or :meth:`stop`) and wait until it is
        READY and its page is served; its first screen is then in :attr:`event`."""
        assert self._http is not None
        url_file = self.data_dir / "ui-url"  # written once the UI listens (after READY)
        url_file.unlink(missing_ok=True)  # a killed daemon leaves its old one behind
        with self._cond:
            self._event = {"seq": -1, "screen": "", "view": {}}
        notify = self.folder / "notify.sock"
        notify.unlink(missing_ok=True)
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind(str(notify))
        rx.settimeout(0.2)
        env = dict(os.environ, NOTIFY_SOCKET=str(notify), PYTHONPATH=str(ROOT))
        log = (self.folder / "daemon.log").open("ab")
        t = time.perf_counter()
        proc = self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(self.cfg_path)],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 30
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    if rx.recv(4096).startswith(b"READY=1"):
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise KioskProcessError(f"the daemon did not get READY: {self.log_tail()}")
            self.ready_s = time.perf_counter() - t
        finally:
            rx.close()
        while not url_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise KioskProcessError(f"the daemon published no UI address: {self.log_tail()}")
            time.sleep(0.005)
        self._base = url_file.read_text().strip()
        self._http.get(self._base).raise_for_status()
        self.ui_ready_s = time.perf_counter() - t
        reader = threading.Thread(target=self._read_events, args=(self._base,), daemon=True)
        reader.start()
        self._threads.append(reader)
        self.wait_for(lambda e: e["seq"] >= 0, "the first screen")

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut ends it: nothing is flushed or stopped."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, as systemd stops it."""
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.returncode = proc.returncode

    def close(self) -> None:
        self._closing.set()
        self.stop()
        for th in self._threads:
            th.join(5)
        if self._http is not None:
            self._http.close()
        self.emulator.close()

    def log_tail(self, lines: int = 20) -> str:
        path = self.folder / "daemon.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # --- the page's side --------------------------------------------------------------------
    def _read_events(self, base: str) -> None:
        """The page's event stream from one run of the daemon, until it ends."""
        assert self._http is not None
        try:
            with (
                contextlib.suppress(httpx.HTTPError),
                self._http.stream("GET", base + "events", timeout=None) as resp,
            ):
                for line in resp.iter_lines():
                    if self._closing.is_set() or base != self._base:
                        return
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        with self._cond:
                            self._event = event
                            self.screens.append(str(event.get("screen")))
                            self._cond.notify_all()
        finally:  # the daemon went: whoever waits for a screen hears it now
            with self._cond:
                self._cond.notify_all()

    def _heartbeat(self) -> None:
        assert self._http is not None
        while not self._closing.wait(2.0):
            with contextlib.suppress(httpx.HTTPError):
                self._http.post(self._base + "heartbeat")

    @property
    def event(self) -> dict[str, Any]:
        with self._cond:
            return self._event

    def _gone(self) -> bool:
        """The daemon has exited (killed, crashed): no screen will change any more."""
        return self.proc is None or self.proc.poll() is not None

    def wait_for(self, ok: Any, what: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait for an event ``ok`` accepts; KioskProcessError after ``timeout_s``, or at
        once when the daemon has exited."""
        with self._cond:
            if not self._cond.wait_for(lambda: ok(self._event) or self._gone(), timeout_s):
                raise KioskProcessError(f"waited {timeout_s} s for {what}: at {self._event}")
            if not ok(self._event):
                raise KioskProcessError(f"the daemon exited while waiting for {what}")
            return self._event

    def tap(self, action: str, **data: Any) -> None:
        """Tap as the page does, naming the screen the tap was made on; then wait for the
        next screen (a tap that changes nothing visible times out quietly after 2 s)."""
        assert self._http is not None
        seen = self.event
        body = {"action": action, "data": data, "screen": seen["screen"]}
        resp = self._http.post(self._base + "tap", json=body)
        if resp.status_code == 409 and resp.json().get("reason") == "stale_tap":
            return  # the screen moved on under us: look again
        if resp.status_code != 204:
            raise KioskProcessError(f"tap {action} on {seen['screen']}: {resp.status_code}")
        self.next_screen(seen["seq"], 2.0)

    def next_screen(self, after_seq: int, timeout_s: float) -> None:
        """Wait (quietly, at most ``timeout_s``) for an event after ``after_seq``."""
        with self._cond:
            self._cond.wait_for(lambda: self._event["seq"] > after_seq, timeout_s)

    # --- a person ---------------------------------------------------------------------------
    def begin(self, person: Person) -> None:
        """From idle: the case reference and date of birth typed, the finger on the sensor,
        and Next touched (the person is identified; the sensor matches the finger next)."""
        self.wait_for(lambda e: e["screen"] == "idle", "the idle screen")
        self.tap("start", lang="en")
        for d in person.ref.removeprefix("CR-"):
            self.tap("key", digit=d)
        self.tap("submit")
        yyyy, mm, dd = person.dob.split("-")
        for d in dd + mm + yyyy:
            self.tap("key", digit=d)
        self.emulator.present_finger(person.ref, person.finger)
        self.tap("submit")

    def check_in(self, person: Person, timeout_s: float = 30.0) -> str:
        """One check-in from idle back to idle: case reference and date of birth typed, the
        finger on the sensor, the photo, the questions, confirm. Returns the screen it ended
        on (``done`` for a normal check-in)."""
        self.begin(person)
        deadline = time.monotonic() + timeout_s
        try:
            while (screen := self.event["screen"]) not in ENDS:
                if time.monotonic() > deadline or self._gone():
                    raise KioskProcessError(f"the check-in stopped at {self.event}")
                view = self.event["view"]
                if screen == "fallback" or (
                    screen == "fingerprint" and view.get("phase") in ("retry", "no_finger")
                ):
                    self.tap("continue")
                elif screen == "photo" and view.get("phase") == "notice":
                    self.emulator.lift_finger()
                    self.tap("photo")
                elif screen == "questions":
                    q = view["question"]
                    self.tap("answer", id=q["id"], value=DEFAULT_ANSWERS.get(q["id"], "yes"))
                elif screen == "messages":
                    self.tap("read", id=view["message"]["id"])
                elif screen == "confirm" and not view.get("saving"):
                    self.tap("finish")
                else:  # the sensor, the camera or the outbox at work: the next screen
                    self.next_screen(self.event["seq"], 1.0)
        finally:
            self.emulator.lift_finger()
        self.tap("continue")
        return str(screen)

    # --- what the process holds -------------------------------------------------------------
    def status_kb(self, field: str) -> int:
        """A ``/proc/<pid>/status`` figure of the daemon in kB (``VmRSS``, ``VmHWM``)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KioskProcessError(f"/proc/{self.proc.pid}/status has no {field}")

    def compacts(self) -> list[str]:
        """Every record the daemon has committed, in seq order (read-only, beside it)."""
        uri = f"file:{self.data_dir / Outbox.FILE}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            return [c for (c,) in db.execute("SELECT compact FROM records ORDER BY seq")]

    def payloads(self, type_: str) -> list[dict[str, Any]]:
        """The payloads of the records of ``type_``, in seq order."""
        out = [decode_unverified(c)[1] for c in self.compacts()]
        return [p for p in out if p["type"] == type_]

    def payloads_after(self, count: int) -> list[dict[str, Any]]:
        """The payloads of the records after the first ``count``, in seq order."""
        return [decode_unverified(c)[1] for c in self.compacts()[count:]]

    def records(self, type_: str) -> int:
        """How many records of ``type_`` the daemon has committed."""
        return len(self.payloads(type_))
