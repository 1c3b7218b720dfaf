"""The daemon process exactly as kiosk.service starts it (``python -m daemon run``), driven
from outside the way a Pi drives it: its serial sensor driver on a pty where the emulator
speaks the sensor's byte protocol, taps on its local UI over HTTP, screens from its event
stream. The same harness gives ``daemon.rss_mb`` (hil/bench/kiosk_process.py), so this test
also keeps that figure's harness honest."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.demo_support import PEOPLE
from daemon.keys import FileKeyBackend
from daemon.records import Record, verify_chain
from hil.bench.kiosk_process import KioskProcess

pytestmark = pytest.mark.slow


def _chain(kiosk: KioskProcess) -> list[Record]:
    """Every record the kiosk made, its signatures and chain verified."""
    key = FileKeyBackend(kiosk.data_dir / "device-key.pem").load().public_key()
    return verify_chain(kiosk.compacts(), key, "kiosk-bench")


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
    chain = _chain(kiosk)
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


def test_a_restart_in_the_middle_of_a_check_in_leaves_one_fault_record_for_an_officer(
    tmp_path: Path,
) -> None:
    # A crash, a power cut or an update while someone is checking in: the screen goes, and
    # the person may walk away believing they reported. Their visit must reach an officer as
    # a kiosk fault (it counts), never silence that becomes a missed appointment.
    first, cut_short, later = PEOPLE[0], PEOPLE[1], PEOPLE[2]
    with KioskProcess(tmp_path, list(PEOPLE)) as kiosk:
        assert kiosk.check_in(first) == "done"
        kiosk.begin(cut_short)
        kiosk.wait_for(lambda e: e["screen"] == "photo", "the finger matched")
        kiosk.kill()
        kiosk.emulator.lift_finger()
        kiosk.start()
        assert kiosk.event["screen"] == "idle"  # ready for the next person
        faults = kiosk.payloads("fault")
        assert [f["person"] for f in faults] == [cut_short.ref]
        fault = faults[0]
        assert fault["detail"]["part"] == "kiosk" and fault["detail"]["reason"] == "restarted"
        assert fault["detail"]["interrupted_checkin"] is True
        assert fault["detail"]["lang"] == "en"
        identified = fault["detail"]["identified"]  # when they were there, for the API
        assert identified["at"] < fault["at"] and identified["clock"]["mono_ns"] > 0
        assert identified["clock"]["boot_id"] == fault["clock"]["boot_id"]  # one machine boot
        # matched by fingerprint before the restart: no identity review, but no photo kept
        assert fault["verify"]["method"] == "fingerprint"
        assert fault["flags"] == ["fault", "no_photo"]
        # exactly once: more restarts say nothing more about it
        kiosk.stop()
        kiosk.start()
        kiosk.kill()
        kiosk.start()
        assert kiosk.records("fault") == 1
        assert kiosk.check_in(later) == "done"  # and the kiosk carries on
        people = [p.get("person") for p in kiosk.payloads("checkin")]
        assert people == [first.ref, later.ref]
    _chain(kiosk)


def test_a_check_in_that_ended_or_never_identified_anyone_leaves_no_fault(
    tmp_path: Path,
) -> None:
    with KioskProcess(tmp_path, list(PEOPLE)) as kiosk:
        # identified, then the person touched Cancel: their choice, nothing owed
        kiosk.begin(PEOPLE[0])
        kiosk.wait_for(lambda e: e["screen"] == "photo", "the finger matched")
        kiosk.tap("cancel")
        kiosk.wait_for(lambda e: e["screen"] == "idle", "back to the start")
        kiosk.emulator.lift_finger()
        kiosk.kill()
        kiosk.start()
        # half a case reference typed: nobody to write about
        kiosk.tap("start", lang="cy")
        for d in "9001":
            kiosk.tap("key", digit=d)
        kiosk.kill()
        kiosk.start()
        # a check-in saved: its record is all there is
        assert kiosk.check_in(PEOPLE[1]) == "done"
        kiosk.kill()
        kiosk.start()
        assert kiosk.records("fault") == 0
        assert kiosk.records("checkin") == 1
