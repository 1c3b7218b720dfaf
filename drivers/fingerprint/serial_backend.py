"""The default backend: the project's packet codec over a byte link (pyserial on a device).

One ``write`` per packet; one deadline per reply (``reply_timeout_s``), not per byte; bytes
before ``EF 01`` (a power-on ``0x55``, the tail of a late reply) are skipped; input left over
from an earlier exchange is flushed before each command, so a late reply can never misalign the
next one. Idempotent commands are retried once after a timeout or a corrupt reply.

Baud: the driver first tries the configured rate (a sensor keeps a raised rate in flash), then
the initial rate; found at the initial rate, it asks the sensor for the configured one
(SetSysPara 4), switches, and falls back to the initial rate if the sensor does not answer.

Not thread-safe; :class:`drivers.fingerprint.kiosk.KioskSensor` serialises calls.

May import: the standard library and drivers.fingerprint (codec, link, interface, ops).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from drivers.fingerprint.codec import (
    PACKET_SIZES,
    Conf,
    Corrupt,
    Decoder,
    Op,
    Packet,
    Pid,
    command,
    data_packets,
    parse_sys_params,
)
from drivers.fingerprint.interface import (
    FingerprintSettings,
    SensorMissing,
    SensorNotAnswering,
    SensorProtocolError,
    SensorRefused,
)
from drivers.fingerprint.link import ByteLink, LinkLost

log = logging.getLogger(__name__)

LinkOpener = Callable[[int], ByteLink]

#: Shorter deadline for the probing handshake (a VfyPwd round trip takes ~4 ms at 57600).
HANDSHAKE_TIMEOUT_S = 0.3


class CodecOps:
    """:class:`drivers.fingerprint.ops.SensorOps` over a :class:`ByteLink`."""

    name = "serial"

    def __init__(
        self,
        settings: FingerprintSettings,
        opener: LinkOpener,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._s = settings
        self._opener = opener
        self._now = monotonic
        self._link: ByteLink | None = None
        self._decoder = Decoder()
        self._inbox: deque[Packet | Corrupt] = deque()
        self._packet_size = 128
        self.baud = settings.initial_baud
        self.exchanges = 0  # commands sent (for tests and the benchmark)

    # --- link ----------------------------------------------------------------------------------
    def connect(self) -> None:
        if self._link is not None:
            return
        rates = [self._s.baud, self._s.initial_baud]
        if rates[0] == rates[1]:
            rates.pop()
        for baud in rates:
            self._open_at(baud)
            try:
                self._handshake(HANDSHAKE_TIMEOUT_S)
            except SensorNotAnswering:
                continue
            except BaseException:
                self.disconnect()
                raise
            break
        else:
            self.disconnect()
            raise SensorNotAnswering(
                f"the fingerprint sensor does not answer at {' or '.join(map(str, rates))} baud: "
                "check its cable and power, then restart the kiosk service"
            )
        if self.baud != self._s.baud:
            self._raise_baud()
        p = self.params()
        self._packet_size = PACKET_SIZES[p["packet_size_code"] & 3]

    def _open_at(self, baud: int) -> None:
        self.disconnect()
        try:
            self._link = self._opener(baud)
        except LinkLost as exc:
            raise SensorMissing(
                "the fingerprint sensor's serial port cannot be opened: check the cable "
                "and the configured port"
            ) from exc
        self.baud = baud
        self._flush()

    def _raise_baud(self) -> None:
        old, new = self.baud, self._s.baud
        conf = self._ack(Op.SET_SYS_PARA, bytes((4, new // 9600)))[0]
        if conf != Conf.OK:
            log.info("sensor refused %d baud (code 0x%02x); staying at %d", new, conf, old)
            return
        link = self._need_link()
        try:
            link.set_baud(new)
            self.baud = new
            self._flush()
            self._handshake(HANDSHAKE_TIMEOUT_S)
        except (SensorNotAnswering, LinkLost):
            log.warning("sensor did not answer at %d baud; falling back to %d", new, old)
            self._open_at(old)
            self._handshake(self._s.reply_timeout_s, retries=1)

    def _handshake(self, timeout: float, retries: int = 0) -> None:
        pwd = self._s.password.to_bytes(4, "big")
        conf = self._ack(Op.VFY_PWD, pwd, timeout=timeout, retries=retries)[0]
        if conf == Conf.WRONG_PASSWORD:
            raise SensorRefused(
                "the fingerprint sensor refused the configured password: set "
                "fingerprint.password to the sensor's password",
                code=conf,
                reason="sensor_password",
            )
        if conf != Conf.OK:
            raise SensorRefused(f"sensor handshake failed (code 0x{conf:02x})", code=conf)

    def disconnect(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()
        self._flush_decoder()

    def _need_link(self) -> ByteLink:
        if self._link is None:
            raise SensorNotAnswering("the fingerprint sensor is not connected")
        return self._link

    def _flush_decoder(self) -> None:
        self._decoder.clear()
        self._inbox.clear()

    def _flush(self) -> None:
        self._flush_decoder()
        try:
            self._need_link().reset_input()
        except LinkLost as exc:
            self._lost(exc)

    def _lost(self, exc: BaseException) -> None:
        self.disconnect()
        raise SensorNotAnswering(
            "the fingerprint sensor went away (cable or power); the kiosk reconnects by itself"
        ) from exc

    # --- packets -------------------------------------------------------------------------------
    def _send(self, frame: bytes) -> None:
        try:
            self._need_link().write(frame)
        except LinkLost as exc:
            self._lost(exc)

    def _read(self, deadline: float) -> Packet:
        link = self._need_link()
        while not self._inbox:
            left = deadline - self._now()
            if left <= 0:
                raise SensorNotAnswering(
                    "the fingerprint sensor did not answer in time: check its cable and power"
                )
            try:
                data = link.read(4096, left)
            except LinkLost as exc:
                self._lost(exc)
            if data:
                self._inbox.extend(self._decoder.feed(data))
        item = self._inbox.popleft()
        if isinstance(item, Corrupt):
            raise SensorProtocolError("a reply from the fingerprint sensor failed its checksum")
        if item.address != self._s.address:
            raise SensorProtocolError(
                f"a reply came from module address 0x{item.address:08x}, not the configured one"
            )
        return item

    def _ack(
        self, op: int, params: bytes = b"", *, timeout: float | None = None, retries: int = 1
    ) -> bytes:
        """Send a command and return the ack payload (confirmation code first)."""
        frame = command(op, params, self._s.address)
        limit = self._s.reply_timeout_s if timeout is None else timeout
        for attempt in range(retries + 1):
            self._flush()
            self._send(frame)
            self.exchanges += 1
            try:
                reply = self._read(self._now() + limit)
            except (SensorNotAnswering, SensorProtocolError):
                if attempt == retries or self._link is None:
                    raise
                log.info("retrying sensor command 0x%02x after a missing or bad reply", op)
                continue
            if reply.pid != Pid.ACK:
                if attempt == retries:
                    raise SensorProtocolError("the sensor sent data where an ack was expected")
                continue
            return reply.payload
        raise AssertionError("unreachable")

    def _expect_ok(self, op: int, params: bytes, what: str) -> None:
        conf = self._ack(op, params)[0]
        if conf != Conf.OK:
            raise SensorRefused(f"the sensor refused to {what} (code 0x{conf:02x})", code=conf)

    # --- operations --------------------------------------------------------------------------
    def capture(self) -> int:
        return self._ack(Op.GEN_IMG)[0]

    def extract(self, buffer: int) -> int:
        return self._ack(Op.IMG2TZ, bytes((buffer,)))[0]

    def load_buffer(self, buffer: int, data: bytes) -> None:
        if not data:
            raise ValueError("an empty template cannot be loaded")
        packets = data_packets(data, self._packet_size, self._s.address)
        self._expect_ok(Op.DOWN_CHAR, bytes((buffer,)), "accept a template")
        for p in packets:  # the sensor acknowledges none of them
            self._send(p)

    def read_buffer(self, buffer: int) -> bytes:
        for attempt in range(2):
            self._expect_ok(Op.UP_CHAR, bytes((buffer,)), "send a template")
            out = bytearray()
            try:
                while True:
                    pkt = self._read(self._now() + self._s.reply_timeout_s)
                    if pkt.pid not in (Pid.DATA, Pid.END_DATA):
                        raise SensorProtocolError("the sensor sent an ack inside a template")
                    out += pkt.payload
                    if pkt.pid == Pid.END_DATA:
                        return bytes(out)
            except (SensorNotAnswering, SensorProtocolError):
                if attempt or self._link is None:
                    raise
        raise AssertionError("unreachable")

    def match(self) -> int:
        reply = self._ack(Op.MATCH)
        if reply[0] not in (Conf.OK, Conf.NO_MATCH) or len(reply) < 3:
            raise SensorRefused(
                f"the sensor could not match (code 0x{reply[0]:02x})", code=reply[0]
            )
        return int.from_bytes(reply[1:3], "big")

    def merge(self) -> bool:
        conf = self._ack(Op.REG_MODEL)[0]
        if conf not in (Conf.OK, Conf.MERGE_FAILED):
            raise SensorRefused(f"the sensor could not merge (code 0x{conf:02x})", code=conf)
        return conf == Conf.OK

    def params(self) -> dict[str, int]:
        reply = self._ack(Op.READ_SYS_PARA)
        if reply[0] != Conf.OK:
            raise SensorRefused("the sensor would not report its parameters", code=reply[0])
        try:
            p = parse_sys_params(reply[1:])
        except ValueError as exc:
            raise SensorProtocolError(f"short ReadSysPara reply: {exc}") from exc
        p["baud"] = self.baud
        p["packet_size"] = PACKET_SIZES[p["packet_size_code"] & 3]
        return p

    def count(self) -> int:
        reply = self._ack(Op.TEMPLATE_NUM)
        if reply[0] != Conf.OK or len(reply) < 3:
            raise SensorRefused("the sensor would not count its library", code=reply[0])
        return int.from_bytes(reply[1:3], "big")

    def empty(self) -> None:
        self._expect_ok(Op.EMPTY, b"", "clear its library")

    def led(self, mode: int, speed: int, colour: int, cycles: int) -> bool:
        conf = self._ack(Op.AURA_LED, bytes((mode, speed, colour, cycles)))[0]
        return conf == Conf.OK
