"""The second backend: the sensor driven through PyPI ``pyfingerprint`` 1.5, used as it is.

pyfingerprint waits 2 s per byte and never resynchronises (a late reply leaves the stream
misaligned until the port is reopened; ../shared/reference/fingerprint-protocol.md §4.1). So
every library call runs in a worker thread under a deadline (the watchdog), and after any
error or a missed deadline the object is dropped: its port is closed (which also ends a call
stuck in a read) and the next call constructs a fresh one, which reopens and flushes the port.

Known limits of the library, kept as they are: a 1:1 non-match reports score 0; there is no
LED command; every template upload costs an extra ReadSysPara and a verifying download.

May import: the standard library, pyfingerprint (lazily), drivers.fingerprint.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from drivers.fingerprint.interface import (
    FingerprintSettings,
    SensorMissing,
    SensorNotAnswering,
    SensorProtocolError,
    SensorRefused,
)
from drivers.fingerprint.ops import (
    CAPTURE_FAILED,
    IMAGE_DISORDERLY,
    NO_FINGER,
    NO_VALID_IMAGE,
    OK,
    TOO_FEW_FEATURES,
)
from drivers.fingerprint.serial_backend import HANDSHAKE_TIMEOUT_S

log = logging.getLogger(__name__)
T = TypeVar("T")

#: pyfingerprint's messages for the extraction failures, by confirmation code.
_EXTRACT_ERRORS = {
    "The image is too messy": IMAGE_DISORDERLY,
    "The image contains too few feature points": TOO_FEW_FEATURES,
    "The image is invalid": NO_VALID_IMAGE,
}
Factory = Callable[[str, int, int, int], Any]


def _default_factory(port: str, baud: int, address: int, password: int) -> Any:
    from pyfingerprint.pyfingerprint import PyFingerprint

    return PyFingerprint(port, baud, address, password)


class PyfingerprintOps:
    """:class:`drivers.fingerprint.ops.SensorOps` through an unmodified ``PyFingerprint``."""

    name = "pyfingerprint"

    def __init__(self, settings: FingerprintSettings, *, factory: Factory | None = None) -> None:
        self._s = settings
        self._factory = factory or _default_factory
        self._fp: Any = None
        self._pool = self._new_pool()
        self.baud = settings.initial_baud

    @staticmethod
    def _new_pool() -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyfp")

    # --- watchdog ------------------------------------------------------------------------------
    def _watch(self, fn: Callable[[], T], timeout_s: float) -> T:
        future = self._pool.submit(fn)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError as exc:
            self._drop()
            raise SensorNotAnswering(
                "the fingerprint sensor did not answer in time: check its cable and power"
            ) from exc
        except OSError as exc:  # serial.SerialException is an OSError
            self._drop()
            raise SensorNotAnswering(
                "the fingerprint sensor's port failed (cable or power); the kiosk reconnects"
            ) from exc
        except Exception as exc:
            # pyfingerprint raises bare Exception for protocol faults and unknown codes
            self._drop()
            raise SensorProtocolError(f"pyfingerprint: {exc}") from exc

    def _drop(self) -> None:
        """Forget the library object; close its port so a call stuck in read() ends."""
        fp, self._fp = self._fp, None
        port = getattr(fp, "_PyFingerprint__serial", None)
        if port is not None:
            try:
                port.cancel_read()
                port.close()
            except Exception as exc:  # closing a dead port may fail in many ways
                log.debug("closing pyfingerprint's port: %s", type(exc).__name__)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def _timeout(self, round_trips: int = 1) -> float:
        return self._s.reply_timeout_s * round_trips

    def _lib(self) -> Any:
        if self._fp is None:
            raise SensorNotAnswering("the fingerprint sensor is not connected")
        return self._fp

    def _do(self, name: str, *args: Any, round_trips: int = 1) -> Any:
        lib = self._lib()
        return self._watch(lambda: getattr(lib, name)(*args), self._timeout(round_trips))

    # --- link ----------------------------------------------------------------------------------
    def _construct(self, baud: int) -> None:
        self._drop()
        s = self._s
        try:
            self._fp = self._watch(
                lambda: self._factory(s.port, baud, s.address, s.password), s.reply_timeout_s
            )
        except SensorNotAnswering as exc:
            raise SensorMissing(
                "the fingerprint sensor's serial port cannot be opened: check the cable and "
                "the configured port"
            ) from exc
        self.baud = baud

    def _handshake(self, timeout_s: float) -> None:
        lib = self._lib()
        if not self._watch(lib.verifyPassword, timeout_s):
            raise SensorRefused(
                "the fingerprint sensor refused the configured password: set "
                "fingerprint.password to the sensor's password",
                code=0x13,
                reason="sensor_password",
            )

    def connect(self) -> None:
        if self._fp is not None:
            return
        rates = list(dict.fromkeys([self._s.baud, self._s.initial_baud]))
        for baud in rates:
            self._construct(baud)
            try:
                self._handshake(HANDSHAKE_TIMEOUT_S)
                break
            except SensorNotAnswering:
                continue
        else:
            self._drop()
            raise SensorNotAnswering(
                "the fingerprint sensor does not answer: check its cable and power"
            )
        if self.baud != self._s.baud:
            old = self.baud
            try:
                self._do("setBaudRate", self._s.baud)
                self._construct(self._s.baud)
                self._handshake(HANDSHAKE_TIMEOUT_S)
            except (SensorNotAnswering, SensorProtocolError):
                log.warning(
                    "sensor did not answer at %d baud; falling back to %d", self._s.baud, old
                )
                self._construct(old)
                self._handshake(self._s.reply_timeout_s)

    def disconnect(self) -> None:
        self._drop()

    # --- operations --------------------------------------------------------------------------
    def capture(self) -> int:
        lib = self._lib()

        def run() -> int:
            try:
                return OK if lib.readImage() else NO_FINGER
            except Exception as exc:
                if str(exc) == "Could not read image":
                    return CAPTURE_FAILED
                raise

        return self._watch(run, self._timeout())

    def extract(self, buffer: int) -> int:
        lib = self._lib()

        def run() -> int:
            try:
                lib.convertImage(buffer)
            except Exception as exc:
                code = _EXTRACT_ERRORS.get(str(exc))
                if code is None:
                    raise
                return code
            return OK

        return self._watch(run, self._timeout())

    def load_buffer(self, buffer: int, data: bytes) -> None:
        # a list of ints: the library's own verification compares lists
        if not self._do("uploadCharacteristics", buffer, list(data), round_trips=3):
            self._drop()
            raise SensorProtocolError("the template read back from the sensor differs")

    def read_buffer(self, buffer: int) -> bytes:
        return bytes(self._do("downloadCharacteristics", buffer, round_trips=2))

    def match(self) -> int:
        return int(self._do("compareCharacteristics"))

    def merge(self) -> bool:
        return bool(self._do("createTemplate"))

    def params(self) -> dict[str, int]:
        status, system_id, capacity, level, address, size_code, baud_n = self._do(
            "getSystemParameters"
        )
        return {
            "status": status,
            "system_id": system_id,
            "capacity": capacity,
            "security_level": level,
            "address": address,
            "packet_size_code": size_code,
            "baud_n": baud_n,
            "baud": self.baud,
            "packet_size": (32, 64, 128, 256)[size_code & 3],
        }

    def count(self) -> int:
        return int(self._do("getTemplateCount"))

    def empty(self) -> None:
        if not self._do("clearDatabase"):
            raise SensorRefused("the sensor could not clear its library", code=0x11)

    def led(self, mode: int, speed: int, colour: int, cycles: int) -> bool:
        return False  # pyfingerprint 1.5 has no LED command
