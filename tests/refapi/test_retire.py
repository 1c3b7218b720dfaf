"""Retiring a device (its key lost, its unit replaced by a spare) and enrolling its id again:
the retired key can send nothing more, its records stay where an auditor finds and verifies
them, the id starts a new chain with a new key, and records left on the old card are added
later by an operator, never lost. Both backends; synthetic data only."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import secrets
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from daemon.records import verify_chain
from daemon.rotation import verify_chain_across_rotations
from hil.refapi.__main__ import main
from hil.refapi.app import DeviceGone, _process_batch
from hil.refapi.testing import InProcess, SimDevice, roster_doc
from tests.refapi.conftest import FakeClock

ADMIN = {"Authorization": "Bearer test-admin-token"}
OP = ADMIN | {"X-Operator": "fe-0417", "X-Purpose": "maintenance"}


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def _retire(api: InProcess, device: str, reason: str = "key lost; unit replaced") -> dict:  # type: ignore[type-arg]
    r = await api.client.post(f"/v1/admin/devices/{device}/retire", json={"reason": reason},
                              headers=OP)  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _heartbeat(api: InProcess, dev: SimDevice) -> tuple[int, dict]:  # type: ignore[type-arg]
    path = f"/v1/devices/{dev.device}/heartbeat"
    body = json.dumps({"queue_depth": 0, "kiosk": "running"}).encode()
    r = await api.client.post(path, content=body, headers=dev.auth("POST", path, body))
    return r.status_code, r.json()


def _export(api: InProcess, tmp_path: Path, device: str) -> list[str]:
    out = tmp_path / f"{device}.jws"
    assert main(["export", *api.where(), "--operator", "audit-01", "--purpose", "audit",
                 "--device", device, "-o", str(out)]) == 0  # fmt: skip
    return out.read_text().splitlines()


async def test_retiring_needs_an_operator_and_is_logged(api: InProcess, dev: SimDevice) -> None:
    url = f"/v1/admin/devices/{dev.device}/retire"
    r = await api.client.post(url, json={"reason": "key lost"}, headers=ADMIN)
    assert (r.status_code, r.json()["error"]) == (403, "operator_required")
    r = await api.client.post(url, json={"reason": ""}, headers=OP)
    assert r.status_code == 422  # say why
    r = await api.client.post("/v1/admin/devices/kiosk-nobody/retire", json={"reason": "gone"},
                              headers=OP)  # fmt: skip
    assert (r.status_code, r.json()["error"]) == (404, "unknown_device")
    assert api.storage.device(dev.device) is not None  # nothing changed
    done = await _retire(api, dev.device)
    assert (done["chain"], done["device"], done["operator"]) == (f"{dev.device}~1", dev.device,
                                                                 "fe-0417")  # fmt: skip
    log = api.storage.access_log(0, 100)
    assert [(e["action"], e["outcome"], e["operator"]) for e in log[-2:]] == [
        ("device.retire", "not_found", "fe-0417"),
        ("device.retire", "ok", "fe-0417"),
    ]
    assert (log[-1]["device"], log[-1]["target"]) == (dev.device, f"{dev.device}~1")
    assert "key lost" not in json.dumps(log)  # free text stays out of the access log
    r = await api.client.post(url.replace(dev.device, done["chain"]), json={"reason": "again"},
                              headers=OP)  # fmt: skip
    assert (r.status_code, r.json()["error"]) == (409, "already_retired")
    r = await api.client.post(url, json={"reason": "again"}, headers=OP)
    assert r.status_code == 404 and "retired already" in r.json()["detail"]


async def test_a_retired_key_can_send_nothing_and_says_why(
    api: InProcess, dev: SimDevice, tmp_path: Path
) -> None:
    assert (await api.push(dev, dev.records(5))).status_code == 200
    assert (await _heartbeat(api, dev))[0] == 200
    await _retire(api, dev.device)
    r = await api.push(dev, dev.records(2))  # the lost key (or the old unit) goes on signing
    assert (r.status_code, r.json()["error"]) == (403, "device_retired"), r.text
    assert "kioskctl outbox export" in r.json()["detail"]
    status, body = await _heartbeat(api, dev)
    assert (status, body["error"]) == (403, "device_retired")
    blob = b"sealed bytes"
    path = f"/v1/blobs/{hashlib.sha256(blob).hexdigest()}"
    r = await api.client.put(path, content=blob, headers=dev.auth("PUT", path, blob))
    assert r.json()["error"] == "device_retired"
    path = f"/v1/devices/{dev.device}/roster"
    r = await api.client.get(path, headers=dev.auth("GET", path))
    assert r.json()["error"] == "device_retired"
    # someone else claiming the id without its key learns nothing more than before
    stranger = SimDevice(device=dev.device, clock=dev.clock)
    r = await api.push(stranger, stranger.records(1))
    assert (r.status_code, r.json()["error"]) == (401, "unknown_device")
    # nothing it sent after retirement was stored
    chain = f"{dev.device}~1"
    assert api.storage.last_seq(chain) == 5 and api.storage.count(dev.device) == 0


async def test_the_fleet_lists_a_retired_device_as_retired_not_silent(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    other = SimDevice(clock=clock)
    await api.enrol(other)
    await api.push(dev, dev.records(3))
    await _heartbeat(api, dev)
    await _retire(api, dev.device)
    clock.now += 3600  # long enough for a live kiosk to count as silent
    fleet = (await api.client.get("/v1/admin/devices", headers=ADMIN)).json()["devices"]
    assert [k["device"] for k in fleet] == [other.device, f"{dev.device}~1"]  # retired last
    retired = fleet[-1]
    assert retired["problems"] == [] and retired["last_seq"] == 3
    assert retired["retired"]["device"] == dev.device
    assert retired["retired"]["reason"] == "key lost; unit replaced"
    assert fleet[0]["problems"] == ["silent"]
    r = await api.client.get(f"/v1/admin/devices/{dev.device}", headers=ADMIN)
    assert r.status_code == 404 and f"{dev.device}~1" in r.json()["detail"]
    status = (await api.client.get(f"/v1/admin/devices/{dev.device}~1", headers=ADMIN)).json()
    assert (status["records"], status["gaps"], status["problems"]) == (3, [], [])
    assert status["retired"]["operator"] == "fe-0417"


async def test_the_id_enrols_again_with_a_new_key_on_a_new_chain(
    api: InProcess, dev: SimDevice, clock: FakeClock, tmp_path: Path
) -> None:
    old_chain = dev.records(4)
    await api.push(dev, old_chain)
    r = await api.client.put(f"/v1/admin/devices/{dev.device}/records/2/review",
                             json={"outcome": "confirmed", "reviewer": "fe-0417"},
                             headers=OP)  # fmt: skip
    assert r.status_code == 201
    # before retirement the id is taken: the spare is refused
    spare = SimDevice(device=dev.device, clock=clock)
    code = secrets.token_urlsafe(12)
    api.storage.add_code(code, clock.now + 60)
    r = await api.client.post("/v1/enrol", json=spare.enrol_body(code))
    assert (r.status_code, r.json()["error"]) == (409, "already_enrolled")
    assert "retire" in r.json()["detail"]
    await _retire(api, dev.device)
    r = await api.client.post("/v1/enrol", json=spare.enrol_body(code))
    assert r.status_code == 201, r.text
    new_chain = spare.records(3)  # the spare's outbox starts at seq 1, from genesis
    answer = (await api.push(spare, new_chain)).json()
    assert [x["status"] for x in answer["results"]] == ["accepted"] * 3
    assert (answer["last_seq"], answer["gaps"]) == (3, [])
    assert (await _heartbeat(api, spare))[0] == 200
    # each chain verifies on its own, from its own enrolled key
    verify_chain(_export(api, tmp_path, dev.device), spare.key.public_key(), dev.device,
                 head_seq=3)  # fmt: skip
    old = _export(api, tmp_path, f"{dev.device}~1")
    assert old == old_chain
    verify_chain_across_rotations(old, dev.key.public_key(), dev.device, head_seq=4)
    # the review decision stayed with the record it was made on, not with the new seq 2
    r = await api.client.get(f"/v1/admin/devices/{dev.device}~1/records/2/review", headers=OP)
    assert r.json()["outcome"] == "confirmed"
    r = await api.client.get(f"/v1/admin/devices/{dev.device}/records/2/review", headers=OP)
    assert r.status_code == 404
    status = (await api.client.get(f"/v1/admin/devices/{dev.device}", headers=ADMIN)).json()
    assert status["retired_chains"] == [f"{dev.device}~1"] and status["retired"] is None
    # the old unit still gets the clear answer, now that the id has a new key
    status_code, body = await _heartbeat(api, dev)
    assert (status_code, body["error"]) == (403, "device_retired")
    r = await api.push(dev, dev.records(1))
    assert (r.status_code, r.json()["error"]) == (403, "device_retired")
    # a retired key never comes back, under any id
    code = secrets.token_urlsafe(12)
    api.storage.add_code(code, clock.now + 60)
    again = dev.enrol_body(code) | {"device_id": "kiosk-elsewhere"}
    r = await api.client.post("/v1/enrol", json=again)
    assert (r.status_code, r.json()["error"]) == (409, "key_retired")
    # retired twice: the chains are numbered
    assert (await _retire(api, dev.device))["chain"] == f"{dev.device}~2"


async def test_records_left_on_the_old_card_are_imported_into_the_retired_chain(
    api: InProcess, dev: SimDevice, clock: FakeClock, tmp_path: Path
) -> None:
    on_card = dev.records(8)
    await api.push(dev, on_card[:5])  # 6..8 never reached the API before the unit died
    await _retire(api, dev.device)
    spare = SimDevice(device=dev.device, clock=clock)
    await api.enrol(spare)
    await api.push(spare, spare.records(2))
    export = tmp_path / "card.jws"  # as `kioskctl outbox export` writes it
    export.write_text("".join(c + "\n" for c in on_card) + "\n")
    args = ["import", *api.where(), "--device", dev.device, "--operator", "fe-0417"]
    out = io.StringIO()
    with redirect_stdout(out):
        assert main([*args, str(export)]) == 0
    chain = f"{dev.device}~1"
    assert json.loads(out.getvalue())["chains"] == {chain: {"duplicate": 5, "accepted": 3}}
    assert api.storage.last_seq(chain) == 8 and api.storage.gaps(chain) == []
    assert api.storage.last_seq(dev.device) == 2  # the new chain is untouched
    verify_chain_across_rotations(_export(api, tmp_path, chain), dev.key.public_key(),
                                  dev.device, head_seq=8)  # fmt: skip
    line = api.storage.access_log(0, 1000)[-2]  # then the export above
    assert (line["action"], line["operator"], line["device"]) == ("records.import", "fe-0417",
                                                                  dev.device)  # fmt: skip
    assert line["detail"]["chains"] == {chain: 8}
    # run again: all held already; a line no key of the device signed is named, not stored
    stranger = SimDevice(device=dev.device, clock=clock)
    export.write_text("".join(c + "\n" for c in [*on_card, *stranger.records(1)]))
    out = io.StringIO()
    with redirect_stdout(out):
        assert main([*args, str(export)]) == 1
    assert json.loads(out.getvalue())["unplaced"] == 1
    assert api.storage.access_log(0, 1000)[-1]["outcome"] == "partial"
    assert main([*args[:4], "kiosk-nobody", *args[5:], str(export)]) == 1


async def test_a_photo_left_on_the_old_card_comes_with_its_record(
    api: InProcess, dev: SimDevice, tmp_path: Path
) -> None:
    blobs = tmp_path / "card" / "blobs"
    blobs.mkdir(parents=True)
    photo = b"sealed photo bytes (synthetic)"
    sha = hashlib.sha256(photo).hexdigest()
    (blobs / sha).write_bytes(photo)
    record = dev.next_record(photo=sha)
    await _retire(api, dev.device)
    export = tmp_path / "card.jws"
    export.write_text(record + "\n")
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["import", *api.where(), "--device", dev.device, "--operator", "fe-0417",
                     "--blobs", str(blobs), str(export)]) == 0  # fmt: skip
    assert json.loads(out.getvalue())["blobs"] == {"stored": 1}
    assert api.storage.get_blob(sha) == photo


async def test_a_visit_to_the_retired_unit_still_counts_for_missed_check_ins(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    now, day = clock.now, 86400.0
    synced = {"synced": True, "boot_id": "00000000-0000-4000-8000-000000000001", "mono_ns": 1}
    await api.push(dev, [dev.next_record(person="CR-000101", at=_iso(now - 5 * day + 600),
                                         clock=synced)])  # fmt: skip
    await _retire(api, dev.device)
    spare = SimDevice(device=dev.device, clock=clock)
    await api.enrol(spare)
    roster = roster_doc({"ref": "CR-000101", "appointments": [
        {"at": _iso(now - 5 * day), "place_en": "x", "place_cy": "x"}]})  # fmt: skip
    r = await api.client.put(f"/v1/admin/devices/{dev.device}/roster", json=roster, headers=OP)
    assert r.status_code == 200
    body = (await api.client.get(f"/v1/admin/devices/{dev.device}/missed", headers=OP)).json()
    assert body["tasks"] == []  # they came, to the unit since replaced


async def test_a_batch_that_waited_while_its_device_was_retired_stores_nothing(
    api: InProcess, dev: SimDevice
) -> None:
    await _retire(api, dev.device)
    with pytest.raises(DeviceGone):
        _process_batch(api.storage, dev.device, dev.records(1), None, 0.0)
    assert api.storage.count() == 0


def test_retire_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hil.refapi.storage import SqliteStorage

    assert main(["init", "--data", str(tmp_path)]) == 0
    store = SqliteStorage(tmp_path / "refapi.sqlite3", create=False)
    dev = SimDevice()
    store.add_code("code-123456", 9e9)
    store.enrol("code-123456", dev.device, dev.alg, dev.public_pem, 0.0)
    store.close()
    base = ["retire", "--data", str(tmp_path), "--operator", "fe-0417", "--device"]
    with pytest.raises(SystemExit):
        main([*base, dev.device, "--reason", ""])  # say why
    out = io.StringIO()
    with redirect_stdout(out):
        assert main([*base, dev.device, "--reason", "unit dead, spare fitted"]) == 0
    assert json.loads(out.getvalue())["chain"] == f"{dev.device}~1"
    assert "may be enrolled again" in capsys.readouterr().err
    assert main([*base, dev.device, "--reason", "again"]) == 1
    assert f"retired already ({dev.device}~1)" in capsys.readouterr().err
    assert main([*base, "kiosk-typo", "--reason", "oops"]) == 1
    assert "no device kiosk-typo" in capsys.readouterr().err
    store = SqliteStorage(tmp_path / "refapi.sqlite3", create=False)
    try:
        actions = [(e["action"], e["outcome"]) for e in store.access_log(0, 100)]
    finally:
        store.close()
    assert actions == [("device.retire", "ok"), ("device.retire", "not_found"),
                       ("device.retire", "not_found")]  # fmt: skip


async def test_an_enrolment_made_on_the_old_unit_goes_to_the_spare(
    api: InProcess, tmp_path: Path
) -> None:
    """Templates taken on the unit since replaced, applied after the swap: into the device
    id's roster, sealed to the spare's roster key (and the office's other kiosks as ever)."""
    from cryptography.hazmat.primitives.asymmetric import x25519

    from daemon.sealing import PhotoSealer, RosterKey, public_bytes
    from tests.refapi.test_enrolment import PERSON, TEMPLATES, Kiosk, _enrolment_at

    private = x25519.X25519PrivateKey.generate()
    key = tmp_path / "seal.key"
    key.write_bytes(private.private_bytes_raw())
    old = Kiosk(api, "cardiff", [PERSON])
    beside = Kiosk(api, "cardiff", [PERSON])
    seq = await _enrolment_at(api, old, PhotoSealer(public_bytes(private.public_key())))
    device = old.dev.device
    await _retire(api, device)
    # the spare: a new key, a new roster key, and the id's roster published again
    spare, roster_key = SimDevice(device=device), RosterKey(x25519.X25519PrivateKey.generate())
    code = secrets.token_urlsafe(12)
    api.storage.add_code(code, api.settings.clock() + 60)
    roster_pub = base64.b64encode(roster_key.public_bytes()).decode()
    api.storage.enrol(code, device, spare.alg, spare.public_pem, api.settings.clock(),
                      roster_public_key=roster_pub)  # fmt: skip
    doc = {"office": "cardiff", "people": [{"ref": PERSON, "templates": []}]}
    api.storage.put_roster(device, json.dumps(doc).encode())
    args = ["apply-enrolment", *api.where(), "--seal-key", str(key), "--device", f"{device}~1",
            "--seq", str(seq), "--operator", "staff-0042"]  # fmt: skip
    assert main(args) == 0
    got = api.storage.get_roster(device)
    assert got is not None
    (person,) = json.loads(got[1])["people"]
    opened = {t["finger"]: roster_key.open_template(base64.b64decode(t["sealed"]))
              for t in person["templates"]}  # fmt: skip
    assert opened == TEMPLATES
    assert beside.templates_of(api, PERSON) == TEMPLATES


async def test_uptime_counts_a_retired_chain_for_its_kiosk_until_it_was_retired(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    """The evaluation figures' uptime is per kiosk (device id): the replaced unit's heartbeats
    (now under ``<device>~1``) count for the device id until its retirement, the swap's gap is
    the kiosk's downtime, and an id retired and not enrolled again is measured until then;
    no retired chain is listed as a kiosk of its own that went silent."""
    start = clock.now
    running = {"queue_depth": 0, "kiosk": "running"}
    removed = SimDevice(clock=clock)  # a kiosk taken out of service at minute 40
    await api.enrol(removed)
    for minute in range(31):
        api.storage.heartbeat(removed.device, running, start + 60 * minute)
    clock.now = start + 40 * 60
    await _retire(api, removed.device, "kiosk taken out of service")
    for minute in range(61):  # the unit that dies at minute 60
        api.storage.heartbeat(dev.device, running, start + 60 * minute)
    clock.now = start + 70 * 60
    await _retire(api, dev.device)
    spare = SimDevice(device=dev.device, clock=clock)
    await api.enrol(spare)
    for minute in range(80, 180):
        api.storage.heartbeat(spare.device, running, start + 60 * minute)
    clock.now = start + 180 * 60
    r = await api.client.get("/v1/admin/figures", params={"days": 180 / 1440}, headers=OP)
    assert r.status_code == 200, r.text
    assert r.json()["uptime"] == {
        dev.device: round((60 + 99) / 180, 3),  # down from minute 60 to 80: the swap
        removed.device: round(30 / 40, 3),
    }


async def test_uptime_of_a_kiosk_enrolled_again_runs_from_its_first_enrolment(
    api: InProcess, clock: FakeClock
) -> None:
    """A kiosk first enrolled part-way through the period is measured from then, and a spare
    enrolled under its id after a retirement does not restart that: the first unit's time and
    the swap's gap are still the kiosk's."""
    start = clock.now
    running = {"queue_depth": 0, "kiosk": "running"}
    first = SimDevice(clock=clock)
    clock.now = start + 30 * 60  # installed at minute 30 of 180
    await api.enrol(first)
    for minute in range(30, 91):  # it dies at minute 90
        api.storage.heartbeat(first.device, running, start + 60 * minute)
    clock.now = start + 100 * 60
    await _retire(api, first.device)
    spare = SimDevice(device=first.device, clock=clock)
    clock.now = start + 110 * 60
    await api.enrol(spare)
    for minute in range(110, 180):
        api.storage.heartbeat(spare.device, running, start + 60 * minute)
    clock.now = start + 180 * 60
    r = await api.client.get("/v1/admin/figures", params={"days": 180 / 1440}, headers=OP)
    assert r.status_code == 200, r.text
    assert r.json()["uptime"] == {first.device: round((60 + 69) / 150, 3)}
