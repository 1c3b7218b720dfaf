"""Check-in records: JWS compact serialisation, hash chain, and the one verifier.

A record is a JWS (RFC 7515) in compact form, signed by the device key (ES256 by default,
EdDSA allowed). Its payload (docs/api.md) carries ``seq`` (1, 2, 3... per device, no gaps) and
``prev`` (base64url SHA-256 of the previous record's compact JWS; :data:`GENESIS` for seq 1),
so deleting, altering, reordering or replaying a record breaks the chain.

:func:`verify_record` is the single verification function: the reference API, the outbox's
self-check, ``kioskctl outbox verify`` and the tests all call it (directly or through
:class:`ChainVerifier`).

May import: the standard library, ``orjson``, ``daemon.keys``, ``daemon.errors``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from daemon.errors import RecordError
from daemon.keys import PublicKey, SigningKey, verify_signature

VERSION = 1
JWS_TYPE = "kiosk-record+jws"
#: ``prev`` of the first record: base64url of 32 zero bytes (the shape of every other ``prev``).
GENESIS = "A" * 43
#: the highest ``seq``: a JSON-safe integer, far beyond any kiosk's life, that a store's 64-bit
#: column holds with its neighbours (a larger one is refused as ``schema``, never a crash)
MAX_SEQ = 2**53 - 1
RECORD_TYPES = frozenset(
    {
        "checkin",
        "checkin_fallback",
        "staff_override",
        "staff_action",
        "finger_enrolment",
        "tamper",
        "boot",
        "clock_step",
        "fault",
        "enrolment",
        "key_rotation",
        "see_officer",
        # a sealed photo or enrolment (templates) damaged or gone on the kiosk before the API
        # had it: its record went up without it (daemon/outbox.py, Outbox.record_blob_lost)
        "blob_lost",
    }
)
FLAGS = frozenset(
    {
        "see_officer",
        "id_review",
        "fault",
        "photo_quality",
        "no_photo",
        "demo",
        "in_person",
        "photo_lost",
        "templates_lost",
    }
)
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64url_bytes(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=")


def b64url(data: bytes) -> str:
    return _b64url_bytes(data).decode()


def b64url_decode(text: str) -> bytes:
    """Strict base64url: unpadded and canonical (no stray bits), so a JWS has one spelling."""
    rem = len(text) % 4
    if rem == 1 or not _B64URL.match(text):
        raise ValueError("not base64url")
    if rem and _ALPHABET.index(text[-1]) & (0x0F if rem == 2 else 0x03):
        raise ValueError("not canonical base64url (stray bits in the last character)")
    return base64.urlsafe_b64decode(text + "=" * (-rem % 4))


def record_hash(compact: str) -> str:
    """The chain hash of a record: base64url(SHA-256(compact JWS as ASCII))."""
    return _chain_hash(compact.encode("ascii"))


def _chain_hash(compact: bytes) -> str:
    return b64url(hashlib.sha256(compact).digest())


#: Crockford's base32: no I, L, O or U, so a code read aloud or copied by hand is unambiguous
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def receipt_code(compact: str) -> str:
    """The attendance reference shown to the person when their record is saved: the first
    40 bits of the record's chain hash in Crockford base32, ``7K2M-9QXD``. Staff find the
    signed record from it (the reference API: ``GET /v1/admin/receipts/{code}``); it says
    nothing about the person."""
    return _code_of_digest(hashlib.sha256(compact.encode("ascii")).digest())


def receipt_code_of_hash(chain_hash: str) -> str:
    """The receipt code of the record whose chain hash (:func:`record_hash`) is given."""
    return _code_of_digest(b64url_decode(chain_hash))


def _code_of_digest(digest: bytes) -> str:
    n = int.from_bytes(digest[:5], "big")
    chars = "".join(_CROCKFORD[(n >> shift) & 31] for shift in range(35, -1, -5))
    return f"{chars[:4]}-{chars[4:]}"


def normal_receipt_code(code: str) -> str:
    """``code`` as the kiosk shows it, however it was typed (lower case, no dash, spaces, and
    Crockford's look-alikes I, L, O read as 1, 1, 0). Raises ValueError if it is not one."""
    cleaned = code.upper().replace("-", "").replace(" ", "")
    cleaned = cleaned.translate(str.maketrans("ILO", "110"))
    if len(cleaned) != 8 or any(c not in _CROCKFORD for c in cleaned):
        raise ValueError("a receipt code is 8 letters and digits, like 7K2M-9QXD")
    return f"{cleaned[:4]}-{cleaned[4:]}"


def receipt_hash_prefixes(code: str) -> list[str]:
    """The chain-hash prefixes (base64url, 7 characters) a receipt code can come from: its 40
    bits fix the first 6 characters and 4 of the 7th's 6 bits. Raises ValueError when
    ``code`` is not a receipt code."""
    n = 0
    for c in normal_receipt_code(code).replace("-", ""):
        n = (n << 5) | _CROCKFORD.index(c)
    prefixes = []
    for low in range(4):  # the 2 bits of the 7th base64 character the code does not fix
        b = (((n << 2) | low) << 6).to_bytes(6, "big")  # 42 bits, left-aligned in 48
        prefixes.append(_b64url_bytes(b).decode()[:7])
    return prefixes


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not ASCII-escaped). orjson takes a tenth of the time
    of ``json.dumps`` on the check-in's durable path, and writes the same bytes for strings,
    integers, booleans, null, lists and objects (tested). Floats may be spelled differently
    (``1e-7`` for ``1e-07``) and NaN becomes null; nothing re-serialises a record to check it
    (the signature covers the bytes), so that cannot break verification."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def uuid7(unix_ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits; sortable by time."""
    ms = int(time.time() * 1000) if unix_ms is None else unix_ms
    r = _random10()
    h = (
        (ms & 0xFFFFFFFFFFFF).to_bytes(6, "big")
        + bytes((0x70 | (r[0] & 0x0F), r[1], 0x80 | (r[2] & 0x3F)))
        + r[3:]
    ).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_POOL = bytearray()
_POOL_LOCK = threading.Lock()


def _random10() -> bytes:
    """10 random bytes from the kernel's CSPRNG, fetched 4 KB at a time (one getrandom per
    400 ids instead of one per id). Threads never share bytes; a forked child starts empty."""
    with _POOL_LOCK:
        if len(_POOL) < 10:
            _POOL[:] = os.urandom(4000)
        value = bytes(_POOL[-10:])
        del _POOL[-10:]
    return value


def _after_fork() -> None:
    global _POOL_LOCK
    _POOL_LOCK = threading.Lock()
    _POOL.clear()


os.register_at_fork(after_in_child=_after_fork)


@dataclass(frozen=True, slots=True)
class Record:
    """A verified (or freshly signed) record."""

    compact: str
    header: Mapping[str, Any]
    payload: Mapping[str, Any]

    @property
    def seq(self) -> int:
        return int(self.payload["seq"])

    @property
    def id(self) -> str:
        return str(self.payload["id"])

    @property
    def type(self) -> str:
        return str(self.payload["type"])

    @property
    def device(self) -> str:
        return str(self.payload["device"])

    @property
    def hash(self) -> str:
        return record_hash(self.compact)


def encoded_header(alg: str, device: str) -> str:
    """The base64url protected header of a record (constant per device and key)."""
    return b64url(canonical_json({"alg": alg, "typ": JWS_TYPE, "kid": device}))


class RecordSigner:
    """Signs one device's records with its key: the outbox's per-check-in signer.

    What is the same for every record (the protected header, the key's ``sign``) is prepared
    once, and the chain hash is taken from the signed bytes before they become text. Where an
    append's time goes, signature included: docs/benchmarks.md."""

    __slots__ = ("_prefix", "_sign")

    def __init__(self, key: SigningKey, device: str) -> None:
        self._prefix = encoded_header(key.alg, device).encode() + b"."
        self._sign = key.sign

    def sign(self, payload: Mapping[str, Any]) -> tuple[str, str]:
        """(compact JWS, its chain hash :func:`record_hash`) of ``payload``, already
        schema-valid."""
        signing_input = self._prefix + _b64url_bytes(canonical_json(payload))
        compact = b"%s.%s" % (signing_input, _b64url_bytes(self._sign(signing_input)))
        return compact.decode(), _chain_hash(compact)


def sign_record(payload: Mapping[str, Any], key: SigningKey) -> str:
    """Sign ``payload`` (already schema-valid) with ``key``; return the compact JWS."""
    return RecordSigner(key, payload["device"]).sign(payload)[0]


def decode_unverified(compact: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Split a compact JWS into (header, payload, signing input, signature) without trusting it.

    Raises :class:`RecordError` (reason ``malformed``) on anything that is not a compact JWS
    with JSON objects in header and payload.
    """
    if not isinstance(compact, str) or not compact.isascii():
        raise RecordError("record is not an ASCII compact JWS", reason="malformed")
    parts = compact.split(".")
    if len(parts) != 3:
        raise RecordError("record is not a compact JWS (expected 3 parts)", reason="malformed")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError("record parts are not base64url JSON", reason="malformed") from exc
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise RecordError("record header and payload must be JSON objects", reason="malformed")
    return header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _schema_fail(what: str) -> RecordError:
    return RecordError(f"record schema: {what}", reason="schema")


def is_seq(value: object) -> bool:
    """Whether ``value`` is a ``seq`` the schema allows: an integer (not a bool) from 1 to
    :data:`MAX_SEQ`."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SEQ


def validate_payload(p: Mapping[str, Any]) -> None:
    """Check the payload against the v1 schema (docs/api.md); raise RecordError(schema)."""
    required = {"v", "id", "device", "seq", "prev", "type", "at", "clock", "flags", "app"}
    allowed = required | {"person", "verify", "photo", "templates", "answers", "detail"}
    missing = required - p.keys()
    if missing:
        raise _schema_fail(f"missing {', '.join(sorted(missing))}")
    extra = p.keys() - allowed
    if extra:
        raise _schema_fail(f"unknown field(s) {', '.join(sorted(extra))}")
    if p["v"] != VERSION or isinstance(p["v"], bool):
        raise _schema_fail("v must be 1")
    try:
        parsed = uuid.UUID(str(p["id"]))
    except ValueError as exc:
        raise _schema_fail("id must be a UUID") from exc
    if parsed.version != 7 or str(parsed) != p["id"]:
        raise _schema_fail("id must be a lower-case UUIDv7")
    if not isinstance(p["device"], str) or not _DEVICE.match(p["device"]):
        raise _schema_fail("device must be 1-64 of [A-Za-z0-9._-]")
    if not is_seq(p["seq"]):
        raise _schema_fail("seq must be an integer from 1 to 2^53 - 1")
    if not isinstance(p["prev"], str) or len(p["prev"]) != 43 or not _B64URL.match(p["prev"]):
        raise _schema_fail("prev must be a base64url SHA-256")
    if p["type"] not in RECORD_TYPES:
        raise _schema_fail("type is not a known record type")
    if not isinstance(p["at"], str) or not _RFC3339_UTC.match(p["at"]):
        raise _schema_fail("at must be RFC 3339 UTC ending in Z")
    clock = p["clock"]
    if (
        not isinstance(clock, dict)
        or set(clock) != {"synced", "boot_id", "mono_ns"}
        or not isinstance(clock["synced"], bool)
        or not isinstance(clock["boot_id"], str)
        or not isinstance(clock["mono_ns"], int)
        or isinstance(clock["mono_ns"], bool)
    ):
        raise _schema_fail("clock must be {synced: bool, boot_id: str, mono_ns: int}")
    flags = p["flags"]
    if (
        not isinstance(flags, list)
        or any(f not in FLAGS for f in flags)
        or len(set(flags)) != len(flags)
    ):
        raise _schema_fail("flags must be a list of distinct known flags")
    if not isinstance(p["app"], str):
        raise _schema_fail("app must be a version string")
    if "person" in p and p["person"] is not None and not isinstance(p["person"], str):
        raise _schema_fail("person must be a string")
    if (
        "photo" in p
        and p["photo"] is not None
        and (not isinstance(p["photo"], str) or not _HEX64.match(p["photo"]))
    ):
        raise _schema_fail("photo must be a SHA-256 hex digest")
    if "templates" in p and (
        not isinstance(p["templates"], str) or not _HEX64.match(p["templates"])
    ):
        raise _schema_fail("templates must be a SHA-256 hex digest")
    if "verify" in p and p["verify"] is not None:
        v = p["verify"]
        if not isinstance(v, dict) or not isinstance(v.get("method"), str):
            raise _schema_fail("verify must be an object with a method")
    if "answers" in p and not isinstance(p["answers"], dict):
        raise _schema_fail("answers must be an object")
    if "detail" in p and not isinstance(p["detail"], dict):
        raise _schema_fail("detail must be an object")


def verify_record(
    compact: str,
    public_key: PublicKey,
    *,
    device: str | None = None,
    expected_seq: int | None = None,
    expected_prev: str | None = None,
    decoded: tuple[dict[str, Any], dict[str, Any], bytes, bytes] | None = None,
) -> Record:
    """Verify one record: signature with ``public_key``, schema, and (when given) its place in
    the chain (``expected_seq`` and ``expected_prev``, the hash of the record before it).

    Raises :class:`RecordError` with reason ``malformed``, ``bad_signature``, ``schema``,
    ``wrong_device``, ``seq_gap`` or ``prev_mismatch``. ``decoded`` may pass the result of
    :func:`decode_unverified` for ``compact`` when the caller already has it.
    """
    header, payload, signing_input, signature = decoded or decode_unverified(compact)
    if header.get("typ") != JWS_TYPE or set(header) != {"alg", "typ", "kid"}:
        raise RecordError("record header is not a kiosk record header", reason="schema")
    if not verify_signature(public_key, str(header.get("alg")), signing_input, signature):
        raise RecordError("record signature does not verify", reason="bad_signature")
    validate_payload(payload)
    if header["kid"] != payload["device"] or (device is not None and payload["device"] != device):
        raise RecordError("record belongs to another device", reason="wrong_device")
    if expected_seq is not None and payload["seq"] != expected_seq:
        raise RecordError(
            f"record seq {payload['seq']} where {expected_seq} was expected", reason="seq_gap"
        )
    if expected_prev is not None and payload["prev"] != expected_prev:
        raise RecordError(
            "record prev does not hash-link to its predecessor", reason="prev_mismatch"
        )
    if payload["seq"] == 1 and payload["prev"] != GENESIS:
        raise RecordError("the first record must link to the genesis value", reason="prev_mismatch")
    return Record(compact=compact, header=header, payload=payload)


class ChainVerifier:
    """Incremental verifier of one device's chain, from a known point (genesis by default)."""

    def __init__(
        self,
        public_key: PublicKey,
        device: str | None = None,
        *,
        last_seq: int = 0,
        last_hash: str = GENESIS,
    ) -> None:
        self.public_key = public_key
        self.device = device
        self.last_seq = last_seq
        self.last_hash = last_hash

    def feed(self, compact: str) -> Record:
        record = verify_record(
            compact,
            self.public_key,
            device=self.device,
            expected_seq=self.last_seq + 1,
            expected_prev=self.last_hash,
        )
        self.last_seq = record.seq
        self.last_hash = record.hash
        return record


def verify_chain(
    compacts: Iterable[str],
    public_key: PublicKey,
    device: str | None = None,
    *,
    head_seq: int | None = None,
    next_key: Callable[[Record], PublicKey | None] | None = None,
) -> list[Record]:
    """Verify a whole chain from genesis; raise RecordError naming the first bad position.

    ``head_seq`` is the last ``seq`` the device says it made (its heartbeat reports it): a
    chain cut short at the tail is only detectable against it (reason ``truncated``).
    ``next_key``, given each verified record, returns the key that signs the records after it
    when it changes (see :mod:`daemon.rotation`), else None.
    """
    verifier = ChainVerifier(public_key, device)
    out: list[Record] = []
    for index, compact in enumerate(compacts):
        try:
            record = verifier.feed(compact)
            new_key = next_key(record) if next_key is not None else None
            if new_key is not None:
                verifier.public_key = new_key
            out.append(record)
        except RecordError as exc:
            raise RecordError(f"record {index + 1}: {exc.message}", reason=exc.reason) from exc
    if head_seq is not None and verifier.last_seq != head_seq:
        raise RecordError(
            f"the chain ends at seq {verifier.last_seq} but the device reached {head_seq}",
            reason="truncated",
        )
    return out
