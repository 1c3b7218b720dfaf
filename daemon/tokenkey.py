"""The device key on a PKCS#11 token, and the choice between it and the key file.

A hardware key (an ATECC608B through cryptoauthlib's PKCS#11 library, a TPM 2.0 through
tpm2-pkcs11; SoftHSM2 in the tests) keeps the record-signing key off the SD card: whoever
copies the card cannot sign records as this kiosk. The private key is generated on the token,
marked sensitive and not extractable, and never leaves it. The kiosk hashes what it signs
(SHA-256) and asks the token for a raw ECDSA P-256 signature (``CKM_ECDSA``), which is the
JWS ES256 ``r||s`` form already, so records and signed requests do not change.

The token's user PIN is read from a file (mode 0600, like a key file) and is never logged.
``python-pkcs11`` is imported only when a token is configured (the ``pkcs11`` extra).

May import: the standard library, ``pkcs11``, ``cryptography``, ``daemon.keys``,
``daemon.config``, ``daemon.errors``.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from daemon.errors import DeviceKeyError
from daemon.keys import Alg, FileKeyBackend, PublicKey, SigningKey, check_private_mode

if TYPE_CHECKING:
    from daemon.config import DeviceConfig, HardwareKeyConfig

#: where a new key is made during a rotation, until the old key has signed the rotation record
NEXT_SUFFIX = ".next"
#: the old key during the switch of a rotation (destroyed once the new key has its label)
OLD_SUFFIX = ".old"


class KeyBackend(Protocol):
    """Where the device key lives: a file (:class:`~daemon.keys.FileKeyBackend`) or a token."""

    def exists(self) -> bool: ...

    def load(self) -> SigningKey: ...

    def describe(self) -> str:
        """Where the key is, for messages (never the PIN)."""
        ...


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise DeviceKeyError(
            "a hardware key is configured but python-pkcs11 is not installed; install the "
            "kiosk with its pkcs11 extra (pip install 'probation-kiosk[pkcs11]').",
            reason="hardware_key",
        ) from exc
    return pkcs11


class TokenKey:
    """A :class:`~daemon.keys.SigningKey` whose private half is on a PKCS#11 token."""

    def __init__(self, session: Any, private: Any, public: ec.EllipticCurvePublicKey, where: str):
        self._session = session
        self._private = private
        self._public = public
        self._where = where
        self._lock = threading.Lock()  # one PKCS#11 operation at a time per session

    @property
    def alg(self) -> Alg:
        return "ES256"

    def sign(self, data: bytes) -> bytes:
        pkcs11 = _pkcs11()
        digest = hashlib.sha256(data).digest()
        try:
            with self._lock:
                signature = bytes(self._private.sign(digest, mechanism=pkcs11.Mechanism.ECDSA))
        except pkcs11.PKCS11Error as exc:
            raise DeviceKeyError(
                f"the hardware key ({self._where}) did not sign ({type(exc).__name__}); check "
                "that the token is fitted and run `kioskctl doctor`.",
                reason="hardware_key",
            ) from exc
        if len(signature) != 64:
            raise DeviceKeyError(
                f"the hardware key ({self._where}) returned a {len(signature)}-byte signature; "
                "ES256 needs 64. Is the key on curve P-256?",
                reason="hardware_key",
            )
        return signature

    def public_key(self) -> PublicKey:
        return self._public

    def close(self) -> None:
        self._session.close()


class TokenKeyBackend:
    """The device key as an EC P-256 key pair labelled ``key_label`` on the token ``token``
    of the PKCS#11 library ``module``."""

    def __init__(self, module: Path, token: str, key_label: str, pin_file: Path) -> None:
        self.module = module
        self.token = token
        self.key_label = key_label
        self.pin_file = pin_file

    def describe(self) -> str:
        return f"token {self.token!r}, key {self.key_label!r}, library {self.module}"

    # --- sessions -------------------------------------------------------------------------
    def _pin(self) -> str:
        try:
            check_private_mode(self.pin_file, "the hardware key's PIN file")
            pin = self.pin_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError as exc:
            raise DeviceKeyError(
                f"no PIN file for the hardware key at {self.pin_file}; write the token's user "
                "PIN there (one line, mode 0600, readable by the kiosk user), or correct "
                "hardware_key.pin_file. `kioskctl provision` does not write it.",
                reason="hardware_key",
            ) from exc
        except PermissionError as exc:
            raise DeviceKeyError(
                f"permission denied reading the hardware key's PIN file {self.pin_file}: run "
                "kioskctl as root (sudo) or as the kiosk user",
                reason="key_access",
            ) from exc
        if not pin:
            raise DeviceKeyError(f"the PIN file {self.pin_file} is empty", reason="hardware_key")
        return pin

    def _open(self) -> Any:
        pkcs11 = _pkcs11()
        if not self.module.is_file():
            raise DeviceKeyError(
                f"the PKCS#11 library {self.module} does not exist; install the token's "
                "PKCS#11 package or fix hardware_key.module in the configuration.",
                reason="hardware_key",
            )
        try:
            lib = pkcs11.lib(str(self.module))
            try:
                token = lib.get_token(token_label=self.token)
            except pkcs11.NoSuchToken:
                # the library lists the tokens it saw when it was loaded: look again, for one
                # fitted (or initialised by `kioskctl provision`) since
                lib.reinitialize()
                token = lib.get_token(token_label=self.token)
        except pkcs11.NoSuchToken as exc:
            raise DeviceKeyError(
                f"no token labelled {self.token!r} in {self.module}; is the hardware key "
                "fitted and initialised? (`kioskctl doctor` lists what it sees)",
                reason="hardware_key",
            ) from exc
        except (pkcs11.PKCS11Error, RuntimeError) as exc:
            raise DeviceKeyError(
                f"the PKCS#11 library {self.module} could not be used ({type(exc).__name__})",
                reason="hardware_key",
            ) from exc
        pin = self._pin()
        try:
            try:
                return token.open(user_pin=pin, rw=True)
            except pkcs11.UserAlreadyLoggedIn:
                # PKCS#11 logs in per process and token: another session of ours already did
                return token.open(rw=True)
        except pkcs11.PinIncorrect as exc:
            raise DeviceKeyError(
                f"the hardware key refused the PIN in {self.pin_file}; fix the file (tokens "
                "lock after a few wrong PINs, so do not retry blindly).",
                reason="hardware_key",
            ) from exc
        except pkcs11.PKCS11Error as exc:
            raise DeviceKeyError(
                f"could not open a session on token {self.token!r} ({type(exc).__name__})",
                reason="hardware_key",
            ) from exc

    @staticmethod
    def _find(session: Any, object_class: Any, label: str) -> Any | None:
        attribute = _pkcs11().Attribute
        found = list(session.get_objects({attribute.CLASS: object_class, attribute.LABEL: label}))
        if len(found) > 1:
            raise DeviceKeyError(
                f"the token holds {len(found)} keys labelled {label!r}; remove the extra ones "
                "(pkcs11-tool --delete-object) so the kiosk signs with exactly one.",
                reason="hardware_key",
            )
        return found[0] if found else None

    def _token_key(self, session: Any, label: str) -> TokenKey | None:
        pkcs11 = _pkcs11()
        from pkcs11.util.ec import encode_ec_public_key

        private = self._find(session, pkcs11.ObjectClass.PRIVATE_KEY, label)
        public = self._find(session, pkcs11.ObjectClass.PUBLIC_KEY, label)
        if private is None or public is None:
            return None
        loaded = serialization.load_der_public_key(encode_ec_public_key(public))
        if not isinstance(loaded, ec.EllipticCurvePublicKey) or not isinstance(
            loaded.curve, ec.SECP256R1
        ):
            raise DeviceKeyError(
                f"the key {label!r} on token {self.token!r} is not an EC P-256 key; ES256 needs "
                "P-256. Re-provision with `kioskctl provision --force`.",
                reason="hardware_key",
            )
        return TokenKey(session, private, loaded, f"token {self.token!r}, key {label!r}")

    # --- the backend interface ------------------------------------------------------------
    def exists(self) -> bool:
        session = self._open()
        try:
            return self._token_key(session, self.key_label) is not None
        finally:
            session.close()

    def load(self) -> TokenKey:
        session = self._open()
        self._finish_promotion(session)  # a rotation interrupted by a power cut
        key = self._token_key(session, self.key_label)
        if key is None:
            session.close()
            raise DeviceKeyError(
                f"no key labelled {self.key_label!r} on token {self.token!r}; provision the "
                "device with `kioskctl provision`.",
                reason="hardware_key",
            )
        return key

    def generate_next(self) -> TokenKey:
        """Make a new P-256 key pair on the token under ``<key_label>.next`` (replacing an
        unfinished one). It becomes the device key only by :meth:`promote_next`, after the old
        key has signed the ``key_rotation`` record."""
        pkcs11 = _pkcs11()
        from pkcs11.util.ec import encode_named_curve_parameters

        label = self.key_label + NEXT_SUFFIX
        session = self._open()
        try:
            self._destroy(session, label)
            params = session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True,
            )
            params.generate_keypair(
                store=True,
                label=label,
                private_template={
                    pkcs11.Attribute.SENSITIVE: True,
                    pkcs11.Attribute.EXTRACTABLE: False,
                    pkcs11.Attribute.SIGN: True,
                },
            )
            key = self._token_key(session, label)
        except pkcs11.PKCS11Error as exc:
            session.close()
            raise DeviceKeyError(
                f"the token {self.token!r} could not make a P-256 key ({type(exc).__name__})",
                reason="hardware_key",
            ) from exc
        if key is None:  # pragma: no cover - the token stored nothing it said it stored
            session.close()
            raise DeviceKeyError("the token did not keep the key it made", reason="hardware_key")
        return key

    def promote_next(self) -> None:
        """The rotation's switch, after the ``key_rotation`` record is committed: the old pair
        is relabelled ``.old``, ``.next`` becomes the key, then ``.old`` is destroyed. A crash
        part-way is finished by the next :meth:`load`."""
        session = self._open()
        try:
            if self._token_key(session, self.key_label + NEXT_SUFFIX) is None:
                raise DeviceKeyError(
                    f"no new key {self.key_label + NEXT_SUFFIX!r} on token {self.token!r} to "
                    "switch to",
                    reason="hardware_key",
                )
            key = self.key_label
            self._relabel(session, key, key + OLD_SUFFIX)  # nothing to set aside the first time
            self._relabel(session, key + NEXT_SUFFIX, key)
            self._destroy(session, key + OLD_SUFFIX)
        finally:
            session.close()

    def _finish_promotion(self, session: Any) -> None:
        """Steps 2 and 3 of :meth:`promote_next`; harmless when there is nothing to finish."""
        key, old = self.key_label, self.key_label + OLD_SUFFIX
        if self._token_key(session, old) is None:
            return
        if self._token_key(session, key) is None:
            self._relabel(session, key + NEXT_SUFFIX, key)
        self._destroy(session, old)

    def _relabel(self, session: Any, label: str, new_label: str) -> None:
        pkcs11 = _pkcs11()
        for object_class in (pkcs11.ObjectClass.PRIVATE_KEY, pkcs11.ObjectClass.PUBLIC_KEY):
            obj = self._find(session, object_class, label)
            if obj is not None:
                obj[pkcs11.Attribute.LABEL] = new_label

    def _destroy(self, session: Any, label: str) -> None:
        pkcs11 = _pkcs11()
        for object_class in (pkcs11.ObjectClass.PRIVATE_KEY, pkcs11.ObjectClass.PUBLIC_KEY):
            obj = self._find(session, object_class, label)
            if obj is not None:
                obj.destroy()


def key_backend(device: DeviceConfig, hardware_key: HardwareKeyConfig | None) -> KeyBackend:
    """The configured home of the device key: the token when ``[hardware_key]`` is set, else
    the key file."""
    if hardware_key is None:
        return FileKeyBackend(device.key_path)
    return TokenKeyBackend(
        hardware_key.module, hardware_key.token, hardware_key.key_label, hardware_key.pin_file
    )
