"""GPIO devices on gpiozero's MockFactory (the real gpiozero device code, simulated pins)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import gpiozero
import pytest
from gpiozero.pins.mock import MockFactory

from daemon.errors import ConfigError, DeviceNotFound
from drivers.gpio import (
    Colour,
    GpioBoard,
    GpioError,
    GpioSettings,
    GpioSim,
    LightState,
    Pattern,
    load_pinmap,
    open_gpio,
)
from drivers.gpio.pinmap import DEFAULT_PINMAP, parse_pinmap


@pytest.fixture
def board() -> Iterator[GpioBoard]:
    with open_gpio(GpioSettings(backend="mock", motion_enabled=True, blink_s=0.05)) as b:
        yield b


def wait_for(cond: object, timeout_s: float = 2.0) -> bool:
    assert callable(cond)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.002)
    return False


def test_tamper_open_and_close_reach_subscribers(board: GpioBoard) -> None:
    sim = GpioSim(board)
    events: list[str] = []
    board.tamper.on_open(lambda: events.append("open"))
    board.tamper.on_close(lambda: events.append("close"))
    assert not board.tamper.is_open
    sim.open_enclosure()
    assert board.tamper.is_open
    time.sleep(0.06)  # past the debounce time
    sim.close_enclosure()
    assert not board.tamper.is_open
    assert events == ["open", "close"]


def test_a_cut_tamper_wire_reads_as_open(board: GpioBoard) -> None:
    sim = GpioSim(board)
    opened: list[bool] = []
    board.tamper.on_open(lambda: opened.append(True))
    sim.cut_tamper_wire()
    assert board.tamper.is_open and opened == [True]


def test_a_failing_subscriber_does_not_silence_the_others(board: GpioBoard) -> None:
    sim = GpioSim(board)
    seen: list[int] = []

    def broken() -> None:
        raise RuntimeError("subscriber bug")

    board.tamper.on_open(broken)
    board.tamper.on_open(lambda: seen.append(1))
    sim.open_enclosure()
    assert seen == [1]


@pytest.mark.parametrize(
    ("state", "colour"),
    [
        (LightState.READY, Colour(False, True, False)),
        (LightState.BUSY, Colour(False, False, True)),
        (LightState.OFFLINE, Colour(False, True, True)),
        (LightState.OFF, Colour(False, False, False)),
    ],
)
def test_steady_light_states_show_their_colour(
    board: GpioBoard, state: LightState, colour: Colour
) -> None:
    sim = GpioSim(board)
    board.light.show(LightState.FAULT)  # a blink running before must stop
    board.light.show(state)
    assert board.light.state is state
    time.sleep(0.12)
    assert sim.lit_colour() == colour


@pytest.mark.parametrize(
    ("state", "colour"),
    [
        (LightState.SUCCESS, Colour(False, True, False)),
        (LightState.ATTENTION, Colour(True, True, False)),
        (LightState.FAULT, Colour(True, False, False)),
    ],
)
def test_blinking_states_alternate_between_colour_and_dark(
    board: GpioBoard, state: LightState, colour: Colour
) -> None:
    sim = GpioSim(board)
    board.light.show(state)
    dark = Colour(False, False, False)
    assert wait_for(lambda: sim.lit_colour() == colour)
    assert wait_for(lambda: sim.lit_colour() == dark)
    assert wait_for(lambda: sim.lit_colour() == colour)


@pytest.mark.parametrize(
    ("pattern", "beeps"), [(Pattern.SUCCESS, 1), (Pattern.ATTENTION, 2), (Pattern.FAULT, 3)]
)
def test_buzzer_patterns_sound_the_right_number_of_beeps(
    board: GpioBoard, pattern: Pattern, beeps: int
) -> None:
    sim = GpioSim(board)
    board.buzzer.play(pattern)
    assert board.buzzer.wait_idle(pattern.duration_s + 2.0)
    assert sim.buzzer_beeps() == beeps
    assert not sim.buzzer_on()


def test_a_new_pattern_cuts_the_old_one_short_and_silence_stops_it(board: GpioBoard) -> None:
    sim = GpioSim(board)
    board.buzzer.play(Pattern.FAULT)
    assert wait_for(sim.buzzer_on)
    board.buzzer.play(Pattern.SUCCESS)
    assert board.buzzer.wait_idle(1.0)
    assert sim.buzzer_beeps() == 2  # the first FAULT beep, then SUCCESS
    board.buzzer.play(Pattern.FAULT)
    assert wait_for(sim.buzzer_on)
    board.buzzer.silence()
    assert not sim.buzzer_on()
    assert board.buzzer.wait_idle(0.1)


def test_finger_touch_and_motion_wake_subscribers(board: GpioBoard) -> None:
    sim = GpioSim(board)
    woke: list[str] = []
    board.finger_wake.subscribe(lambda: woke.append("finger"))
    assert board.motion is not None
    board.motion.subscribe(lambda: woke.append("motion"))
    sim.touch_finger()
    assert board.finger_wake.active
    sim.lift_finger()
    assert not board.finger_wake.active
    sim.motion()
    assert woke == ["finger", "motion"]


def test_motion_sensor_is_absent_unless_enabled() -> None:
    with open_gpio(GpioSettings(backend="mock")) as b:
        assert b.motion is None


def test_pin_factory_is_per_device_never_the_global_default() -> None:
    factory = MockFactory()
    with open_gpio(GpioSettings(), pin_factory=factory) as b:
        assert b.pin_factory is factory
        assert gpiozero.Device.pin_factory is None
        pm = load_pinmap()
        # the devices really sit on this factory's pins
        GpioSim(b).open_enclosure()
        assert factory.pin(pm.bcm("tamper")).state == 1


def test_close_releases_pins_and_a_clash_releases_what_it_claimed() -> None:
    factory = MockFactory()
    first = open_gpio(GpioSettings(), pin_factory=factory)
    with pytest.raises(GpioError) as err:
        open_gpio(GpioSettings(), pin_factory=factory)  # every pin already held
    assert err.value.reason == "gpio_setup"
    first.close()
    first.close()  # idempotent
    with open_gpio(GpioSettings(), pin_factory=factory) as again:
        again.light.show(LightState.READY)


def test_lgpio_backend_without_lgpio_says_what_to_install() -> None:
    try:
        import lgpio  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("lgpio is installed here: this test covers a machine without it")
    with pytest.raises(DeviceNotFound) as err:
        open_gpio(GpioSettings(backend="lgpio"))
    assert "python3-lgpio" in str(err.value)


def test_sim_refuses_a_board_that_is_not_simulated() -> None:
    class Other:
        pass

    with open_gpio(GpioSettings(backend="mock")) as b:
        fake = GpioBoard(b.light, b.buzzer, b.tamper, b.finger_wake, None, b.pinmap, Other())
        with pytest.raises(GpioError):
            GpioSim(fake)


# --- the pin map ---------------------------------------------------------------------------
BASE = DEFAULT_PINMAP.read_text()


def test_packaged_pinmap_has_every_signal_on_distinct_pins() -> None:
    pm = load_pinmap()
    assert pm.bcm("uart_tx") == 14 and pm.bcm("uart_rx") == 15
    assert len({s.bcm for s in pm.signals.values()}) == len(pm.signals)
    assert pm["uart_tx"].header_pin == 8


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (("bcm = 27", "bcm = 17"), "used by both"),
        (("bcm = 14", "bcm = 5"), "UART0"),
        (("[signals.buzzer]", "[signals.buzzzer]"), "unknown signals"),
        (('pull = "up"', 'pull = "down"'), "cannot be read"),
        (("bcm = 18", "bcm = 40"), "BCM GPIO number"),
        (("version = 1", "version = 2"), "version"),
        (('device = "buzzer"', 'device = "buzzer"\ncolour = "red"'), "unknown keys"),
    ],
)
def test_bad_pinmaps_are_refused_saying_what_is_wrong(
    tmp_path: Path, change: tuple[str, str], complaint: str
) -> None:
    old, new = change
    assert old in BASE
    with pytest.raises(ConfigError) as err:
        parse_pinmap(BASE.replace(old, new, 1), tmp_path / "pinmap.toml")
    assert complaint in str(err.value)
    assert err.value.reason == "pinmap"


def test_missing_required_signal_is_refused(tmp_path: Path) -> None:
    text = (
        BASE.split("[signals.tamper]")[0] + "[signals.motion]" + BASE.split("[signals.motion]")[1]
    )
    with pytest.raises(ConfigError, match="required signals missing: tamper"):
        parse_pinmap(text, tmp_path / "p.toml")


def test_a_custom_pinmap_moves_the_devices(tmp_path: Path) -> None:
    custom = tmp_path / "pinmap.toml"
    custom.write_text(BASE.replace("bcm = 23", "bcm = 25"))
    factory = MockFactory()
    with open_gpio(GpioSettings(pinmap=custom), pin_factory=factory) as b:
        factory.pin(25).drive_high()
        assert b.tamper.is_open


def test_a_simulated_kiosk_starts_closed_and_quiet() -> None:
    with open_gpio(GpioSettings(backend="mock")) as b:
        assert not b.tamper.is_open
        assert not b.finger_wake.active
        assert b.light.state is LightState.OFF
