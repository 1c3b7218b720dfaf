"""On the Pi of the HIL rig only (``--rig``): the real camera, GPIO chip and backlight.

Skipped without ``--rig`` (tests/conftest.py), because they need a Raspberry Pi with a Camera
Module, the kiosk's wiring and a display. Each leaves the hardware as it found it.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from daemon.clock import SystemClock
from drivers.camera import CameraSettings, open_camera
from drivers.display import DisplaySettings, open_display
from drivers.gpio import GpioSettings, LightState, Pattern, open_gpio

pytestmark = pytest.mark.hil


def test_real_camera_takes_an_evidence_still() -> None:
    settings = CameraSettings(backend="picamera2")
    with open_camera(settings) as cam:
        photo = cam.capture_still()
    img = Image.open(io.BytesIO(photo.jpeg))
    assert img.size == (settings.width, settings.height)
    assert photo.attempts in (1, 2)


def test_real_gpio_board_opens_and_drives_its_outputs() -> None:
    with open_gpio(GpioSettings(backend="lgpio")) as board:
        for state in LightState:
            board.light.show(state)
        board.buzzer.play(Pattern.KEYPRESS)
        assert board.buzzer.wait_idle(1.0)
        assert board.tamper.is_open in (True, False)
        board.light.show(LightState.OFF)


def test_real_backlight_dims_and_wakes() -> None:
    if not any(Path("/sys/class/backlight").glob("*")):
        pytest.skip("this rig's display has no sysfs backlight (HDMI panel)")
    with open_display(DisplaySettings(backend="sysfs"), SystemClock()) as display:
        before = display.backlight.brightness
        display.backlight.dim()
        assert display.backlight.brightness < before or before <= 0.15
        display.backlight.wake()
        assert display.backlight.brightness == pytest.approx(1.0, abs=0.02)
