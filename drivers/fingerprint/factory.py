"""The one place that turns :class:`FingerprintSettings` into a sensor (called by the daemon's
composition root).

May import: the standard library and drivers.fingerprint. It never imports hil: the emulator is
passed in as anything with ``connect(baud) -> ByteLink``.
"""

from __future__ import annotations

from typing import Any, Protocol

from daemon.errors import ConfigError
from drivers.fingerprint.interface import FingerprintSensor, FingerprintSettings
from drivers.fingerprint.kiosk import KioskSensor, TouchWake
from drivers.fingerprint.link import ByteLink, SerialLink
from drivers.fingerprint.ops import SensorOps


class LinkSource(Protocol):
    """What the emulator backend needs: a fresh host link at a baud rate (LinkLost if gone)."""

    def connect(self, baud: int | None = None) -> ByteLink: ...


def build_fingerprint(
    settings: FingerprintSettings,
    *,
    emulator: LinkSource | None = None,
    wake: TouchWake | None = None,
    pin_factory: Any = None,
) -> KioskSensor:
    """The configured sensor, not yet opened (call ``open()`` or use it as a context manager).

    backend ``serial``: the project's codec over pyserial on ``settings.port``;
    ``pyfingerprint``: the PyPI library on ``settings.port``; ``emulator``: the codec over an
    in-memory link to ``emulator`` (required). A wake input is used when ``wake`` is given, or
    built on ``settings.wake_pin`` with ``pin_factory``. Raises ConfigError on a bad combination.
    """
    ops: SensorOps
    if settings.backend == "serial":
        from drivers.fingerprint.serial_backend import CodecOps

        port = settings.port
        ops = CodecOps(settings, lambda baud: SerialLink(port, baud))
    elif settings.backend == "emulator":
        from drivers.fingerprint.serial_backend import CodecOps

        if emulator is None:
            raise ConfigError(
                "fingerprint.backend = 'emulator' needs the emulator object: the composition "
                "root must create one (hil.fingerprint.SensorEmulator) and pass it in"
            )
        source = emulator
        ops = CodecOps(settings, lambda baud: source.connect(baud))
    elif settings.backend == "pyfingerprint":
        from drivers.fingerprint.pyfp_backend import PyfingerprintOps

        ops = PyfingerprintOps(settings)
    else:
        raise ConfigError(
            f"fingerprint.backend = {settings.backend!r}: use 'serial', 'pyfingerprint' "
            "or 'emulator'"
        )
    if wake is None and settings.wake_pin is not None:
        if pin_factory is None:
            raise ConfigError("fingerprint.wake_pin is set but no GPIO pin factory was given")
        from drivers.fingerprint.wake import GpioTouchWake

        wake = GpioTouchWake(settings.wake_pin, pin_factory=pin_factory)
    return KioskSensor(ops, settings, wake=wake)


def open_fingerprint(
    settings: FingerprintSettings,
    *,
    emulator: LinkSource | None = None,
    wake: TouchWake | None = None,
    pin_factory: Any = None,
) -> FingerprintSensor:
    """:func:`build_fingerprint`, opened. Raises what ``FingerprintSensor.open`` raises."""
    sensor = build_fingerprint(settings, emulator=emulator, wake=wake, pin_factory=pin_factory)
    sensor.open()
    return sensor
