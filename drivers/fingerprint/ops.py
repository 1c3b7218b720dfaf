"""The sensor's primitive operations, as the kiosk flows need them from any backend.

:class:`drivers.fingerprint.kiosk.KioskSensor` builds verify and enrol from these; the
project's codec backend (:mod:`drivers.fingerprint.serial_backend`) and the pyfingerprint
backend (:mod:`drivers.fingerprint.pyfp_backend`) implement them. Every method is blocking and
bounded, and raises only the errors of :mod:`drivers.fingerprint.interface`.

May import: the standard library and drivers.fingerprint.interface.
"""

from __future__ import annotations

from typing import Protocol

#: Confirmation codes the flows act on (the rest become SensorRefused inside the backends).
OK = 0x00
NO_FINGER = 0x02
CAPTURE_FAILED = 0x03
IMAGE_DISORDERLY = 0x06
TOO_FEW_FEATURES = 0x07
NO_VALID_IMAGE = 0x15
POOR_IMAGE_CODES = frozenset({CAPTURE_FAILED, IMAGE_DISORDERLY, TOO_FEW_FEATURES, NO_VALID_IMAGE})


class SensorOps(Protocol):
    name: str

    def connect(self) -> None:
        """Open the link, handshake, raise the baud rate if configured. Idempotent."""
        ...

    def disconnect(self) -> None:
        """Close the link; idempotent."""
        ...

    def capture(self) -> int:
        """GenImg; the confirmation code (OK, NO_FINGER, CAPTURE_FAILED)."""
        ...

    def extract(self, buffer: int) -> int:
        """Img2Tz into buffer 1 or 2; OK or one of POOR_IMAGE_CODES."""
        ...

    def load_buffer(self, buffer: int, data: bytes) -> None:
        """DownChar: put a template into buffer 1 or 2."""
        ...

    def read_buffer(self, buffer: int) -> bytes:
        """UpChar: the template in buffer 1 or 2."""
        ...

    def match(self) -> int:
        """Match buffer 1 against buffer 2; the score (also when the sensor says no match)."""
        ...

    def merge(self) -> bool:
        """RegModel; False when the two captures cannot be combined."""
        ...

    def params(self) -> dict[str, int]:
        """ReadSysPara fields (see codec.parse_sys_params) plus ``baud`` and ``packet_size``."""
        ...

    def count(self) -> int:
        """Templates in the flash library."""
        ...

    def empty(self) -> None:
        """Clear the flash library."""
        ...

    def led(self, mode: int, speed: int, colour: int, cycles: int) -> bool:
        """AuraLedConfig; False when the sensor has no ring LED."""
        ...
