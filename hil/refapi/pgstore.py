"""The reference API's PostgreSQL backend: the same :class:`~hil.refapi.storage.Storage`
as SQLite, for a deployment where many kiosks report to several API processes on one database.

What changes with several API processes: a device's batch is serialised by a row lock on that
device's ``chains`` row (``SELECT ... FOR UPDATE``) held for the whole classify-and-store, so a
batch resent to another process while the first is still being stored waits, then sees it;
batches of different devices never wait for each other. Everything else is one transaction per
method. A commit returns only when PostgreSQL has made it durable (``synchronous_commit`` on,
the default), so the kiosk's record is acknowledged only once it is safe.

One connection per worker thread (psycopg 3, autocommit; transactions are explicit). The
schema is versioned in ``refapi_schema``; concurrent starts migrate once (advisory lock).

May import: the standard library, psycopg, ``hil.refapi.storage``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from hil.refapi.storage import (
    ACCESS_GENESIS,
    ALERTS_SQL,
    BLOB_HOLDS_SQL,
    CHAIN_TABLES,
    ENROLMENTS_SQL,
    RECEIPT_SQL,
    RETIRED_KEYS_SQL,
    RETIRED_MARK,
    RETIREMENT_COLUMNS,
    REVIEWS_SQL,
    TASKS_TABLE,
    AccessEntry,
    BlobHold,
    Device,
    DeviceKey,
    EnrolmentRefused,
    Retirement,
    StoredRecord,
    StoreUnavailable,
    access_dicts,
    access_hash,
    access_query,
    advance_chain,
    alert_dicts,
    blob_holds,
    code_hash,
    is_retired_key,
    receipt_dicts,
    record_dicts,
    record_row,
    removed_dict,
    retirements_of,
    review_dict,
    review_map,
    task_outcome_dict,
    task_outcome_map,
)

SCHEMA = """
CREATE TABLE devices (
    device     TEXT PRIMARY KEY,
    alg        TEXT NOT NULL,
    public_pem TEXT NOT NULL,
    enrolled   DOUBLE PRECISION NOT NULL,
    roster_pub TEXT NOT NULL DEFAULT ''
);
CREATE TABLE device_keys (
    device     TEXT NOT NULL,
    from_seq   BIGINT NOT NULL,
    alg        TEXT NOT NULL,
    public_pem TEXT NOT NULL,
    since      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device, from_seq)
);
CREATE TABLE codes (
    code_hash TEXT PRIMARY KEY,
    expires   DOUBLE PRECISION NOT NULL,
    used_by   TEXT
);
CREATE TABLE records (
    device   TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    id       TEXT NOT NULL UNIQUE,
    type     TEXT NOT NULL,
    hash     TEXT NOT NULL,
    prev     TEXT NOT NULL,
    flags    TEXT NOT NULL,
    photo    TEXT,
    compact  TEXT NOT NULL,
    received DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (device, seq)
);
CREATE INDEX records_alerts ON records (received DESC)
    WHERE type IN ('tamper', 'fault', 'see_officer', 'checkin_fallback', 'staff_override')
       OR flags <> '[]';
CREATE TABLE forks (
    device   TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    compact  TEXT NOT NULL,
    reason   TEXT NOT NULL,
    received DOUBLE PRECISION NOT NULL
);
CREATE TABLE idempotency (
    device    TEXT NOT NULL,
    key       TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    answer    TEXT NOT NULL,
    PRIMARY KEY (device, key)
);
CREATE TABLE blobs (
    sha256   TEXT PRIMARY KEY,
    device   TEXT NOT NULL,
    data     BYTEA NOT NULL,
    received DOUBLE PRECISION NOT NULL
);
CREATE TABLE rosters (
    device TEXT PRIMARY KEY,
    etag   TEXT NOT NULL,
    body   BYTEA NOT NULL
);
CREATE TABLE chains (
    device TEXT PRIMARY KEY,
    upto   BIGINT NOT NULL
);
CREATE TABLE heartbeats (
    device   TEXT NOT NULL,
    received DOUBLE PRECISION NOT NULL,
    body     TEXT NOT NULL
);
CREATE INDEX heartbeats_device ON heartbeats (device, received DESC);
"""
_MIGRATIONS: dict[int, str | tuple[str, ...]] = {
    1: SCHEMA,
    # 1 -> 2: an officer's decision on a record sent for identity review (one per record)
    2: """
    CREATE TABLE reviews (
        device   TEXT NOT NULL,
        seq      BIGINT NOT NULL,
        outcome  TEXT NOT NULL,
        reviewer TEXT NOT NULL,
        at       DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (device, seq)
    );
    """,
    # 2 -> 3: retention (SQLite schema 4 has the same; docs/privacy.md)
    3: (
        """CREATE TABLE removed_blobs (
            sha256   TEXT PRIMARY KEY,
            device   TEXT NOT NULL,
            kind     TEXT NOT NULL,
            reason   TEXT NOT NULL,
            received DOUBLE PRECISION NOT NULL,
            removed  DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX records_photo ON records (photo) WHERE photo IS NOT NULL",
        "CREATE INDEX records_enrolment ON records (device, seq) WHERE type = 'finger_enrolment'",
    ),
    # 3 -> 4: the access log (DPA 2018 s.62; SQLite schema 5), append-only by trigger and
    # hash-chained. Statement by statement: the trigger function's body holds a ";".
    4: (
        """CREATE TABLE access_log (
            id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at       DOUBLE PRECISION NOT NULL,
            operator TEXT NOT NULL,
            via      TEXT NOT NULL,
            action   TEXT NOT NULL,
            device   TEXT,
            seq      BIGINT,
            target   TEXT,
            outcome  TEXT NOT NULL,
            detail   TEXT NOT NULL,
            prev     TEXT NOT NULL,
            hash     TEXT NOT NULL
        )""",
        "CREATE FUNCTION access_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the access log is append-only'; END $$",
        "CREATE TRIGGER access_log_no_change BEFORE UPDATE OR DELETE ON access_log "
        "FOR EACH ROW EXECUTE FUNCTION access_log_append_only()",
        "CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only()",
    ),
    # 4 -> 5: how an officer closed a task a record made (hil/refapi/tasks.py)
    5: TASKS_TABLE,
    # 5 -> 6: retired devices (SQLite schema 7; docs/refapi.md, "Retiring a device")
    6: (
        """CREATE TABLE retirements (
            chain    TEXT PRIMARY KEY,
            device   TEXT NOT NULL,
            at       DOUBLE PRECISION NOT NULL,
            operator TEXT NOT NULL,
            reason   TEXT NOT NULL,
            last_seq BIGINT NOT NULL,
            records  BIGINT NOT NULL
        )""",
        "CREATE INDEX retirements_device ON retirements (device)",
    ),
}
SCHEMA_VERSION = max(_MIGRATIONS)
_MIGRATION_LOCK = 0x6B696F736B  # "kiosk": one migrator at a time across API processes
_ACCESS_LOG_LOCK = 0x6B696F736C  # one writer extends the access log's hash chain at a time


class PostgresStorage:
    """``dsn``: a libpq connection string or URL (``postgresql://user@host/db``). TLS and
    passwords are libpq's business (``sslmode=verify-full``, ``~/.pgpass``)."""

    def __init__(self, dsn: str, *, create: bool = True) -> None:
        """``create``: make the schema when the database has none; otherwise that is
        :class:`StoreUnavailable` (``no_database``), so a mistyped ``--database`` is never
        taken for an empty store."""
        self.dsn = dsn
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._all_lock = threading.Lock()
        try:
            self._migrate(create)
        except BaseException:
            self.close()
            raise

    # --- connections ---------------------------------------------------------------------------
    def _db(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(self.dsn, autocommit=True)
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(
                    f"cannot connect to PostgreSQL ({str(exc).strip().splitlines()[0]}); check "
                    "the --database connection string and that the server is up",
                    reason="cannot_connect",
                ) from exc
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    def _migrate(self, create: bool = True) -> None:
        db = self._db()
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            found = db.execute("SELECT to_regclass('refapi_schema')").fetchone()
            if not create and (found is None or found[0] is None):
                raise StoreUnavailable(
                    "that PostgreSQL database holds no reference API schema: check --database "
                    "(a typing mistake?), or make the schema there with `kiosk-refapi init "
                    "--database DSN`",
                    reason="no_database",
                )
            db.execute("CREATE TABLE IF NOT EXISTS refapi_schema (version INTEGER NOT NULL)")
            row = db.execute("SELECT max(version) FROM refapi_schema").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"the database has schema version {version}, newer than this reference API "
                    f"({SCHEMA_VERSION}); run the newer software or use another database",
                    reason="schema_newer",
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                script = _MIGRATIONS[target]
                statements = script.split(";") if isinstance(script, str) else script
                for statement in statements:
                    if statement.strip():
                        db.execute(statement.encode())
                db.execute("INSERT INTO refapi_schema VALUES (%s)", (target,))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything this thread does with the store inside is one transaction (the methods'
        own become savepoints of it), committed on the way out, rolled back on an exception.
        Row locks taken inside (``batch_lock``) are held until it ends."""
        with self._db().transaction():
            yield

    @contextlib.contextmanager
    def batch_lock(self, device: str) -> Iterator[None]:
        """One transaction for the whole batch of ``device``, holding its ``chains`` row lock:
        the methods called inside run in it (nested transactions become savepoints); it
        commits on the way out."""
        db = self._db()
        with db.transaction():
            db.execute(
                "INSERT INTO chains VALUES (%s, 0) ON CONFLICT (device) DO NOTHING", (device,)
            )
            db.execute("SELECT upto FROM chains WHERE device = %s FOR UPDATE", (device,))
            yield

    # --- devices and enrolment -------------------------------------------------------------------
    def device(self, device: str) -> Device | None:
        row = (
            self._db()
            .execute(
                "SELECT device, alg, public_pem, roster_pub FROM devices WHERE device = %s",
                (device,),
            )
            .fetchone()
        )
        return None if row is None else Device(*row)

    def devices(self) -> list[str]:
        """Every enrolled device, by name."""
        rows = self._db().execute("SELECT device FROM devices ORDER BY device").fetchall()
        return [r[0] for r in rows]

    def device_keys(self, device: str) -> list[DeviceKey]:
        rows = (
            self._db()
            .execute(
                "SELECT from_seq, alg, public_pem, since FROM device_keys WHERE device = %s "
                "ORDER BY from_seq",
                (device,),
            )
            .fetchall()
        )
        return [DeviceKey(int(f), a, p, float(s)) for f, a, p, s in rows]

    def add_code(self, code: str, expires: float) -> None:
        self._db().execute("INSERT INTO codes VALUES (%s, %s, NULL)", (code_hash(code), expires))

    def enrol(
        self,
        code: str,
        device: str,
        alg: str,
        public_pem: str,
        now: float,
        roster_public_key: str = "",
    ) -> str:
        db = self._db()
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (device,))
            existing = db.execute(
                "SELECT public_pem FROM devices WHERE device = %s", (device,)
            ).fetchone()
            if existing is not None and existing[0].strip() == public_pem.strip():
                return "unchanged"
            row = db.execute(
                "SELECT expires, used_by FROM codes WHERE code_hash = %s FOR UPDATE",
                (code_hash(code),),
            ).fetchone()
            if row is None or row[1] is not None or row[0] < now:
                raise EnrolmentRefused(403, "enrolment_code")
            if existing is not None:
                raise EnrolmentRefused(409, "already_enrolled")
            if is_retired_key(public_pem, db.execute(RETIRED_KEYS_SQL)):
                raise EnrolmentRefused(409, "key_retired")
            db.execute(
                "UPDATE codes SET used_by = %s WHERE code_hash = %s", (device, code_hash(code))
            )
            db.execute(
                "INSERT INTO devices VALUES (%s, %s, %s, %s, %s)",
                (device, alg, public_pem, now, roster_public_key),
            )
            db.execute(
                "INSERT INTO device_keys VALUES (%s, 1, %s, %s, %s)", (device, alg, public_pem, now)
            )
        return "created"

    # --- records -----------------------------------------------------------------------------
    def records_near(
        self, device: str, seqs: Sequence[int], ids: Sequence[str]
    ) -> tuple[dict[int, StoredRecord], set[str]]:
        wanted = sorted({s + d for s in seqs for d in (-1, 0, 1)})
        db = self._db()
        out = {
            int(seq): StoredRecord(int(seq), rid, h, prev, compact)
            for seq, rid, h, prev, compact in db.execute(
                "SELECT seq, id, hash, prev, compact FROM records WHERE device = %s "
                "AND seq = ANY(%s)",
                (device, wanted),
            )
        }
        known = {
            r[0] for r in db.execute("SELECT id FROM records WHERE id = ANY(%s)", (list(ids),))
        }
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
        db = self._db()
        with db.transaction(), db.cursor() as cur:
            cur.executemany(
                "INSERT INTO records VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [record_row(device, p, c, h, now) for p, c, h in accepted],
            )
            if forks:
                cur.executemany(
                    "INSERT INTO forks VALUES (%s, %s, %s, %s, %s)",
                    [(device, s, c, r, now) for s, c, r in forks],
                )
            if rotations:
                cur.executemany(
                    "INSERT INTO device_keys VALUES (%s, %s, %s, %s, %s)",
                    [(device, k.from_seq, k.alg, k.public_pem, k.since) for k in rotations],
                )
                cur.execute(
                    "UPDATE devices SET (alg, public_pem) = (SELECT alg, public_pem FROM "
                    "device_keys WHERE device = %(d)s ORDER BY from_seq DESC LIMIT 1) "
                    "WHERE device = %(d)s",
                    {"d": device},
                )
            found = cur.execute("SELECT upto FROM chains WHERE device = %s", (device,)).fetchone()
            upto = int(found[0]) if found else 0
            above = [
                int(r[0])
                for r in cur.execute(
                    "SELECT seq FROM records WHERE device = %s AND seq > %s ORDER BY seq",
                    (device, upto),
                )
            ]
            upto, gaps = advance_chain(upto, above)
            cur.execute(
                "INSERT INTO chains VALUES (%s, %s) ON CONFLICT (device) DO UPDATE "
                "SET upto = excluded.upto",
                (device, upto),
            )
            answer = {"results": results, "last_seq": above[-1] if above else upto, "gaps": gaps}
            if idempotency is not None:
                cur.execute(
                    "INSERT INTO idempotency VALUES (%s, %s, %s, %s) ON CONFLICT (device, key) "
                    "DO UPDATE SET body_hash = excluded.body_hash, answer = excluded.answer",
                    (device, idempotency[0], idempotency[1], json.dumps(answer)),
                )
        return answer

    def idempotent_answer(self, device: str, key: str) -> tuple[str, str] | None:
        row = (
            self._db()
            .execute(
                "SELECT body_hash, answer FROM idempotency WHERE device = %s AND key = %s",
                (device, key),
            )
            .fetchone()
        )
        return None if row is None else (row[0], row[1])

    def gaps(self, device: str) -> list[tuple[int, int]]:
        rows = self._db().execute(
            "SELECT seq FROM records WHERE device = %s ORDER BY seq", (device,)
        )
        return [(a, b) for a, b in advance_chain(0, [int(r[0]) for r in rows])[1]]

    def last_seq(self, device: str) -> int:
        row = (
            self._db()
            .execute("SELECT max(seq) FROM records WHERE device = %s", (device,))
            .fetchone()
        )
        return int(row[0] or 0) if row else 0

    def count(self, device: str | None = None) -> int:
        db = self._db()
        if device is None:
            row = db.execute("SELECT count(*) FROM records").fetchone()
        else:
            row = db.execute("SELECT count(*) FROM records WHERE device = %s", (device,)).fetchone()
        return int(row[0]) if row else 0

    def list_records(
        self, device: str, after_seq: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        rows = self._db().execute(
            "SELECT seq, id, type, flags, photo, received FROM records WHERE device = %s "
            "AND seq > %s ORDER BY seq LIMIT %s",
            (device, after_seq, limit),
        )
        return record_dicts(rows)

    def by_hash_prefix(self, prefixes: Sequence[str]) -> list[dict[str, Any]]:
        sql = RECEIPT_SQL.format(", ".join(["%s"] * len(prefixes)))
        return receipt_dicts(self._db().execute(sql, tuple(prefixes)))

    def heartbeats(self, device: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._db().execute(
            "SELECT received, body FROM heartbeats WHERE device = %s "
            "ORDER BY received DESC LIMIT %s",
            (device, limit),
        )
        return [{"received": float(r), "body": json.loads(b)} for r, b in rows]

    def heartbeat_states(self, device: str, limit: int) -> list[tuple[float, bool]]:
        rows = self._db().execute(
            "SELECT received, coalesce((body::json ->> 'kiosk') = 'running', false) "
            "FROM heartbeats WHERE device = %s ORDER BY received DESC LIMIT %s",
            (device, limit),
        )
        return [(float(r), bool(up)) for r, up in rows]

    def last_of_type(self, device: str, type_: str) -> tuple[int, str, float] | None:
        row = (
            self._db()
            .execute(
                "SELECT seq, compact, received FROM records WHERE device = %s AND type = %s "
                "ORDER BY seq DESC LIMIT 1",
                (device, type_),
            )
            .fetchone()
        )
        return None if row is None else (int(row[0]), row[1], float(row[2]))

    def forks(self, device: str) -> list[tuple[int, str]]:
        rows = self._db().execute(
            "SELECT seq, reason FROM forks WHERE device = %s ORDER BY seq", (device,)
        )
        return [(int(s), r) for s, r in rows]

    def add_review(
        self, device: str, seq: int, outcome: str, reviewer: str, now: float
    ) -> dict[str, Any] | None:
        cur = self._db().execute(
            "INSERT INTO reviews VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (device, seq, outcome, reviewer, now),
        )
        return review_dict(outcome, reviewer, now) if cur.rowcount == 1 else None

    def review(self, device: str, seq: int) -> dict[str, Any] | None:
        row = (
            self._db()
            .execute(
                "SELECT outcome, reviewer, at FROM reviews WHERE device = %s AND seq = %s",
                (device, seq),
            )
            .fetchone()
        )
        return None if row is None else review_dict(*row)

    def reviews(self) -> dict[tuple[str, int], dict[str, Any]]:
        return review_map(self._db().execute(REVIEWS_SQL))

    def close_task(
        self, device: str, seq: int, kind: str, outcome: str, officer: str, now: float
    ) -> dict[str, Any] | None:
        cur = self._db().execute(
            "INSERT INTO task_outcomes VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (device, seq, kind, outcome, officer, now),
        )
        return task_outcome_dict(outcome, officer, now) if cur.rowcount == 1 else None

    def task_outcomes(self) -> dict[tuple[str, int, str], dict[str, Any]]:
        sql = "SELECT device, seq, kind, outcome, officer, at FROM task_outcomes"
        return task_outcome_map(self._db().execute(sql))

    def alerts(self) -> list[dict[str, Any]]:
        return alert_dicts(self._db().execute(ALERTS_SQL.encode()))  # no parameters: no % escapes

    # --- blobs, roster, heartbeat ------------------------------------------------------------
    def put_blob(self, sha: str, device: str, data: bytes, now: float) -> bool:
        """Store a blob; False when already held or removed under the retention policy."""
        cur = self._db().execute(
            "INSERT INTO blobs SELECT %(s)s, %(d)s, %(b)s, %(t)s WHERE NOT EXISTS "
            "(SELECT 1 FROM removed_blobs WHERE sha256 = %(s)s) ON CONFLICT (sha256) DO NOTHING",
            {"s": sha, "d": device, "b": data, "t": now},
        )
        return cur.rowcount == 1

    def get_blob(self, sha: str) -> bytes | None:
        row = self._db().execute("SELECT data FROM blobs WHERE sha256 = %s", (sha,)).fetchone()
        return None if row is None else bytes(row[0])

    def blob_info(self, sha: str) -> dict[str, Any] | None:
        row = (
            self._db()
            .execute(
                "SELECT device, received, octet_length(data) FROM blobs WHERE sha256 = %s",
                (sha,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return {"device": row[0], "received": float(row[1]), "bytes": int(row[2])}

    def blob_removed(self, sha: str) -> dict[str, Any] | None:
        row = (
            self._db()
            .execute("SELECT kind, reason, removed FROM removed_blobs WHERE sha256 = %s", (sha,))
            .fetchone()
        )
        return None if row is None else removed_dict(*row)

    def put_roster(self, device: str, body: bytes) -> str:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        self._db().execute(
            "INSERT INTO rosters VALUES (%s, %s, %s) ON CONFLICT (device) DO UPDATE "
            "SET etag = excluded.etag, body = excluded.body",
            (device, etag, body),
        )
        return etag

    def get_roster(self, device: str) -> tuple[str, bytes] | None:
        row = (
            self._db()
            .execute("SELECT etag, body FROM rosters WHERE device = %s", (device,))
            .fetchone()
        )
        return None if row is None else (row[0], bytes(row[1]))

    def heartbeat(self, device: str, body: dict[str, Any], now: float) -> None:
        self._db().execute(
            "INSERT INTO heartbeats VALUES (%s, %s, %s)", (device, now, json.dumps(body))
        )

    def last_heartbeat(self, device: str) -> dict[str, Any] | None:
        row = (
            self._db()
            .execute(
                "SELECT body FROM heartbeats WHERE device = %s ORDER BY received DESC LIMIT 1",
                (device,),
            )
            .fetchone()
        )
        return None if row is None else dict(json.loads(row[0]))

    def export(self, device: str | None = None) -> Iterator[tuple[str, int, str]]:
        db = self._db()
        if device is None:
            rows = db.execute(
                "SELECT device, seq, compact FROM records ORDER BY device, seq"
            ).fetchall()
        else:
            rows = db.execute(
                "SELECT device, seq, compact FROM records WHERE device = %s ORDER BY seq",
                (device,),
            ).fetchall()
        for d, s, c in rows:
            yield d, int(s), c

    # --- retention (hil/refapi/retention.py) -------------------------------------------------
    def blob_holds(self, received_before: float) -> list[BlobHold]:
        return blob_holds(self._db().execute(BLOB_HOLDS_SQL.format("%s"), (received_before,)))

    def remove_blobs(self, removals: Sequence[tuple[str, str, str]], now: float) -> list[str]:
        """Delete blobs (sha, kind, reason) and keep a note of each, in one transaction;
        returns the hashes removed. The space is reclaimed by (auto)vacuum; the database's
        disk should be encrypted."""
        gone: list[str] = []
        db = self._db()
        with db.transaction():
            for sha, kind, reason in removals:
                # an "unreferenced" blob stays if a record names it by now
                args = {"s": sha, "k": kind, "r": reason, "t": now, "u": kind == "unreferenced"}
                db.execute(
                    "INSERT INTO removed_blobs SELECT sha256, device, %(k)s, %(r)s, received, "
                    "%(t)s FROM blobs WHERE sha256 = %(s)s AND (NOT %(u)s OR NOT EXISTS "
                    "(SELECT 1 FROM records WHERE photo = %(s)s)) ON CONFLICT DO NOTHING",
                    args,
                )
                if db.execute(
                    "DELETE FROM blobs WHERE sha256 = %(s)s AND (NOT %(u)s OR NOT EXISTS "
                    "(SELECT 1 FROM records WHERE photo = %(s)s))",
                    args,
                ).rowcount:
                    gone.append(sha)
        return gone

    def prune_heartbeats(self, before: float) -> int:
        cur = self._db().execute(
            "DELETE FROM heartbeats WHERE received < %s AND received < (SELECT "
            "max(h.received) FROM heartbeats h WHERE h.device = heartbeats.device)",
            (before,),
        )
        return int(cur.rowcount)

    def enrolments(self) -> list[tuple[str, int, str, float]]:
        rows = self._db().execute(ENROLMENTS_SQL).fetchall()
        return [(d, int(s), c, float(r)) for d, s, c, r in rows]

    # --- retiring a device -------------------------------------------------------------------
    def retire(self, device: str, operator: str, reason: str, now: float) -> Retirement | None:
        """As SqliteStorage.retire, in one transaction holding the device's enrolment lock and
        its ``chains`` row lock: a batch of it on another API process finishes first or
        waits, and then finds the device gone."""
        db = self._db()
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (device,))
            if not db.execute("SELECT 1 FROM devices WHERE device = %s", (device,)).fetchone():
                return None
            db.execute(
                "INSERT INTO chains VALUES (%s, 0) ON CONFLICT (device) DO NOTHING", (device,)
            )
            db.execute("SELECT upto FROM chains WHERE device = %s FOR UPDATE", (device,))
            earlier = db.execute(
                "SELECT count(*) FROM retirements WHERE device = %s", (device,)
            ).fetchone()
            found = db.execute(
                "SELECT coalesce(max(seq), 0), count(*) FROM records WHERE device = %s", (device,)
            ).fetchone()
            last, count = found if found else (0, 0)
            done = Retirement(f"{device}{RETIRED_MARK}{int(earlier[0] if earlier else 0) + 1}",
                              device, now, operator, reason, int(last), int(count))  # fmt: skip
            for table in CHAIN_TABLES:
                db.execute(
                    f"UPDATE {table} SET device = %s WHERE device = %s".encode(),  # noqa: S608
                    (done.chain, device),
                )
            db.execute(
                f"INSERT INTO retirements ({RETIREMENT_COLUMNS}) VALUES "  # noqa: S608
                "(%s, %s, %s, %s, %s, %s, %s)".encode(),
                tuple(done.as_dict().values()),
            )
        return done

    def retirements(self, device: str | None = None) -> list[Retirement]:
        sql = f"SELECT {RETIREMENT_COLUMNS} FROM retirements"  # noqa: S608
        order = " ORDER BY at DESC, chain DESC"
        db = self._db()
        if device is None:
            return retirements_of(db.execute((sql + order).encode()))
        return retirements_of(db.execute((sql + " WHERE device = %s" + order).encode(), (device,)))

    # --- the access log ----------------------------------------------------------------------
    def log_access(self, entry: AccessEntry) -> int:
        """Append one line, chained to the one before (an advisory lock serialises writers
        across API processes, so the chain never forks)."""
        fields = entry.fields()
        db = self._db()
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_ACCESS_LOG_LOCK,))
            row = db.execute("SELECT hash FROM access_log ORDER BY id DESC LIMIT 1").fetchone()
            prev = row[0] if row else ACCESS_GENESIS
            got = db.execute(
                "INSERT INTO access_log (at, operator, via, action, device, seq, target, "
                "outcome, detail, prev, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s) RETURNING id",
                (*fields, prev, access_hash(prev, fields)),
            ).fetchone()
        return int(got[0]) if got else 0

    def access_log(
        self,
        after_id: int = 0,
        limit: int = 100,
        operator: str | None = None,
        device: str | None = None,
    ) -> list[dict[str, Any]]:
        sql, args = access_query("%s", after_id, limit, operator, device)
        return access_dicts(self._db().execute(sql.encode(), args))
