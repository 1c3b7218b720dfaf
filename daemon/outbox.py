"""The durable outbox: every record the kiosk makes, on disk before anyone is told "done".

SQLite in WAL mode with ``synchronous=FULL``. :meth:`Outbox.append` assigns ``seq`` and
``prev``, signs and inserts in **one** ``BEGIN IMMEDIATE`` transaction, so a crash leaves
either the whole record or nothing, and two writers can never fork the chain. A record leaves
the ``pending`` state only on the server's acknowledgement (``acked``) or its explicit
rejection (``parked``, with the reason, for an engineer); it is never deleted before that.

Sealed blobs (photos) are content-addressed files under ``blobs/``, written
temp → fsync → rename → fsync(dir) before the record naming them is committed, and deleted
once the record naming them has been acknowledged.

Two processes share the file: ``kiosk.service`` appends, ``kiosk-sync.service`` reads pending
records and marks them acked or parked, and appends one kind of record itself: ``blob_lost``,
when a sealed blob can never be sent (:meth:`Outbox.record_blob_lost`). ``busy_timeout``
serialises them; :meth:`Outbox.append` is safe with two writers.

Threads: an :class:`Outbox` belongs to one thread (SQLite connections are not shared).
May import: the standard library, ``daemon.records``, ``daemon.keys``, ``daemon.clock``,
``daemon.errors``, ``daemon.diskspace``.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import __version__
from daemon.clock import Clock, rfc3339
from daemon.diskspace import ATTENDANCE_TYPES, DAY_S, Usage
from daemon.errors import DiskFull, OutboxCorrupt, StorageError
from daemon.keys import SigningKey, write_private_file
from daemon.records import (
    GENESIS,
    VERSION,
    Record,
    RecordSigner,
    decode_unverified,
    record_hash,
    uuid7,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
# The records table is append-only: one B-tree page touched per check-in, as cheap as a raw
# insert. Sync progress is derived, not stored per row: every seq <= acked_upto is resolved
# (acknowledged, or parked when it is in `parked`); everything above is pending.
_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE records (
        seq        INTEGER PRIMARY KEY,
        id         TEXT NOT NULL,
        type       TEXT NOT NULL,
        compact    TEXT NOT NULL,
        photo      TEXT,
        created_ns INTEGER NOT NULL
    );
    CREATE TABLE progress (
        one        INTEGER PRIMARY KEY CHECK (one = 1),
        acked_upto INTEGER NOT NULL
    );
    INSERT INTO progress VALUES (1, 0);
    CREATE TABLE parked (
        seq    INTEGER PRIMARY KEY,
        reason TEXT NOT NULL
    );
    CREATE TABLE blobs (
        sha256   TEXT PRIMARY KEY,
        size     INTEGER NOT NULL,
        uploaded INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 1 -> 2: the wall time a record was made, for "oldest unsent" and retention
    2: """
    ALTER TABLE records ADD COLUMN created_at REAL NOT NULL DEFAULT 0;
    """,
    # 2 -> 3: where the chain continues from when this file holds no records yet (a new
    # outbox after a damaged one was set aside: see daemon/recovery.py)
    3: """
    CREATE TABLE anchor (
        one  INTEGER PRIMARY KEY CHECK (one = 1),
        seq  INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    """,
    # 3 -> 4: the check-in under way (a person identified, their record not yet saved), so a
    # restart in the middle (a crash, a power cut, an update) still leaves a record for an
    # officer: see Outbox.mark_session and daemon/kiosk.py
    4: """
    CREATE TABLE session_open (
        one  INTEGER PRIMARY KEY CHECK (one = 1),
        body TEXT NOT NULL
    );
    """,
}

#: The oldest software (by its SCHEMA_VERSION) that can still read and append to a file after
#: each migration. An update's first boot is a trial: it migrates the shared data partition,
#: and if the trial fails the old slot runs again on the migrated file. So a migration is
#: written to be additive (new tables; new columns with defaults that older code's INSERTs
#: fill), and says here how far back it stays usable: one version back at least, so a
#: rollback keeps checking people in (docs/updates.md, "Rollback and the outbox").
#: 3: older code would not know the anchor, and would restart a recovered chain at genesis.
#: 4: older code ignores the open-session row; one left by a restart under the new code is
#: turned into its record when the new code runs again.
READABLE_BY: dict[int, int] = {1: 1, 2: 1, 3: 3, 4: 3}
_COMPAT_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_compat ("
    " one INTEGER PRIMARY KEY CHECK (one = 1), readable_by INTEGER NOT NULL)"
)

ANCHOR_HINT = "chain-anchor.json"
#: the reason of a parked record an engineer asked to send again, before its old reason
SEND_AGAIN = "send_again:"
_INSERT_RECORD = (
    "INSERT INTO records(seq, id, type, compact, photo, created_ns, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

_USAGE = (
    "SELECT count(*), coalesce(sum(length(compact)), 0), count(CASE WHEN type IN "
    "(SELECT value FROM json_each(?)) THEN 1 END), count(photo) FROM records "
    "WHERE created_at >= ?"
)
_ATTENDANCE_JSON = json.dumps(ATTENDANCE_TYPES)


@dataclass(frozen=True, slots=True)
class Pending:
    seq: int
    id: str
    compact: str
    photo: str | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    parked: int
    acked: int
    last_seq: int
    oldest_unsent_s: float | None
    blobs_pending: int


@dataclass(frozen=True, slots=True)
class Recovery:
    """What happened to an outbox whose records were lost or damaged, as its ``fault``
    record tells it (daemon/recovery.py)."""

    set_aside: str  # "" when there was no file to set aside (outbox_missing)
    salvaged: int
    salvaged_pending: int
    continued_from: int

    @property
    def event(self) -> str:
        return "outbox_recovered" if self.set_aside else "outbox_missing"

    def detail(self) -> dict[str, object]:
        return {
            "event": self.event,
            "set_aside": self.set_aside,
            "salvaged": self.salvaged,
            "salvaged_pending": self.salvaged_pending,
            "continued_from_seq": self.continued_from,
        }


def read_anchor_hint(data_dir: Path) -> tuple[int, str] | None:
    """(seq, hash) from ``chain-anchor.json``, or None when there is none or it is unreadable."""
    try:
        hint = json.loads((data_dir / ANCHOR_HINT).read_text())
        seq, hash_ = int(hint["seq"]), str(hint["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (seq, hash_) if seq > 0 and hash_ else None


def _write_failed(exc: sqlite3.OperationalError) -> StorageError:
    """The error a failed write becomes: DiskFull when the disk is full (nothing queued was
    harmed: SQLite rolled the transaction back), StorageError otherwise."""
    if "full" in str(exc).lower():
        return DiskFull(
            "the kiosk's data disk is full; this was not saved and nothing queued was "
            "harmed. Staff: note the attendance by hand and call the field engineer."
        )
    return StorageError(f"the outbox could not save ({exc})")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Outbox:
    """The device's queue of signed records. See the module docstring.

    ``min_free_bytes``: below this much free space on the data directory's file system,
    :meth:`append` raises :class:`DiskFull` before touching anything.
    """

    FILE = "outbox.sqlite3"

    def __init__(
        self,
        data_dir: Path,
        *,
        device: str,
        key: SigningKey | None,
        clock: Clock,
        min_free_bytes: int = 64 * 1024 * 1024,
        app_version: str = __version__,
        busy_timeout_ms: int = 10_000,
        continue_lost_chain: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.path = data_dir / self.FILE
        self.blob_dir = data_dir / "blobs"
        self.device = device
        self._key = key
        self._clock = clock
        self._min_free = min_free_bytes
        self._app = app_version
        self._busy_ms = busy_timeout_ms
        self._db: sqlite3.Connection | None = None
        self._append_cursor: sqlite3.Cursor | None = None
        self._free_est = 0
        self._head_cache: tuple[int, str] | None = None
        self._free_at = -1.0
        self._signer = None if key is None else RecordSigner(key, device)
        #: (the file's schema version, this software's) once open
        self.schema: tuple[int, int] = (0, SCHEMA_VERSION)
        #: the seq this open continued the chain after, its records having been lost
        self.continued_after: int | None = None
        self._continue_lost = continue_lost_chain

    # --- lifecycle ------------------------------------------------------------------------
    def open(self) -> Outbox:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blob_dir.mkdir(exist_ok=True)
        created = not self.path.exists()
        deadline = time.monotonic() + self._busy_ms / 1000
        while True:
            try:
                ok = self._connect(created)
                break
            except sqlite3.OperationalError as exc:
                # another process (the sync daemon starting at the same moment) holds a lock:
                # that is contention, never corruption
                self.close()
                if "locked" in str(exc) or "busy" in str(exc):
                    if time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
                    raise StorageError(
                        f"the outbox database {self.path} stayed locked by another process; "
                        "check that only one kiosk.service runs"
                    ) from exc
                raise StorageError(
                    f"the outbox database {self.path} cannot be opened ({exc})"
                ) from exc
            except sqlite3.DatabaseError as exc:
                self.close()
                raise OutboxCorrupt(
                    f"the outbox database {self.path} is damaged ({exc}); run `kioskctl doctor`"
                ) from exc
        if ok != "ok":
            self.close()
            raise OutboxCorrupt(f"the outbox database failed its integrity check: {ok}")
        return self

    def _connect(self, created: bool) -> str:
        """Open, set WAL + FULL, migrate, quick_check; returns the check's verdict."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
        self._db = db
        self._append_cursor = db.cursor()  # reused: no cursor object per check-in
        db.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StorageError(f"the outbox could not switch to WAL mode (got {mode})")
        db.execute("PRAGMA synchronous = FULL")
        self._migrate()
        if self._continue_lost:
            self._continue_lost_chain()
        if created:  # make the new file's name durable, not only its content
            _fsync_dir(self.data_dir)
            _fsync_dir(self.blob_dir)
        return str(db.execute("PRAGMA quick_check").fetchone()[0])

    def _continue_lost_chain(self) -> None:
        """An outbox with no records and no anchor, beside a ``chain-anchor.json`` that says
        the chain had reached seq N, lost its records (deleted, emptied, an old copy): every
        writer continues after N, whoever opens it first (kiosk.service, kiosk-sync, kioskctl),
        so none can start a fork at seq 1, and the first that can sign records the loss in a
        ``fault`` record (``outbox_missing``). One that cannot leaves :meth:`lost_records`
        saying so for the next (daemon/recovery.py)."""
        db = self.db
        if db.execute("SELECT 1 FROM records UNION ALL SELECT 1 FROM anchor LIMIT 1").fetchone():
            return
        hint = read_anchor_hint(self.data_dir)
        if hint is None:
            return  # a new kiosk: the chain starts at the genesis
        log.error(
            "the outbox is missing or empty but the chain had reached seq %d; continuing the "
            "chain from there (the records after it that were on this kiosk are lost)",
            hint[0],
        )
        self.set_anchor(*hint)
        self.continued_after = hint[0]
        self.record_lost_records()

    def record_lost_records(self) -> None:
        """With a signing key, the ``fault`` record of a lost outbox continued after an
        anchor, if it is not yet recorded (:meth:`lost_records`)."""
        after = self.lost_records()
        if after is None or self._key is None:
            return
        lost = Recovery(set_aside="", salvaged=0, salvaged_pending=0, continued_from=after)
        self.append("fault", {"flags": ["fault"], "detail": lost.detail()})

    def lost_records(self) -> int | None:
        """The seq the chain was continued after when this outbox holds no records but an
        anchor (a lost outbox continued, or a damaged one with nothing salvaged, whose loss
        is not yet recorded); None otherwise."""
        row = self.db.execute(
            "SELECT seq FROM anchor WHERE NOT EXISTS (SELECT 1 FROM records)"
        ).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            self._append_cursor = None

    def __enter__(self) -> Outbox:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def app_version(self) -> str:
        return self._app

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError("the outbox is not open (call open() first)")
        return self._db

    def _migrate(self) -> None:
        db = self.db
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:  # not damage: never set it aside
            readable_by = self._readable_by()
            if readable_by is None or readable_by > SCHEMA_VERSION:
                raise StorageError(
                    f"the outbox schema is version {version}, made by newer kiosk software "
                    f"that this version (schema {SCHEMA_VERSION}) cannot use safely; nothing "
                    "was changed. Install the newer kiosk software again (kioskctl update).",
                    reason="outbox_newer",
                )
            # an update migrated the file and was then rolled back: carry on, as promised
            log.warning(
                "outbox schema %d is newer than this software's %d and declared usable by it: "
                "continuing (an update was rolled back?)",
                version,
                SCHEMA_VERSION,
            )
            self.schema = (version, SCHEMA_VERSION)
            return
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._write():
                # another process may have migrated while we waited for the write lock
                if int(db.execute("PRAGMA user_version").fetchone()[0]) >= target:
                    continue
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(_COMPAT_TABLE)
                db.execute(
                    "INSERT OR REPLACE INTO schema_compat VALUES (1, ?)",
                    (max(READABLE_BY[t] for t in range(1, target + 1)),),
                )
                db.execute(f"PRAGMA user_version = {target}")
            log.info("outbox schema migrated to version %d", target)
        self.schema = (max(version, SCHEMA_VERSION), SCHEMA_VERSION)

    def _readable_by(self) -> int | None:
        """The oldest schema version whose software can use this file, or None when the file
        does not say (then only its own version can)."""
        try:
            row = self.db.execute("SELECT readable_by FROM schema_compat").fetchone()
        except sqlite3.OperationalError:  # no such table: made before the rule existed
            return None
        return None if row is None else int(row[0])

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A full disk at any step (including COMMIT) rolls back and
        raises :class:`DiskFull`; the database is left as it was before the transaction."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise _write_failed(exc) from exc

    # --- writing --------------------------------------------------------------------------
    def _check_space(self, extra: int = 0) -> None:
        """Raise DiskFull below the reserve. ``statvfs`` is asked at most every 0.5 s; in
        between, the bytes this outbox wrote are subtracted (records are ~1 KB, the reserve is
        tens of MB, so the estimate cannot run past it)."""
        now = time.monotonic()
        if now - self._free_at > 0.5 or self._free_est - extra < self._min_free * 2:
            st = os.statvfs(self.data_dir)
            self._free_est = st.f_bavail * st.f_frsize
            self._free_at = now
        free = self._free_est
        self._free_est -= extra + 4096
        if free - extra < self._min_free:
            raise DiskFull(
                f"only {free // (1024 * 1024)} MB free on the kiosk's data disk; new check-ins "
                "are paused so nothing queued is harmed. Staff: reconnect the network so the "
                "queue can drain, or call the field engineer.",
            )

    def free_bytes(self) -> int:
        """Free bytes on the data directory's file system as the reserve check sees them: the
        same reading :meth:`append` uses (``statvfs`` at most every 0.5 s, less what this
        outbox wrote since), so asking costs no extra system call on the check-in path.
        Raises StorageError when the data directory cannot be read."""
        now = time.monotonic()
        if now - self._free_at > 0.5:
            try:
                st = os.statvfs(self.data_dir)
            except OSError as exc:
                raise StorageError(
                    f"cannot read the free space of {self.data_dir} ({exc.strerror})"
                ) from exc
            self._free_est = st.f_bavail * st.f_frsize
            self._free_at = now
        return self._free_est

    def _write_blob_file(self, data: bytes) -> str:
        """Write a sealed blob file durably (temp, fsync, rename, fsync dir); return its hash."""
        sha = hashlib.sha256(data).hexdigest()
        final = self.blob_dir / sha
        if final.exists():
            return sha
        tmp = self.blob_dir / f".{sha}.tmp{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
            _fsync_dir(self.blob_dir)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise DiskFull(
                "could not store the photo on the kiosk's data disk. Staff: call the field "
                "engineer; check-ins continue without photos."
            ) from exc
        return sha

    def sweep_orphans(self) -> int:
        """Delete blob files no record names (a crash between writing a photo and committing
        its record: that check-in was never confirmed) and stale temp files. Call at start-up,
        before check-ins begin. Returns how many files went."""
        known = {row[0] for row in self.db.execute("SELECT sha256 FROM blobs")}
        gone = 0
        for path in self.blob_dir.iterdir():
            if path.name not in known:
                path.unlink(missing_ok=True)
                gone += 1
        return gone

    def append(
        self,
        type_: str,
        fields: Mapping[str, Any] | None = None,
        *,
        blob: bytes | None = None,
        blob_field: str = "photo",
        end_session: bool = False,
    ) -> Record:
        """Make, sign and durably queue one record; return it once committed.

        ``fields`` adds ``person``, ``verify``, ``answers``, ``flags``, ``detail``. ``blob`` is a
        sealed photo: its file is made durable first, then its row and the record (whose
        ``photo`` names its hash) commit in the same transaction. ``end_session``: this is
        the record of the check-in :meth:`mark_session` marked; the mark goes in the same
        transaction, so a restart finds exactly one of the two.

        Concurrency: optimistic. The record is signed against the cached chain head and
        inserted in a single statement (one implicit transaction, one fsync); records are
        append-only and ``seq`` is the primary key, so if another writer took that ``seq`` the
        insert fails, the head is re-read and the record re-signed. The chain cannot fork.
        Raises :class:`DiskFull` (nothing queued) or :class:`StorageError`.
        """
        signer = self._signer
        if signer is None:
            raise StorageError("this outbox was opened read-only (no signing key)")
        cursor = self._append_cursor
        if cursor is None:
            raise StorageError("the outbox is not open (call open() first)")
        self._check_space(len(blob) if blob else 0)
        fields = {k: v for k, v in fields.items() if v is not None} if fields else {}
        if blob is not None:  # a sealed photo, or sealed enrolment templates ("templates")
            fields[blob_field] = self._write_blob_file(blob)
        photo = fields.get(blob_field if blob is not None else "photo")  # the blob it names
        clock = self._clock
        now = clock.wall()
        mono_ns = clock.monotonic_ns()
        payload: dict[str, Any] = {
            **fields,
            "v": VERSION,
            "id": uuid7(int(now * 1000)),
            "device": self.device,
            "type": type_,
            "at": rfc3339(now),
            "clock": {"synced": clock.synced(), "boot_id": clock.boot_id(), "mono_ns": mono_ns},
            "flags": list(fields.get("flags", ())),
            "app": self._app,
        }
        for _attempt in range(100):
            head_seq, head_hash = self._head_cache or self.head()
            payload["seq"] = seq = head_seq + 1
            payload["prev"] = head_hash
            compact, chain_hash = signer.sign(payload)
            row = (seq, payload["id"], type_, compact, photo, mono_ns, now)
            try:
                if blob is None and not end_session:  # one INSERT in autocommit mode: its
                    cursor.execute(_INSERT_RECORD, row)  # own committed transaction
                else:
                    with self._write() as db:
                        db.execute(_INSERT_RECORD, row)
                        if blob is not None:
                            db.execute(
                                "INSERT OR IGNORE INTO blobs(sha256, size) VALUES (?, ?)",
                                (photo, len(blob)),
                            )
                        if end_session:
                            db.execute("DELETE FROM session_open")
            except sqlite3.IntegrityError:
                self._head_cache = None  # another writer took this seq: re-read, re-sign
                continue
            except sqlite3.OperationalError as exc:  # the autocommit INSERT failed
                self._head_cache = None
                raise _write_failed(exc) from exc
            except StorageError:
                self._head_cache = None
                raise
            self._head_cache = (seq, chain_hash)
            return Record(compact, {}, payload)
        raise StorageError("could not append: the chain head kept moving (another writer?)")

    # --- the check-in under way ------------------------------------------------------------
    def mark_session(self, body: Mapping[str, Any]) -> None:
        """Durably note the check-in under way (a person identified, no record yet): what its
        record would say if the kiosk restarted before saving it. One row, replaced; cleared
        by the check-in's own record (``append(end_session=True)``) or
        :meth:`clear_session`. No biometric data: who, how they were verified, when."""
        text = json.dumps(dict(body), separators=(",", ":"), sort_keys=True)
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO session_open(one, body) VALUES (1, ?)", (text,))

    def clear_session(self) -> None:
        """The check-in under way ended without a record of its own (the person cancelled or
        walked away, or another record covers it)."""
        with self._write() as db:
            db.execute("DELETE FROM session_open")

    def open_session(self) -> dict[str, Any] | None:
        """The check-in a restart interrupted (what :meth:`mark_session` noted), or None."""
        row = self.db.execute("SELECT body FROM session_open").fetchone()
        if row is None:
            return None
        body = json.loads(row[0])  # written by mark_session, in the same file as the records
        return body if isinstance(body, dict) else None

    # --- sync side ------------------------------------------------------------------------
    def _acked_upto(self) -> int:
        return int(self.db.execute("SELECT acked_upto FROM progress").fetchone()[0])

    def pending(self, limit: int = 500) -> list[Pending]:
        """The oldest records not yet resolved by the server, in seq order."""
        rows = self.db.execute(
            "SELECT seq, id, compact, photo FROM records WHERE seq > "
            "(SELECT acked_upto FROM progress) ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [Pending(*row) for row in rows]

    def blob_path(self, sha: str) -> Path:
        return self.blob_dir / sha

    def blob_uploaded(self, sha: str) -> bool:
        row = self.db.execute("SELECT uploaded FROM blobs WHERE sha256 = ?", (sha,)).fetchone()
        return row is None or bool(row[0])

    def mark_blob_uploaded(self, sha: str) -> None:
        """The API has the sealed photo. When every record naming it is already resolved (a
        photo uploaded after its record, see daemon/sync.py), the file goes now rather than
        with the next acknowledged batch."""
        with self._write() as db:
            db.execute("UPDATE blobs SET uploaded = 1 WHERE sha256 = ?", (sha,))
            needed = db.execute(
                "SELECT 1 FROM records WHERE photo = ? AND seq > "
                "(SELECT acked_upto FROM progress) LIMIT 1",
                (sha,),
            ).fetchone()
            if needed is None:
                db.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))
        if needed is None:
            with contextlib.suppress(FileNotFoundError):
                (self.blob_dir / sha).unlink()

    def blobs_not_uploaded(self) -> list[str]:
        """Sealed photos the API does not have yet, oldest first."""
        rows = self.db.execute("SELECT sha256 FROM blobs WHERE uploaded = 0 ORDER BY rowid")
        return [row[0] for row in rows]

    def record_blob_lost(self, sha: str, reason: str) -> int:
        """A sealed blob (a photo, or an enrolment's templates) can never be sent: its file
        no longer hashes to its name (``reason`` ``damaged``: the card rotted it) or is gone
        (``missing``). Append a signed ``blob_lost`` record saying so — the person of the
        record naming it, flag ``photo_lost`` or ``templates_lost``, ``detail`` with the blob's
        hash, its kind, the reason and the seqs of the records naming it — so the central
        system makes it a task for an officer; then forget the blob. The records naming it go
        up without it. A second call for the same blob (a crash between the two steps) appends
        nothing new. Returns the ``blob_lost`` record's seq.

        The sync process calls this, so it is a second writer beside kiosk.service: append
        is safe for that (see :meth:`append`). Raises StorageError (opened without a key,
        DiskFull): then nothing is forgotten and the blob stays waiting."""
        seq = self._blob_lost_seq(sha)
        if seq is None:
            person: str | None = None
            kind, of = "photo", []
            for row_seq, compact in self.db.execute(
                "SELECT seq, compact FROM records WHERE photo = ? ORDER BY seq", (sha,)
            ):
                payload = decode_unverified(compact)[1]
                of.append(int(row_seq))
                if payload.get("templates") == sha:
                    kind = "templates"
                person = person or payload.get("person")
            detail = {"blob": sha, "kind": kind, "reason": reason, "seqs": of}
            fields = {"person": person, "flags": [f"{kind}_lost"], "detail": detail}
            seq = self.append("blob_lost", fields).seq
        self.forget_blob(sha)
        return seq

    def _blob_lost_seq(self, sha: str) -> int | None:
        """The seq of a ``blob_lost`` record already naming ``sha``, if one is held."""
        for seq, compact in self.db.execute(
            "SELECT seq, compact FROM records WHERE type = 'blob_lost' ORDER BY seq"
        ):
            detail = decode_unverified(compact)[1].get("detail") or {}
            if isinstance(detail, dict) and detail.get("blob") == sha:
                return int(seq)
        return None

    def forget_blob(self, sha: str) -> None:
        """Drop a blob's row and file (one that can never be sent: :meth:`record_blob_lost`)."""
        with self._write() as db:
            db.execute("DELETE FROM blobs WHERE sha256 = ?", (sha,))
        with contextlib.suppress(FileNotFoundError):
            (self.blob_dir / sha).unlink()

    def resolve(self, upto_seq: int, parked: Mapping[int, str] | None = None) -> None:
        """The server has answered for every pending record up to ``upto_seq``: those in
        ``parked`` were rejected (kept with the reason, never retried), the rest acknowledged
        durably and retired. Blobs no longer needed are deleted after the commit."""
        parked = dict(parked or {})
        with self._write() as db:
            current = int(db.execute("SELECT acked_upto FROM progress").fetchone()[0])
            if upto_seq <= current:
                return
            db.executemany(
                "INSERT OR IGNORE INTO parked(seq, reason) VALUES (?, ?)",
                [(s, r) for s, r in parked.items() if current < s <= upto_seq],
            )
            db.execute("UPDATE progress SET acked_upto = ?", (upto_seq,))
            done = db.execute(
                "SELECT b.sha256 FROM blobs b WHERE b.uploaded = 1 AND NOT EXISTS ("
                "SELECT 1 FROM records r WHERE r.photo = b.sha256 AND r.seq > ?)",
                (upto_seq,),
            ).fetchall()
            db.executemany("DELETE FROM blobs WHERE sha256 = ?", done)
        for seq, reason in parked.items():
            log.warning("record seq %d parked: %s", seq, reason)
        for (sha,) in done:
            with contextlib.suppress(FileNotFoundError):
                (self.blob_dir / sha).unlink()

    def retired_in(
        self, ranges: Sequence[tuple[int, int]], *, after: int = 0, limit: int = 500
    ) -> list[Pending]:
        """Acknowledged records still held (not parked) whose seq is in one of ``ranges``
        (inclusive) and above ``after``, oldest first, at most ``limit``: the ones to send
        again when the server reports them missing after acknowledging them (daemon/sync.py).
        Ranges may overlap, be many, or run past the records held; each record comes once."""
        spans = sorted((max(a, after + 1), b) for a, b in ranges if b > after)
        if not spans:
            return []
        starts = [a for a, _b in spans]
        reach = list(itertools.accumulate((b for _a, b in spans), max))
        seqs: list[int] = []
        for (seq,) in self.db.execute(
            "SELECT seq FROM records WHERE seq >= ? AND seq <= (SELECT acked_upto FROM progress) "
            "AND seq NOT IN (SELECT seq FROM parked) ORDER BY seq",
            (spans[0][0],),
        ):
            i = bisect.bisect_right(starts, seq) - 1  # the spans starting at or before it...
            if i >= 0 and reach[i] >= seq:  # ...reach it: it is in one of them
                seqs.append(seq)
                if len(seqs) >= limit:
                    break
        return [
            Pending(*row)
            for seq in seqs
            for row in self.db.execute(
                "SELECT seq, id, compact, photo FROM records WHERE seq = ?", (seq,)
            )
        ]

    def park_retired(self, parked: Mapping[int, str]) -> None:
        """Park records already retired: the server acknowledged them, later reported them
        missing, and rejects them when they are sent again. Kept with the reason (and so never
        pruned) for an engineer, as any rejected record."""
        with self._write() as db:
            db.executemany(
                "INSERT OR IGNORE INTO parked(seq, reason) SELECT ?, ? "
                "WHERE ? <= (SELECT acked_upto FROM progress)",
                [(seq, reason, seq) for seq, reason in parked.items()],
            )
        for seq, reason in parked.items():
            log.warning("record seq %d parked after it was sent again: %s", seq, reason)

    def ask_again(
        self, seqs: Iterable[int] | None = None, *, reason: str | None = None
    ) -> list[int]:
        """An engineer asks for parked records to be sent again (the API's fault is fixed: a
        key mix-up, a bad deployment), all of them, or those in ``seqs``, or those parked for
        ``reason``. They stay parked (kept, never pruned) with the reason
        ``send_again:<reason>`` until kiosk-sync sends them (:meth:`asked_again`): taken,
        they are unparked; rejected again, parked with the new reason. Returns their seqs."""
        wanted = None if seqs is None else set(seqs)
        chosen = [
            (seq, old)
            for seq, _type, old in self.parked()
            if not old.startswith(SEND_AGAIN)
            and (wanted is None or seq in wanted)
            and (reason is None or old == reason)
        ]
        with self._write() as db:
            db.executemany(
                "UPDATE parked SET reason = ? WHERE seq = ?",
                [(SEND_AGAIN + old, seq) for seq, old in chosen],
            )
        for seq, old in chosen:
            log.warning("record seq %d (parked: %s) is to be sent again", seq, old)
        return [seq for seq, _old in chosen]

    def asked_again(self, *, after: int = 0, limit: int = 500) -> list[Pending]:
        """The parked records an engineer asked to send again (:meth:`ask_again`) above
        ``after``, oldest first, at most ``limit``."""
        return [
            Pending(*row)
            for row in self.db.execute(
                "SELECT r.seq, r.id, r.compact, r.photo FROM parked p JOIN records r USING (seq) "
                "WHERE p.seq > ? AND substr(p.reason, 1, ?) = ? ORDER BY p.seq LIMIT ?",
                (after, len(SEND_AGAIN), SEND_AGAIN, limit),
            )
        ]

    def sent_again(self, taken: Iterable[int], rejected: Mapping[int, str]) -> None:
        """The answer for records sent again on an engineer's request: ``taken`` ones (accepted
        or already held) are no longer parked; ``rejected`` ones stay parked with the new
        reason."""
        with self._write() as db:
            db.executemany(
                "DELETE FROM parked WHERE seq = ? AND substr(reason, 1, ?) = ?",
                [(seq, len(SEND_AGAIN), SEND_AGAIN) for seq in taken],
            )
            db.executemany(
                "UPDATE parked SET reason = ? WHERE seq = ?",
                [(reason, seq) for seq, reason in rejected.items()],
            )
        for seq, reason in rejected.items():
            log.warning("record seq %d parked again after it was sent again: %s", seq, reason)

    def prune_acked(self, older_than_s: float) -> int:
        """Forget acknowledged records older than ``older_than_s`` (bounded retention of
        personal data). Parked records and the newest record (the chain head) are kept."""
        cutoff = self._clock.wall() - older_than_s
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM records WHERE seq <= (SELECT acked_upto FROM progress) "
                "AND created_at < ? AND seq NOT IN (SELECT seq FROM parked) "
                "AND seq < (SELECT max(seq) FROM records)",
                (cutoff,),
            )
        return cur.rowcount

    # --- inspection -----------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        db = self.db
        upto = self._acked_upto()
        depth, oldest = db.execute(
            "SELECT count(*), min(created_at) FROM records WHERE seq > ?", (upto,)
        ).fetchone()
        parked = db.execute("SELECT count(*) FROM parked").fetchone()[0]
        acked = db.execute("SELECT count(*) FROM records WHERE seq <= ?", (upto,)).fetchone()[0]
        blobs = db.execute("SELECT count(*) FROM blobs WHERE uploaded = 0").fetchone()[0]
        return OutboxStats(
            depth=depth,
            parked=parked,
            acked=acked - parked,
            last_seq=self.head()[0],
            oldest_unsent_s=None if oldest is None else max(0.0, self._clock.wall() - oldest),
            blobs_pending=blobs,
        )

    def usage(self, days: float = 7.0, *, assumed_photo: int = 250_000) -> Usage:
        """What was written over the last ``days`` (less when the outbox is younger, at least
        one day): records, their bytes, check-ins, photos. The photo size is the average of
        the sealed photos still held (all of them while offline), else ``assumed_photo``
        bytes (a 1280x960 JPEG). For ``kioskctl doctor``'s headroom estimate; not for the
        check-in path (it reads every recent row)."""
        now = self._clock.wall()
        since = now - days * DAY_S
        records, record_bytes, checkins, photos = self.db.execute(
            _USAGE, (_ATTENDANCE_JSON, since)
        ).fetchone()
        oldest = self.db.execute("SELECT min(created_at) FROM records").fetchone()[0]
        span_s = days * DAY_S if oldest is None else min(days * DAY_S, now - float(oldest))
        size = self.db.execute("SELECT avg(size) FROM blobs WHERE size > 0").fetchone()[0]
        return Usage(
            days=max(1.0, span_s / DAY_S),
            records=int(records),
            record_bytes=int(record_bytes),
            checkins=int(checkins),
            photos=int(photos),
            photo_size=float(size) if size is not None else float(assumed_photo),
        )

    def parked_reasons(self) -> dict[str, int]:
        """How many records are parked for each reason (for the heartbeat; no personal data)."""
        rows = self.db.execute(
            "SELECT reason, count(*) FROM parked GROUP BY reason ORDER BY reason"
        )
        return {str(reason): int(n) for reason, n in rows}

    def parked(self) -> list[tuple[int, str, str]]:
        """(seq, type, reason) of every parked record."""
        return [
            (s, t, r)
            for s, t, r in self.db.execute(
                "SELECT p.seq, r.type, p.reason FROM parked p JOIN records r USING (seq) "
                "ORDER BY p.seq"
            )
        ]

    def all_compact(self) -> Iterator[tuple[int, str, str]]:
        """(seq, state, compact JWS) of every record still held, in seq order; state is
        ``pending``, ``acked`` or ``parked``."""
        upto = self._acked_upto()
        parked = {row[0] for row in self.db.execute("SELECT seq FROM parked")}
        for seq, compact in self.db.execute("SELECT seq, compact FROM records ORDER BY seq"):
            state = "parked" if seq in parked else "acked" if seq <= upto else "pending"
            yield seq, state, compact

    @staticmethod
    def _head(db: sqlite3.Connection) -> tuple[int, str]:
        row = db.execute("SELECT seq, compact FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            return int(row[0]), record_hash(row[1])
        anchor = db.execute("SELECT seq, hash FROM anchor").fetchone()
        if anchor is not None:
            return int(anchor[0]), str(anchor[1])
        return 0, GENESIS

    def set_anchor(self, seq: int, hash_: str) -> None:
        """Continue the chain after ``seq`` (whose record hashes to ``hash_``) in an empty
        outbox; records up to ``seq`` count as resolved here (they live elsewhere)."""
        with self._write() as db:
            if db.execute("SELECT count(*) FROM records").fetchone()[0]:
                raise StorageError("an anchor can only be set in an empty outbox")
            db.execute("INSERT OR REPLACE INTO anchor VALUES (1, ?, ?)", (seq, hash_))
            db.execute("UPDATE progress SET acked_upto = ?", (seq,))
        self._head_cache = None

    def import_verified(self, compacts: Sequence[str], pending_from: int) -> None:
        """Copy already-signed records (salvaged and verified by the caller) into an empty or
        anchored outbox, in order; those with ``seq >= pending_from`` stay pending.

        The blob a record names (photo or templates) waits to be sent when the record is
        pending (a missing file is then a lost blob: daemon/sync.py) or when its file is
        still here; an acknowledged record's blob without a file went up long ago."""
        with self._write() as db:
            for compact in compacts:
                _h, payload, _si, _sig = decode_unverified(compact)
                blob = payload.get("photo") or payload.get("templates")
                db.execute(
                    _INSERT_RECORD,
                    (
                        payload["seq"],
                        payload["id"],
                        payload["type"],
                        compact,
                        blob,
                        payload["clock"]["mono_ns"],
                        self._clock.wall(),
                    ),
                )
                if blob and (payload["seq"] >= pending_from or (self.blob_dir / blob).exists()):
                    db.execute(
                        "INSERT OR IGNORE INTO blobs(sha256, size, uploaded) VALUES (?, 0, 0)",
                        (blob,),
                    )
            db.execute("UPDATE progress SET acked_upto = max(acked_upto, ?)", (pending_from - 1,))
        self._head_cache = None

    def write_anchor_hint(self) -> None:
        """Remember the newest resolved record (seq, hash) in ``chain-anchor.json`` beside
        the database, so a new outbox can continue the chain if this file is ever damaged
        beyond salvage. Called by the sync process after each batch, not on the hot path."""
        upto = self._acked_upto()
        row = self.db.execute("SELECT compact FROM records WHERE seq = ?", (upto,)).fetchone()
        if row is None:
            return
        hint = json.dumps({"seq": upto, "hash": record_hash(row[0])}).encode()
        write_private_file(self.data_dir / ANCHOR_HINT, hint)

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest record: the chain head."""
        return self._head(self.db)
