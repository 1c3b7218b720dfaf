"""Device key rotation: how one device's chain moves from one signing key to the next.

``kioskctl provision --force`` appends a ``key_rotation`` record signed by the key in effect
(the old key) whose ``detail`` names the next key::

    {"new_alg": "ES256", "new_public_key_pem": "-----BEGIN PUBLIC KEY-----...",
     "new_key_id": "<16 chars>", "old_key_id": "<16 chars>"}

Every record with a greater ``seq`` is signed by the new key. Only the old key can authorise
the change, so a verifier that trusts the enrolled key can follow the whole chain.

:func:`rotated_key` is the one reading of that record, shared by ``kioskctl outbox verify``,
the reference API (which switches the device's key when it accepts the record) and
:func:`verify_chain_across_rotations` (auditors, exported chains).

May import: the standard library, ``daemon.records``, ``daemon.keys``, ``daemon.errors``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from daemon.errors import DeviceKeyError, RecordError
from daemon.keys import Alg, PublicKey, alg_of, load_public_pem, public_pem
from daemon.records import Record, verify_chain

ROTATION_TYPE = "key_rotation"


@dataclass(frozen=True, slots=True)
class NewKey:
    """The key a ``key_rotation`` record hands over to."""

    alg: Alg
    public_pem: str
    key: PublicKey


def rotated_key(record: Record) -> NewKey:
    """The new key named by a ``key_rotation`` record that has already been verified (with
    the key in effect at its seq). Raises :class:`RecordError` with reason ``rotation_key``
    when the record is not a rotation or names no usable key (not a P-256/Ed25519 PEM public
    key, or a key of another algorithm than its ``new_alg``)."""
    if record.type != ROTATION_TYPE:
        raise RecordError("the record is not a key_rotation record", reason="rotation_key")
    detail = record.payload.get("detail")
    pem = detail.get("new_public_key_pem") if isinstance(detail, dict) else None
    if not isinstance(pem, str) or not pem.strip():
        raise RecordError("key_rotation names no new public key", reason="rotation_key")
    try:
        key = load_public_pem(pem)
    except (DeviceKeyError, ValueError) as exc:
        raise RecordError(
            "key_rotation names no usable key (a P-256 or Ed25519 PEM public key)",
            reason="rotation_key",
        ) from exc
    alg = alg_of(key)
    named = detail.get("new_alg", alg) if isinstance(detail, dict) else alg
    if named != alg:
        raise RecordError(
            f"key_rotation names a {alg} key but says {named!r}", reason="rotation_key"
        )
    return NewKey(alg=alg, public_pem=public_pem(key), key=key)


def _key_after(record: Record) -> PublicKey | None:
    return rotated_key(record).key if record.type == ROTATION_TYPE else None


def verify_chain_across_rotations(
    compacts: Iterable[str],
    public_key: PublicKey,
    device: str | None = None,
    *,
    head_seq: int | None = None,
) -> list[Record]:
    """Verify a whole chain from genesis starting with the device's enrolled ``public_key``
    and switching key after each ``key_rotation`` record (:func:`daemon.records.verify_chain`
    following :func:`rotated_key`). Raises :class:`RecordError` naming the first bad position;
    ``head_seq`` catches a chain cut short at the tail (reason ``truncated``)."""
    return verify_chain(compacts, public_key, device, head_seq=head_seq, next_key=_key_after)
