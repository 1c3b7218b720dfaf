"""Start-up recovery of a damaged outbox.

A power cut on an SD card can leave the SQLite file unreadable. The kiosk must carry on and
say so, and nothing that can be saved may be lost:

1. the damaged files (database, ``-wal``, ``-shm``) are moved, intact, into
   ``<data_dir>/corrupt/<UTC time>/`` for an engineer (``kioskctl doctor`` reports it);
2. every record still readable from a *copy* of them is salvaged, verified with the device
   key's public half (signature and chain) and imported into a fresh outbox, the unsent ones
   still pending;
3. when nothing is readable, the chain continues from ``chain-anchor.json`` (the newest
   record the server acknowledged, kept by the sync process; ``Outbox.open`` takes it up for
   any outbox with no records), so the server sees a gap it can ask about, not a fork;
4. the first new record is a ``fault`` record describing all of this (counts and the folder
   name; no personal data), and the caller shows staff a notice.

An outbox that is *missing or empty* while ``chain-anchor.json`` says the chain had reached
seq N (the file was deleted, emptied, or the data partition restored from an old copy) is
the same loss seen from the other side: the records after N that were on it are gone. The
chain continues from the anchor in the same way (``Outbox.open`` does it, whichever process
opens the file first), and kiosk.service adds a ``fault`` record saying so
(``outbox_missing``). Starting again at seq 1 instead would be a fork: the server would
refuse every new record as ``bad_signature``/``fork`` and nobody's check-in would arrive.

May import: the standard library, ``daemon.*``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from daemon.clock import Clock
from daemon.errors import OutboxCorrupt, RecordError
from daemon.keys import SigningKey
from daemon.outbox import Outbox, Recovery, read_anchor_hint
from daemon.records import ChainVerifier, decode_unverified

log = logging.getLogger(__name__)


def _salvage(files: list[Path], key: SigningKey) -> tuple[list[str], int]:
    """Read what we can from a copy of the damaged files; return the verified records (a
    contiguous run ending at the newest verifiable one) and the ack watermark."""
    with tempfile.TemporaryDirectory(prefix="kiosk-salvage-") as tmp:
        for f in files:
            shutil.copy2(f, Path(tmp) / f.name)
        path = Path(tmp) / Outbox.FILE
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = db.execute("SELECT compact FROM records ORDER BY seq").fetchall()
            try:
                upto = int(db.execute("SELECT acked_upto FROM progress").fetchone()[0])
            except sqlite3.DatabaseError:
                upto = 0
            db.close()
        except sqlite3.DatabaseError:
            return [], 0
    good: list[str] = []
    verifier: ChainVerifier | None = None
    for (compact,) in rows:
        try:
            if verifier is None:
                _h, payload, _s, _g = decode_unverified(compact)
                verifier = ChainVerifier(
                    key.public_key(), last_seq=payload["seq"] - 1, last_hash=payload["prev"]
                )
            verifier.feed(compact)
            good.append(compact)
        except (RecordError, KeyError, TypeError):
            break  # keep the run that verifies; the rest stays in the set-aside copy
    return good, upto


def _continue_if_lost(outbox: Outbox) -> Recovery | None:
    """The outbox's records were lost and ``Outbox.open`` continued the chain after the
    anchor (here, or in a process that could not sign: then the loss is recorded now). None
    for a normal start."""
    pending = outbox.lost_records()
    after = outbox.continued_after if pending is None else pending
    if after is None:
        return None
    outbox.record_lost_records()
    return Recovery(set_aside="", salvaged=0, salvaged_pending=0, continued_from=after)


def open_or_recover(
    data_dir: Path,
    *,
    device: str,
    key: SigningKey,
    clock: Clock,
    min_free_bytes: int,
) -> tuple[Outbox, Recovery | None]:
    """Open the outbox; if it is damaged, set it aside, salvage, and open a new one."""

    def make(*, continue_lost_chain: bool = True) -> Outbox:
        return Outbox(data_dir, device=device, key=key, clock=clock, min_free_bytes=min_free_bytes,
                      continue_lost_chain=continue_lost_chain)  # fmt: skip

    try:
        opened = make().open()
    except OutboxCorrupt as exc:
        log.error("the outbox is damaged (%s); setting it aside and starting a new one", exc)
    else:
        return opened, _continue_if_lost(opened)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock.wall()))
    aside = data_dir / "corrupt" / stamp
    aside.mkdir(parents=True, exist_ok=True)
    files = []
    for suffix in ("", "-wal", "-shm"):
        src = data_dir / f"{Outbox.FILE}{suffix}"
        if src.exists():
            dst = aside / src.name
            os.replace(src, dst)
            files.append(dst)
    fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    good, upto = _salvage(files, key)
    outbox = make(continue_lost_chain=False).open()  # the anchor is chosen below
    continued = 0
    pending = 0
    if good:
        _h, first, _s, _g = decode_unverified(good[0])
        if first["seq"] > 1:
            outbox.set_anchor(first["seq"] - 1, first["prev"])
        outbox.import_verified(good, pending_from=upto + 1)
        pending = sum(1 for c in good if decode_unverified(c)[1]["seq"] > upto)
        continued = outbox.head()[0]
    else:
        hint = read_anchor_hint(data_dir)
        if hint is None:
            log.error("no readable chain anchor; the new chain starts at the genesis")
        else:
            outbox.set_anchor(*hint)
            continued = hint[0]
    recovery = Recovery(
        set_aside=f"corrupt/{stamp}",
        salvaged=len(good),
        salvaged_pending=pending,
        continued_from=continued,
    )
    outbox.append("fault", {"flags": ["fault"], "detail": recovery.detail()})
    return outbox, recovery
