"""Start-up recovery of a damaged outbox.

A power cut on an SD card can leave the SQLite file unreadable. The kiosk must carry on and
say so, and nothing that can be saved may be lost:

1. the damaged files (database, ``-wal``, ``-shm``) are moved, intact, into
   ``<data_dir>/corrupt/<UTC time>/`` for an engineer (``kioskctl doctor`` reports it);
2. every record still readable from a *copy* of them is salvaged, verified with the device
   key's public half (signature and chain) and imported into a fresh outbox, the unsent ones
   still pending;
3. when nothing is readable, the chain continues from ``chain-anchor.json`` (the newest
   record the server acknowledged, kept by the sync process), so the server sees a gap it can
   ask about, not a fork;
4. the first new record is a ``fault`` record describing all of this (counts and the folder
   name; no personal data), and the caller shows staff a notice.

May import: the standard library, ``daemon.*``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from daemon.clock import Clock
from daemon.errors import OutboxCorrupt, RecordError
from daemon.keys import SigningKey
from daemon.outbox import ANCHOR_HINT, Outbox
from daemon.records import ChainVerifier, decode_unverified

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Recovery:
    set_aside: str
    salvaged: int
    salvaged_pending: int
    continued_from: int

    def detail(self) -> dict[str, object]:
        return {
            "event": "outbox_recovered",
            "set_aside": self.set_aside,
            "salvaged": self.salvaged,
            "salvaged_pending": self.salvaged_pending,
            "continued_from_seq": self.continued_from,
        }


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


def open_or_recover(
    data_dir: Path,
    *,
    device: str,
    key: SigningKey,
    clock: Clock,
    min_free_bytes: int,
) -> tuple[Outbox, Recovery | None]:
    """Open the outbox; if it is damaged, set it aside, salvage, and open a new one."""

    def make() -> Outbox:
        return Outbox(data_dir, device=device, key=key, clock=clock, min_free_bytes=min_free_bytes)

    try:
        return make().open(), None
    except OutboxCorrupt as exc:
        log.error("the outbox is damaged (%s); setting it aside and starting a new one", exc)
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
    outbox = make().open()
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
        hint_path = data_dir / ANCHOR_HINT
        try:
            hint = json.loads(hint_path.read_text())
            outbox.set_anchor(int(hint["seq"]), str(hint["hash"]))
            continued = int(hint["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            log.error("no readable chain anchor; the new chain starts at the genesis")
    recovery = Recovery(
        set_aside=f"corrupt/{stamp}",
        salvaged=len(good),
        salvaged_pending=pending,
        continued_from=continued,
    )
    outbox.append("fault", {"flags": ["fault"], "detail": recovery.detail()})
    return outbox, recovery
