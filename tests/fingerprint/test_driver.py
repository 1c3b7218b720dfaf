"""The codec backend against the emulator: faults, unplug, baud negotiation, wake pin, async."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.fingerprint import (
    AsyncSensor,
    EnrolmentFailed,
    NoFinger,
    SensorNotAnswering,
    SensorProtocolError,
    build_fingerprint,
)
from drivers.fingerprint.kiosk import KioskSensor
from drivers.fingerprint.wake import GpioTouchWake
from hil.fingerprint import Fault, SensorEmulator, VirtualFinger, make_template
from tests.fingerprint.conftest import fast_settings

ALICE = VirtualFinger("SYN-0200", 2)
ALICE_T = make_template("SYN-0200", 2)


@pytest.fixture
def sensor(emulator: SensorEmulator) -> KioskSensor:
    s = build_fingerprint(fast_settings(), emulator=emulator)
    s.open()
    return s


@pytest.mark.parametrize(
    "fault",
    [Fault.BAD_CHECKSUM, Fault.DROP_BYTES, Fault.NO_REPLY, Fault.WRONG_ADDRESS, Fault.STRAY_BYTE],
)
def test_one_spoilt_reply_is_retried_and_verify_succeeds(
    sensor: KioskSensor, emulator: SensorEmulator, fault: Fault
) -> None:
    emulator.present_finger(ALICE)
    emulator.inject(fault)
    assert sensor.verify(ALICE_T).matched


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.BAD_CHECKSUM, SensorProtocolError),
        (Fault.WRONG_ADDRESS, SensorProtocolError),
        (Fault.NO_REPLY, SensorNotAnswering),
        (Fault.DROP_BYTES, SensorNotAnswering),
    ],
)
def test_a_persistent_fault_is_a_typed_error_then_clears(
    sensor: KioskSensor, emulator: SensorEmulator, fault: Fault, error: type[Exception]
) -> None:
    emulator.present_finger(ALICE)
    emulator.inject(fault, times=2)
    with pytest.raises(error) as exc:
        sensor.verify(ALICE_T)
    assert getattr(exc.value, "reason", "") in ("protocol", "sensor_not_answering")
    assert sensor.verify(ALICE_T).matched  # nothing stays misaligned


def test_late_reply_does_not_misalign_the_next_exchange(
    sensor: KioskSensor, emulator: SensorEmulator
) -> None:
    emulator.present_finger(ALICE)
    emulator.inject(Fault.LATE_REPLY, delay_s=0.5)  # later than the 0.3 s reply deadline
    assert sensor.verify(ALICE_T).matched
    for _ in range(3):
        assert sensor.verify(ALICE_T).matched
        assert not sensor.verify(make_template("SYN-0201", 2)).matched


def test_busy_sensor_is_not_answering_and_the_driver_bounds_the_wait(
    sensor: KioskSensor, emulator: SensorEmulator
) -> None:
    emulator.present_finger(ALICE)
    emulator.inject(Fault.BUSY, delay_s=3.0)
    t = time.monotonic()
    with pytest.raises(SensorNotAnswering):
        sensor.verify(ALICE_T)
    assert time.monotonic() - t < 3.0  # bounded by reply timeouts and the recovery window
    emulator.clear_faults()
    assert sensor.verify(ALICE_T).matched


def test_unplug_then_replug_recovers_by_itself_in_memory(
    sensor: KioskSensor, emulator: SensorEmulator
) -> None:
    emulator.present_finger(ALICE)
    emulator.unplug()
    with pytest.raises(SensorNotAnswering) as exc:
        sensor.verify(ALICE_T)
    assert exc.value.reason == "sensor_not_answering"
    threading.Timer(0.5, emulator.replug).start()
    t = time.monotonic()
    emulator.present_finger(ALICE)
    assert sensor.verify(ALICE_T).matched  # reconnects while the cable comes back
    assert time.monotonic() - t < 2.5


def test_unplug_then_replug_recovers_on_a_pty(tmp_path: Path) -> None:
    with SensorEmulator("R503", time_scale=0) as emu:
        port = emu.start_pty(tmp_path / "ttyFP0")
        sensor = build_fingerprint(fast_settings(backend="serial", port=port))
        sensor.open()
        emu.present_finger(ALICE)
        assert sensor.verify(ALICE_T).matched
        emu.unplug()
        with pytest.raises(SensorNotAnswering):
            sensor.verify(ALICE_T)
        emu.replug()  # new pty behind the same path; the sensor sends its power-on 0x55
        emu.present_finger(ALICE)
        assert sensor.verify(ALICE_T).matched
        sensor.close()


def test_unplugged_for_good_gives_up_within_the_recovery_window(
    emulator: SensorEmulator,
) -> None:
    sensor = build_fingerprint(fast_settings(recover_timeout_s=0.5), emulator=emulator)
    sensor.open()
    emulator.unplug()
    with pytest.raises(SensorNotAnswering):
        sensor.info()
    t = time.monotonic()
    with pytest.raises(SensorNotAnswering):
        sensor.info()
    assert 0.4 < time.monotonic() - t < 1.5


def test_baud_is_raised_to_115200(emulator: SensorEmulator) -> None:
    sensor = build_fingerprint(fast_settings(baud=115200), emulator=emulator)
    sensor.open()
    assert sensor.info().baud == 115200
    assert emulator.baud == 115200
    sensor.close()
    sensor.open()  # the sensor kept 115200 in flash: found at once
    assert sensor.info().baud == 115200


def test_baud_falls_back_when_the_sensor_does_not_follow(emulator: SensorEmulator) -> None:
    emulator.lock_baud()
    sensor = build_fingerprint(fast_settings(baud=115200), emulator=emulator)
    sensor.open()
    assert sensor.info().baud == 57600
    emulator.present_finger(ALICE)
    assert sensor.verify(ALICE_T).matched


def test_wrong_password_is_refused_with_a_reason() -> None:
    with SensorEmulator("R503", time_scale=0, password=0x5EC12E7) as emu:
        sensor = build_fingerprint(fast_settings(password=1), emulator=emu)
        with pytest.raises(Exception) as exc:
            sensor.open()
        assert getattr(exc.value, "reason", "") == "sensor_password"
        ok = build_fingerprint(fast_settings(password=0x5EC12E7), emulator=emu)
        ok.open()
        assert ok.library_count() == 0


def test_non_empty_library_is_reported_on_open(
    emulator: SensorEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.library[3] = ALICE_T
    sensor = build_fingerprint(fast_settings(), emulator=emulator)
    with caplog.at_level(logging.WARNING):
        sensor.open()
    assert "holds 1 templates" in caplog.text
    assert "SYN" not in caplog.text  # nothing personal
    sensor.clear_library()
    assert sensor.library_count() == 0 and not emulator.library


def test_polling_without_a_wake_pin_is_rate_bounded(emulator: SensorEmulator) -> None:
    sensor = build_fingerprint(
        fast_settings(finger_timeout_s=0.5, poll_interval_s=0.05), emulator=emulator
    )
    sensor.open()
    with pytest.raises(NoFinger):
        sensor.verify(ALICE_T)
    assert 5 <= sensor.polls <= 12  # about one GenImg per 50 ms, never a busy loop


def test_wake_pin_waits_for_the_touch_instead_of_polling(emulator: SensorEmulator) -> None:
    factory = MockFactory()
    wake = GpioTouchWake(17, pin_factory=factory)
    pin = factory.pin(17)
    emulator.on_touch(lambda touched: pin.drive_high() if touched else pin.drive_low())
    sensor = build_fingerprint(fast_settings(finger_timeout_s=2.0), emulator=emulator, wake=wake)
    sensor.open()
    threading.Timer(0.3, emulator.present_finger, args=(ALICE,)).start()
    assert sensor.verify(ALICE_T).matched
    assert sensor.polls == 1  # one capture, after the touch
    emulator.lift_finger()
    sensor.polls = 0
    short = build_fingerprint(fast_settings(finger_timeout_s=0.2), emulator=emulator, wake=wake)
    short.open()
    with pytest.raises(NoFinger):
        short.verify(ALICE_T)
    assert short.polls == 0
    short.close()


def test_enrol_with_a_different_finger_each_time_fails(emulator: SensorEmulator) -> None:
    sensor = build_fingerprint(fast_settings(), emulator=emulator)
    sensor.open()
    emulator.tap([ALICE, VirtualFinger("SYN-0202", 6)], times=4)
    with pytest.raises(EnrolmentFailed) as exc:
        sensor.enrol()
    assert exc.value.reason == "enrol_failed"


async def test_async_adapter_keeps_the_event_loop_free(emulator: SensorEmulator) -> None:
    slow = SensorEmulator("R503", time_scale=1.0)
    try:
        sensor = AsyncSensor(build_fingerprint(fast_settings(reply_timeout_s=2.0), emulator=slow))
        await sensor.open()
        slow.present_finger(ALICE)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        match = await sensor.verify(ALICE_T)
        task.cancel()
        assert match.matched
        assert ticks > 30  # the loop kept running through a ~1 s real-time verify
        await sensor.close()
        await sensor.close()
    finally:
        slow.close()
