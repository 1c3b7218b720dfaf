"""A device's life after its unit: retiring it, and adding records from its card later.

Retiring (``Storage.retire``) moves a device's chain to the name ``<device>~<n>`` and frees
the device id for a new enrolment, which starts a new chain at seq 1 with a new key (a spare
unit, or the same unit with a lost key, begins its outbox afresh). The retired key can no
longer send anything (``403 device_retired``): a lost key must not be able to add check-ins.

Records still on the old card are not lost: they carry their own signatures, so an operator
adds them with ``kiosk-refapi import`` (``kioskctl outbox export`` on the card makes the
file). Each record goes to the chain whose key history verifies it (the live device, or one
of its retired chains) and is checked there as a batch is (seq, prev, forks, duplicates,
key rotations): a person vouches for the card, the signatures for every record.

May import: ``daemon.records``, ``hil.refapi.app`` (the batch verifier), ``hil.refapi.storage``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daemon.errors import RecordError
from daemon.records import decode_unverified
from hil.refapi.app import MAX_BATCH, _process_batch
from hil.refapi.storage import Storage


class ImportRefused(Exception):
    """Nothing could be imported; the message says why and what to do."""


@dataclass
class Imported:
    """What became of each line: per chain, ``accepted`` / ``duplicate`` / ``rejected:<reason>``
    counts; ``unplaced``: lines no key of the device verifies (another device's, altered)."""

    chains: dict[str, Counter[str]] = field(default_factory=dict)
    unplaced: int = 0
    #: the lines now stored (accepted, or held already)
    placed: list[str] = field(default_factory=list)
    #: sealed blobs the placed records name: ``stored`` now, ``held`` already (or removed
    #: under the retention policy), ``missing`` (neither here nor in the card's folder)
    blobs: Counter[str] = field(default_factory=Counter)

    @property
    def complete(self) -> bool:
        """Every line is stored (accepted now, or held already)."""
        return not self.unplaced and all(
            set(c) <= {"accepted", "duplicate"} for c in self.chains.values()
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "chains": {k: dict(v) for k, v in self.chains.items()},
            "unplaced": self.unplaced,
            "blobs": dict(self.blobs),
        }


def _seq(compact: str) -> int:
    try:
        seq = decode_unverified(compact)[1].get("seq")
    except RecordError:
        return 0
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def import_records(store: Storage, device: str, compacts: Sequence[str], now: float) -> Imported:
    """Store ``device``'s records from a card (compact JWS), each in the chain whose keys
    verify it: the enrolled device first, then its retired chains, newest first. Raises
    ImportRefused when the device id was never enrolled here.

    One transaction (``Storage.transaction``; the caller may widen it): all of it is stored
    or, on an error, none of it. The store may be in use by a running server meanwhile: each
    batch is classified and stored under the chain's ``batch_lock``, so a record the kiosk
    sends to the server at the same time is stored once, and counts here as a duplicate when
    the server stored it first (on SQLite the server's writes wait for the import)."""
    with store.transaction():
        chains = [device] if store.device(device) is not None else []
        chains += [r.chain for r in store.retirements(device)]
        if not chains:
            raise ImportRefused(f"no device {device} is enrolled or retired here; check --device")
        done = Imported()
        pending = sorted(compacts, key=_seq)  # in chain order, as a kiosk sends: rotations first
        for chain in chains:
            left: list[str] = []
            for start in range(0, len(pending), MAX_BATCH):
                batch = pending[start : start + MAX_BATCH]
                answer = _process_batch(store, chain, batch, None, now)
                for compact, result in zip(batch, answer["results"], strict=True):
                    if result["status"] == "rejected" and result["reason"] == "bad_signature":
                        left.append(compact)  # another chain's key, perhaps
                    else:
                        status = result["status"]
                        if status != "rejected":
                            done.placed.append(compact)
                        key = status if status != "rejected" else f"rejected:{result['reason']}"
                        done.chains.setdefault(chain, Counter())[key] += 1
            pending = left
            if not pending:
                break
        done.unplaced = len(pending)
    return done


def import_blobs(store: Storage, device: str, done: Imported, folder: Path, now: float) -> None:
    """Store the sealed blobs (photos, enrolment templates) that the records placed by
    :func:`import_records` name, from the card's ``blobs`` folder; a file whose bytes do not
    hash to its name is not taken. Counts go to ``done.blobs``."""
    wanted: set[str] = set()
    for compact in done.placed:
        payload = decode_unverified(compact)[1]
        wanted |= {v for k in ("photo", "templates") if isinstance(v := payload.get(k), str)}
    for sha in sorted(wanted):
        if store.blob_info(sha) is not None or store.blob_removed(sha) is not None:
            done.blobs["held"] += 1
            continue
        try:
            data = (folder / sha).read_bytes()
        except OSError:
            done.blobs["missing"] += 1
            continue
        if hashlib.sha256(data).hexdigest() != sha:
            done.blobs["damaged"] += 1
        elif store.put_blob(sha, device, data, now):
            done.blobs["stored"] += 1
        else:
            done.blobs["held"] += 1
