"""The emulated sensor's state machine: one decoded packet in, reply bytes and work time out.

No threads, no clock, no I/O: :class:`hil.fingerprint.emulator.SensorEmulator` feeds it
packets from a pty or an in-memory link and applies the timing model and faults. Replies have
exactly the datasheet's length for every confirmation code, failures included
(../shared/reference/fingerprint-protocol.md §3.5).

May import: the standard library, drivers.fingerprint.codec and hil.fingerprint.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.fingerprint.codec import (
    DEFAULT_ADDRESS,
    PACKET_SIZES,
    POWER_ON_BYTE,
    Conf,
    Corrupt,
    Op,
    Packet,
    Pid,
    ack,
    data_packets,
)
from hil.fingerprint import fingers
from hil.fingerprint.fingers import VirtualFinger
from hil.fingerprint.models import SensorModel

#: Value bytes after the confirmation code, per instruction (0 when absent).
REPLY_VALUES: dict[int, int] = {
    Op.MATCH: 2,
    Op.SEARCH: 4,
    Op.HIGH_SPEED_SEARCH: 4,
    Op.READ_SYS_PARA: 16,
    Op.GET_RANDOM: 4,
    Op.TEMPLATE_NUM: 2,
    Op.READ_INDEX: 32,
    Op.READ_NOTEPAD: 32,
}
#: Parameter bytes after the instruction code, per instruction.
PARAMS: dict[int, int] = {
    Op.GEN_IMG: 0,
    Op.IMG2TZ: 1,
    Op.MATCH: 0,
    Op.SEARCH: 5,
    Op.HIGH_SPEED_SEARCH: 5,
    Op.REG_MODEL: 0,
    Op.STORE: 3,
    Op.LOAD_CHAR: 3,
    Op.UP_CHAR: 1,
    Op.DOWN_CHAR: 1,
    Op.UP_IMAGE: 0,
    Op.DOWN_IMAGE: 0,
    Op.DELETE_CHAR: 4,
    Op.EMPTY: 0,
    Op.SET_SYS_PARA: 2,
    Op.READ_SYS_PARA: 0,
    Op.SET_PWD: 4,
    Op.VFY_PWD: 4,
    Op.GET_RANDOM: 0,
    Op.SET_ADDR: 4,
    Op.WRITE_NOTEPAD: 33,
    Op.READ_NOTEPAD: 1,
    Op.TEMPLATE_NUM: 0,
    Op.READ_INDEX: 1,
    Op.AURA_LED: 4,
    Op.SOFT_RESET: 0,
    Op.GET_ECHO: 0,
}
#: Score needed for a sensor-side "match" (Match 0x00 / Search hit) per security level 1..5.
LEVEL_THRESHOLDS = {1: 30, 2: 40, 3: 50, 4: 65, 5: 80}


@dataclass(slots=True)
class Image:
    finger: VirtualFinger | None  # None: an image the host downloaded (DownImage)
    raw: bytes | None = None


@dataclass(slots=True)
class Reply:
    """What the sensor sends back for one packet and how long its own work took (seconds)."""

    frames: list[bytes] = field(default_factory=list)
    work_s: float = 0.0
    new_baud: int | None = None  # applied after the frames are sent (SetSysPara 4)


@dataclass(slots=True)
class Led:
    mode: int = 4
    speed: int = 0
    colour: int = 0
    cycles: int = 0


class SensorCore:
    """One sensor: RAM buffers, flash library, parameters. Not thread-safe (the emulator locks)."""

    def __init__(
        self,
        model: SensorModel,
        *,
        password: int = 0,
        address: int = DEFAULT_ADDRESS,
        baud: int = 57600,
        packet_size: int = 128,
        security_level: int = 3,
        rng: random.Random | None = None,
    ) -> None:
        self.model = model
        self.password = password
        self.address = address
        self.baud_n = baud // 9600
        self.packet_code = PACKET_SIZES.index(packet_size)
        self.security_level = security_level
        self.rng = rng or random.Random(0)
        self.finger: VirtualFinger | None = None
        self.library: dict[int, bytes] = {}
        self.notepad: dict[int, bytes] = {}
        self.led = Led()
        self.baud_locked = False
        self.reset()

    # --- state -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Power cycle: RAM is lost, flash (library, parameters, password) is kept."""
        self.buffers: list[bytes | None] = [None, None]
        self.image: Image | None = None
        self.authorised = self.password == 0
        self._receiving: tuple[str, int, bytearray] | None = None
        self.matched = False

    @property
    def baud(self) -> int:
        return self.baud_n * 9600

    @property
    def packet_size(self) -> int:
        return PACKET_SIZES[self.packet_code]

    @property
    def receiving(self) -> bool:
        return self._receiving is not None

    # --- replies -----------------------------------------------------------------------------
    def _ack(self, op: int, conf: int, values: bytes = b"") -> bytes:
        n = REPLY_VALUES.get(op, 0)
        return ack(conf, values.ljust(n, b"\x00")[:n], self.address)

    def _reply(self, op: int, conf: int, values: bytes = b"", work: float = 0.0) -> Reply:
        return Reply([self._ack(op, conf, values)], work or self.model.command_s)

    # --- entry point -------------------------------------------------------------------------
    def handle(self, item: Packet | Corrupt) -> Reply:
        """Process one frame from the host. Frames for another address get no reply."""
        if item.address != self.address:
            return Reply()
        if isinstance(item, Corrupt):
            self._receiving = None
            return Reply([ack(Conf.RECEIVE_ERROR, b"", self.address)], self.model.command_s)
        if item.pid in (Pid.DATA, Pid.END_DATA):
            return self._data(item)
        if item.pid != Pid.COMMAND:
            return Reply([ack(Conf.RECEIVE_ERROR, b"", self.address)], self.model.command_s)
        self._receiving = None
        op, params = item.payload[0], item.payload[1:]
        handler: Callable[[bytes], Reply] | None = getattr(
            self, f"_op_{Op(op).name.lower()}" if op in Op._value2member_map_ else "", None
        )
        if handler is None or (op in (Op.AURA_LED, Op.SOFT_RESET) and not self.model.has_led):
            unsupported = Conf.UNSUPPORTED if self.model.has_led else Conf.RECEIVE_ERROR
            return Reply([ack(unsupported, b"", self.address)], self.model.command_s)
        if len(params) != PARAMS[op]:
            return self._reply(op, Conf.RECEIVE_ERROR)
        if not self.authorised and op != Op.VFY_PWD:
            return self._reply(op, Conf.PASSWORD_REQUIRED)
        return handler(params)

    def _data(self, item: Packet) -> Reply:
        if self._receiving is None:
            return Reply()  # stray data packet: a real module ignores it
        what, slot, buf = self._receiving
        buf += item.payload
        if item.pid == Pid.END_DATA:
            self._receiving = None
            if what == "char":
                size = self.model.template_size
                self.buffers[slot] = bytes(buf[:size]).ljust(size, b"\x00")
            else:
                size = self.model.image_bytes
                self.image = Image(None, bytes(buf[:size]).ljust(size, b"\x00"))
        return Reply()

    def _buffer_index(self, value: int) -> int | None:
        return value - 1 if value in (1, 2) else None

    def _send_data(self, op: int, data: bytes, work: float) -> Reply:
        frames = [self._ack(op, Conf.OK)]
        frames += data_packets(data, self.packet_size, self.address)
        return Reply(frames, work)

    # --- imaging -----------------------------------------------------------------------------
    def _op_gen_img(self, _: bytes) -> Reply:
        if self.finger is None:
            return self._reply(Op.GEN_IMG, Conf.NO_FINGER, work=self.model.capture_s)
        self.image = Image(self.finger)
        return self._reply(Op.GEN_IMG, Conf.OK, work=self.model.capture_s)

    def _op_img2tz(self, params: bytes) -> Reply:
        slot = self._buffer_index(params[0])
        work = self.model.extract_s
        if slot is None:
            return self._reply(Op.IMG2TZ, Conf.RECEIVE_ERROR)
        if self.image is None:
            return self._reply(Op.IMG2TZ, Conf.NO_VALID_IMAGE, work=work)
        if self.image.finger is not None:
            got = fingers.capture(self.image.finger, self.rng)
        else:
            raw = self.image.raw or b""
            got = 0x07 if len(set(raw)) < 4 else fingers.features_of_image(raw)
        if isinstance(got, int):
            return self._reply(Op.IMG2TZ, got, work=work)
        self.buffers[slot] = fingers.pack(got, self.model.template_size)
        return self._reply(Op.IMG2TZ, Conf.OK, work=work)

    def _op_up_image(self, _: bytes) -> Reply:
        if self.image is None:
            return self._reply(Op.UP_IMAGE, Conf.IMAGE_UPLOAD_FAILED)
        raw = self.image.raw
        if raw is None and self.image.finger is not None:
            f = self.image.finger
            raw = fingers.render_image(
                fingers.features(f.person, f.finger),
                self.model.image_width,
                self.model.image_height,
            )
        return self._send_data(Op.UP_IMAGE, raw or b"", self.model.command_s)

    def _op_down_image(self, _: bytes) -> Reply:
        self._receiving = ("image", 0, bytearray())
        return self._reply(Op.DOWN_IMAGE, Conf.OK)

    # --- character buffers -------------------------------------------------------------------
    def _op_up_char(self, params: bytes) -> Reply:
        slot = self._buffer_index(params[0])
        if slot is None:
            return self._reply(Op.UP_CHAR, Conf.RECEIVE_ERROR)
        buf = self.buffers[slot]
        if buf is None:
            return self._reply(Op.UP_CHAR, Conf.UPLOAD_FAILED)
        return self._send_data(Op.UP_CHAR, buf, self.model.command_s)

    def _op_down_char(self, params: bytes) -> Reply:
        slot = self._buffer_index(params[0])
        if slot is None:
            return self._reply(Op.DOWN_CHAR, Conf.CANNOT_RECEIVE)
        self._receiving = ("char", slot, bytearray())
        return self._reply(Op.DOWN_CHAR, Conf.OK)

    def _op_match(self, _: bytes) -> Reply:
        a, b = self.buffers
        value = fingers.score(a, b) if a is not None and b is not None else 0
        ok = value >= LEVEL_THRESHOLDS[self.security_level]
        self.matched = ok
        conf = Conf.OK if ok else Conf.NO_MATCH
        return self._reply(Op.MATCH, conf, value.to_bytes(2, "big"), work=self.model.match_s)

    def _op_reg_model(self, _: bytes) -> Reply:
        a, b = self.buffers
        if a is None or b is None or fingers.score(a, b) < LEVEL_THRESHOLDS[1]:
            return self._reply(Op.REG_MODEL, Conf.MERGE_FAILED, work=self.model.merge_s)
        merged = fingers.pack(fingers.merge(a, b), self.model.template_size)
        self.buffers = [merged, merged]
        return self._reply(Op.REG_MODEL, Conf.OK, work=self.model.merge_s)

    # --- flash library -----------------------------------------------------------------------
    def _op_store(self, params: bytes) -> Reply:
        slot = self._buffer_index(params[0])
        page = int.from_bytes(params[1:3], "big")
        if slot is None:
            return self._reply(Op.STORE, Conf.RECEIVE_ERROR)
        if page >= self.model.capacity:
            return self._reply(Op.STORE, Conf.BAD_PAGE)
        buf = self.buffers[slot]
        if buf is None:
            return self._reply(Op.STORE, Conf.FLASH_ERROR, work=self.model.flash_s)
        self.library[page] = buf
        return self._reply(Op.STORE, Conf.OK, work=self.model.flash_s)

    def _op_load_char(self, params: bytes) -> Reply:
        slot = self._buffer_index(params[0])
        page = int.from_bytes(params[1:3], "big")
        if slot is None:
            return self._reply(Op.LOAD_CHAR, Conf.RECEIVE_ERROR)
        if page >= self.model.capacity:
            return self._reply(Op.LOAD_CHAR, Conf.BAD_PAGE)
        if page not in self.library:
            return self._reply(Op.LOAD_CHAR, Conf.BAD_TEMPLATE, work=self.model.flash_s)
        self.buffers[slot] = self.library[page]
        return self._reply(Op.LOAD_CHAR, Conf.OK, work=self.model.flash_s)

    def _op_delete_char(self, params: bytes) -> Reply:
        page = int.from_bytes(params[0:2], "big")
        count = int.from_bytes(params[2:4], "big")
        if count == 0 or page + count > self.model.capacity:
            return self._reply(Op.DELETE_CHAR, Conf.DELETE_FAILED)
        for p in range(page, page + count):
            self.library.pop(p, None)
        return self._reply(Op.DELETE_CHAR, Conf.OK, work=self.model.flash_s)

    def _op_empty(self, _: bytes) -> Reply:
        self.library.clear()
        return self._reply(Op.EMPTY, Conf.OK, work=self.model.flash_s)

    def _op_template_num(self, _: bytes) -> Reply:
        return self._reply(Op.TEMPLATE_NUM, Conf.OK, len(self.library).to_bytes(2, "big"))

    def _op_read_index(self, params: bytes) -> Reply:
        page = params[0]
        if page > 3:
            return self._reply(Op.READ_INDEX, Conf.RECEIVE_ERROR)
        bits = bytearray(32)
        for slot in self.library:
            if page * 256 <= slot < (page + 1) * 256:
                i = slot - page * 256
                bits[i // 8] |= 1 << (i % 8)
        return self._reply(Op.READ_INDEX, Conf.OK, bytes(bits))

    def _search(self, op: int, params: bytes, per_template: float) -> Reply:
        slot = self._buffer_index(params[0])
        start = int.from_bytes(params[1:3], "big")
        count = int.from_bytes(params[3:5], "big")
        if slot is None:
            return self._reply(op, Conf.RECEIVE_ERROR)
        probe = self.buffers[slot]
        pages = [p for p in sorted(self.library) if start <= p < start + count]
        work = self.model.command_s + per_template * len(pages)
        best_page, best = 0, -1
        if probe is not None:
            for p in pages:
                s = fingers.score(probe, self.library[p])
                if s > best:
                    best_page, best = p, s
        if best >= LEVEL_THRESHOLDS[self.security_level]:
            values = best_page.to_bytes(2, "big") + best.to_bytes(2, "big")
            self.matched = True
            return self._reply(op, Conf.OK, values, work=work)
        self.matched = False
        return self._reply(op, Conf.NOT_FOUND, work=work)

    def _op_search(self, params: bytes) -> Reply:
        return self._search(Op.SEARCH, params, self.model.search_per_template_s)

    def _op_high_speed_search(self, params: bytes) -> Reply:
        return self._search(Op.HIGH_SPEED_SEARCH, params, self.model.search_per_template_s / 4)

    # --- system ------------------------------------------------------------------------------
    def _op_vfy_pwd(self, params: bytes) -> Reply:
        if int.from_bytes(params, "big") != self.password:
            return self._reply(Op.VFY_PWD, Conf.WRONG_PASSWORD)
        self.authorised = True
        return self._reply(Op.VFY_PWD, Conf.OK)

    def _op_set_pwd(self, params: bytes) -> Reply:
        self.password = int.from_bytes(params, "big")
        return self._reply(Op.SET_PWD, Conf.OK, work=self.model.flash_s)

    def _op_set_addr(self, params: bytes) -> Reply:
        reply = self._reply(Op.SET_ADDR, Conf.OK, work=self.model.flash_s)
        self.address = int.from_bytes(params, "big")
        return reply

    def _op_set_sys_para(self, params: bytes) -> Reply:
        number, value = params[0], params[1]
        new_baud = None
        if number == 4 and 1 <= value <= 12:
            new_baud = value * 9600
        elif number == 5 and 1 <= value <= 5:
            self.security_level = value
        elif number == 6 and 0 <= value <= 3:
            self.packet_code = value
        else:
            return self._reply(Op.SET_SYS_PARA, Conf.BAD_REGISTER)
        reply = self._reply(Op.SET_SYS_PARA, Conf.OK, work=self.model.flash_s)
        if new_baud is not None and not self.baud_locked:
            self.baud_n = value
            reply.new_baud = new_baud
        return reply

    def status_register(self) -> int:
        return (
            (2 if self.matched else 0)
            | (4 if self.authorised else 0)
            | (8 if self.image is not None else 0)
        )

    def _op_read_sys_para(self, _: bytes) -> Reply:
        words = (
            self.status_register(),
            self.model.system_id,
            self.model.capacity,
            self.security_level,
        )
        values = b"".join(w.to_bytes(2, "big") for w in words)
        values += self.address.to_bytes(4, "big")
        values += self.packet_code.to_bytes(2, "big") + self.baud_n.to_bytes(2, "big")
        return self._reply(Op.READ_SYS_PARA, Conf.OK, values)

    def _op_get_random(self, _: bytes) -> Reply:
        return self._reply(Op.GET_RANDOM, Conf.OK, self.rng.getrandbits(32).to_bytes(4, "big"))

    def _op_write_notepad(self, params: bytes) -> Reply:
        if params[0] > 15:
            return self._reply(Op.WRITE_NOTEPAD, Conf.RECEIVE_ERROR)
        self.notepad[params[0]] = params[1:]
        return self._reply(Op.WRITE_NOTEPAD, Conf.OK, work=self.model.flash_s)

    def _op_read_notepad(self, params: bytes) -> Reply:
        if params[0] > 15:
            return self._reply(Op.READ_NOTEPAD, Conf.RECEIVE_ERROR)
        return self._reply(Op.READ_NOTEPAD, Conf.OK, self.notepad.get(params[0], bytes(32)))

    def _op_aura_led(self, params: bytes) -> Reply:
        mode, speed, colour, cycles = params
        if not 1 <= mode <= 6 or not 1 <= colour <= 7:
            return self._reply(Op.AURA_LED, Conf.RECEIVE_ERROR)
        self.led = Led(mode, speed, colour, cycles)
        return self._reply(Op.AURA_LED, Conf.OK)

    def _op_soft_reset(self, _: bytes) -> Reply:
        reply = self._reply(Op.SOFT_RESET, Conf.OK, work=self.model.command_s)
        self.reset()
        reply.frames.append(bytes((POWER_ON_BYTE,)))
        return reply

    def _op_get_echo(self, _: bytes) -> Reply:
        return self._reply(Op.GET_ECHO, Conf.ECHO_OK)
