"""The daemon as systemd runs it: READY only when really open, exit 78 on a config error,
clean stop on SIGTERM; and the demo end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.clock import SystemClock
from daemon.demo import main as demo_main
from daemon.demo_support import DemoDevice, provision
from daemon.outbox import Outbox
from hil.refapi.server import RefApi

ROOT = Path(__file__).resolve().parents[2]


def _kiosk(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "daemon", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@dataclass
class Provisioned:
    api: RefApi
    device: DemoDevice
    notify: Path  # NOTIFY_SOCKET for the daemon
    rx: socket.socket  # what it says to "systemd"


@pytest.fixture
def provisioned(tmp_path: Path) -> Iterator[Provisioned]:
    """The reference API on loopback, a provisioned simulated kiosk, and a datagram socket
    standing in for systemd's notify socket."""
    api = RefApi(tmp_path / "api")
    api.start()
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        device = provision(api, tmp_path / "kiosk")
        notify = tmp_path / "notify.sock"
        rx.bind(str(notify))
        rx.settimeout(30)
        yield Provisioned(api, device, notify, rx)
    finally:
        rx.close()
        api.stop()


def test_config_error_exits_78_and_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "kiosk.toml"
    bad.write_text('[device]\nid = "k"\n[api]\nurl = "https://a/"\nbatch_sise = 5\n')
    for command in ("run", "sync", "check-config"):
        proc = _kiosk([command, "--config", str(bad)])
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 78
        assert b"api.batch_sise" in out and b"batch_size" in out


def test_kiosk_run_reaches_ready_and_stops_cleanly(provisioned: Provisioned) -> None:
    device, rx = provisioned.device, provisioned.rx
    started = time.monotonic()
    proc = _kiosk(
        ["run", "--config", str(device.config_path)], {"NOTIFY_SOCKET": str(provisioned.notify)}
    )
    try:
        messages = []
        while not any(m.startswith(b"READY=1") for m in messages):
            messages.append(rx.recv(4096))
        ready_s = time.monotonic() - started
        ready = next(m for m in messages if m.startswith(b"READY=1"))
        assert b"SIMULATED" in ready  # a simulated kiosk says so
        # by READY the outbox is open and the boot record is committed
        with Outbox(device.data_dir, device=device.id, key=None, clock=SystemClock()) as ob:
            assert [c for _s, _st, c in ob.all_compact()]
        watchdog = rx.recv(4096)
        assert watchdog in (b"WATCHDOG=1",) or watchdog.startswith(b"STATUS=")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()
        assert ready_s < 15
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_demo_runs_end_to_end(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert demo_main(["--folder", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "chain intact                 : yes" in out
    # staff opened staff mode twice (unlock after tamper, the enrolment): two logins, the unlock
    # and the alerts acknowledged
    assert "checkin_fallback 1" in out and "tamper 1" in out and "staff_action 4" in out
    # someone with no fingerprint on file is enrolled at the kiosk, then matched next time
    assert "finger_enrolment 1" in out and "back again -> checkin" in out
    assert "identified by fingerprint" in out
    # the power goes mid-check-in: after the restart the visit is a fault record, which
    # the API holds like any attendance
    assert "the power goes in the middle of the check-in; when the kiosk is back -> fault" in out
    assert "fault 1" in out and "boot 3" in out
    assert "attendance references found  : 8 of 8" in out  # each person's, at the API
    # kiosk-sync's heartbeats carried the check-in process's health report: the API saw the
    # kiosk running, not "kiosk_not_running" as when the demo wrote no report
    beats = re.search(r"heartbeats received +: (\d+), (\d+) of them with the kiosk running", out)
    assert beats is not None and int(beats[2]) >= 1
    assert "6 slips printed for people to take away" in out
    slips = sorted((tmp_path / "demo" / "kiosk" / "slips").glob("slip-*.png"))
    assert len(slips) == 6 and all(p.stat().st_size > 1000 for p in slips)
    # no personal data on the console: case references are masked
    assert "CR-900101" not in out


def test_kiosk_sync_keeps_feeding_the_systemd_watchdog(provisioned: Provisioned) -> None:
    """kiosk-sync.service has WatchdogSec=30s: a process that stops pinging is killed and
    restarted every 30 s. With a 1 s watchdog, `kiosk sync` must ping about twice a second,
    each time after its outbox answered, and say its queue in STATUS=."""
    rx = provisioned.rx
    rx.settimeout(10)
    env = {"NOTIFY_SOCKET": str(provisioned.notify), "WATCHDOG_USEC": "1000000"}
    proc = _kiosk(["sync", "--config", str(provisioned.device.config_path)], env)
    try:
        messages: list[bytes] = []
        while not any(m.startswith(b"READY=1") for m in messages):
            messages.append(rx.recv(4096))
        after_ready = time.monotonic()
        pings = 0
        statuses: list[bytes] = []
        while time.monotonic() - after_ready < 3.0:
            m = rx.recv(4096)
            pings += m == b"WATCHDOG=1"
            if m.startswith(b"STATUS="):
                statuses.append(m)
        assert pings >= 4, (pings, messages, statuses)  # 0.5 s apart: ~6 in 3 s
        assert statuses and b"queue" in statuses[-1]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()
        assert b"no more watchdog pings" not in out
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_api_sees_the_kiosks_parts_through_the_sync_heartbeat(
    provisioned: Provisioned,
) -> None:
    """`kiosk run` writes its health report, `kiosk sync` carries it in the heartbeat: the
    central service sees the parts, the disk and that the kiosk process runs, with no one on
    site, and nothing in it names a person."""
    api, device = provisioned.api, provisioned.device
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_kiosk(["run", "--config", str(device.config_path)]))
        deadline = time.monotonic() + 30
        while not (device.data_dir / "health.json").exists():
            assert time.monotonic() < deadline and procs[0].poll() is None
            time.sleep(0.1)
        procs.append(_kiosk(["sync", "--config", str(device.config_path)]))
        status: dict[str, object] = {}
        with api.admin() as admin:
            while True:
                status = admin.get(f"/v1/admin/devices/{device.id}").json()
                beat = status.get("heartbeat") or {}
                if isinstance(beat, dict) and beat.get("kiosk") == "running":
                    break
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
        assert beat["sensor"] == "ok" and beat["camera"] == "ok" and beat["faults"] == {}
        assert beat["simulated"] is True and beat["disk_free_mb"] > 0 and beat["disk"] == "ok"
        assert isinstance(beat["kiosk_up_s"], float) and beat["ui_beat_age_s"] is None
        # this machine's clock may not be NTP-synchronised: then, and only then, that is said;
        # the simulated drivers are always said (this API takes its kiosks to be in service),
        # and no browser yet is not a dark screen in the process's first minute
        expected = [] if beat["clock_synced"] else ["clock_unsynced"]
        assert status["problems"] == [*expected, "simulated_hardware"]
        assert "CR-" not in json.dumps(beat)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
