"""The records batch: verify, de-duplicate, forks, gaps, idempotency (app in process)."""

from __future__ import annotations

from typing import Any

from daemon.records import (
    GENESIS,
    b64url,
    canonical_json,
    decode_unverified,
    record_hash,
    sign_record,
    verify_chain,
)
from hil.refapi.testing import InProcess, SimDevice


def statuses(answer: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(r["status"], r["reason"]) for r in answer["results"]]


async def test_a_chain_is_accepted_stored_in_order_and_verifies(
    api: InProcess, dev: SimDevice
) -> None:
    records = dev.records(20)
    r = await api.push(dev, records)
    assert r.status_code == 200
    answer = r.json()
    assert statuses(answer) == [("accepted", None)] * 20
    assert [x["seq"] for x in answer["results"]] == list(range(1, 21))
    assert answer["last_seq"] == 20 and answer["gaps"] == []
    stored = [c for _d, _s, c in api.storage.export(dev.device)]
    assert stored == records
    verify_chain(stored, dev.key.public_key(), dev.device, head_seq=20)


async def test_resent_records_are_duplicates_and_stored_once(
    api: InProcess, dev: SimDevice
) -> None:
    first = dev.records(5)
    await api.push(dev, first)
    more = dev.records(2)
    r = await api.push(dev, first[2:] + more)
    assert statuses(r.json()) == [("duplicate", None)] * 3 + [("accepted", None)] * 2
    # the same record twice in one batch
    again = dev.next_record()
    r = await api.push(dev, [again, again])
    assert statuses(r.json()) == [("accepted", None), ("duplicate", None)]
    assert api.storage.count(dev.device) == 8


async def test_a_different_record_at_a_stored_seq_is_a_fork_kept_for_the_auditor(
    api: InProcess, dev: SimDevice
) -> None:
    await api.push(dev, dev.records(3))
    # the device "forgets" seq 3 and signs another record there
    forged = sign_record(dev.payload(3, dev.head, person="CR-999999"), dev.key)
    r = await api.push(dev, [forged])
    assert statuses(r.json()) == [("rejected", "fork")]
    assert api.storage.forks(dev.device) == [(3, "fork")]
    assert api.storage.count(dev.device) == 3
    admin = await api.client.get(
        f"/v1/admin/devices/{dev.device}", headers={"Authorization": "Bearer test-admin-token"}
    )
    assert admin.json()["forks"] == [[3, "fork"]]


async def test_a_record_that_does_not_link_to_its_stored_predecessor_is_rejected(
    api: InProcess, dev: SimDevice
) -> None:
    await api.push(dev, dev.records(2))
    wrong_prev = sign_record(dev.payload(3, GENESIS), dev.key)
    r = await api.push(dev, [wrong_prev])
    assert statuses(r.json()) == [("rejected", "prev_mismatch")]
    assert api.storage.count(dev.device) == 2


async def test_gaps_are_reported_until_filled(api: InProcess, dev: SimDevice) -> None:
    chain = dev.records(10)
    r = await api.push(dev, chain[:3] + chain[6:])
    answer = r.json()
    assert all(s == "accepted" for s, _ in statuses(answer))
    assert answer["gaps"] == [[4, 6]] and answer["last_seq"] == 10
    r = await api.push(dev, chain[3:6])
    assert r.json()["gaps"] == [] and r.json()["last_seq"] == 10
    assert api.storage.gaps(dev.device) == []


async def test_bad_records_are_rejected_with_a_reason_and_the_rest_accepted(
    api: InProcess, dev: SimDevice
) -> None:
    good = dev.records(2)
    other = SimDevice()  # not enrolled: its key is not this device's
    foreign = sign_record(other.payload(3, dev.head, device=dev.device), other.key)
    header, _payload, sig = good[1].split(".")
    altered = decode_unverified(good[1])[1] | {"person": "CR-000777"}
    tampered = ".".join([header, b64url(canonical_json(altered)), sig])
    wrong_device = sign_record(dev.payload(3, dev.head, device="kiosk-other"), dev.key)
    bad_schema = sign_record(dev.payload(3, dev.head, type="party"), dev.key)
    r = await api.push(dev, [good[0], foreign, tampered, wrong_device, bad_schema, "not-a-jws"])
    assert statuses(r.json()) == [
        ("accepted", None),
        ("rejected", "bad_signature"),
        ("rejected", "bad_signature"),
        ("rejected", "wrong_device"),
        ("rejected", "schema"),
        ("rejected", "malformed"),
    ]
    assert api.storage.count(dev.device) == 1


async def test_a_reused_record_id_is_refused(api: InProcess, dev: SimDevice) -> None:
    first = dev.next_record()
    await api.push(dev, [first])
    rid = api.storage.export(dev.device).__next__()[2]
    assert rid == first
    same_id = decode_unverified(first)[1]["id"]
    replay = sign_record(dev.payload(2, record_hash(first), id=same_id), dev.key)
    r = await api.push(dev, [replay])
    assert statuses(r.json()) == [("rejected", "duplicate_id")]


async def test_an_idempotency_key_replays_the_stored_answer(api: InProcess, dev: SimDevice) -> None:
    batch = dev.records(4)
    first = await api.push(dev, batch, key="batch-1")
    again = await api.push(dev, batch, key="batch-1")
    assert again.status_code == 200
    assert again.json() == first.json()  # "accepted", not "duplicate": the answer itself
    other = await api.push(dev, batch[:2], key="batch-1")
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert api.storage.count(dev.device) == 4


async def test_a_batch_over_the_limit_is_refused(api: InProcess, dev: SimDevice) -> None:
    r = await api.push(dev, ["x"] * 501)
    assert r.status_code == 422 and r.json()["error"] == "schema"


async def test_a_resend_that_passed_the_early_check_still_gets_the_first_answer(
    api: InProcess, dev: SimDevice
) -> None:
    # Two sends of one batch can both pass the endpoint's early Idempotency-Key check before
    # either commits; the second then waits on the batch lock. Under the lock it must find
    # the first answer, not classify the records again as duplicates and overwrite it.
    # (Without that re-check the second answer says "duplicate" five times.)
    import hashlib

    from hil.refapi.app import _process_batch

    batch = dev.records(5)
    idem = ("race", hashlib.sha256(b"the batch body").hexdigest())
    first = _process_batch(api.storage, dev.device, batch, idem, 0.0)
    second = _process_batch(api.storage, dev.device, batch, idem, 0.0)
    assert second == first
    assert {r["status"] for r in second["results"]} == {"accepted"}
    assert api.storage.idempotent_answer(dev.device, "race") is not None
    replay = await api.push(dev, batch, key="race")
    assert replay.status_code == 422  # another body under the same key
