"""Device key rotation on the reference API: a key_rotation record accepted in chain order
switches the key that verifies the device's later records and its signed requests; nothing else
can (a forged rotation, re-enrolment). All keys and records are synthetic."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import ssl
from pathlib import Path

import httpx
import pytest

from daemon.errors import RecordError
from daemon.keys import SoftwareKey, generate, public_pem
from daemon.records import verify_chain
from daemon.rotation import verify_chain_across_rotations
from hil.refapi.__main__ import main
from hil.refapi.server import RefApi
from hil.refapi.storage import SqliteStorage
from hil.refapi.testing import InProcess, SimDevice, in_process
from tests.refapi.conftest import FakeClock

ADMIN = {"Authorization": "Bearer test-admin-token"}


def _statuses(r: httpx.Response) -> list[tuple[str, str | None]]:
    assert r.status_code == 200, r.text
    return [(x["status"], x["reason"]) for x in r.json()["results"]]


async def _heartbeat(api: InProcess, dev: SimDevice) -> httpx.Response:
    path = f"/v1/devices/{dev.device}/heartbeat"
    body = b'{"queue_depth": 0}'
    return await api.client.post(path, content=body, headers=dev.auth("POST", path, body))


async def _put_blob(api: InProcess, dev: SimDevice, blob: bytes) -> httpx.Response:
    path = f"/v1/blobs/{hashlib.sha256(blob).hexdigest()}"
    return await api.client.put(path, content=blob, headers=dev.auth("PUT", path, blob))


async def _enrol_again(api: InProcess, dev: SimDevice, key: SoftwareKey) -> httpx.Response:
    code = (await api.client.post("/v1/admin/enrolment-codes", headers=ADMIN)).json()["code"]
    body = dev.enrol_body(code) | {"public_key_pem": public_pem(key.public_key())}
    return await api.client.post("/v1/enrol", json=body)


def _stored(api: InProcess, dev: SimDevice) -> list[str]:
    return [c for _d, _s, c in api.storage.export(dev.device)]


async def test_a_rotation_switches_the_key_for_later_records_and_requests(
    api: InProcess, dev: SimDevice
) -> None:
    old = dev.key
    assert _statuses(await api.push(dev, dev.records(3))) == [("accepted", None)] * 3
    rotation = dev.rotate()
    # the rotation alone, signed (record and request) by the old key that authorises it
    path = f"/v1/devices/{dev.device}/records"
    body = json.dumps({"records": [rotation]}).encode()
    r = await api.client.post(
        path, content=body, headers=_with_key(dev, old).auth("POST", path, body)
    )
    assert _statuses(r) == [("accepted", None)]
    # later records are signed by the new key and verify with it
    assert _statuses(await api.push(dev, dev.records(4))) == [("accepted", None)] * 4
    # signed requests: the new key is in effect, the old one no longer is
    assert (await _heartbeat(api, dev)).status_code == 200
    assert (await _put_blob(api, dev, b"sealed bytes after rotation" * 20)).status_code == 201
    r = await _heartbeat(api, _with_key(dev, old))
    assert r.status_code == 401 and r.json()["error"] == "unauthorised"
    # the stored chain verifies from the enrolled key across the rotation, not with one key
    chain = _stored(api, dev)
    records = verify_chain_across_rotations(chain, old.public_key(), dev.device, head_seq=8)
    assert [x.type for x in records].count("key_rotation") == 1
    with pytest.raises(RecordError) as err:
        verify_chain(chain, old.public_key(), dev.device)
    assert err.value.reason == "bad_signature"
    status = (await api.client.get(f"/v1/admin/devices/{dev.device}", headers=ADMIN)).json()
    assert [(k["from_seq"], k["public_key_pem"]) for k in status["keys"]] == [
        (1, public_pem(old.public_key())),
        (5, dev.public_pem),
    ]
    # re-enrolment cannot change the key: the key in effect is idempotent, any other is 409
    assert (await _enrol_again(api, dev, dev.key)).status_code == 200
    for other in (old, SoftwareKey(generate("ES256"))):
        r = await _enrol_again(api, dev, other)
        assert r.status_code == 409 and r.json()["error"] == "already_enrolled"


def _with_key(dev: SimDevice, key: SoftwareKey) -> SimDevice:
    """The same device id signing with ``key`` (a copy; ``dev`` is unchanged)."""
    twin = SimDevice(device=dev.device, clock=dev.clock, seq=dev.seq, head=dev.head)
    twin.key = key
    return twin


async def test_a_rotation_and_the_records_after_it_in_one_batch_are_all_accepted(
    api: InProcess, dev: SimDevice
) -> None:
    first = dev.records(2)
    rotation = dev.rotate()
    after = dev.records(3)
    # the device already holds only the new key: the request is signed by it
    r = await api.push(dev, [*first, rotation, *after], key="batch-1")
    assert _statuses(r) == [("accepted", None)] * 6
    # a key the batch itself handed over to counts: the answer is kept for its key
    again = await api.push(dev, [*first, rotation, *after], key="batch-1")
    assert again.json() == r.json()
    assert (await _heartbeat(api, dev)).status_code == 200
    # order within the batch matters: records are checked in batch order
    late = SimDevice(clock=dev.clock)
    await api.enrol(late)
    start = late.records(1)
    rot = late.rotate()
    later = late.next_record()
    r = await api.push(late, [*start, later, rot])
    assert _statuses(r) == [("accepted", None), ("rejected", "bad_signature"),
                            ("accepted", None)]  # fmt: skip
    assert _statuses(await api.push(late, [later])) == [("accepted", None)]


async def test_records_signed_before_a_rotation_go_up_after_it(
    api: InProcess, dev: SimDevice
) -> None:
    """A backlog older than the rotation: the device signs the request with its new key,
    which the API cannot know yet; the old-key records stand on their own signatures."""
    backlog = dev.records(5)
    rotation = dev.rotate()
    after = dev.records(2)
    r = await api.push(dev, backlog[:3], key="b1")
    assert _statuses(r) == [("accepted", None)] * 3
    assert (await _heartbeat(api, dev)).status_code == 401  # the key is not in effect yet
    r = await api.push(dev, [*backlog[3:], rotation, *after], key="b2")
    assert _statuses(r) == [("accepted", None)] * 5
    assert (await _heartbeat(api, dev)).status_code == 200
    # a batch that stood on its records alone keeps no answer: a resend is classified again
    r = await api.push(dev, backlog[:3], key="b1")
    assert _statuses(r) == [("duplicate", None)] * 3
    # and a batch with neither a verifying header nor a verifying record is refused
    stranger = _with_key(dev, SoftwareKey(generate("ES256")))
    r = await api.push(stranger, [stranger.next_record()], key="b3")
    assert r.status_code == 401 and r.json()["error"] == "unauthorised"
    assert api.storage.idempotent_answer(dev.device, "b3") is None
    assert len(_stored(api, dev)) == 8


async def test_a_forged_rotation_is_rejected_and_changes_nothing(
    api: InProcess, dev: SimDevice
) -> None:
    assert _statuses(await api.push(dev, dev.records(2))) == [("accepted", None)] * 2
    enrolled = dev.public_pem
    forger = _with_key(dev, SoftwareKey(generate("ES256")))  # knows the chain, not the key
    forged = forger.rotate()
    forged_records = forger.records(2)
    # sent by the forger: neither its request signature nor its records verify
    r = await api.push(forger, [forged, *forged_records])
    assert r.status_code == 401 and r.json()["error"] == "unauthorised"
    # even inside a batch the device's own key signed, each is rejected with its reason
    r = await api.push(dev, [forged, *forged_records])
    assert _statuses(r) == [("rejected", "bad_signature")] * 3
    stored = api.storage.device(dev.device)
    assert stored is not None and stored.public_pem == enrolled
    assert len(api.storage.device_keys(dev.device)) == 1
    assert (await _heartbeat(api, forger)).status_code == 401
    assert (await _heartbeat(api, dev)).status_code == 200
    # the device's real chain carries on with its own key at the seq the forger wanted
    assert _statuses(await api.push(dev, dev.records(1))) == [("accepted", None)]


async def test_a_rotation_to_an_unusable_key_or_out_of_order_is_rejected(
    api: InProcess, dev: SimDevice
) -> None:
    await api.push(dev, dev.records(2))
    enrolled = dev.key
    bad_pem = _with_key(dev, enrolled)
    garbage = bad_pem.rotate(new_public_key_pem="-----BEGIN PUBLIC KEY-----\nnot a key\n")
    wrong_alg = _with_key(dev, enrolled).rotate(new_alg="EdDSA")  # an ES256 key
    r = await api.push(dev, [garbage, wrong_alg])
    assert _statuses(r) == [("rejected", "rotation_key")] * 2
    # a rotation whose predecessor the API does not hold does not continue the chain
    ahead = _with_key(dev, enrolled)
    ahead.records(1)  # seq 3 never sent
    r = await api.push(dev, [ahead.rotate()])
    assert _statuses(r) == [("rejected", "rotation_order")]
    assert len(api.storage.device_keys(dev.device)) == 1
    r = await api.push(dev, [*dev.records(2)])  # 3 and 4 with the enrolled key
    assert _statuses(r) == [("accepted", None)] * 2
    # nor does one placed before records already stored (they verified with the old key)
    head = dev.head
    dev.records(2)  # seq 5 and 6 are never sent; 7 is
    assert _statuses(await api.push(dev, [dev.next_record()])) == [("accepted", None)]
    twin = _with_key(dev, enrolled)
    twin.seq, twin.head = 4, head
    r = await api.push(dev, [twin.rotate()])  # seq 5: links to 4, but 7 is held
    assert _statuses(r) == [("rejected", "rotation_order")]
    assert len(api.storage.device_keys(dev.device)) == 1
    assert (await _heartbeat(api, dev)).status_code == 200


async def test_the_new_key_survives_a_new_storage_object_and_an_old_database(
    tmp_path: Path, clock: FakeClock
) -> None:
    api = in_process(tmp_path, clock=clock)
    dev = SimDevice(clock=clock)
    try:
        await api.enrol(dev)
        await api.push(dev, [*dev.records(2), dev.rotate(), *dev.records(2)])
    finally:
        await api.client.aclose()
        api.storage.close()
    store = SqliteStorage(tmp_path / "refapi.sqlite3")
    try:
        device = store.device(dev.device)
        assert device is not None and device.public_pem == dev.public_pem
        assert [k.from_seq for k in store.device_keys(dev.device)] == [1, 4]
    finally:
        store.close()
    # a database written before key histories existed (schema version 0) gets one
    old_db = tmp_path / "old" / "refapi.sqlite3"
    old_db.parent.mkdir()
    with sqlite3.connect(old_db) as db:
        db.execute(
            "CREATE TABLE devices (device TEXT PRIMARY KEY, alg TEXT NOT NULL, public_pem TEXT "
            "NOT NULL, enrolled REAL NOT NULL, roster_pub TEXT NOT NULL DEFAULT '')"
        )
        db.execute("INSERT INTO devices VALUES ('kiosk-old', 'ES256', 'PEM', 1.0, '')")
    db.close()
    store = SqliteStorage(old_db)
    try:
        [key] = store.device_keys("kiosk-old")
        assert (key.from_seq, key.public_pem) == (1, "PEM")
    finally:
        store.close()


def test_a_restarted_api_keeps_the_rotated_key(tmp_path: Path) -> None:
    """The real server (uvicorn, HTTPS): rotate, stop, start on the same data: the new key
    is still the one in effect for records and signed requests, and the export verifies."""
    api = RefApi(tmp_path / "api")
    api.start()
    dev = SimDevice()
    enrolled = dev.key
    verify = ssl.create_default_context(cafile=str(api.ca))

    def post(path: str, body: bytes, who: SimDevice = dev) -> httpx.Response:
        headers = who.auth("POST", path, body) | {"Content-Type": "application/json"}
        return httpx.post(api.url + path.lstrip("/"), content=body, headers=headers,
                          verify=verify)  # fmt: skip

    def push(records: list[str]) -> list[tuple[str, str | None]]:
        body = json.dumps({"records": records}).encode()
        return _statuses(post(f"/v1/devices/{dev.device}/records", body))

    try:
        r = httpx.post(api.url + "v1/enrol", json=dev.enrol_body(api.mint_code()), verify=verify)
        assert r.status_code == 201
        assert push([*dev.records(3), dev.rotate(), *dev.records(2)]) == [("accepted", None)] * 6
        api.stop()
        api.start()
        heartbeat = f"/v1/devices/{dev.device}/heartbeat"
        assert post(heartbeat, b"{}").status_code == 200
        assert post(heartbeat, b"{}", _with_key(dev, enrolled)).status_code == 401
        assert push(dev.records(2)) == [("accepted", None)] * 2
    finally:
        api.stop()
    out = tmp_path / "export.jws"
    assert (
        main(
            [
                "export",
                "--data",
                str(api.data),
                "--operator",
                "audit-01",
                "--purpose",
                "audit",
                "--device",
                dev.device,
                "-o",
                str(out),
            ]
        )
        == 0
    )
    lines = out.read_text().splitlines()
    verify_chain_across_rotations(lines, enrolled.public_key(), dev.device, head_seq=8)
