"""Sealing: photos encrypted to the central API, roster templates encrypted to the device.

Both use HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
AES-256-GCM, through ``cryptography``'s ``hpke`` module. A sealed blob describes itself::

    b"KSEAL" | version (1 byte) | kem_id, kdf_id, aead_id (2 bytes each, big-endian)
            | info length (2 bytes) | info | enc (32 bytes) | AEAD ciphertext with its tag

The whole header (magic to info) is the HPKE ``info``, so the suite, the version and the
purpose label are bound into the key schedule: changing any header byte makes the blob
unopenable, and a blob sealed for one purpose cannot be opened as another.

- **Photos** are sealed on the device with :class:`PhotoSealer`, which holds only the API's
  public key: the device cannot read its own photos back. The API (or an authorised reviewer
  with its private key) opens them with :func:`open_sealed`.
- **Roster templates** are sealed by the API to the device's *roster key* (an X25519 key
  separate from the signing key, see docs/privacy.md) and opened only in memory, for a match,
  with :meth:`RosterKey.open_template`.

Cost: sealing a 200 kB JPEG takes well under a millisecond on a developer machine (one X25519
key generation and agreement, one AES-GCM pass). Thread-safe: no shared mutable state.

May import: the standard library, ``cryptography``, ``daemon.errors``, ``daemon.keys``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from daemon.errors import DeviceKeyError, RecordError
from daemon.keys import write_private_file

MAGIC = b"KSEAL"
VERSION = 1
#: RFC 9180 identifiers of the one suite used
KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0002
ENC_LEN = 32
TAG_LEN = 16
_FIXED = struct.Struct(">5sBHHHH")  # magic, version, kem, kdf, aead, info length

#: purpose labels (the HPKE info carries them)
PHOTO_INFO = b"probation-kiosk/photo/v1"
TEMPLATE_INFO = b"probation-kiosk/roster-template/v1"
#: templates taken at enrolment, on their way to the central API (never a roster template)
ENROLMENT_INFO = b"probation-kiosk/enrolment/v1"

_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


class SealedBlobError(RecordError):
    """A sealed blob is malformed, was altered, or was not sealed to this key."""

    reason = "sealed_invalid"


# --- keys ----------------------------------------------------------------------------------
def generate_keypair() -> tuple[bytes, bytes]:
    """A new X25519 key pair as ``(private 32 bytes, public 32 bytes)``."""
    private = x25519.X25519PrivateKey.generate()
    return private.private_bytes_raw(), public_bytes(private.public_key())


def public_bytes(key: x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_from_private(private: bytes) -> bytes:
    """The raw public key of a raw X25519 private key."""
    return public_bytes(_private_key(private).public_key())


def public_to_b64(public: bytes) -> str:
    """The configuration form of a public key (standard base64 of the 32 raw bytes)."""
    return base64.b64encode(_public_key(public).public_bytes_raw()).decode("ascii")


def public_from_b64(text: str) -> bytes:
    """Parse a public key from configuration (``[api] seal_public_key``).

    Raises :class:`DeviceKeyError` (reason ``seal_key``) when it is not 32 bytes of base64.
    """
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DeviceKeyError(
            "the photo-sealing public key is not valid base64; re-run `kioskctl provision` "
            "or copy [api] seal_public_key again from the central API.",
            reason="seal_key",
        ) from exc
    return _public_key(raw).public_bytes_raw()


def _public_key(public: bytes | x25519.X25519PublicKey) -> x25519.X25519PublicKey:
    if isinstance(public, x25519.X25519PublicKey):
        return public
    try:
        return x25519.X25519PublicKey.from_public_bytes(public)
    except ValueError as exc:
        raise DeviceKeyError(
            f"a sealing public key must be 32 bytes of X25519 key, not {len(public)} bytes; "
            "re-run `kioskctl provision` to fetch the central API's key.",
            reason="seal_key",
        ) from exc


def _private_key(private: bytes | x25519.X25519PrivateKey) -> x25519.X25519PrivateKey:
    if isinstance(private, x25519.X25519PrivateKey):
        return private
    try:
        return x25519.X25519PrivateKey.from_private_bytes(private)
    except ValueError as exc:
        raise DeviceKeyError(
            "a sealing private key must be 32 raw bytes of X25519 key; check that the right "
            "key file was given.",
            reason="seal_key",
        ) from exc


# --- the blob format -----------------------------------------------------------------------
def _header(info: bytes) -> bytes:
    if len(info) > 0xFFFF:
        raise ValueError("info is longer than 65535 bytes")
    return _FIXED.pack(MAGIC, VERSION, KEM_ID, KDF_ID, AEAD_ID, len(info)) + info


def _split(blob: bytes) -> tuple[bytes, bytes, bytes]:
    """``(header, info, enc + ciphertext)``; raises :class:`SealedBlobError` if malformed."""
    if len(blob) < _FIXED.size:
        raise SealedBlobError(
            "a sealed blob is too short to be one; it is damaged. Fetch it again or report it.",
            reason="sealed_malformed",
        )
    magic, version, kem, kdf, aead, info_len = _FIXED.unpack_from(blob)
    if magic != MAGIC:
        raise SealedBlobError(
            "this is not a sealed blob (wrong magic bytes); check that the right file was given.",
            reason="sealed_malformed",
        )
    if version != VERSION or (kem, kdf, aead) != (KEM_ID, KDF_ID, AEAD_ID):
        raise SealedBlobError(
            f"sealed blob version {version} with suite {kem:#06x}/{kdf:#06x}/{aead:#06x} is "
            "not supported by this software; update it.",
            reason="sealed_unsupported",
        )
    end = _FIXED.size + info_len
    if len(blob) < end + ENC_LEN + TAG_LEN:
        raise SealedBlobError(
            "a sealed blob is truncated; it is damaged. Fetch it again or report it.",
            reason="sealed_malformed",
        )
    return blob[:end], blob[_FIXED.size : end], blob[end:]


def seal(plaintext: bytes, recipient_public: bytes | x25519.X25519PublicKey, info: bytes) -> bytes:
    """Seal ``plaintext`` to ``recipient_public`` (32 raw bytes) for the purpose ``info``.

    A fresh ephemeral key every call: sealing the same bytes twice gives different blobs.
    Raises :class:`DeviceKeyError` for a malformed public key.
    """
    header = _header(info)
    return header + _SUITE.encrypt(plaintext, _public_key(recipient_public), info=header)


def sealed_info(blob: bytes) -> bytes:
    """The purpose label a blob was sealed with (from its header; not authenticated until
    the blob is opened)."""
    return _split(blob)[1]


def open_sealed(
    blob: bytes,
    recipient_private: bytes | x25519.X25519PrivateKey,
    *,
    expect_info: bytes | None = None,
) -> bytes:
    """Open a sealed blob with the recipient's private key (32 raw bytes or a key object).

    ``expect_info``: when given, a blob sealed for another purpose is refused.
    Raises :class:`SealedBlobError`: reason ``sealed_malformed``/``sealed_unsupported`` for a
    blob that is not one, ``sealed_wrong_purpose``, or ``sealed_invalid`` when it was altered
    or sealed to another key (the two cannot be told apart, by design).
    """
    header, info, body = _split(blob)
    if expect_info is not None and info != expect_info:
        raise SealedBlobError(
            "this sealed blob was made for another purpose and is refused; check that the "
            "right blob was given.",
            reason="sealed_wrong_purpose",
        )
    try:
        return _SUITE.decrypt(body, _private_key(recipient_private), info=header)
    except InvalidTag as exc:
        raise SealedBlobError(
            "a sealed blob could not be opened: it was altered or sealed to a different key. "
            "Check that the right key was used; if it was, the blob is damaged.",
        ) from exc


def sealed_sha256(blob: bytes) -> str:
    """Hex SHA-256 of the sealed bytes: the blob's name in the outbox, the record and the
    API's ``PUT /v1/blobs/{sha256hex}``."""
    return hashlib.sha256(blob).hexdigest()


# --- photos: the device side ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SealedPhoto:
    blob: bytes
    sha256: str


class PhotoSealer:
    """Seals photos to the central API. Holds the API's public key only: nothing on the device
    can open what it seals."""

    __slots__ = ("_public",)

    def __init__(self, api_public: bytes) -> None:
        self._public = _public_key(api_public)

    @classmethod
    def from_config(cls, seal_public_key_b64: str) -> PhotoSealer:
        """From ``[api] seal_public_key``. Raises :class:`DeviceKeyError` when it is empty
        (the device is not provisioned) or malformed."""
        if not seal_public_key_b64:
            raise DeviceKeyError(
                "no photo-sealing key is configured ([api] seal_public_key is empty); "
                "provision the device with `kioskctl provision`.",
                reason="seal_key",
            )
        return cls(public_from_b64(seal_public_key_b64))

    def seal_photo(self, jpeg: bytes) -> SealedPhoto:
        blob = seal(jpeg, self._public, PHOTO_INFO)
        return SealedPhoto(blob, sealed_sha256(blob))

    def seal_enrolment(self, templates: dict[str, bytes]) -> SealedPhoto:
        """The templates taken at an enrolment ({finger: template}), as one blob only the
        central API opens (purpose ENROLMENT_INFO: it cannot pass for a photo or a roster
        template)."""
        plain = json.dumps(
            {finger: base64.b64encode(t).decode() for finger, t in templates.items()},
            sort_keys=True,
        ).encode()
        blob = seal(plain, self._public, ENROLMENT_INFO)
        return SealedPhoto(blob, sealed_sha256(blob))


def open_enrolment(blob: bytes, api_private: x25519.X25519PrivateKey) -> dict[str, bytes]:
    """The central API's side of :meth:`PhotoSealer.seal_enrolment`. Raises SealedBlobError."""
    plain = open_sealed(blob, api_private, expect_info=ENROLMENT_INFO)
    try:
        raw = json.loads(plain)
        return {str(f): base64.b64decode(t, validate=True) for f, t in raw.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise SealedBlobError(
            "the enrolment blob holds no templates", reason="sealed_invalid"
        ) from exc


# --- roster templates: the device's roster key ---------------------------------------------
def roster_key_path(signing_key_path: Path) -> Path:
    """Where the roster key lives: beside the signing key (``roster-key.pem``)."""
    return signing_key_path.with_name("roster-key.pem")


def seal_template(template: bytes, device_roster_public: bytes) -> bytes:
    """Seal a fingerprint template to a device's roster key (the central API's side)."""
    return seal(template, device_roster_public, TEMPLATE_INFO)


class RosterKey:
    """The device's X25519 roster key: opens roster templates, in memory, for one match.

    Separate from the signing key (docs/privacy.md says why). The file is PEM PKCS#8, mode
    0600, written atomically. It opens templates only: it refuses blobs of any other purpose.
    """

    __slots__ = ("_private",)

    def __init__(self, private: x25519.X25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def create(cls, path: Path, *, overwrite: bool = False) -> RosterKey:
        """Make a new roster key at ``path`` (mode 0600). Refuses to replace an existing one
        unless ``overwrite`` (templates sealed to the old key then become unreadable: the API
        must be given the new public key and re-seal the roster). Raises DeviceKeyError."""
        if path.exists() and not overwrite:
            raise DeviceKeyError(
                f"a roster key already exists at {path}; refusing to replace it. Use "
                "`kioskctl provision --force` to rotate it deliberately.",
                reason="roster_key",
            )
        private = x25519.X25519PrivateKey.generate()
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_file(path, pem)
        return cls(private)

    @classmethod
    def load(cls, path: Path) -> RosterKey:
        """Read the roster key; refuses a file others can read. Raises DeviceKeyError."""
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError as exc:
            raise DeviceKeyError(
                f"no roster key at {path}; provision the device with `kioskctl provision`.",
                reason="roster_key",
            ) from exc
        if mode & 0o077:
            raise DeviceKeyError(
                f"the roster key {path} has mode {mode:04o}; it must be 0600. "
                f"Fix it with: chmod 600 {path}",
                reason="key_permissions",
            )
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise DeviceKeyError(
                f"the roster key {path} is not a readable PEM private key; re-provision with "
                "`kioskctl provision --force` (the API then re-seals the roster).",
                reason="roster_key",
            ) from exc
        if not isinstance(private, x25519.X25519PrivateKey):
            raise DeviceKeyError(
                f"the roster key {path} is not an X25519 key; re-provision the device.",
                reason="roster_key",
            )
        return cls(private)

    def public_bytes(self) -> bytes:
        """The 32-byte public key the central API seals templates to."""
        return public_bytes(self._private.public_key())

    def open_template(self, blob: bytes) -> bytes:
        """Open one roster template for a match. Keep the result only as long as the match
        needs it. Raises :class:`SealedBlobError`."""
        return open_sealed(blob, self._private, expect_info=TEMPLATE_INFO)
