"""The packet codec (byte-exact against the datasheet, properties) and the emulator's replies."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from drivers.fingerprint import FingerprintSettings, build_fingerprint
from drivers.fingerprint.codec import Conf, Corrupt, Decoder, Op, Packet, Pid, ack, command, encode
from hil.fingerprint import SensorEmulator, VirtualFinger, make_template
from hil.fingerprint.models import model
from hil.fingerprint.sensor import PARAMS, SensorCore

ROOT = Path(__file__).resolve().parents[2]


def test_worked_examples_from_the_datasheet() -> None:
    assert (
        command(Op.VFY_PWD, bytes(4)).hex(" ") == "ef 01 ff ff ff ff 01 00 07 13 00 00 00 00 00 1b"
    )
    assert command(Op.GEN_IMG).hex(" ") == "ef 01 ff ff ff ff 01 00 03 01 00 05"
    search = command(Op.SEARCH, bytes.fromhex("01 0000 03e8"))
    assert search.hex(" ") == "ef 01 ff ff ff ff 01 00 08 04 01 00 00 03 e8 00 f9"
    assert ack(Conf.NO_FINGER).hex(" ") == "ef 01 ff ff ff ff 07 00 03 02 00 0c"
    assert ack(Conf.OK, b"\x00\x03").hex(" ") == "ef 01 ff ff ff ff 07 00 05 00 00 03 00 0f"


packets = st.builds(
    lambda pid, payload, addr: (pid, payload, addr),
    st.sampled_from(list(Pid)),
    st.binary(min_size=1, max_size=256),
    st.integers(0, 2**32 - 1),
)


@given(st.lists(packets, min_size=1, max_size=5), st.binary(max_size=40), st.data())
def test_decoder_recovers_every_frame_after_garbage_in_any_fragmentation(
    frames: list[tuple[int, bytes, int]], garbage: bytes, data: st.DataObject
) -> None:
    garbage = garbage.replace(b"\xef", b"\x55")  # garbage that cannot fake a header
    wire = garbage + b"".join(encode(p, b, a) for p, b, a in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=20)))
    decoder = Decoder()
    got: list[Packet | Corrupt] = []
    for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        got += decoder.feed(wire[a:b])
    assert got == [Packet(p, b, a) for p, b, a in frames]
    assert decoder.discarded == len(garbage)


@given(st.binary(min_size=1, max_size=64), st.integers(9, 20))
def test_a_flipped_byte_is_never_taken_for_the_packet(payload: bytes, where: int) -> None:
    frame = bytearray(encode(Pid.ACK, payload))
    where = min(where, len(frame) - 1)
    frame[where] ^= 0x01
    got = Decoder().feed(bytes(frame))
    assert Packet(Pid.ACK, payload) not in got


def _reply(core: SensorCore, op: int, params: bytes) -> bytes:
    return core.handle(Packet(Pid.COMMAND, bytes((op,)) + params)).frames[0]


def test_every_reply_has_the_datasheet_length_even_on_failure() -> None:
    totals: dict[int, int] = {
        Op.MATCH: 14,
        Op.SEARCH: 16,
        Op.HIGH_SPEED_SEARCH: 16,
        Op.READ_SYS_PARA: 28,
        Op.GET_RANDOM: 16,
        Op.TEMPLATE_NUM: 14,
        Op.READ_INDEX: 44,
        Op.READ_NOTEPAD: 44,
    }
    core = SensorCore(model("R503"))
    for op, n in PARAMS.items():
        if op in (Op.SOFT_RESET, Op.SET_ADDR, Op.SET_PWD):
            continue
        params = bytes([1] * n)
        assert len(_reply(core, op, params)) == totals.get(op, 12), Op(op).name
    # failures keep the length: a search miss still carries PageID and score
    miss = _reply(core, Op.SEARCH, bytes.fromhex("01 0000 00c8"))
    assert miss[9] == Conf.NOT_FOUND and len(miss) == 16
    assert _reply(core, Op.MATCH, b"")[9] == Conf.NO_MATCH
    assert _reply(core, Op.IMG2TZ, b"\x01")[9] == Conf.NO_VALID_IMAGE
    assert _reply(core, Op.STORE, bytes.fromhex("01 00c8"))[9] == Conf.BAD_PAGE
    assert _reply(core, Op.SET_SYS_PARA, bytes((9, 1)))[9] == Conf.BAD_REGISTER
    assert _reply(core, 0x77, b"")[9] == Conf.UNSUPPORTED


def test_models_differ_in_template_and_image_size() -> None:
    for name, template, image in (("R503", 1536, 192 * 192 // 2), ("R307", 512, 36864)):
        core = SensorCore(model(name))
        core.finger = VirtualFinger("SYN-0300", 1)
        _reply(core, Op.GEN_IMG, b"")
        assert _reply(core, Op.IMG2TZ, b"\x01")[9] == Conf.OK
        reply = core.handle(Packet(Pid.COMMAND, bytes((Op.UP_CHAR, 1))))
        assert sum(len(f) - 11 for f in reply.frames[1:]) == template
        reply = core.handle(Packet(Pid.COMMAND, bytes((Op.UP_IMAGE,))))
        assert sum(len(f) - 11 for f in reply.frames[1:]) == image
        assert len(make_template("SYN-0300", 1, template)) == template


def test_led_and_echo_on_the_r503_only() -> None:
    r503, r307 = SensorCore(model("R503")), SensorCore(model("R307"))
    assert _reply(r503, Op.AURA_LED, bytes((3, 0, 4, 0)))[9] == Conf.OK
    assert r503.led.colour == 4 and r503.led.mode == 3
    assert _reply(r307, Op.AURA_LED, bytes((3, 0, 4, 0)))[9] == Conf.RECEIVE_ERROR
    assert _reply(r307, Op.GET_ECHO, b"")[9] == Conf.ECHO_OK
    frames = r503.handle(Packet(Pid.COMMAND, bytes((Op.SOFT_RESET,)))).frames
    assert frames[-1] == b"\x55"  # the raw power-on byte follows the ack


def test_another_address_and_another_baud_get_silence() -> None:
    with SensorEmulator("R503", time_scale=0) as emu:
        host = emu.connect()
        host.write(command(Op.TEMPLATE_NUM, address=0x12345678))
        assert host.read(64, 0.2) == b""
        host.set_baud(115200)  # sensor is at 57600
        host.write(command(Op.TEMPLATE_NUM))
        assert host.read(64, 0.2) == b""
        host.set_baud(57600)
        host.write(command(Op.TEMPLATE_NUM))
        assert Decoder().feed(host.read(64, 1.0)) == [Packet(Pid.ACK, b"\x00\x00\x00")]
        assert emu.stats.ignored == 2


def test_timing_model_charges_work_and_wire_time() -> None:
    slept: list[float] = []
    clock = [0.0]

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    with SensorEmulator("R503", time_scale=1.0, sleep=sleep, monotonic=lambda: clock[0]) as emu:
        emu.present_finger("SYN-0301", 1)
        host = emu.connect()
        host.write(command(Op.GEN_IMG))
        assert host.read(64, 2.0)
        # 12 bytes in, 0.2 s capture, 12 bytes out at 57600 baud
        assert abs(sum(slept) - (0.2 + 24 * 10 / 57600)) < 1e-9


def test_time_scale_makes_real_time_runs_faster() -> None:
    with SensorEmulator("R503", time_scale=0.1) as emu:
        emu.present_finger("SYN-0302", 1)
        sensor = build_fingerprint(
            FingerprintSettings(backend="emulator", baud=57600), emulator=emu
        )
        sensor.open()
        t = time.monotonic()
        assert sensor.verify(make_template("SYN-0302", 1)).matched
        took = time.monotonic() - t
        assert 0.08 < took < 0.5  # ~1.1 s of modelled time at a tenth


def test_command_line_pty_with_control_socket(tmp_path: Path) -> None:
    control = tmp_path / "ctl.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hil.fingerprint",
            "--pty",
            "--time-scale",
            "0",
            "--control",
            str(control),
            "--link",
            str(tmp_path / "ttyFP"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert port == str(tmp_path / "ttyFP") and os.path.exists(port)
        for _ in range(50):
            if control.exists():
                break
            time.sleep(0.05)
        sensor = build_fingerprint(
            FingerprintSettings(backend="serial", port=port, baud=57600, finger_timeout_s=0.3)
        )
        sensor.open()
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(control))
            f = s.makefile("rw")
            f.write("present SYN-0303 3 good\n")
            f.flush()
            assert f.readline().strip() == "ok"
            assert sensor.verify(make_template("SYN-0303", 3)).matched
            f.write("levitate\n")
            f.flush()
            assert f.readline().startswith("error:")
            f.close()
        sensor.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
