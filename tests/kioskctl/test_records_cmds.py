"""``kioskctl outbox list | verify | export``, ``kioskctl sync`` and ``kioskctl status``."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from jwcrypto import jwk, jws

from daemon.keys import FileKeyBackend, public_pem
from daemon.recovery import open_or_recover
from tests.kioskctl.conftest import Kiosk

WHO = ("--operator", "fe-0417", "--purpose", "audit")  # who exports, and why

PERSON = "CR-654321"


def add_checkins(kiosk: Kiosk, n: int) -> None:
    with kiosk.outbox() as outbox:
        for _ in range(n):
            outbox.append("checkin", {"person": PERSON, "answers": {"moved": "a new flat"},
                                      "verify": {"method": "fingerprint", "score": 99,
                                                 "threshold": 60, "attempts": 1}})  # fmt: skip


def test_list_shows_the_queue_without_personal_data(kiosk: Kiosk) -> None:
    add_checkins(kiosk, 3)
    code, out, _err = kiosk.run("outbox", "list")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[:3] for line in lines[1:]] == [
        ["1", "pending", "enrolment"],
        ["2", "pending", "checkin"],
        ["3", "pending", "checkin"],
        ["4", "pending", "checkin"],
    ]
    assert PERSON not in out and "a new flat" not in out


def test_verify_passes_then_catches_an_altered_record(kiosk: Kiosk) -> None:
    add_checkins(kiosk, 4)
    code, out, _err = kiosk.run("outbox", "verify")
    assert (code, out.strip()) == (0, "OK: 5 records verified from genesis to seq 5")
    db = sqlite3.connect(kiosk.cfg.device.data_dir / "outbox.sqlite3")
    with db:
        db.execute("DELETE FROM records WHERE seq = 3")  # a record quietly removed
    db.close()
    code, out, _err = kiosk.run("outbox", "verify")
    assert code == 1
    assert out.startswith("FAILED: seq 4") and "seq_gap" in out


def test_export_lines_verify_with_a_standard_jose_library(kiosk: Kiosk) -> None:
    add_checkins(kiosk, 3)
    target = kiosk.folder / "audit.jws"
    code, out, err = kiosk.run("outbox", "export", *WHO, "--out", str(target), "--from", "2")
    assert code == 0, err
    assert "4 records written" in out  # the three, and the export's own record
    # not a terminal: no progress bar in the way, only where the export is logged
    assert err.splitlines() == ["kioskctl: this export is logged in the chain, as record 5"]
    key = FileKeyBackend(kiosk.cfg.device.key_path).load()
    pub = jwk.JWK.from_pem(public_pem(key.public_key()).encode())
    payloads = []
    for line in target.read_text().splitlines():
        token = jws.JWS()
        token.deserialize(line, key=pub)  # raises if the signature does not verify
        payloads.append(json.loads(token.payload))
    assert [p["seq"] for p in payloads] == [2, 3, 4, 5]
    # who exported and why is in the chain before the records left (DPA 2018 s.62)
    assert (payloads[-1]["type"], payloads[-1]["detail"]) == ("staff_action", {
        "action": "export", "operator": "fe-0417", "purpose": "audit", "from_seq": 2})  # fmt: skip


def test_an_export_says_who_and_why_or_does_not_happen(kiosk: Kiosk) -> None:
    add_checkins(kiosk, 2)
    target = kiosk.folder / "audit.jws"
    for given in (("--operator", "fe-0417"), ("--purpose", "audit"),
                  ("--operator", "Jane Smith", "--purpose", "audit")):  # fmt: skip
        with pytest.raises(SystemExit) as refused:  # a usage error, before anything is read
            kiosk.run("outbox", "export", *given, "--out", str(target))
        assert refused.value.code == 2
    assert not target.exists()
    with kiosk.outbox() as outbox:
        assert outbox.stats().last_seq == 3  # nothing logged for an export that did not run


def test_sync_now_sends_the_queue_to_the_api(kiosk: Kiosk) -> None:
    add_checkins(kiosk, 12)
    code, out, err = kiosk.run("sync")
    assert code == 0, err
    assert "13 accepted" in out and "0 still waiting" in out
    assert kiosk.api.storage().last_seq(kiosk.cfg.device.id) == 13
    code, out, _err = kiosk.run("outbox", "list")
    assert "pending" not in out
    code, out, _err = kiosk.run("sync")  # nothing left: still fine
    assert code == 0 and "0 accepted" in out


def test_status_for_the_front_desk(kiosk: Kiosk) -> None:
    code, out, _err = kiosk.run("status")
    assert "Last check-in:    never" in out
    assert "Waiting to send:  1" in out
    add_checkins(kiosk, 2)
    kiosk.run("sync")
    code, out, _err = kiosk.run("status")
    assert code == 0, out
    assert "Last check-in:    " in out and "(just now)" in out
    assert "Waiting to send:  0" in out
    assert "Alerts:           none" in out
    assert PERSON not in out
    kiosk.clock.set_synced(False)
    code, out, _err = kiosk.run("status", "--json")
    assert code == 1
    assert json.loads(out)["alerts"] == ["the kiosk's clock is not synchronised"]
    kiosk.clock.set_synced(True)
    st = os.statvfs(kiosk.cfg.device.data_dir)
    photos_stop = st.f_bavail * st.f_frsize // (1024 * 1024) + 100_000  # above today's free
    kiosk.edit("outbox", no_photo_free_mb=photos_stop)
    code, out, _err = kiosk.run("status", "--json")
    assert code == 1
    assert json.loads(out)["alerts"] == [
        "the kiosk's storage is nearly full: check-ins are saved without photos; call the "
        "field engineer"
    ]


def test_a_deleted_outbox_is_reported_then_continued_and_the_api_accepts_what_follows(
    kiosk: Kiosk,
) -> None:
    add_checkins(kiosk, 4)
    assert kiosk.run("sync")[0] == 0  # 5 records acknowledged; the anchor says seq 5
    data = kiosk.cfg.device.data_dir
    for suffix in ("", "-wal", "-shm"):
        (data / f"outbox.sqlite3{suffix}").unlink(missing_ok=True)

    # looking does not make a new empty outbox, and says what is wrong
    code, _out, err = kiosk.run("outbox", "list")
    assert code == 1 and "there is no outbox" in err
    assert not (data / "outbox.sqlite3").exists()
    code, out, _err = kiosk.run("doctor", "--no-hardware", "--json")
    row = {r["name"]: r for r in json.loads(out)["checks"]}["outbox integrity"]
    assert code == 1 and row["status"] == "fail", row
    assert "reached seq 5" in row["detail"] and "start kiosk.service" in row["fix"]

    # kiosk.service starting: the chain continues after seq 5, and the API takes it
    cfg = kiosk.cfg.device
    key = FileKeyBackend(cfg.key_path).load()
    outbox, recovery = open_or_recover(
        data, device=cfg.id, key=key, clock=kiosk.clock, min_free_bytes=1
    )
    assert recovery is not None and recovery.continued_from == 5
    outbox.append("checkin", {"person": "CR-000777"})
    outbox.close()
    code, out, err = kiosk.run("sync")
    assert code == 0 and "2 accepted" in out, (out, err)
    store = kiosk.api.storage()
    assert store.last_seq(cfg.id) == 7
    store.close()
    code, out, _err = kiosk.run("doctor", "--no-hardware", "--json")
    row = {r["name"]: r for r in json.loads(out)["checks"]}["outbox integrity"]
    assert row["status"] == "pass", row


def test_records_an_api_fault_rejected_are_sent_again_when_an_engineer_asks(
    kiosk: Kiosk,
) -> None:
    """An API with a fault of its own (a bad deployment, a key mix-up) rejected check-ins: they
    were parked, so on their own they would never reach it, and those visits would read as
    missed. Once the fault is fixed, `outbox send-again` and a sync bring them in, each once;
    the ones not asked for stay parked."""
    add_checkins(kiosk, 4)  # seq 2-5, after the provisioning record
    code, _out, err = kiosk.run("sync")
    assert code == 0, err
    add_checkins(kiosk, 3)  # seq 6-8: what the faulty API rejected
    with kiosk.outbox() as outbox:  # the state its answer left (the sync tests make it so)
        outbox.resolve(8, {6: "schema_invalid", 7: "schema_invalid", 8: "bad_signature"})
    code, out, _err = kiosk.run("outbox", "list", "--parked")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["6", "7", "8"]

    code, out, err = kiosk.run("outbox", "send-again", "--reason", "no_such_reason")
    assert code == 1 and "no parked record matches" in err
    code, out, err = kiosk.run("outbox", "send-again", "--reason", "schema_invalid")
    assert code == 0, err
    assert out.startswith("2 parked record(s) will be sent again") and out.rstrip().endswith(
        "seq: 6, 7"
    )
    code, out, _err = kiosk.run("outbox", "list", "--parked")  # still parked until taken
    assert "send_again:schema_invalid" in out

    code, out, err = kiosk.run("sync")
    assert code == 0, err
    store = kiosk.api.storage()
    try:
        held = sorted(seq for _d, seq, _c in store.export(kiosk.cfg.device.id))
    finally:
        store.close()
    assert held == [1, 2, 3, 4, 5, 6, 7]  # 8 was not asked for
    with kiosk.outbox() as outbox:
        assert outbox.parked() == [(8, "checkin", "bad_signature")]
    code, _out, _err = kiosk.run("sync")  # nothing more goes, nothing twice
    store = kiosk.api.storage()
    try:
        assert store.count(kiosk.cfg.device.id) == 7
    finally:
        store.close()
