"""sync.drain_10k_s, sync.drain_speedup, sync.duplicates.

Ours: the kiosk's SyncClient draining a 10,000-record backlog in batches to the reference API
(real uvicorn, HTTPS) on loopback. Baseline: the same client configured to send one record per
request, draining another device's backlog of the same size, against the same server, in the
same run. Duplicates: records the API stored more than once (by id) after both drains.
The same drain is then measured once more into the API on its PostgreSQL backend.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import tempfile
import time
from pathlib import Path

import httpx

from daemon.clock import SystemClock
from daemon.config import ApiConfig
from daemon.keys import FileKeyBackend, public_pem
from daemon.outbox import Outbox
from daemon.records import decode_unverified
from daemon.sync import SyncClient
from hil.bench import Figure
from hil.refapi.server import RefApi

ROOT = Path(__file__).resolve().parents[2] / ".cache"
N = int(os.environ.get("KIOSK_BENCH_DRAIN", "10000"))


def _device(api: RefApi, folder: Path, name: str, n: int) -> tuple[Outbox, FileKeyBackend]:
    kb = FileKeyBackend(folder / f"{name}.pem")
    key = kb.create()
    r = httpx.post(
        api.url + "v1/enrol",
        json={"code": api.mint_code(), "device_id": name, "alg": "ES256",
              "public_key_pem": public_pem(key.public_key())},
        verify=ssl.create_default_context(cafile=str(api.ca)),
    )  # fmt: skip
    r.raise_for_status()
    ob = Outbox(folder / name, device=name, key=key, clock=SystemClock()).open()
    ob.db.execute("PRAGMA synchronous = OFF")  # building the backlog is not what is measured
    for i in range(n):
        ob.append("checkin", {"person": f"CR-{i:06d}", "answers": {"address_changed": False}})
    ob.db.execute("PRAGMA synchronous = FULL")
    return ob, kb


async def _drain(ob: Outbox, kb: FileKeyBackend, api: RefApi, batch: int) -> float:
    cfg = ApiConfig(url=api.url, ca_bundle=api.ca, batch_size=batch, timeout_s=60)
    client = SyncClient(ob, cfg, kb.load(), clock=SystemClock())
    t = time.perf_counter()
    done = await client.drain()
    elapsed = time.perf_counter() - t
    await client.aclose()
    assert done == ob.stats().acked, "every record must be retired"
    return elapsed


def _stored(api: RefApi) -> tuple[int, int]:
    """(records stored, distinct record ids among them), through the storage interface."""
    store = api.storage()
    try:
        ids = [decode_unverified(c)[1]["id"] for _d, _s, c in store.export()]
    finally:
        store.close()
    return len(ids), len(set(ids))


def postgres_figures() -> dict[str, Figure]:
    """The same drain into the reference API on PostgreSQL (a throwaway local server on a
    Unix socket, fsync on): what a deployment on the PostgreSQL backend gets. No figure when
    this machine has no PostgreSQL server."""
    from hil.refapi.pgserver import PostgresUnavailable, TempPostgres

    try:
        pg = TempPostgres().start()
    except PostgresUnavailable:
        return {}
    folder = Path(tempfile.mkdtemp(prefix="bench-sync-pg-", dir=ROOT))
    try:
        api = RefApi(folder / "api", database=pg.create_database("bench"))
        api.start()
        try:
            ob, key = _device(api, folder, "kiosk-bench-pg", N)
            took = asyncio.run(_drain(ob, key, api, 500))
            ob.close()
            stored, unique = _stored(api)
        finally:
            api.stop()
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert stored == N, f"the API holds {stored} records, expected {N}"
    return {
        "sync.drain_10k_s_postgres": {
            "value": round(took, 3),
            "unit": "s",
            "target": "<= 10",
            "note": f"{N} records, batches of 500, HTTPS on loopback, PostgreSQL backend",
        },
        "sync.duplicates_postgres": {"value": stored - unique, "unit": "records", "target": "= 0"},
    }


def figures() -> dict[str, Figure]:
    ROOT.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-sync-", dir=ROOT))
    api = RefApi(folder / "api")
    api.start()
    try:
        ours_ob, ours_key = _device(api, folder, "kiosk-bench-batch", N)
        base_ob, base_key = _device(api, folder, "kiosk-bench-single", N)
        ours = asyncio.run(_drain(ours_ob, ours_key, api, 500))
        base = asyncio.run(_drain(base_ob, base_key, api, 1))
        stored, unique = _stored(api)
        ours_ob.close()
        base_ob.close()
    finally:
        api.stop()
        shutil.rmtree(folder, ignore_errors=True)
    assert stored == 2 * N, f"the API holds {stored} records, expected {2 * N}"
    result: dict[str, Figure] = {
        "sync.drain_10k_s": {
            "value": round(ours, 3),
            "unit": "s",
            "target": "<= 10",
            "note": f"{N} records, batches of 500, HTTPS on loopback",
        },
        "sync.drain_speedup": {
            "value": round(base / ours, 1),
            "unit": "x",
            "baseline": f"one request per record ({base:.1f} s for the same {N} records)",
            "target": ">= 20",
        },
        "sync.duplicates": {"value": stored - unique, "unit": "records", "target": "= 0"},
    }
    return result | postgres_figures()
