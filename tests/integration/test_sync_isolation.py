"""Nothing one item does stops the rest, end to end: the device's SyncClient against the real
reference API over HTTPS on loopback, real outbox files. A roster the kiosk would refuse, a
sealed photo rotted on the card or gone. Synthetic data only (CR-0001xx references).

Where a test needs the API to serve a roster the reference API itself now refuses to publish
(a central system that does not check), it writes it into the API's store directly."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import SystemClock
from daemon.records import decode_unverified, verify_chain
from daemon.roster import parse_roster
from daemon.sync import ROSTER_STATUS, SyncClient
from hil.refapi.server import RefApi
from hil.refapi.testing import roster_doc
from tests.integration.conftest import Device

PEOPLE = ("CR-000101", "CR-000102", "CR-000103")
DOB = dt.date(1990, 1, 1)  # roster_doc's made-up date of birth


def _client(d: Device, tmp_path: Path) -> SyncClient:
    return SyncClient(d.outbox, d.api_config, d.key, clock=SystemClock(),
                      roster_path=tmp_path / "roster.json")  # fmt: skip


def _publish(api: RefApi, device: str, roster: dict[str, Any]) -> None:
    with api.admin() as admin:
        admin.put(f"/v1/admin/devices/{device}/roster", json=roster).raise_for_status()


def _serve_unchecked(api: RefApi, device: str, roster: dict[str, Any]) -> None:
    """What a central system that does not check its rosters would serve."""
    store = api.storage()
    try:
        store.put_roster(device, json.dumps(roster).encode())
    finally:
        store.close()


def _status(api: RefApi, device: str) -> dict[str, Any]:
    with api.admin() as admin:
        return dict(admin.get(f"/v1/admin/devices/{device}").json())


def _with_welsh_blank(roster: dict[str, Any], index: int) -> dict[str, Any]:
    bad = json.loads(json.dumps(roster))
    bad["people"][index]["messages"] = [{"id": "m1", "en": "Bring your payslips.", "cy": ""}]
    return bad


async def test_the_api_refuses_to_publish_a_roster_the_kiosk_would_not_take_whole(
    api: RefApi, device: Device
) -> None:
    good = roster_doc(*PEOPLE)
    _publish(api, device.id, good)
    with api.admin() as admin:
        r = admin.put(f"/v1/admin/devices/{device.id}/roster", json=_with_welsh_blank(good, 1))
    assert r.status_code == 422
    body = r.json()
    assert (body["error"], body["index"], body["field"]) == (
        "roster_invalid", 1, "people[1].messages[0].cy")  # fmt: skip
    assert "people[1].messages[0].cy" in body["detail"]
    assert not any(ref in r.text for ref in PEOPLE)  # the entry's place, never its data
    store = api.storage()
    try:
        roster = store.get_roster(device.id)
        assert roster is not None and json.loads(roster[1]) == good  # the published one stays
    finally:
        store.close()


async def test_one_bad_entry_leaves_only_that_person_out_and_is_reported(
    api: RefApi, device: Device, tmp_path: Path
) -> None:
    """A central system that serves an entry with an empty Welsh message: the kiosk takes
    everyone else (fresh appointments and messages) and says whom it left out."""
    _serve_unchecked(api, device.id, _with_welsh_blank(roster_doc(*PEOPLE), 1))
    client = _client(device, tmp_path)
    assert await client.fetch_roster() is True
    on_disk = parse_roster(json.loads((tmp_path / "roster.json").read_bytes()),
                           drop_bad_people=True)  # fmt: skip
    assert [p.ref for p in on_disk.people] == ["CR-000101", "CR-000103"]
    assert client.roster_dropped == ["people[1].messages[0].cy: must be a non-empty string"]
    await client.heartbeat()
    status = _status(api, device.id)
    assert status["heartbeat"]["roster_dropped"] == client.roster_dropped
    assert status["heartbeat"]["roster_refused"] is None
    assert "roster_dropped" in status["problems"]
    assert "CR-000102" not in json.dumps(status)
    await client.aclose()


async def test_a_refused_roster_keeps_the_last_good_one_across_a_restart(
    api: RefApi, device: Device, tmp_path: Path
) -> None:
    good = roster_doc(*PEOPLE)
    _publish(api, device.id, good)
    client = _client(device, tmp_path)
    assert await client.fetch_roster() is True
    good_bytes = (tmp_path / "roster.json").read_bytes()
    good_etag = (tmp_path / "roster.etag").read_text()

    broken = dict(good, dob_salt=base64.b64encode(b"short").decode())  # no one can match
    _serve_unchecked(api, device.id, broken)
    assert await client.fetch_roster() is False
    assert await client.fetch_roster() is False  # asked again: still refused, still kept
    assert (tmp_path / "roster.json").read_bytes() == good_bytes
    assert (tmp_path / "roster.etag").read_text() == good_etag  # not the refused one's
    refused = client.roster_refused
    assert refused is not None
    assert (refused["reason"], refused["field"]) == ("roster_invalid", "roster.dob_salt")

    # the kiosk restarts: it reads the last good roster, and everyone is still recognised
    on_disk = parse_roster(json.loads((tmp_path / "roster.json").read_bytes()),
                           drop_bad_people=True)  # fmt: skip
    assert all(on_disk.lookup(ref, DOB) is not None for ref in PEOPLE)
    await client.aclose()
    client = _client(device, tmp_path)  # kiosk-sync restarts too: it still reports it
    assert client.roster_refused == refused
    await client.heartbeat()
    status = _status(api, device.id)
    assert status["heartbeat"]["roster_refused"]["field"] == "roster.dob_salt"
    assert "roster_refused" in status["problems"]

    # the API goes back to the roster the kiosk has: nothing new comes, nothing is refused
    _publish(api, device.id, good)
    assert await client.fetch_roster() is False  # 304
    assert client.roster_refused is None
    _serve_unchecked(api, device.id, broken)
    assert await client.fetch_roster() is False
    assert client.roster_refused is not None

    # the service desk publishes the corrected roster: it comes at the next fetch
    corrected = roster_doc(*PEOPLE, "CR-000104")
    _publish(api, device.id, corrected)
    assert await client.fetch_roster() is True
    assert json.loads((tmp_path / "roster.json").read_bytes()) == corrected
    assert client.roster_refused is None
    assert json.loads((tmp_path / ROSTER_STATUS).read_bytes())["refused"] is None
    await client.heartbeat()
    assert "roster_refused" not in _status(api, device.id)["problems"]
    await client.aclose()


async def test_a_kiosk_left_with_an_unusable_roster_file_fetches_the_current_one(
    api: RefApi, device: Device, tmp_path: Path
) -> None:
    """A kiosk whose older software stored a roster it cannot use, and its ETag (the bug this
    fixes): it does not offer that ETag, so the API sends the roster again."""
    good = roster_doc(*PEOPLE)
    _publish(api, device.id, good)
    client = _client(device, tmp_path)
    assert await client.fetch_roster() is True
    etag = (tmp_path / "roster.etag").read_text()
    (tmp_path / "roster.json").write_text(json.dumps({"office": "x", "people": []}))
    (tmp_path / "roster.etag").write_text(etag)
    assert await client.fetch_roster() is True
    assert json.loads((tmp_path / "roster.json").read_bytes()) == good
    assert await client.fetch_roster() is False  # and then 304 as usual
    await client.aclose()


def _payload(compact: str) -> dict[str, Any]:
    return decode_unverified(compact)[1]


@pytest.mark.parametrize("fault", ["damaged", "missing"])
async def test_a_photo_that_cannot_be_sent_is_recorded_lost_and_the_rest_flows(
    api: RefApi, device: Device, tmp_path: Path, fault: str
) -> None:
    """A sealed photo rotted on the card (or gone) never stops the sync: its record goes up
    without it, a signed blob_lost record tells the officers, everything else arrives."""
    fallback = {"verify": {"method": "dob_photo"}, "flags": ["id_review"]}
    for i in range(1, 6):
        fields = {"person": f"CR-{100 + i:06d}"} | (fallback if i == 3 else {})
        device.outbox.append("checkin", fields, blob=f"sealed-photo-{i}".encode() * 60)
    photos = [p.photo for p in device.outbox.pending(10)]
    assert all(photos)
    bad = device.outbox.blob_path(str(photos[2]))
    if fault == "damaged":
        data = bytearray(bad.read_bytes())
        data[100] ^= 0x40  # one flipped bit: the card rotted it
        bad.write_bytes(bytes(data))
    else:
        bad.unlink()

    client = _client(device, tmp_path)
    assert await client.drain() == 6
    await client.heartbeat()

    store = api.storage()
    try:
        chain = [c for _d, _s, c in store.export(device.id)]
        held = [store.get_blob(str(p)) is not None for p in photos]
    finally:
        store.close()
    verify_chain(chain, device.key.public_key(), device.id, head_seq=6)
    assert held == [True, True, False, True, True]
    lost = _payload(chain[5])
    assert (lost["type"], lost["person"], lost["flags"]) == ("blob_lost", "CR-000103",
                                                             ["photo_lost"])  # fmt: skip
    assert lost["detail"] == {"blob": photos[2], "kind": "photo", "reason": fault, "seqs": [3]}
    # nothing left behind, nothing parked, nothing waiting
    st = device.outbox.stats()
    assert (st.depth, st.parked, st.blobs_pending) == (0, 0, 0)
    assert not any(device.outbox.blob_dir.iterdir())
    # officers see it: a follow-up task, and the identity review says why it has no photo
    with api.admin() as admin:
        tasks = admin.get("/v1/admin/tasks", params={"device": device.id}).json()["tasks"]
    by_kind = {(t["seq"], t["kind"]): t for t in tasks}
    assert by_kind[(6, "fault_followup")]["person"] == "CR-000103"
    assert by_kind[(3, "identity_review")]["blob_lost"] == {
        "seq": 6, "kind": "photo", "reason": fault}  # fmt: skip
    # and another drain finds nothing more to do
    assert await client.drain() == 0
    await client.aclose()
