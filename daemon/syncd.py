"""``kiosk sync``: the network process (kiosk-sync.service). No devices, only the data
directory and the API.

READY=1 once the outbox is open and the wake socket is bound; WATCHDOG=1 from the event loop
after a real probe (the outbox answers a query), so a hung loop or a wedged database gets the
process restarted; STATUS= mirrors the queue and the last error.

May import: the standard library, ``daemon.*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3

from daemon import health, sdnotify
from daemon.clock import Clock, SystemClock
from daemon.config import Config
from daemon.diskspace import Levels
from daemon.errors import StorageError
from daemon.outbox import Outbox
from daemon.sync import SyncClient
from daemon.tokenkey import key_backend
from daemon.wake import WAKE_SOCKET, WakeListener

log = logging.getLogger(__name__)


def status_line(client: SyncClient, outbox: Outbox) -> str:
    st = outbox.stats()
    state = "ok" if client.last_error is None else f"retrying: {client.last_error.reason}"
    oldest = "-" if st.oldest_unsent_s is None else f"{st.oldest_unsent_s:.0f}s"
    return f"sync {state}; queue {st.depth}, oldest {oldest}, parked {st.parked}"


async def _watchdog(client: SyncClient, outbox: Outbox, stop: asyncio.Event) -> None:
    """Ping systemd while the loop runs and the outbox answers a query. When the probe fails
    the pings stop, so systemd restarts the process after WatchdogSec (said once in the log)."""
    interval = sdnotify.watchdog_interval() or 10.0
    while not stop.is_set():
        try:
            line = status_line(client, outbox)  # the probe: the outbox answers a real query
        except (sqlite3.Error, StorageError) as exc:
            log.error("the outbox stopped answering (%s); no more watchdog pings", exc)
            return
        sdnotify.watchdog()
        sdnotify.status(line)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval / 2)


PRUNE_EVERY_S = 3600.0


async def _prune(outbox: Outbox, keep_s: float, stop: asyncio.Event) -> None:
    """Bounded retention: at start and then hourly, delete acknowledged records older than
    ``keep_s`` (never a pending or parked one, never the chain head: Outbox.prune_acked)."""
    while not stop.is_set():
        try:
            gone = outbox.prune_acked(keep_s)
        except StorageError as exc:  # a busy or full disk: try again next time
            log.warning("retention: acknowledged records not pruned (%s)", exc)
        else:
            if gone:
                log.info("retention: %d acknowledged records deleted from the device", gone)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=PRUNE_EVERY_S)


async def run_sync(
    cfg: Config, *, clock: Clock | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop``)."""
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    key = key_backend(cfg.device, cfg.hardware_key).load()
    # with the key: the sync process appends blob_lost records (daemon/sync.py)
    outbox = Outbox(
        cfg.device.data_dir,
        device=cfg.device.id,
        key=key,
        clock=clock,
        min_free_bytes=cfg.outbox.min_free_mb * 1024 * 1024,
    ).open()
    levels = Levels.from_config(cfg.outbox)
    client = SyncClient(
        outbox,
        cfg.api,
        key,
        clock=clock,
        roster_path=cfg.device.data_dir / "roster.json",
        health=lambda: health.heartbeat_figures(cfg.device.data_dir, levels=levels),
    )
    listener = WakeListener(cfg.device.data_dir / WAKE_SOCKET, client.wakeup)
    await listener.start()
    sdnotify.ready()
    log.info("sync started for device %s", cfg.device.id)
    watchdog = asyncio.create_task(_watchdog(client, outbox, stop))
    prune = asyncio.create_task(_prune(outbox, cfg.outbox.keep_acked_days * 86400, stop))
    try:
        await client.run(stop)
    finally:
        sdnotify.stopping()
        stop.set()
        await watchdog
        await prune
        listener.close()
        await client.aclose()
        outbox.close()
        log.info("sync stopped")
