"""``kioskctl sensor info | set-baud | clear-library | test-match`` and ``kioskctl camera
snap``. Stop kiosk.service first: it holds the sensor's serial port and the camera.

May import: ``daemon.*``, ``drivers.*`` (interfaces), ``daemon.kioskctl.*``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import DriverError
from daemon.keys import write_private_file
from daemon.kioskctl.checks_hw import STANDARD_BAUDS, find_sensor_baud
from daemon.kioskctl.context import Context
from drivers.fingerprint.interface import (
    FingerprintSettings,
    Match,
    SensorInfo,
    SensorNotAnswering,
)


def sensor_info(ctx: Context) -> SensorInfo:
    """Raises the sensor's errors (SensorMissing, SensorNotAnswering, ...)."""
    with ctx.parts.sensor(ctx.cfg.fingerprint) as sensor:
        return sensor.info()


def format_info(info: SensorInfo, settings: FingerprintSettings) -> str:
    # the emulator backend has no port: it is a simulated sensor inside this command
    port = "none, a simulated sensor" if settings.backend == "emulator" else settings.port
    return "\n".join(
        [
            f"port:            {port} ({settings.backend})",
            f"baud:            {info.baud}",
            f"capacity:        {info.capacity} templates",
            f"library:         {info.library_count} stored "
            + ("(ok: must be empty)" if info.library_count == 0 else "(CLEAR IT)"),
            f"security level:  {info.security_level}",
            f"packet size:     {info.packet_size} bytes",
            f"address:         0x{info.address:08X}",
            f"system id:       0x{info.system_id:04X}",
        ]
    )


def set_baud(ctx: Context, baud: int, from_baud: int | None = None) -> tuple[int, int]:
    """Move the sensor to ``baud`` (stored in its flash). ``from_baud``: the rate it talks at
    now (found by probing the standard rates when None). Returns (old, new).

    Raises SensorNotAnswering when the sensor answers at no standard rate, DriverError when it
    will not switch."""
    if baud not in STANDARD_BAUDS:
        raise ValueError(f"baud {baud} is not one of {', '.join(map(str, STANDARD_BAUDS))}")
    s = ctx.cfg.fingerprint
    if from_baud is None:
        from_baud = find_sensor_baud(ctx, set())
        if from_baud is None:
            raise SensorNotAnswering(
                "the sensor answers at no standard baud rate: check its cable and power"
            )
    # opening with baud=<new> and initial_baud=<current> makes the driver switch the sensor
    with ctx.parts.sensor(dataclasses.replace(s, baud=baud, initial_baud=from_baud)) as sensor:
        got = sensor.info().baud
    if got != baud:
        raise DriverError(
            f"the sensor stayed at {got} baud (some clones ignore the change); leave "
            f"fingerprint.initial_baud = {got}",
            reason="sensor_baud",
        )
    return from_baud, baud


def clear_library(ctx: Context) -> int:
    """Empty the sensor's flash library; return how many templates were there."""
    with ctx.parts.sensor(ctx.cfg.fingerprint) as sensor:
        before = sensor.library_count()
        if before:
            sensor.clear_library()
        if sensor.library_count():
            raise DriverError(
                "the sensor still reports stored templates after clearing; replace it",
                reason="sensor_library",
            )
    return before


@dataclass(frozen=True, slots=True)
class TrialMatch:
    captures: int
    match: Match


def trial_match(ctx: Context, prompt: Callable[[str], None] | None = None) -> TrialMatch:
    """Enrol the engineer's finger into the sensor's RAM only, then verify it 1:1 against that
    template: proves capture, extraction and matching end to end. Nothing is stored (not in
    the flash library, not on disk). Blocks up to ``finger_timeout_s`` per capture."""
    say = prompt or (lambda _text: None)
    with ctx.parts.sensor(ctx.cfg.fingerprint) as sensor:
        say("place a finger on the sensor, lift it when the light changes, and repeat")
        enrolment = sensor.enrol()
        say("now place the same finger once more")
        match = sensor.verify(enrolment.template)
    return TrialMatch(enrolment.captures, match)


def camera_snap(ctx: Context, out: Path | None) -> tuple[Path, str]:
    """Take an aiming image (the empty lobby) and save it locally with mode 0600; it is never
    uploaded. Returns the path and a line describing exposure and sharpness."""
    with ctx.parts.camera(ctx.cfg.camera) as camera:
        photo = camera.capture_still()
    path = out or Path.cwd() / time.strftime("aim-%Y%m%d-%H%M%S.jpg", time.gmtime(ctx.clock.wall()))
    write_private_file(path, photo.jpeg)
    q = photo.quality
    verdict = "ok" if q.ok else "check: " + ", ".join(q.problems)
    return path, (
        f"{photo.width}x{photo.height}, mean luma {q.mean_luma:.0f}, sharpness "
        f"{q.sharpness:.0f} ({verdict})"
    )
