"""The sensor emulator: a :class:`SensorCore` behind a pty or an in-memory link, in a thread.

It speaks the UART protocol byte for byte, paces itself with the datasheet timing model
(sensor work plus ``bytes × 10 / baud`` on the wire, both multiplied by ``time_scale``: 1.0 is
real time, 0 is as fast as possible) and takes test-control calls in domain terms:
:meth:`SensorEmulator.present_finger`, :meth:`lift_finger`, :meth:`inject`, :meth:`unplug`,
:meth:`replug`. Control calls are thread-safe; the link is served by one daemon thread.

A host talking at a baud rate other than the sensor's gets no answer, as on a real UART
(the pty's line settings tell the emulator which rate the host set).

May import: the standard library, drivers.fingerprint (codec, link) and hil.fingerprint.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import random
import select
import termios
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from drivers.fingerprint.codec import (
    DEFAULT_ADDRESS,
    POWER_ON_BYTE,
    Conf,
    Corrupt,
    Decoder,
    Op,
    Packet,
    Pid,
)
from drivers.fingerprint.link import LinkLost, MemoryLink, memory_pipe
from hil.fingerprint.fingers import Condition, VirtualFinger
from hil.fingerprint.models import SensorModel, model
from hil.fingerprint.sensor import Led, SensorCore

log = logging.getLogger(__name__)

_SPEEDS = {
    getattr(termios, f"B{b}"): b
    for b in (9600, 19200, 38400, 57600, 115200)
    if hasattr(termios, f"B{b}")
}


class Fault(enum.Enum):
    """Faults :meth:`SensorEmulator.inject` can arm; each spoils the next reply(s)."""

    BAD_CHECKSUM = "bad_checksum"  # the reply's checksum is off by one
    DROP_BYTES = "drop_bytes"  # three bytes go missing from the middle of the reply
    NO_REPLY = "no_reply"  # the command is swallowed
    WRONG_ADDRESS = "wrong_address"  # the reply carries another module address
    STRAY_BYTE = "stray_byte"  # a power-on 0x55 arrives just before the reply
    LATE_REPLY = "late_reply"  # the reply comes ``delay_s`` late (real seconds)
    BUSY = "busy"  # the sensor ignores commands for ``delay_s`` real seconds


@dataclass(slots=True)
class Stats:
    bytes_in: int = 0
    bytes_out: int = 0
    commands: int = 0
    ignored: int = 0  # frames dropped: wrong baud, busy, another address
    work_s: float = 0.0  # modelled sensor work (unscaled seconds)
    wire_s: float = 0.0  # modelled UART time (unscaled seconds)


class _Endpoint(Protocol):
    def read(self, max_bytes: int, timeout_s: float) -> bytes: ...
    def write(self, data: bytes) -> None: ...
    def host_baud(self) -> int | None: ...
    def close(self) -> None: ...


class _MemoryEndpoint:
    def __init__(self, link: MemoryLink) -> None:
        self._link = link

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        return self._link.read(max_bytes, timeout_s)

    def write(self, data: bytes) -> None:
        self._link.write(data)

    def host_baud(self) -> int | None:
        return self._link.host_baud

    def close(self) -> None:
        self._link.close()


class _PtyEndpoint:
    """The master side of a pty whose slave is in raw mode and held open by us."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.name = os.ttyname(self.slave)
        self._closed = False

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self._closed:
            raise LinkLost("pty closed")
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return b""
        try:
            return os.read(self.master, max_bytes)
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open: cannot happen while we hold one
                return b""
            raise LinkLost(str(exc)) from exc

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except OSError as exc:
                raise LinkLost(str(exc)) from exc
            view = view[n:]

    def host_baud(self) -> int | None:
        try:
            return _SPEEDS.get(termios.tcgetattr(self.master)[5])
        except termios.error:
            return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.master)
            os.close(self.slave)


class SensorEmulator:
    """An emulated R503/R307/AS608 sensor. Construct, then :meth:`connect` or :meth:`start_pty`.

    ``time_scale`` multiplies every modelled delay (1.0 real time, 0 none). ``seed`` fixes the
    capture noise. Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        sensor_model: str | SensorModel = "R503",
        *,
        time_scale: float = 1.0,
        seed: int = 0,
        password: int = 0,
        address: int = DEFAULT_ADDRESS,
        baud: int = 57600,
        packet_size: int = 128,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model(sensor_model) if isinstance(sensor_model, str) else sensor_model
        self.core = SensorCore(
            self.model,
            password=password,
            address=address,
            baud=baud,
            packet_size=packet_size,
            rng=random.Random(seed),
        )
        self.time_scale = time_scale
        self.stats = Stats()
        self._sleep = sleep
        self._now = monotonic
        self._lock = threading.Lock()
        self._faults: list[tuple[Fault, float]] = []
        self._busy_until = 0.0
        self._due = 0.0
        self._touch: list[Callable[[bool], None]] = []
        self._taps: list[Any] | None = None
        self._endpoint: _Endpoint | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._mode: str | None = None
        self._pty_link: Path | None = None
        self.plugged = True

    # --- fingers -----------------------------------------------------------------------------
    def present_finger(
        self,
        finger: VirtualFinger | str,
        index: int = 1,
        condition: Condition = Condition.GOOD,
    ) -> None:
        """Put a finger on the glass: a VirtualFinger or (person, finger index, condition)."""
        vf = (
            finger if isinstance(finger, VirtualFinger) else VirtualFinger(finger, index, condition)
        )
        with self._lock:
            self.core.finger = vf
            self._taps = None
        for cb in list(self._touch):
            cb(True)

    def lift_finger(self) -> None:
        with self._lock:
            self.core.finger = None
            self._taps = None
        for cb in list(self._touch):
            cb(False)

    def tap(self, finger: VirtualFinger | Sequence[VirtualFinger], times: int) -> None:
        """A person who follows the enrolment prompts: the finger lands, stays until the sensor
        has extracted its features, lifts, and lands again when the host next finds the glass
        empty, ``times`` landings in all. A sequence of fingers is used in turn (a person who
        swaps fingers)."""
        order = [finger] if isinstance(finger, VirtualFinger) else list(finger)
        self.present_finger(order[0])
        with self._lock:
            self._taps = [order, times - 1, 0]

    def _follow_taps(self, op: int, conf: int) -> None:
        taps = self._taps
        if taps is None:
            return
        if op == Op.IMG2TZ and conf == Conf.OK and self.core.finger is not None:
            self.core.finger = None
            touched = False
        elif op == Op.GEN_IMG and conf == Conf.NO_FINGER and taps[1] > 0:
            taps[1] -= 1
            taps[2] += 1
            self.core.finger = taps[0][taps[2] % len(taps[0])]  # lands for the next capture
            touched = True
        else:
            return
        for cb in list(self._touch):
            cb(touched)

    @property
    def finger(self) -> VirtualFinger | None:
        return self.core.finger

    def on_touch(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(True/False)`` when a finger lands/lifts (the R503 WAKEUP output)."""
        self._touch.append(callback)

    # --- sensor state for tests ----------------------------------------------------------------
    @property
    def led(self) -> Led:
        return self.core.led

    @property
    def library(self) -> dict[int, bytes]:
        return self.core.library

    @property
    def baud(self) -> int:
        return self.core.baud

    def lock_baud(self) -> None:
        """Model a clone that acknowledges a baud change but keeps its old rate."""
        self.core.baud_locked = True

    # --- faults ------------------------------------------------------------------------------
    def inject(self, fault: Fault, times: int = 1, *, delay_s: float = 2.5) -> None:
        """Arm ``fault`` for the next ``times`` replies (BUSY: for ``delay_s`` seconds)."""
        with self._lock:
            if fault is Fault.BUSY:
                self._busy_until = self._now() + delay_s
                return
            self._faults.extend([(fault, delay_s)] * times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._busy_until = 0.0

    # --- links -------------------------------------------------------------------------------
    def connect(self, baud: int | None = None) -> MemoryLink:
        """A fresh in-memory host link (the previous one is cut). Raises LinkLost if unplugged."""
        if not self.plugged:
            raise LinkLost("emulated sensor is unplugged")
        self._stop_thread()
        host, device = memory_pipe(baud or self.core.baud)
        self._mode = "memory"
        self._start(_MemoryEndpoint(device))
        return host

    def start_pty(self, link: Path | None = None) -> str:
        """Serve on a new pty; returns the path a client opens (``link`` if given, a symlink
        kept pointing at the current pty across :meth:`replug`)."""
        self._stop_thread()
        self._mode = "pty"
        self._pty_link = link
        return self._open_pty()

    def _open_pty(self) -> str:
        ep = _PtyEndpoint()
        path = ep.name
        if self._pty_link is not None:
            tmp = self._pty_link.with_name(self._pty_link.name + ".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(ep.name)
            tmp.replace(self._pty_link)
            path = str(self._pty_link)
        self._start(ep)
        return path

    def unplug(self) -> None:
        """Pull the cable: the link dies at once and the sensor loses power (RAM is lost)."""
        self.plugged = False
        self._stop_thread()
        with self._lock:
            self.core.reset()

    def replug(self) -> str | None:
        """Plug back in: on a pty a new device appears (the symlink follows); the sensor boots
        and sends its power-on byte. Returns the pty path, or None for the memory link (call
        :meth:`connect` for a new one)."""
        self.plugged = True
        if self._mode == "pty":
            path = self._open_pty()
            self._power_on()
            return path
        return None

    def _power_on(self) -> None:
        ep = self._endpoint
        if ep is None:
            return
        self._advance(self.model.startup_s)
        with contextlib.suppress(LinkLost):
            ep.write(bytes((POWER_ON_BYTE,)))

    def close(self) -> None:
        self._stop_thread()
        if self._pty_link is not None:
            with contextlib.suppress(FileNotFoundError):
                self._pty_link.unlink()

    def __enter__(self) -> SensorEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- serving -----------------------------------------------------------------------------
    def _start(self, ep: _Endpoint) -> None:
        self._stop = threading.Event()
        self._endpoint = ep
        self._thread = threading.Thread(
            target=self._serve, args=(ep, self._stop), name="fp-emulator", daemon=True
        )
        self._thread.start()

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._endpoint is not None:
            self._endpoint.close()
            self._endpoint = None
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def _advance(self, seconds: float) -> None:
        """Let ``seconds`` (modelled, unscaled) pass, against a running deadline so sleeps
        that overshoot do not add up."""
        if self.time_scale <= 0 or seconds <= 0:
            return
        now = self._now()
        self._due = max(self._due, now) + seconds * self.time_scale
        left = self._due - now
        if left > 0:
            self._sleep(left)

    def _serve(self, ep: _Endpoint, stop: threading.Event) -> None:
        decoder = Decoder()
        while not stop.is_set():
            try:
                data = ep.read(4096, 0.05)
            except LinkLost:
                return
            except OSError:  # fd closed under us by unplug()
                return
            if not data:
                continue
            self.stats.bytes_in += len(data)
            for item in decoder.feed(data):
                if stop.is_set():
                    return
                try:
                    self._process(ep, item)
                except (LinkLost, OSError):
                    return

    def _process(self, ep: _Endpoint, item: Packet | Corrupt) -> None:
        size = item.wire_size if isinstance(item, Packet) else len(item.raw)
        wire = size * 10 / self.core.baud
        self.stats.wire_s += wire
        self._advance(wire)
        host = ep.host_baud()
        with self._lock:
            if (host is not None and host != self.core.baud) or self._now() < self._busy_until:
                self.stats.ignored += 1
                return
            is_command = isinstance(item, Packet) and item.pid == Pid.COMMAND
            baud = self.core.baud  # a baud change is acknowledged at the old rate
            reply = self.core.handle(item)
            if is_command and reply.frames and isinstance(item, Packet):
                self._follow_taps(item.payload[0], reply.frames[0][9])
            fault = self._faults.pop(0) if reply.frames and self._faults else None
        if is_command:
            self.stats.commands += 1
            if not reply.frames:
                self.stats.ignored += 1  # addressed to another module
        self.stats.work_s += reply.work_s
        self._advance(reply.work_s)
        frames = list(reply.frames)
        if fault is not None:
            frames = self._spoil(frames, *fault)
        for frame in frames:
            if frame == bytes((POWER_ON_BYTE,)) and len(reply.frames) > 1:
                self._advance(self.model.startup_s)
            wire = len(frame) * 10 / baud
            self.stats.wire_s += wire
            self._advance(wire)
            ep.write(frame)
            self.stats.bytes_out += len(frame)

    def _spoil(self, frames: list[bytes], fault: Fault, delay_s: float) -> list[bytes]:
        first = bytearray(frames[0])
        if fault is Fault.NO_REPLY:
            self.stats.ignored += 1
            return []
        if fault is Fault.BAD_CHECKSUM:
            first[-1] = (first[-1] + 1) & 0xFF
        elif fault is Fault.DROP_BYTES:
            del first[5:8]
        elif fault is Fault.WRONG_ADDRESS:
            first[2:6] = (int.from_bytes(first[2:6], "big") ^ 0x01).to_bytes(4, "big")
        elif fault is Fault.STRAY_BYTE:
            first[0:0] = bytes((POWER_ON_BYTE,))
        elif fault is Fault.LATE_REPLY:
            self._sleep(delay_s)
        return [bytes(first), *frames[1:]]
