"""The composition root of ``kiosk.service``: the only module (with daemon/hardware.py) that
knows which concrete backends exist. It opens the key, the outbox and the hardware, runs the
check-in flow, serves the local UI, and keeps systemd informed.

Start-up order: configuration → keys → outbox (recovered if damaged) → hardware → ``boot``
record → READY=1. WATCHDOG=1 is sent from the event loop only after a health probe (the outbox
answers, the loop is responsive), so a hung loop or a wedged database gets the process
restarted.

May import: everything in the project.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from daemon import __version__, bootslots, sdnotify
from daemon.clock import Clock, SystemClock
from daemon.clockwatch import ClockWatch
from daemon.config import Config
from daemon.diskspace import MB, Level, Levels
from daemon.errors import DiskFull, StorageError
from daemon.hardware import Hardware, open_hardware
from daemon.keys import SigningKey
from daemon.outbox import Outbox, Recovery
from daemon.records import Record
from daemon.recovery import open_or_recover
from daemon.sealing import PhotoSealer, RosterKey, roster_key_path
from daemon.tokenkey import key_backend
from daemon.wake import WAKE_SOCKET, poke

log = logging.getLogger(__name__)
HEALTH_INTERVAL_S = 2.0


class KioskCore:
    """The parts every check-in needs, opened: key, outbox, sealer, roster key, hardware."""

    def __init__(self, cfg: Config, *, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self.key: SigningKey | None = None
        self.outbox: Outbox | None = None
        self.recovery: Recovery | None = None
        self.hardware: Hardware | None = None
        self.sealer: PhotoSealer | None = None
        self.roster_key: RosterKey | None = None
        self.commit_listeners: list[Callable[[Record], None]] = []
        #: the data disk's thresholds ([outbox]; daemon/diskspace.py)
        self.disk_levels = Levels.from_config(cfg.outbox)
        #: this boot's ``boot`` record: proof the outbox took a durable write at start
        self.boot_record: Record | None = None
        #: the boot record's detail while a full disk keeps it from being written
        self.boot_pending: dict[str, Any] | None = None

    async def open(self) -> None:
        cfg = self.cfg
        self.key = key_backend(cfg.device, cfg.hardware_key).load()
        self.roster_key = RosterKey.load(roster_key_path(cfg.device.key_path))
        self.sealer = PhotoSealer.from_config(cfg.api.seal_public_key)
        self.outbox, self.recovery = open_or_recover(
            cfg.device.data_dir,
            device=cfg.device.id,
            key=self.key,
            clock=self.clock,
            min_free_bytes=cfg.outbox.min_free_mb * 1024 * 1024,
        )
        swept = self.outbox.sweep_orphans()
        if swept:
            log.info("removed %d photo files whose check-in was never confirmed", swept)
        self.hardware = await open_hardware(cfg, self.clock)
        self.boot_pending = {
            "app": __version__,
            "simulated": self.hardware.simulated,
            "faults": self.hardware.faults,
            "slots": bootslots.summary(),
        }
        try:
            self.commit_boot()
        except DiskFull as exc:
            # start all the same: a kiosk that is up sends people to reception and tells
            # staff why (docs/faults.md); one that restarts in a loop only shows a blank
            # screen. The record follows once there is room (supervise).
            log.error("started without a boot record: %s", exc, extra={"kiosk_reason": exc.reason})

    def commit_boot(self) -> None:
        """Write this boot's ``boot`` record if it is still owed. Raises DiskFull /
        StorageError (it stays owed)."""
        if self.boot_pending is not None:
            self.boot_record = self.commit("boot", {"detail": self.boot_pending})
            self.boot_pending = None

    def commit(
        self,
        type_: str,
        fields: dict[str, Any],
        blob: bytes | None = None,
        blob_field: str = "photo",
        *,
        end_session: bool = False,
    ) -> Record:
        """Sign and queue a record durably, then wake the sync process. Raises DiskFull /
        StorageError (nothing was queued). ``end_session``: Outbox.append's."""
        assert self.outbox is not None
        record = self.outbox.append(
            type_, fields, blob=blob, blob_field=blob_field, end_session=end_session
        )
        poke(self.cfg.device.data_dir / WAKE_SOCKET)
        for listener in self.commit_listeners:
            listener(record)
        return record

    def disk_level(self) -> tuple[Level, int]:
        """(level, free bytes) of the data disk, from the outbox's own amortised reading (no
        system call of its own). Raises StorageError when the disk cannot be read."""
        assert self.outbox is not None
        free = self.outbox.free_bytes()
        return self.disk_levels.level(free), free

    def health(self) -> tuple[bool, str]:
        """The watchdog's probe: the outbox answers a query; returns (healthy, STATUS text)."""
        assert self.outbox is not None
        try:
            stats = self.outbox.stats()
        except StorageError as exc:
            return False, f"outbox not answering: {exc.reason}"
        parts = [f"queue {stats.depth}"]
        if stats.parked:
            parts.append(f"parked {stats.parked}")
        with contextlib.suppress(StorageError):
            level, free = self.disk_level()
            if level != Level.OK:
                parts.append(f"disk {level} ({free // MB} MB free)")
        if self.hardware and self.hardware.faults:
            parts.append("faults: " + ", ".join(sorted(self.hardware.faults)))
        if self.hardware and self.hardware.simulated:
            parts.append("SIMULATED " + "+".join(self.hardware.simulated))
        if self.recovery:
            parts.append(
                f"outbox recovered ({self.recovery.set_aside})"
                if self.recovery.set_aside
                else f"outbox missing: chain continued after seq {self.recovery.continued_from}"
            )
        if self.boot_pending is not None:
            parts.append("no boot record yet (disk full)")
        return True, "; ".join(parts)

    def close(self) -> None:
        if self.hardware is not None:
            self.hardware.close()
            self.hardware = None
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None


async def supervise(core: KioskCore, stop: asyncio.Event) -> None:
    """Health probe → WATCHDOG=1 and STATUS=; clock steps → ``clock_step`` records."""
    watch = ClockWatch(core.clock)
    interval = min(HEALTH_INTERVAL_S, (sdnotify.watchdog_interval() or 10.0) / 3)
    while not stop.is_set():
        healthy, status = core.health()
        if healthy:
            sdnotify.watchdog()
        sdnotify.status(status)
        if core.boot_pending is not None:
            with contextlib.suppress(StorageError):  # still full: try again next time
                core.commit_boot()
        step = watch.check()
        if step is not None:
            with contextlib.suppress(DiskFull):
                core.commit("clock_step", {"detail": step.detail()})
            log.warning("the wall clock stepped by %.1f s", step.delta_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_kiosk(
    cfg: Config,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    serve: Callable[[KioskCore, asyncio.Event], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Run kiosk.service until SIGTERM/SIGINT or ``stop``. ``serve`` runs the check-in flow
    and the UI (daemon/kiosk.py provides the default)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    core = KioskCore(cfg, clock=clock)
    try:
        await core.open()
        _healthy, status = core.health()
        sdnotify.ready(status)
        log.info("kiosk ready: %s", status)
        if serve is None:
            from daemon.kiosk import serve_checkins

            serve = serve_checkins
        tasks = [
            asyncio.create_task(supervise(core, stop)),
            asyncio.create_task(serve(core, stop)),
        ]
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for t in done:
            exc = t.exception()
            if exc is not None:
                raise exc
    finally:
        sdnotify.stopping()
        core.close()


def data_path(cfg: Config, name: str) -> Path:
    return cfg.device.data_dir / name
