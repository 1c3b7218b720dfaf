"""Retention at the central API (requirement 18): photos, enrolment templates, unreferenced
blobs and heartbeats go when the policy says; signed records never do; the API answers
sensibly for what went. Both storage backends, on the fake clock."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from daemon.sealing import PHOTO_INFO, public_from_private, seal
from hil import pki as pkimod
from hil.refapi import __main__ as cli
from hil.refapi.retention import DAY_S, RetentionPolicy, prune
from hil.refapi.testing import InProcess, SimDevice
from tests.refapi.conftest import FakeClock

ADMIN = {
    "Authorization": "Bearer test-admin-token",
    "X-Operator": "po-2231",
    "X-Purpose": "identity_review",
}
POLICY = RetentionPolicy()


async def _photo(api: InProcess, dev: SimDevice) -> str:
    """The device uploads a sealed photo (synthetic bytes) as the sync service does."""
    blob = b"KSEAL synthetic photo " + secrets.token_bytes(16)
    sha = hashlib.sha256(blob).hexdigest()
    path = f"/v1/blobs/{sha}"
    r = await api.client.put(path, content=blob, headers=dev.auth("PUT", path, blob))
    assert r.status_code == 201
    return sha


async def _checkin(api: InProcess, dev: SimDevice, **fields: object) -> tuple[int, str]:
    """A check-in with a photo, stored: (its seq, the photo's hash)."""
    sha = await _photo(api, dev)
    r = await api.push(dev, [dev.next_record(photo=sha, **fields)])
    assert r.json()["results"][0]["status"] == "accepted", r.text
    return dev.seq, sha


def _prune(api: InProcess, clock: FakeClock, **kw: bool) -> dict[str, int | bool]:
    return prune(api.storage, POLICY, clock.now, "retention-timer", **kw).counts()


def _export(api: InProcess) -> list[tuple[str, int, str]]:
    return list(api.storage.export())


async def test_a_photo_no_one_needs_to_review_goes_after_28_days_and_its_record_stays(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    seq, sha = await _checkin(api, dev)
    records = _export(api)
    clock.now += 28 * DAY_S - 60
    assert _prune(api, clock)["photos"] == 0
    assert (await api.client.get(f"/v1/admin/blobs/{sha}", headers=ADMIN)).status_code == 200
    clock.now += 60
    assert _prune(api, clock)["photos"] == 1
    assert api.storage.get_blob(sha) is None
    # the signed record, the audit trail, is untouched; it still names the photo's hash
    assert _export(api) == records
    listed = api.storage.list_records(dev.device)
    assert [(r["seq"], r["photo"]) for r in listed] == [(seq, sha)]
    # asking for the photo says it went under the retention policy, and when
    r = await api.client.get(f"/v1/admin/blobs/{sha}", headers=ADMIN)
    assert r.status_code == 410, r.text
    assert r.json()["error"] == "removed" and "retention policy" in r.json()["detail"]
    assert (r.json()["kind"], r.json()["reason"], r.json()["removed"]) == (
        "photo", "retention", clock.now)  # fmt: skip
    # a hash that was never stored is another answer
    never = await api.client.get(f"/v1/admin/blobs/{'0' * 64}", headers=ADMIN)
    assert never.status_code == 404 and never.json()["error"] == "unknown_blob"


async def test_a_resent_photo_that_was_removed_is_not_stored_again(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    blob = b"KSEAL synthetic photo, resent after its time"
    sha = hashlib.sha256(blob).hexdigest()
    path = f"/v1/blobs/{sha}"
    assert (
        await api.client.put(path, content=blob, headers=dev.auth("PUT", path, blob))
    ).status_code == 201
    await api.push(dev, [dev.next_record(photo=sha)])
    clock.now += 29 * DAY_S
    assert _prune(api, clock)["photos"] == 1
    r = await api.client.put(path, content=blob, headers=dev.auth("PUT", path, blob))
    assert r.status_code == 200  # the device's sync lets go of its copy on 200
    assert r.json()["removed"]["reason"] == "retention"
    assert api.storage.get_blob(sha) is None


async def test_a_photo_sent_for_identity_review_is_kept_until_the_decision_then_per_outcome(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    plain = await _checkin(api, dev)
    flagged = {
        outcome: await _checkin(api, dev, type="checkin_fallback", flags=["id_review"])
        for outcome in ("confirmed", "confirmed_with_concern", "rejected")
    }
    clock.now += 100 * DAY_S  # nobody has looked yet: the flagged photos wait for a person
    counts = _prune(api, clock)
    assert (counts["photos"], counts["awaiting_review"]) == (1, 3)
    assert api.storage.get_blob(plain[1]) is None
    for outcome, (seq, _sha) in flagged.items():
        url = f"/v1/admin/devices/{dev.device}/records/{seq}/review"
        r = await api.client.put(url, json={"outcome": outcome, "reviewer": "po-2231"},
                                 headers=ADMIN)  # fmt: skip
        assert r.status_code == 201, r.text
    clock.now += 28 * DAY_S - 60
    assert _prune(api, clock)["photos"] == 0
    clock.now += 60  # 28 days after a "confirmed" decision
    assert _prune(api, clock)["photos"] == 1
    held = {o: api.storage.get_blob(sha) is not None for o, (_s, sha) in flagged.items()}
    assert held == {"confirmed": False, "confirmed_with_concern": True, "rejected": True}
    clock.now += (2192 - 28) * DAY_S  # about six years: the evidence of a concern goes too
    assert _prune(api, clock)["photos"] == 2
    assert all(api.storage.get_blob(sha) is None for _s, sha in flagged.values())
    assert api.storage.count(dev.device) == 4


async def test_a_blob_no_record_names_goes_after_28_days_unless_a_record_names_it_by_then(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    orphan = await _photo(api, dev)
    late = await _photo(api, dev)  # its record arrives after the prune has looked
    clock.now += 28 * DAY_S
    due = prune(api.storage, POLICY, clock.now, "retention-timer", dry_run=True).due
    assert sorted(due) == sorted([(orphan, "unreferenced", "retention"),
                                  (late, "unreferenced", "retention")])  # fmt: skip
    await api.push(dev, [dev.next_record(photo=late)])
    assert api.storage.remove_blobs(due, clock.now) == [orphan]
    assert api.storage.get_blob(late) is not None  # its record's clock holds it now
    assert api.storage.blob_removed(late) is None


async def test_a_dry_run_counts_and_deletes_nothing(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    _seq, sha = await _checkin(api, dev)
    clock.now += 40 * DAY_S
    counts = _prune(api, clock, dry_run=True)
    assert counts["photos"] == 1 and counts["dry_run"] is True
    assert api.storage.get_blob(sha) is not None
    assert api.storage.blob_removed(sha) is None


async def test_heartbeats_go_after_30_days_but_each_kiosk_keeps_its_newest(
    api: InProcess, dev: SimDevice, clock: FakeClock
) -> None:
    quiet = SimDevice(clock=clock)
    await api.enrol(quiet)

    async def beat(d: SimDevice, depth: int) -> None:
        path = f"/v1/devices/{d.device}/heartbeat"
        body = json.dumps({"queue_depth": depth}).encode()
        r = await api.client.post(path, content=body, headers=d.auth("POST", path, body))
        assert r.status_code == 200

    await beat(quiet, 99)  # then silent for good
    for day in range(40):
        await beat(dev, day)
        clock.now += DAY_S
    assert _prune(api, clock)["heartbeats"] == 10  # days 0-9 are over 30 days old
    kept = [b["body"]["queue_depth"] for b in api.storage.heartbeats(dev.device, 100)]
    assert kept == list(range(39, 9, -1))
    # the silent kiosk's only heartbeat stays: its status still says when it was last heard
    assert [b["body"]["queue_depth"] for b in api.storage.heartbeats(quiet.device)] == [99]
    status = await api.client.get(f"/v1/admin/devices/{quiet.device}", headers=ADMIN)
    assert status.json()["heartbeat"] == {"queue_depth": 99}
    assert "silent" in status.json()["problems"]


async def test_prune_from_the_command_line_prints_counts_and_logs_the_run(
    api: InProcess,
    dev: SimDevice,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "now", clock)
    pki = pkimod.create(tmp_path / "pki")
    jpeg = b"\xff\xd8\xff synthetic jpeg \xff\xd9"
    blob = seal(jpeg, public_from_private(pki.seal_key.read_bytes()), PHOTO_INFO)
    sha = hashlib.sha256(blob).hexdigest()
    api.storage.put_blob(sha, dev.device, blob, clock.now)
    await api.push(dev, [dev.next_record(photo=sha)])
    clock.now += 10 * DAY_S
    base = ["prune", *api.where(), "--operator", "retention-timer"]
    out = io.StringIO()
    with redirect_stdout(out):  # a shorter period than the default: it is due now
        assert cli.main([*base, "--photo-days", "7"]) == 0
    assert json.loads(out.getvalue())["photos"] == 1
    assert cli.main([*base, "--photo-days", "-1"]) == 2
    with pytest.raises(SystemExit):  # the operator is an id, never a name
        cli.main(["prune", *api.where(), "--operator", "Jane Smith"])
    # the reviewer who comes for the photo now is told why it is not there
    photo = ["open-photo", *api.where(), "--operator", "po-2231", "--purpose", "audit",
             "--sha", sha, "--seal-key", str(pki.seal_key),
             "-o", str(tmp_path / "p.jpg")]  # fmt: skip
    capsys.readouterr()
    assert cli.main(photo) == 1
    assert "removed under the retention policy" in capsys.readouterr().err
    assert not (tmp_path / "p.jpg").exists()
    log = api.storage.access_log()
    run = next(e for e in log if e["action"] == "retention.prune")
    assert (run["operator"], run["via"], run["detail"]["photos"]) == ("retention-timer", "cli", 1)
    assert run["detail"]["policy"]["photo_days"] == 7
    opened = next(e for e in log if e["action"] == "photo.open")
    assert (opened["operator"], opened["outcome"], opened["target"]) == (
        "po-2231", "removed", sha[:12])  # fmt: skip
