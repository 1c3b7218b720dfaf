"""Campaigns against the real reference API: the kiosk killed at random moments while it
makes check-ins and syncs them (upload, acknowledgement), and a flaky network between the sync
client and the API. Every check-in confirmed to a person reaches the API exactly once, in
order, and the chain verifies end to end."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from pathlib import Path

import httpx
import pytest

from daemon.clock import SystemClock
from daemon.config import ApiConfig
from daemon.errors import SyncError
from daemon.keys import FileKeyBackend, public_pem
from daemon.outbox import Outbox
from daemon.records import verify_chain
from daemon.sync import SyncClient
from hil.refapi.server import RefApi
from tests.faults.campaign import Campaign
from tests.faults.conftest import LINES
from tests.faults.netproxy import FaultPlan, FaultProxy


def _enrol(api: RefApi, device: str, keyfile: Path) -> None:
    kb = FileKeyBackend(keyfile)
    key = kb.load() if keyfile.exists() else kb.create()
    r = httpx.post(
        api.url + "v1/enrol",
        json={"code": api.mint_code(), "device_id": device, "alg": "ES256",
              "public_key_pem": public_pem(key.public_key())},
        verify=ssl.create_default_context(cafile=str(api.ca)),
    )  # fmt: skip
    r.raise_for_status()


def _server(api: RefApi, device: str) -> list[str]:
    store = api.storage()
    try:
        return [c for _d, _s, c in store.export(device)]
    finally:
        store.close()


def report(name: str, episodes: int, confirmed: int, lost: int, duplicated: int) -> None:
    line = (
        f"{name}: episodes {episodes}, confirmed {confirmed}, lost {lost}, duplicated {duplicated}"
    )
    LINES.append(line)
    out = os.environ.get("KIOSK_FAULTS_REPORT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"campaign": name, "episodes": episodes, "confirmed": confirmed,
                                "lost": lost, "duplicated": duplicated}) + "\n")  # fmt: skip


def _kill_with_sync(tmp_path: Path, episodes: int) -> None:
    api = RefApi(tmp_path / "api")
    api.start()
    try:
        c = Campaign(tmp_path / "kiosk", seed=5)
        _enrol(api, "kiosk-fault", c.keyfile)
        c.api = json.dumps(
            {"url": api.url, "ca_bundle": str(api.ca), "batch_size": 7, "timeout_s": 5,
             "backoff_base_s": 0.01, "backoff_cap_s": 0.05}
        )  # fmt: skip
        for _ in range(episodes):
            c.episode(count=25, max_delay_s=0.7)
        out = c.finish()
        assert "DRAINED" in out, out
        chain = _server(api, "kiosk-fault")
        key = FileKeyBackend(c.keyfile).load()
        records = verify_chain(chain, key.public_key(), "kiosk-fault")
        held = {r.seq: r.id for r in records}
        lost = sum(1 for seq, rid in c.confirmed.items() if held.get(seq) != rid)
        duplicated = len(chain) - len({r.id for r in records})
        report("kill", c.episodes, len(c.confirmed), lost, duplicated)
        assert len(c.confirmed) > episodes
        assert (lost, duplicated) == (0, 0)
        local = c.local_records()  # no orphaned blobs; nothing parked
        assert all(state != "parked" for _s, state, _c in local)
    finally:
        api.stop()


@pytest.mark.timeout(600)
def test_sigkill_during_checkins_and_sync(tmp_path: Path) -> None:
    _kill_with_sync(tmp_path, int(os.environ.get("KIOSK_KILL_EPISODES", "200")))


@pytest.mark.soak
def test_sigkill_soak(tmp_path: Path) -> None:
    _kill_with_sync(tmp_path, int(os.environ.get("KIOSK_SOAK_EPISODES", "5000")))


async def _net_campaign(tmp_path: Path, n: int) -> None:
    api = RefApi(tmp_path / "api", faults=True)
    api.start()
    proxy = FaultProxy(api.port, FaultPlan(seed=3, stall_s=1.5))
    port = await proxy.start()
    try:
        keyfile = tmp_path / "key.pem"
        _enrol(api, "kiosk-net", keyfile)
        key = FileKeyBackend(keyfile).load()
        ob = Outbox(tmp_path / "d", device="kiosk-net", key=key, clock=SystemClock()).open()
        ob.db.execute("PRAGMA synchronous = OFF")  # building the backlog is not under test
        ids = [ob.append("checkin", {"person": f"CR-{i:06d}"}).id for i in range(n)]
        ob.db.execute("PRAGMA synchronous = FULL")
        cfg = ApiConfig(url=f"https://127.0.0.1:{port}/", ca_bundle=api.ca, batch_size=100,
                        timeout_s=1.0, backoff_base_s=0.01, backoff_cap_s=0.05)  # fmt: skip
        client = SyncClient(ob, cfg, key, clock=SystemClock())
        with api.admin() as admin:  # 5xx bursts and a lying server on top of the network
            admin.post("/v1/admin/faults", json=["500", "503:0", "lie", "garbage", "lie"])
        failures = 0
        for _ in range(5000):
            try:
                await client.drain()
            except SyncError:
                failures += 1
                await asyncio.sleep(client.backoff_s() / 10)
                continue
            break
        assert ob.stats().depth == 0
        chain = _server(api, "kiosk-net")
        records = verify_chain(chain, key.public_key(), "kiosk-net", head_seq=n)
        got = [r.id for r in records]
        lost = len(set(ids) - set(got))
        duplicated = len(got) - len(set(got))
        report("net", failures, n, lost, duplicated)
        assert got == ids  # exactly once, in order
        assert sum(v for k, v in proxy.seen.items() if k != "pass") > 5  # faults really hit
        await client.aclose()
        ob.close()
    finally:
        await proxy.stop()
        api.stop()


@pytest.mark.timeout(600)
async def test_flaky_network_delivers_exactly_once_in_order(tmp_path: Path) -> None:
    await _net_campaign(tmp_path, int(os.environ.get("KIOSK_NET_RECORDS", "2000")))


@pytest.mark.soak
async def test_flaky_network_soak(tmp_path: Path) -> None:
    await _net_campaign(tmp_path, 10_000)
