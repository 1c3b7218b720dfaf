"""``kioskctl sync``: send the queue to the API now, with a progress bar, then a heartbeat.

Uses the daemon's own :class:`daemon.sync.SyncClient` batch by batch (same idempotency keys,
so running it beside kiosk-sync.service is safe: the API answers a repeated batch with
``duplicate``). Raises the client's SyncError on the first failure; nothing is lost. It tries
once: the daemon's "will retry" is replaced by what to do.

May import: ``daemon.*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, replace
from pathlib import Path

from daemon.errors import ApiUnreachable, SyncError
from daemon.kioskctl import outboxcmd
from daemon.kioskctl.context import Context
from daemon.kioskctl.identity import load_enrolment, save_enrolment
from daemon.kioskctl.progress import Progress
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
    outbox = outboxcmd.open_for(ctx, key)  # with the key: it may append blob_lost
    with contextlib.closing(outbox):
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
            # parked records an engineer asked to send again (`outbox send-again`)
            taken, again = await client.send_asked_again()
            acc += taken
            rej += again
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


#: the sync daemon's own messages end so ("will retry", "... will be sent later"); this
#: command tries once
_WILL_RETRY = re.compile(
    r"[\s;,.]*(?:check-ins are kept safely on the kiosk(?:[;,.]?\s*|\s+and\s+))?"
    r"(?:will retry|will be sent later)\.?\s*$",
    re.I,
)
ONCE = (
    "nothing was lost: the records stay queued on the kiosk. This command tries once: run "
    "`kioskctl sync` again when the API answers; kiosk-sync.service keeps retrying by itself"
)


def sync_now(ctx: Context, progress: Progress) -> SyncResult:
    """Send the queue now, once. Raises SyncError (a "will retry" from the daemon's client
    replaced by: nothing was lost, run it again), DataAccessError, DeviceKeyError."""
    try:
        return asyncio.run(_sync(ctx, progress))
    except SyncError as exc:
        # an API that cannot be reached is always worth another try, whatever the message says
        if not _WILL_RETRY.search(exc.message) and not isinstance(exc, ApiUnreachable):
            raise  # promises nothing (a retired device, a rejected key): as it is
        message = _WILL_RETRY.sub("", exc.message).rstrip()
        raise SyncError(f"{message}. {ONCE}", reason=exc.reason) from exc
