"""An independent, test-only RFC 9180 base-mode implementation (DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-GCM), written from the RFC's pseudocode with hmac/hashlib, used to check
daemon.sealing against the standard rather than against itself."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEM_ID = 0x0020
KDF_ID = 0x0001


def extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()


def expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info, length)


def shared_secret(dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
    kem_suite = b"KEM" + KEM_ID.to_bytes(2, "big")
    eae_prk = labeled_extract(kem_suite, b"", b"eae_prk", dh)
    return labeled_expand(kem_suite, eae_prk, b"shared_secret", enc + pk_r, 32)


def key_schedule(shared: bytes, info: bytes, aead_id: int, key_len: int) -> tuple[bytes, bytes]:
    suite = b"HPKE" + KEM_ID.to_bytes(2, "big") + KDF_ID.to_bytes(2, "big")
    suite += aead_id.to_bytes(2, "big")
    psk_id_hash = labeled_extract(suite, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(suite, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash  # mode_base
    secret = labeled_extract(suite, shared, b"secret", b"")
    key = labeled_expand(suite, secret, b"key", context, key_len)
    nonce = labeled_expand(suite, secret, b"base_nonce", context, 12)
    return key, nonce


def _raw(pub: x25519.X25519PublicKey) -> bytes:
    return pub.public_bytes_raw()


def open_base(
    sk_r: bytes, enc: bytes, ct: bytes, info: bytes, aad: bytes, aead_id: int, key_len: int
) -> bytes:
    """Single-shot open (sequence number 0)."""
    priv = x25519.X25519PrivateKey.from_private_bytes(sk_r)
    dh = priv.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    shared = shared_secret(dh, enc, _raw(priv.public_key()))
    key, nonce = key_schedule(shared, info, aead_id, key_len)
    return AESGCM(key).decrypt(nonce, ct, aad)


def seal_base(
    pk_r: bytes, sk_e: bytes, pt: bytes, info: bytes, aad: bytes, aead_id: int, key_len: int
) -> tuple[bytes, bytes]:
    """Single-shot seal with a given ephemeral key; returns (enc, ciphertext)."""
    eph = x25519.X25519PrivateKey.from_private_bytes(sk_e)
    enc = _raw(eph.public_key())
    dh = eph.exchange(x25519.X25519PublicKey.from_public_bytes(pk_r))
    shared = shared_secret(dh, enc, pk_r)
    key, nonce = key_schedule(shared, info, aead_id, key_len)
    return enc, AESGCM(key).encrypt(nonce, pt, aad)
