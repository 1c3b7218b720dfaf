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
records and marks them acked or parked. ``busy_timeout`` serialises them.

Threads: an :class:`Outbox` belongs to one thread (SQLite connections are not shared).
May import: the standard library, ``daemon.records``, ``daemon.keys``, ``daemon.clock``,
``daemon.errors``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon import __version__
from daemon.clock import Clock, rfc3339
from daemon.errors import DiskFull, OutboxCorrupt, StorageError
from daemon.keys import SigningKey
from daemon.records import GENESIS, VERSION, Record, record_hash, sign_record, uuid7

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_MIGRATIONS: dict[int, str] = {
    # 0 -> 1: records, the chain head, blobs
    1: """
    CREATE TABLE records (
        seq        INTEGER PRIMARY KEY,
        id         TEXT NOT NULL UNIQUE,
        type       TEXT NOT NULL,
        compact    TEXT NOT NULL,
        photo      TEXT,
        created_ns INTEGER NOT NULL,
        state      TEXT NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'acked', 'parked')),
        reason     TEXT,
        acked_at   REAL
    );
    CREATE INDEX records_state ON records(state, seq);
    CREATE TABLE head (
        one  INTEGER PRIMARY KEY CHECK (one = 1),
        seq  INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    INSERT INTO head VALUES (1, 0, '{genesis}');
    CREATE TABLE blobs (
        sha256   TEXT PRIMARY KEY,
        size     INTEGER NOT NULL,
        uploaded INTEGER NOT NULL DEFAULT 0
    );
    """.replace("{genesis}", GENESIS),
    # 1 -> 2: the wall time a record was made, for "oldest unsent" without parsing JWS
    2: """
    ALTER TABLE records ADD COLUMN created_at REAL NOT NULL DEFAULT 0;
    """,
}


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

    # --- lifecycle ------------------------------------------------------------------------
    def open(self) -> Outbox:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blob_dir.mkdir(exist_ok=True)
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            db.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StorageError(f"the outbox could not switch to WAL mode (got {mode})")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
            self._db = db
            self._migrate()
            ok = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self.close()
            raise OutboxCorrupt(
                f"the outbox database {self.path} is damaged ({exc}); run `kioskctl doctor`"
            ) from exc
        if ok != "ok":
            self.close()
            raise OutboxCorrupt(f"the outbox database failed its integrity check: {ok}")
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

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
        if version > SCHEMA_VERSION:
            raise OutboxCorrupt(
                f"the outbox schema is version {version}, newer than this software "
                f"({SCHEMA_VERSION}); install the newer kiosk software or roll back the data."
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._write():
                for statement in _MIGRATIONS[target].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {target}")
            log.info("outbox schema migrated to version %d", target)

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
            if "full" in str(exc).lower():
                raise DiskFull(
                    "the kiosk's data disk is full; this was not saved and nothing queued was "
                    "harmed. Staff: note the attendance by hand and call the field engineer."
                ) from exc
            raise StorageError(f"the outbox could not save ({exc})") from exc

    # --- writing --------------------------------------------------------------------------
    def _check_space(self, extra: int = 0) -> None:
        st = os.statvfs(self.data_dir)
        free = st.f_bavail * st.f_frsize
        if free - extra < self._min_free:
            raise DiskFull(
                f"only {free // (1024 * 1024)} MB free on the kiosk's data disk; new check-ins "
                "are paused so nothing queued is harmed. Staff: reconnect the network so the "
                "queue can drain, or call the field engineer.",
            )

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
        self, type_: str, fields: Mapping[str, Any] | None = None, *, blob: bytes | None = None
    ) -> Record:
        """Make, sign and durably queue one record; return it once committed.

        ``fields`` adds ``person``, ``verify``, ``answers``, ``flags``, ``detail``. ``blob`` is a
        sealed photo: its file is made durable first, then its row and the record (whose
        ``photo`` names its hash) commit in the same transaction.
        Raises :class:`DiskFull` (nothing queued) or :class:`StorageError`.
        """
        if self._key is None:
            raise StorageError("this outbox was opened read-only (no signing key)")
        self._check_space(len(blob) if blob else 0)
        fields = dict(fields or {})
        if blob is not None:
            fields["photo"] = self._write_blob_file(blob)
        flags = list(fields.pop("flags", []))
        clock = self._clock
        now = clock.wall()
        with self._write() as db:
            head_seq, head_hash = db.execute("SELECT seq, hash FROM head").fetchone()
            seq = head_seq + 1
            payload: dict[str, Any] = {
                "v": VERSION,
                "id": uuid7(int(now * 1000)),
                "device": self.device,
                "seq": seq,
                "prev": head_hash,
                "type": type_,
                "at": rfc3339(now),
                "clock": {
                    "synced": clock.synced(),
                    "boot_id": clock.boot_id(),
                    "mono_ns": clock.monotonic_ns(),
                },
                "flags": flags,
                "app": self._app,
                **{k: v for k, v in fields.items() if v is not None},
            }
            compact = sign_record(payload, self._key)
            db.execute(
                "INSERT INTO records(seq, id, type, compact, photo, created_ns, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    payload["id"],
                    type_,
                    compact,
                    payload.get("photo"),
                    payload["clock"]["mono_ns"],
                    now,
                ),
            )
            if blob is not None:
                db.execute(
                    "INSERT OR IGNORE INTO blobs(sha256, size) VALUES (?, ?)",
                    (payload["photo"], len(blob)),
                )
            db.execute("UPDATE head SET seq = ?, hash = ?", (seq, record_hash(compact)))
        return Record(compact=compact, header={}, payload=payload)

    # --- sync side ------------------------------------------------------------------------
    def pending(self, limit: int = 500) -> list[Pending]:
        rows = self.db.execute(
            "SELECT seq, id, compact, photo FROM records WHERE state = 'pending' "
            "ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [Pending(*row) for row in rows]

    def blob_path(self, sha: str) -> Path:
        return self.blob_dir / sha

    def blob_uploaded(self, sha: str) -> bool:
        row = self.db.execute("SELECT uploaded FROM blobs WHERE sha256 = ?", (sha,)).fetchone()
        return row is None or bool(row[0])

    def mark_blob_uploaded(self, sha: str) -> None:
        with self._write() as db:
            db.execute("UPDATE blobs SET uploaded = 1 WHERE sha256 = ?", (sha,))

    def mark_acked(self, seqs: Sequence[int]) -> None:
        """Retire records the server acknowledged durably, and drop blobs no longer needed."""
        if not seqs:
            return
        now = self._clock.wall()
        with self._write() as db:
            db.executemany(
                "UPDATE records SET state = 'acked', acked_at = ? WHERE seq = ? AND state = "
                "'pending'",
                [(now, s) for s in seqs],
            )
            done = db.execute(
                "SELECT b.sha256 FROM blobs b WHERE b.uploaded = 1 AND NOT EXISTS ("
                "SELECT 1 FROM records r WHERE r.photo = b.sha256 AND r.state != 'acked')"
            ).fetchall()
            db.executemany("DELETE FROM blobs WHERE sha256 = ?", done)
        for (sha,) in done:
            with contextlib.suppress(FileNotFoundError):
                (self.blob_dir / sha).unlink()

    def park(self, seq: int, reason: str) -> None:
        """Set a record aside that the server rejected, with its reason, for an engineer."""
        with self._write() as db:
            db.execute(
                "UPDATE records SET state = 'parked', reason = ? WHERE seq = ? AND state = "
                "'pending'",
                (reason, seq),
            )
        log.warning("record seq %d parked: %s", seq, reason)

    def prune_acked(self, older_than_s: float) -> int:
        """Forget acknowledged records older than ``older_than_s`` (bounded retention)."""
        cutoff = self._clock.wall() - older_than_s
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM records WHERE state = 'acked' AND acked_at < ?", (cutoff,)
            )
        return cur.rowcount

    # --- inspection -----------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        db = self.db
        counts = dict(db.execute("SELECT state, count(*) FROM records GROUP BY state").fetchall())
        oldest = db.execute(
            "SELECT min(created_at) FROM records WHERE state = 'pending'"
        ).fetchone()[0]
        last_seq = db.execute("SELECT seq FROM head").fetchone()[0]
        blobs = db.execute("SELECT count(*) FROM blobs WHERE uploaded = 0").fetchone()[0]
        return OutboxStats(
            depth=counts.get("pending", 0),
            parked=counts.get("parked", 0),
            acked=counts.get("acked", 0),
            last_seq=last_seq,
            oldest_unsent_s=None if oldest is None else max(0.0, self._clock.wall() - oldest),
            blobs_pending=blobs,
        )

    def parked(self) -> list[tuple[int, str, str]]:
        """(seq, type, reason) of every parked record."""
        return [
            (s, t, r)
            for s, t, r in self.db.execute(
                "SELECT seq, type, reason FROM records WHERE state = 'parked' ORDER BY seq"
            )
        ]

    def all_compact(self) -> Iterator[tuple[int, str, str]]:
        """(seq, state, compact JWS) of every record still held, in seq order."""
        yield from self.db.execute("SELECT seq, state, compact FROM records ORDER BY seq")

    def head(self) -> tuple[int, str]:
        seq, h = self.db.execute("SELECT seq, hash FROM head").fetchone()
        return int(seq), str(h)
