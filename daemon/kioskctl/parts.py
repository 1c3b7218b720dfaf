"""kioskctl's composition root: the one place it turns configuration into opened hardware and
runs system commands (systemctl, journalctl).

:class:`Parts` holds a factory per part. The defaults follow the configuration exactly as the
daemon does (daemon/hardware.py); tests replace a factory with one that returns a simulated
part already scripted to fail (a camera unplugged, a sensor emulator at another baud rate).

May import: ``daemon.*``, ``drivers.*``; ``hil.fingerprint`` only inside
:func:`default_sensor` for the emulator backend (a demo or test rig).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from daemon.clock import Clock
from daemon.ui.audio import INSTALLED_DIR
from drivers.camera import GatedCamera, open_camera
from drivers.camera.interface import CameraSettings
from drivers.display import Display, open_display
from drivers.display.interface import DisplaySettings
from drivers.fingerprint.factory import build_fingerprint
from drivers.fingerprint.interface import FingerprintSettings
from drivers.fingerprint.kiosk import KioskSensor
from drivers.gpio import GpioBoard, GpioSettings, open_gpio

#: (exit status, standard output) of a command, or None when the program is not installed
RunResult = tuple[int, str] | None
Runner = Callable[[list[str], float], RunResult]
#: like a Runner, and calls the third argument with each output line as it comes
Streamer = Callable[[list[str], float, Callable[[str], None]], RunResult]


def run_command(argv: list[str], timeout_s: float) -> RunResult:
    """Run ``argv`` with a timeout (seconds); None if the program is missing or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.returncode, done.stdout


def stream_command(argv: list[str], timeout_s: float, on_line: Callable[[str], None]) -> RunResult:
    """Run ``argv`` (standard error merged into standard output), handing each line to
    ``on_line`` as it is printed; None if the program is missing or overruns ``timeout_s``
    (then it is killed)."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
    except OSError:
        return None
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.append(line)
                on_line(line.rstrip("\n"))
        code = proc.wait()
    finally:
        timer.cancel()
    if code < 0:  # killed by the timer
        return None
    return code, "".join(lines)


def default_sound_cards(sysfs: Path = Path("/sys")) -> list[str]:
    """The kernel's sound cards by name (``/sys/class/sound/card*/id``), in card order."""
    names = []
    for card in sorted((sysfs / "class" / "sound").glob("card[0-9]*")):
        try:
            names.append((card / "id").read_text().strip() or card.name)
        except OSError:
            names.append(card.name)
    return names


@contextlib.contextmanager
def default_sensor(settings: FingerprintSettings) -> Iterator[KioskSensor]:
    """The configured sensor, opened; closed (and any emulator stopped) on exit.

    Raises what ``KioskSensor.open`` raises (SensorMissing, SensorNotAnswering, ...)."""
    emulator = None
    if settings.backend == "emulator":
        from hil.fingerprint.emulator import SensorEmulator

        emulator = SensorEmulator(settings.emulator_model, time_scale=0.0)
    sensor = build_fingerprint(settings, emulator=emulator)
    try:
        sensor.open()
        yield sensor
    finally:
        with contextlib.suppress(Exception):
            sensor.close()
        if emulator is not None:
            emulator.close()


@contextlib.contextmanager
def default_camera(settings: CameraSettings) -> Iterator[GatedCamera]:
    camera = open_camera(settings)
    try:
        yield camera
    finally:
        camera.close()


@contextlib.contextmanager
def default_gpio(settings: GpioSettings) -> Iterator[GpioBoard]:
    board = open_gpio(settings)
    try:
        yield board
    finally:
        board.close()


@contextlib.contextmanager
def default_display(settings: DisplaySettings, clock: Clock) -> Iterator[Display]:
    display = open_display(settings, clock)
    try:
        yield display
    finally:
        display.close()


@dataclass
class Parts:
    """Factories for each part; every one is a context manager that closes what it opened."""

    sensor: Callable[[FingerprintSettings], contextlib.AbstractContextManager[KioskSensor]] = (
        default_sensor
    )
    camera: Callable[[CameraSettings], contextlib.AbstractContextManager[GatedCamera]] = (
        default_camera
    )
    gpio: Callable[[GpioSettings], contextlib.AbstractContextManager[GpioBoard]] = default_gpio
    display: Callable[[DisplaySettings, Clock], contextlib.AbstractContextManager[Display]] = (
        default_display
    )
    run: Runner = field(default=run_command)
    stream: Streamer = field(default=stream_command)
    #: the names of the sound cards the kernel sees (the USB audio adapter on a kiosk)
    sound_cards: Callable[[], list[str]] = field(default=default_sound_cards)
    #: where the spoken prompts were installed (daemon/ui/audio.py)
    prompts_dir: Path = INSTALLED_DIR
