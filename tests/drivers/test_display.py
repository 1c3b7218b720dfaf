"""The screen: the real sysfs code against a sysfs-like folder, dimming on a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.clock import FakeClock
from daemon.errors import DeviceNotFound
from drivers.display import (
    BacklightNotFound,
    Display,
    DisplayError,
    DisplaySettings,
    ScreenState,
    SimulatedSysfs,
    SysfsBacklight,
    find_touch_devices,
    open_display,
)
from drivers.gpio import GpioSettings, GpioSim, open_gpio

SETTINGS = DisplaySettings(
    backend="simulated", dim_after_s=60, off_after_s=600, awake_brightness=0.8
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def display(clock: FakeClock) -> Iterator[Display]:
    with open_display(SETTINGS, clock) as d:
        yield d


def test_opening_wakes_the_screen_to_the_configured_brightness(display: Display) -> None:
    assert display.sim is not None
    assert display.sim.raw_brightness() == round(0.8 * 255)
    assert display.sim.powered()
    assert display.backlight.brightness == pytest.approx(0.8, abs=0.01)


def test_idle_dims_then_switches_off_and_activity_wakes(display: Display, clock: FakeClock) -> None:
    sim, dimmer = display.sim, display.dimmer
    assert sim is not None
    clock.advance(59)
    assert dimmer.tick() is ScreenState.AWAKE
    assert dimmer.seconds_to_next_change() == pytest.approx(1.0)
    clock.advance(1)
    assert dimmer.tick() is ScreenState.DIMMED
    assert sim.raw_brightness() == round(0.15 * 255) and sim.powered()
    clock.advance(540)
    assert dimmer.tick() is ScreenState.OFF
    assert not sim.powered() and display.backlight.brightness == 0.0
    assert dimmer.seconds_to_next_change() is None
    dimmer.activity()
    assert dimmer.state is ScreenState.AWAKE and sim.powered()
    assert sim.raw_brightness() == round(0.8 * 255)
    assert dimmer.wakes == 1


def test_activity_while_awake_restarts_the_countdown(display: Display, clock: FakeClock) -> None:
    clock.advance(50)
    display.dimmer.activity()
    clock.advance(50)
    assert display.dimmer.tick() is ScreenState.AWAKE
    assert display.dimmer.wakes == 0


def test_finger_and_motion_lines_wake_the_screen(display: Display, clock: FakeClock) -> None:
    with open_gpio(GpioSettings(backend="mock", motion_enabled=True)) as board:
        gpio = GpioSim(board)
        board.finger_wake.subscribe(display.dimmer.activity)
        assert board.motion is not None
        board.motion.subscribe(display.dimmer.activity)
        clock.advance(60)
        assert display.dimmer.tick() is ScreenState.DIMMED
        gpio.motion()
        assert display.dimmer.state is ScreenState.AWAKE
        gpio.motion_ends()
        clock.advance(60)
        display.dimmer.tick()
        gpio.touch_finger()
        assert display.dimmer.state is ScreenState.AWAKE
        assert display.dimmer.wakes == 2


def test_touch_panel_presence_for_diagnostics(display: Display) -> None:
    assert display.sim is not None
    found = display.touch_devices()
    assert [(t.name, t.event) for t in found] == [("Simulated Touch Display", "event1")]
    display.sim.unplug_touch()
    assert display.touch_devices() == []  # the keyboard is not mistaken for a touch panel


def test_real_kernel_bitmap_format_is_read(tmp_path: Path) -> None:
    sim = SimulatedSysfs(tmp_path)
    dev = tmp_path / "class" / "input" / "event1" / "device"
    # as a 64-bit kernel prints a multitouch panel: ABS_X, ABS_Y, ABS_MT_SLOT..TRACKING_ID
    (dev / "capabilities" / "abs").write_text("660800000000003\n")
    (dev / "properties").write_text("2\n")
    assert [t.name for t in find_touch_devices(tmp_path)] == ["Simulated Touch Display"]
    (dev / "properties").write_text("0\n")  # not a direct-input device: a touchpad
    assert find_touch_devices(tmp_path) == []
    sim.close()
    assert tmp_path.exists()  # a folder it did not create is not removed


def test_no_backlight_is_a_typed_error_saying_what_to_check(
    tmp_path: Path, clock: FakeClock
) -> None:
    with pytest.raises(BacklightNotFound) as err:
        open_display(DisplaySettings(sysfs_root=tmp_path), clock)
    assert isinstance(err.value, DeviceNotFound)
    assert "ribbon cable" in str(err.value)


def test_named_and_ambiguous_backlights(tmp_path: Path) -> None:
    SimulatedSysfs(tmp_path)
    other = tmp_path / "class" / "backlight" / "hdmi-backlight"
    other.mkdir()
    (other / "max_brightness").write_text("100\n")
    (other / "brightness").write_text("100\n")
    with pytest.raises(BacklightNotFound, match="several backlights"):
        SysfsBacklight(DisplaySettings(sysfs_root=tmp_path))
    bl = SysfsBacklight(DisplaySettings(sysfs_root=tmp_path, backlight="hdmi-backlight"))
    bl.set_brightness(0.5)
    assert (other / "brightness").read_text() == "50\n"  # no bl_power file: still works
    with pytest.raises(BacklightNotFound, match="no backlight named"):
        SysfsBacklight(DisplaySettings(sysfs_root=tmp_path, backlight="absent"))


def test_a_broken_backlight_reports_a_typed_error(display: Display) -> None:
    assert display.sim is not None
    display.sim.break_backlight()
    with pytest.raises(DisplayError) as err:
        display.backlight.dim()
    assert err.value.reason in {"backlight_write", "backlight_permission"}


def test_a_low_brightness_never_rounds_to_dark(display: Display) -> None:
    assert display.sim is not None
    display.backlight.set_brightness(0.001)
    assert display.sim.raw_brightness() == 1 and display.sim.powered()
    with pytest.raises(ValueError):
        display.backlight.set_brightness(1.5)


def test_simulated_folder_is_removed_on_close(clock: FakeClock) -> None:
    d = open_display(SETTINGS, clock)
    assert d.sim is not None
    root = d.sim.root
    assert root.is_dir()
    d.close()
    d.close()
    assert not root.exists()


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="off_after_s"):
        DisplaySettings(dim_after_s=60, off_after_s=30)
    with pytest.raises(ValueError, match="dim_brightness"):
        DisplaySettings(dim_brightness=1.0, awake_brightness=0.5)
    with pytest.raises(ValueError, match="backlight"):
        DisplaySettings(backlight="../x")
