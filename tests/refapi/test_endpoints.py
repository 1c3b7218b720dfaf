"""Enrolment, signed-request auth, blobs, roster, heartbeat and admin (app in process)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from daemon.records import receipt_code
from hil.refapi import app as refapi_app
from hil.refapi.app import device_problems
from hil.refapi.testing import InProcess, SimDevice, in_process, roster_doc
from tests.refapi.conftest import FakeClock

ADMIN = {"Authorization": "Bearer test-admin-token"}
#: reads of personal data also say who reads (the access log)
OFFICER = ADMIN | {"X-Operator": "po-2231", "X-Purpose": "supervision"}


async def _code(api: InProcess) -> str:
    r = await api.client.post("/v1/admin/enrolment-codes", headers=ADMIN)
    assert r.status_code == 200
    return str(r.json()["code"])


async def test_an_enrolment_code_works_once(api: InProcess, clock: FakeClock) -> None:
    code = await _code(api)
    first, second = SimDevice(clock=clock), SimDevice(clock=clock)
    r = await api.client.post("/v1/enrol", json=first.enrol_body(code))
    assert r.status_code == 201 and r.json()["device_id"] == first.device
    r = await api.client.post("/v1/enrol", json=second.enrol_body(code))
    assert r.status_code == 403 and r.json()["error"] == "enrolment_code"
    # the same device and key again is harmless (a retried enrolment)
    r = await api.client.post("/v1/enrol", json=first.enrol_body(code))
    assert r.status_code == 200


async def test_an_expired_code_and_a_taken_device_id_are_refused(
    api: InProcess, clock: FakeClock
) -> None:
    code = await _code(api)
    clock.now += 3601
    d = SimDevice(clock=clock)
    r = await api.client.post("/v1/enrol", json=d.enrol_body(code))
    assert r.status_code == 403
    await api.enrol(d)
    impostor = SimDevice(device=d.device, clock=clock)
    r = await api.client.post("/v1/enrol", json=impostor.enrol_body(await _code(api)))
    assert r.status_code == 409 and r.json()["error"] == "already_enrolled"


async def test_enrolment_refuses_a_key_that_is_not_the_named_algorithm(api: InProcess) -> None:
    d = SimDevice(alg="EdDSA")
    body = d.enrol_body(await _code(api)) | {"alg": "ES256"}
    r = await api.client.post("/v1/enrol", json=body)
    assert r.status_code == 422 and r.json()["error"] == "alg"


async def test_unsigned_unknown_forged_and_skewed_requests_are_refused(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    path = f"/v1/devices/{dev.device}/heartbeat"
    body = b"{}"
    r = await api.client.post(path, content=body)
    assert r.status_code == 401 and r.json()["error"] == "unauthorised"
    stranger = SimDevice(clock=clock)
    r = await api.client.post(path, content=body, headers=stranger.auth("POST", path, body))
    assert r.status_code == 401 and r.json()["error"] == "unknown_device"
    # signed for another body
    r = await api.client.post(path, content=b'{"a":1}', headers=dev.auth("POST", path, body))
    assert r.status_code == 401 and r.json()["error"] == "unauthorised"
    # a device clock 301 s ahead of the server's
    headers = dev.auth("POST", path, body)
    clock.now -= 301
    r = await api.client.post(path, content=body, headers=headers)
    assert r.status_code == 401 and r.json()["error"] == "clock_skew"
    clock.now += 2  # 299 s: inside the window
    r = await api.client.post(path, content=body, headers=headers)
    assert r.status_code == 200


async def test_a_device_may_act_only_for_itself(api: InProcess, dev: SimDevice) -> None:
    other = SimDevice(clock=dev.clock)
    await api.enrol(other)
    path = f"/v1/devices/{other.device}/heartbeat"
    r = await api.client.post(path, content=b"{}", headers=dev.auth("POST", path, b"{}"))
    assert r.status_code == 403 and r.json()["error"] == "wrong_device"


async def test_blobs_are_stored_by_content_hash(api: InProcess, dev: SimDevice) -> None:
    blob = b"KSEAL synthetic sealed bytes" * 100
    sha = hashlib.sha256(blob).hexdigest()
    path = f"/v1/blobs/{sha}"
    r = await api.client.put(path, content=blob, headers=dev.auth("PUT", path, blob))
    assert r.status_code == 201
    r = await api.client.put(path, content=blob, headers=dev.auth("PUT", path, blob))
    assert r.status_code == 200
    assert api.storage.get_blob(sha) == blob
    wrong = b"other bytes"
    r = await api.client.put(path, content=wrong, headers=dev.auth("PUT", path, wrong))
    assert r.status_code == 422 and r.json()["error"] == "hash_mismatch"
    assert api.storage.get_blob(sha) == blob


async def test_the_roster_is_served_with_a_strong_etag(api: InProcess, dev: SimDevice) -> None:
    path = f"/v1/devices/{dev.device}/roster"
    r = await api.client.get(path, headers=dev.auth("GET", path))
    assert r.status_code == 404 and r.json()["error"] == "no_roster"
    roster = roster_doc()
    put = await api.client.put(f"/v1/admin/devices/{dev.device}/roster", json=roster, headers=ADMIN)
    assert put.status_code == 200
    url = f"/v1/admin/devices/{dev.device}/roster"
    refused = await api.client.put(url, content=b"{not json", headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["error"] == "schema"
    for bad in ({"office": "x"}, {**roster, "people": [{"name": "not a ref"}]}, [1]):
        refused = await api.client.put(url, json=bad, headers=ADMIN)
        assert refused.status_code == 422 and refused.json()["error"] == "roster_invalid"
    r = await api.client.get(path, headers=dev.auth("GET", path))
    assert r.status_code == 200 and r.json() == roster
    etag = r.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    r = await api.client.get(path, headers=dev.auth("GET", path) | {"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    listed = {"If-None-Match": f'"0000", {etag}'}
    r = await api.client.get(path, headers=dev.auth("GET", path) | listed)
    assert r.status_code == 304
    await api.client.put(url, json=roster_doc("CR-000001"), headers=ADMIN)
    r = await api.client.get(path, headers=dev.auth("GET", path) | {"If-None-Match": etag})
    assert r.status_code == 200 and r.headers["ETag"] != etag


async def test_a_roster_may_say_a_person_declined_fingerprints_and_nothing_else(
    api: InProcess, dev: SimDevice
) -> None:
    """``biometric``: ``declined`` (or ``fingerprint``, or absent as in every older roster) is
    published and served as sent; any other value is refused before a kiosk could get it."""
    url = f"/v1/admin/devices/{dev.device}/roster"
    doc = roster_doc({"ref": "CR-000011", "biometric": "declined"}, "CR-000012")
    assert (await api.client.put(url, json=doc, headers=ADMIN)).status_code == 200
    path = f"/v1/devices/{dev.device}/roster"
    served = (await api.client.get(path, headers=dev.auth("GET", path))).json()
    assert served["people"] == doc["people"]
    bad = roster_doc({"ref": "CR-000011", "biometric": "refused"})
    refused = await api.client.put(url, json=bad, headers=ADMIN)
    assert refused.status_code == 422, refused.text
    assert (refused.json()["error"], refused.json()["field"]) == (
        "roster_invalid", "people[0].biometric")  # fmt: skip


async def test_a_roster_the_kiosk_would_not_take_whole_is_refused_naming_each_entry(
    api: InProcess, dev: SimDevice
) -> None:
    """The kiosk's own parser (daemon/roster.py) judges the upload: every entry it would leave
    out is named by index and field, never by its data, and the published roster stays."""
    url = f"/v1/admin/devices/{dev.device}/roster"
    good = roster_doc("CR-000001", "CR-000002", "CR-000003")
    assert (await api.client.put(url, json=good, headers=ADMIN)).status_code == 200
    bad = roster_doc(
        "CR-000001",
        {"ref": "CR-000002", "messages": [{"id": "m1", "en": "Bring ID.", "cy": ""}]},
        {"ref": "CR-000003", "templates": [{"finger": "tail", "sealed": "AAAA"}]},
        "CR-000001",
    )
    r = await api.client.put(url, json=bad, headers=ADMIN)
    assert r.status_code == 422
    body = r.json()
    assert (body["error"], body["index"], body["field"]) == (
        "roster_invalid", 0, "people[0].ref")  # fmt: skip
    assert [(p["index"], p["field"]) for p in body["problems"]] == [
        (0, "people[0].ref"),  # listed twice: both entries
        (1, "people[1].messages[0].cy"),
        (2, "people[2].templates[0].finger"),
        (3, "people[3].ref"),
    ]
    assert "and 3 more" in body["detail"]
    assert "CR-0000" not in r.text and "Bring ID." not in r.text
    r = await api.client.put(url, json={**good, "dob_salt": "AAAA"}, headers=ADMIN)
    assert (r.status_code, r.json()["field"], r.json()["index"]) == (422, "roster.dob_salt", None)
    path = f"/v1/devices/{dev.device}/roster"
    r = await api.client.get(path, headers=dev.auth("GET", path))
    assert r.json() == good


async def test_a_heartbeat_is_recorded_and_answers_server_time(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    path = f"/v1/devices/{dev.device}/heartbeat"
    body = json.dumps({"queue_depth": 3, "parked": 0, "last_seq": 7}).encode()
    r = await api.client.post(path, content=body, headers=dev.auth("POST", path, body))
    assert r.status_code == 200 and r.json() == {"server_time": clock.now}
    status = await api.client.get(f"/v1/admin/devices/{dev.device}", headers=ADMIN)
    assert status.json()["heartbeat"]["queue_depth"] == 3
    for bad in (b"[1, 2]", b'{"queue_depth": "lots"}', b"{"):
        r = await api.client.post(path, content=bad, headers=dev.auth("POST", path, bad))
        assert r.status_code == 422 and r.json()["error"] == "schema"


async def test_the_device_status_names_what_needs_someone_from_its_heartbeats(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    path = f"/v1/devices/{dev.device}/heartbeat"
    status = f"/v1/admin/devices/{dev.device}"

    async def beat(figures: dict[str, object]) -> list[str]:
        clock.now += 60  # a heartbeat a minute
        body = json.dumps(figures).encode()
        r = await api.client.post(path, content=body, headers=dev.auth("POST", path, body))
        assert r.status_code == 200
        return list((await api.client.get(status, headers=ADMIN)).json()["problems"])

    assert (await api.client.get(status, headers=ADMIN)).json()["problems"] == ["silent"]
    healthy = {
        "kiosk": "running",
        "faults": {},
        "disk_free_mb": 9000.0,
        "temperature_c": 51.2,
        "clock_synced": True,
        "sensor": "ok",
        "camera": "ok",
    }
    assert await beat(healthy) == []
    sick = healthy | {
        "faults": {"camera": "camera_blank", "fingerprint": "sensor_not_answering"},
        "disk_free_mb": 120.0,
        "temperature_c": 83.0,
        "clock_synced": False,
    }
    assert await beat(sick) == [
        "part:camera:camera_blank",
        "part:fingerprint:sensor_not_answering",
        "disk_low",
        "hot",
        "clock_unsynced",
    ]
    # a kiosk that says its own disk level is taken at its word, whatever the megabytes
    assert await beat(healthy | {"disk": "no_photo", "disk_free_mb": 9000.0}) == ["disk_no_photo"]
    assert await beat(healthy | {"disk": "full"}) == ["disk_full"]
    assert await beat(healthy | {"disk": "ok", "disk_free_mb": 120.0}) == []
    # what sync could not do by itself: records kept aside, a roster refused or cut short
    trouble = healthy | {
        "parked": 2,
        "parked_reasons": {"refused_alone:422:schema": 1, "bad_signature": 1},
        "roster_refused": {"reason": "roster_invalid", "field": "roster.dob_salt"},
        "roster_dropped": ["people[3].messages[0].cy: must be a non-empty string"],
        "roster_dropped_count": 1,
    }
    assert await beat(trouble) == ["records_rejected", "roster_refused", "roster_dropped"]
    quiet = {"parked": 0, "roster_refused": None, "roster_dropped": [], "roster_dropped_count": 0}
    assert await beat(healthy | quiet) == []
    assert await beat({"kiosk": "not_reporting", "sensor": "unknown"}) == ["kiosk_not_running"]
    clock.now += 16 * 60  # nothing for a quarter of an hour: power or network lost
    assert (await api.client.get(status, headers=ADMIN)).json()["problems"] == [
        "silent",
        "kiosk_not_running",
    ]
    bad = b'{"faults": ["camera"]}'
    r = await api.client.post(path, content=bad, headers=dev.auth("POST", path, bad))
    assert r.status_code == 422


async def test_the_fleet_list_puts_the_kiosks_that_need_someone_first(
    api: InProcess, clock: FakeClock
) -> None:
    quiet, healthy, sick = SimDevice(clock=clock), SimDevice(clock=clock), SimDevice(clock=clock)
    for d in (quiet, healthy, sick):
        await api.enrol(d)
    for d, figures in ((healthy, {"kiosk": "running"}), (sick, {"faults": {"camera": "blank"}})):
        path = f"/v1/devices/{d.device}/heartbeat"
        body = json.dumps(figures).encode()
        assert (
            await api.client.post(path, content=body, headers=d.auth("POST", path, body))
        ).status_code == 200
    assert (await api.push(healthy, healthy.records(2))).status_code == 200

    r = await api.client.get("/v1/admin/devices", headers=ADMIN)

    assert r.status_code == 200
    listed = {k["device"]: k for k in r.json()["devices"]}
    assert [k["device"] for k in r.json()["devices"]][-1] == healthy.device
    assert listed[quiet.device]["problems"] == ["silent"]
    assert listed[sick.device]["problems"] == ["part:camera:blank"]
    assert listed[healthy.device] == {"device": healthy.device, "last_seq": 2, "problems": []}
    assert (await api.client.get("/v1/admin/devices")).status_code == 401


async def _beat(api: InProcess, d: SimDevice, figures: dict[str, object]) -> None:
    path = f"/v1/devices/{d.device}/heartbeat"
    body = json.dumps(figures).encode()
    r = await api.client.post(path, content=body, headers=d.auth("POST", path, body))
    assert r.status_code == 200


async def test_a_dark_screen_rejected_records_and_simulated_parts_need_someone(
    api: InProcess, dev: SimDevice
) -> None:
    """The audit's heartbeat: the check-in process runs but the browser has not beaten for an
    hour, 12 records the API refused sit parked on the device, and its drivers are simulated.
    Each is a person let down (nobody told what to do; attendance nobody centrally sees; a
    fingerprint nobody really checked), so each is a problem on the status and the fleet."""
    status = f"/v1/admin/devices/{dev.device}"
    await _beat(api, dev, {"kiosk": "running", "faults": {}, "clock_synced": True,
                           "ui_beat_age_s": 3600.0, "parked": 12, "simulated": True})  # fmt: skip
    assert (await api.client.get(status, headers=ADMIN)).json()["problems"] == [
        "screen_not_showing",
        "records_rejected",
        "simulated_hardware",
    ]
    fleet = (await api.client.get("/v1/admin/devices", headers=ADMIN)).json()["devices"]
    assert fleet == [{"device": dev.device, "last_seq": 0, "problems": [
        "screen_not_showing", "records_rejected", "simulated_hardware"]}]  # fmt: skip


def test_screen_not_showing_is_read_only_while_the_check_in_process_runs() -> None:
    def problems(body: dict[str, object], **kw: bool) -> list[str]:
        return device_problems([{"received": 1000.0, "body": body}], 1030.0, **kw)

    running = {"kiosk": "running", "ui_beat_age_s": 2.0, "kiosk_up_s": 5000.0}
    assert problems(running) == []
    assert problems(running | {"ui_beat_age_s": 59.0}) == []  # a browser being restarted
    assert problems(running | {"ui_beat_age_s": 61.0}) == ["screen_not_showing"]
    # no beat at all since the process started: dark for as long as it has run
    assert problems(running | {"ui_beat_age_s": None}) == ["screen_not_showing"]
    assert problems(running | {"ui_beat_age_s": None, "kiosk_up_s": 20.0}) == []  # booting
    # an older kiosk that does not say how long it has run: not known, not guessed
    assert problems({"kiosk": "running", "ui_beat_age_s": None}) == []
    # the process itself is down: that is the problem to fix (the page says go to reception)
    assert problems({"kiosk": "not_reporting", "ui_beat_age_s": 3600.0}) == ["kiosk_not_running"]
    assert problems(running | {"parked": 0, "simulated": False}) == []
    assert problems(running | {"simulated": True}, simulated_expected=True) == []  # a demo
    assert problems(running | {"parked": True}) == []  # not a count


async def test_a_demo_or_rig_server_expects_simulated_drivers(tmp_path: Path) -> None:
    """``serve --simulated-expected``: the demo's and a rig's kiosks are simulated on purpose."""
    demo = in_process(tmp_path / "demo", simulated_expected=True)
    try:
        d = SimDevice(clock=demo.settings.clock)
        await demo.enrol(d)
        await _beat(demo, d, {"kiosk": "running", "ui_beat_age_s": 1.0, "simulated": True})
        status = await demo.client.get(f"/v1/admin/devices/{d.device}", headers=ADMIN)
        assert status.json()["problems"] == []
    finally:
        await demo.client.aclose()
        demo.storage.close()


async def test_the_fleet_list_puts_the_most_urgent_first(api: InProcess, clock: FakeClock) -> None:
    """A clock to set can wait for the next visit; a kiosk with a dark screen cannot, whatever
    their names' order."""
    clock_off, rejected, dark, healthy = (SimDevice(clock=clock) for _ in range(4))
    for d in (clock_off, rejected, dark, healthy):
        await api.enrol(d)
    ok = {"kiosk": "running", "ui_beat_age_s": 1.0, "clock_synced": True}
    await _beat(api, clock_off, ok | {"clock_synced": False})
    await _beat(api, rejected, ok | {"parked": 3})
    await _beat(api, dark, ok | {"ui_beat_age_s": 600.0})
    await _beat(api, healthy, ok)

    r = await api.client.get("/v1/admin/devices", headers=ADMIN)

    assert [k["device"] for k in r.json()["devices"]] == [
        dark.device, rejected.device, clock_off.device, healthy.device]  # fmt: skip


async def test_admin_needs_the_token_and_is_off_without_one(api: InProcess, tmp_path: Path) -> None:
    r = await api.client.post("/v1/admin/enrolment-codes")
    assert r.status_code == 401
    r = await api.client.post(
        "/v1/admin/enrolment-codes", headers={"Authorization": "Bearer wrong"}
    )
    assert r.status_code == 401
    closed = in_process(tmp_path / "closed", admin_token=None)
    try:
        r = await closed.client.post(
            "/v1/admin/enrolment-codes", headers={"Authorization": "Bearer "}
        )
        assert r.status_code == 403 and r.json()["error"] == "admin_disabled"
    finally:
        await closed.client.aclose()
        closed.storage.close()


async def test_staff_see_tamper_and_see_officer_first(api: InProcess, dev: SimDevice) -> None:
    records = [
        dev.next_record(),
        dev.next_record(type="fault", person=None),
        dev.next_record(flags=["see_officer"]),
        dev.next_record(),
        dev.next_record(type="tamper", person=None),
        dev.next_record(flags=["id_review"]),
    ]
    await api.push(dev, records)
    r = await api.client.get("/v1/admin/alerts", headers=OFFICER)
    alerts = [(a["seq"], a["type"]) for a in r.json()]
    assert {s for s, _ in alerts[:2]} == {3, 5}  # see_officer and tamper lead
    assert {s for s, _ in alerts[2:]} == {2, 6}  # then the other flagged ones
    assert 1 not in {s for s, _ in alerts} and 4 not in {s for s, _ in alerts}


async def test_health_needs_no_auth(api: InProcess) -> None:
    r = await api.client.get("/v1/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


async def test_admin_lists_records_in_pages_and_heartbeats_newest_first(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    chain = dev.records(7)
    await api.push(dev, chain[4:] + chain[:4])
    url = f"/v1/admin/devices/{dev.device}/records"
    page = (await api.client.get(url, params={"limit": 5}, headers=OFFICER)).json()
    assert [r["seq"] for r in page] == [1, 2, 3, 4, 5]
    assert "person" not in page[0]
    rest = (await api.client.get(url, params={"after_seq": 5}, headers=OFFICER)).json()
    assert [r["seq"] for r in rest] == [6, 7]
    path = f"/v1/devices/{dev.device}/heartbeat"
    for depth in (1, 2):
        body = json.dumps({"queue_depth": depth}).encode()
        await api.client.post(path, content=body, headers=dev.auth("POST", path, body))
        clock.now += 60
    beats = await api.client.get(f"/v1/admin/devices/{dev.device}/heartbeats", headers=ADMIN)
    assert [b["body"]["queue_depth"] for b in beats.json()] == [2, 1]


async def test_a_receipt_code_finds_exactly_its_record(api: InProcess, dev: SimDevice) -> None:
    chain = dev.records(40)
    await api.push(dev, chain)
    for seq in (1, 17, 40):
        code = receipt_code(chain[seq - 1])
        for typed in (code, code.lower(), code.replace("-", " "), code.replace("0", "O")):
            r = await api.client.get(f"/v1/admin/receipts/{typed}", headers=OFFICER)
            assert r.status_code == 200, (typed, r.text)
            assert r.json()["code"] == code
            assert [(x["device"], x["seq"]) for x in r.json()["records"]] == [(dev.device, seq)]
    other = receipt_code(dev.next_record())  # made, never sent
    r = await api.client.get(f"/v1/admin/receipts/{other}", headers=OFFICER)
    assert r.status_code == 404 and r.json()["error"] == "unknown_receipt"
    r = await api.client.get("/v1/admin/receipts/NOT-A-CODE!", headers=OFFICER)
    assert r.status_code == 422 and r.json()["error"] == "receipt_code"
    assert (await api.client.get(f"/v1/admin/receipts/{other}")).status_code == 401


def _unix(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _iso(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def test_a_missed_appointment_becomes_a_review_task_after_the_grace_period(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    now, day = clock.now, 86400.0
    due = {"CR-000101": now - 5 * day, "CR-000102": now - 5 * day, "CR-000103": now - day,
           "CR-000104": now + 2 * day, "CR-000105": now - 5 * day}  # fmt: skip
    roster = roster_doc(
        *[
            {"ref": ref, "next_appointment": {"at": _iso(at), "place_en": "x", "place_cy": "x"}}
            for ref, at in due.items()
        ],
        "CR-000106",  # no appointment: nothing to miss
    )
    r = await api.client.put(f"/v1/admin/devices/{dev.device}/roster", json=roster, headers=ADMIN)
    assert r.status_code == 200
    synced = {"synced": True, "boot_id": "00000000-0000-4000-8000-000000000001", "mono_ns": 1}
    came = dev.next_record(person="CR-000101", at=_iso(due["CR-000101"] + 600), clock=synced)
    months_ago = dev.next_record(person="CR-000102", at=_iso(now - 40 * day), clock=synced)
    tamper = dev.next_record(type="tamper", person=None)
    await api.push(dev, [came, months_ago, tamper])
    # a kiosk whose clock was wrong for a whole boot: its "at" is nonsense, and with no
    # synchronised record of that boot to date it by, the API's receipt time stands in
    clock.now = due["CR-000105"] + 3600
    unsynced = {"synced": False, "boot_id": "00000000-0000-4000-8000-000000000002", "mono_ns": 9}
    await api.push(dev, [dev.next_record(person="CR-000105", at=_iso(0), clock=unsynced)])
    clock.now = now
    url = f"/v1/admin/devices/{dev.device}/missed"
    body = (await api.client.get(url, headers=OFFICER)).json()
    assert body["grace_days"] == 3 and body["as_of"] == now
    assert [(t["ref"], t["action"], t["days_overdue"]) for t in body["tasks"]] == [
        ("CR-000102", "review", 5.0)  # seen 40 days ago, not since: a person looks into it
    ]
    assert "breach" not in json.dumps(body)
    body = (await api.client.get(url, params={"grace_days": 0}, headers=OFFICER)).json()
    assert [t["ref"] for t in body["tasks"]] == ["CR-000102", "CR-000103"]  # no grace at all
    assert (
        await api.client.get(url, params={"grace_days": -1}, headers=OFFICER)
    ).status_code == 422
    r = await api.client.get("/v1/admin/devices/kiosk-nobody/missed", headers=OFFICER)
    assert r.status_code == 404
    assert (await api.client.get(url)).status_code == 401


async def test_a_missed_appointment_says_when_the_kiosk_was_not_running(
    api: InProcess, dev: SimDevice, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who did not check in while the kiosk was down: the task says so, beside the
    appointment, so the officer sees at once that the machine may be why (a machine fault is
    never a missed report). A kiosk that ran all along says nothing."""
    now, day, hour = clock.now, 86400.0, 3600.0
    place = {"place_en": "x", "place_cy": "x"}
    down_day, up_day = now - 6 * day, now - 4 * day
    roster = roster_doc(
        {"ref": "CR-000401", "next_appointment": {"at": _iso(down_day), **place}},
        {"ref": "CR-000402", "next_appointment": {"at": _iso(up_day), **place}},
    )
    r = await api.client.put(f"/v1/admin/devices/{dev.device}/roster", json=roster, headers=ADMIN)
    assert r.status_code == 200
    # a heartbeat a minute for the whole week, but "not_reporting" (the check-in daemon
    # down) from an hour before the first appointment to three hours after it
    for minute in range(7 * 1440):
        t = now - 7 * day + 60 * minute
        down = down_day - hour <= t < down_day + 3 * hour
        body = {"queue_depth": 0, "kiosk": "not_reporting" if down else "running"}
        api.storage.heartbeat(dev.device, body, t)
    url = f"/v1/admin/devices/{dev.device}/missed"
    tasks = {t["ref"]: t for t in (await api.client.get(url, headers=OFFICER)).json()["tasks"]}
    assert set(tasks) == {"CR-000401", "CR-000402"}
    gaps = tasks["CR-000401"]["kiosk_not_running"]
    assert len(gaps) == 1
    start, end = (_unix(gaps[0][k]) for k in ("from", "to"))
    assert abs(start - (down_day - hour)) <= 60 and abs(end - (down_day + 3 * hour)) <= 60
    assert tasks["CR-000402"]["kiosk_not_running"] == []
    # heartbeats the API no longer reads (it reads a kiosk's newest HEARTBEATS_READ) cannot
    # say the kiosk was down: unknown, not an outage
    monkeypatch.setattr(refapi_app, "HEARTBEATS_READ", 1440)  # the last day only
    tasks = {t["ref"]: t for t in (await api.client.get(url, headers=OFFICER)).json()["tasks"]}
    assert tasks["CR-000401"]["kiosk_not_running"] is None


async def test_each_appointment_in_the_roster_is_attended_or_becomes_its_own_task(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    """A roster may list several appointments; a check-in attends the one it was made for
    (from 12 hours before it until 12 hours before the next), not every earlier one."""
    now, day = clock.now, 86400.0
    place = {"place_en": "x", "place_cy": "x"}
    appts = [{"at": _iso(now + d * day), **place} for d in (-10, -5, 7)]
    roster = roster_doc(
        *({"ref": ref, "appointments": appts} for ref in ("CR-000301", "CR-000302"))
    )
    r = await api.client.put(f"/v1/admin/devices/{dev.device}/roster", json=roster, headers=ADMIN)
    assert r.status_code == 200
    synced = {"synced": True, "boot_id": "00000000-0000-4000-8000-000000000001", "mono_ns": 1}
    first = dev.next_record(person="CR-000301", at=_iso(now - 10 * day + 60), clock=synced)
    second = dev.next_record(person="CR-000302", at=_iso(now - 5 * day - 3600), clock=synced)
    assert (await api.push(dev, [first, second])).status_code == 200

    body = (await api.client.get(f"/v1/admin/devices/{dev.device}/missed", headers=OFFICER)).json()

    assert [(t["ref"], t["appointment_at"]) for t in body["tasks"]] == [
        ("CR-000302", appts[0]["at"]),  # came for the second, not the first
        ("CR-000301", appts[1]["at"]),  # came for the first, not since
    ]


async def test_a_kiosk_that_lost_power_and_its_clock_credits_the_right_appointment(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    """A Pi without a clock battery restarts at the time it last saved (here 9 days slow)
    and is offline for a week. The person came for the first appointment; NTP answered two
    hours later in the same boot; everything arrives a week after. The check-in is dated
    through its boot's synchronised record, not by its arrival (which would credit the second
    appointment and list the first as missed)."""
    now, day, hour = clock.now, 86400.0, 3600.0
    place = {"place_en": "x", "place_cy": "x"}
    appts = [{"at": _iso(now + d * day), **place} for d in (-8, -1)]
    roster = roster_doc({"ref": "CR-000311", "appointments": appts})
    r = await api.client.put(f"/v1/admin/devices/{dev.device}/roster", json=roster, headers=ADMIN)
    assert r.status_code == 200
    boot = "00000000-0000-4000-8000-0000000000b1"
    came_at = now - 8 * day + 600  # truly: ten minutes after the first appointment
    came = dev.next_record(
        person="CR-000311",
        at=_iso(came_at - 9 * day),  # what the stale clock said
        clock={"synced": False, "boot_id": boot, "mono_ns": 50 * 10**9},
    )
    later = dev.next_record(  # NTP has answered: same boot, two hours of monotonic time on
        type="clock_step",
        at=_iso(came_at + 2 * hour),
        clock={"synced": True, "boot_id": boot, "mono_ns": (50 + 7200) * 10**9},
    )
    clock.now = now  # both arrive a week later, after the second appointment
    assert (await api.push(dev, [came, later])).status_code == 200

    url = f"/v1/admin/devices/{dev.device}/missed"
    body = (await api.client.get(url, params={"grace_days": 0}, headers=OFFICER)).json()
    assert [(t["ref"], t["appointment_at"]) for t in body["tasks"]] == [
        ("CR-000311", appts[1]["at"])  # came for the first; the second is the one to look at
    ]


async def test_a_check_in_at_the_kiosk_beside_counts_for_the_whole_office(
    api: InProcess, clock: FakeClock
) -> None:
    """Both kiosks of a lobby expect the person (an enrolment reaches both); they checked in at
    one. Neither lists them as missed. Another office's kiosk does not count."""
    day = 86400.0
    here, beside, elsewhere = (SimDevice(clock=clock) for _ in range(3))
    appt = {"at": _iso(clock.now - 5 * day), "place_en": "x", "place_cy": "x"}
    for d, office in ((here, "cardiff"), (beside, "cardiff"), (elsewhere, "swansea")):
        await api.enrol(d)
        people = [{"ref": ref, "next_appointment": appt} for ref in ("CR-000201", "CR-000202")]
        roster = roster_doc(*people, office=office)
        r = await api.client.put(f"/v1/admin/devices/{d.device}/roster", json=roster, headers=ADMIN)
        assert r.status_code == 200
    synced = {"synced": True, "boot_id": "00000000-0000-4000-8000-000000000001", "mono_ns": 1}
    came = beside.next_record(person="CR-000201", at=appt["at"], clock=synced)
    assert (await api.push(beside, [came])).status_code == 200
    far = elsewhere.next_record(person="CR-000202", at=appt["at"], clock=synced)
    assert (await api.push(elsewhere, [far])).status_code == 200

    for d, missed in ((here, ["CR-000202"]), (beside, ["CR-000202"]), (elsewhere, ["CR-000201"])):
        body = (
            await api.client.get(f"/v1/admin/devices/{d.device}/missed", headers=OFFICER)
        ).json()
        assert [t["ref"] for t in body["tasks"]] == missed, d.device


async def test_an_identity_review_decision_is_kept_and_clears_the_alert(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    """Requirement 8: the manual ID check's outcome is recorded (confirmed, confirmed with
    concern, rejected), by whom, once; the record then leaves the alerts list."""
    fallback = dev.next_record(type="checkin_fallback", flags=["id_review"])
    other = dev.next_record(type="checkin_fallback", flags=["id_review"])
    await api.push(dev, [fallback, other])
    alerts = (await api.client.get("/v1/admin/alerts", headers=OFFICER)).json()
    assert {(a["device"], a["seq"]) for a in alerts} >= {(dev.device, 1), (dev.device, 2)}
    url = f"/v1/admin/devices/{dev.device}/records/1/review"
    assert (await api.client.get(url, headers=OFFICER)).status_code == 404  # not yet decided
    decision = {"outcome": "confirmed_with_concern", "reviewer": "po-2231"}
    r = await api.client.put(url, json=decision, headers=OFFICER)
    assert r.status_code == 201
    assert r.json() == {"device": dev.device, "seq": 1, **decision, "at": clock.now}
    assert (await api.client.get(url, headers=OFFICER)).json()["outcome"] == decision["outcome"]
    alerts = (await api.client.get("/v1/admin/alerts", headers=OFFICER)).json()
    seqs = {a["seq"] for a in alerts if a["device"] == dev.device}
    assert 1 not in seqs and 2 in seqs  # the decided one is off the list, the other is not
    again = await api.client.put(
        url,
        json={"outcome": "rejected", "reviewer": "po-9"},
        headers=ADMIN | {"X-Operator": "po-9", "X-Purpose": "identity_review"},
    )
    assert again.status_code == 409 and again.json()["error"] == "already_reviewed"
    assert (await api.client.get(url, headers=OFFICER)).json()[
        "outcome"
    ] == "confirmed_with_concern"
    for bad in (
        {"outcome": "breach", "reviewer": "po-1"},
        {"outcome": "rejected", "reviewer": "Jane Smith"},
        {"outcome": "rejected"},
    ):
        r = await api.client.put(url.replace("/1/", "/2/"), json=bad, headers=OFFICER)
        assert r.status_code == 422, bad  # fmt: skip
    missing = url.replace("/1/", "/9/")
    r = await api.client.put(missing, json=decision, headers=OFFICER)
    assert r.status_code == 404 and r.json()["error"] == "unknown_record"
    assert (await api.client.put(url, json=decision)).status_code == 401


async def test_a_fault_plan_is_consumed_by_device_requests_only(
    api: InProcess, dev: SimDevice
) -> None:
    r = await api.client.post("/v1/admin/faults", json=["teapot"], headers=ADMIN)
    assert r.status_code == 422 and r.json()["error"] == "fault_plan"
    r = await api.client.post("/v1/admin/faults", json=["503:9", "lie"], headers=ADMIN)
    assert r.json() == {"queued": 2}
    assert (await api.client.get("/v1/health")).status_code == 200  # not consumed
    busy = await api.push(dev, dev.records(1))
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "9"
    assert api.storage.count(dev.device) == 0
    lied = await api.push(dev, [dev.next_record()])  # seq 2 arrives; seq 1 was never stored
    assert lied.status_code == 500
    assert api.storage.count(dev.device) == 1 and api.storage.gaps(dev.device) == [(1, 1)]


async def test_the_central_team_sees_a_rejected_update_in_the_device_status(
    api: InProcess, dev: SimDevice
) -> None:
    """From the boot records alone: the update started on slot B as a trial, then the kiosk
    came back on slot A with B marked bad (docs/updates.md)."""
    status = await api.client.get(f"/v1/admin/devices/{dev.device}", headers=ADMIN)
    assert status.json()["last_boot"] is None
    trial = {"booted": "B", "trial": True, "committed": "A", "bad": []}
    back = {"booted": "A", "trial": False, "committed": "A", "bad": ["B"]}
    records = [
        dev.next_record(type="boot", person=None,
                        detail={"app": "1.4.0", "slots": trial, "faults": {}, "simulated": []}),
        *dev.records(2),
        dev.next_record(type="boot", person=None,
                        detail={"app": "1.3.0", "slots": back, "faults": {}, "simulated": []}),
        *dev.records(1),
    ]  # fmt: skip
    assert (await api.push(dev, records)).status_code == 200
    status = await api.client.get(f"/v1/admin/devices/{dev.device}", headers=ADMIN)
    last = status.json()["last_boot"]
    assert (last["seq"], last["app"], last["slots"]) == (4, "1.3.0", back)


async def test_heartbeat_states_read_only_whether_the_kiosk_said_it_was_running(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    """The uptime figures and the missed-appointment tasks read tens of thousands of
    heartbeats: each backend answers (received, running) with the JSON read in the
    database. Only ``"kiosk": "running"`` counts; an older kiosk's heartbeat without the
    field, or a value of another type, is not taken for running."""
    t = clock.now
    bodies = [
        {"queue_depth": 0, "kiosk": "running"},
        {"queue_depth": 0},  # software from before the field
        {"kiosk": "not_reporting"},
        {"kiosk": True},
        {"kiosk": ["running"]},
        {"kiosk": "running", "faults": {"camera": "blank"}},
    ]
    for i, body in enumerate(bodies):
        api.storage.heartbeat(dev.device, body, t + i)
    states = api.storage.heartbeat_states(dev.device, 100)
    assert states == [(t + 5, True), (t + 4, False), (t + 3, False), (t + 2, False),
                      (t + 1, False), (t, True)]  # fmt: skip
    assert api.storage.heartbeat_states(dev.device, 2) == [(t + 5, True), (t + 4, False)]
    assert api.storage.heartbeat_states("kiosk-nobody", 100) == []
