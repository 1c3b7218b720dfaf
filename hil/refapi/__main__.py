"""``kiosk-refapi``: run the reference central API and work with what it stored.

kiosk-refapi serve WHERE --tls-cert F --tls-key F --seal-public B64 [--port N | --fd N]
                   [--client-ca F] [--admin-token-file F] [--faults]
kiosk-refapi export WHERE --operator ID --purpose WHY [--device ID] [-o FILE]   JWS lines
kiosk-refapi open-photo WHERE --operator ID --purpose WHY --seal-key F --sha HEX -o FILE
kiosk-refapi apply-enrolment WHERE --operator ID [--seal-key F] --device ID --seq N
kiosk-refapi prune WHERE --operator ID [--dry-run] [--photo-days N ...]   retention
kiosk-refapi access-log WHERE --operator ID --purpose WHY [--of OPERATOR] [--device ID] [--verify]
kiosk-refapi init WHERE                               make a new database (only this does)
kiosk-refapi mint-code WHERE [--ttl S]                a one-time enrolment code
kiosk-refapi retire WHERE --device ID --operator ID --reason TEXT   key lost, unit replaced
kiosk-refapi import WHERE --device ID --operator ID [--blobs DIR] FILE   from a kiosk's card
kiosk-refapi openapi                                  the OpenAPI document

WHERE is ``--data DIR`` (SQLite in DIR) or ``--database DSN`` (PostgreSQL, which several
API processes can share; hil/refapi/pgstore.py). ``--operator`` is the staff number (or a
service's id, e.g. for a timer) of who acts, ``--purpose`` why (daemon/purposes.py; acts
that are their own reason default to ``maintenance``); every act on personal data is written
to the store's access log with both (DPA 2018 s.62; docs/privacy.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import ssl
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.purposes import PURPOSES, operator_id

if TYPE_CHECKING:
    from hil.refapi.storage import AccessEntry, Storage

log = logging.getLogger("kiosk-refapi")
DB = "refapi.sqlite3"
#: Unix seconds now (tests put a fake clock here)
now = time.time


def _entry(args: argparse.Namespace, action: str, **fields: Any) -> AccessEntry:
    """An access log line for this command's act (hil/refapi/storage.py ``AccessEntry``),
    with its purpose in the detail (as the API's lines have it)."""
    from hil.refapi.storage import AccessEntry

    detail = {**fields.pop("detail", {}), "purpose": args.purpose}
    return AccessEntry(now(), args.operator, "cli", action, detail=detail, **fields)


def _storage(args: argparse.Namespace, *, create: bool = False) -> Storage:
    """``--database`` (PostgreSQL) if given, else the SQLite file in ``--data``. Only
    ``init`` creates one: elsewhere a place with no database is
    :class:`~hil.refapi.storage.StoreUnavailable` (a mistyped path must not become a new,
    empty store that exports nothing or takes an enrolment code)."""
    if args.database:
        from hil.refapi.pgstore import PostgresStorage

        return PostgresStorage(args.database, create=create)
    from hil.refapi.storage import SqliteStorage

    return SqliteStorage(args.data / DB, create=create)


def _fail(message: str, code: int = 2) -> int:
    print(f"kiosk-refapi: {message}", file=sys.stderr)
    return code


def _output_problem(path: Path) -> str | None:
    """Why ``-o path`` cannot be written, before anything is read or logged; None if it can."""
    if path.is_dir():
        return f"{path} is a folder; give a file name with -o"
    if not path.parent.is_dir():
        return f"the folder {path.parent} does not exist; create it first or choose another -o"
    return None


def _read_file(path: Path, what: str, flag: str) -> tuple[bytes | None, str | None]:
    """(the bytes of ``path``, None) or (None, what is wrong with it)."""
    try:
        return path.read_bytes(), None
    except FileNotFoundError:
        return None, f"{flag} {path}: no such file ({what})"
    except IsADirectoryError:
        return None, f"{flag} {path} is a folder, not {what}"
    except OSError as exc:
        return None, f"{flag} {path} cannot be read ({exc.strerror}); check its owner and mode"


def _seal_private(path: Path) -> tuple[bytes | None, str | None, str]:
    """The API's raw X25519 sealing key from ``--seal-key``: (key, None, "ok") or (None, what
    is wrong, outcome for the access log: ``no_key`` or ``bad_key``)."""
    from cryptography.hazmat.primitives.asymmetric import x25519

    data, problem = _read_file(path, "the API's sealing key", "--seal-key")
    if data is None:
        return None, problem, "no_key"
    try:
        x25519.X25519PrivateKey.from_private_bytes(data)
    except ValueError:
        looks = " (it is a PEM file: a TLS key?)" if data.lstrip().startswith(b"-----") else ""
        return (
            None,
            (
                f"--seal-key {path} is not the API's sealing key{looks}: that is 32 raw bytes of "
                "X25519 private key (seal.key beside the API's certificates)"
            ),
            "bad_key",
        )
    return data, None, "ok"


def _where(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--data", type=Path, help="folder of the SQLite database")
    group.add_argument(
        "--database",
        metavar="DSN",
        help="PostgreSQL instead: a libpq connection string or postgresql:// URL "
        "(several API processes may share it)",
    )


def _serve_problems(args: argparse.Namespace) -> tuple[list[str], Any, str | None]:
    """Everything wrong with ``serve``'s arguments, all at once (nothing is opened or created
    while any is): (problems, the calendar, the admin token)."""
    from daemon.errors import DeviceKeyError
    from daemon.sealing import public_from_b64
    from hil.refapi.tasks import ENGLAND_AND_WALES, Calendar, CalendarError

    problems: list[str] = []
    calendar: Any = ENGLAND_AND_WALES
    if args.closed_days:
        try:
            calendar = Calendar.from_file(args.closed_days)
        except CalendarError as exc:
            problems.append(str(exc))
    if not args.seal_public:
        problems.append(
            "--seal-public is required: the API's photo-sealing public key (base64 of 32 "
            "bytes), which kiosks seal photos to; without it no kiosk can start"
        )
    else:
        try:
            public_from_b64(args.seal_public)
        except DeviceKeyError:
            problems.append(
                f"--seal-public {args.seal_public[:60]!r} is not a photo-sealing public key: it "
                "must be 32 bytes of X25519 public key in standard base64 (44 characters, "
                "ending '='), the public half of the API's seal.key (hil.pki: "
                "Pki.seal_public_b64())"
            )
    pems: dict[str, bytes] = {}
    for flag, path, what in (
        ("--tls-cert", args.tls_cert, "the server's certificate (PEM)"),
        ("--tls-key", args.tls_key, "the server's private key (PEM)"),
        ("--ca", args.ca, "the CA certificate handed to kiosks (PEM)"),
        ("--client-ca", args.client_ca, "the CA of the kiosks' client certificates (PEM)"),
        ("--admin-token-file", args.admin_token_file, "a file holding the admin token"),
    ):
        if path is not None:
            data, problem = _read_file(path, what, flag)
            if problem:
                problems.append(problem)
            else:
                pems[flag] = data or b""
    if "--tls-cert" in pems and "--tls-key" in pems:
        cert, key = pems["--tls-cert"], pems["--tls-key"]
        if b"PRIVATE KEY" in cert and b"CERTIFICATE" in key:
            problems.append(
                f"--tls-cert {args.tls_cert} holds a private key and --tls-key {args.tls_key} a "
                "certificate: they are the wrong way round"
            )
        else:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(args.tls_cert, args.tls_key)
            except ssl.SSLError:
                problems.append(
                    f"--tls-cert {args.tls_cert} and --tls-key {args.tls_key} are not a PEM "
                    "certificate and its own private key: check that both are PEM, that the key "
                    "is the certificate's, and that the key has no passphrase"
                )
    for flag, path in (("--ca", args.ca), ("--client-ca", args.client_ca)):
        if flag in pems and b"-----BEGIN CERTIFICATE-----" not in pems[flag]:
            problems.append(f"{flag} {path} holds no PEM certificate")
    token: str | None = None
    if "--admin-token-file" in pems:
        token = pems["--admin-token-file"].decode(errors="replace").strip()
        if not token:
            problems.append(
                f"--admin-token-file {args.admin_token_file} is empty; put a long random token "
                "in it (leave the option out to run without admin endpoints)"
            )
    return problems, calendar, token


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hil.refapi.app import Faults, Settings, create_app

    problems, calendar, token = _serve_problems(args)
    if problems:
        print("kiosk-refapi serve: not started:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    ca_pem = args.ca.read_text() if args.ca else ""
    settings = Settings(
        storage=_storage(args),
        admin_token=token,
        seal_public_key=args.seal_public.strip(),
        ca_pem=ca_pem,
        faults=Faults(enabled=args.faults),
        calendar=calendar,
        simulated_expected=args.simulated_expected,
    )
    config = uvicorn.Config(
        create_app(settings),
        host=args.host,
        port=args.port,
        fd=args.fd,
        ssl_certfile=str(args.tls_cert),
        ssl_keyfile=str(args.tls_key),
        ssl_ca_certs=str(args.client_ca) if args.client_ca else None,
        ssl_cert_reqs=ssl.CERT_REQUIRED if args.client_ca else ssl.CERT_NONE,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    # uvicorn reports an idle keep-alive client at shutdown as an error; it is not one
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: "graceful shutdown exceeded" not in record.getMessage()
    )
    server.run()
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Make a new, empty database (SQLite: the folder 0700, the file 0600), or say that one
    is there already; never changes what a database holds (beyond migrating its schema)."""
    from hil.refapi.storage import StoreUnavailable

    where = "PostgreSQL database" if args.database else str(args.data / DB)
    try:
        _storage(args).close()
    except StoreUnavailable as exc:
        if exc.reason != "no_database" or (not args.database and (args.data / DB).exists()):
            raise
        _storage(args, create=True).close()
        print(f"made a new reference API database: {where}", file=sys.stderr)
        return 0
    print(f"a reference API database is there already ({where}); nothing changed",
          file=sys.stderr)  # fmt: skip
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Every stored record, one compact JWS per line, per device in seq order (an auditor
    verifies them with the device's public key alone). ``-o``: a file of mode 0600."""
    from daemon.keys import write_private_file

    if args.output is not None and (problem := _output_problem(args.output)):
        return _fail(problem)
    store = _storage(args)
    lines: list[str] = []
    n = 0
    try:
        if args.device is not None and store.device(args.device) is None:
            store.log_access(_entry(args, "records.export", outcome="not_found",
                                    device=args.device))  # fmt: skip
            known = ", ".join(store.devices()) or "none"
            return _fail(f"no device {args.device} is enrolled here (devices: {known})", 1)
        # logged before anything leaves the store: no log, no disclosure
        store.log_access(_entry(args, "records.export", device=args.device))
        for _device, _seq, compact in store.export(args.device):
            if args.output is None:
                sys.stdout.write(compact + "\n")
            else:
                lines.append(compact)
            n += 1
    finally:
        store.close()
    if args.output is not None:  # case references and answers: 0600, written whole or not at all
        write_private_file(args.output, "".join(c + "\n" for c in lines).encode())
    print(f"exported {n} records", file=sys.stderr)
    return 0


def cmd_open_photo(args: argparse.Namespace) -> int:
    """Decrypt one stored sealed photo with the API's private key (an authorised reviewer's
    act). Exit 2 without the key (or with another file in its place), 1 when the photo is
    not stored or will not open. Every attempt is a line of the access log."""
    from daemon.sealing import PHOTO_INFO, SealedBlobError, open_sealed

    if problem := _output_problem(args.output):
        return _fail(problem)
    from daemon.keys import write_private_file

    sha = args.sha.lower()
    store = _storage(args)
    try:
        key, problem, outcome = _seal_private(args.seal_key)
        blob = removed = None
        jpeg: bytes | None = None
        if key is not None:
            blob = store.get_blob(sha)
            removed = None if blob is not None else store.blob_removed(sha)
            if removed is not None:
                problem, outcome = _removed(sha, removed), "removed"
            elif blob is None:
                problem = f"no sealed photo {sha[:12]}... is stored; check the hash"
                outcome = "not_found"
            else:
                try:
                    jpeg = open_sealed(blob, key, expect_info=PHOTO_INFO)
                except SealedBlobError as exc:
                    problem, outcome = f"the photo could not be opened: {exc}", "failed"
        # logged before the photo is written: no log, no disclosure
        store.log_access(_entry(args, "photo.open", outcome=outcome, target=sha[:12]))
    finally:
        store.close()
    if jpeg is None:
        return _fail(problem or "the photo could not be opened", 2 if key is None else 1)
    write_private_file(args.output, jpeg)
    # also on stderr: which operator opened which blob (a hash prefix), never its contents
    log.warning("operator %s opened sealed photo %s", args.operator, sha[:12])
    print(f"wrote {args.output} ({len(jpeg)} bytes, mode 0600)", file=sys.stderr)
    return 0


def _removed(sha: str, removed: dict[str, Any]) -> str:
    """What to tell the operator about a photo the store no longer holds."""
    when = time.strftime("%Y-%m-%d", time.gmtime(removed["removed"]))
    why = "under the retention policy" if removed["reason"] == "retention" else removed["reason"]
    return f"sealed photo {sha[:12]}... was removed {why} on {when}; its record is kept"


def cmd_apply_enrolment(args: argparse.Namespace) -> int:
    """Open a kiosk's enrolment with the API's private key and put the templates into the
    person's roster entry, or, for a refusal, mark them ``biometric: "declined"`` there
    (hil/refapi/enrolment.py). Exit 2 when an agreement is given without the key, 1 when it
    cannot be applied."""
    from cryptography.hazmat.primitives.asymmetric import x25519

    from daemon.sealing import SealedBlobError
    from hil.refapi.enrolment import EnrolmentNotApplied, SealKeyNeeded, apply_enrolment

    store = _storage(args)
    private = None
    if args.seal_key is not None:  # a refusal needs none: nothing is opened
        key, problem, outcome = _seal_private(args.seal_key)
        if key is None:
            try:  # the attempt is logged too
                store.log_access(_entry(args, "enrolment.apply", outcome=outcome,
                                        device=args.device, seq=args.seq))  # fmt: skip
            finally:
                store.close()
            return _fail(f"the API's sealing key is needed to open an enrolment: {problem}")
        private = x25519.X25519PrivateKey.from_private_bytes(key)
    try:
        applied = apply_enrolment(
            store, args.device, args.seq, private, operator=args.operator, clock=now
        )
    except SealKeyNeeded as exc:  # an agreement, and no --seal-key (logged: not_applied)
        return _fail(str(exc))
    except (EnrolmentNotApplied, SealedBlobError) as exc:
        print(f"not applied: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    # in the access log (apply_enrolment), and here: who applied which record, never a
    # template or the person's reference
    log.warning("operator %s applied enrolment %s/%d", args.operator, args.device, args.seq)
    where, who = ", ".join(applied.devices), f"{applied.ref[:5]}***"
    if applied.declined:
        print(f"refusal applied: {who} reports by date of birth and photo, by choice, at "
              f"{where}", file=sys.stderr)  # fmt: skip
    else:
        print(f"{len(applied.fingers)} fingers put in the roster of {where} ({who})",
              file=sys.stderr)  # fmt: skip
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Delete what the retention policy says is due (hil/refapi/retention.py): photos,
    enrolment templates, unreferenced blobs, old heartbeats; never a record. Prints the counts
    as JSON; the run is a line of the access log. Run it daily (a systemd timer or cron)."""
    from hil.refapi.retention import RetentionPolicy, prune

    try:
        policy = RetentionPolicy(
            photo_days=args.photo_days,
            reviewed_days=args.reviewed_days,
            concern_days=args.concern_days,
            enrolment_days=args.enrolment_days,
            unreferenced_days=args.unreferenced_days,
            heartbeat_days=args.heartbeat_days,
        )
    except ValueError as exc:
        print(f"prune: {exc}", file=sys.stderr)
        return 2
    store = _storage(args)
    try:
        report = prune(store, policy, now(), args.operator, dry_run=args.dry_run)
    finally:
        store.close()
    print(json.dumps(report.counts(), sort_keys=True))
    return 0


def cmd_access_log(args: argparse.Namespace) -> int:
    """Print the access log, one JSON object per line in order (``--verify``: check the
    whole hash chain first; exit 1 when a line was altered, inserted or removed). Reading it
    is itself logged."""
    from hil.refapi.storage import access_chain_break

    store = _storage(args)
    broken: int | None = None
    try:
        if args.verify:
            lines = _all_access(store)
            broken = access_chain_break(lines)
            if broken is not None:
                print(f"the access log's chain breaks at line {broken}", file=sys.stderr)
            else:  # keep these elsewhere: lines cut off the end leave no other trace
                head = lines[-1]["hash"] if lines else "none"
                print(f"the access log's chain is intact: {len(lines)} lines, newest hash "
                      f"{head}", file=sys.stderr)  # fmt: skip
        store.log_access(_entry(args, "access_log.read", device=args.device))
        after = args.after_id
        while page := store.access_log(after, 1000, args.of, args.device):
            for entry in page:
                print(json.dumps(entry, sort_keys=True))
            after = page[-1]["id"]
    finally:
        store.close()
    return 1 if broken is not None else 0


def _all_access(store: Storage) -> list[dict[str, Any]]:
    """Every line of the access log, in order."""
    out: list[dict[str, Any]] = []
    while page := store.access_log(out[-1]["id"] if out else 0, 1000):
        out.extend(page)
    return out


def cmd_mint_code(args: argparse.Namespace) -> int:
    code = secrets.token_urlsafe(12)
    expires = now() + args.ttl
    store = _storage(args)
    try:
        store.add_code(code, expires)
    finally:
        store.close()
    print(code)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
    print(f"one enrolment with it, until {when}", file=sys.stderr)
    return 0


def _reason(text: str) -> str:
    if not 3 <= len(text.strip()) <= 200:
        raise argparse.ArgumentTypeError("say why in 3 to 200 characters (no names)")
    return text.strip()


def _ttl(text: str) -> float:
    from hil.refapi.app import MAX_CODE_TTL_S

    try:
        ttl = float(text)
    except ValueError:
        ttl = float("nan")
    if not 0 < ttl <= MAX_CODE_TTL_S:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"seconds the code stays valid: more than 0, at most {MAX_CODE_TTL_S:.0f} (30 days)"
        )
    return ttl


def cmd_retire(args: argparse.Namespace) -> int:
    """Retire a device (its key lost, its unit replaced): its key can no longer send, its
    records stay (under ``<device>~<n>``), and its id may be enrolled again with a new code.
    Logged (``device.retire``). Exit 1 when no such device is enrolled."""
    from hil.refapi.storage import RETIRED_MARK

    if RETIRED_MARK in args.device:
        return _fail(f"{args.device} is a retired device's chain already", 1)
    store = _storage(args)
    try:
        done = store.retire(args.device, args.operator, args.reason, now())
        if done is None:
            store.log_access(_entry(args, "device.retire", outcome="not_found",
                                    device=args.device))  # fmt: skip
            gone = [r.chain for r in store.retirements(args.device)]
            known = ", ".join(store.devices()) or "none"
            why = f"it was retired already ({', '.join(gone)})" if gone else f"devices: {known}"
            return _fail(f"no device {args.device} is enrolled here; {why}", 1)
        counts = {"records": done.records, "last_seq": done.last_seq}
        store.log_access(
            _entry(args, "device.retire", device=args.device, target=done.chain, detail=counts)
        )
    finally:
        store.close()
    print(json.dumps(done.as_dict(), sort_keys=True))
    print(
        f"retired {args.device}: its {done.records} records (up to seq {done.last_seq}) are "
        f"kept as {done.chain}; its key can no longer send. {args.device} may be enrolled "
        "again with a new code (mint-code), which starts a new chain.",
        file=sys.stderr,
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Add records from a kiosk's card (``kioskctl outbox export``), each to the chain of
    ``--device`` whose keys verify it, including retired ones (hil/refapi/retired.py).
    Prints what became of them as JSON; logged (``records.import``). Exit 1 when any line
    was rejected or belongs to no chain of the device (nothing else is affected), or when
    the database failed the import (then nothing of it is stored: it is one transaction).
    A server may be running on the same database meanwhile (docs/refapi.md)."""
    from hil.refapi.retired import ImportRefused, import_blobs, import_records

    if str(args.file) == "-":
        text = sys.stdin.read()
    else:
        data, problem = _read_file(args.file, "records exported from a kiosk", "FILE")
        if data is None:
            return _fail(problem or "cannot read FILE")
        text = data.decode("utf-8", errors="replace")
    compacts = [line.strip() for line in text.splitlines() if line.strip()]
    if not compacts:
        return _fail(f"{args.file} holds no records (one compact JWS per line)")
    if args.blobs is not None and not args.blobs.is_dir():
        return _fail(f"--blobs {args.blobs} is not a folder (the card's <data_dir>/blobs)")
    store = _storage(args)
    try:
        try:
            # the records, their blobs and the log line: all of them or, on an error, none
            with store.transaction():
                done = import_records(store, args.device, compacts, now())
                if args.blobs is not None:
                    import_blobs(store, args.device, done, args.blobs, now())
                counts = {k: sum(v.values()) for k, v in done.chains.items()}
                store.log_access(_entry(args, "records.import", device=args.device,
                                        outcome="ok" if done.complete else "partial",
                                        detail={"lines": len(compacts), "chains": counts,
                                                "unplaced": done.unplaced,
                                                "blobs": dict(done.blobs)}))  # fmt: skip
        except ImportRefused as exc:
            store.log_access(_entry(args, "records.import", outcome="not_found",
                                    device=args.device))  # fmt: skip
            return _fail(str(exc), 1)
        except _database_errors() as exc:
            return _import_failed(store, args, exc, len(compacts))
    finally:
        store.close()
    print(json.dumps(done.as_dict(), sort_keys=True))
    if not done.complete:
        print("some lines were not stored (see above): keep the card and the file; an "
              "auditor decides", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _database_errors() -> tuple[type[Exception], ...]:
    """The errors of the database drivers in use (psycopg's only when it is loaded)."""
    import sqlite3

    pg = sys.modules.get("psycopg")
    return (sqlite3.Error, pg.Error) if pg is not None else (sqlite3.Error,)


def _import_failed(store: Storage, args: argparse.Namespace, exc: Exception, lines: int) -> int:
    """What to tell the operator when the database failed an import (it was rolled back:
    nothing of the card is stored). The error's first line only: it names a table or a
    constraint, never a record's contents."""
    import sqlite3

    from hil.refapi.storage import BUSY_TIMEOUT_MS

    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    again = ("nothing was imported; run the same import again (records stored meanwhile, by "
             "the kiosk's sync or an earlier import, count as duplicates)")  # fmt: skip
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return _fail(
            f"the database stayed busy for more than {BUSY_TIMEOUT_MS / 1000:g} s (another "
            f"process was writing to it: the server storing a large batch, prune, another "
            f"import); {again}",
            1,
        )
    with contextlib.suppress(*_database_errors()):  # the same fault may refuse this too
        store.log_access(_entry(args, "records.import", outcome="failed", device=args.device,
                                detail={"lines": lines}))  # fmt: skip
    return _fail(
        f"the database failed the import ({text}); {again} once the database is right (its "
        "disk space, the server's log)",
        1,
    )


def cmd_openapi(_args: argparse.Namespace) -> int:
    from hil.refapi.app import openapi_document

    print(json.dumps(openapi_document(), indent=2, sort_keys=True))
    return 0


def _operator(parser: argparse.ArgumentParser, *aliases: str, purpose: str | None = None) -> None:
    """``--operator`` and ``--purpose`` (DPA 2018 s.62: the access log keeps who and why).
    ``purpose``: the act's own, when it is its justification (retention, enrolment); a read
    says why each time."""
    parser.add_argument(
        "--operator",
        *aliases,
        dest="operator",
        type=operator_id,
        required=True,
        help="your staff number (or a service id), for the access log",
    )
    parser.add_argument(
        "--purpose",
        choices=list(PURPOSES),
        default=purpose,
        required=purpose is None,
        help="why, for the access log: "
        + "; ".join(f"{k}: {v}" for k, v in PURPOSES.items())
        + (f" (default {purpose})" if purpose else ""),
    )


def main(argv: list[str] | None = None) -> int:
    from hil.refapi.retention import RetentionPolicy

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="kiosk-refapi", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the API over HTTPS")
    _where(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8443)
    s.add_argument("--fd", type=int, default=None, help="an already bound listening socket")
    s.add_argument("--tls-cert", type=Path, required=True)
    s.add_argument("--tls-key", type=Path, required=True)
    s.add_argument("--ca", type=Path, help="the CA handed to devices at enrolment")
    s.add_argument("--client-ca", type=Path, help="require client certificates (mTLS)")
    s.add_argument("--admin-token-file", type=Path)
    s.add_argument(
        "--seal-public", help="the photo-sealing public key handed to devices (required; base64)"
    )
    s.add_argument("--faults", action="store_true", help="allow fault injection (tests only)")
    s.add_argument(
        "--simulated-expected",
        action="store_true",
        help="the kiosks here run simulated drivers on purpose (the demo, a rig): do not list "
        "that as a problem",
    )
    s.add_argument(
        "--closed-days",
        type=Path,
        metavar="FILE",
        help="days offices are closed besides weekends and England and Wales bank holidays "
        "(one YYYY-MM-DD per line), for when officers' tasks fall due",
    )
    s.set_defaults(func=cmd_serve)
    e = sub.add_parser("export", help="stored records, one compact JWS per line")
    _where(e)
    _operator(e)
    e.add_argument("--device")
    e.add_argument("-o", "--output", type=Path)
    e.set_defaults(func=cmd_export)
    o = sub.add_parser("open-photo", help="decrypt a sealed photo (authorised reviewer)")
    _where(o)
    _operator(o, "--reviewer")  # its older name
    o.add_argument("--seal-key", type=Path, required=True)
    o.add_argument("--sha", required=True)
    o.add_argument("-o", "--output", type=Path, required=True)
    o.set_defaults(func=cmd_open_photo)
    ae = sub.add_parser(
        "apply-enrolment",
        help="put a kiosk's fingerprint enrolment (or a refusal: declined) in its roster",
    )
    _where(ae)
    ae.add_argument("--seal-key", type=Path, help="the API's sealing key (for an agreement)")
    ae.add_argument("--device", required=True)
    ae.add_argument("--seq", type=int, required=True)
    _operator(ae, purpose="maintenance")
    ae.set_defaults(func=cmd_apply_enrolment)
    pr = sub.add_parser("prune", help="delete what the retention policy says is due")
    _where(pr)
    _operator(pr, purpose="maintenance")
    pr.add_argument("--dry-run", action="store_true", help="count only, delete nothing")
    defaults = RetentionPolicy()
    for flag, dest, what in (
        ("--photo-days", "photo_days", "a check-in photo not sent for identity review"),
        ("--reviewed-days", "reviewed_days", "a reviewed photo after a 'confirmed' decision"),
        ("--concern-days", "concern_days", "after 'confirmed_with_concern' or 'rejected'"),
        ("--enrolment-days", "enrolment_days", "sealed enrolment templates never applied"),
        ("--unreferenced-days", "unreferenced_days", "a blob no record names"),
        ("--heartbeat-days", "heartbeat_days", "heartbeats (each kiosk's newest is kept)"),
    ):
        pr.add_argument(flag, dest=dest, type=float, default=getattr(defaults, dest),
                        help=f"{what} (default %(default)s)")  # fmt: skip
    pr.set_defaults(func=cmd_prune)
    al = sub.add_parser("access-log", help="print the access log (who consulted what)")
    _where(al)
    _operator(al)
    al.add_argument("--of", type=operator_id, metavar="OPERATOR", help="one operator's acts")
    al.add_argument("--device")
    al.add_argument("--after-id", type=int, default=0)
    al.add_argument("--verify", action="store_true", help="check the hash chain (exit 1 if broken)")
    al.set_defaults(func=cmd_access_log)
    i = sub.add_parser("init", help="make a new, empty database (the only command that does)")
    _where(i)
    i.set_defaults(func=cmd_init)
    m = sub.add_parser("mint-code", help="a one-time enrolment code")
    _where(m)
    m.add_argument("--ttl", type=_ttl, default=3600.0, help="seconds it stays valid (3600)")
    m.set_defaults(func=cmd_mint_code)
    r = sub.add_parser("retire", help="retire a device (key lost, unit replaced); records kept")
    _where(r)
    _operator(r, purpose="maintenance")
    r.add_argument("--device", required=True)
    r.add_argument("--reason", required=True, type=_reason, help="why, in plain words, no names")
    r.set_defaults(func=cmd_retire)
    im = sub.add_parser("import", help="add records from a kiosk's card (kioskctl outbox export)")
    _where(im)
    _operator(im, purpose="maintenance")
    im.add_argument("--device", required=True, help="the device id the records carry")
    im.add_argument(
        "--blobs", type=Path, metavar="DIR", help="the card's <data_dir>/blobs (sealed photos)"
    )
    im.add_argument("file", type=Path, metavar="FILE", help="one compact JWS per line; - for stdin")
    im.set_defaults(func=cmd_import)
    a = sub.add_parser("openapi", help="print the OpenAPI document")
    a.set_defaults(func=cmd_openapi)
    args = p.parse_args(argv)
    from hil.refapi.storage import StoreUnavailable

    try:
        return int(args.func(args))
    except StoreUnavailable as exc:  # a mistyped --data or --database, a server that is down
        return _fail(exc.message, 2 if exc.reason == "no_database" else 1)


if __name__ == "__main__":
    raise SystemExit(main())
