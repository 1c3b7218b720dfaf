"""``kioskctl sensor info | test-match`` against the emulated sensor on a pty, and
``kioskctl camera snap`` with the simulated camera."""

from __future__ import annotations

import stat

from PIL import Image

from hil.fingerprint import VirtualFinger
from tests.kioskctl.conftest import Kiosk


def test_sensor_info(kiosk: Kiosk) -> None:
    code, out, err = kiosk.run("sensor", "info")
    assert code == 0, err
    assert f"port:            {kiosk.cfg.fingerprint.port} (serial)" in out
    assert "baud:            57600" in out
    assert "library:         0 stored (ok: must be empty)" in out


def test_sensor_info_on_the_emulator_names_no_port(kiosk: Kiosk) -> None:
    # the demo's sensor lives inside the command: no serial port to name (not /dev/serial0)
    kiosk.edit("fingerprint", backend="emulator")
    code, out, err = kiosk.run("sensor", "info")
    assert code == 0, err
    assert "port:            none, a simulated sensor (emulator)" in out


def test_sensor_unplugged_says_what_to_do(kiosk: Kiosk) -> None:
    kiosk.emulator.unplug()
    code, _out, err = kiosk.run("sensor", "info")
    assert code == 1
    assert "check the cable" in err


def test_test_match_enrols_in_ram_and_matches_storing_nothing(kiosk: Kiosk) -> None:
    kiosk.emulator.tap(VirtualFinger("engineer", 1), times=4)
    code, out, err = kiosk.run("sensor", "test-match")
    assert code == 0, err
    assert "MATCH: score" in out and "nothing was stored" in out
    assert kiosk.emulator.library == {}


def test_test_match_with_another_finger_does_not_match(kiosk: Kiosk) -> None:
    kiosk.emulator.tap([VirtualFinger("engineer", 1)] * 3 + [VirtualFinger("other", 2)], times=4)
    code, out, _err = kiosk.run("sensor", "test-match")
    assert code == 1
    assert "NO MATCH" in out


def test_camera_snap_saves_an_aiming_image_locally(kiosk: Kiosk) -> None:
    target = kiosk.folder / "aim.jpg"
    code, out, err = kiosk.run("camera", "snap", "--out", str(target))
    assert code == 0, err
    assert "kept on this kiosk only" in out and "mean luma" in out
    with Image.open(target) as img:
        assert img.format == "JPEG" and img.size == (320, 240)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
