"""``kioskctl outbox list | verify | export``: inspect the local queue of signed records.

- ``list`` shows seq, state, type, time and flags: never the person or the answers;
- ``verify`` checks every record held (signature, schema, seq continuity, prev hash) with the
  device's public keys, following ``key_rotation`` records from the old key to the new one.
  Acknowledged records may have been pruned (bounded retention), so the chain is verified
  from the oldest record still held, and the output says so;
- ``export`` writes compact JWS lines (one record per line) for an auditor, who verifies them
  with any JOSE library and the device's public key(s).

The outbox is opened without a signing key (read only); an export's own record is written
with it (:func:`log_export`). May import: ``daemon.*``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from daemon.clock import rfc3339
from daemon.errors import DeviceKeyError, RecordError, StorageError
from daemon.keys import PublicKey, SigningKey, load_public_pem
from daemon.kioskctl import access
from daemon.kioskctl.context import Context
from daemon.kioskctl.progress import Progress
from daemon.outbox import Outbox
from daemon.records import GENESIS, Record, decode_unverified, verify_record
from daemon.rotation import ROTATION_TYPE, rotated_key


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    state: str
    type: str
    at: str
    flags: tuple[str, ...]
    reason: str


def rows(outbox: Outbox, *, parked_only: bool = False) -> Iterator[Row]:
    reasons = {seq: reason for seq, _t, reason in outbox.parked()}
    for seq, state, compact in outbox.all_compact():
        if parked_only and state != "parked":
            continue
        _h, p, _si, _sig = decode_unverified(compact)
        yield Row(seq, state, str(p.get("type")), str(p.get("at")),
                  tuple(p.get("flags", [])), reasons.get(seq, ""))  # fmt: skip


def format_rows(items: list[Row]) -> str:
    out = [f"{'seq':>7}  {'state':<8} {'type':<16} {'at (UTC)':<24} flags / reason"]
    for r in items:
        extra = ", ".join(r.flags)
        if r.reason:
            extra = f"{extra}; rejected: {r.reason}" if extra else f"rejected: {r.reason}"
        out.append(f"{r.seq:>7}  {r.state:<8} {r.type:<16} {r.at:<24} {extra}")
    if not items:
        out.append("(no records)")
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    count: int
    first_seq: int | None
    last_seq: int | None
    rotations: int
    problem: str = ""

    def describe(self) -> str:
        if not self.ok:
            return f"FAILED: {self.problem}"
        if not self.count:
            return "the outbox holds no records"
        start = (
            "from genesis"
            if self.first_seq == 1
            else f"from seq {self.first_seq} (earlier records were acknowledged and pruned)"
        )
        rot = f", through {self.rotations} key rotation(s)" if self.rotations else ""
        return f"OK: {self.count} records verified {start} to seq {self.last_seq}{rot}"


def verify(outbox: Outbox, public_pems: list[str], device: str) -> VerifyResult:
    """Verify every record held. ``public_pems``: the device's keys, oldest first."""
    keys: list[PublicKey] = [load_public_pem(p) for p in public_pems]
    current: PublicKey | None = None
    last_seq: int | None = None
    last_hash = GENESIS
    first: int | None = None
    count = rotations = 0
    for seq, _state, compact in outbox.all_compact():
        if first is None:
            first = seq
            # the record before the oldest held one is gone: trust its link, check the rest
            _h, payload, _si, _sig = decode_unverified(compact)
            last_hash = str(payload.get("prev", ""))
            last_seq = seq - 1
            for key in keys:
                try:
                    verify_record(compact, key, device=device)
                except RecordError:
                    continue
                current = key
                break
            if current is None:
                return VerifyResult(False, 0, first, None, 0,
                                    f"seq {seq} is not signed by any key this device "
                                    "has had (enrolment.json)")  # fmt: skip
        assert current is not None
        try:
            record: Record = verify_record(
                compact, current, device=device, expected_seq=(last_seq or 0) + 1,
                expected_prev=last_hash,
            )  # fmt: skip
        except RecordError as exc:
            return VerifyResult(False, count, first, last_seq, rotations,
                                f"seq {seq}: {exc.message} ({exc.reason})")  # fmt: skip
        count += 1
        last_seq, last_hash = record.seq, record.hash
        if record.type == ROTATION_TYPE:
            try:
                current = rotated_key(record).key
            except RecordError as exc:
                return VerifyResult(False, count, first, last_seq, rotations,
                                    f"seq {seq}: {exc.message} ({exc.reason})")  # fmt: skip
            rotations += 1
    return VerifyResult(True, count, first, last_seq, rotations)


def export(outbox: Outbox, out: TextIO, *, from_seq: int = 1, progress: Progress) -> int:
    """Write compact JWS lines for records with ``seq >= from_seq``; return how many."""
    n = 0
    for seq, _state, compact in outbox.all_compact():
        if seq < from_seq:
            continue
        out.write(compact + "\n")
        n += 1
        progress.advance()
    return n


def count_records(outbox: Outbox) -> int:
    return int(outbox.db.execute("SELECT count(*) FROM records").fetchone()[0])


EXPORT_LOG = "export-log.jsonl"


def log_export(ctx: Context, operator: str, purpose: str, from_seq: int) -> str:
    """Log an export (who, why, from which seq) before it happens; return where.

    Normally a signed ``staff_action`` record in the chain: the kiosk's own access log entry,
    which reaches the central API like any record. When the device key is gone (an old card
    whose records are being rescued, docs/kioskctl.md "Swapping a unit"), a line appended to
    :data:`EXPORT_LOG` beside the outbox instead (mode 0600, fsynced): the export still goes
    ahead, since refusing it would lose the records. Raises a KioskError (and nothing is
    exported) if neither can be written."""
    from daemon.kioskctl.checks_sys import load_key

    cfg = ctx.cfg
    detail = {"action": "export", "operator": operator, "purpose": purpose, "from_seq": from_seq}
    try:
        key = load_key(ctx)
    except DeviceKeyError:
        path = cfg.device.data_dir / EXPORT_LOG
        line = json.dumps({"at": rfc3339(ctx.clock.wall()), **detail}, sort_keys=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line.encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(
                f"cannot log this export in {path} ({exc.strerror}); nothing was exported"
            ) from exc
        return f"{path} (the device key is missing, so unsigned: tell the central team)"
    writer = Outbox(
        cfg.device.data_dir,
        device=cfg.device.id,
        key=key,
        clock=ctx.clock,
        min_free_bytes=cfg.outbox.min_free_mb * 1024 * 1024,
    )
    with writer:
        seq = writer.append("staff_action", {"detail": detail}).seq
    return f"the chain, as record {seq}"


def open_for(ctx: Context, key: SigningKey | None = None) -> Outbox:
    """The outbox as it is, never a new empty one made by looking (that would hide a missing
    outbox from kiosk.service, which records the loss when it finds one); with ``key`` it may
    also append. Raises DataAccessError (wrong user, read-only), OutboxCorrupt,
    StorageError."""
    cfg = ctx.cfg.device
    problem = access.outbox_problem(cfg.data_dir, Outbox.FILE)
    if problem is not None:  # before looking for the file: it may be out of sight
        raise problem.error()
    path = cfg.data_dir / Outbox.FILE
    if not path.exists():
        raise StorageError(
            f"there is no outbox at {path}: this kiosk has recorded nothing yet, or the "
            "configuration (--config) points at another data directory",
            reason="no_outbox",
        )
    min_free = ctx.cfg.outbox.min_free_mb * 1024 * 1024
    return access.open_outbox(Outbox(cfg.data_dir, device=cfg.id, key=key, clock=ctx.clock,
                                     min_free_bytes=min_free))  # fmt: skip
