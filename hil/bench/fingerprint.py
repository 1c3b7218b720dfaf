"""fingerprint.*: 1:1 verify latency against the physical floor and the library's usual way.

All runs use the emulated R503 with the datasheet timing model in real time (time_scale 1):
capture 0.2 s, feature extraction 0.5 s, match 0.1 s, search 10 ms per stored template, and
every byte on the wire at 10 bits ÷ baud. A finger is on the glass from the start.

- ours: the kiosk's verify (capture, extract, DownChar of the 1536-byte template into buffer
  2, match) through the project's codec over an in-memory link, at 57600 and 115200 baud;
- floor: the sensor's own operation times for that sequence plus its bytes on the wire ÷ baud
  (computed from the model and the codec, not measured);
- baseline: pyfingerprint 1.5's documented usage (poll ``readImage()``, ``convertImage()``,
  ``searchTemplate()`` 1:N over a flash library of ``GALLERY`` people) on a pty at 57600;
- the pyfingerprint backend doing our 1:1 verify on a pty at 57600.

Each figure is the median of ``ROUNDS`` runs; runs of the variants alternate. About 25 s.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory

from drivers.fingerprint import FingerprintSettings, build_fingerprint
from drivers.fingerprint.codec import OVERHEAD, PACKET_SIZES
from hil.bench import Figure
from hil.fingerprint import SensorEmulator, VirtualFinger, make_template, model

ROUNDS = 3
GALLERY = 100
MODEL = model("R503")
FINGER = VirtualFinger("SYN-BENCH", 2)
TEMPLATE = make_template(FINGER.person, FINGER.finger, MODEL.template_size)


def floor_s(baud: int, packet_size: int = PACKET_SIZES[2]) -> float:
    """Sensor work plus wire time of the minimal 1:1 verify (GenImg, Img2Tz, DownChar, Match)."""
    work = MODEL.capture_s + MODEL.extract_s + MODEL.match_s
    ack12 = OVERHEAD + 1
    commands = (OVERHEAD + 1) + (OVERHEAD + 2) + (OVERHEAD + 2) + (OVERHEAD + 1)
    replies = ack12 * 3 + (ack12 + 2)
    packets = -(-MODEL.template_size // packet_size)
    data = MODEL.template_size + packets * OVERHEAD
    return work + (commands + replies + data) * 10 / baud


def _settings(**kw: object) -> FingerprintSettings:
    base: dict[str, object] = {
        "backend": "emulator",
        "reply_timeout_s": 2.0,
        "finger_timeout_s": 5.0,
    }
    base.update(kw)
    return FingerprintSettings(**base)  # type: ignore[arg-type]


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _ours(stack: ExitStack, baud: int) -> Callable[[], float]:
    emu = stack.enter_context(SensorEmulator(MODEL, time_scale=1.0, baud=baud))
    sensor = build_fingerprint(_settings(baud=baud, initial_baud=baud), emulator=emu)
    stack.enter_context(sensor)
    emu.present_finger(FINGER)

    def once() -> None:
        assert sensor.verify(TEMPLATE).matched

    return lambda: _timed(once)


def _pyfp_backend(stack: ExitStack, folder: Path) -> Callable[[], float]:
    emu = stack.enter_context(SensorEmulator(MODEL, time_scale=1.0, baud=57600))
    port = emu.start_pty(folder / "ttyFP-backend")
    sensor = build_fingerprint(
        _settings(backend="pyfingerprint", port=port, baud=57600, initial_baud=57600)
    )
    stack.enter_context(sensor)
    emu.present_finger(FINGER)
    return lambda: _timed(lambda: sensor.verify(TEMPLATE))


def _baseline(stack: ExitStack, folder: Path) -> Callable[[], float]:
    from pyfingerprint.pyfingerprint import PyFingerprint

    emu = stack.enter_context(SensorEmulator(MODEL, time_scale=1.0, baud=57600))
    for page in range(GALLERY):
        emu.library[page] = make_template(f"SYN-GALLERY-{page:03d}", 1, MODEL.template_size)
    emu.library[GALLERY // 2] = TEMPLATE
    port = emu.start_pty(folder / "ttyFP-baseline")
    lib = PyFingerprint(port, 57600, 0xFFFFFFFF, 0)
    assert lib.verifyPassword()
    emu.present_finger(FINGER)

    def usage() -> None:
        while not lib.readImage():
            pass
        lib.convertImage(0x01)
        position, _score = lib.searchTemplate()
        assert position == GALLERY // 2

    return lambda: _timed(usage)


def figures() -> dict[str, Figure]:
    with TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        runners = {
            "ours_57600": _ours(stack, 57600),
            "ours_115200": _ours(stack, 115200),
            "pyfp": _pyfp_backend(stack, folder),
            "baseline": _baseline(stack, folder),
        }
        times: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(ROUNDS):
            for name, run in runners.items():
                times[name].append(run())
    med = {k: statistics.median(v) for k, v in times.items()}
    floor_115200, floor_57600 = floor_s(115200), floor_s(57600)
    model_note = "emulated R503, datasheet timing in real time"
    return {
        "fingerprint.verify_s_57600": {
            "value": round(med["ours_57600"], 4),
            "unit": "s",
            "note": model_note,
        },
        "fingerprint.verify_s_115200": {
            "value": round(med["ours_115200"], 4),
            "unit": "s",
            "note": model_note,
        },
        "fingerprint.floor_s_57600": {
            "value": round(floor_57600, 4),
            "unit": "s",
            "note": "sensor work + wire bytes ÷ baud",
        },
        "fingerprint.floor_s_115200": {
            "value": round(floor_115200, 4),
            "unit": "s",
            "note": "sensor work + wire bytes ÷ baud",
        },
        "fingerprint.overhead_ratio": {
            "value": round(med["ours_115200"] / floor_115200, 4),
            "unit": "x",
            "baseline": "physical floor at 115200",
            "target": "<= 1.10",
        },
        "fingerprint.overhead_ratio_57600": {
            "value": round(med["ours_57600"] / floor_57600, 4),
            "unit": "x",
            "baseline": "physical floor at 57600",
            "target": "<= 1.10",
        },
        "fingerprint.baseline_s_57600": {
            "value": round(med["baseline"], 4),
            "unit": "s",
            "note": f"pyfingerprint readImage poll + convertImage + searchTemplate, {GALLERY} "
            "templates in flash",
        },
        "fingerprint.baseline_speedup": {
            "value": round(med["baseline"] / med["ours_57600"], 3),
            "unit": "x",
            "baseline": f"pyfingerprint documented usage, 1:N over {GALLERY}, same baud",
            "target": "> 1",
        },
        "fingerprint.pyfp_verify_s_57600": {
            "value": round(med["pyfp"], 4),
            "unit": "s",
            "note": "the pyfingerprint backend doing the same 1:1 verify",
        },
        "fingerprint.pyfp_vs_ours_57600": {
            "value": round(med["pyfp"] / med["ours_57600"], 3),
            "unit": "x",
            "baseline": "pyfingerprint backend ÷ codec backend, same verify",
        },
    }
