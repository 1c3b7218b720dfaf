"""Doctor checks for the hardware: fingerprint sensor, camera, GPIO, display, sound; and the
spoken prompts that sound plays.

Each function opens its part through ``ctx.parts`` (so it fails for the part's real reason),
closes it again, and returns one or more :class:`~daemon.kioskctl.report.Check` rows with
the fix for each problem. A part held by a running ``kiosk.service`` shows up as "cannot be
claimed"; run ``kioskctl doctor --no-hardware`` on a live kiosk, or stop the service first.

Blocking: the sensor check takes up to ~2 s when it has to look for the sensor at other baud
rates (0.3 s per rate). May import: ``daemon.*``, ``drivers.*`` (interfaces and errors).
"""

from __future__ import annotations

import dataclasses

from daemon.errors import ConfigError, DeviceNotFound, DriverError
from daemon.kioskctl.context import Context
from daemon.kioskctl.report import Check, failed, passed, warned
from daemon.ui.audio import VOICES, AudioPromptError, prompt_names, wav_seconds
from drivers.camera.interface import CameraNotFound, CameraTimeout
from drivers.display.interface import BacklightNotFound
from drivers.fingerprint.interface import SensorMissing, SensorNotAnswering, SensorRefused
from drivers.printer import Paper, PrinterError, open_printer

STANDARD_BAUDS = (57600, 115200, 9600, 19200, 38400)
#: the ids the kernel gives the Raspberry Pi's HDMI audio cards
HDMI_AUDIO = "vc4hdmi"
HELD = "if kiosk.service is running it holds the hardware: stop it first, or use --no-hardware"


def find_sensor_baud(ctx: Context, exclude: set[int]) -> int | None:
    """The standard rate at which the sensor answers, other than ``exclude``; None if none."""
    for baud in STANDARD_BAUDS:
        if baud in exclude:
            continue
        settings = dataclasses.replace(ctx.cfg.fingerprint, baud=baud, initial_baud=baud)
        try:
            with ctx.parts.sensor(settings):
                return baud
        except (DriverError, ConfigError):
            continue
    return None


def check_sensor(ctx: Context) -> list[Check]:
    """Answers (handshake, system parameters), baud rate in use, flash library empty."""
    s = ctx.cfg.fingerprint
    try:
        with ctx.parts.sensor(s) as sensor:
            info = sensor.info()
    except SensorMissing:
        return [
            failed(
                "sensor",
                f"the sensor's serial port {s.port} cannot be opened (unplugged, or the port "
                "is wrong)",
                "check the sensor cable at both ends and that fingerprint.port names the "
                "UART (/dev/serial0 on a Pi with enable_uart=1)",
            )
        ]
    except SensorNotAnswering:
        tried = {s.baud, s.initial_baud}
        found = find_sensor_baud(ctx, tried)
        if found is not None:
            return [
                failed(
                    "sensor baud",
                    f"the sensor answers at {found} baud, but the kiosk talks at "
                    f"{' or '.join(str(b) for b in sorted(tried))}",
                    f"run `kioskctl sensor set-baud {s.initial_baud} --from {found}`, or set "
                    f"fingerprint.initial_baud = {found} in the configuration",
                )
            ]
        return [
            failed(
                "sensor",
                f"no answer from the sensor on {s.port} at any standard baud rate",
                "check the sensor's power (3.3 V) and that TX/RX are not swapped; reseat the "
                "cable; " + HELD,
            )
        ]
    except SensorRefused as exc:
        return [failed("sensor", f"the sensor refused the handshake ({exc.reason})", exc.message)]
    except (DriverError, ConfigError) as exc:
        return [failed("sensor", f"the sensor could not be opened ({exc.reason})", HELD)]
    rows = [
        passed(
            "sensor",
            f"answers on {s.port} ({info.backend}): capacity {info.capacity}, security level "
            f"{info.security_level}, packets of {info.packet_size} bytes",
        )
    ]
    if info.baud == s.baud:
        rows.append(passed("sensor baud", f"{info.baud} baud as configured"))
    else:
        rows.append(
            warned(
                "sensor baud",
                f"running at {info.baud} baud; the sensor would not switch to {s.baud}",
                f"set fingerprint.baud = {info.baud} so the kiosk stops asking at every start "
                "(verification is slower but works)",
            )
        )
    if info.library_count == 0:
        rows.append(passed("sensor library", "the flash library is empty, as it must be"))
    else:
        rows.append(
            failed(
                "sensor library",
                f"the sensor's flash library holds {info.library_count} templates; anyone with "
                "a UART cable could read them",
                "run `kioskctl sensor clear-library` (the kiosk never stores people there)",
            )
        )
    return rows


def check_camera(ctx: Context) -> list[Check]:
    """A frame is captured, and its exposure and sharpness pass the photo gate."""
    c = ctx.cfg.camera
    try:
        with ctx.parts.camera(c) as camera:
            photo = camera.capture_still()
    except CameraNotFound:
        return [
            failed(
                "camera",
                "no camera was found",
                "check the CSI ribbon cable (contacts the right way round, latch closed) and "
                "that the camera is enabled in config.txt; " + HELD,
            )
        ]
    except CameraTimeout:
        return [
            failed(
                "camera",
                f"the camera gave no frame within {c.timeout_s} s",
                "reseat the camera cable, then restart the kiosk; " + HELD,
            )
        ]
    except (DriverError, ConfigError) as exc:
        return [failed("camera", f"the camera failed ({exc.reason})", HELD)]
    q = photo.quality
    figures = (
        f"{photo.width}x{photo.height}, mean luma {q.mean_luma:.0f} (accepted "
        f"{c.min_luma:.0f}-{c.max_luma:.0f}), sharpness {q.sharpness:.0f} "
        f"(min {c.min_sharpness:.0f})"
    )
    if q.ok:
        return [passed("camera", f"frame captured: {figures}")]
    return [
        warned(
            "camera",
            f"frame captured but {', '.join(q.problems)}: {figures}",
            "check the lobby lighting, the lens (covered, smudged) and the aim; take an "
            "aiming image with `kioskctl camera snap`",
        )
    ]


def check_gpio(ctx: Context) -> list[Check]:
    """Every pin in the pin map can be claimed; the tamper switch reads closed."""
    try:
        with ctx.parts.gpio(ctx.cfg.gpio) as board:
            tamper_open = board.tamper.is_open
            count = len(board.pinmap.signals)
    except DeviceNotFound as exc:
        return [failed("gpio", f"no GPIO chip ({exc.reason})", exc.message)]
    except (DriverError, ConfigError) as exc:
        return [failed("gpio", f"a pin could not be claimed ({exc.reason})", HELD)]
    rows = [passed("gpio", f"all {count} pins of the pin map claimed and released")]
    if tamper_open:
        rows.append(
            failed(
                "tamper switch",
                "the enclosure reads open (lid open, or the switch wire is cut)",
                "close the enclosure; if it is closed, check the tamper microswitch and its "
                "wiring (docs/drivers.md)",
            )
        )
    else:
        rows.append(passed("tamper switch", "closed"))
    return rows


def check_display(ctx: Context) -> list[Check]:
    """The backlight answers and is lit; a touch panel is present."""
    try:
        with ctx.parts.display(ctx.cfg.display, ctx.clock) as display:
            level = display.backlight.brightness
            touch = display.touch_devices()
    except BacklightNotFound:
        return [
            failed(
                "display",
                "no backlight device under /sys/class/backlight",
                "check the display cable and its overlay in config.txt (dtoverlay for the DSI "
                "panel); an HDMI panel has no backlight control: set display.backlight",
            )
        ]
    except (DriverError, ConfigError) as exc:
        return [failed("display", f"the backlight could not be driven ({exc.reason})", exc.message)]
    rows = [
        passed("display", f"backlight lit at {level * 100:.0f} %")
        if level > 0
        else failed("display", "the backlight stays off", "check the panel's power lead")
    ]
    if touch:
        rows.append(passed("touch", ", ".join(f"{t.name} ({t.event})" for t in touch)))
    else:
        rows.append(
            failed(
                "touch",
                "no touch panel is visible to the kernel",
                "check the touch cable (USB, or the DSI ribbon for the official display)",
            )
        )
    return rows


def check_prompts(ctx: Context) -> list[Check]:
    """Every spoken prompt is installed, in both languages, and the speech engine that speaks
    a screen's own words (the question, the officer's message) is there. Without them the
    Listen buttons, which people who cannot read depend on, are silent or say less."""
    folder = ctx.parts.prompts_dir
    names = [f"{lang}/{name}" for lang in VOICES for name in prompt_names()]
    missing = []
    for name in names:
        try:
            wav_seconds(folder / f"{name}.wav")
        except AudioPromptError:
            missing.append(name)
    rows = [
        passed("spoken prompts", f"{len(names)} prompts, Welsh and English, in {folder}")
        if not missing
        else failed(
            "spoken prompts",
            f"{len(missing)} of {len(names)} missing or unreadable in {folder} (first: "
            f"{missing[0]}.wav): those screens' Listen buttons are silent",
            "reinstall the kiosk software (install-kiosk.sh makes them with espeak-ng), or run "
            f"`python -m daemon.ui.audio --out {folder}` as root",
        )
    ]
    engine = ctx.parts.run(["espeak-ng", "--version"], 5.0)
    rows.append(
        passed("speech engine", (engine[1].strip().splitlines() or ["espeak-ng"])[0][:80])
        if engine is not None and engine[0] == 0
        else warned(
            "speech engine",
            "espeak-ng does not run: Listen plays each screen's fixed prompt only, not the "
            "question, the officer's message or the appointment",
            "install it: apt install espeak-ng",
        )
    )
    return rows


def check_sound(ctx: Context) -> list[Check]:
    """A sound card for the loudspeaker and the headphone socket (the USB audio adapter), and
    ALSA's default output on it. The Pi's HDMI outputs are sound cards too (``vc4hdmi*``),
    numbered first, and ALSA's default is card 0: a kiosk whose touchscreen is not HDMI would
    speak into a cable that goes nowhere."""
    cards = ctx.parts.sound_cards()
    speakers = [c for c in cards if not c.lower().startswith(HDMI_AUDIO)]
    if not speakers:
        seen = f" (only HDMI: {', '.join(cards)})" if cards else ""
        return [
            failed(
                "sound",
                f"no sound card for the loudspeaker is visible to the kernel{seen}: nothing "
                "the kiosk says can be heard",
                "check the USB audio adapter is plugged in, and the loudspeaker and headphone "
                "socket leads (enclosure/README.md)",
            )
        ]
    if cards[0] != speakers[0]:
        return [
            warned(
                "sound",
                f"ALSA's default output is card 0, {cards[0]} (HDMI), not {speakers[0]}",
                f"make {speakers[0]} the default: put `defaults.pcm.card {speakers[0]}` and "
                f"`defaults.ctl.card {speakers[0]}` in /etc/asound.conf (docs/ui.md)",
            )
        ]
    return [passed("sound", ", ".join(cards))]


def check_printer(ctx: Context) -> list[Check]:
    """The optional receipt printer answers and has paper (no row when there is none)."""
    settings = ctx.cfg.printer
    if settings.backend == "none":
        return []
    try:
        printer = open_printer(settings)
        if printer is None:
            return []
        try:
            paper = printer.paper()
        finally:
            printer.close()
    except PrinterError as exc:
        return [
            failed(
                "printer",
                f"the receipt printer does not answer ({exc.reason})",
                "check its USB cable and power; check-ins go on without slips meanwhile",
            )
        ]
    if paper is Paper.OUT:
        return [failed("printer", "out of paper", "fit a new roll (58 mm thermal)")]
    if paper is Paper.LOW:
        return [warned("printer", "paper low", "fit a new roll soon")]
    return [passed("printer", "answers; paper ok")]
