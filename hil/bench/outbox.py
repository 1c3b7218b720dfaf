"""outbox.enqueue_per_s and outbox.enqueue_ratio.

Ours: :meth:`daemon.outbox.Outbox.append` (seq/prev assignment, ES256 signing, one committed
INSERT with WAL + synchronous=FULL). Baseline: the raw rate of single-row committed inserts
(BEGIN, INSERT, COMMIT) of a row of the same size into SQLite with the same durability
settings, on the same disk (a folder of the checkout). Ten rounds of 500 each, alternating in
ABBA order so both sides see the same noise and neither always runs first.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from daemon.clock import SystemClock
from daemon.keys import SoftwareKey, generate
from daemon.outbox import Outbox
from hil.bench import Figure

ROUNDS = 10
PER_ROUND = 500
ROOT = Path(__file__).resolve().parents[2] / ".cache"


def _fields(i: int) -> dict[str, object]:
    return {
        "person": f"CR-{i:06d}",
        "verify": {"method": "fingerprint", "score": 130, "threshold": 60, "attempts": 1},
        "answers": {"address_changed": False, "police_contact": False, "speak_to_someone": False},
    }


def _ours(folder: Path, key: SoftwareKey, start: int) -> tuple[float, int]:
    with Outbox(folder, device="kiosk-bench", key=key, clock=SystemClock()) as ob:
        t = time.perf_counter()
        for i in range(PER_ROUND):
            rec = ob.append("checkin", _fields(start + i))
        elapsed = time.perf_counter() - t
    return elapsed, len(rec.compact)


def _raw(folder: Path, row_size: int) -> float:
    db = sqlite3.connect(folder / "raw.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    body = "x" * row_size
    t = time.perf_counter()
    for _ in range(PER_ROUND):
        db.execute("BEGIN")
        db.execute("INSERT INTO t (body) VALUES (?)", (body,))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - t
    db.close()
    return elapsed


def figures() -> dict[str, Figure]:
    ROOT.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-outbox-", dir=ROOT))
    try:
        key = SoftwareKey(generate("ES256"))
        ours = raw = 0.0
        row = 700
        for r in range(ROUNDS):  # ABBA order, so neither side always runs first
            if r % 2:
                raw += _raw(folder, row)
            t, row = _ours(folder / "ours", key, r * PER_ROUND)
            ours += t
            if not r % 2:
                raw += _raw(folder, row)
        n = ROUNDS * PER_ROUND
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ours_rate, raw_rate = n / ours, n / raw
    fs = os.statvfs(ROOT)
    del fs
    return {
        "outbox.enqueue_per_s": {"value": round(ours_rate, 1), "unit": "records/s"},
        "outbox.raw_insert_per_s": {"value": round(raw_rate, 1), "unit": "rows/s"},
        "outbox.enqueue_ratio": {
            "value": round(ours_rate / raw_rate, 3),
            "unit": "x",
            "baseline": "single-row committed SQLite inserts, WAL + synchronous=FULL, same disk",
            "target": ">= 0.7",
        },
    }
