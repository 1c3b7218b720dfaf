"""The device's signing key, behind a small backend interface.

A record is signed by the device key, which never leaves the device. The default backend is a
PEM file (PKCS#8, unencrypted, mode 0600, owned by the service user); a PKCS#11 backend for a
hardware token (ATECC608B, TPM 2.0; SoftHSM2 in tests) can implement the same
:class:`SigningKey` protocol later without touching records or the outbox.

Algorithms: ``ES256`` (ECDSA P-256, JWS raw ``r||s`` signatures, the default: every hardware
key on a Pi can hold it) and ``EdDSA`` (Ed25519, software keys).

May import: the standard library, ``cryptography``, ``daemon.errors``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from daemon.errors import DeviceKeyError

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
Alg = Literal["ES256", "EdDSA"]
ALGS: tuple[Alg, ...] = ("ES256", "EdDSA")
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class SigningKey(Protocol):
    """What records and signed requests need from a key backend."""

    @property
    def alg(self) -> Alg: ...

    def sign(self, data: bytes) -> bytes:
        """Return the JWS signature of ``data`` (raw r||s for ES256)."""
        ...

    def public_key(self) -> PublicKey: ...


class SoftwareKey:
    """A private key held in process memory (loaded from a file)."""

    def __init__(self, private: PrivateKey) -> None:
        self._private = private
        # which signer, decided once: an isinstance against cryptography's abstract classes
        # costs ~1 µs, and sign() is on the check-in's durable path
        self._ed = private if isinstance(private, ed25519.Ed25519PrivateKey) else None
        self._ec = private if isinstance(private, ec.EllipticCurvePrivateKey) else None
        self._alg: Alg = "EdDSA" if self._ed is not None else "ES256"
        if isinstance(private, ec.EllipticCurvePrivateKey) and not isinstance(
            private.curve, ec.SECP256R1
        ):
            raise DeviceKeyError(
                f"the device key is on curve {private.curve.name}; ES256 needs P-256. "
                "Re-provision the device with `kioskctl provision --force`."
            )

    @property
    def alg(self) -> Alg:
        return self._alg

    def sign(self, data: bytes) -> bytes:
        if self._ec is None:
            assert self._ed is not None  # PrivateKey is one or the other
            return self._ed.sign(data)
        r, s = decode_dss_signature(self._ec.sign(data, _ECDSA_SHA256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def public_key(self) -> PublicKey:
        return self._private.public_key()


def generate(alg: Alg = "ES256") -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise DeviceKeyError(f"unknown key algorithm {alg!r}; use one of {', '.join(ALGS)}")


class FileKeyBackend:
    """A PEM private key file, created with mode 0600 and refused when others can read it.

    ``create`` never overwrites an existing key unless ``overwrite=True`` (the caller then
    records a ``key_rotation``). Writes are atomic: a temporary file opened with
    ``O_EXCL`` and mode 0600, fsynced, renamed into place, then the directory fsynced.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.exists()

    def describe(self) -> str:
        return f"file {self.path}"

    def create(self, alg: Alg = "ES256", *, overwrite: bool = False) -> SoftwareKey:
        if self.path.exists() and not overwrite:
            raise DeviceKeyError(
                f"a device key already exists at {self.path}; refusing to replace the device's "
                "identity. Use `kioskctl provision --force` to rotate it deliberately."
            )
        private = generate(alg)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_file(self.path, pem)
        return SoftwareKey(private)

    def load(self) -> SoftwareKey:
        try:
            check_private_mode(self.path, "the device key")
            pem = self.path.read_bytes()
        except FileNotFoundError as exc:
            raise DeviceKeyError(
                f"no device key at {self.path}; provision the device with `kioskctl provision`."
            ) from exc
        except PermissionError as exc:
            raise DeviceKeyError(
                f"permission denied reading the device key {self.path}: only the kiosk user "
                "(and root) may read it; run kioskctl as root (sudo) or as the kiosk user",
                reason="key_access",
            ) from exc
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise DeviceKeyError(
                f"the device key {self.path} is not a readable PEM private key; restore it from "
                "backup or re-provision with `kioskctl provision --force`."
            ) from exc
        if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise DeviceKeyError(f"the device key {self.path} is neither P-256 nor Ed25519")
        return SoftwareKey(private)


def check_private_mode(path: Path, what: str) -> None:
    """Refuse a secret file others can read (:class:`DeviceKeyError`, reason
    ``key_permissions``); raises FileNotFoundError when it is missing."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise DeviceKeyError(
            f"{what} {path} has mode {mode:04o}; it must be 0600. Fix it with: chmod 600 {path}",
            reason="key_permissions",
        )


def write_private_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomically write ``data`` to ``path`` (temp, fsync, rename, fsync dir) with mode 0600,
    or ``mode`` whatever the umask (0644 for a public file other users must read)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:  # an export can be megabytes: a write may take part of it
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def public_pem(key: PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_pem(pem: str | bytes) -> PublicKey:
    try:
        # a PEM is ASCII: other text is refused like any non-PEM (UnicodeEncodeError is one)
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise DeviceKeyError("not a PEM public key") from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise DeviceKeyError("public key must be P-256 (ES256) or Ed25519 (EdDSA)")


def alg_of(key: PublicKey) -> Alg:
    return "EdDSA" if isinstance(key, ed25519.Ed25519PublicKey) else "ES256"


def verify_signature(key: PublicKey, alg: str, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``key``'s valid JWS signature of ``data`` under ``alg``."""
    if alg != alg_of(key):
        return False
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            if len(signature) != 64:
                return False
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
