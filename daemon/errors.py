"""The project's one exception tree.

Every error carries a ``reason`` (a short, stable code the UI and the health report can show)
and a message that says what to do next. Third-party exceptions are translated at the
boundary with ``raise ... from exc``. Messages never contain personal data.

May import: the standard library only.
"""

from __future__ import annotations


class KioskError(Exception):
    """Root of every error the project raises on purpose."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


# --- configuration ---------------------------------------------------------------------------
class ConfigError(KioskError):
    """The configuration is malformed; the daemon exits with EX_CONFIG (78)."""

    reason = "config"


# --- drivers ---------------------------------------------------------------------------------
class DriverError(KioskError):
    """A device misbehaved or is missing."""

    reason = "driver"


class DeviceNotFound(DriverError):
    reason = "device_not_found"


class DeviceTimeout(DriverError):
    reason = "device_timeout"


class ProtocolError(DriverError):
    """Bytes from a device did not follow its protocol (bad header, checksum, length)."""

    reason = "protocol"


# --- storage ---------------------------------------------------------------------------------
class StorageError(KioskError):
    reason = "storage"


class DiskFull(StorageError):
    """Too little free space to accept a new check-in safely; queued data is untouched."""

    reason = "disk_full"


class OutboxCorrupt(StorageError):
    reason = "outbox_corrupt"


# --- records and keys ------------------------------------------------------------------------
class RecordError(KioskError):
    """A record failed verification (signature, chain, schema)."""

    reason = "record_invalid"


class DeviceKeyError(KioskError):
    """The device key is missing, unreadable or has unsafe permissions."""

    reason = "key"


# --- sync ------------------------------------------------------------------------------------
class SyncError(KioskError):
    reason = "sync"


class ApiUnreachable(SyncError):
    reason = "api_unreachable"


class TlsError(SyncError):
    reason = "tls"


class ApiProtocolError(SyncError):
    """The central API answered something that does not follow the contract."""

    reason = "api_protocol"


# --- command lines ---------------------------------------------------------------------------
class UsageError(KioskError):
    """A command-line argument is wrong (not the configuration file): exit status 2. The
    message says what the argument must look like."""

    reason = "usage"
