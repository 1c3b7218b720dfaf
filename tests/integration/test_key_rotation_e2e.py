"""Device key rotation end to end: ``kioskctl provision --force`` against the real reference
API over HTTPS on loopback, check-ins with sealed photos before and after it, and the kiosk's
own sync (``kioskctl sync`` and the kiosk-sync loop). Nothing here is mocked; all data is
synthetic."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from daemon.clock import FakeClock, SystemClock
from daemon.keys import FileKeyBackend
from daemon.rotation import verify_chain_across_rotations
from daemon.sync import AuthRefused, SyncClient
from daemon.syncd import status_line
from hil.refapi.server import RefApi
from tests.kioskctl.conftest import Kiosk, provision_args

DEVICE = "kiosk-rot001"


def _kiosk(api: RefApi, folder: Path) -> Kiosk:
    """A kiosk without hardware: provisioned and synced through kioskctl, check-ins written
    straight to its outbox."""
    return Kiosk(folder, folder / "etc" / "kiosk.toml", api, None,  # type: ignore[arg-type]
                 FakeClock(wall=time.time(), synced=True))  # fmt: skip


def _checkins(k: Kiosk, first: int, n: int) -> None:
    with k.outbox() as ob:
        for i in range(first, first + n):
            ob.append("checkin", {"person": f"CR-{i:06d}"}, blob=f"sealed-{i}".encode() * 40)


async def _run_until(client: SyncClient, done: object, timeout_s: float = 20.0) -> None:
    """Run the kiosk-sync loop until ``done()`` is true (or fail after ``timeout_s``)."""
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        deadline = time.monotonic() + timeout_s
        while not done():  # type: ignore[operator]
            assert not task.done(), "the sync loop ended by itself"
            assert time.monotonic() < deadline, f"sync did not finish: {client.last_error}"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


async def test_a_rotated_kiosk_syncs_everything_with_its_new_key(
    api: RefApi, tmp_path: Path
) -> None:
    k = _kiosk(api, tmp_path)
    code, _out, err = k.run(*provision_args(api, tmp_path, DEVICE))
    assert code == 0, err
    enrolled = FileKeyBackend(k.cfg.device.key_path).load()
    k.edit("api", batch_size=4, backoff_base_s=0.01, backoff_cap_s=0.05)
    _checkins(k, 1, 5)  # seq 2-6
    code, out, err = await asyncio.to_thread(k.run, "sync")  # it runs its own event loop
    assert code == 0, err
    _checkins(k, 6, 6)  # seq 7-12: signed by the old key, still queued when the key changes

    code, out, err = k.run(*provision_args(api, tmp_path, DEVICE), "--force")
    assert code == 0, err
    assert "key_rotation record written at seq 13" in out
    assert "switches this kiosk to the new key when it receives that record" in out
    _checkins(k, 12, 4)  # seq 14-17: signed by the new key
    cfg = k.cfg
    new_key = FileKeyBackend(cfg.device.key_path).load()

    with k.outbox() as outbox:
        client = SyncClient(outbox, cfg.api, new_key, clock=SystemClock())
        # until the API has the key_rotation record, the new key's requests are refused;
        # the client says why, and nothing on the kiosk changes
        with pytest.raises(AuthRefused, match="key_rotation"):
            await client.heartbeat()
        assert outbox.stats().depth == 11 and outbox.parked() == []

        # the kiosk-sync loop: the queue drains in batches of 4 (the backlog before the
        # rotation, the batch with it, the records after it), photos refused with 401 go up
        # once the API has the new key, and a heartbeat signed by the new key is accepted
        def synced() -> bool:
            st = outbox.stats()
            return st.depth == 0 and st.blobs_pending == 0 and client.last_success_wall is not None

        await _run_until(client, synced)
        assert client.last_error is None
        assert outbox.parked() == []
        # the photos uploaded after their records were deleted as they went up: no sealed
        # photo stays on the kiosk once the API has it and its record
        assert not any(outbox.blob_dir.iterdir())
        await client.aclose()

    code, out, err = k.run("outbox", "verify")
    assert code == 0, out + err
    assert "1 key rotation" in out

    store = api.storage()
    try:
        chain = [c for _d, _s, c in store.export(DEVICE)]
        records = verify_chain_across_rotations(chain, enrolled.public_key(), DEVICE, head_seq=17)
        photos = [r.payload["photo"] for r in records if r.payload.get("photo")]
        assert len(photos) == 15 and all(store.get_blob(p) for p in photos)
        assert [k_.from_seq for k_ in store.device_keys(DEVICE)] == [1, 14]
    finally:
        store.close()
    with api.admin() as admin:
        status = admin.get(f"/v1/admin/devices/{DEVICE}").json()
    assert status["heartbeat"]["last_seq"] == 17 and status["gaps"] == []


async def test_a_refused_key_is_retried_with_backoff_and_parks_nothing(
    api: RefApi, tmp_path: Path
) -> None:
    """A kiosk whose key the API does not (yet) accept: the loop keeps going, backs off, says
    why in its status line, and nothing is parked or lost."""
    k = _kiosk(api, tmp_path)
    code, _out, err = k.run(*provision_args(api, tmp_path, "kiosk-rot002"))
    assert code == 0, err
    k.edit("api", backoff_base_s=0.01, backoff_cap_s=0.05)
    cfg = k.cfg
    _checkins(k, 1, 2)
    # the key file is replaced behind the API's back (no key_rotation record at all)
    stranger = FileKeyBackend(tmp_path / "stranger.pem").create()
    with k.outbox() as outbox:
        client = SyncClient(outbox, cfg.api, stranger, clock=SystemClock())
        await _run_until(client, lambda: client.failures >= 5)
        assert isinstance(client.last_error, AuthRefused)
        assert "retrying: api_auth" in status_line(client, outbox)
        # the records themselves were signed by the enrolled key: they went up, unparked;
        # the photos the API refused are still on the kiosk, waiting
        assert outbox.stats().depth == 0 and outbox.parked() == []
        assert outbox.stats().blobs_pending == 2
        await client.aclose()
        # with the enrolled key the same kiosk catches up
        client = SyncClient(outbox, cfg.api, FileKeyBackend(cfg.device.key_path).load(),
                            clock=SystemClock())  # fmt: skip
        await _run_until(client, lambda: outbox.stats().blobs_pending == 0)
        assert client.failures == 0
        await client.aclose()
