"""Storage for the reference API: a small interface and its SQLite implementation.

The interface (:class:`Storage`) is also filled by the PostgreSQL backend
(hil/refapi/pgstore.py) for a real, horizontally scaled deployment: every method is one
transaction, and the batch method is the only one on the hot path. SQLite runs in WAL mode
with ``synchronous=FULL``: an answer is sent only after the batch is durable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from daemon.errors import StorageError

#: Schema versions (``PRAGMA user_version``). Version 1 is the first schema; its statements
#: say ``IF NOT EXISTS`` because databases made before versioning hold it at version 0.
SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device     TEXT PRIMARY KEY,
    alg        TEXT NOT NULL,
    public_pem TEXT NOT NULL,
    enrolled   REAL NOT NULL,
    roster_pub TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS codes (
    code_hash TEXT PRIMARY KEY,
    expires   REAL NOT NULL,
    used_by   TEXT
);
CREATE TABLE IF NOT EXISTS records (
    device   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    id       TEXT NOT NULL UNIQUE,
    type     TEXT NOT NULL,
    hash     TEXT NOT NULL,
    prev     TEXT NOT NULL,
    flags    TEXT NOT NULL,
    photo    TEXT,
    compact  TEXT NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (device, seq)
);
CREATE TABLE IF NOT EXISTS forks (
    device   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    compact  TEXT NOT NULL,
    reason   TEXT NOT NULL,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    device    TEXT NOT NULL,
    key       TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    answer    TEXT NOT NULL,
    PRIMARY KEY (device, key)
);
CREATE TABLE IF NOT EXISTS blobs (
    sha256   TEXT PRIMARY KEY,
    device   TEXT NOT NULL,
    data     BLOB NOT NULL,
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rosters (
    device TEXT PRIMARY KEY,
    etag   TEXT NOT NULL,
    body   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chains (
    device TEXT PRIMARY KEY,
    upto   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS heartbeats (
    device   TEXT NOT NULL,
    received REAL NOT NULL,
    body     TEXT NOT NULL
);
"""
#: an officer's outcome for one task of one record (a callback made, an answer looked at);
#: kept, never overwritten. Identity reviews keep their own table (``reviews``).
TASKS_TABLE = """
    CREATE TABLE task_outcomes (
        device  TEXT NOT NULL,
        seq     BIGINT NOT NULL,
        kind    TEXT NOT NULL,
        outcome TEXT NOT NULL,
        officer TEXT NOT NULL,
        at      DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (device, seq, kind)
    )
"""

_MIGRATIONS: dict[int, str] = {
    1: SCHEMA,
    # 1 -> 2: a device's key history. ``devices`` keeps the key in effect (signed requests,
    # re-enrolment); ``device_keys`` says which key signs which seqs: a key holds from
    # ``from_seq`` up to the next row's ``from_seq`` - 1. The enrolled key holds from seq 1; a
    # key_rotation record at seq N adds a row from N + 1.
    2: """
    CREATE TABLE device_keys (
        device     TEXT NOT NULL,
        from_seq   INTEGER NOT NULL,
        alg        TEXT NOT NULL,
        public_pem TEXT NOT NULL,
        since      REAL NOT NULL,
        PRIMARY KEY (device, from_seq)
    );
    INSERT INTO device_keys SELECT device, 1, alg, public_pem, enrolled FROM devices;
    """,
    # 2 -> 3: an officer's decision on a record sent for identity review (one per record)
    3: """
    CREATE TABLE reviews (
        device   TEXT NOT NULL,
        seq      INTEGER NOT NULL,
        outcome  TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        at       REAL NOT NULL,
        PRIMARY KEY (device, seq)
    );
    """,
    # 3 -> 4: retention (docs/privacy.md). ``removed_blobs`` says which blob went when and
    # why, so the API can answer 410 for it and never store it again; the indexes are what
    # retention reads by.
    4: """
    CREATE TABLE removed_blobs (
        sha256   TEXT PRIMARY KEY,
        device   TEXT NOT NULL,
        kind     TEXT NOT NULL,
        reason   TEXT NOT NULL,
        received REAL NOT NULL,
        removed  REAL NOT NULL
    );
    CREATE INDEX records_photo ON records (photo) WHERE photo IS NOT NULL;
    CREATE INDEX records_enrolment ON records (device, seq) WHERE type = 'finger_enrolment';
    CREATE INDEX IF NOT EXISTS heartbeats_device ON heartbeats (device, received DESC);
    """,
    # 4 -> 5: the access log (DPA 2018 s.62; docs/privacy.md): append-only (the triggers
    # refuse UPDATE and DELETE) and hash-chained.
    5: """
    CREATE TABLE access_log (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at       REAL NOT NULL,
        operator TEXT NOT NULL,
        via      TEXT NOT NULL,
        action   TEXT NOT NULL,
        device   TEXT,
        seq      INTEGER,
        target   TEXT,
        outcome  TEXT NOT NULL,
        detail   TEXT NOT NULL,
        prev     TEXT NOT NULL,
        hash     TEXT NOT NULL
    );
    CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log
    BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
    CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log
    BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
    """,
    # 5 -> 6: how an officer closed a task a record made (hil/refapi/tasks.py), once
    6: TASKS_TABLE,
    # 6 -> 7: retired devices (docs/refapi.md, "Retiring a device"); PostgreSQL schema 6
    7: """
    CREATE TABLE retirements (
        chain    TEXT PRIMARY KEY,
        device   TEXT NOT NULL,
        at       REAL NOT NULL,
        operator TEXT NOT NULL,
        reason   TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        records  INTEGER NOT NULL
    );
    CREATE INDEX retirements_device ON retirements (device);
    """,
}
SCHEMA_VERSION = max(_MIGRATIONS)
#: how long a SQLite writer waits for another process's write to finish (a running server's
#: batch, an import, ``prune``) before it gives up with "database is locked"
BUSY_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class Device:
    device: str
    alg: str
    public_pem: str
    roster_public_key: str = ""


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """One key of a device's history: it signs the device's records from ``from_seq`` until
    the next key's ``from_seq`` (``since``: Unix seconds it was enrolled or rotated in)."""

    from_seq: int
    alg: str
    public_pem: str
    since: float


@dataclass(frozen=True, slots=True)
class BlobHold:
    """One stored blob and what keeps it (retention, hil/refapi/retention.py): the records
    naming it as their photo, each as (received, flags, review outcome, review time)."""

    sha256: str
    device: str
    received: float
    photo_of: tuple[tuple[float, tuple[str, ...], str | None, float | None], ...] = ()


#: the access log chain's first ``prev``
ACCESS_GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One line of the access log (DPA 2018 s.62): who (``operator``), when (``at``, Unix
    seconds), through what (``via``: ``api`` or ``cli``), what (``action``, and the ``device``,
    ``seq`` or ``target`` it concerned: a receipt code, a blob hash prefix), how it ended
    (``outcome``) and counts (``detail``). Never the person's data: no reference, no answer,
    no photo, no template."""

    at: float
    operator: str
    via: str
    action: str
    outcome: str = "ok"
    device: str | None = None
    seq: int | None = None
    target: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> list[Any]:
        return [self.at, self.operator, self.via, self.action, self.device, self.seq,
                self.target, self.outcome, json.dumps(self.detail, sort_keys=True)]  # fmt: skip


def access_hash(prev: str, fields: Sequence[Any]) -> str:
    """The chain hash of an access log line: SHA-256 over the previous line's hash and this
    line's fields (both backends)."""
    line = json.dumps([prev, *fields], separators=(",", ":"))
    return hashlib.sha256(line.encode()).hexdigest()


#: the access log's columns as read back, in order
ACCESS_COLUMNS = "id, at, operator, via, action, device, seq, target, outcome, detail, prev, hash"


def access_dicts(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    return [
        {"id": int(i), "at": float(at), "operator": op, "via": via, "action": action,
         "device": device, "seq": None if seq is None else int(seq), "target": target,
         "outcome": outcome, "detail": json.loads(detail), "prev": prev, "hash": h}
        for i, at, op, via, action, device, seq, target, outcome, detail, prev, h in rows
    ]  # fmt: skip


def access_chain_break(entries: Iterable[dict[str, Any]]) -> int | None:
    """The id of the first access log line that does not follow from the one before it (an
    altered, inserted or removed line), or None when the chain holds. ``entries`` in id
    order from the first line."""
    prev = ACCESS_GENESIS
    for e in entries:
        fields = [e["at"], e["operator"], e["via"], e["action"], e["device"], e["seq"],
                  e["target"], e["outcome"], json.dumps(e["detail"], sort_keys=True)]  # fmt: skip
        if e["prev"] != prev or access_hash(prev, fields) != e["hash"]:
            return int(e["id"])
        prev = e["hash"]
    return None


def access_query(
    placeholder: str, after_id: int, limit: int, operator: str | None, device: str | None
) -> tuple[str, list[Any]]:
    """The access log read (both backends): lines after ``after_id`` in id order, optionally
    of one operator or one device."""
    where: list[str] = ["id > " + placeholder]
    args: list[Any] = [after_id]
    if operator is not None:
        where.append("operator = " + placeholder)
        args.append(operator)
    if device is not None:
        where.append("device = " + placeholder)
        args.append(device)
    sql = f"SELECT {ACCESS_COLUMNS} FROM access_log WHERE {' AND '.join(where)} "  # noqa: S608
    return sql + f"ORDER BY id LIMIT {placeholder}", [*args, limit]


#: every blob received up to a time, with the records naming it as their photo and their
#: review decisions: what retention needs (both backends; one placeholder)
BLOB_HOLDS_SQL = (
    "SELECT b.sha256, b.device, b.received, r.received, r.flags, v.outcome, v.at "
    "FROM blobs b LEFT JOIN records r ON r.photo = b.sha256 "
    "LEFT JOIN reviews v ON v.device = r.device AND v.seq = r.seq "
    "WHERE b.received <= {} ORDER BY b.sha256"
)


#: every fingerprint enrolment record (its partial index names the type, so no parameter)
ENROLMENTS_SQL = (
    "SELECT device, seq, compact, received FROM records WHERE type = 'finger_enrolment' "
    "ORDER BY device, seq"
)


def blob_holds(rows: Iterable[Sequence[Any]]) -> list[BlobHold]:
    held: dict[str, BlobHold] = {}
    for sha, device, received, r_received, flags, outcome, at in rows:
        hold = held.get(sha) or BlobHold(sha, device, float(received))
        if r_received is not None:
            ref = (float(r_received), tuple(json.loads(flags)), outcome,
                   None if at is None else float(at))  # fmt: skip
            hold = BlobHold(sha, device, hold.received, (*hold.photo_of, ref))
        held[sha] = hold
    return list(held.values())


def removed_dict(kind: str, reason: str, removed: float) -> dict[str, Any]:
    return {"kind": kind, "reason": reason, "removed": float(removed)}


#: the tables whose rows belong to one device's chain of records, by their ``device``
#: column: retiring a device moves them to its retired chain's name (both backends). A new
#: table of per-device rows belongs here, unless it follows the device id to its next unit
#: (``rosters``) or only notes who sent something (``blobs``, ``removed_blobs``, ``codes``;
#: the access log is never changed).
CHAIN_TABLES = (
    "devices", "device_keys", "records", "forks", "idempotency", "chains", "heartbeats",
    "reviews", "task_outcomes",
)  # fmt: skip
#: what separates a device id from the number of its retired chain: never in a device id
RETIRED_MARK = "~"
#: a retirement's columns, in order
RETIREMENT_COLUMNS = "chain, device, at, operator, reason, last_seq, records"


def device_of_chain(name: str) -> str:
    """The device id a stored chain's records carry: ``kiosk-0042`` for ``kiosk-0042~1``."""
    return name.split(RETIRED_MARK, 1)[0]


@dataclass(frozen=True, slots=True)
class Retirement:
    """A device identity retired (its key lost, its unit replaced): its records, keys,
    heartbeats, reviews and task outcomes are kept under ``chain`` (``<device>~<n>``, the
    n-th retirement of that id), and ``device`` may be enrolled again with a new key."""

    chain: str
    device: str
    at: float
    operator: str
    reason: str
    last_seq: int
    records: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def retirements_of(rows: Iterable[Sequence[Any]]) -> list[Retirement]:
    return [
        Retirement(c, d, float(at), op, why, int(last), int(n))
        for c, d, at, op, why, last, n in rows
    ]


@dataclass(frozen=True, slots=True)
class StoredRecord:
    seq: int
    id: str
    hash: str
    prev: str
    compact: str


class Storage(Protocol):
    """What the app needs from a store. Every method is one transaction and may be called from
    any worker thread; ``store_batch`` must be durable when it returns. ``transaction()``
    makes several calls one (the methods' own become part of it; then the commit at its end
    is what makes them durable). Times are Unix seconds. A PostgreSQL backend implements the
    same methods."""

    def device(self, device: str) -> Device | None: ...
    def devices(self) -> list[str]: ...
    def device_keys(self, device: str) -> list[DeviceKey]: ...
    def enrol(
        self,
        code: str,
        device: str,
        alg: str,
        public_pem: str,
        now: float,
        roster_public_key: str = "",
    ) -> str: ...
    def add_code(self, code: str, expires: float) -> None: ...
    def records_near(
        self, device: str, seqs: Sequence[int], ids: Sequence[str]
    ) -> tuple[dict[int, StoredRecord], set[str]]: ...
    def store_batch(
        self,
        device: str,
        accepted: Sequence[tuple[dict[str, Any], str, str]],
        forks: Sequence[tuple[int, str, str]],
        results: list[dict[str, Any]],
        idempotency: tuple[str, str] | None,
        now: float,
        rotations: Sequence[DeviceKey] = (),
    ) -> dict[str, Any]: ...
    def idempotent_answer(self, device: str, key: str) -> tuple[str, str] | None: ...
    def gaps(self, device: str) -> list[tuple[int, int]]: ...
    def last_seq(self, device: str) -> int: ...
    def put_blob(self, sha: str, device: str, data: bytes, now: float) -> bool: ...
    # (False when already held or removed under the retention policy: never stored again)
    def get_blob(self, sha: str) -> bytes | None: ...
    def put_roster(self, device: str, body: bytes) -> str: ...
    def get_roster(self, device: str) -> tuple[str, bytes] | None: ...
    def heartbeat(self, device: str, body: dict[str, Any], now: float) -> None: ...
    def export(self, device: str | None = None) -> Iterator[tuple[str, int, str]]: ...
    def batch_lock(self, device: str) -> AbstractContextManager[Any]: ...
    def transaction(self) -> AbstractContextManager[Any]: ...
    # (what this thread does with the store inside is one transaction: all or nothing)
    def count(self, device: str | None = None) -> int: ...
    def forks(self, device: str) -> list[tuple[int, str]]: ...
    def alerts(self) -> list[dict[str, Any]]: ...
    def list_records(
        self, device: str, after_seq: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]: ...
    def heartbeats(self, device: str, limit: int = 100) -> list[dict[str, Any]]: ...
    # (received, whether it said the kiosk was running), newest first: the bodies stay in
    # the database (the uptime figures and missed-appointment tasks read tens of thousands)
    def heartbeat_states(self, device: str, limit: int) -> list[tuple[float, bool]]: ...
    def by_hash_prefix(self, prefixes: Sequence[str]) -> list[dict[str, Any]]: ...
    def add_review(
        self, device: str, seq: int, outcome: str, reviewer: str, now: float
    ) -> dict[str, Any] | None: ...
    def review(self, device: str, seq: int) -> dict[str, Any] | None: ...
    def reviews(self) -> dict[tuple[str, int], dict[str, Any]]: ...
    def close_task(
        self, device: str, seq: int, kind: str, outcome: str, officer: str, now: float
    ) -> dict[str, Any] | None: ...
    def task_outcomes(self) -> dict[tuple[str, int, str], dict[str, Any]]: ...
    def last_of_type(self, device: str, type_: str) -> tuple[int, str, float] | None: ...
    def last_heartbeat(self, device: str) -> dict[str, Any] | None: ...
    def enrolments(self) -> list[tuple[str, int, str, float]]: ...
    def blob_holds(self, received_before: float) -> list[BlobHold]: ...
    def blob_info(self, sha: str) -> dict[str, Any] | None: ...
    def blob_removed(self, sha: str) -> dict[str, Any] | None: ...
    def remove_blobs(self, removals: Sequence[tuple[str, str, str]], now: float) -> list[str]: ...
    def prune_heartbeats(self, before: float) -> int: ...
    def retire(self, device: str, operator: str, reason: str, now: float) -> Retirement | None: ...
    # (None when ``device`` is not enrolled)
    def retirements(self, device: str | None = None) -> list[Retirement]: ...
    def log_access(self, entry: AccessEntry) -> int: ...
    def access_log(
        self,
        after_id: int = 0,
        limit: int = 100,
        operator: str | None = None,
        device: str | None = None,
    ) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


#: records staff must see first (see_officer / id_review flags, tamper, fault), tamper and
#: see_officer on top; no parameters, so both drivers take it as written
ALERTS_SQL = (
    "SELECT device, seq, type, flags, received FROM records r WHERE (type IN "
    "('tamper', 'fault', 'see_officer', 'checkin_fallback', 'staff_override') "
    "OR flags <> '[]') AND NOT EXISTS (SELECT 1 FROM reviews v WHERE v.device = r.device "
    "AND v.seq = r.seq) AND NOT EXISTS (SELECT 1 FROM task_outcomes t WHERE t.device = "
    "r.device AND t.seq = r.seq) ORDER BY (type = 'tamper' OR flags LIKE '%see_officer%') "
    "DESC, received DESC LIMIT 500"
)
#: an officer's decision on an identity review (manual ID check): requirement 8
REVIEW_OUTCOMES = ("confirmed", "confirmed_with_concern", "rejected")


def record_row(device: str, p: dict[str, Any], compact: str, h: str, now: float) -> tuple[Any, ...]:
    """A ``records`` row, in column order (both backends)."""
    return (
        device, p["seq"], p["id"], p["type"], h, p["prev"], json.dumps(p.get("flags", [])),
        p.get("photo"), compact, now,
    )  # fmt: skip


def alert_dicts(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    return [
        {"device": d, "seq": int(s), "type": t, "flags": json.loads(f), "received": float(r)}
        for d, s, t, f, r in rows
    ]


#: records whose chain hash starts with one of 4 prefixes (a receipt code: records.py)
RECEIPT_SQL = (
    "SELECT device, seq, type, flags, received, hash FROM records "
    "WHERE substr(hash, 1, 7) IN ({}) ORDER BY received"
)


def receipt_dicts(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    return [
        {"device": d, "seq": int(s), "type": t, "flags": json.loads(f), "received": float(r),
         "hash": h}
        for d, s, t, f, r, h in rows
    ]  # fmt: skip


def review_dict(outcome: str, reviewer: str, at: float) -> dict[str, Any]:
    return {"outcome": outcome, "reviewer": reviewer, "at": float(at)}


#: every identity-review decision (both backends)
REVIEWS_SQL = "SELECT device, seq, outcome, reviewer, at FROM reviews"


def review_map(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Rows of :data:`REVIEWS_SQL`, keyed by (device, seq)."""
    return {(d, int(s)): review_dict(o, who, at) for d, s, o, who, at in rows}


def task_outcome_dict(outcome: str, officer: str, at: float) -> dict[str, Any]:
    return {"outcome": outcome, "officer": officer, "at": float(at)}


def task_outcome_map(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """Rows of (device, seq, kind, outcome, officer, at), keyed as the tasks list joins them."""
    return {(d, int(s), k): task_outcome_dict(o, who, at) for d, s, k, o, who, at in rows}


def record_dicts(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows of (seq, id, type, flags, photo, received) as the admin API lists them."""
    return [
        {"seq": int(s), "id": i, "type": t, "flags": json.loads(f), "photo": p,
         "received": float(r)}
        for s, i, t, f, p, r in rows
    ]  # fmt: skip


def advance_chain(upto: int, above: Sequence[int]) -> tuple[int, list[list[int]]]:
    """The chain's new contiguous head and the gaps above it, given the head ``upto`` and the
    stored seqs above it in order (both backends)."""
    gaps: list[list[int]] = []
    expected = upto + 1
    for seq in above:
        if seq == expected and not gaps:
            upto = seq
        elif seq > expected:
            gaps.append([expected, seq - 1])
        expected = seq + 1
    return upto, gaps


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a migration script, whole: a trigger's body keeps its ``;``."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending.strip()
            pending = ""


def code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode()).hexdigest()


#: the public keys of every retired chain (no parameters)
RETIRED_KEYS_SQL = "SELECT k.public_pem FROM device_keys k JOIN retirements r ON r.chain = k.device"


def is_retired_key(public_pem: str, rows: Iterable[Sequence[Any]]) -> bool:
    """Whether ``public_pem`` is among the keys of :data:`RETIRED_KEYS_SQL`: a retired key
    never comes back, under any device id."""
    return any(r[0].strip() == public_pem.strip() for r in rows)


class StoreUnavailable(StorageError, RuntimeError):
    """The store cannot be used: ``no_database`` (nothing there, or not a reference API
    database: a mistyped ``--data`` or ``--database``), ``cannot_connect``, ``schema_newer``.
    The message names the place (never a password) and says what to do."""

    reason = "store_unavailable"


class EnrolmentRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SqliteStorage:
    """One SQLite file; a lock serialises writers across the server's worker threads."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open the database at ``path``. ``create``: make it when missing (its folder mode
        0700, the file 0600: it holds personal data); otherwise a missing or foreign file is
        :class:`StoreUnavailable` (``no_database``), so a mistyped folder is never taken for
        an empty store."""
        if create:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # SQLite gives its -wal and -shm files the database file's mode
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        elif not path.is_file():
            where = "there is no folder" if not path.parent.is_dir() else "there is no database in"
            raise StoreUnavailable(
                f"{where} {path.parent} (no {path.name}): check the folder given with --data "
                f"(a typing mistake?), or make a new database there with `kiosk-refapi init "
                f"--data {path.parent}`",
                reason="no_database",
            )
        self.path = path
        self._lock = threading.RLock()
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self.db.execute("PRAGMA journal_mode = WAL")
            if (
                not create
                and not self.db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'devices'"
                ).fetchone()
            ):
                raise StoreUnavailable(
                    f"{path} is not a reference API database (it is empty or holds something "
                    "else): check --data",
                    reason="no_database",
                )
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise StoreUnavailable(
                f"{path} is not a SQLite database ({exc}): check --data", reason="no_database"
            ) from exc
        except StoreUnavailable:
            self.db.close()
            raise
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_MS)}")
        with self._lock:
            self._migrate()

    def _migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            self.db.close()
            raise StoreUnavailable(
                f"{self.path} has schema version {version}, newer than this reference API "
                f"({SCHEMA_VERSION}); run the newer software or use another data folder",
                reason="schema_newer",
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                # another process may have migrated while this one waited for the lock
                if int(self.db.execute("PRAGMA user_version").fetchone()[0]) < target:
                    for statement in _statements(_MIGRATIONS[target]):
                        self.db.execute(statement)
                    self.db.execute(f"PRAGMA user_version = {target}")
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything done with this store inside is one transaction, committed on the way
        out and rolled back on an exception. It takes SQLite's write lock at once
        (``BEGIN IMMEDIATE``: another process writing makes it wait up to
        :data:`BUSY_TIMEOUT_MS`), so what is read inside is still so when it is written, even
        with a server and ``kiosk-refapi import`` on one file. Inside one already, it is a
        savepoint of it. Other threads of this process wait for it (one connection)."""
        with self._lock:
            if self.db.in_transaction:
                self.db.execute("SAVEPOINT nested")
                try:
                    yield
                except BaseException:
                    self.db.execute("ROLLBACK TO nested")
                    self.db.execute("RELEASE nested")
                    raise
                self.db.execute("RELEASE nested")
                return
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def batch_lock(self, device: str) -> AbstractContextManager[None]:
        """One transaction for a batch of ``device``, from the reads that classify it to the
        write that stores it (:meth:`transaction`), so a resent batch arriving meanwhile, at
        this process or another one on the same file (a second server, an import), waits and
        then sees it. A PostgreSQL backend locks the device's row instead; here it is the
        whole database: SQLite has one writer anyway."""
        del device
        return self.transaction()

    # --- devices and enrolment ---------------------------------------------------------------
    def device(self, device: str) -> Device | None:
        with self._lock:
            row = self.db.execute(
                "SELECT device, alg, public_pem, roster_pub FROM devices WHERE device = ?",
                (device,),
            ).fetchone()
        return None if row is None else Device(*row)

    def devices(self) -> list[str]:
        """Every enrolled device, by name."""
        with self._lock:
            rows = self.db.execute("SELECT device FROM devices ORDER BY device").fetchall()
        return [r[0] for r in rows]

    def device_keys(self, device: str) -> list[DeviceKey]:
        """The device's keys, oldest first (the enrolled key holds from seq 1)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT from_seq, alg, public_pem, since FROM device_keys WHERE device = ? "
                "ORDER BY from_seq",
                (device,),
            ).fetchall()
        return [DeviceKey(*row) for row in rows]

    def add_code(self, code: str, expires: float) -> None:
        with self._lock:
            self.db.execute("INSERT INTO codes VALUES (?, ?, NULL)", (code_hash(code), expires))

    def enrol(
        self,
        code: str,
        device: str,
        alg: str,
        public_pem: str,
        now: float,
        roster_public_key: str = "",
    ) -> str:
        """Enrol ``device`` with a one-time code. Returns ``"created"`` or ``"unchanged"``
        (the key in effect again); raises EnrolmentRefused(403|409). A device's key changes
        only through a key_rotation record (``store_batch``), never here."""
        with self.transaction():
            existing = self.db.execute(
                "SELECT public_pem FROM devices WHERE device = ?", (device,)
            ).fetchone()
            if existing is not None and existing[0].strip() == public_pem.strip():
                return "unchanged"
            row = self.db.execute(
                "SELECT expires, used_by FROM codes WHERE code_hash = ?", (code_hash(code),)
            ).fetchone()
            if row is None or row[1] is not None or row[0] < now:
                raise EnrolmentRefused(403, "enrolment_code")
            if existing is not None:
                raise EnrolmentRefused(409, "already_enrolled")
            if is_retired_key(public_pem, self.db.execute(RETIRED_KEYS_SQL)):
                raise EnrolmentRefused(409, "key_retired")
            self.db.execute(
                "UPDATE codes SET used_by = ? WHERE code_hash = ?", (device, code_hash(code))
            )
            self.db.execute(
                "INSERT INTO devices VALUES (?, ?, ?, ?, ?)",
                (device, alg, public_pem, now, roster_public_key),
            )
            self.db.execute(
                "INSERT INTO device_keys VALUES (?, 1, ?, ?, ?)", (device, alg, public_pem, now)
            )
            return "created"

    # --- records ---------------------------------------------------------------------------
    def records_near(
        self, device: str, seqs: Sequence[int], ids: Sequence[str]
    ) -> tuple[dict[int, StoredRecord], set[str]]:
        """Stored records at these seqs and their neighbours, and which ids already exist."""
        wanted = sorted({s + d for s in seqs for d in (-1, 0, 1)})
        out: dict[int, StoredRecord] = {}
        with self._lock:
            for i in range(0, len(wanted), 900):
                chunk = wanted[i : i + 900]
                q = ",".join("?" * len(chunk))
                for seq, rid, h, prev, compact in self.db.execute(
                    f"SELECT seq, id, hash, prev, compact FROM records WHERE device = ? "  # noqa: S608
                    f"AND seq IN ({q})",
                    (device, *chunk),
                ):
                    out[seq] = StoredRecord(seq, rid, h, prev, compact)
            known: set[str] = set()
            for i in range(0, len(ids), 900):
                chunk_ids = list(ids[i : i + 900])
                q = ",".join("?" * len(chunk_ids))
                known.update(
                    r[0]
                    for r in self.db.execute(
                        f"SELECT id FROM records WHERE id IN ({q})",  # noqa: S608
                        chunk_ids,
                    )
                )
        return out, known

    def store_batch(
        self,
        device: str,
        accepted: Sequence[tuple[dict[str, Any], str, str]],
        forks: Sequence[tuple[int, str, str]],
        results: list[dict[str, Any]],
        idempotency: tuple[str, str] | None,
        now: float,
        rotations: Sequence[DeviceKey] = (),
    ) -> dict[str, Any]:
        """One durable transaction: accepted records (payload, compact, hash), forks (seq,
        compact, reason) for the auditor, the keys the accepted key_rotation records hand over
        to (oldest first; the last becomes the key in effect), the chain's contiguous head, and
        the answer kept for the Idempotency-Key (key, body hash). Returns the answer."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [record_row(device, p, c, h, now) for p, c, h in accepted],
            )
            self.db.executemany(
                "INSERT INTO forks VALUES (?, ?, ?, ?, ?)",
                [(device, s, c, r, now) for s, c, r in forks],
            )
            if rotations:
                self.db.executemany(
                    "INSERT INTO device_keys VALUES (?, ?, ?, ?, ?)",
                    [(device, k.from_seq, k.alg, k.public_pem, k.since) for k in rotations],
                )
                # the key in effect (signed requests, re-enrolment) is the newest one
                self.db.execute(
                    "UPDATE devices SET (alg, public_pem) = (SELECT alg, public_pem FROM "
                    "device_keys WHERE device = ?1 ORDER BY from_seq DESC LIMIT 1) "
                    "WHERE device = ?1",
                    (device,),
                )
            row = self.db.execute("SELECT upto FROM chains WHERE device = ?", (device,))
            found = row.fetchone()
            upto = int(found[0]) if found else 0
            above = [
                r[0]
                for r in self.db.execute(
                    "SELECT seq FROM records WHERE device = ? AND seq > ? ORDER BY seq",
                    (device, upto),
                )
            ]
            upto, gaps = advance_chain(upto, above)
            self.db.execute("INSERT OR REPLACE INTO chains VALUES (?, ?)", (device, upto))
            answer = {
                "results": results,
                "last_seq": above[-1] if above else upto,
                "gaps": gaps,
            }
            if idempotency is not None:
                self.db.execute(
                    "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?)",
                    (device, idempotency[0], idempotency[1], json.dumps(answer)),
                )
        return answer

    def idempotent_answer(self, device: str, key: str) -> tuple[str, str] | None:
        with self._lock:
            row = self.db.execute(
                "SELECT body_hash, answer FROM idempotency WHERE device = ? AND key = ?",
                (device, key),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def gaps(self, device: str) -> list[tuple[int, int]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT seq FROM records WHERE device = ? ORDER BY seq", (device,)
            ).fetchall()
        gaps: list[tuple[int, int]] = []
        expected = 1
        for (seq,) in rows:
            if seq > expected:
                gaps.append((expected, seq - 1))
            expected = seq + 1
        return gaps

    def last_seq(self, device: str) -> int:
        with self._lock:
            row = self.db.execute(
                "SELECT max(seq) FROM records WHERE device = ?", (device,)
            ).fetchone()
        return int(row[0] or 0)

    def count(self, device: str | None = None) -> int:
        with self._lock:
            if device is None:
                return int(self.db.execute("SELECT count(*) FROM records").fetchone()[0])
            return int(
                self.db.execute(
                    "SELECT count(*) FROM records WHERE device = ?", (device,)
                ).fetchone()[0]
            )

    def list_records(
        self, device: str, after_seq: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Stored records of ``device`` above ``after_seq`` in seq order (no personal fields:
        seq, id, type, flags, photo hash, received time in Unix seconds)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT seq, id, type, flags, photo, received FROM records WHERE device = ? "
                "AND seq > ? ORDER BY seq LIMIT ?",
                (device, after_seq, limit),
            ).fetchall()
        return record_dicts(rows)

    def add_review(
        self, device: str, seq: int, outcome: str, reviewer: str, now: float
    ) -> dict[str, Any] | None:
        """Record the decision; None when the record already has one (decisions are kept,
        never overwritten)."""
        with self._lock:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO reviews VALUES (?, ?, ?, ?, ?)",
                (device, seq, outcome, reviewer, now),
            )
        return review_dict(outcome, reviewer, now) if cur.rowcount == 1 else None

    def review(self, device: str, seq: int) -> dict[str, Any] | None:
        with self._lock:
            row = self.db.execute(
                "SELECT outcome, reviewer, at FROM reviews WHERE device = ? AND seq = ?",
                (device, seq),
            ).fetchone()
        return None if row is None else review_dict(*row)

    def reviews(self) -> dict[tuple[str, int], dict[str, Any]]:
        """Every identity-review decision, by (device, seq)."""
        with self._lock:
            rows = self.db.execute(REVIEWS_SQL).fetchall()
        return review_map(rows)

    def close_task(
        self, device: str, seq: int, kind: str, outcome: str, officer: str, now: float
    ) -> dict[str, Any] | None:
        """Record how a task was closed; None when it already was (kept, never overwritten)."""
        with self._lock:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO task_outcomes VALUES (?, ?, ?, ?, ?, ?)",
                (device, seq, kind, outcome, officer, now),
            )
        return task_outcome_dict(outcome, officer, now) if cur.rowcount == 1 else None

    def task_outcomes(self) -> dict[tuple[str, int, str], dict[str, Any]]:
        with self._lock:
            rows = self.db.execute(
                "SELECT device, seq, kind, outcome, officer, at FROM task_outcomes"
            ).fetchall()
        return task_outcome_map(rows)

    def by_hash_prefix(self, prefixes: Sequence[str]) -> list[dict[str, Any]]:
        """Records whose chain hash starts with one of ``prefixes`` (7 characters each)."""
        sql = RECEIPT_SQL.format(", ".join("?" * len(prefixes)))
        with self._lock:
            rows = self.db.execute(sql, tuple(prefixes)).fetchall()
        return receipt_dicts(rows)

    def heartbeats(self, device: str, limit: int = 100) -> list[dict[str, Any]]:
        """The latest heartbeats of ``device``, newest first, with their received time."""
        with self._lock:
            rows = self.db.execute(
                "SELECT received, body FROM heartbeats WHERE device = ? "
                "ORDER BY received DESC LIMIT ?",
                (device, limit),
            ).fetchall()
        return [{"received": r, "body": json.loads(b)} for r, b in rows]

    def heartbeat_states(self, device: str, limit: int) -> list[tuple[float, bool]]:
        """(received, whether the body said ``"kiosk": "running"``) of the latest ``limit``
        heartbeats of ``device``, newest first; the JSON is read inside SQLite."""
        with self._lock:
            rows = self.db.execute(
                "SELECT received, coalesce(json_extract(body, '$.kiosk') = 'running', 0) "
                "FROM heartbeats WHERE device = ? ORDER BY received DESC LIMIT ?",
                (device, limit),
            ).fetchall()
        return [(float(r), bool(up)) for r, up in rows]

    def last_of_type(self, device: str, type_: str) -> tuple[int, str, float] | None:
        """(seq, compact, received) of the device's newest record of ``type_``."""
        with self._lock:
            row = self.db.execute(
                "SELECT seq, compact, received FROM records WHERE device = ? AND type = ? "
                "ORDER BY seq DESC LIMIT 1",
                (device, type_),
            ).fetchone()
        return None if row is None else (int(row[0]), row[1], float(row[2]))

    def forks(self, device: str) -> list[tuple[int, str]]:
        with self._lock:
            return [
                (s, r)
                for s, r in self.db.execute(
                    "SELECT seq, reason FROM forks WHERE device = ? ORDER BY seq", (device,)
                )
            ]

    def alerts(self) -> list[dict[str, Any]]:
        """Records staff must see first: see_officer / id_review flags and tamper/fault."""
        with self._lock:
            rows = self.db.execute(ALERTS_SQL).fetchall()
        return alert_dicts(rows)

    # --- blobs, roster, heartbeat ----------------------------------------------------------
    def put_blob(self, sha: str, device: str, data: bytes, now: float) -> bool:
        """Store a blob; False when it is already held, or was removed under the retention
        policy (it is not stored again: a resent photo must not restart its clock)."""
        with self._lock:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO blobs SELECT ?, ?, ?, ? WHERE NOT EXISTS "
                "(SELECT 1 FROM removed_blobs WHERE sha256 = ?)",
                (sha, device, data, now, sha),
            )
        return cur.rowcount == 1

    def get_blob(self, sha: str) -> bytes | None:
        with self._lock:
            row = self.db.execute("SELECT data FROM blobs WHERE sha256 = ?", (sha,)).fetchone()
        return None if row is None else bytes(row[0])

    def blob_info(self, sha: str) -> dict[str, Any] | None:
        """Who sent a held blob, when, and its size: never its bytes."""
        with self._lock:
            row = self.db.execute(
                "SELECT device, received, length(data) FROM blobs WHERE sha256 = ?", (sha,)
            ).fetchone()
        return None if row is None else {"device": row[0], "received": row[1], "bytes": row[2]}

    def blob_removed(self, sha: str) -> dict[str, Any] | None:
        """Why and when a blob was removed (kind, reason, removed), or None."""
        with self._lock:
            row = self.db.execute(
                "SELECT kind, reason, removed FROM removed_blobs WHERE sha256 = ?", (sha,)
            ).fetchone()
        return None if row is None else removed_dict(*row)

    def put_roster(self, device: str, body: bytes) -> str:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO rosters VALUES (?, ?, ?)", (device, etag, body))
        return etag

    def get_roster(self, device: str) -> tuple[str, bytes] | None:
        with self._lock:
            row = self.db.execute(
                "SELECT etag, body FROM rosters WHERE device = ?", (device,)
            ).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    def heartbeat(self, device: str, body: dict[str, Any], now: float) -> None:
        with self._lock:
            self.db.execute(
                "INSERT INTO heartbeats VALUES (?, ?, ?)", (device, now, json.dumps(body))
            )

    def last_heartbeat(self, device: str) -> dict[str, Any] | None:
        with self._lock:
            row = self.db.execute(
                "SELECT body FROM heartbeats WHERE device = ? ORDER BY received DESC LIMIT 1",
                (device,),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def export(self, device: str | None = None) -> Iterator[tuple[str, int, str]]:
        """(device, seq, compact) of every stored record, per device in seq order."""
        with self._lock:
            if device is None:
                rows = self.db.execute(
                    "SELECT device, seq, compact FROM records ORDER BY device, seq"
                ).fetchall()
            else:
                rows = self.db.execute(
                    "SELECT device, seq, compact FROM records WHERE device = ? ORDER BY seq",
                    (device,),
                ).fetchall()
        yield from rows

    # --- retention (hil/refapi/retention.py) ----------------------------------------------------
    def blob_holds(self, received_before: float) -> list[BlobHold]:
        """Every blob received up to ``received_before`` with what keeps it (retention)."""
        with self._lock:
            rows = self.db.execute(BLOB_HOLDS_SQL.format("?"), (received_before,)).fetchall()
        return blob_holds(rows)

    def remove_blobs(self, removals: Sequence[tuple[str, str, str]], now: float) -> list[str]:
        """Delete blobs (sha, kind, reason) and keep a note of each, in one transaction;
        returns the hashes removed. A blob of kind ``unreferenced`` stays if a record names it
        by now. Deleted content is overwritten (``secure_delete``), and the WAL is
        checkpointed so old pages do not linger in it."""
        gone: list[str] = []
        with self._lock:
            self.db.execute("PRAGMA secure_delete = ON")
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for sha, kind, reason in removals:
                    # an "unreferenced" blob stays if a record names it by now
                    args = (sha, kind, reason, now, kind == "unreferenced")
                    self.db.execute(
                        "INSERT OR IGNORE INTO removed_blobs SELECT sha256, device, ?2, ?3, "
                        "received, ?4 FROM blobs WHERE sha256 = ?1 AND (NOT ?5 OR NOT EXISTS "
                        "(SELECT 1 FROM records WHERE photo = ?1))",
                        args,
                    )
                    if self.db.execute(
                        "DELETE FROM blobs WHERE sha256 = ?1 AND (NOT ?5 OR NOT EXISTS "
                        "(SELECT 1 FROM records WHERE photo = ?1))",
                        args,
                    ).rowcount:
                        gone.append(sha)
                self.db.execute("COMMIT")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            finally:
                self.db.execute("PRAGMA secure_delete = OFF")
            if gone:
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone

    def prune_heartbeats(self, before: float) -> int:
        """Delete heartbeats received before ``before``, except each device's newest (its
        status still says when it was last heard from). Returns how many went."""
        with self._lock:
            return int(
                self.db.execute(
                    "DELETE FROM heartbeats WHERE received < ? AND received < (SELECT "
                    "max(h.received) FROM heartbeats h WHERE h.device = heartbeats.device)",
                    (before,),
                ).rowcount
            )

    def enrolments(self) -> list[tuple[str, int, str, float]]:
        """(device, seq, compact, received) of every ``finger_enrolment`` record."""
        with self._lock:
            rows = self.db.execute(ENROLMENTS_SQL).fetchall()
        return [(d, int(s), c, float(r)) for d, s, c, r in rows]

    # --- retiring a device -----------------------------------------------------------------
    def retire(self, device: str, operator: str, reason: str, now: float) -> Retirement | None:
        """Retire ``device`` in one transaction (batches of it wait; SQLite has one writer):
        its rows in :data:`CHAIN_TABLES` move to its retired chain's name, the retirement is
        noted, and the device id is free for a new enrolment. None when it is not enrolled."""
        with self.transaction():
            if not self.db.execute("SELECT 1 FROM devices WHERE device = ?", (device,)).fetchone():
                return None  # nothing was written
            earlier = self.db.execute(
                "SELECT count(*) FROM retirements WHERE device = ?", (device,)
            ).fetchone()[0]
            last, count = self.db.execute(
                "SELECT coalesce(max(seq), 0), count(*) FROM records WHERE device = ?",
                (device,),
            ).fetchone()
            done = Retirement(f"{device}{RETIRED_MARK}{int(earlier) + 1}", device, now,
                              operator, reason, int(last), int(count))  # fmt: skip
            for table in CHAIN_TABLES:
                self.db.execute(
                    f"UPDATE {table} SET device = ? WHERE device = ?",  # noqa: S608
                    (done.chain, device),
                )
            self.db.execute(
                f"INSERT INTO retirements ({RETIREMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                tuple(done.as_dict().values()),
            )
        return done

    def retirements(self, device: str | None = None) -> list[Retirement]:
        """Retired chains, of one device id if given, newest first."""
        sql = f"SELECT {RETIREMENT_COLUMNS} FROM retirements"  # noqa: S608
        with self._lock:
            if device is None:
                rows = self.db.execute(sql + " ORDER BY at DESC, chain DESC").fetchall()
            else:
                rows = self.db.execute(
                    sql + " WHERE device = ? ORDER BY at DESC, chain DESC", (device,)
                ).fetchall()
        return retirements_of(rows)

    # --- the access log --------------------------------------------------------------------
    def log_access(self, entry: AccessEntry) -> int:
        """Append one line to the access log, chained to the one before; returns its id."""
        fields = entry.fields()
        with self.transaction():  # the chain's head is read and extended at once
            row = self.db.execute("SELECT hash FROM access_log ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else ACCESS_GENESIS
            cur = self.db.execute(
                "INSERT INTO access_log (at, operator, via, action, device, seq, target, "
                "outcome, detail, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*fields, prev, access_hash(prev, fields)),
            )
        return int(cur.lastrowid or 0)

    def access_log(
        self,
        after_id: int = 0,
        limit: int = 100,
        operator: str | None = None,
        device: str | None = None,
    ) -> list[dict[str, Any]]:
        """Access log lines after ``after_id`` in order, optionally of one operator or device."""
        sql, args = access_query("?", after_id, limit, operator, device)
        with self._lock:
            rows = self.db.execute(sql, args).fetchall()
        return access_dicts(rows)


def now() -> float:
    return time.time()
