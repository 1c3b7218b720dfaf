"""``kioskctl sync``: send the queue to the API now, with a progress bar, then a heartbeat.

Uses the daemon's own :class:`daemon.sync.SyncClient` batch by batch (same idempotency keys,
so running it beside kiosk-sync.service is safe: the API answers a repeated batch with
``duplicate``). Raises the client's SyncError on the first failure; nothing is lost.

May import: ``daemon.*``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from daemon.kioskctl.context import Context
from daemon.kioskctl.identity import load_enrolment, save_enrolment
from daemon.kioskctl.progress import Progress
from daemon.outbox import Outbox
from daemon.sync import SyncClient
from daemon.tokenkey import key_backend


@dataclass(frozen=True, slots=True)
class SyncResult:
    accepted: int
    duplicate: int
    rejected: int
    left: int


async def _sync(ctx: Context, progress: Progress) -> SyncResult:
    cfg = ctx.cfg
    key = key_backend(cfg.device, cfg.hardware_key).load()
    acc = dup = rej = 0
    data = cfg.device.data_dir
    min_free = cfg.outbox.min_free_mb * 1024 * 1024  # with the key: it may append blob_lost
    with Outbox(
        data, device=cfg.device.id, key=key, clock=ctx.clock, min_free_bytes=min_free
    ) as outbox:
        progress.total = outbox.stats().depth
        # the roster path only for the heartbeat's roster figures (kiosk-sync fetches it)
        client = SyncClient(outbox, cfg.api, key, clock=ctx.clock, roster_path=data / "roster.json")
        try:
            while batch := outbox.pending(cfg.api.batch_size):
                outcome = await client.push_batch(batch)
                acc += outcome.accepted
                dup += outcome.duplicate
                rej += outcome.rejected
                progress.advance(len(batch))
            await client.upload_deferred_blobs()  # photos held back by a key rotation
            await client.heartbeat()
        finally:
            await client.aclose()
        left = outbox.stats().depth
    _confirm_enrolment(cfg.device.data_dir)
    return SyncResult(acc, dup, rej, left)


def _confirm_enrolment(data_dir: Path) -> None:
    """The heartbeat above was signed by the current key and accepted: the API has the key,
    so a rotation waiting for it (``api_confirmed`` false in enrolment.json) is complete.
    Without this, doctor would go on excusing a refused key as "rotation pending"."""
    enrolment = load_enrolment(data_dir)
    if enrolment is not None and not enrolment.api_confirmed:
        save_enrolment(data_dir, replace(enrolment, api_confirmed=True))


def sync_now(ctx: Context, progress: Progress) -> SyncResult:
    return asyncio.run(_sync(ctx, progress))
