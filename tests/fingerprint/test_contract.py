"""The FingerprintSensor contract, the same bodies against every backend.

Backends: the codec over an in-memory link, the codec over pyserial on a pty, pyfingerprint on
a pty (both against the emulator), and with ``--rig /dev/ttyXXX`` a real sensor. Bodies that
need a finger on the glass ask the ``hand`` fixture, which only an emulator has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.fingerprint import (
    DuplicateFinger,
    FingerprintSensor,
    LedColour,
    LedMode,
    NoFinger,
    PoorImage,
    build_fingerprint,
)
from hil.fingerprint import Condition, SensorEmulator, VirtualFinger, make_template
from tests.fingerprint.conftest import fast_settings


@dataclass
class Hand:
    present: Callable[[str, int, Condition], None]
    lift: Callable[[], None]
    tap: Callable[[str, int, int], None]
    template_size: int


@dataclass
class Rigged:
    sensor: FingerprintSensor
    hand: Hand | None


def _emulated(backend: str, tmp_path: Path) -> Iterator[Rigged]:
    emu = SensorEmulator("R307" if backend != "memory" else "R503", time_scale=0, seed=3)
    if backend == "memory":
        settings = fast_settings()
    else:
        port = emu.start_pty(tmp_path / "ttyFP")
        settings = fast_settings(
            backend="serial" if backend == "serial-pty" else "pyfingerprint", port=port
        )
    sensor = build_fingerprint(settings, emulator=emu)
    sensor.open()
    hand = Hand(
        present=lambda p, f, c: emu.present_finger(p, f, c),
        lift=emu.lift_finger,
        tap=lambda p, f, n: emu.tap(VirtualFinger(p, f), n),
        template_size=emu.model.template_size,
    )
    try:
        yield Rigged(sensor, hand)
    finally:
        sensor.close()
        emu.close()


@pytest.fixture(
    params=[
        "memory",
        "serial-pty",
        "pyfingerprint-pty",
        pytest.param("rig", marks=pytest.mark.hil),
    ]
)
def rigged(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rigged]:
    if request.param == "rig":
        port = request.config.getoption("--rig")
        sensor = build_fingerprint(
            fast_settings(backend="serial", port=port, finger_timeout_s=1.0, reply_timeout_s=2.0)
        )
        sensor.open()
        try:
            yield Rigged(sensor, None)
        finally:
            sensor.close()
        return
    yield from _emulated(request.param, tmp_path)


def need_hand(r: Rigged) -> Hand:
    if r.hand is None:
        pytest.skip("needs a finger placed on cue; a real sensor has no robot finger")
    return r.hand


def test_info_reports_the_sensor(rigged: Rigged) -> None:
    info = rigged.sensor.info()
    assert info.capacity > 0
    assert 1 <= info.security_level <= 5
    assert info.packet_size in (32, 64, 128, 256)
    assert info.library_count == 0  # the kiosk keeps the flash library empty


def test_no_finger_is_a_typed_error(rigged: Rigged) -> None:
    if rigged.hand:
        rigged.hand.lift()
    with pytest.raises(NoFinger) as exc:
        rigged.sensor.verify(b"\x00" * 512)
    assert exc.value.reason == "no_finger"


def test_set_led_never_fails(rigged: Rigged) -> None:
    rigged.sensor.set_led(LedMode.BREATHE, LedColour.BLUE)
    rigged.sensor.set_led(LedMode.OFF)


def test_verify_same_finger_matches_other_finger_does_not(rigged: Rigged) -> None:
    hand = need_hand(rigged)
    hand.present("SYN-0001", 2, Condition.GOOD)
    good = rigged.sensor.verify(make_template("SYN-0001", 2, hand.template_size), threshold=60)
    other = rigged.sensor.verify(make_template("SYN-0001", 7, hand.template_size), threshold=60)
    assert good.matched and good.score >= 60
    assert not other.matched and other.score < 60


def test_dry_finger_is_a_poor_image(rigged: Rigged) -> None:
    hand = need_hand(rigged)
    hand.present("SYN-0002", 1, Condition.DRY)
    with pytest.raises(PoorImage) as exc:
        rigged.sensor.verify(make_template("SYN-0002", 1, hand.template_size))
    assert exc.value.reason == "poor_image"


def test_library_can_be_counted_and_cleared(rigged: Rigged) -> None:
    rigged.sensor.clear_library()
    assert rigged.sensor.library_count() == 0


def test_close_is_idempotent(rigged: Rigged) -> None:
    rigged.sensor.close()
    rigged.sensor.close()


def test_enrol_returns_a_template_that_verifies(rigged: Rigged) -> None:
    hand = need_hand(rigged)
    hand.tap("SYN-0003", 4, 3)
    enrolment = rigged.sensor.enrol(others=[make_template("SYN-0003", 5, hand.template_size)])
    assert len(enrolment.template) == hand.template_size
    assert enrolment.captures == 3 and len(enrolment.confirm_scores) == 1
    hand.present("SYN-0003", 4, Condition.GOOD)
    assert rigged.sensor.verify(enrolment.template, threshold=60).matched
    hand.present("SYN-0004", 4, Condition.GOOD)
    assert not rigged.sensor.verify(enrolment.template, threshold=60).matched


def test_enrolling_an_already_enrolled_finger_is_refused(rigged: Rigged) -> None:
    hand = need_hand(rigged)
    hand.tap("SYN-0005", 1, 3)
    with pytest.raises(DuplicateFinger) as exc:
        rigged.sensor.enrol(others=[make_template("SYN-0005", 1, hand.template_size)])
    assert exc.value.reason == "duplicate_finger"
