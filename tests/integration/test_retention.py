"""Bounded retention on the device: `kiosk sync` deletes acknowledged records once they are
older than ``[outbox] keep_acked_days``, and nothing else. The API keeps the whole chain, and
check-ins made after a prune continue it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon import syncd
from daemon.clock import FakeClock
from daemon.config import load_config
from daemon.demo_support import provision
from daemon.outbox import Outbox
from daemon.records import verify_chain
from daemon.wake import poke
from hil.refapi.server import RefApi
from tests.core.helpers import synthetic_checkin

DAY = 86400.0


def _until(what: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sync_prunes_old_acknowledged_records_and_the_chain_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check-ins are made with a clock 40 days in the past (the API accepts old records:
    a kiosk may be offline for weeks); `kiosk sync` runs on the real clock, as on a kiosk."""
    monkeypatch.setattr(syncd, "PRUNE_EVERY_S", 0.2)
    api = RefApi(tmp_path / "api")
    api.start()
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    runner: threading.Thread | None = None
    try:
        device = provision(api, tmp_path / "kiosk")
        cfg = load_config(device.config_path)
        assert cfg.outbox.keep_acked_days == 30  # the default
        made = FakeClock(time.time() - 40 * DAY)
        key = device.key.load()
        ob = Outbox(device.data_dir, device=device.id, key=key, clock=made).open()
        for i in range(6):
            ob.append("checkin", synthetic_checkin(i))
        runner = threading.Thread(
            target=loop.run_until_complete, args=(syncd.run_sync(cfg, stop=stop),)
        )
        runner.start()
        # acknowledged, then pruned: 40 days old, except the chain head, which stays
        _until(lambda: ob.stats().depth == 0 and ob.stats().acked == 1)
        assert [s for s, _st, _c in ob.all_compact()] == [6]

        made.advance(38 * DAY)  # a check-in two days ago
        ob.append("checkin", synthetic_checkin(6))
        poke(device.data_dir / syncd.WAKE_SOCKET)
        _until(lambda: ob.stats().depth == 0 and ob.stats().acked == 1)
        assert [s for s, _st, _c in ob.all_compact()] == [7]  # 2 days old: kept

        made.advance(2 * DAY)
        pending = ob.append("checkin", synthetic_checkin(7))
        assert pending.seq == 8  # the chain continues after a prune
        time.sleep(0.5)  # several prune rounds while it waits: a pending record is never pruned
        assert 8 in [s for s, _st, _c in ob.all_compact()]
        poke(device.data_dir / syncd.WAKE_SOCKET)
        _until(lambda: ob.stats().depth == 0)
        stored = [c for _d, _s, c in api.storage().export(device.id)]
        assert [r.seq for r in verify_chain(stored, key.public_key())] == list(range(1, 9))
        ob.close()
    finally:
        loop.call_soon_threadsafe(stop.set)
        if runner is not None:
            runner.join(timeout=30)
        loop.close()
        api.stop()
