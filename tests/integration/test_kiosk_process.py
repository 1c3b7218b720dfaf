"""The daemon process exactly as kiosk.service starts it (``python -m daemon run``), driven
from outside the way a Pi drives it: its serial sensor driver on a pty where the emulator
speaks the sensor's byte protocol, taps on its local UI over HTTP, screens from its event
stream. The same harness gives ``daemon.rss_mb`` (hil/bench/kiosk_process.py), so this test
also keeps that figure's harness honest."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from daemon.demo_support import PEOPLE
from daemon.keys import FileKeyBackend
from daemon.outbox import Outbox
from daemon.records import verify_chain
from hil.bench.kiosk_process import KioskProcess

pytestmark = pytest.mark.slow


def test_people_check_in_through_the_real_process_and_its_serial_sensor(tmp_path: Path) -> None:
    people = list(PEOPLE[:3])
    with KioskProcess(tmp_path, people) as kiosk:
        ends = [kiosk.check_in(p) for p in people]
        assert kiosk.event["screen"] == "idle"  # ready for the next person
        assert kiosk.records("checkin") == 3
    assert ends == ["done"] * 3
    assert kiosk.returncode == 0  # SIGTERM, as systemd stops it: a clean exit
    # what the daemon committed: one signed, chained record per person, each matched by the
    # sensor over the serial link, each carrying a sealed photo
    db = sqlite3.connect(f"file:{kiosk.data_dir / Outbox.FILE}?mode=ro", uri=True)
    with contextlib.closing(db):
        compacts = [c for (c,) in db.execute("SELECT compact FROM records ORDER BY seq")]
    key = FileKeyBackend(kiosk.data_dir / "device-key.pem").load().public_key()
    chain = verify_chain(compacts, key, "kiosk-bench")
    checkins = [r.payload for r in chain if r.payload["type"] == "checkin"]
    assert [c["person"] for c in checkins] == [p.ref for p in people]
    for c in checkins:
        assert c["verify"]["method"] == "fingerprint" and c["verify"]["attempts"] == 1
        assert (kiosk.data_dir / "blobs" / str(c["photo"])).stat().st_size > 0


def test_the_daemon_does_not_grow_with_each_check_in(tmp_path: Path) -> None:
    # A kiosk runs for months between restarts: anything kept per check-in (a photo, a
    # session, a record) would end in the OOM killer. 60 check-ins after a warm-up of 10 may
    # add allocator noise, not 60 photos (one sealed photo is ~80 kB: 60 are ~4.7 MB).
    with KioskProcess(tmp_path, list(PEOPLE)) as kiosk:
        for i in range(10):
            kiosk.check_in(PEOPLE[i % len(PEOPLE)])
        warm = kiosk.status_kb("VmRSS")
        for i in range(60):
            kiosk.check_in(PEOPLE[i % len(PEOPLE)])
        grown_kb = kiosk.status_kb("VmRSS") - warm
        assert kiosk.records("checkin") == 70
    assert grown_kb < 1536, f"the daemon grew {grown_kb} kB over 60 check-ins"
