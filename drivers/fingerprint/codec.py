"""Pure packet codec for ZhianTec-style fingerprint sensors (R30x, R503, AS608).

Frame (all big-endian): ``EF 01`` | address (4) | packet id (1) | length L (2) | payload (L-2)
| checksum (2), where L counts the payload plus the checksum and the checksum is the 16-bit sum
of the packet id, both length bytes and every payload byte. See
../shared/reference/fingerprint-protocol.md §3.

Nothing here does I/O or keeps time; the driver and the emulator both build on it.

May import: the standard library only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

HEADER = b"\xef\x01"
DEFAULT_ADDRESS = 0xFFFFFFFF
#: Largest length field accepted: a 256-byte data packet plus its checksum.
MAX_LENGTH = 256 + 2
#: Bytes of framing around a payload (header, address, pid, length, checksum).
OVERHEAD = 11
#: The raw byte a module sends after power-on or a soft reset (not a packet).
POWER_ON_BYTE = 0x55
#: Data packet payload sizes by the system parameter's size code.
PACKET_SIZES = (32, 64, 128, 256)


class Pid(enum.IntEnum):
    """Packet identifiers."""

    COMMAND = 0x01
    DATA = 0x02
    ACK = 0x07
    END_DATA = 0x08


class Op(enum.IntEnum):
    """Instruction codes (the first payload byte of a command packet)."""

    GEN_IMG = 0x01
    IMG2TZ = 0x02
    MATCH = 0x03
    SEARCH = 0x04
    REG_MODEL = 0x05
    STORE = 0x06
    LOAD_CHAR = 0x07
    UP_CHAR = 0x08
    DOWN_CHAR = 0x09
    UP_IMAGE = 0x0A
    DOWN_IMAGE = 0x0B
    DELETE_CHAR = 0x0C
    EMPTY = 0x0D
    SET_SYS_PARA = 0x0E
    READ_SYS_PARA = 0x0F
    SET_PWD = 0x12
    VFY_PWD = 0x13
    GET_RANDOM = 0x14
    SET_ADDR = 0x15
    WRITE_NOTEPAD = 0x18
    READ_NOTEPAD = 0x19
    HIGH_SPEED_SEARCH = 0x1B
    TEMPLATE_NUM = 0x1D
    READ_INDEX = 0x1F
    AURA_LED = 0x35
    SOFT_RESET = 0x3D
    GET_ECHO = 0x53


class Conf(enum.IntEnum):
    """Confirmation codes (the first payload byte of an acknowledgement)."""

    OK = 0x00
    RECEIVE_ERROR = 0x01
    NO_FINGER = 0x02
    CAPTURE_FAILED = 0x03
    IMAGE_DISORDERLY = 0x06
    TOO_FEW_FEATURES = 0x07
    NO_MATCH = 0x08
    NOT_FOUND = 0x09
    MERGE_FAILED = 0x0A
    BAD_PAGE = 0x0B
    BAD_TEMPLATE = 0x0C
    UPLOAD_FAILED = 0x0D
    CANNOT_RECEIVE = 0x0E
    IMAGE_UPLOAD_FAILED = 0x0F
    DELETE_FAILED = 0x10
    EMPTY_FAILED = 0x11
    WRONG_PASSWORD = 0x13
    NO_VALID_IMAGE = 0x15
    FLASH_ERROR = 0x18
    BAD_REGISTER = 0x1A
    ADDRESS_ERROR = 0x20
    PASSWORD_REQUIRED = 0x21
    SENSOR_BUSY = 0x25
    UNSUPPORTED = 0xFE
    ECHO_OK = 0x55


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded frame."""

    pid: int
    payload: bytes
    address: int = DEFAULT_ADDRESS

    @property
    def wire_size(self) -> int:
        return len(self.payload) + OVERHEAD


@dataclass(frozen=True, slots=True)
class Corrupt:
    """A complete frame whose checksum did not add up (the bytes are kept for diagnosis)."""

    raw: bytes
    address: int


def checksum(pid: int, payload: bytes) -> int:
    """The 16-bit sum of the packet id, the two length bytes and the payload."""
    length = len(payload) + 2
    return (pid + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF


def encode(pid: int, payload: bytes, address: int = DEFAULT_ADDRESS) -> bytes:
    """One packet as bytes. Raises ValueError for a payload longer than the protocol allows."""
    if len(payload) + 2 > MAX_LENGTH or not payload:
        raise ValueError(f"payload of {len(payload)} bytes cannot be framed (1..256 allowed)")
    length = len(payload) + 2
    return b"".join(
        (
            HEADER,
            address.to_bytes(4, "big"),
            bytes((pid,)),
            length.to_bytes(2, "big"),
            payload,
            checksum(pid, payload).to_bytes(2, "big"),
        )
    )


def command(op: int, params: bytes = b"", address: int = DEFAULT_ADDRESS) -> bytes:
    return encode(Pid.COMMAND, bytes((op,)) + params, address)


def ack(conf: int, values: bytes = b"", address: int = DEFAULT_ADDRESS) -> bytes:
    return encode(Pid.ACK, bytes((conf,)) + values, address)


def data_packets(data: bytes, size: int, address: int = DEFAULT_ADDRESS) -> list[bytes]:
    """Split ``data`` into data packets of ``size`` payload bytes, the last one END_DATA."""
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b"\x00"]
    return [
        encode(Pid.END_DATA if i == len(chunks) - 1 else Pid.DATA, chunk, address)
        for i, chunk in enumerate(chunks)
    ]


class Decoder:
    """Incremental frame decoder with resynchronisation on ``EF 01``.

    Feed it bytes in any fragmentation; it returns every complete frame. Bytes before a header
    (a power-on ``0x55``, line noise, the tail of a late reply) are skipped and counted in
    :attr:`discarded`; a trailing ``EF`` is kept in case ``01`` follows. A header followed by an
    impossible length is skipped too, so one garbage ``EF 01`` cannot swallow a real frame.
    Not thread-safe; one decoder per reader.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.discarded = 0

    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def clear(self) -> None:
        self.discarded += len(self._buf)
        self._buf.clear()

    def feed(self, data: bytes) -> list[Packet | Corrupt]:
        self._buf += data
        out: list[Packet | Corrupt] = []
        buf = self._buf
        while True:
            start = buf.find(HEADER)
            if start < 0:
                keep = 1 if buf[-1:] == HEADER[:1] else 0
                self.discarded += len(buf) - keep
                del buf[: len(buf) - keep]
                return out
            if start:
                self.discarded += start
                del buf[:start]
            if len(buf) < 9:
                return out
            length = int.from_bytes(buf[7:9], "big")
            if length < 3 or length > MAX_LENGTH:
                self.discarded += 2
                del buf[:2]
                continue
            total = 9 + length
            if len(buf) < total:
                return out
            frame = bytes(buf[:total])
            del buf[:total]
            pid = frame[6]
            payload = frame[9:-2]
            address = int.from_bytes(frame[2:6], "big")
            if int.from_bytes(frame[-2:], "big") != checksum(pid, payload):
                out.append(Corrupt(frame, address))
            else:
                out.append(Packet(pid, payload, address))


def parse_sys_params(values: bytes) -> dict[str, int]:
    """The 16 bytes after the confirmation code of a ReadSysPara reply, by field name."""
    if len(values) < 16:
        raise ValueError(f"ReadSysPara reply has {len(values)} value bytes, 16 expected")

    def word(i: int) -> int:
        return int.from_bytes(values[2 * i : 2 * i + 2], "big")

    return {
        "status": word(0),
        "system_id": word(1),
        "capacity": word(2),
        "security_level": word(3),
        "address": int.from_bytes(values[8:12], "big"),
        "packet_size_code": word(6),
        "baud_n": word(7),
    }
