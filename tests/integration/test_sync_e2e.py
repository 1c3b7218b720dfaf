"""The sync path end to end: the device's SyncClient against the real reference API over
HTTPS on loopback. Nothing here is mocked."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from daemon.clock import SystemClock
from daemon.config import ApiConfig
from daemon.errors import ApiProtocolError, ApiUnreachable, TlsError
from daemon.records import verify_chain
from daemon.sync import AuthRefused, RetryLater, SyncClient
from hil import pki as pkimod
from hil.refapi.server import RefApi
from hil.refapi.testing import roster_doc
from tests.integration.conftest import Device, enrol


def _client(d: Device, **kw: object) -> SyncClient:
    return SyncClient(d.outbox, d.api_config, d.key, clock=SystemClock(), **kw)  # type: ignore[arg-type]


def _server_chain(api: RefApi, device: str) -> list[str]:
    store = api.storage()
    try:
        return [c for _d, _s, c in store.export(device)]
    finally:
        store.close()


def _checkins(d: Device, n: int, photo_every: int = 0) -> None:
    for i in range(n):
        blob = f"sealed-photo-{i}".encode() * 50 if photo_every and i % photo_every == 0 else None
        d.outbox.append("checkin", {"person": f"CR-{i:06d}"}, blob=blob)


async def test_records_and_photos_reach_the_api_once_and_verify(
    api: RefApi, device: Device
) -> None:
    _checkins(device, 120, photo_every=10)
    client = _client(device)
    assert await client.drain() == 120
    # a second drain, and a replay of everything, change nothing on the server
    assert await client.drain() == 0
    chain = _server_chain(api, device.id)
    assert len(chain) == 120
    verify_chain(chain, device.key.public_key(), device.id, head_seq=120)
    store = api.storage()
    photos = [
        json.loads(__import__("base64").urlsafe_b64decode(c.split(".")[1] + "=="))["photo"]
        for c in chain
        if '"photo"' in __import__("base64").urlsafe_b64decode(c.split(".")[1] + "==").decode()
    ]
    assert len(photos) == 12 and all(store.get_blob(p) for p in photos)
    store.close()
    # blobs are gone from the device once their records are acknowledged
    assert not any(device.outbox.blob_dir.iterdir())
    await client.aclose()


async def test_replayed_batches_are_recognised(api: RefApi, device: Device) -> None:
    _checkins(device, 10)
    client = _client(device)
    batch = device.outbox.pending(10)
    first = await client.push_batch(batch)
    assert first.accepted == 10
    # the answer was lost: the same batch again (same Idempotency-Key) gets the same answer
    again = await client.push_batch(batch)
    assert (again.accepted, again.duplicate) == (10, 0)
    # a different batch overlapping it (a new key) gets per-record "duplicate"
    _checkins(device, 2)
    overlap = batch[5:] + device.outbox.pending(2)
    third = await client.push_batch(overlap)
    assert (third.accepted, third.duplicate) == (2, 5)
    assert len(_server_chain(api, device.id)) == 12
    await client.aclose()


async def test_api_going_away_piles_up_then_drains(tmp_path: Path) -> None:
    api = RefApi(tmp_path / "api")
    api.start()
    d = enrol(api, tmp_path / "dev")
    client = _client(d)
    _checkins(d, 5)
    await client.drain()
    api.stop()  # the network goes
    _checkins(d, 40)
    with pytest.raises(ApiUnreachable):
        await client.drain()
    assert d.outbox.stats().depth == 40
    api.start()  # and comes back on the same address
    assert await client.drain() == 40
    chain = _server_chain(api, d.id)
    verify_chain(chain, d.key.public_key(), d.id, head_seq=45)
    await client.aclose()
    api.stop()
    d.outbox.close()


async def test_an_api_restored_from_an_old_backup_gets_its_lost_records_back(
    tmp_path: Path,
) -> None:
    """The central database is restored from a backup taken before seqs 11-20 arrived, which
    the kiosk had already retired (it keeps them keep_acked_days). Its next answer reports
    them as a gap; the kiosk sends them again, and the chain at the API is whole."""
    import shutil
    import sqlite3

    api = RefApi(tmp_path / "api")
    api.start()
    d = enrol(api, tmp_path / "dev")
    client = _client(d)
    _checkins(d, 10)
    assert await client.drain() == 10
    database = api.data / "refapi.sqlite3"
    backup = tmp_path / "backup.sqlite3"
    live, copy = sqlite3.connect(database), sqlite3.connect(backup)
    live.backup(copy)
    live.close()
    copy.close()
    _checkins(d, 10)
    assert await client.drain() == 10
    api.stop()  # the restore
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(backup, database)
    api.start()
    assert len(_server_chain(api, d.id)) == 10
    _checkins(d, 1)
    assert await client.drain() == 1
    chain = _server_chain(api, d.id)
    verify_chain(chain, d.key.public_key(), d.id, head_seq=21)
    assert d.outbox.stats().depth == 0 and d.outbox.parked() == []
    await client.aclose()
    api.stop()
    d.outbox.close()


@pytest.mark.parametrize("fault", ["500", "503:7", "garbage", "lie"])
async def test_server_faults_lose_and_double_nothing(
    api: RefApi, device: Device, fault: str
) -> None:
    _checkins(device, 30)
    client = _client(device)
    with api.admin() as admin:
        admin.post("/v1/admin/faults", json=[fault]).raise_for_status()
    with pytest.raises((RetryLater, ApiProtocolError)) as err:
        await client.drain()
    if fault.startswith("503"):
        assert isinstance(err.value, RetryLater) and err.value.retry_after == 7
    assert await client.drain() == 30
    chain = _server_chain(api, device.id)
    verify_chain(chain, device.key.public_key(), device.id, head_seq=30)
    await client.aclose()


async def test_tls_failure_is_clear_and_loses_nothing(
    api: RefApi, device: Device, tmp_path: Path
) -> None:
    other = pkimod.create(tmp_path / "other-ca")
    cfg = ApiConfig(url=api.url, ca_bundle=other.ca_cert, timeout_s=5)
    _checkins(device, 3)
    client = SyncClient(device.outbox, cfg, device.key, clock=SystemClock())
    with pytest.raises(TlsError, match="certificate"):
        await client.drain()
    assert device.outbox.stats().depth == 3
    await client.aclose()


async def test_mtls_client_certificate_is_presented(tmp_path: Path) -> None:
    from daemon.keys import FileKeyBackend
    from daemon.outbox import Outbox

    api = RefApi(tmp_path / "api", client_ca=True)
    api.start()
    try:
        cert, key = pkimod.issue_client_cert(api.pki, "kiosk-mtls", tmp_path / "client")
        # without a client certificate the TLS handshake is refused
        no_cert = ssl.create_default_context(cafile=str(api.ca))
        with pytest.raises(httpx.HTTPError):
            httpx.get(api.url + "v1/health", verify=no_cert)
        k = FileKeyBackend(tmp_path / "k.pem").create()
        cfg = ApiConfig(url=api.url, ca_bundle=api.ca, client_cert=cert, client_key=key)
        with Outbox(tmp_path / "d", device="kiosk-mtls", key=k, clock=SystemClock()) as ob:
            client = SyncClient(ob, cfg, k, clock=SystemClock())
            # not enrolled: TLS (mTLS included) worked, and the API refuses the unknown device
            ob.append("checkin", {"person": "CR-000001"})
            with pytest.raises(ApiProtocolError, match="401"):
                await client.drain()
            assert ob.stats().depth == 1
            await client.aclose()
    finally:
        api.stop()


async def test_roster_etag_and_heartbeat(api: RefApi, device: Device, tmp_path: Path) -> None:
    roster = roster_doc(office="test")
    with api.admin() as admin:
        admin.put(
            f"/v1/admin/devices/{device.id}/roster", content=json.dumps(roster)
        ).raise_for_status()
    client = _client(device, roster_path=tmp_path / "roster.json")
    assert await client.fetch_roster() is True
    assert json.loads((tmp_path / "roster.json").read_text()) == roster
    assert await client.fetch_roster() is False  # 304 Not Modified
    _checkins(device, 2)
    await client.heartbeat()
    with api.admin() as admin:
        status = admin.get(f"/v1/admin/devices/{device.id}").json()
    assert status["heartbeat"]["queue_depth"] == 2
    await client.aclose()


async def test_wrong_key_is_rejected_and_parked(
    api: RefApi, device: Device, tmp_path: Path
) -> None:
    """A record signed by another key is parked with its reason, never retried forever."""
    from daemon.keys import FileKeyBackend
    from daemon.outbox import Outbox

    impostor = FileKeyBackend(tmp_path / "imp.pem").create()
    with Outbox(tmp_path / "imp", device=device.id, key=impostor, clock=SystemClock()) as ob:
        ob.append("checkin", {"person": "CR-000009"})
        client = SyncClient(ob, device.api_config, device.key, clock=SystemClock())
        assert await client.drain() == 1
        assert ob.parked() == [(1, "checkin", "bad_signature")]
        assert await client.drain() == 0
        await client.aclose()


class _WrongClock(SystemClock):
    """A Pi after a power cut with NTP blocked: a day slow, and it knows it is not synced
    (or, ``claims_synced``, wrongly believes it is)."""

    def __init__(self, *, claims_synced: bool) -> None:
        super().__init__()
        self.claims_synced = claims_synced

    def wall(self) -> float:
        return super().wall() - 86400

    def synced(self) -> bool:
        return self.claims_synced


async def test_an_unsynchronised_clock_a_day_out_still_gets_the_records_through(
    api: RefApi, device: Device
) -> None:
    """Every signed request would be refused as clock_skew (5 minutes at most): the client
    learns the API's time from its Date header and signs with it. The records keep the
    kiosk's own time, marked unsynchronised, for the API to date by their boot."""
    clock = _WrongClock(claims_synced=False)
    for i in range(3):
        device.outbox.append("checkin", {"person": f"CR-{i:06d}"})
    client = SyncClient(device.outbox, device.api_config, device.key, clock=clock)
    assert await client.drain() == 3
    assert abs(client.api_clock_offset_s - 86400) < 5
    await client.heartbeat()  # and the calls after it are signed right first time
    await client.aclose()
    chain = verify_chain(_server_chain(api, device.id), device.key.public_key(), device.id)
    assert [r.payload["clock"]["synced"] for r in chain] == [False, False, False]


async def test_a_clock_that_claims_to_be_synchronised_is_trusted_not_corrected(
    api: RefApi, device: Device
) -> None:
    device.outbox.append("checkin", {"person": "CR-000001"})
    client = SyncClient(device.outbox, device.api_config, device.key,
                        clock=_WrongClock(claims_synced=True))  # fmt: skip
    with pytest.raises(AuthRefused, match="clock"):
        await client.drain()
    await client.aclose()
    assert client.api_clock_offset_s == 0.0 and _server_chain(api, device.id) == []
