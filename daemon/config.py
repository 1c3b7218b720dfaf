"""The kiosk's configuration: one TOML file (``/etc/kiosk/kiosk.toml`` on a device), read
once at start-up into frozen dataclasses. Any unknown key or bad value is a
:class:`~daemon.errors.ConfigError` naming the key, the value and what is allowed; the daemon
exits with status 78 (EX_CONFIG) on it, and systemd does not restart it
(``RestartPreventExitStatus=78``).

Driver sections reuse the settings dataclasses that live with each driver.

The files the configuration names for TLS (``api.ca_bundle``, ``api.client_cert``,
``api.client_key``) are checked when it is loaded (:func:`check_api_files`): each exists, can
be read, and is PEM that TLS can use; the pair belongs together. Otherwise the sync daemon would
start and crash on its first connection, and systemd would restart it until its start limit.

May import: the standard library, ``daemon.confload``, ``daemon.errors``, ``daemon.purposes``,
driver settings.
"""

from __future__ import annotations

import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from daemon.confload import build
from daemon.errors import ConfigError
from daemon.purposes import OPERATOR_ID
from drivers.camera.interface import CameraSettings
from drivers.display.interface import DisplaySettings
from drivers.fingerprint.interface import FingerprintSettings
from drivers.gpio.interface import GpioSettings
from drivers.printer.interface import PrinterSettings

DEFAULT_PATH = Path("/etc/kiosk/kiosk.toml")
EX_CONFIG = 78


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    id: str
    data_dir: Path = Path("/var/lib/kiosk")
    key_alg: Literal["ES256", "EdDSA"] = "ES256"
    #: default: ``<data_dir>/device-key.pem``
    key_file: Path | None = None
    office: str = ""
    #: simulated backends are refused unless this is true (and then shown on screen/STATUS)
    allow_simulated: bool = False

    def __post_init__(self) -> None:
        if not self.id or len(self.id) > 64 or not all(c.isalnum() or c in "._-" for c in self.id):
            raise ValueError(f"id = {self.id!r} is not allowed: use 1-64 of A-Z a-z 0-9 . _ -")

    @property
    def key_path(self) -> Path:
        return self.key_file or self.data_dir / "device-key.pem"


@dataclass(frozen=True, slots=True)
class HardwareKeyConfig:
    """``[hardware_key]``: the device key on a PKCS#11 token instead of ``device.key_file``."""

    #: the token's PKCS#11 library, e.g. /usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so
    module: Path
    token: str = "kiosk"  # noqa: S105 - the token's label, not a secret
    key_label: str = "device"
    #: the token's user PIN, one line, mode 0600
    pin_file: Path = Path("/etc/kiosk/token-pin")

    def __post_init__(self) -> None:
        for name in ("token", "key_label"):
            value = getattr(self, name)
            if not value or len(value) > 32 or not value.isprintable():
                raise ValueError(
                    f"{name} = {value!r} is not allowed: use 1-32 printable characters"
                )


@dataclass(frozen=True, slots=True)
class ApiConfig:
    url: str
    #: CA bundle that signs the API's certificate; None = the system's CAs. Never disabled.
    ca_bundle: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    #: the API's X25519 photo-sealing public key, base64 (set by `kioskctl provision`)
    seal_public_key: str = ""
    timeout_s: float = 10.0
    batch_size: int = 200
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    heartbeat_s: float = 60.0
    roster_s: float = 300.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(
                f"url = {self.url!r} is not allowed: the API must be an https:// URL "
                "(TLS verification is never switched off)"
            )
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert: client_cert and client_key must be given together")
        if not 1 <= self.batch_size <= 500:
            raise ValueError(f"batch_size = {self.batch_size} is not allowed: use 1..500")
        if not 0 < self.timeout_s <= 120:
            raise ValueError(f"timeout_s = {self.timeout_s} is not allowed: use (0, 120]")
        if not 0 < self.backoff_base_s <= self.backoff_cap_s:
            raise ValueError("backoff_base_s: need 0 < backoff_base_s <= backoff_cap_s")


#: defaults of the two disk levels above the reserve (docs/configuration.md says why)
NO_PHOTO_FREE_MB = 256
LOW_FREE_MB = 1024


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """The data disk's three levels, highest first: below ``low_free_mb`` staff are told
    space is running low; below ``no_photo_free_mb`` check-ins are saved without the photo
    (flag ``no_photo``); below ``min_free_mb`` (the reserve) no record is written and a person
    who starts a check-in is sent to reception. See daemon/diskspace.py."""

    #: the reserve: refuse new records (with a clear error to staff) below this much free space
    min_free_mb: int = 64
    #: save check-ins without the photo below this; default 256, or min_free_mb if larger
    no_photo_free_mb: int | None = None
    #: tell staff space is running low below this; default 1024, or the no-photo level if larger
    low_free_mb: int | None = None
    #: acknowledged records (personal data: case references, answers) are deleted from the
    #: device this many days after they were made; the central API holds the record of truth
    keep_acked_days: float = 30.0

    @property
    def no_photo_mb(self) -> int:
        """``no_photo_free_mb`` as set, or its default (never below the reserve)."""
        if self.no_photo_free_mb is not None:
            return self.no_photo_free_mb
        return max(NO_PHOTO_FREE_MB, self.min_free_mb)

    @property
    def low_mb(self) -> int:
        """``low_free_mb`` as set, or its default (never below the no-photo level)."""
        if self.low_free_mb is not None:
            return self.low_free_mb
        return max(LOW_FREE_MB, self.no_photo_mb)

    def __post_init__(self) -> None:
        if self.min_free_mb < 1:
            raise ValueError(f"min_free_mb = {self.min_free_mb} is not allowed: use >= 1")
        if self.no_photo_mb < self.min_free_mb:
            raise ValueError(
                f"no_photo_free_mb = {self.no_photo_mb} is not allowed: use >= min_free_mb "
                f"({self.min_free_mb}); equal to it, photos are never dropped"
            )
        if self.low_mb < self.no_photo_mb:
            raise ValueError(
                f"low_free_mb = {self.low_mb} is not allowed: use >= no_photo_free_mb "
                f"({self.no_photo_mb})"
            )
        if not 0 <= self.keep_acked_days <= 3650:
            raise ValueError(
                f"keep_acked_days = {self.keep_acked_days} is not allowed: use 0..3650"
            )


@dataclass(frozen=True, slots=True)
class UiConfig:
    #: the local UI listens on 127.0.0.1 only; the port is configurable, the address is not
    port: int = 8088

    def __post_init__(self) -> None:
        if not 1024 <= self.port <= 65535:
            raise ValueError(f"port = {self.port} is not allowed: use 1024..65535")


#: what may be printed as the privacy notice's whereabouts: a short web address or phone
#: number (letters, digits, spaces and the punctuation of addresses), nothing else
_NOTICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .,:/_+()~?=&#%-]*$")
NOTICE_MAX = 60


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    """``[privacy]``: where a person can read how their information is used (UK GDPR Arts.
    13-14, DPA 2018 s.44: the transparency notice). Printed on every slip in the person's
    language; unset, the slip says to ask at reception. A short web address or phone number,
    at most :data:`NOTICE_MAX` characters (two lines of a 58 mm slip): the printer wraps it but
    a long address is hard to copy by hand."""

    #: e.g. ``gov.uk/probation-privacy`` or ``0300 123 4567``
    notice: str = ""
    #: the Welsh notice, when it is elsewhere (a ``/cy`` page); default: ``notice``
    notice_cy: str = ""

    def __post_init__(self) -> None:
        for name in ("notice", "notice_cy"):
            value = getattr(self, name)
            if value and (len(value) > NOTICE_MAX or not _NOTICE.match(value)):
                raise ValueError(
                    f"{name} = {value!r} is not allowed: use a web address or phone number of "
                    f"at most {NOTICE_MAX} characters (letters, digits, spaces, . , : / _ + "
                    "( ) ~ ? = & # % -)"
                )
        if self.notice_cy and not self.notice:
            raise ValueError(
                "notice_cy: set notice too (the English slip must point to the notice as well)"
            )

    def where(self, lang: str) -> str:
        """Where the notice is, for a slip in ``lang``; empty when not configured."""
        return (self.notice_cy or self.notice) if lang == "cy" else self.notice


_PIN_HASH = re.compile(r"^pbkdf2\$[0-9]{4,7}\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")


@dataclass(frozen=True, slots=True)
class StaffMember:
    """One member of staff who may use the kiosk's staff mode, by their own PIN, so records of
    what they did name them (``kioskctl staff add``)."""

    #: how records name them: lower case letters, digits, ``.``, ``_``, ``-`` (not their name)
    id: str
    #: PBKDF2-SHA256 of their PIN: "pbkdf2$<iterations>$<salt b64>$<hash b64>"
    pin_hash: str

    def __post_init__(self) -> None:
        if not OPERATOR_ID.fullmatch(self.id):
            raise ValueError(
                f"id = {self.id!r} is not allowed: use 1-32 lower-case letters, digits, "
                "'.', '_' or '-' (a staff number, not a name)"
            )
        if not _PIN_HASH.match(self.pin_hash):
            raise ValueError(
                f"pin_hash of {self.id!r} is not a PIN hash: set it with `kioskctl staff add`"
            )


@dataclass(frozen=True, slots=True)
class StaffConfig:
    #: one PIN shared by all staff (records name them "staff"); prefer ``members``. Empty, with
    #: no members, disables staff mode on the kiosk (staff then use kioskctl)
    pin_hash: str = ""
    #: each member of staff with their own PIN (``[[staff.members]]``; ``kioskctl staff``)
    members: tuple[StaffMember, ...] = ()
    #: idle time on a check-in screen before "do you need more time?"; the visit then ends
    #: 30 s later unless the person touches "more time" (WCAG 2.2.1: at least 20 s to react)
    warn_after_s: float = 90.0

    def __post_init__(self) -> None:
        if not 20 <= self.warn_after_s <= 600:
            raise ValueError(
                f"warn_after_s = {self.warn_after_s} is not allowed: use 20..600 (seconds; "
                "people who read slowly need time)"
            )
        ids = [m.id for m in self.members]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"members: staff id {dupes[0]!r} appears twice; ids must differ")
        if self.pin_hash and "staff" in ids:
            raise ValueError("members: the id 'staff' names the shared pin_hash; choose another id")


@dataclass(frozen=True, slots=True)
class Config:
    device: DeviceConfig
    api: ApiConfig
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    staff: StaffConfig = field(default_factory=StaffConfig)
    fingerprint: FingerprintSettings = field(default_factory=FingerprintSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    printer: PrinterSettings = field(default_factory=PrinterSettings)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    hardware_key: HardwareKeyConfig | None = None

    @property
    def simulated_parts(self) -> list[str]:
        """The parts configured with a simulated backend (refused unless allowed)."""
        parts = []
        if self.fingerprint.backend == "emulator":
            parts.append("fingerprint")
        if self.camera.backend == "simulated":
            parts.append("camera")
        if self.gpio.backend == "mock":
            parts.append("gpio")
        if self.display.backend == "simulated":
            parts.append("display")
        if self.printer.backend == "simulated":
            parts.append("printer")
        return parts

    def __post_init__(self) -> None:
        if self.hardware_key is not None and self.device.key_alg != "ES256":
            raise ConfigError(
                f"device.key_alg = {self.device.key_alg!r} is not allowed with [hardware_key]: "
                'hardware keys sign ES256 (P-256); set key_alg = "ES256"'
            )
        if self.simulated_parts and not self.device.allow_simulated:
            raise ConfigError(
                f"simulated hardware configured for {', '.join(self.simulated_parts)} but "
                "device.allow_simulated is false; set real backends, or allow_simulated = true "
                "for a demo or test rig (the kiosk then says so on screen)"
            )


def parse_config(table: dict[str, Any]) -> Config:
    return build(Config, table, "")


#: what to do about each TLS file the configuration names
_TLS_FIX = {
    "ca_bundle": "put the CA bundle the central team gave you (PEM) there (`kioskctl provision` "
    "writes /etc/kiosk/api-ca.pem), or correct the path; remove the line to trust the "
    "system's CAs",
    "client_cert": "install this kiosk's client certificate (PEM) there, or correct the path; "
    "remove client_cert and client_key if the API does not ask for client certificates",
    "client_key": "install this kiosk's client key (PEM, unencrypted, mode 0600) there, or "
    "correct the path; remove client_cert and client_key if the API does not ask for client "
    "certificates",
}
_TLS_WHAT = {
    "ca_bundle": ("a PEM certificate bundle", "-----BEGIN CERTIFICATE-----"),
    "client_cert": ("a PEM certificate", "-----BEGIN CERTIFICATE-----"),
    "client_key": ("a PEM private key", "PRIVATE KEY-----"),
}


def _read_tls_file(name: str, path: Path, key: str = "", fix: str = "") -> bytes:
    """The bytes of ``api.<name>`` (or of the option ``key``); ConfigError naming the key, the
    path and what to do (``fix``, by default the advice for the configuration key)."""
    key = key or f"api.{name}"
    fix = fix or _TLS_FIX[name]
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{key}: {path} does not exist; {fix}") from exc
    except PermissionError as exc:
        raise ConfigError(
            f"{key}: permission denied reading {path}: run as root (sudo) or as the kiosk "
            "user; the kiosk user must be able to read it"
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"{key}: {path} cannot be read ({exc.strerror or exc.__class__.__name__}); {fix}"
        ) from exc
    what, marker = _TLS_WHAT[name]
    if marker.encode() not in data:
        extra = ""
        if name != "client_key" and b"PRIVATE KEY-----" in data:
            extra = " (it holds a private key: the kiosk needs only the CA's certificate)"
        raise ConfigError(f"{key}: {path} is not {what}{extra}; {fix}")
    if name == "client_key" and b"ENCRYPTED" in data:
        raise ConfigError(
            f"{key}: {path} is encrypted, and the kiosk cannot type a passphrase; store it "
            f"unencrypted with mode 0600 (`openssl pkey -in {path} -out NEW`)"
        )
    return data


def check_ca_bundle(path: Path, key: str = "api.ca_bundle", fix: str = "") -> None:
    """``path`` is a readable PEM bundle TLS accepts; ConfigError naming ``key`` otherwise."""
    data = _read_tls_file("ca_bundle", path, key, fix)
    try:
        ssl.create_default_context(cadata=data.decode("ascii", errors="replace"))
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{key}: {path} is not a usable PEM certificate bundle ({exc.reason or exc}); "
            f"{fix or _TLS_FIX['ca_bundle']}"
        ) from exc


class _Encrypted(Exception):
    """Raised from the passphrase callback: OpenSSL must never prompt on a terminal."""


def _no_passphrase() -> bytes:
    raise _Encrypted


def check_api_files(api: ApiConfig) -> None:
    """Check the TLS files ``api`` names: present, readable, PEM that TLS accepts, the client
    key belonging to the client certificate. Raises :class:`ConfigError` naming the key, the
    path and what to do. Reads each file once; no network."""
    if api.ca_bundle is not None:
        check_ca_bundle(api.ca_bundle)
    if api.client_cert is None or api.client_key is None:
        return
    _read_tls_file("client_cert", api.client_cert)
    _read_tls_file("client_key", api.client_key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_cert_chain(str(api.client_cert), str(api.client_key), password=_no_passphrase)
    except _Encrypted as exc:
        raise ConfigError(
            f"api.client_key: {api.client_key} is encrypted, and the kiosk cannot type a "
            "passphrase; store it unencrypted with mode 0600"
        ) from exc
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ConfigError(
                f"api.client_key: {api.client_key} is not the key of api.client_cert "
                f"{api.client_cert}; install the matching pair"
            ) from exc
        raise ConfigError(
            f"api.client_cert: {api.client_cert} with api.client_key {api.client_key} cannot "
            f"be used ({exc.reason or exc}); install the certificate and key as PEM"
        ) from exc
    except OSError as exc:  # changed under our feet since it was read
        raise ConfigError(
            f"api.client_cert: cannot be read ({exc}); run the command again"
        ) from exc


def load_config(path: Path = DEFAULT_PATH, *, check_files: bool = True) -> Config:
    """Read and validate ``path``; with ``check_files``, also the TLS files it names
    (:func:`check_api_files`). Raises :class:`ConfigError` saying what to fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no configuration file at {path}; create it (see docs/configuration.md) "
            "or provision the device with `kioskctl provision`."
        ) from exc
    except PermissionError as exc:
        raise ConfigError(
            f"permission denied reading the configuration file {path}: run as root (sudo) or "
            "as the kiosk user; the kiosk user must be able to read it (/etc/kiosk is 0750 "
            "root:kiosk)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc}") from exc
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix the file and restart.") from exc
    cfg = parse_config(table)
    if check_files:
        check_api_files(cfg.api)
    return cfg
