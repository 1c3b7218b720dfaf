"""Fingerprint sensor driver (ZhianTec-style R503/R307/AS608 over UART).

Consumers use :func:`open_fingerprint` and the :class:`FingerprintSensor` protocol; the
codec backend is the default, pyfingerprint the alternative (docs/fingerprint.md says why).

May import: the standard library, daemon.errors, pyserial/gpiozero/pyfingerprint lazily.
"""

from __future__ import annotations

from drivers.fingerprint.aio import AsyncSensor
from drivers.fingerprint.factory import build_fingerprint, open_fingerprint
from drivers.fingerprint.interface import (
    DuplicateFinger,
    Enrolment,
    EnrolmentFailed,
    FingerprintError,
    FingerprintSensor,
    FingerprintSettings,
    LedColour,
    LedMode,
    Match,
    NoFinger,
    PoorImage,
    SensorInfo,
    SensorMissing,
    SensorNotAnswering,
    SensorProtocolError,
    SensorRefused,
)

__all__ = [
    "AsyncSensor",
    "DuplicateFinger",
    "Enrolment",
    "EnrolmentFailed",
    "FingerprintError",
    "FingerprintSensor",
    "FingerprintSettings",
    "LedColour",
    "LedMode",
    "Match",
    "NoFinger",
    "PoorImage",
    "SensorInfo",
    "SensorMissing",
    "SensorNotAnswering",
    "SensorProtocolError",
    "SensorRefused",
    "build_fingerprint",
    "open_fingerprint",
]
