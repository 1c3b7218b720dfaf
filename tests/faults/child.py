"""The process the fault campaigns kill: makes check-ins (some with a sealed-photo blob)
and, when told, syncs them to the reference API. It prints ``C <seq> <id>`` on stdout the
moment a check-in is durable, which is when the person would see "done".

Run: python -m tests.faults.child DATA_DIR KEY_FILE COUNT [API_CONFIG_JSON]
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from daemon.clock import SystemClock
from daemon.config import ApiConfig
from daemon.keys import FileKeyBackend
from daemon.outbox import Outbox
from daemon.sync import SyncClient


async def _sync_forever(client: SyncClient, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await client.drain()
        except Exception as exc:
            print(f"E {type(exc).__name__}", flush=True)
        await asyncio.sleep(0.005)


async def main(data: Path, keyfile: Path, count: int, api: dict[str, object] | None) -> None:
    key = FileKeyBackend(keyfile).load()
    clock = SystemClock()
    outbox = Outbox(data, device="kiosk-fault", key=key, clock=clock, min_free_bytes=1).open()
    outbox.sweep_orphans()
    stop = asyncio.Event()
    sync_task = None
    client = None
    if api is not None:
        sync_outbox = Outbox(data, device="kiosk-fault", key=None, clock=clock).open()
        client = SyncClient(sync_outbox, ApiConfig(**api), key, clock=clock)  # type: ignore[arg-type]
        sync_task = asyncio.create_task(_sync_forever(client, stop))
    for i in range(count):
        blob = os.urandom(1024 + (i % 7) * 512) if i % 3 == 0 else None
        rec = outbox.append("checkin", {"person": f"CR-{i:06d}"}, blob=blob)
        print(f"C {rec.seq} {rec.id}", flush=True)
        await asyncio.sleep(0.002)
    print("DONE", flush=True)
    if sync_task is not None and client is not None:
        deadline = asyncio.get_running_loop().time() + 120  # never outlive a dead API
        while outbox.stats().depth and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        stop.set()
        await sync_task
        await client.aclose()
    print("DRAINED", flush=True)


if __name__ == "__main__":
    api_cfg = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), api_cfg))
