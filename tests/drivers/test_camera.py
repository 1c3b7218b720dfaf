"""The camera: simulated frames through the real quality gate and JPEG encoder."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading

import pytest
from PIL import Image, ImageStat

from daemon.errors import DeviceNotFound, DeviceTimeout
from drivers.camera import (
    CameraError,
    CameraNotFound,
    CameraSettings,
    CameraTimeout,
    GatedCamera,
    Shot,
    assess,
    camera_sim,
    open_camera,
)
from tests.drivers.conftest import SIM


def decode(jpeg: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG"
    return img.convert("RGB")


def test_a_good_shot_is_a_jpeg_at_evidence_resolution_that_looks_like_a_scene(
    camera: GatedCamera,
) -> None:
    photo = camera.capture_still()
    img = decode(photo.jpeg)
    assert img.size == (photo.width, photo.height) == (1280, 960)
    assert photo.quality.ok and photo.attempts == 1 and not photo.flagged
    grey = img.convert("L")
    assert ImageStat.Stat(grey).stddev[0] > 20  # not a flat colour
    assert sum(1 for n in grey.reduce(16).histogram() if n) > 20  # many distinct tones
    assert len(photo.jpeg) < 400_000
    assert b"Exif" not in photo.jpeg[:64]


def test_resolution_comes_from_settings() -> None:
    with open_camera(CameraSettings(backend="simulated", width=640, height=480)) as cam:
        photo = cam.capture_still()
    assert decode(photo.jpeg).size == (640, 480)
    assert photo.quality.ok


def test_frames_vary_per_shot_but_are_deterministic() -> None:
    def shots() -> list[str]:
        with open_camera(SIM) as cam:
            return [hashlib.sha256(cam.capture_still().jpeg).hexdigest() for _ in range(3)]

    first, second = shots(), shots()
    assert first == second
    assert len(set(first)) == 3


@pytest.mark.parametrize(
    ("bad", "problem"),
    [(Shot.DARK, "too_dark"), (Shot.BRIGHT, "too_bright"), (Shot.BLURRY, "blurry")],
)
def test_a_bad_first_shot_is_retaken_once(camera: GatedCamera, bad: Shot, problem: str) -> None:
    sim = camera_sim(camera)
    sim.script([bad])
    photo = camera.capture_still()
    assert photo.attempts == 2 and photo.quality.ok and not photo.flagged
    assert sim.frames_taken == 2


@pytest.mark.parametrize(
    ("bad", "problem"),
    [(Shot.DARK, "too_dark"), (Shot.BRIGHT, "too_bright"), (Shot.BLURRY, "blurry")],
)
def test_two_bad_shots_carry_on_with_a_flagged_photo(
    camera: GatedCamera, bad: Shot, problem: str
) -> None:
    sim = camera_sim(camera)
    sim.script([bad, bad])
    photo = camera.capture_still()
    assert photo.flagged and photo.attempts == 2
    assert problem in photo.quality.problems
    assert sim.frames_taken == 2  # never a third attempt
    decode(photo.jpeg)  # the flagged photo is still kept as evidence
    assert camera.capture_still().quality.ok  # and the next check-in is back to normal


def test_a_timeout_is_a_typed_error_and_the_camera_recovers(camera: GatedCamera) -> None:
    camera_sim(camera).script([Shot.TIMEOUT])
    with pytest.raises(CameraTimeout) as err:
        camera.capture_still()
    assert isinstance(err.value, DeviceTimeout)
    assert err.value.reason == "camera_timeout"
    assert "without a photo" in str(err.value)
    assert camera.capture_still().quality.ok


def test_an_unplugged_camera_is_not_found_until_plugged_back(camera: GatedCamera) -> None:
    sim = camera_sim(camera)
    sim.script([Shot.UNPLUGGED])
    with pytest.raises(CameraNotFound):
        camera.capture_still()
    with pytest.raises(CameraNotFound):
        camera.capture_still()
    sim.plug_in()
    assert camera.capture_still().quality.ok


def test_open_without_a_camera_fails_typed() -> None:
    cam = GatedCamera(camera_sim(open_camera(SIM)), SIM)
    camera_sim(cam).unplug()
    with pytest.raises(DeviceNotFound) as err:
        cam.open()
    assert err.value.reason == "camera_not_found"
    assert "ribbon cable" in str(err.value)


def test_capture_when_not_open_is_refused(camera: GatedCamera) -> None:
    camera.close()
    camera.close()  # idempotent
    with pytest.raises(CameraError):
        camera.capture_still()


def test_concurrent_captures_are_serialised(camera: GatedCamera) -> None:
    photos = []

    def take() -> None:
        photos.append(camera.capture_still())

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(photos) == 4 and all(p.quality.ok for p in photos)
    assert camera_sim(camera).frames_taken == 4


def test_picamera2_backend_off_the_pi_says_what_to_install() -> None:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("picamera2 is installed here: this test covers a machine without it")
    with pytest.raises(CameraNotFound) as err:
        open_camera(CameraSettings(backend="picamera2"))
    assert "python3-picamera2" in str(err.value)
    assert "--system-site-packages" in str(err.value)


def test_importing_the_drivers_imports_no_camera_or_gpio_library() -> None:
    code = (
        "import sys, drivers.camera, drivers.gpio, drivers.display, daemon.sealing;"
        "bad = [m for m in ('picamera2', 'libcamera', 'lgpio') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_quality_gate_on_plain_images() -> None:
    flat = Image.new("RGB", (1280, 960), (128, 128, 128))
    verdict = assess(flat, SIM)
    assert not verdict.ok and verdict.problems == ("blurry",)
    black = Image.new("RGB", (1280, 960), (0, 0, 0))
    assert assess(black, SIM).problems == ("too_dark", "blurry")


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="width"):
        CameraSettings(width=100)
    with pytest.raises(ValueError, match="jpeg_quality"):
        CameraSettings(jpeg_quality=100)
    with pytest.raises(ValueError, match="min_luma"):
        CameraSettings(min_luma=200, max_luma=100)
