"""The kiosk's fingerprint flows (1:1 verify, enrol) over any backend's primitive operations.

- verify: wait for a finger (the R503's touch output on a GPIO when wired, else GenImg polls at
  a bounded rate), capture, extract into buffer 1, load the claimed person's template into
  buffer 2, match, compare the score with the threshold. The flash library is never used.
- enrol: several captures with the finger lifted in between; the first two are merged, each
  further one must match the merged template (quality check); the result must not match any of
  the person's other enrolled fingers.
- recovery: after the link drops or the sensor stops answering, the next call reconnects (for up
  to ``recover_timeout_s``) before giving up with SensorNotAnswering.

Thread-safe: one lock serialises every call. Blocking; see drivers.fingerprint.aio for the
event loop.

May import: the standard library and drivers.fingerprint (interface, ops).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from drivers.fingerprint.interface import (
    DuplicateFinger,
    Enrolment,
    EnrolmentFailed,
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
)
from drivers.fingerprint.ops import NO_FINGER, OK, POOR_IMAGE_CODES, SensorOps

log = logging.getLogger(__name__)
T = TypeVar("T")


class TouchWake(Protocol):
    """The sensor's finger-detect output (R503 WAKEUP) read through a GPIO input."""

    def wait(self, touched: bool, timeout_s: float) -> bool:
        """Block until the output says ``touched`` (or already does); False on timeout."""
        ...

    def close(self) -> None: ...


class KioskSensor:
    """:class:`drivers.fingerprint.interface.FingerprintSensor` over a :class:`SensorOps`."""

    def __init__(
        self,
        ops: SensorOps,
        settings: FingerprintSettings,
        *,
        wake: TouchWake | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._ops = ops
        self._s = settings
        self._wake = wake
        self._now = monotonic
        self._sleep = sleep
        self._lock = threading.RLock()
        self._opened = False
        self._healthy = False
        self.polls = 0  # GenImg polls made while waiting (tests check the rate)

    # --- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        with self._lock:
            self._ops.connect()
            self._opened = self._healthy = True
            count = self._ops.count()
            if count:
                log.warning(
                    "the sensor's flash library holds %d templates; the kiosk never stores "
                    "people there: clear it with `kioskctl sensor clear`",
                    count,
                )

    def close(self) -> None:
        with self._lock:
            self._opened = self._healthy = False
            self._ops.disconnect()
            if self._wake is not None:
                self._wake.close()

    def __enter__(self) -> KioskSensor:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under the lock, reconnecting first if the link was lost."""
        with self._lock:
            if not self._opened:
                raise SensorNotAnswering("the fingerprint sensor is closed: open it first")
            if not self._healthy:
                self._recover()
            try:
                return fn()
            except (SensorNotAnswering, SensorMissing, SensorProtocolError):
                self._healthy = False
                raise

    def _recover(self) -> None:
        deadline = self._now() + self._s.recover_timeout_s
        while True:
            self._ops.disconnect()
            try:
                self._ops.connect()
            except (SensorNotAnswering, SensorMissing, SensorProtocolError) as exc:
                if self._now() >= deadline:
                    raise SensorNotAnswering(
                        "the fingerprint sensor is not answering: check its cable and power; "
                        "staff can continue the check-in without a fingerprint"
                    ) from exc
                self._sleep(0.2)
                continue
            self._healthy = True
            log.info("fingerprint sensor reconnected")
            return

    # --- finger handling ---------------------------------------------------------------------
    def _wait_finger(self, deadline: float) -> None:
        """Capture an image into the sensor's image buffer once a finger is on the glass."""
        while True:
            if self._wake is not None and not self._wake.wait(True, deadline - self._now()):
                raise NoFinger("no finger was placed on the sensor: place a finger on the glass")
            self.polls += 1
            conf = self._ops.capture()
            if conf == OK:
                return
            if conf != NO_FINGER:
                raise PoorImage(
                    "the fingerprint image could not be captured: clean the glass, try again"
                )
            if self._now() >= deadline:
                raise NoFinger("no finger was placed on the sensor: place a finger on the glass")
            self._sleep(self._s.poll_interval_s)

    def _wait_lift(self, deadline: float) -> None:
        while True:
            if self._wake is not None:
                self._wake.wait(False, max(0.0, deadline - self._now()))
            if self._ops.capture() == NO_FINGER:
                return
            if self._now() >= deadline:
                raise EnrolmentFailed(
                    "the finger was not lifted between captures: lift it and start again",
                    reason="finger_not_lifted",
                )
            self._sleep(self._s.poll_interval_s)

    def _capture_into(self, buffer: int) -> None:
        deadline = self._now() + self._s.finger_timeout_s
        self._wait_finger(deadline)
        conf = self._ops.extract(buffer)
        if conf in POOR_IMAGE_CODES:
            raise PoorImage(
                "the fingerprint image was too poor to use: press the finger flat and try again"
            )
        if conf != OK:
            raise PoorImage(f"the sensor could not read the finger (code 0x{conf:02x}): try again")

    # --- kiosk operations ----------------------------------------------------------------------
    def verify(self, template: bytes, *, threshold: int | None = None) -> Match:
        limit = self._s.threshold if threshold is None else threshold
        if not template:
            raise ValueError("verify needs the claimed person's template")

        def run() -> Match:
            self._capture_into(1)
            self._ops.load_buffer(2, template)
            score = self._ops.match()
            return Match(matched=score >= limit, score=score, threshold=limit)

        return self._call(run)

    def enrol(self, *, others: Sequence[bytes] = ()) -> Enrolment:
        def capture_good(buffer: int, first: bool) -> None:
            for attempt in range(self._s.enrol_attempts):
                if not first or attempt:
                    self._wait_lift(self._now() + self._s.finger_timeout_s)
                try:
                    self._capture_into(buffer)
                    return
                except PoorImage:
                    if attempt == self._s.enrol_attempts - 1:
                        raise

        def run() -> Enrolment:
            capture_good(1, first=True)
            capture_good(2, first=False)
            if not self._ops.merge():
                raise EnrolmentFailed(
                    "the captures did not agree (a different finger or a moved one): "
                    "start the enrolment again with the same finger"
                )
            template = self._ops.read_buffer(1)
            scores: list[int] = []
            for _ in range(self._s.enrol_captures - 2):
                capture_good(2, first=False)
                score = self._ops.match()
                scores.append(score)
                if score < self._s.threshold:
                    raise EnrolmentFailed(
                        "a confirming capture did not match the new template: start the "
                        "enrolment again, pressing the finger flat each time",
                        reason="enrol_inconsistent",
                    )
            for other in others:
                self._ops.load_buffer(2, other)
                if self._ops.match() >= self._s.threshold:
                    raise DuplicateFinger(
                        "this finger is already enrolled for this person: use another finger"
                    )
            return Enrolment(
                template=template, captures=self._s.enrol_captures, confirm_scores=tuple(scores)
            )

        return self._call(run)

    def info(self) -> SensorInfo:
        def run() -> SensorInfo:
            p = self._ops.params()
            return SensorInfo(
                capacity=p["capacity"],
                security_level=p["security_level"],
                packet_size=p["packet_size"],
                baud=p["baud"],
                address=p["address"],
                system_id=p["system_id"],
                library_count=self._ops.count(),
                backend=self._ops.name,
            )

        return self._call(run)

    def set_led(self, mode: LedMode, colour: LedColour = LedColour.BLUE, *, speed: int = 0) -> None:
        self._call(lambda: self._ops.led(int(mode), speed, int(colour), 0))

    def library_count(self) -> int:
        return self._call(self._ops.count)

    def clear_library(self) -> None:
        self._call(self._ops.empty)
