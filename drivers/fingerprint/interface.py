"""What the daemon sees of the fingerprint sensor: a Protocol in kiosk words, its values and errors.

The daemon verifies a person 1:1 against the template the roster carries for them
(ARCHITECTURE.md §6); it never uses the sensor's flash library. Every failure is a typed error
whose ``reason`` the UI can show.

May import: the standard library and daemon.errors.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from daemon.errors import ConfigError, DeviceNotFound, DeviceTimeout, DriverError, ProtocolError

Backend = Literal["serial", "pyfingerprint", "emulator"]


# --- errors ----------------------------------------------------------------------------------
class FingerprintError(DriverError):
    """A fingerprint operation did not complete."""

    reason = "fingerprint"


class NoFinger(FingerprintError):
    """No finger was placed on the sensor before the wait ran out."""

    reason = "no_finger"


class PoorImage(FingerprintError):
    """A finger was seen but the image was too poor to use (dry, worn, smudged, moved)."""

    reason = "poor_image"


class SensorNotAnswering(DeviceTimeout):
    """The sensor sent no complete reply in time (unplugged, powered off, wrong baud)."""

    reason = "sensor_not_answering"


class SensorMissing(DeviceNotFound):
    """The serial port cannot be opened (cable out, wrong path)."""

    reason = "sensor_not_answering"


class SensorProtocolError(ProtocolError):
    """The sensor's bytes did not follow the protocol (checksum, header, unexpected packet)."""

    reason = "protocol"


class SensorRefused(FingerprintError):
    """The sensor answered with a confirmation code the operation cannot continue from."""

    reason = "sensor_refused"

    def __init__(self, message: str, *, code: int, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.code = code


class EnrolmentFailed(FingerprintError):
    """The captures could not be merged into one template (different fingers, moved)."""

    reason = "enrol_failed"


class DuplicateFinger(FingerprintError):
    """The finger being enrolled matches another finger already enrolled for this person."""

    reason = "duplicate_finger"


# --- values ----------------------------------------------------------------------------------
class LedColour(enum.IntEnum):
    """R503 ring colours (AuraLedConfig colour index)."""

    RED = 1
    BLUE = 2
    PURPLE = 3
    GREEN = 4
    YELLOW = 5
    CYAN = 6
    WHITE = 7


class LedMode(enum.IntEnum):
    BREATHE = 1
    FLASH = 2
    ON = 3
    OFF = 4
    FADE_IN = 5
    FADE_OUT = 6


@dataclass(frozen=True, slots=True)
class SensorInfo:
    """What the sensor reports about itself (ReadSysPara) plus the link in use."""

    capacity: int
    security_level: int
    packet_size: int
    baud: int
    address: int
    system_id: int
    library_count: int
    backend: str


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome of a 1:1 verification. ``matched`` is ``score >= threshold``."""

    matched: bool
    score: int
    threshold: int


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A new template ready for encrypted storage, with what the quality checks saw."""

    template: bytes
    captures: int
    confirm_scores: tuple[int, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class FingerprintSettings:
    """Configuration of the sensor driver (the ``[fingerprint]`` table).

    ``baud`` is the rate the driver raises the link to on open (falling back to
    ``initial_baud`` if the sensor will not); ``reply_timeout_s`` bounds every reply (seconds,
    per reply, not per byte); ``finger_timeout_s`` is how long verify/enrol wait for a finger;
    ``poll_interval_s`` spaces image-capture polls when no wake pin is wired;
    ``recover_timeout_s`` bounds the reconnect attempt after an unplug.
    ``emulator_model`` and ``emulator_time_scale`` only matter for the emulator backend.
    """

    backend: Backend = "serial"
    port: str = "/dev/serial0"
    baud: int = 115200
    initial_baud: int = 57600
    address: int = 0xFFFFFFFF
    password: int = 0
    threshold: int = 60
    reply_timeout_s: float = 2.0
    finger_timeout_s: float = 10.0
    poll_interval_s: float = 0.05
    recover_timeout_s: float = 3.0
    enrol_captures: int = 3
    enrol_attempts: int = 3
    wake_pin: int | None = None
    emulator_model: str = "R503"
    emulator_time_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("baud", "initial_baud"):
            value = getattr(self, name)
            if value % 9600 or not 9600 <= value <= 115200:
                raise ConfigError(
                    f"fingerprint.{name} = {value}: use a multiple of 9600 up to 115200"
                )
        if not 0 <= self.address <= 0xFFFFFFFF or not 0 <= self.password <= 0xFFFFFFFF:
            raise ConfigError("fingerprint.address and fingerprint.password must fit in 32 bits")
        if self.enrol_captures < 2:
            raise ConfigError("fingerprint.enrol_captures must be at least 2")
        if min(self.reply_timeout_s, self.finger_timeout_s, self.poll_interval_s) <= 0:
            raise ConfigError("fingerprint timeouts and the poll interval must be positive")


class FingerprintSensor(Protocol):
    """The sensor in kiosk words. Blocking; every call is bounded by the settings' timeouts.

    Not thread-safe: call from one thread (see :class:`drivers.fingerprint.aio.AsyncSensor`).
    """

    def open(self) -> None:
        """Connect, handshake, raise the baud rate; warns if the flash library is not empty.

        Raises SensorMissing, SensorNotAnswering, SensorProtocolError, SensorRefused.
        """
        ...

    def close(self) -> None:
        """Release the port; idempotent."""
        ...

    def info(self) -> SensorInfo: ...

    def verify(self, template: bytes, *, threshold: int | None = None) -> Match:
        """Wait for a finger, capture it and match it against ``template`` in the sensor's RAM.

        Raises NoFinger, PoorImage, SensorNotAnswering, SensorProtocolError, SensorRefused.
        """
        ...

    def enrol(self, *, others: Sequence[bytes] = ()) -> Enrolment:
        """Capture the finger several times (lifting in between), merge and return the template.

        ``others`` are the person's other enrolled templates; a match raises DuplicateFinger.
        Raises NoFinger, PoorImage, EnrolmentFailed, DuplicateFinger and the link errors.
        """
        ...

    def set_led(self, mode: LedMode, colour: LedColour = LedColour.BLUE, *, speed: int = 0) -> None:
        """Ring LED (R503). Sensors without one ignore it."""
        ...

    def library_count(self) -> int: ...

    def clear_library(self) -> None: ...
